"""Per-tick load counters and latency histograms: record, take the delta, merge deltas.

Pure Python plus hdrh (no locust): workers take deltas, the master merges them.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from hdrh.histogram import HdrHistogram

__all__ = ["COUNT_FIELDS", "Tally", "empty_delta", "merge_deltas", "new_histogram"]

COUNT_FIELDS = (
    "intents_started",
    "fulfilled",
    "failed",
    "abandoned",
    "requests",
    "request_errors",
    "dropped",
)
_LOWEST_MS, _HIGHEST_MS, _DIGITS = 1, 3_600_000, 3


def new_histogram() -> HdrHistogram:
    """The histogram every tick uses: 1 ms .. 1 h, 3 significant digits."""
    return HdrHistogram(_LOWEST_MS, _HIGHEST_MS, _DIGITS)


def _clamp_ms(ms: float) -> int:
    return min(_HIGHEST_MS, max(_LOWEST_MS, round(ms)))


class Tally:
    """Counts since the last ``take()``; single-threaded use (one gevent hub)."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = dict.fromkeys(COUNT_FIELDS, 0)
        self.failed_steps: Counter[str] = Counter()
        # Whole-ms counts, put into the histograms at take(): hdrh's record_value is pure
        # Python and costs ~10 us, paid once per distinct value instead of per request.
        self.latency_ms: Counter[int] = Counter()
        self.fulfilment_ms: Counter[int] = Counter()

    def add(self, field: str, n: int = 1) -> None:
        """Add ``n`` to one of ``COUNT_FIELDS``."""
        self.counts[field] += n

    def request(self, latency_ms: float, *, ok: bool) -> None:
        """One HTTP attempt finished."""
        self.counts["requests"] += 1
        self.latency_ms[_clamp_ms(latency_ms)] += 1
        if not ok:
            self.counts["request_errors"] += 1

    def failed(self, step: str) -> None:
        """An intent gave up after its re-clicks; ``step`` is where its last attempt failed."""
        self.counts["failed"] += 1
        self.failed_steps[step] += 1

    def fulfilled(self, fulfilment_ms: float) -> None:
        """An intent was confirmed ``fulfilment_ms`` after it started."""
        self.counts["fulfilled"] += 1
        self.fulfilment_ms[_clamp_ms(fulfilment_ms)] += 1

    def take(self) -> dict[str, Any]:
        """The delta since the last call (histograms encoded), and reset."""
        delta: dict[str, Any] = dict(self.counts)
        delta["failed_steps"] = dict(self.failed_steps)
        delta["latency_hdr"] = _encode(self.latency_ms)
        delta["fulfilment_hdr"] = _encode(self.fulfilment_ms)
        self.counts = dict.fromkeys(COUNT_FIELDS, 0)
        self.failed_steps = Counter()
        self.latency_ms = Counter()
        self.fulfilment_ms = Counter()
        return delta


def _encode(values: Counter[int]) -> str:
    histogram = new_histogram()
    for value, count in values.items():
        histogram.record_value(value, count)
    return str(histogram.encode().decode())


def empty_delta() -> dict[str, Any]:
    """A delta with nothing in it."""
    return Tally().take()


def merge_deltas(deltas: list[dict[str, Any]]) -> dict[str, Any]:
    """Sum counts and steps, add histograms; an empty list gives ``empty_delta()``."""
    counts = dict.fromkeys(COUNT_FIELDS, 0)
    steps: Counter[str] = Counter()
    latency, fulfilment = new_histogram(), new_histogram()
    for delta in deltas:
        for field in COUNT_FIELDS:
            counts[field] += int(delta.get(field, 0))
        steps.update(delta.get("failed_steps", {}))
        if delta.get("latency_hdr"):
            latency.decode_and_add(delta["latency_hdr"])
        if delta.get("fulfilment_hdr"):
            fulfilment.decode_and_add(delta["fulfilment_hdr"])
    merged: dict[str, Any] = dict(counts)
    merged["failed_steps"] = dict(steps)
    merged["latency_hdr"] = latency.encode().decode()
    merged["fulfilment_hdr"] = fulfilment.encode().decode()
    return merged
