"""Reads an experiment file and points every mistake at its line: ``file:line:col: field: ...``.

The YAML is read with ruamel's round-trip loader, which keeps the position of every key
and item, so a pydantic error's ``loc`` can be mapped back to where the user typed it.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from chaoskit.errors import ChaoskitError, ExperimentError
from chaoskit.experiment.models import (
    CONTAINER_FAULT_KINDS,
    DOMAIN_FAULT_KINDS,
    NETWORK_FAULT_KINDS,
    SHAPE_KINDS,
    CustomShape,
    Experiment,
    ReplayShape,
    did_you_mean,
)
from chaoskit.load.shapes import build_shape

__all__ = ["load_experiment", "parse_experiment"]

Loc = tuple[str | int, ...]
_FAULT_KINDS = (*NETWORK_FAULT_KINDS, *DOMAIN_FAULT_KINDS, *CONTAINER_FAULT_KINDS)


def load_experiment(path: Path | str, *, extra_metrics: Iterable[str] = ()) -> Experiment:
    """The validated experiment in ``path``; any problem raises one ExperimentError.

    ``extra_metrics``: metric names a target given elsewhere (``--target``) adds with its
    PromQL queries; those of the experiment's own target file are found here.
    """
    source = Path(path)
    try:
        text = source.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ExperimentError("no such experiment file", path=source) from None
    except UnicodeDecodeError as exc:
        raise ExperimentError(f"not a UTF-8 text file ({exc.reason})", path=source) from None
    except OSError as exc:
        raise ExperimentError(f"cannot read: {exc.strerror or exc}", path=source) from None
    return parse_experiment(text, path=source, extra_metrics=extra_metrics)


def parse_experiment(
    text: str, *, path: Path | str, extra_metrics: Iterable[str] = ()
) -> Experiment:
    """Validate experiment YAML ``text``; ``path`` names it in errors and anchors relative files."""
    source = Path(path)
    tree = _read_yaml(text, source)
    if not isinstance(tree, CommentedMap):
        raise ExperimentError(
            f"expected a mapping of experiment keys (version, name, load, ...), got {_show(tree)}",
            path=source,
            line=1,
            col=1,
        )
    try:
        names = [*extra_metrics, *_declared_metrics(tree, source)]
        experiment = Experiment.model_validate(
            _plain(tree), context={"source_path": source, "extra_metrics": names}
        )
    except ValidationError as exc:
        raise _explain(exc, tree, source) from None
    _check_files(experiment, tree, source)
    return experiment


def _read_yaml(text: str, source: Path) -> Any:
    yaml = YAML(typ="rt")
    try:
        return yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        what = exc.problem or exc.context or "cannot parse"
        # ruamel appends advice paragraphs to some problems; the first line is the point.
        what = str(what).strip().splitlines()[0]
        raise ExperimentError(
            f"YAML syntax error: {what}",
            path=source,
            line=None if mark is None else mark.line + 1,
            col=None if mark is None else mark.column + 1,
        ) from None
    except (YAMLError, ValueError) as exc:
        raise ExperimentError(f"YAML syntax error: {exc}", path=source) from None


def _plain(node: Any) -> Any:
    """ruamel's round-trip nodes as plain dicts, lists, str, int, float, bool."""
    if isinstance(node, Mapping):
        return {_plain(key): _plain(value) for key, value in node.items()}
    if isinstance(node, Sequence) and not isinstance(node, str):
        return [_plain(item) for item in node]
    if isinstance(node, bool):
        return bool(node)
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    if isinstance(node, str):
        return str(node)
    return node


# ---------------------------------------------------------------- positions


class _Place:
    """Where a loc lands in the YAML tree, the field path shown to the user, and the keys
    the model there accepts.

    The model types are walked alongside the data so that a discriminated union's tag
    (present in pydantic's loc, absent from the file) is told apart from a key that
    happens to share its name (`stages: [...]` in a `kind: stages` shape).
    """

    def __init__(self, tree: CommentedMap, loc: Loc, *, at_key: bool = False) -> None:
        self.line, self.col = 1, 1
        self.path = ""
        node: Any = tree
        model: Any = Experiment
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
            elif typing.get_origin(model) is list:
                model = typing.get_args(model)[0]
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
            if isinstance(part, int):
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


# ---------------------------------------------------------------- messages


def _show(value: Any) -> str:
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


def _quoted_options(text: str) -> list[str]:
    return re.findall(r"'([^']*)'", text)


