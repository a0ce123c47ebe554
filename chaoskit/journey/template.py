"""``{{var}}`` templates: parsed and checked once per run, rendered per request by joining parts.

A template is compiled into a tuple of literal strings and ``(name, encode)`` references;
rendering looks each name up in the attempt's values and joins. Nothing is parsed per
request. A JSON body is compiled the same way, into the exact bytes ``json.dumps`` would give
with compact separators: a string that is only ``"{{qty}}"`` takes the value's JSON type
(a number stays a number), a string with text around a reference gets the value escaped
inside the quotes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import quote, urlencode

__all__ = [
    "FormTemplate",
    "Template",
    "TemplateSyntaxError",
    "compile_form",
    "compile_json",
    "compile_text",
    "json_string",
    "json_value",
    "template_names",
]

Encode = Callable[[Any], str]
Part = str | tuple[str, Encode]

_REF = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_WHOLE = re.compile(r"^\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}$")
_URL_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~")


class TemplateSyntaxError(ValueError):
    """A ``{{`` that does not open a ``{{name}}`` reference."""


def json_string(text: str) -> str:
    """``text`` as a JSON string literal; ids and our vocabulary need no escaping."""
    if text.isascii() and text.isprintable() and '"' not in text and "\\" not in text:
        return f'"{text}"'
    return json.dumps(text)


def json_value(value: Any) -> str:
    """Any variable's value as JSON (a string quoted, a number bare)."""
    if type(value) is str:
        return json_string(value)
    if value is True:
        return "true"
    if value is False:
        return "false"
    if type(value) is int:
        return str(value)
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _in_json_string(value: Any) -> str:
    return json_string(value if type(value) is str else str(value))[1:-1]


def _text(value: Any) -> str:
    return value if type(value) is str else str(value)


def _path_segment(value: Any) -> str:
    text = value if type(value) is str else str(value)
    if _URL_SAFE.issuperset(text):
        return text
    return quote(text, safe="")


def _parse(text: str, encode: Encode) -> list[Part]:
    parts: list[Part] = []
    at = 0
    for match in _REF.finditer(text):
        if match.start() > at:
            parts.append(text[at : match.start()])
        parts.append((match.group(1), encode))
        at = match.end()
    tail = text[at:]
    if tail:
        parts.append(tail)
    for part in parts:
        if isinstance(part, str) and "{{" in part:
            raise TemplateSyntaxError(
                f"{text!r}: '{{{{' must open a reference like {{{{order_key}}}}"
            )
    return parts


def _merge(parts: Iterable[Part]) -> tuple[Part, ...]:
    merged: list[Part] = []
    for part in parts:
        if isinstance(part, str) and merged and isinstance(merged[-1], str):
            merged[-1] += part
        elif part != "":
            merged.append(part)
    return tuple(merged)


class Template:
    """A compiled template: ``render(values)`` is one generated f-string over its parts."""

    __slots__ = ("names", "parts", "render", "source")

    def __init__(self, parts: Iterable[Part], source: str) -> None:
        self.parts = _merge(parts)
        self.source = source
        self.names = tuple(dict.fromkeys(p[0] for p in self.parts if not isinstance(p, str)))
        self.render: Callable[[Mapping[str, Any]], str] = _renderer(self.parts)
        """The text for one attempt; every name must be in ``values``."""

    def __repr__(self) -> str:
        return f"Template({self.source!r})"


def _renderer(parts: tuple[Part, ...]) -> Callable[[Mapping[str, Any]], str]:
    """One function per template, written once: the hot path is a single f-string.

    Literals and encoders are bound as names (never pasted into the source) and variable
    names are validated identifiers, so the generated code holds nothing from the file.
    """
    if not parts:
        return lambda values: ""
    if len(parts) == 1 and isinstance(parts[0], str):
        constant = parts[0]
        return lambda values: constant
    scope: dict[str, Any] = {}
    pieces: list[str] = []
    for index, part in enumerate(parts):
        if isinstance(part, str):
            scope[f"_l{index}"] = part
            pieces.append(f"{{_l{index}}}")
        else:
            name, encode = part
            if not name.isidentifier():
                raise TemplateSyntaxError(f"{name!r} is not a variable name")
            scope[f"_e{index}"] = encode
            pieces.append(f"{{_e{index}(values[{name!r}])}}")
    # repr() of an identifier is single-quoted: the f-string itself uses double quotes.
    source = f'def render(values):\n    return f"{"".join(pieces)}"\n'
    exec(compile(source, "<journey template>", "exec"), scope)  # noqa: S102 - see docstring
    render: Callable[[Mapping[str, Any]], str] = scope["render"]
    return render


def compile_text(text: str, *, path: bool = False) -> Template:
    """A text template (a header, a raw body); ``path=True`` URL-quotes each value."""
    return Template(_parse(text, _path_segment if path else _text), text)


def compile_json(value: Any) -> Template:
    """A JSON body (dicts, lists, scalars, templates in strings) as one template."""
    return Template(_json_parts(value), json.dumps(value, ensure_ascii=False))


def _json_parts(value: Any) -> list[Part]:
    if isinstance(value, dict):
        parts: list[Part] = ["{"]
        for index, (key, item) in enumerate(value.items()):
            parts.append(("," if index else "") + json_string(str(key)) + ":")
            parts.extend(_json_parts(item))
        parts.append("}")
        return parts
    if isinstance(value, list):
        parts = ["["]
        for index, item in enumerate(value):
            if index:
                parts.append(",")
            parts.extend(_json_parts(item))
        parts.append("]")
        return parts
    if isinstance(value, str):
        whole = _WHOLE.match(value)
        if whole:
            return [(whole.group(1), json_value)]
        if "{{" not in value:
            return [json_string(value)]
        inner = [
            json_string(part)[1:-1] if isinstance(part, str) else part
            for part in _parse(value, _in_json_string)
        ]
        return ['"', *inner, '"']
    return [json_value(value)]


class FormTemplate:
    """A form body: each value a text template, urlencoded per request."""

    def __init__(self, fields: Mapping[str, str]) -> None:
        self.fields = {name: compile_text(text) for name, text in fields.items()}
        self.names = tuple(dict.fromkeys(n for t in self.fields.values() for n in t.names))

    def render(self, values: Mapping[str, Any]) -> str:
        return urlencode({name: t.render(values) for name, t in self.fields.items()})


def compile_form(fields: Mapping[str, str]) -> FormTemplate:
    """An ``application/x-www-form-urlencoded`` body."""
    return FormTemplate(fields)


def template_names(value: Any) -> list[tuple[tuple[str | int, ...], str]]:
    """Every ``(location, name)`` a value's templates refer to (dicts and lists walked)."""
    found: list[tuple[tuple[str | int, ...], str]] = []

    def walk(node: Any, loc: tuple[str | int, ...]) -> None:
        if isinstance(node, str):
            for match in _REF.finditer(node):
                found.append((loc, match.group(1)))
        elif isinstance(node, dict):
            for key, item in node.items():
                walk(item, (*loc, str(key)))
        elif isinstance(node, list):
            for index, item in enumerate(node):
                walk(item, (*loc, index))

    walk(value, ())
    return found
