"""The audit's reconciliation as pure functions over typed ledger records.

Any ledger reader (the stub stack's /ledger exports, a team's HTTP export or SQL query) turns
what it reads into these records; the functions here do not care where they came from.
Records that arrive as streams (orders, credits) are consumed once, in the order
``reconcile`` documents, so millions of them never sit in memory together.

Times are Unix epoch seconds (wall clock), as ledgers store them.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Container, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "MAX_IDS",
    "ClientOutcomes",
    "CreditRecord",
    "EntitlementGrant",
    "FreeOrderRates",
    "InventoryRecord",
    "InvariantResult",
    "OrderRecord",
    "QueuedCredit",
    "Reconciliation",
    "free_orders_honoured",
    "late_credits",
    "lost_entitlements",
    "missing_credits",
    "reconcile",
]

MAX_IDS = 50


@dataclass(frozen=True, slots=True)
class OrderRecord:
    """One row of the orders ledger."""

    order_id: str
    user_id: str
    created_at: float
    """When the order was created (epoch s)."""
    eligible: bool
    """The order was granted a free order (so it is owed a coupon credit)."""
    live: bool
    """False once the order was cancelled (a failed attempt's compensation)."""


@dataclass(frozen=True, slots=True)
class CreditRecord:
    """One row of the coupon/subsidy ledger: a credit that landed."""

    order_id: str
    order_time: float
    """When the credited order was created (epoch s)."""
    credited_at: float
    """When the credit was written (epoch s)."""


@dataclass(frozen=True, slots=True)
class QueuedCredit:
    """A credit owed and durably queued (an outbox row), not yet landed."""

    order_id: str
    order_time: float
    """When the order was created (epoch s): its age is how late the credit already is."""
    attempts: int = 0
    """Delivery attempts so far."""


@dataclass(frozen=True, slots=True)
class EntitlementGrant:
    """One free order granted to a buyer for one order attempt (the entitlement ledger)."""

    order_id: str
    user_id: str
    granted_at: float
    """When eligibility granted it (epoch s)."""
    released_at: float | None = None
    """When it was given back to the buyer (the compensating design), None if never."""


@dataclass(frozen=True, slots=True)
class InventoryRecord:
    """One item of the inventory ledger."""

    item: str
    stock: float
    reserved: float


@dataclass(slots=True)
class ClientOutcomes:
    """What clients were told, by order id (from the load engine's outcome files)."""

    ok: set[str] = field(default_factory=set)
    """Order ids some attempt was told succeeded."""
    attempted: set[str] = field(default_factory=set)
    """Every order id a client sent: this run's orders on a long-lived ledger."""
    records: int = 0
    """Outcome lines read."""
    bad_lines: int = 0
    """Outcome lines that were not records (e.g. cut off by a kill)."""
    ok_at: dict[str, float] = field(default_factory=dict)
    """When each order id was first told ok (epoch s); read only when asked for."""


@dataclass(frozen=True, slots=True)
class InvariantResult:
    """One invariant: how many violations and the first ids, or why it was not computed."""

    count: int = 0
    order_ids: tuple[str, ...] = ()
    skipped: str | None = None
    """Why the invariant could not be computed (its count then means nothing)."""

    @classmethod
    def of(cls, ids: Iterable[str]) -> InvariantResult:
        """From every violating id (sorted, the first MAX_IDS kept)."""
        pool = set(ids)
        return cls(count=len(pool), order_ids=tuple(heapq.nsmallest(MAX_IDS, pool)))

    @classmethod
    def skip(cls, reason: str) -> InvariantResult:
        """Not computed, and why: never shown as passed."""
        return cls(skipped=reason)

    @property
    def violated(self) -> bool:
        """Computed and at least one violation."""
        return self.skipped is None and self.count > 0

    def to_json(self) -> dict[str, Any]:
        """The summary.json form."""
        out: dict[str, Any] = {"count": self.count, "order_ids": list(self.order_ids)}
        if self.skipped is not None:
            out["skipped"] = self.skipped
        return out


@dataclass(frozen=True, slots=True)
class FreeOrderRates:
    """Entitled buyers and how many of them had their free order honoured."""

    entitled: int = 0
    """Distinct buyers granted a free order."""
    honoured: int = 0
    """... whose free order was credited or is durably queued."""
    in_slo: int | None = None
    """... whose free order was credited within the credit SLO (None: no SLO set)."""

    @property
    def honoured_rate(self) -> float | None:
        """honoured / entitled, None without entitled buyers."""
        return self.honoured / self.entitled if self.entitled else None

    @property
    def in_slo_rate(self) -> float | None:
        """in_slo / entitled, None without entitled buyers or SLO."""
        if self.in_slo is None or not self.entitled:
            return None
        return self.in_slo / self.entitled


@dataclass(frozen=True, slots=True)
class Reconciliation:
    """Everything ``reconcile`` found: invariants, the outbox queue and the free-order KPIs."""

    invariants: dict[str, InvariantResult]
    queued_credits: int | None
    """Credits of this run still durably queued (None: the target exposes no queue)."""
    oldest_queued_age_s: float | None
    """Age of the oldest of them at the audit (order time to now)."""
    free_orders: dict[str, FreeOrderRates]
    """By phase name, plus "overall"; empty when the target exposes no entitlement ledger."""


def missing_credits(
    needs_credit: Iterable[str],
    credited: Container[str],
    queued: Container[str],
) -> InvariantResult:
    """Orders owed a credit that is neither credited nor durably queued."""
    return InvariantResult.of(o for o in needs_credit if o not in credited and o not in queued)


def late_credits(
    credited: Mapping[str, tuple[float, float]],
    queued: Mapping[str, QueuedCredit],
    *,
    slo_s: float,
    now: float,
) -> InvariantResult:
    """Credits that landed more than ``slo_s`` after their order, or are queued for longer.

    ``credited`` maps order id -> (order time, credit time): the first credit of each order.
    """
    late = [o for o, (ordered, at) in credited.items() if at - ordered > slo_s]
    late.extend(o for o, q in queued.items() if o not in credited and now - q.order_time > slo_s)
    return InvariantResult.of(late)


def lost_entitlements(
    grants: Iterable[EntitlementGrant], honoured: Container[str]
) -> InvariantResult:
    """Free orders granted to an attempt that did not end honoured, for buyers with none honoured.

    ``honoured``: order ids whose credit landed or is durably queued. A released grant was
    given back to the buyer, so it is not lost. Ids are the lost grants' order ids.
    """
    unhonoured: dict[str, list[str]] = {}
    happy: set[str] = set()
    for grant in grants:
        if grant.order_id in honoured:
            happy.add(grant.user_id)
        elif grant.released_at is None:
            unhonoured.setdefault(grant.user_id, []).append(grant.order_id)
    return InvariantResult.of(
        order_id
        for user, order_ids in unhonoured.items()
        if user not in happy
        for order_id in order_ids
    )


def free_orders_honoured(
    grants: Iterable[EntitlementGrant],
    credited: Mapping[str, tuple[float, float]],
    queued: Container[str],
    *,
    slo_s: float | None,
    phases: Mapping[str, tuple[float, float]] | None = None,
) -> dict[str, FreeOrderRates]:
    """free_orders_honoured rates overall and per phase.

    A buyer is counted in the phase (epoch-second span [start, end)) of their first grant.
    Honoured: some grant's order credited or durably queued; in SLO: some grant's order
    credited within ``slo_s`` of its order time.
    """
    first_grant: dict[str, float] = {}
    honoured: set[str] = set()
    in_slo: set[str] = set()
    for grant in grants:
        user = grant.user_id
        first_grant[user] = min(first_grant.get(user, math.inf), grant.granted_at)
        credit = credited.get(grant.order_id)
        if credit is not None or grant.order_id in queued:
            honoured.add(user)
        if credit is not None and slo_s is not None and credit[1] - credit[0] <= slo_s:
            in_slo.add(user)

    def rates(users: Iterable[str]) -> FreeOrderRates:
        pool = list(users)
        return FreeOrderRates(
            entitled=len(pool),
            honoured=sum(1 for u in pool if u in honoured),
            in_slo=None if slo_s is None else sum(1 for u in pool if u in in_slo),
        )

    out = {"overall": rates(first_grant)}
    for name, (start, end) in (phases or {}).items():
        out[name] = rates(u for u, t in first_grant.items() if start <= t < end)
    return out


def reconcile(
    told: ClientOutcomes,
    *,
    orders: Iterable[OrderRecord],
    credits: Iterable[CreditRecord],
    queue: Iterable[QueuedCredit] | None,
    grants: Iterable[EntitlementGrant] | None,
    items: Iterable[InventoryRecord],
    credit_slo_s: float | None,
    now: float,
    phases: Mapping[str, tuple[float, float]] | None = None,
    no_grants_note: str = "the target exposes no entitlement ledger",
) -> Reconciliation:
    """Every invariant; reads ``orders``, then ``credits``, ``queue``, ``grants``, ``items``.

    ``queue`` None: no durable queue is known, so an owed credit not landed is missing.
    ``grants`` None: the entitlement invariant and KPIs are skipped with ``no_grants_note``.
    """
    unconfirmed = set(told.ok)  # told ok, no live order seen yet: what is left is lost
    phantoms: list[str] = []
    needs_credit: set[str] = set()
    for order in orders:
        if not order.live:
            continue
        if order.order_id in told.ok:
            unconfirmed.discard(order.order_id)
            if order.eligible:
                needs_credit.add(order.order_id)
        elif order.order_id in told.attempted:
            phantoms.append(order.order_id)
    credited: dict[str, tuple[float, float]] = {}
    doubles: set[str] = set()
    for credit in credits:
        if credit.order_id not in told.attempted:
            continue  # an earlier run's credit on a long-lived ledger
        if credit.order_id in credited:
            doubles.add(credit.order_id)
        else:
            credited[credit.order_id] = (credit.order_time, credit.credited_at)
    waiting: dict[str, QueuedCredit] = {}
    if queue is not None:
        waiting = {q.order_id: q for q in queue if q.order_id in told.attempted}
    invariants = {
        "lost_orders": InvariantResult.of(unconfirmed),
        "phantom_orders": InvariantResult.of(phantoms),
        "double_credits": InvariantResult.of(doubles),
        "missing_credits": missing_credits(needs_credit, credited, waiting),
    }
    if credit_slo_s is None:
        invariants["late_credits"] = InvariantResult.skip("no audit.credit_slo in the experiment")
    else:
        invariants["late_credits"] = late_credits(credited, waiting, slo_s=credit_slo_s, now=now)
    free_orders: dict[str, FreeOrderRates] = {}
    if grants is None:
        invariants["lost_entitlements"] = InvariantResult.skip(no_grants_note)
    else:
        ours = [g for g in grants if g.order_id in told.attempted]
        honoured = credited.keys() | waiting.keys()
        invariants["lost_entitlements"] = lost_entitlements(ours, honoured)
        free_orders = free_orders_honoured(
            ours, credited, waiting, slo_s=credit_slo_s, phases=phases
        )
    invariants["oversold"] = InvariantResult.of(i.item for i in items if i.reserved > i.stock)
    oldest = min((q.order_time for q in waiting.values()), default=None)
    return Reconciliation(
        invariants=invariants,
        queued_credits=None if queue is None else len(waiting),
        oldest_queued_age_s=None if oldest is None else max(0.0, now - oldest),
        free_orders=free_orders,
    )