def _describe(error: ErrorDetails, loc: Loc, tree: CommentedMap) -> tuple[str, bool]:
    """The message for one error, and whether it is about a key (not a value)."""
    kind = error["type"]
    ctx: dict[str, Any] = dict(error.get("ctx") or {})
    value = error["input"]
    got = f", got {_show(value)}"
    if kind == "missing":
        return "required key is missing", False
    if kind == "extra_forbidden":
        key = str(loc[-1])
        allowed = _Place(tree, loc[:-1]).allowed_keys()
        hint = did_you_mean(key, allowed)
        listing = f"; allowed here: {', '.join(allowed)}" if allowed and not hint else ""
        return f"unknown key{hint}{listing}", True
    if kind == "union_tag_invalid":
        tags = _quoted_options(str(ctx.get("expected_tags", "")))
        tag = str(ctx.get("tag", value))
        return (
            f'unknown kind "{tag}"{did_you_mean(tag, tags)}; expected one of: {", ".join(tags)}',
            False,
        )
    if kind == "union_tag_not_found":
        kinds = SHAPE_KINDS if "shape" in loc[-2:-1] else _FAULT_KINDS
        return f"required key is missing; expected one of: {', '.join(kinds)}", False
    if kind == "literal_error":
        options = _quoted_options(str(ctx.get("expected", "")))
        if not options:
            return f"expected {ctx.get('expected', '?')}{got}", False
        hint = did_you_mean(str(value), options) if isinstance(value, str) else ""
        return f"expected one of {', '.join(options)}{got}{hint}", False
    if kind in ("experiment", "journey"):
        return str(ctx.get("message", error["msg"])), False
    if kind == "duration":
        return f"{error['msg']}{got}", False
    simple = {
        "int_type": "expected an integer",
        "int_parsing": "expected an integer",
        "int_from_float": "expected an integer",
        "float_type": "expected a number",
        "float_parsing": "expected a number",
        "finite_number": "expected a finite number",
        "bool_type": "expected true or false",
        "bool_parsing": "expected true or false",
        "string_type": "expected text",
        "list_type": "expected a list",
        "model_type": "expected a mapping of keys",
        "model_attributes_type": "expected a mapping of keys",
        "dict_type": "expected a mapping of keys",
        "string_too_short": "expected non-empty text",
    }
    if kind in simple:
        return simple[kind] + got, False
    bounds = {
        "greater_than_equal": (">=", "ge"),
        "greater_than": (">", "gt"),
        "less_than_equal": ("<=", "le"),
        "less_than": ("<", "lt"),
    }
    if kind in bounds:
        sign, key = bounds[kind]
        return f"expected a number {sign} {ctx.get(key)}{got}", False
    if kind == "too_short":
        return f"expected at least {ctx.get('min_length')} item(s){got}", False
    if kind == "string_pattern_mismatch":
        return f"expected text matching {ctx.get('pattern')}{got}", False
    message = error["msg"]
    return message[:1].lower() + message[1:] + got, False


def _explain(exc: ValidationError, tree: CommentedMap, source: Path) -> ExperimentError:
    problems = []
    for error in exc.errors(include_url=False):
        loc: Loc = tuple(error["loc"])
        ctx = error.get("ctx") or {}
        if error["type"] in ("experiment", "journey") and ctx.get("loc"):
            loc = (*loc, *ctx["loc"])
        if error["type"] in ("union_tag_invalid", "union_tag_not_found"):
            loc = (*loc, "kind")
        message, about_key = _describe(error, loc, tree)
        place = _Place(tree, loc, at_key=about_key)
        # A missing key points at its parent, often near the top: a wrong key says more.
        rank = 1 if error["type"] in ("missing", "union_tag_not_found") else 0
        problems.append((rank, place.line, place.col, place.path, message))
    problems.sort(key=lambda p: p[:3])
    _, line, col, field_path, message = problems[0]
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    text = f"{field_path}: {message}{more}" if field_path else f"{message}{more}"
    return ExperimentError(text, path=source, line=line, col=col)


def _declared_metrics(tree: CommentedMap, source: Path) -> list[str]:
    """Metric names the experiment's PromQL queries and its target file's add."""
    names: list[str] = []
    metrics = tree.get("metrics")
    prometheus = metrics.get("prometheus") if isinstance(metrics, Mapping) else None
    queries = prometheus.get("queries") if isinstance(prometheus, Mapping) else None
    if isinstance(queries, Mapping):
        names.extend(str(name) for name in queries)
    target = tree.get("target")
    if isinstance(target, str) and target.endswith((".yaml", ".yml")):
        from chaoskit.stack.target import load_target

        # The target file's own problems are told when it is loaded for the run.
        with contextlib.suppress(ChaoskitError):
            names.extend(load_target(source.parent / target).metric_names())
    return names


# ---------------------------------------------------------------- files the experiment names


def _check_files(experiment: Experiment, tree: CommentedMap, source: Path) -> None:
    shape = experiment.load.shape
    shape_loc: Loc = ("load", "shape")
    if isinstance(shape, ReplayShape):
        csv_path = Path(shape.file)
        csv_path = csv_path if csv_path.is_absolute() else experiment.base_dir / csv_path
        if not csv_path.is_file():
            place = _Place(tree, (*shape_loc, "file"))
            raise ExperimentError(
                f"{place.path}: no such replay CSV file {str(csv_path)!r}",
                path=source,
                line=place.line,
                col=place.col,
            )
    if isinstance(shape, CustomShape):
        where = shape.class_.rsplit(":", 1)[0]
        if where.endswith(".py") or "/" in where:
            class_file = Path(where)
            class_file = class_file if class_file.is_absolute() else experiment.base_dir / where
            if not class_file.is_file():
                place = _Place(tree, (*shape_loc, "class"))
                raise ExperimentError(
                    f"{place.path}: no such file {str(class_file)!r}",
                    path=source,
                    line=place.line,
                    col=place.col,
                )
    journey = experiment.load.journey
    if journey is not None and journey.python_ref is not None:
        hook_file = Path(journey.python_ref[0])
        hook_file = hook_file if hook_file.is_absolute() else experiment.base_dir / hook_file
        if not hook_file.is_file():
            place = _Place(tree, ("load", "journey", "python"))
            raise ExperimentError(
                f"{place.path}: no such file {str(hook_file)!r}",
                path=source,
                line=place.line,
                col=place.col,
            )
    curve = build_shape(shape, base_dir=experiment.base_dir)
    if curve.duration_s <= 0:
        place = _Place(tree, shape_loc)
        raise ExperimentError(
            f"{place.path}: the shape lasts 0s; give it a length",
            path=source,
            line=place.line,
            col=place.col,
        )
