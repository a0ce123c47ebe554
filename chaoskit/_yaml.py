"""Input YAML (experiment and target files), read within limits and located to the line.

Both file formats go through here, so a mistake reads the same in either: one line naming
the file, the line and column, and what was expected. Before a document is built, its event
stream is scanned once (no recursion, no alias expansion) against the limits below, so a
hostile file (an alias bomb, thousands of nested lists, megabytes of YAML, binary data) is
refused in bounded time and memory instead of taking the machine down.
"""

from __future__ import annotations

import difflib
import json
import math
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import (
    AliasEvent,
    CollectionEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceStartEvent,
)

from chaoskit.errors import FileInputError

__all__ = [
    "MAX_ALIASES",
    "MAX_DEPTH",
    "MAX_FILE_BYTES",
    "MAX_NODES",
    "Loc",
    "Place",
    "decode",
    "did_you_mean",
    "load_yaml",
    "plain",
    "read_input",
    "show",
]

# One table of input limits. Real experiment and target files are a few kB, a handful of
# levels deep and use aliases rarely; these are far above that and far below harm.
MAX_FILE_BYTES = 256 * 1024
MAX_DEPTH = 32
MAX_ALIASES = 100
MAX_NODES = 50_000  # scalars and collections, counting what every alias stands for

Loc = tuple[str | int, ...]


def _kib(size: int) -> str:
    return f"{size / 1024:,.0f} KiB" if size < 1024 * 1024 else f"{size / 1024 / 1024:,.1f} MiB"


def read_input(path: Path, *, error: type[FileInputError], what: str) -> str:
    """The text of the input file ``path`` (``what``: "experiment", "target"), or ``error``.

    Never reads more than the size limit: a 50 MB file is refused from its size alone.
    """
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise error(f"no such {what} file", path=path) from None
    except IsADirectoryError:
        raise error(f"cannot read: expected a {what} file, got a directory", path=path) from None
    except OSError as exc:
        raise error(f"cannot read the {what} file: {exc.strerror or exc}", path=path) from None
    if len(data) > MAX_FILE_BYTES:
        try:
            size = f"{_kib(path.stat().st_size)}"
        except OSError:
            size = f"over {_kib(MAX_FILE_BYTES)}"
        raise error(
            f"the {what} file is {size}; the limit is {_kib(MAX_FILE_BYTES)} "
            "(experiment and target files are a few kB of YAML)",
            path=path,
        )
    return decode(data, path=path, error=error, what=what)


