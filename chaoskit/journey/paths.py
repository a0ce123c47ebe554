"""JSONPath on response bodies: compiled once per run, with a fast walk for singular paths.

A singular path made of names and indexes only (``$.checkout.id``, ``$.items[0].sku``,
``$['a b']``), which is nearly every path a journey uses, is recognised by a strict pattern
and walked directly: a dict lookup per segment instead of a generic query (~0.3 us against
~8 us per response, paid on every request of every intent). Every other path goes to
python-jsonpath (RFC 9535), imported only then (it costs the engine ~70 ms of start-up), so
its syntax and its error messages are the standard's.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

__all__ = [
    "MISSING",
    "BodyPath",
    "PathSyntaxError",
    "compile_path",
    "parse_json_path",
    "select",
]


class _Missing:
    """What a path finds when nothing is there (``None`` is a JSON value: null)."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


class PathSyntaxError(ValueError):
    """A JSONPath that does not parse; the message is the library's, on one line."""


class BodyPath:
    """One compiled JSONPath: ``first(body)`` is the first match or ``MISSING``."""

    __slots__ = ("first", "text")

    def __init__(self, text: str, first: Callable[[Any], Any]) -> None:
        self.text = text
        self.first = first

    def __repr__(self) -> str:
        return f"BodyPath({self.text!r})"


# RFC 9535 singular segments: .name (member-name-shorthand, ASCII here), ['name'] / ["name"]
# without escapes, [index].
_SEGMENT = r"""\.[A-Za-z_][A-Za-z0-9_]*|\[(?:0|-?[1-9][0-9]*|'[^'\\]*'|"[^"\\]*")\]"""
_SIMPLE = re.compile(rf"^\$(?:{_SEGMENT})*$")
_EACH = re.compile(_SEGMENT)


def _simple_keys(text: str) -> tuple[str | int, ...] | None:
    if not _SIMPLE.match(text):
        return None
    keys: list[str | int] = []
    for match in _EACH.finditer(text, 1):
        segment = match.group(0)
        if segment.startswith("."):
            keys.append(segment[1:])
        elif segment[1] in "'\"":
            keys.append(segment[2:-2])
        else:
            keys.append(int(segment[1:-1]))
    return tuple(keys)


def compile_path(text: str) -> BodyPath:
    """Compile ``text``; ``PathSyntaxError`` when it is not a JSONPath query."""
    if not text.startswith("$"):
        raise PathSyntaxError(f"expected a JSONPath starting with $, got {text!r}")
    keys = _simple_keys(text)
    if keys is not None:
        return BodyPath(text, _walker(keys))
    import jsonpath  # the general case only: see the module docstring
    from jsonpath.exceptions import JSONPathError

    try:
        compiled = jsonpath.compile(text)
    except JSONPathError as exc:
        first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise PathSyntaxError(f"bad JSONPath {text!r}: {first_line}") from None

    def generic(body: Any) -> Any:
        found = compiled.match(body)
        return MISSING if found is None else found.obj

    return BodyPath(text, generic)


def _walker(keys: tuple[str | int, ...]) -> Callable[[Any], Any]:
    def walk(body: Any) -> Any:
        node = body
        for key in keys:
            if isinstance(key, str):
                if type(node) is not dict:
                    return MISSING
                node = node.get(key, MISSING)
                if node is MISSING:
                    return MISSING
            else:
                if type(node) is not list:
                    return MISSING
                index = key if key >= 0 else len(node) + key
                if not 0 <= index < len(node):
                    return MISSING
                node = node[index]
        return node

    return walk


# Every match, not the first: a ledger export lists this run's order ids.
def parse_json_path(path: str) -> Any:
    """The compiled JSONPath (RFC 9535, python-jsonpath); ValueError says what is wrong."""
    import jsonpath

    text = path.strip()
    if not text.startswith("$"):
        raise ValueError(f"a JSONPath starts with $, got {path!r}")
    try:
        return jsonpath.compile(text)
    except jsonpath.JSONPathError as exc:
        raise ValueError(f"cannot read the JSONPath {path!r}: {exc}") from None


def select(document: Any, compiled: Any) -> list[Any]:
    """Every value the compiled path reaches in ``document``."""
    return list(compiled.findall(document))
