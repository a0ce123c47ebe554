"""Deterministic intent parsing: free text -> item, spec, deadline minutes, place."""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Intent", "ParseError", "burn", "intent_from_fields", "parse_intent"]


class ParseError(ValueError):
    """The intent cannot be understood; the message says what is missing."""


@dataclass(frozen=True, slots=True)
class Intent:
    """What the user asked for."""

    item: str
    spec: str  # comma-separated modifiers ("no-ice,half-sugar"), "" for none
    deadline_min: int | None
    place: str


_DEADLINE = re.compile(
    r"\b(?:within|in|under)\s+(\d+(?:\.\d+)?)\s*(minutes?|mins?|m|hours?|hrs?|h)\b", re.I
)
_VERB = re.compile(r"\b(?:buy|order|get|book)\b\s*", re.I)
_PLACE = re.compile(r"\b(?:to|at)\s+(?:the\s+|my\s+)?([\w' -]+?)\s*$", re.I)
_COUNT = re.compile(r"^(?:a|an|one|some|the|1)\s+", re.I)
_SPEC = re.compile(
    r"^((?:no|less|half|extra|more|double)[- ]\w+|hot|iced|cold|large|medium|small|big)[\s,]+",
    re.I,
)
_TRAILING = re.compile(r"[\s,.!?;:]+$")


def parse_intent(text: str) -> Intent:
    """Parse e.g. "help me buy a no-ice Boya Juexian within 15 min to the office"."""
    work = _TRAILING.sub("", " ".join(text.split()))
    deadline: int | None = None
    match = _DEADLINE.search(work)
    if match:
        amount = float(match.group(1))
        hours = match.group(2).lower().startswith("h")
        deadline = round(amount * 60) if hours else round(amount)
        work = _TRAILING.sub("", work[: match.start()] + work[match.end() :])
        work = " ".join(work.split())
    verb = _VERB.search(work)
    if verb is None:
        raise ParseError('text: expected "buy <item>" (or order/get/book), got none')
    rest = work[verb.end() :]
    place = ""
    match = _PLACE.search(rest)
    if match:
        place = match.group(1).lower()
        rest = rest[: match.start()]
    rest = _COUNT.sub("", rest.strip())
    specs: list[str] = []
    while True:
        match = _SPEC.match(rest)
        if match is None:
            break
        specs.append(match.group(1).lower().replace(" ", "-"))
        rest = rest[match.end() :]
    item = _TRAILING.sub("", rest.strip())
    if not item:
        raise ParseError("text: expected an item after the verb, got none")
    return Intent(item=item, spec=",".join(specs), deadline_min=deadline, place=place or "home")


def intent_from_fields(body: dict[str, object]) -> Intent:
    """The structured alternative: {"item","spec","deadline_min","place"} (item required)."""
    item = body.get("item")
    if not isinstance(item, str) or not item.strip():
        raise ParseError(f"item: expected a non-empty string, got {item!r}")
    spec = body.get("spec", "")
    if not isinstance(spec, str):
        raise ParseError(f"spec: expected a string, got {spec!r}")
    deadline = body.get("deadline_min")
    if deadline is not None and (
        not isinstance(deadline, int) or isinstance(deadline, bool) or deadline <= 0
    ):
        raise ParseError(f"deadline_min: expected a positive integer, got {deadline!r}")
    place = body.get("place", "home")
    if not isinstance(place, str) or not place.strip():
        raise ParseError(f"place: expected a non-empty string, got {place!r}")
    return Intent(item=item.strip(), spec=spec, deadline_min=deadline, place=place.strip().lower())


def burn(units: int) -> int:
    """Deterministic CPU work standing in for language understanding (~1 us per unit)."""
    h = units
    for i in range(units * 11):
        h = (h * 1103515245 + i) & 0x7FFFFFFF
    return h
