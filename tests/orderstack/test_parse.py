"""Intent parsing: deterministic, and the failures name what is missing."""

from __future__ import annotations

import pytest

from orderstack.parse import Intent, ParseError, burn, intent_from_fields, parse_intent


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "help me buy a no-ice Boya Juexian within 15 min to the office",
            Intent(item="Boya Juexian", spec="no-ice", deadline_min=15, place="office"),
        ),
        (
            "Please order a large half-sugar oat latte to my home.",
            Intent(item="oat latte", spec="large,half-sugar", deadline_min=None, place="home"),
        ),
        (
            "get an iced americano at the gym within 30 minutes",
            Intent(item="americano", spec="iced", deadline_min=30, place="gym"),
        ),
        (
            "book two cinema tickets in 2 hours",
            Intent(item="two cinema tickets", spec="", deadline_min=120, place="home"),
        ),
        (
            "buy a no ice   Boya Juexian to the office within 1.5 h",
            Intent(item="Boya Juexian", spec="no-ice", deadline_min=90, place="office"),
        ),
    ],
)
def test_parse_free_text(text: str, expected: Intent) -> None:
    assert parse_intent(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [("hello there", 'expected "buy <item>"'), ("help me buy  within 5 min", "expected an item")],
)
def test_parse_refuses_text_without_an_item(text: str, message: str) -> None:
    with pytest.raises(ParseError, match=message):
        parse_intent(text)


def test_structured_intent_and_its_validation() -> None:
    got = intent_from_fields({"item": "Boya Juexian", "spec": "no-ice", "deadline_min": 15})
    assert got == Intent(item="Boya Juexian", spec="no-ice", deadline_min=15, place="home")
    with pytest.raises(ParseError, match="item: expected a non-empty string"):
        intent_from_fields({"spec": "no-ice"})
    with pytest.raises(ParseError, match="deadline_min: expected a positive integer, got -3"):
        intent_from_fields({"item": "tea", "deadline_min": -3})


def test_parse_cost_is_deterministic_cpu_work() -> None:
    assert burn(50) == burn(50)
    assert burn(50) != burn(51)
    assert burn(0) == 0