def decode(data: bytes, *, path: Path | None, error: type[FileInputError], what: str) -> str:
    """``data`` as UTF-8 text; binary data or a bad byte is one line naming where."""
    nul = data.find(b"\x00")
    if nul >= 0:
        line = data.count(b"\n", 0, nul) + 1
        raise error(
            f"expected a {what} text file, got binary data (a NUL byte)", path=path, line=line
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        col = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise error(
            f"expected a UTF-8 text file, got byte 0x{data[exc.start]:02x} ({exc.reason})",
            path=path,
            line=line,
            col=col,
        ) from None


@dataclass(slots=True)
class _Open:
    """A collection being scanned: how many nodes it holds so far, and its next slot."""

    nodes: int
    is_mapping: bool
    anchor: str | None
    children: int = 0


def _check_limits(text: str, path: Path | None, error: type[FileInputError]) -> None:
    """Refuse a document over the limits from its event stream alone (flat, no expansion)."""
    size = len(text.encode("utf-8", errors="replace"))
    if size > MAX_FILE_BYTES:
        raise error(f"the YAML is {_kib(size)}; the limit is {_kib(MAX_FILE_BYTES)}", path=path)
    stack: list[_Open] = []
    anchors: dict[str, tuple[int, bool]] = {}  # anchor -> (nodes it stands for, is collection)
    aliases = 0

    def fail(message: str, event: Any) -> FileInputError:
        mark = event.start_mark
        return error(message, path=path, line=mark.line + 1, col=mark.column + 1)

    def at_key(event: Any, collection: bool) -> None:
        parent = stack[-1] if stack else None
        if collection and parent is not None and parent.is_mapping and parent.children % 2 == 0:
            raise fail("a mapping key must be text or a number, got a list or mapping", event)

    def add(nodes: int, event: Any) -> None:
        if stack:
            parent = stack[-1]
            parent.nodes += nodes
            parent.children += 1
            if parent.nodes > MAX_NODES:
                raise fail(
                    f"the document grows past {MAX_NODES:,} values (counting what aliases "
                    "repeat); the limit guards against alias bombs",
                    event,
                )

    for event in YAML(typ="rt").parse(text):
        if isinstance(event, MappingStartEvent | SequenceStartEvent):
            at_key(event, collection=True)
            if len(stack) >= MAX_DEPTH:
                raise fail(
                    f"nested deeper than {MAX_DEPTH} levels (the limit is {MAX_DEPTH})", event
                )
            stack.append(_Open(1, isinstance(event, MappingStartEvent), event.anchor))
        elif isinstance(event, CollectionEndEvent):
            done = stack.pop()
            if done.anchor is not None:
                anchors[done.anchor] = (done.nodes, True)
            add(done.nodes, event)
        elif isinstance(event, ScalarEvent):
            if event.anchor is not None:
                anchors[event.anchor] = (1, False)
            add(1, event)
        elif isinstance(event, AliasEvent):
            aliases += 1
            if aliases > MAX_ALIASES:
                raise fail(
                    f"more than {MAX_ALIASES} aliases (*name) (the limit is {MAX_ALIASES})", event
                )
            nodes, collection = anchors.get(event.anchor, (1, False))
            at_key(event, collection)
            add(nodes, event)


def load_yaml(text: str, *, path: Path | None, error: type[FileInputError]) -> Any:
    """The round-trip tree of ``text`` (positions kept), checked against the limits first."""
    try:
        _check_limits(text, path, error)
        return YAML(typ="rt").load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        what = exc.problem or exc.context or "cannot parse"
        # ruamel appends advice paragraphs to some problems; the first line is the point.
        what = str(what).strip().splitlines()[0]
        raise error(
            f"YAML syntax error: {what}",
            path=path,
            line=None if mark is None else mark.line + 1,
            col=None if mark is None else mark.column + 1,
        ) from None
    except (YAMLError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise error(f"YAML syntax error: {first}", path=path) from None


def plain(node: Any) -> Any:
    """ruamel's round-trip nodes as plain dicts, lists, str, int, float, bool."""
    if isinstance(node, Mapping):
        return {plain(key): plain(value) for key, value in node.items()}
    if isinstance(node, Sequence) and not isinstance(node, str):
        return [plain(item) for item in node]
    if isinstance(node, bool):
        return bool(node)
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    if isinstance(node, str):
        return str(node)
    return node


def did_you_mean(given: str, allowed: Sequence[str]) -> str:
    """' (did you mean "x"?)' for the closest allowed word, or '' when none is close."""
    close = difflib.get_close_matches(given, list(allowed), n=1, cutoff=0.6)
    return f' (did you mean "{close[0]}"?)' if close else ""


def show(value: Any) -> str:
    """A value as a message quotes it: short, and YAML-ish (true, null, "text")."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null (nothing)"
    if isinstance(value, str):
        return json.dumps(value if len(value) <= 60 else value[:57] + "...", ensure_ascii=False)
    if isinstance(value, int | float):
        return f"{value:g}" if isinstance(value, float) and math.isfinite(value) else str(value)
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, Sequence):
        return "a list"
    return type(value).__name__


# ---------------------------------------------------------------- positions


class Place:
    """Where a pydantic loc lands in the YAML tree, the field path shown to the user, and the
    keys the model there accepts.

    The model types are walked alongside the data so that a discriminated union's tag
    (present in pydantic's loc, absent from the file) is told apart from a key that
    happens to share its name (`stages: [...]` in a `kind: stages` shape).
    """

    def __init__(
        self, tree: Any, loc: Loc, *, model: Any, at_key: bool = False, dotted: bool = False
    ) -> None:
        self.line, self.col = 1, 1
        self.path = ""
        node: Any = tree
        for index, part in enumerate(loc):
            last = index == len(loc) - 1
            model = _unwrap(model)
            if _is_union(model):
                member = _union_member(model, part)
                if member is not None:
                    model = member
                    continue
                model = None
            if isinstance(model, type) and issubclass(model, BaseModel):
                field = next(
                    (f for n, f in model.model_fields.items() if (f.alias or n) == part), None
                )
                model = None if field is None else field.annotation
            elif typing.get_origin(model) in (list, dict):
                model = typing.get_args(model)[-1] if typing.get_args(model) else None
            else:
                model = None
            if isinstance(node, CommentedMap) and part in node:
                line, col = node.lc.key(part) if at_key and last else node.lc.value(part)
                if not (at_key and last) and isinstance(node[part], CommentedMap | CommentedSeq):
                    line, col = node.lc.key(part)  # point at the key that opens a block
                self.line, self.col = line + 1, col + 1
                node = node[part]
            elif isinstance(node, CommentedSeq) and isinstance(part, int) and part < len(node):
                line, col = node.lc.item(part)
                self.line, self.col = line + 1, col + 1
                node = node[part]
            else:
                node = None
            if isinstance(part, int) and not dotted:
                self.path += f"[{part}]"
            else:
                self.path += f".{part}" if self.path else str(part)
        self._model = model
        self._node = node

    def allowed_keys(self) -> list[str]:
        """The keys of the model at the end of the walk (for did-you-mean)."""
        model = _unwrap(self._model)
        if _is_union(model) and isinstance(self._node, Mapping):
            model = _union_member(model, self._node.get("kind"))
        if isinstance(model, type) and issubclass(model, BaseModel):
            return [f.alias or n for n, f in model.model_fields.items()]
        return []


def _is_union(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (typing.Union, types.UnionType)


def _unwrap(annotation: Any) -> Any:
    """Strip Annotated[...] and Optional[...] down to the type that holds the fields."""
    while True:
        if typing.get_origin(annotation) is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif _is_union(annotation):
            members = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(members) != 1:
                return annotation
            annotation = members[0]
        else:
            return annotation


def _union_member(union: Any, tag: Any) -> Any:
    for member in typing.get_args(union):
        model = _unwrap(member)
        if isinstance(model, type) and issubclass(model, BaseModel):
            kind = model.model_fields.get("kind")
            if kind is not None and typing.get_args(kind.annotation) == (tag,):
                return model
    return None
