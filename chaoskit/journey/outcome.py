"""What a Python journey gets (``JourneyIntent``) and returns (``Outcome``).

    from chaoskit.journey import JourneyIntent, Outcome

    def buy(client, intent: JourneyIntent) -> Outcome:
        answer = client.post("/api/v2/checkout", json={...}, name="checkout",
                             headers={"Idempotency-Key": intent.order_key})
        if answer.status_code != 201:
            return Outcome.failed("checkout")
        return Outcome.ok(order_id=answer.json()["checkout"]["id"])

``client`` is Locust's ``FastHttpSession`` API (``request``, ``get``, ``post`` ...) on the
target's gateway; a request's ``name`` is the step its failure counts under.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["JourneyIntent", "Outcome"]


@dataclass(frozen=True, slots=True, kw_only=True)
class JourneyIntent:
    """One attempt of one buyer's intent: the built-in variables and the journey's own."""

    run_id: str
    intent_id: str
    user_id: str
    attempt: int  # 0 for the first click, 1.. for re-clicks
    order_key: str  # the idempotency key (kept across re-clicks with reuse_idempotency_key)
    text: str
    item: str
    spec: str
    place: str
    deadline_min: int
    vars: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Outcome:
    """How the attempt ended: fulfilled, or failed at a named step."""

    fulfilled: bool
    step: str | None = None  # where it failed (failures.<step>)
    order_id: str | None = None  # the order's id in the team's ledger, when known
    retryable: bool = True  # a re-click could help (the buyer tries again after think time)

    @classmethod
    def ok(cls, *, order_id: str | None = None) -> Outcome:
        """The order was confirmed."""
        return cls(True, None, order_id, False)

    @classmethod
    def failed(cls, step: str, *, order_id: str | None = None, retryable: bool = True) -> Outcome:
        """The order failed at ``step``."""
        return cls(False, step, order_id, retryable)
