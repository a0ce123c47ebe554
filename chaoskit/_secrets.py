"""Secrets in chaoskit's input files: header values and DSNs name ``${ENV_VAR}``, never a value.

A file holds only the template. ``expand`` reads the value from the environment when a request
is made, so no file chaoskit writes and no message it prints carries the secret; every
``headers:`` key (the target's, a ledger export's, Prometheus') is checked by ``header_problem``
and expanded by ``expand_headers``: one code path for all of them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from chaoskit.errors import InputError

__all__ = ["HEADER_NAME", "env_refs", "expand", "expand_headers", "header_problem"]

_ENV_REF = re.compile(r"\$\{([^}]*)\}")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
HEADER_NAME = r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$"  # an RFC 9110 token


def env_refs(value: str) -> list[str]:
    """The environment variable names a value refers to as ``${NAME}``."""
    return _ENV_REF.findall(value)


def header_problem(name: str, value: str) -> str:
    """Why ``name: value`` is not a header template ('' when it is one); never quotes the value."""
    if not re.match(HEADER_NAME, name):
        return f"{name!r} is not a valid HTTP header name"
    if any(ch in value for ch in "\r\n"):
        return "a header value must be one line"
    if not all(_ENV_NAME.match(ref) for ref in env_refs(value)):
        return "${...} must name an environment variable, like ${STAGING_TOKEN}"
    return ""


def expand(value: str, environ: Mapping[str, str], *, needed_by: str) -> str:
    """``${NAME}`` replaced by its value in ``environ``; unset: InputError naming it (exit 2)."""

    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in environ:
            raise InputError(f"environment variable {name} is not set ({needed_by} needs it)")
        return environ[name]

    return _ENV_REF.sub(one, value)


def expand_headers(
    headers: Mapping[str, str], environ: Mapping[str, str], *, needed_by: str
) -> dict[str, str]:
    """Header templates with their ``${NAME}``s filled in, for one request's client."""
    return {name: expand(value, environ, needed_by=needed_by) for name, value in headers.items()}
