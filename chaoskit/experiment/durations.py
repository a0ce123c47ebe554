"""Human durations ("250ms", "90s", "5m", "1h30m", or bare seconds) <-> float seconds."""

from __future__ import annotations

import math
import re
from typing import Annotated, Any

from pydantic import BeforeValidator, WithJsonSchema
from pydantic_core import PydanticCustomError

__all__ = [
    "DURATION_PATTERN",
    "Duration",
    "PositiveDuration",
    "format_duration",
    "format_duration_approx",
    "parse_duration",
]

_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
_NUMBER = r"\d+(?:\.\d+)?|\.\d+"
# Units must come largest first and at most once each: "1h30m", "2m15.5s", "250ms".
_DURATION_RE = re.compile(
    rf"^(?:(?P<h>{_NUMBER})h)?(?:(?P<m>{_NUMBER})m(?!s))?(?:(?P<s>{_NUMBER})s)?"
    rf"(?:(?P<ms>{_NUMBER})ms)?$"
)
DURATION_PATTERN = (
    r"^\s*(\d+(\.\d+)?|(\d+(\.\d+)?h)?(\d+(\.\d+)?m)?(\d+(\.\d+)?s)?(\d+(\.\d+)?ms)?)\s*$"
)
_EXPECTED = 'expected a duration like "30s", "250ms", "5m" or "1h30m"'


def parse_duration(value: object) -> float:
    """Seconds in ``value``: a number of seconds or a string such as "1h30m"; ValueError if not."""
    if isinstance(value, bool):  # bool is an int; `for: yes` is a mistake, not one second
        raise ValueError(_EXPECTED)
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().lower()
        if text.startswith("-") and text[1:2].isdigit():
            raise ValueError("expected a duration >= 0")
        try:
            seconds = float(text)
        except ValueError:
            match = _DURATION_RE.match(text)
            if not text or match is None or not any(match.groupdict().values()):
                raise ValueError(_EXPECTED) from None
            seconds = sum(
                float(amount) * _UNIT_SECONDS[unit]
                for unit, amount in match.groupdict().items()
                if amount is not None
            )
    else:
        raise ValueError(_EXPECTED)
    if not math.isfinite(seconds):
        raise ValueError(_EXPECTED)
    if seconds < 0:
        raise ValueError("expected a duration >= 0")
    return seconds


def _number(value: float) -> str:
    """``value`` without a trailing ".0" and without float noise beyond microseconds."""
    text = f"{round(value, 6):.6f}".rstrip("0").rstrip(".")
    return text or "0"


def format_duration(seconds: float) -> str:
    """The shortest human form of ``seconds``: 90 -> "1m30s", 0.25 -> "250ms", 5400 -> "1h30m"."""
    if not math.isfinite(seconds):
        return "∞" if seconds > 0 else "?"
    if seconds < 0:
        return "-" + format_duration(-seconds)
    if seconds == 0:
        return "0s"
    if seconds < 1:
        return f"{_number(seconds * 1000)}ms"
    whole_minutes, rest = divmod(seconds, 60.0)
    hours, minutes = divmod(int(whole_minutes), 60)
    parts = []
    if hours:
        parts.append(f"{hours}h")
    if minutes:
        parts.append(f"{minutes}m")
    if round(rest, 6) > 0:
        parts.append(f"{_number(rest)}s")
    return "".join(parts) or "0s"


def format_duration_approx(seconds: float) -> str:
    """``seconds`` rounded the way a person reads a length: 34.989201 -> "35s", 0.2504 -> "250ms".

    For lengths that come out of arithmetic (a viral curve's growth, a scaled replay); the
    lengths a user typed print exactly with format_duration.
    """
    if not math.isfinite(seconds):
        return format_duration(seconds)
    size = abs(seconds)
    if size < 1:
        grain = 0.001
    elif size < 3600:
        grain = 0.1
    else:
        grain = 1.0
    return format_duration(round(seconds / grain) * grain)


def _validate(value: Any) -> float:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise PydanticCustomError("duration", str(exc)) from None


def _validate_positive(value: Any) -> float:
    seconds = _validate(value)
    if seconds <= 0:
        raise PydanticCustomError("duration", "expected a duration > 0")
    return seconds


_SCHEMA = {
    "anyOf": [
        {"type": "string", "pattern": DURATION_PATTERN, "examples": ["30s", "250ms", "1h30m"]},
        {"type": "number", "minimum": 0},
    ],
    "description": 'A duration: "250ms", "90s", "5m", "1h30m", or a number of seconds.',
}

Duration = Annotated[float, BeforeValidator(_validate), WithJsonSchema(_SCHEMA)]
"""Seconds (float >= 0) read from a human duration."""

PositiveDuration = Annotated[float, BeforeValidator(_validate_positive), WithJsonSchema(_SCHEMA)]
"""Like Duration, but zero is refused (a window or period that must last)."""
