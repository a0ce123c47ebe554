"""Every metric chaoskit knows, named the same in YAML, journal, summary, dashboard, report."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = [
    "AUDIT_METRICS",
    "FAILURE_STEPS",
    "LEDGER_KPIS",
    "METRICS",
    "SERIES_METRICS",
    "MetricInfo",
    "is_after_run",
    "is_known_metric",
]

Better = Literal["higher", "lower"] | None
Source = Literal["client", "server", "audit"]

# Where in the order chain an intent can fail: the dependencies in call order, plus the
# gateway's own steps (parse, shed/breaker) and the client giving up on a slow answer.
FAILURE_STEPS: tuple[str, ...] = (
    "parse",
    "inventory",
    "lbs",
    "eligibility",
    "orders",
    "store",
    "rider",
    "coupon",
    "gateway",
    "timeout",
)


@dataclass(frozen=True, slots=True)
class MetricInfo:
    """What a metric means; ``description`` is one line, shown in the README and the report."""

    name: str
    description: str
    unit: str
    better: Better
    source: Source


def _m(name: str, description: str, unit: str, better: Better, source: Source) -> MetricInfo:
    return MetricInfo(name=name, description=description, unit=unit, better=better, source=source)


_BASE: tuple[MetricInfo, ...] = (
    _m(
        "intents",
        "order intents started by clients (cumulative; in a window: started in it)",
        "intents",
        None,
        "client",
    ),
    _m(
        "orders",
        "orders confirmed to clients (cumulative; in a window: confirmed in it)",
        "orders",
        "higher",
        "client",
    ),
    _m("orders_per_s", "orders confirmed to clients per second", "1/s", "higher", "client"),
    _m(
        "fulfilment_rate",
        "share of intents fulfilled: in a phase, of those that started in it (however late"
        " they ended); live, of those that ended that second; overall, fulfilled / started",
        "ratio",
        "higher",
        "client",
    ),
    _m(
        "fulfilment_time_p95_s",
        "95th percentile of intent start to order confirmed, re-clicks included",
        "s",
        "lower",
        "client",
    ),
    _m(
        "coupon_delay_p95_s",
        "95th percentile of coupon credit time - order time",
        "s",
        "lower",
        "server",
    ),
    _m(
        "coupon_pending",
        "coupon credits waiting in the gateway outbox (mean over a window)",
        "credits",
        "lower",
        "server",
    ),
    _m(
        "store_rejections",
        "order intake requests the stores rejected in the window",
        "requests",
        "lower",
        "server",
    ),
    _m(
        "store_paused_s",
        "store-seconds of paused intake in the window",
        "store-s",
        "lower",
        "server",
    ),
    _m(
        "store_queue_depth",
        "orders waiting in store queues (mean over a window)",
        "orders",
        "lower",
        "server",
    ),
    _m(
        "rider_wait_p95_s",
        "95th percentile of the wait for a free rider at dispatch",
        "s",
        "lower",
        "server",
    ),
    _m(
        "riders_free",
        "riders free to take a delivery (mean over a window)",
        "riders",
        "higher",
        "server",
    ),
    _m("riders_busy", "riders out on a delivery (mean over a window)", "riders", None, "server"),
    _m(
        "retry_amplification",
        "HTTP requests per intent started (re-clicks and retries)",
        "requests/intent",
        "lower",
        "client",
    ),
    _m(
        "first_try_failure_rate",
        "share of intents whose first attempt failed, whatever the re-clicks did after"
        " (in a phase: of the intents that started in it)",
        "ratio",
        "lower",
        "client",
    ),
    _m("error_rate", "failed HTTP requests / HTTP requests", "ratio", "lower", "client"),
    _m("latency_p50_ms", "median HTTP request latency seen by clients", "ms", "lower", "client"),
    _m(
        "latency_p95_ms",
        "95th percentile HTTP request latency seen by clients",
        "ms",
        "lower",
        "client",
    ),
    _m(
        "latency_p99_ms",
        "99th percentile HTTP request latency seen by clients",
        "ms",
        "lower",
        "client",
    ),
    *(
        _m(
            f"schedule_latency_{p}_ms",
            f"{label} latency of an attempt (its journey's requests; one POST /orders for the"
            " stub) counted from when it was due (an open-model arrival's scheduled time, a"
            " re-click's end of think time), so a load generator that falls behind cannot"
            " hide it (coordinated omission)",
            "ms",
            "lower",
            "client",
        )
        for p, label in (("p50", "median"), ("p95", "95th percentile"), ("p99", "99th percentile"))
    ),
    _m(
        "target_load",
        "scheduled arrivals/s (open model) or users (closed model)",
        "1/s|users",
        None,
        "client",
    ),
    _m("achieved_rate", "intents started per second", "1/s", None, "client"),
    _m(
        "users",
        "active users (closed model) or requests in flight (open model)",
        "users",
        None,
        "client",
    ),
)

_FAILURES: tuple[MetricInfo, ...] = tuple(
    _m(
        f"failures.{step}",
        f"intent attempts that failed at the {step} step in the window",
        "attempts",
        "lower",
        "client",
    )
    for step in FAILURE_STEPS
)

_AUDIT: tuple[MetricInfo, ...] = (
    _m(
        "lost_orders",
        "clients told success, but the orders ledger has no live order",
        "orders",
        "lower",
        "audit",
    ),
    _m(
        "phantom_orders",
        "clients told failure on every attempt, but the order exists",
        "orders",
        "lower",
        "audit",
    ),
    _m(
        "double_credits",
        "orders credited more than once by the coupon ledger",
        "orders",
        "lower",
        "audit",
    ),
    _m(
        "missing_credits",
        "eligible fulfilled orders whose credit is neither credited nor durably queued",
        "orders",
        "lower",
        "audit",
    ),
    _m(
        "late_credits",
        "credits that landed, or are still queued, later than audit.credit_slo after the order",
        "orders",
        "lower",
        "audit",
    ),
    _m(
        "lost_entitlements",
        "free orders granted to an attempt that ended uncredited, the buyer getting no other",
        "orders",
        "lower",
        "audit",
    ),
    _m("oversold", "items with more reservations than stock", "items", "lower", "audit"),
)

# Ratios read from the ledgers after the drain, per phase (of the buyer's first grant) and overall.
_LEDGER_KPIS: tuple[MetricInfo, ...] = (
    _m(
        "free_orders_honoured_rate",
        "entitled buyers whose free order was credited or is durably queued",
        "ratio",
        "higher",
        "audit",
    ),
    _m(
        "free_orders_honoured_in_slo_rate",
        "entitled buyers whose free order was credited within audit.credit_slo",
        "ratio",
        "higher",
        "audit",
    ),
)

METRICS: dict[str, MetricInfo] = {m.name: m for m in (*_BASE, *_FAILURES, *_AUDIT, *_LEDGER_KPIS)}
# Columns of the per-second time series (timeseries.csv, sample events), in display order.
SERIES_METRICS: tuple[str, ...] = tuple(m.name for m in (*_BASE, *_FAILURES))
AUDIT_METRICS: tuple[str, ...] = tuple(m.name for m in _AUDIT)
LEDGER_KPIS: tuple[str, ...] = tuple(m.name for m in _LEDGER_KPIS)


def is_after_run(name: str) -> bool:
    """True if ``name`` is known only after the run (read from the ledgers by the audit)."""
    info = METRICS.get(name)
    return info is not None and info.source == "audit"


def is_known_metric(name: str) -> bool:
    """True if ``name`` is a metric chaoskit measures."""
    return name in METRICS
