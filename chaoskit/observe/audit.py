"""The audit: after the load, reconcile what clients were told with the stack's ledgers.

Invariants (each lists the offending order ids, the first 50 in sorted order):
  lost_orders      a client was told ok, but the orders ledger has no live order for that id
  phantom_orders   every attempt with that id was told failed/timeout, yet the order exists
  double_credits   an order this run placed has more than one coupon credit row
  missing_credits  an eligible, live order a client was told ok about has no credit after the drain
  oversold         an item has more reserved than stock (ids are item names here)

Outcome files can hold millions of lines: they are streamed, and only sets of order ids
are kept. The ledgers are streamed too, one record at a time.
"""

from __future__ import annotations

import heapq
import json
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx

from chaoskit.errors import TargetUnreachable
from chaoskit.observe.metrics import AUDIT_METRICS

__all__ = ["AuditResult", "DrainResult", "InvariantResult", "drain", "run_audit"]

AuditStatus = Literal["passed", "failed", "skipped"]
MAX_IDS = 50
_MAX_RECORD_CHARS = 1 << 20  # a ledger record is ~200 chars: more unparsed text means bad JSON
_LEDGER_SERVICES = ("orders", "coupon", "inventory")
# The engine writes {"intent":..,"order_id":..,"told":..}; these read a line ~8x faster
# than json.loads. Lines they do not fit (escapes, other layouts) go through json.loads.
_ORDER_ID = re.compile(r'"order_id"\s*:\s*"([^"\\]*)"')
_TOLD = re.compile(r'"told"\s*:\s*"(ok|failed|timeout)"')


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
class InvariantResult:
    """One invariant: how many violations and the first ids."""

    count: int = 0
    order_ids: tuple[str, ...] = ()

    @classmethod
    def of(cls, ids: Iterable[str]) -> InvariantResult:
        """From every violating id (sorted, the first MAX_IDS kept)."""
        pool = set(ids)
        return cls(count=len(pool), order_ids=tuple(heapq.nsmallest(MAX_IDS, pool)))

    def to_json(self) -> dict[str, Any]:
        """The summary.json form."""
        return {"count": self.count, "order_ids": list(self.order_ids)}


@dataclass(frozen=True, slots=True)
class AuditResult:
    """The audit's verdict; ``to_json`` is summary.json's "audit"."""

    status: AuditStatus
    reason: str = ""
    invariants: dict[str, InvariantResult] = field(default_factory=dict)
    records: int = 0  # outcome lines read
    bad_lines: int = 0  # outcome lines that were not records (e.g. cut off by a kill)

    @property
    def ok(self) -> bool:
        """False only when an invariant was violated."""
        return self.status != "failed"

    def to_json(self) -> dict[str, Any]:
        """{"status", "reason", "invariants": {name: {"count", "order_ids"}}}."""
        return {
            "status": self.status,
            "reason": self.reason,
            "invariants": {name: inv.to_json() for name, inv in self.invariants.items()},
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


def run_audit(
    services: Mapping[str, str], outcomes_dir: Path, *, timeout_s: float = 60.0
) -> AuditResult:
    """Reconcile ``outcomes_dir/*.jsonl`` with the orders, coupon and inventory ledgers.

    Skipped (with the reason) when the target exposes no ledgers or no outcomes were
    recorded. Raises TargetUnreachable when a ledger is there but cannot be read.
    """
    missing = [name for name in _LEDGER_SERVICES if name not in services]
    if missing:
        return AuditResult("skipped", f"the target exposes no ledger for {', '.join(missing)}")
    told = _read_outcomes(outcomes_dir)
    if told.records == 0:
        return AuditResult(
            "skipped",
            f"no outcome records in {outcomes_dir}",
            bad_lines=told.bad_lines,
        )
    timeout = httpx.Timeout(timeout_s, connect=5.0)
    try:
        with httpx.Client(timeout=timeout, trust_env=False) as client:
            invariants = _reconcile(client, services, told)
    except _NoLedger as exc:
        return AuditResult("skipped", str(exc), records=told.records, bad_lines=told.bad_lines)
    failed = any(inv.count for inv in invariants.values())
    return AuditResult(
        "failed" if failed else "passed",
        ""
        if not failed
        else "invariants violated: "
        + ", ".join(name for name, inv in invariants.items() if inv.count),
        invariants,
        records=told.records,
        bad_lines=told.bad_lines,
    )


@dataclass(slots=True)
class _Told:
    ok: set[str] = field(default_factory=set)  # order ids some attempt was told ok for
    attempted: set[str] = field(default_factory=set)  # every order id a client sent
    records: int = 0
    bad_lines: int = 0


def _read_outcomes(outcomes_dir: Path) -> _Told:
    told = _Told()
    if not outcomes_dir.is_dir():
        return told
    for path in sorted(outcomes_dir.glob("*.jsonl")):
        with path.open(encoding="utf-8", errors="replace") as lines:
            for line in lines:
                _read_line(line, told)
    return told


def _read_line(line: str, told: _Told) -> None:
    id_match = _ORDER_ID.search(line)
    told_match = _TOLD.search(line)
    if id_match is not None and told_match is not None:
        order_id, verdict = id_match.group(1), told_match.group(1)
    else:
        if not line.strip():
            return
        try:
            record = json.loads(line)
            order_id, verdict = record["order_id"], record["told"]
        except (ValueError, KeyError, TypeError):
            told.bad_lines += 1
            return
        if not isinstance(order_id, str) or verdict not in ("ok", "failed", "timeout"):
            told.bad_lines += 1
            return
    told.records += 1
    told.attempted.add(order_id)
    if verdict == "ok":
        told.ok.add(order_id)


def _reconcile(
    client: httpx.Client, services: Mapping[str, str], told: _Told
) -> dict[str, InvariantResult]:
    unconfirmed = set(told.ok)  # told ok, no live order seen yet: what is left is lost
    phantoms: list[str] = []
    needs_credit: set[str] = set()
    for order in _ledger_items(client, services["orders"], "orders"):
        order_id = str(order.get("order_id"))
        if order.get("status") != "created":
            continue
        if order_id in told.ok:
            unconfirmed.discard(order_id)
            if order.get("eligible"):
                needs_credit.add(order_id)
        elif order_id in told.attempted:
            phantoms.append(order_id)
    credited: set[str] = set()
    doubles: set[str] = set()
    for credit in _ledger_items(client, services["coupon"], "credits"):
        order_id = str(credit.get("order_id"))
        if order_id not in told.attempted:
            continue  # an earlier run's credit on a long-lived ledger
        if order_id in credited:
            doubles.add(order_id)
        credited.add(order_id)
        needs_credit.discard(order_id)
    oversold = [
        str(item.get("item"))
        for item in _ledger_items(client, services["inventory"], "items")
        if _number(item.get("reserved")) > _number(item.get("stock"))
    ]
    results = {
        "lost_orders": InvariantResult.of(unconfirmed),
        "phantom_orders": InvariantResult.of(phantoms),
        "double_credits": InvariantResult.of(doubles),
        "missing_credits": InvariantResult.of(needs_credit),
        "oversold": InvariantResult.of(oversold),
    }
    return {name: results[name] for name in AUDIT_METRICS}


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) else 0.0


def _ledger_items(client: httpx.Client, base_url: str, key: str) -> Iterator[dict[str, Any]]:
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
            raise ValueError(f"no {marker} array")
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
