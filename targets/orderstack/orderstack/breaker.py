"""Circuit breaker per dependency: opens on a failure ratio over a rolling window, then probes."""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["CircuitBreaker"]


class CircuitBreaker:
    """closed -> open (failure ratio over the window) -> half_open (one probe) -> closed or open."""

    def __init__(
        self,
        *,
        window_s: float = 10.0,
        buckets: int = 10,
        min_calls: int = 20,
        failure_ratio: float = 0.5,
        open_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.bucket_s = window_s / buckets
        self.min_calls = min_calls
        self.failure_ratio = failure_ratio
        self.open_s = open_s
        self.clock = clock
        self.state = "closed"
        self.opened_at = 0.0
        self.probe_at = 0.0
        # Ring of per-bucket [epoch, calls, failures]; a stale epoch means the bucket is empty.
        self._ring = [[-1, 0, 0] for _ in range(buckets)]

    def allow(self) -> bool:
        """Whether a call may go out now (in half_open, only the single probe may)."""
        if self.state == "closed":
            return True
        now = self.clock()
        if self.state == "open":
            if now - self.opened_at < self.open_s:
                return False
            self.state = "half_open"
            self.probe_at = now
            return True
        # half_open: one probe at a time; a probe that never reported is replaced after open_s.
        if now - self.probe_at >= self.open_s:
            self.probe_at = now
            return True
        return False

    def retry_after(self) -> float:
        """Seconds until the breaker will let a probe through."""
        return max(0.0, self.opened_at + self.open_s - self.clock())

    def record(self, ok: bool) -> None:
        """Report a call's outcome (failures: timeouts, connection errors, 5xx, 429)."""
        now = self.clock()
        if self.state == "half_open":
            if ok:
                self.state = "closed"
                for bucket in self._ring:
                    bucket[0] = -1
            else:
                self._open(now)
            return
        if self.state == "open":
            return  # a call admitted before the breaker opened: its outcome is old news
        epoch = int(now / self.bucket_s)
        bucket = self._ring[epoch % len(self._ring)]
        if bucket[0] != epoch:
            bucket[0], bucket[1], bucket[2] = epoch, 0, 0
        bucket[1] += 1
        if ok:
            return
        bucket[2] += 1
        oldest = epoch - len(self._ring) + 1
        calls = failures = 0
        for b in self._ring:
            if b[0] >= oldest:
                calls += b[1]
                failures += b[2]
        if calls >= self.min_calls and failures >= self.failure_ratio * calls:
            self._open(now)

    def _open(self, now: float) -> None:
        self.state = "open"
        self.opened_at = now
