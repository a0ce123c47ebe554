"""The agent buyer's intents: seeded, varied "help me buy ..." requests, and how an attempt ends.

Pure Python (no locust): the engine uses it, unit tests check it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "DEADLINES_MIN",
    "ITEMS",
    "PLACES",
    "RETRYABLE_4XX",
    "Attempt",
    "Intent",
    "json_string",
    "classify",
    "make_intent",
    "user_for",
]

# (item, the specs it comes in): the campaign's milk tea, cinema tickets and flights.
ITEMS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Boya Juexian", ("no-ice", "less-ice", "half-sugar", "hot", "large")),
    ("Jasmine Milk Tea", ("no-ice", "less-sugar", "large", "oat-milk")),
    ("Brown Sugar Boba", ("hot", "less-ice", "extra-pearls")),
    ("Oolong Latte", ("no-sugar", "hot", "large")),
    ("Mango Pomelo Sago", ("less-ice", "large")),
    ("cinema ticket", ("IMAX", "2-seat", "evening")),
    ("flight to Chengdu", ("economy", "window-seat")),
    ("Coconut Latte", ("iced", "hot", "double-shot")),
)
PLACES: tuple[str, ...] = (
    "the office",
    "home",
    "the gym",
    "campus gate 3",
    "the metro exit B",
    "my parents' place",
    "the hospital lobby",
)
DEADLINES_MIN: tuple[int, ...] = (10, 15, 20, 30, 45, 60)
USER_POOL = 1_000_000  # distinct buyers an open-model run draws from


@dataclass(frozen=True, slots=True)
class Intent:
    """One thing one buyer asks the assistant to do."""

    intent_id: str
    user_id: str
    text: str
    item: str = ""
    spec: str = ""
    deadline_min: int = 0
    place: str = ""

    def body(self, order_id: str, *, fields: bool = False) -> str:
        """The gateway's POST /orders body for one attempt: free text, or structured fields."""
        # Built by hand: this runs once per request, and json.dumps of a dict costs more.
        head = (
            f'{{"intent_id":{json_string(self.intent_id)},"order_id":{json_string(order_id)},'
            f'"user_id":{json_string(self.user_id)},'
        )
        if fields:
            return (
                f'{head}"item":{json_string(self.item)},"spec":{json_string(self.spec)},'
                f'"deadline_min":{self.deadline_min},"place":{json_string(self.place)}}}'
            )
        return f'{head}"text":{json_string(self.text)}}}'


def json_string(text: str) -> str:
    """``text`` as a JSON string literal; ids and our vocabulary need no escaping."""
    if text.isascii() and text.isprintable() and '"' not in text and "\\" not in text:
        return f'"{text}"'
    return json.dumps(text)


def _draws(seed: int, key: str) -> int:
    # A 64-bit hash as the intent's dice: far cheaper than seeding a Random per intent.
    digest = hashlib.blake2b(f"{seed}:{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def make_intent(seed: int, key: str, *, run_id: str, user: str | None = None) -> Intent:
    """Intent ``key`` of a run seeded ``seed``: the same seed and key give the same request.

    ``run_id`` only prefixes the ids, so ids (and the order keys made from them) never
    collide with an earlier run's in the stack's ledgers, and each run's buyers come with
    their free-order quota unspent (a stack kept up between runs remembers quotas).
    """
    dice = _draws(seed, key)
    dice, item_no = divmod(dice, len(ITEMS))
    item, specs = ITEMS[item_no]
    dice, spec_no = divmod(dice, len(specs))
    dice, deadline_no = divmod(dice, len(DEADLINES_MIN))
    dice, place_no = divmod(dice, len(PLACES))
    user_id = user if user is not None else f"{run_id}-u{dice % USER_POOL}"
    return Intent(
        intent_id=f"{run_id}-{key}",
        user_id=user_id,
        text=(
            f"help me buy a {specs[spec_no]} {item} within {DEADLINES_MIN[deadline_no]} min"
            f" to {PLACES[place_no]}"
        ),
        item=item,
        spec=specs[spec_no],
        deadline_min=DEADLINES_MIN[deadline_no],
        place=PLACES[place_no],
    )


def user_for(seed: int, user: int, *, run_id: str = "") -> str:
    """The buyer id of closed-model user ``user``: seeded, stable for the run."""
    prefix = f"{run_id}-" if run_id else ""
    return f"{prefix}u{_draws(seed, f'user:{user}') % USER_POOL}"


Told = Literal["ok", "failed", "timeout"]


@dataclass(frozen=True, slots=True)
class Attempt:
    """How one HTTP attempt ended, as the client saw it."""

    told: Told
    step: str | None
    status: int | None
    retryable: bool  # a re-click could help (not a 4xx the buyer cannot fix)


# 4xx answers that a re-click can still fix: timeouts, too-early, shed with Retry-After
# (every journey step judges its failures by this set).
RETRYABLE_4XX = frozenset({408, 425, 429})


def classify(status: int | None, body: bytes | None, *, timed_out: bool) -> Attempt:
    """Turn an HTTP result into an ``Attempt``; ``status`` None means no response arrived."""
    if timed_out:
        return Attempt("timeout", "timeout", None, True)
    if status is None or status == 0:
        return Attempt("failed", "gateway", None, True)
    if status == 200:
        return Attempt("ok", None, 200, False)
    step = "gateway"
    if body:
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict) and isinstance(parsed.get("step"), str):
            step = parsed["step"]
    retryable = status >= 500 or status in RETRYABLE_4XX
    return Attempt("failed", step, status, retryable)
