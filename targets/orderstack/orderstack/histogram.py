"""One latency histogram shape for every service, so /stats from any of them can be merged."""

from __future__ import annotations

from bisect import bisect_left

__all__ = ["BOUNDS_MS", "LogHistogram"]


def _log_bounds(low_ms: float, high_ms: float, step: float) -> tuple[float, ...]:
    bounds: list[float] = []
    value = low_ms
    while value < high_ms:
        bounds.append(round(value, 4))
        value *= step
    bounds.append(high_ms)
    return tuple(bounds)


# 0.5 ms .. 1 h in ~1.15x steps (~7% relative error at the bucket midpoint), 114 buckets + overflow.
BOUNDS_MS: tuple[float, ...] = _log_bounds(0.5, 3_600_000.0, 1.15)


class LogHistogram:
    """Cumulative counts per log-spaced bucket; bucket i holds values <= BOUNDS_MS[i]."""

    __slots__ = ("count", "counts", "max_ms", "sum_ms")

    def __init__(self) -> None:
        self.counts = [0] * (len(BOUNDS_MS) + 1)  # the last slot is the overflow (> 1 h)
        self.count = 0
        self.sum_ms = 0.0
        self.max_ms = 0.0

    def record(self, value_ms: float) -> None:
        """Add one observation (milliseconds; negative values count as 0)."""
        if value_ms < 0.0:
            value_ms = 0.0
        self.counts[bisect_left(BOUNDS_MS, value_ms)] += 1
        self.count += 1
        self.sum_ms += value_ms
        if value_ms > self.max_ms:
            self.max_ms = value_ms

    def to_json(self) -> dict[str, object]:
        """The /stats form: bounds_ms, counts (len(bounds)+1), count, sum_ms, max_ms."""
        return {
            "bounds_ms": list(BOUNDS_MS),
            "counts": list(self.counts),
            "count": self.count,
            "sum_ms": round(self.sum_ms, 3),
            "max_ms": round(self.max_ms, 3),
        }
