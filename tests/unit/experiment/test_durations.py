"""Durations: the human forms parse to seconds, and format/parse round-trip."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from chaoskit.experiment.durations import (
    DURATION_PATTERN,
    Duration,
    PositiveDuration,
    format_duration,
    parse_duration,
)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("250ms", 0.25),
        ("90s", 90.0),
        ("5m", 300.0),
        ("1h30m", 5400.0),
        ("1h", 3600.0),
        ("2m15.5s", 135.5),
        ("1m30s250ms", 90.25),
        (" 30s ", 30.0),
        ("30", 30.0),
        ("0", 0.0),
        ("1.5S", 1.5),
        (30, 30.0),
        (0.5, 0.5),
    ],
)
def test_parse_examples(text: str | float, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "text", ["thirty", "", "s", "1ms30s", "30m1h", "1m1m", "5x", "1h30", "inf", "nan", True, None]
)
def test_parse_rejects_non_durations(text: object) -> None:
    with pytest.raises(ValueError, match="expected a duration like"):
        parse_duration(text)


@pytest.mark.parametrize("text", ["-5s", "-5", -1, -0.5])
def test_parse_rejects_negative(text: object) -> None:
    with pytest.raises(ValueError, match=">= 0"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (0.25, "250ms"),
        (1.5, "1.5s"),
        (90, "1m30s"),
        (300, "5m"),
        (5400, "1h30m"),
        (3600 * 26 + 1, "26h1s"),
    ],
)
def test_format_examples(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@given(st.integers(min_value=0, max_value=10 * 24 * 3600 * 1000))
def test_format_then_parse_round_trips_milliseconds(millis: int) -> None:
    seconds = millis / 1000
    text = format_duration(seconds)
    assert parse_duration(text) == pytest.approx(seconds, abs=1e-9)
    assert format_duration(parse_duration(text)) == text  # the format is canonical


@given(
    st.integers(min_value=0, max_value=99),
    st.integers(min_value=0, max_value=59),
    st.integers(min_value=0, max_value=59),
    st.integers(min_value=0, max_value=999),
)
def test_parse_sums_every_unit(hours: int, minutes: int, secs: int, millis: int) -> None:
    parts = [(hours, "h"), (minutes, "m"), (secs, "s"), (millis, "ms")]
    text = "".join(f"{amount}{unit}" for amount, unit in parts if amount) or "0s"
    expected = hours * 3600 + minutes * 60 + secs + millis / 1000
    assert parse_duration(text) == pytest.approx(expected, abs=1e-9)


@given(st.floats(min_value=0, max_value=1e7, allow_nan=False))
def test_bare_numbers_are_seconds(seconds: float) -> None:
    assert parse_duration(seconds) == seconds
    assert parse_duration(repr(seconds)) == seconds


class _Window(BaseModel):
    at: Duration
    length: PositiveDuration


def test_pydantic_types_validate_and_name_the_problem() -> None:
    assert _Window.model_validate({"at": "1m", "length": "250ms"}).length == 0.25
    with pytest.raises(ValidationError) as info:
        _Window.model_validate({"at": "thirty", "length": "0s"})
    errors = {e["loc"][0]: e for e in info.value.errors()}
    assert errors["at"]["type"] == "duration"
    assert errors["at"]["msg"].startswith('expected a duration like "30s"')
    assert errors["length"]["msg"] == "expected a duration > 0"


def test_json_schema_accepts_strings_and_numbers() -> None:
    schema = _Window.model_json_schema()["properties"]["at"]
    assert {option["type"] for option in schema["anyOf"]} == {"string", "number"}


@pytest.mark.parametrize("text", ["250ms", "90s", "5m", "1h30m", "2m15.5s", "30", "1m30s250ms"])
def test_schema_pattern_accepts_what_the_parser_accepts(text: str) -> None:
    assert re.match(DURATION_PATTERN, text)
    parse_duration(text)


@pytest.mark.parametrize("text", ["thirty", "5x", "1h30", "30m1h"])
def test_schema_pattern_refuses_what_the_parser_refuses(text: str) -> None:
    assert not re.match(DURATION_PATTERN, text)
