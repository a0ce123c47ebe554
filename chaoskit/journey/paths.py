"""JSONPath on response bodies: compiled once per run, with a fast walk for singular paths.

python-jsonpath (RFC 9535) parses every path, so its syntax and its error messages are the
standard's. A singular path made of names and indexes only (``$.checkout.id``,
``$.items[0].sku``), which is nearly every path a journey uses, is then walked directly: a
dict lookup per segment instead of the library's generic query (~0.3 us against ~8 us per
response, paid on every request of every intent).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jsonpath
from jsonpath.exceptions import JSONPathError
from jsonpath.selectors import IndexSelector, NameSelector

__all__ = ["MISSING", "BodyPath", "PathSyntaxError", "compile_path"]


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


def compile_path(text: str) -> BodyPath:
    """Compile ``text``; ``PathSyntaxError`` when it is not a JSONPath query."""
    if not text.startswith("$"):
        raise PathSyntaxError(f"expected a JSONPath starting with $, got {text!r}")
    try:
        compiled = jsonpath.compile(text)
    except JSONPathError as exc:
        first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise PathSyntaxError(f"bad JSONPath {text!r}: {first_line}") from None
    keys = _singular_keys(compiled)
    if keys is not None:
        return BodyPath(text, _walker(keys))

    def generic(body: Any) -> Any:
        found = compiled.match(body)
        return MISSING if found is None else found.obj

    return BodyPath(text, generic)


def _singular_keys(compiled: Any) -> tuple[str | int, ...] | None:
    segments = getattr(compiled, "segments", None)
    if segments is None or not compiled.singular_query():
        return None
    keys: list[str | int] = []
    for segment in segments:
        if type(segment).__name__ != "JSONPathChildSegment" or len(segment.selectors) != 1:
            return None
        selector = segment.selectors[0]
        if isinstance(selector, NameSelector):
            keys.append(str(selector.name))
        elif isinstance(selector, IndexSelector):
            keys.append(int(selector.index))
        else:
            return None
    return tuple(keys)


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
