"""What the report writers share: metric descriptions, number formats, downsampling, sparklines."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from chaoskit.observe.metrics import METRICS

__all__ = [
    "KEY_SERIES",
    "MetricText",
    "audit_queue_note",
    "better_of",
    "describe",
    "downsample",
    "fmt",
    "sparkline",
    "verdict_word",
]

# The series a reader looks at first, in story order: load, what customers felt, why.
KEY_SERIES: tuple[str, ...] = (
    "target_load",
    "achieved_rate",
    "fulfilment_rate",
    "latency_p95_ms",
    "error_rate",
    "coupon_delay_p95_s",
    "coupon_pending",
    "first_try_failure_rate",
    "store_rejections",
    "store_queue_depth",
    "riders_free",
)


def audit_queue_note(
    queued: int | None, oldest_age_s: float | None, credit_slo_s: float | None
) -> str | None:
    """One sentence on the credits still durably queued after the drain (None: no queue read)."""
    if queued is None:
        return None
    slo = "" if credit_slo_s is None else f" (credit SLO {credit_slo_s:g} s)"
    if queued == 0:
        return f"No credit of this run was still queued in the outbox{slo}."
    age = "" if oldest_age_s is None else f", the oldest {oldest_age_s:.1f} s after its order"
    return f"{queued:,} credits of this run were still durably queued in the outbox{age}{slo}."


_SPARKS = "▁▂▃▄▅▆▇█"


@dataclass(frozen=True, slots=True)
class MetricText:
    """What a report says about a metric."""

    description: str
    unit: str
    better: str | None  # "higher", "lower" or None when neither is better


def describe(name: str) -> MetricText:
    """The registry's description of ``name`` (``failures.x`` falls back to its family)."""
    info = METRICS.get(name)
    if info is None and "." in name:
        family = name.split(".", 1)[0]
        info = next(
            (v for k, v in METRICS.items() if k.startswith(f"{family}.") and "<" in k),
            METRICS.get(family),
        )
    if info is None:
        return MetricText(description="", unit="", better=None)
    better = getattr(info, "better", None)
    better_text = str(getattr(better, "value", better)) if better is not None else None
    if better_text not in ("higher", "lower"):
        better_text = None
    return MetricText(
        description=str(getattr(info, "description", "")),
        unit=str(getattr(info, "unit", "") or ""),
        better=better_text,
    )


def better_of(name: str, a: float | None, b: float | None) -> int:
    """+1 when ``b`` is better than ``a`` for this metric, -1 when worse, 0 when neither/unknown."""
    if a is None or b is None or a == b:
        return 0
    better = describe(name).better
    if better == "higher":
        return 1 if b > a else -1
    if better == "lower":
        return 1 if b < a else -1
    return 0


def fmt(value: float | None, unit: str = "") -> str:
    """A number as a person reads it: 3 significant figures, percentages for ratios."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if unit in ("ratio", "fraction", "%"):
        return f"{value * 100:.1f}%"
    if value == int(value) and abs(value) < 1e15:
        return f"{int(value):,}"
    magnitude = abs(value)
    if magnitude >= 1000:
        return f"{value:,.0f}"
    if magnitude >= 100:
        return f"{value:.1f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def verdict_word(verdict: str | None, status: str) -> str:
    """The verdict as one upper-case word (RUNNING while a run has none yet)."""
    if verdict is None:
        return "RUNNING" if status == "running" else status.upper()
    return verdict.upper()


def downsample(
    t: Sequence[float], values: Sequence[float | None], max_points: int = 3600
) -> tuple[list[float], list[float | None]]:
    """At most ``max_points`` points that keep each bucket's lowest and highest value.

    Keeping both extremes (rather than a mean or every k-th point) keeps spikes visible,
    which is the point of the chart.
    """
    n = len(t)
    if n <= max_points:
        return list(t), list(values)
    buckets = max(1, max_points // 2)
    size = n / buckets
    out_t: list[float] = []
    out_v: list[float | None] = []
    for b in range(buckets):
        lo, hi = int(b * size), min(n, int((b + 1) * size))
        if lo >= hi:
            continue
        i_min = i_max = -1
        for i in range(lo, hi):
            v = values[i]
            if v is None:
                continue
            if i_min < 0 or v < values[i_min]:  # type: ignore[operator]
                i_min = i
            if i_max < 0 or v > values[i_max]:  # type: ignore[operator]
                i_max = i
        if i_min < 0:  # a gap: keep it a gap
            out_t.append(t[lo])
            out_v.append(None)
            continue
        for i in sorted({i_min, i_max}):
            out_t.append(t[i])
            out_v.append(values[i])
    return out_t, out_v


def sparkline(values: Sequence[float | None], width: int = 40) -> str:
    """A coarse text sparkline: ``width`` bucket means scaled between the series' min and max."""
    present = [v for v in values if v is not None]
    if not present:
        return ""
    n = len(values)
    width = max(1, min(width, n))
    means: list[float | None] = []
    for b in range(width):
        chunk = [v for v in values[b * n // width : (b + 1) * n // width] if v is not None]
        means.append(sum(chunk) / len(chunk) if chunk else None)
    known = [m for m in means if m is not None]
    low, high = min(known), max(known)
    span = high - low
    chars = []
    for m in means:
        if m is None:
            chars.append(" ")
        elif span == 0:
            chars.append(_SPARKS[0] if high == 0 else _SPARKS[3])
        else:
            chars.append(_SPARKS[min(7, int((m - low) / span * 8))])
    return "".join(chars)
