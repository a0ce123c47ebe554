"""The audit: after the load, reconcile what clients were told with the stack's ledgers.

Invariants (each lists the offending order ids, the first 50 in sorted order):
  lost_orders        a client was told ok, but the orders ledger has no live order for that id
  phantom_orders     every attempt with that id was told failed/timeout, yet the order exists
  double_credits     an order this run placed has more than one coupon credit row
  missing_credits    an eligible, live order a client was told ok about has no credit, and none
                     is durably queued in the gateway's outbox
  late_credits       a credit landed (or is still queued) later than audit.credit_slo
  lost_entitlements  a free order was granted to an attempt that did not end credited, and the
                     buyer got no other credited free order
  oversold           an item has more reserved than stock (ids are item names here)

The reconciliation itself is ``chaoskit.observe.ledger.reconcile`` over typed records; this
module is the stub stack's adapter: it reads the services' /ledger exports into those records
and what clients were told (``chaoskit.observe.outcomes``). The orders and credits ledgers are
streamed, so millions of records never sit in memory together.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx

from chaoskit.errors import TargetUnreachable
from chaoskit.observe.ledger import (
    ClientOutcomes,
    CreditRecord,
    EntitlementGrant,
    FreeOrderRates,
    InvariantResult,
    InventoryRecord,
    OrderRecord,
    QueuedCredit,
    reconcile,
)
from chaoskit.observe.metrics import AUDIT_METRICS
from chaoskit.observe.outcomes import read_outcomes

__all__ = ["AuditResult", "DrainResult", "InvariantResult", "drain", "run_audit"]

AuditStatus = Literal["passed", "failed", "skipped"]
_MAX_RECORD_CHARS = 1 << 20  # a ledger record is ~200 chars: more unparsed text means bad JSON
_LEDGER_SERVICES = ("orders", "coupon", "inventory")


@dataclass(frozen=True, slots=True)
class DrainResult:
    """How waiting for the stack to settle went."""

    drained: bool
    waited_s: float
    outbox_pending: int | None = None
    inflight: int | None = None
    reason: str = ""

    def to_json(self) -> dict[str, Any]:
        """A plain dict for events and summary."""
        return {
            "drained": self.drained,
            "waited_s": round(self.waited_s, 3),
            "outbox_pending": self.outbox_pending,
            "inflight": self.inflight,
            "reason": self.reason,
        }


@dataclass(frozen=True, slots=True)
class AuditResult:
    """The audit's verdict; ``to_json`` is summary.json's "audit"."""

    status: AuditStatus
    reason: str = ""
    invariants: dict[str, InvariantResult] = field(default_factory=dict)
    records: int = 0  # outcome lines read
    bad_lines: int = 0  # outcome lines that were not records (e.g. cut off by a kill)
    queued_credits: int | None = None  # this run's credits still in the durable outbox
    oldest_queued_age_s: float | None = None  # the oldest of them: order time to the audit
    credit_slo_s: float | None = None
    free_orders: dict[str, FreeOrderRates] = field(default_factory=dict)  # phase|overall ->

    @classmethod
    def judged(
        cls, invariants: dict[str, InvariantResult], told: ClientOutcomes, **found: Any
    ) -> AuditResult:
        """The audit of ``invariants`` (in AUDIT_METRICS order): failed when one is violated."""
        violated = [name for name, inv in invariants.items() if inv.violated]
        return cls(
            "failed" if violated else "passed",
            "invariants violated: " + ", ".join(violated) if violated else "",
            invariants,
            records=told.records,
            bad_lines=told.bad_lines,
            **found,
        )

    @property
    def ok(self) -> bool:
        """False only when an invariant was violated."""
        return self.status != "failed"

    def kpis(self, phase: str = "overall") -> dict[str, float | None]:
        """The ledger KPIs (free_orders_honoured_rate, ..._in_slo_rate) of one phase or overall."""
        rates = self.free_orders.get(phase)
        if rates is None:
            return {}
        return {
            "free_orders_honoured_rate": rates.honoured_rate,
            "free_orders_honoured_in_slo_rate": rates.in_slo_rate,
        }

    def to_json(self) -> dict[str, Any]:
        """{"status", "reason", "invariants": {name: {"count", "order_ids"[, "skipped"]}},
        "queued_credits", "oldest_queued_age_s", "credit_slo_s", "free_orders"}."""
        return {
            "status": self.status,
            "reason": self.reason,
            "invariants": {name: inv.to_json() for name, inv in self.invariants.items()},
            "queued_credits": self.queued_credits,
            "oldest_queued_age_s": None
            if self.oldest_queued_age_s is None
            else round(self.oldest_queued_age_s, 3),
            "credit_slo_s": self.credit_slo_s,
            "free_orders": {
                phase: {
                    "entitled": r.entitled,
                    "honoured": r.honoured,
                    "in_slo": r.in_slo,
                }
                for phase, r in self.free_orders.items()
            },
        }


def drain(
    services: Mapping[str, str],
    *,
    timeout_s: float,
    poll_s: float = 0.5,
    clock: Callable[[], float] = time.monotonic,
) -> DrainResult:
    """Wait (at most ``timeout_s``) until the gateway has no requests in flight and no
    coupon credits left in its outbox."""
    gateway = services.get("gateway")
    if gateway is None:
        return DrainResult(False, 0.0, reason="no gateway /stats on this target")
    start = clock()
    pending: int | None = None
    inflight: int | None = None
    reason = "gateway /stats did not answer"
    with httpx.Client(timeout=httpx.Timeout(min(2.0, max(poll_s, 0.5))), trust_env=False) as c:
        while True:
            try:
                response = c.get(f"{gateway.rstrip('/')}/stats")
                response.raise_for_status()
                gauges = response.json().get("gauges") or {}
                pending = int(gauges.get("outbox_pending", 0))
                inflight = int(gauges.get("inflight", 0))
                if pending == 0 and inflight == 0:
                    return DrainResult(True, clock() - start, pending, inflight)
                reason = f"{pending} credits pending, {inflight} requests in flight"
            except (httpx.HTTPError, ValueError, AttributeError, TypeError) as exc:
                reason = f"gateway /stats did not answer: {exc}"
            waited = clock() - start
            if waited >= timeout_s:
                return DrainResult(False, waited, pending, inflight, f"timed out: {reason}")
            time.sleep(min(poll_s, max(timeout_s - waited, 0.0)))


class _NoLedger(Exception):
    pass


class _NoArray(ValueError):
    pass


def run_audit(
    services: Mapping[str, str],
    outcomes_dir: Path,
    *,
    timeout_s: float = 60.0,
    credit_slo_s: float | None = None,
    phases: Mapping[str, tuple[float, float]] | None = None,
    clock: Callable[[], float] = time.time,
) -> AuditResult:
    """Reconcile ``outcomes_dir/*.jsonl`` with the stack's ledgers.

    ``phases``: phase name -> [start, end) in epoch seconds, for the per-phase KPIs.
    Skipped (with the reason) when the target exposes no orders/coupon/inventory ledgers or
    no outcomes were recorded; the entitlement invariant alone is skipped (with a note) when
    the target names no eligibility ledger. Raises TargetUnreachable when a ledger is there
    but cannot be read.
    """
    missing = [name for name in _LEDGER_SERVICES if name not in services]
    if missing:
        return AuditResult("skipped", f"the target exposes no ledger for {', '.join(missing)}")
    told = read_outcomes(outcomes_dir)
    if told.records == 0:
        return AuditResult(
            "skipped",
            f"no outcome records in {outcomes_dir}",
            bad_lines=told.bad_lines,
        )
    timeout = httpx.Timeout(timeout_s, connect=5.0)
    try:
        with httpx.Client(timeout=timeout, trust_env=False) as client:
            # The queue before the credits: a credit moving from one to the other in between
            # is then seen at least once, never in neither.
            queue, _ = _optional(client, services, "gateway", "outbox", _queued)
            grants, grants_note = _optional(client, services, "eligibility", "grants", _grant)
            found = reconcile(
                told,
                orders=map(_order, _ledger_items(client, services["orders"], "orders")),
                credits=map(_credit, _ledger_items(client, services["coupon"], "credits")),
                queue=queue,
                grants=grants,
                items=map(_item, _ledger_items(client, services["inventory"], "items")),
                credit_slo_s=credit_slo_s,
                now=clock(),
                phases=phases,
                no_grants_note=grants_note,
            )
    except _NoLedger as exc:
        return AuditResult("skipped", str(exc), records=told.records, bad_lines=told.bad_lines)
    return AuditResult.judged(
        {name: found.invariants[name] for name in AUDIT_METRICS},
        told,
        queued_credits=found.queued_credits,
        oldest_queued_age_s=found.oldest_queued_age_s,
        credit_slo_s=credit_slo_s,
        free_orders=found.free_orders,
    )


def _optional(
    client: httpx.Client,
    services: Mapping[str, str],
    service: str,
    key: str,
    convert: Callable[[dict[str, Any]], Any],
) -> tuple[list[Any] | None, str]:
    """A ledger the audit can do without: its records, or None and why."""
    if service not in services:
        return None, f"the target names no {service} ledger ({key})"
    try:
        items = _ledger_items(client, services[service], key, optional=True)
        return [convert(r) for r in items], ""
    except _NoLedger as exc:
        return None, str(exc)
    except _NoArray:
        return None, f"the {service} ledger has no {key} export"


# ---- the stub stack's /ledger records as typed records -------------------------------------


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def _order(raw: dict[str, Any]) -> OrderRecord:
    return OrderRecord(
        order_id=str(raw.get("order_id")),
        user_id=str(raw.get("user_id")),
        created_at=_number(raw.get("created_at")),
        eligible=bool(raw.get("eligible")),
        live=raw.get("status") == "created",
    )


def _credit(raw: dict[str, Any]) -> CreditRecord:
    return CreditRecord(
        order_id=str(raw.get("order_id")),
        order_time=_number(raw.get("order_time")),
        credited_at=_number(raw.get("credited_at")),
    )


def _queued(raw: dict[str, Any]) -> QueuedCredit:
    return QueuedCredit(
        order_id=str(raw.get("order_id")),
        order_time=_number(raw.get("order_time")),
        attempts=int(_number(raw.get("attempts"))),
    )


def _grant(raw: dict[str, Any]) -> EntitlementGrant:
    released = raw.get("released_at")
    return EntitlementGrant(
        order_id=str(raw.get("order_id")),
        user_id=str(raw.get("user_id")),
        granted_at=_number(raw.get("granted_at")),
        released_at=None if released is None else _number(released),
    )


def _item(raw: dict[str, Any]) -> InventoryRecord:
    return InventoryRecord(
        item=str(raw.get("item")),
        stock=_number(raw.get("stock")),
        reserved=_number(raw.get("reserved")),
    )


def _ledger_items(
    client: httpx.Client, base_url: str, key: str, *, optional: bool = False
) -> Iterator[dict[str, Any]]:
    """Stream the records of ``GET base_url/ledger``'s ``key`` array."""
    url = f"{base_url.rstrip('/')}/ledger"
    try:
        with client.stream("GET", url) as response:
            if response.status_code in (404, 405, 501):
                raise _NoLedger(f"{url} exposes no ledger (HTTP {response.status_code})")
            if response.status_code != 200:
                raise TargetUnreachable(f"{url} answered HTTP {response.status_code}")
            try:
                yield from iter_json_array(response.iter_text(), key)
            except _NoArray:
                if optional:
                    raise
                raise TargetUnreachable(f"{url} sent a ledger without a {key!r} array") from None
            except ValueError as exc:
                raise TargetUnreachable(
                    f"{url} sent a ledger that is not valid JSON: {exc}"
                ) from exc
    except httpx.HTTPError as exc:
        raise TargetUnreachable(f"cannot read {url}: {exc}") from exc


def iter_json_array(chunks: Iterable[str], key: str) -> Iterator[dict[str, Any]]:
    """Yield the objects of the array under ``key`` in a JSON document arriving in chunks."""
    decoder = json.JSONDecoder()
    source = iter(chunks)
    marker = json.dumps(key)
    buf = ""
    while True:
        at = buf.find(marker)
        bracket = buf.find("[", at + len(marker)) if at >= 0 else -1
        if bracket >= 0:
            buf = buf[bracket + 1 :]
            break
        chunk = next(source, None)
        if chunk is None:
            raise _NoArray(f"no {marker} array")
        buf += chunk
    pos = 0
    while True:
        while pos < len(buf) and buf[pos] in " \t\r\n,":
            pos += 1
        if pos < len(buf) and buf[pos] == "]":
            return
        if pos < len(buf):
            try:
                item, pos = decoder.raw_decode(buf, pos)
            except json.JSONDecodeError:
                pass  # the record is cut by the chunk boundary: read more
            else:
                if isinstance(item, dict):
                    yield item
                continue
        chunk = next(source, None)
        if chunk is None:
            raise ValueError(f"the {marker} array ends early")
        if len(buf) - pos > _MAX_RECORD_CHARS:
            raise ValueError(f"a record in {marker} is not valid JSON")
        buf = buf[pos:] + chunk
        pos = 0
