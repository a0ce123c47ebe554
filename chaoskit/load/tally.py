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
    "first_tries",
    "first_try_failed",
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
        self.failed_steps: Counter[str] = Counter()  # failed attempts, by chain step
        # Outcomes by the whole second their intent started ("<s>:f|x|a"): lets a window be
        # judged by what happened to the intents that started in it, however late they end.
        # Keyed (second, kind) here, "<s>:<kind>" in the delta: a tuple is cheaper per request
        # than formatting a string.
        self.by_start: Counter[tuple[int, str]] = Counter()
        # Whole-ms counts, put into the histograms at take(): hdrh's record_value is pure
        # Python and costs ~10 us, paid once per distinct value instead of per request.
        self.latency_ms: Counter[int] = Counter()
        # Each attempt's latency (all its journey's requests) from when it was due: an
        # open-model arrival's scheduled time, a re-click's end of think time.
        self.schedule_ms: Counter[int] = Counter()
        self.fulfilment_ms: Counter[int] = Counter()

    def add(self, field: str, n: int = 1) -> None:
        """Add ``n`` to one of ``COUNT_FIELDS``."""
        self.counts[field] += n

    def request(self, latency_ms: float, *, ok: bool, step: str | None = None) -> None:
        """One HTTP request finished; a failed one counts at its chain ``step``."""
        self.counts["requests"] += 1
        # _clamp_ms inlined: this runs once per request
        ms = int(latency_ms + 0.5)
        self.latency_ms[_LOWEST_MS if ms < _LOWEST_MS else min(ms, _HIGHEST_MS)] += 1
        if not ok:
            self.counts["request_errors"] += 1
            self.failed_steps[step or "gateway"] += 1

    def attempt_due(self, from_due_ms: float) -> None:
        """One attempt ended ``from_due_ms`` after it was due (coordinated omission)."""
        ms = int(from_due_ms + 0.5)
        self.schedule_ms[_LOWEST_MS if ms < _LOWEST_MS else min(ms, _HIGHEST_MS)] += 1

    def failed(self, step: str, started_t: float | None = None) -> None:
        """An intent gave up after its re-clicks; ``step`` is where its last attempt failed."""
        self.counts["failed"] += 1
        if started_t is not None:
            self.by_start[(int(started_t), "x")] += 1

    def abandoned(self, started_t: float | None = None) -> None:
        """An intent ended without an answer it could act on (stop, or a 4xx)."""
        self.counts["abandoned"] += 1
        if started_t is not None:
            self.by_start[(int(started_t), "a")] += 1

    def fulfilled(self, fulfilment_ms: float, started_t: float | None = None) -> None:
        """An intent was confirmed ``fulfilment_ms`` after it started."""
        self.counts["fulfilled"] += 1
        self.fulfilment_ms[_clamp_ms(fulfilment_ms)] += 1
        if started_t is not None:
            self.by_start[(int(started_t), "f")] += 1

    def first_try(self, *, ok: bool, started_t: float | None = None) -> None:
        """An intent's first attempt ended (``ok`` or not), whatever its re-clicks do after."""
        self.counts["first_tries"] += 1
        if not ok:
            self.counts["first_try_failed"] += 1
        if started_t is not None:
            second = int(started_t)
            self.by_start[(second, "t")] += 1
            if not ok:
                self.by_start[(second, "1")] += 1

    def take(self) -> dict[str, Any]:
        """The delta since the last call (histograms encoded), and reset."""
        delta: dict[str, Any] = dict(self.counts)
        delta["failed_steps"] = dict(self.failed_steps)
        delta["by_start"] = {f"{second}:{kind}": n for (second, kind), n in self.by_start.items()}
        delta["latency_hdr"] = _encode(self.latency_ms)
        delta["schedule_latency_hdr"] = _encode(self.schedule_ms)
        delta["fulfilment_hdr"] = _encode(self.fulfilment_ms)
        self.counts = dict.fromkeys(COUNT_FIELDS, 0)
        self.failed_steps = Counter()
        self.by_start = Counter()
        self.latency_ms = Counter()
        self.schedule_ms = Counter()
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
    by_start: Counter[str] = Counter()
    latency, schedule, fulfilment = new_histogram(), new_histogram(), new_histogram()
    for delta in deltas:
        for field in COUNT_FIELDS:
            counts[field] += int(delta.get(field, 0))
        steps.update(delta.get("failed_steps", {}))
        by_start.update(delta.get("by_start", {}))
        if delta.get("latency_hdr"):
            latency.decode_and_add(delta["latency_hdr"])
        if delta.get("schedule_latency_hdr"):
            schedule.decode_and_add(delta["schedule_latency_hdr"])
        if delta.get("fulfilment_hdr"):
            fulfilment.decode_and_add(delta["fulfilment_hdr"])
    merged: dict[str, Any] = dict(counts)
    merged["failed_steps"] = dict(steps)
    merged["by_start"] = dict(by_start)
    merged["latency_hdr"] = latency.encode().decode()
    merged["schedule_latency_hdr"] = schedule.encode().decode()
    merged["fulfilment_hdr"] = fulfilment.encode().decode()
    return merged
