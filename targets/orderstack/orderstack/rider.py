"""rider: a finite rider pool; a delivery keeps its rider busy for time-compressed minutes."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Any

from .common import Service, field_of, json_response, read_json
from .config import StackConfig
from .histogram import LogHistogram
from .httpserver import Request, Response, Route, post
from .settings import RiderSettings, ServiceSettings

__all__ = ["RiderService"]


class RiderService(Service):
    name = "rider"
    settings: RiderSettings

    def __init__(self, config: StackConfig) -> None:
        super().__init__(config)
        self.counters.update(dispatched=0, dispatch_failed=0, delivered=0, duplicates=0)
        self.histograms["rider_wait_ms"] = LogHistogram()
        self.free: deque[int] = deque(range(self.settings.riders))
        self.busy: set[int] = set()
        self.waiters: deque[asyncio.Future[int]] = deque()
        self.deliveries: dict[str, dict[str, Any]] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}  # order_id -> its delivery's end

    async def stop(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()

    def routes(self) -> list[Route]:
        return [post("/dispatch", self.dispatch)]

    async def dispatch(self, request: Request) -> Response:
        body = await read_json(request)
        order_id = field_of(body, "order_id", str)
        s = self.settings
        known = self.deliveries.get(order_id)
        if known is not None:  # a retried dispatch gets the rider it already has
            self.counters["duplicates"] += 1
            return json_response({"rider_id": known["rider_id"], "eta_min": s.delivery_minutes})
        loop = asyncio.get_running_loop()
        started = loop.time()
        if self.free:
            rider = self.free.popleft()
        else:
            rider = await self._wait_for_rider(loop, s.dispatch_wait_s)
        wait_ms = (loop.time() - started) * 1000.0
        self.histograms["rider_wait_ms"].record(wait_ms)
        if rider < 0:
            self.counters["dispatch_failed"] += 1
            return json_response(
                {"error": "no rider", "waited_ms": round(wait_ms, 1)}, 503, {"Retry-After": "1"}
            )
        record = {
            "order_id": order_id,
            "rider_id": f"rider-{rider}",
            "dispatched_at": time.time(),
            "delivered_at": None,
        }
        self.deliveries[order_id] = record
        self.busy.add(rider)
        self.counters["dispatched"] += 1
        seconds = s.delivery_minutes * 60.0 / s.time_compression
        self._timers[order_id] = loop.call_later(seconds, self._delivered, rider, record)
        return json_response({"rider_id": record["rider_id"], "eta_min": s.delivery_minutes})

    async def _wait_for_rider(self, loop: asyncio.AbstractEventLoop, wait_s: float) -> int:
        """A rider id, or -1 after wait_s with none free."""
        if wait_s <= 0.0:
            return -1
        waiter: asyncio.Future[int] = loop.create_future()
        self.waiters.append(waiter)
        expiry = loop.call_later(wait_s, _expire, waiter)
        try:
            return await waiter
        finally:
            expiry.cancel()

    def _delivered(self, rider: int, record: dict[str, Any]) -> None:
        self._timers.pop(record["order_id"], None)
        record["delivered_at"] = time.time()
        self.counters["delivered"] += 1
        self.busy.discard(rider)
        if rider < self.settings.riders:  # riders above a shrunk pool retire on return
            self._release(rider)

    def _release(self, rider: int) -> None:
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(rider)
                return
        self.free.append(rider)

    def settings_changed(self, old: ServiceSettings) -> None:
        assert isinstance(old, RiderSettings)
        size = self.settings.riders
        if size < old.riders:
            self.free = deque(r for r in self.free if r < size)
        elif size > old.riders:
            free = set(self.free)
            for rider in range(old.riders, size):
                if rider not in free and rider not in self.busy:
                    self._release(rider)

    def gauges(self) -> dict[str, float]:
        return {
            "riders_total": self.settings.riders,
            "riders_free": len(self.free),
            "riders_busy": len(self.busy),
            "waiting": sum(1 for w in self.waiters if not w.done()),
        }

    def ledger(self) -> dict[str, Any]:
        return {"deliveries": list(self.deliveries.values())}


def _expire(waiter: asyncio.Future[int]) -> None:
    if not waiter.done():
        waiter.set_result(-1)
