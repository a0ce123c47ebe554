"""store: per-store intake capacity (token bucket) and a bounded queue; overload sheds or pauses."""

from __future__ import annotations

import asyncio
import math
import zlib
from collections import deque

from .common import Service, field_of, json_response, read_json
from .config import StackConfig
from .histogram import LogHistogram
from .httpserver import Request, Response, Route, post
from .settings import ServiceSettings, StoreSettings

__all__ = ["StoreService"]


class _Store:
    """One store's intake: tokens refill at capacity_per_s; waiters queue for a token."""

    __slots__ = ("index", "paused_from", "paused_until", "queue", "stamp", "timer", "tokens")

    def __init__(self, index: int, now: float, tokens: float) -> None:
        self.index = index
        self.tokens = tokens
        self.stamp = now
        self.queue: deque[asyncio.Future[bool]] = deque()
        self.timer: asyncio.TimerHandle | None = None
        self.paused_from = 0.0
        self.paused_until = 0.0


class StoreService(Service):
    name = "store"
    settings: StoreSettings

    def __init__(self, config: StackConfig) -> None:
        super().__init__(config)
        self.counters.update(
            accepted=0, rejected=0, shed=0, paused_rejections=0, paused_seconds=0.0
        )
        self.histograms["store_queue_ms"] = LogHistogram()
        self.stores: list[_Store] = []
        self._accounted_at = 0.0

    async def start(self) -> None:
        now = asyncio.get_running_loop().time()
        self._accounted_at = now
        self.stores = [_Store(i, now, self._burst()) for i in range(self.settings.stores)]

    async def stop(self) -> None:
        for store in self.stores:
            self._close(store)

    def routes(self) -> list[Route]:
        return [post("/accept", self.accept)]

    def _burst(self) -> float:
        # One second of capacity may arrive at once; at least one order so a slow store still works.
        return max(1.0, self.settings.capacity_per_s)

    def _refill(self, store: _Store, now: float) -> None:
        tokens = store.tokens + (now - store.stamp) * self.settings.capacity_per_s
        store.tokens = min(self._burst(), tokens)
        store.stamp = now

    async def accept(self, request: Request) -> Response:
        body = await read_json(request)
        order_id = field_of(body, "order_id", str)
        hint = body.get("store_hint")
        if not isinstance(hint, int) or isinstance(hint, bool):
            hint = zlib.crc32(order_id.encode())
        loop = asyncio.get_running_loop()
        now = loop.time()
        s = self.settings
        store = self.stores[hint % len(self.stores)]
        name = f"store-{store.index}"
        if s.paused or now < store.paused_until:
            self.counters["rejected"] += 1
            self.counters["paused_rejections"] += 1
            wait = max(1, math.ceil(store.paused_until - now)) if not s.paused else 1
            return json_response(
                {"error": "store paused", "store": name}, 503, {"Retry-After": str(wait)}
            )
        self._refill(store, now)
        if not store.queue and store.tokens >= 1.0:
            store.tokens -= 1.0
            self.counters["accepted"] += 1
            self.histograms["store_queue_ms"].record(0.0)
            return json_response({"store": name, "queued_ms": 0.0})
        if len(store.queue) >= s.queue:
            # Waiters whose caller gave up still sit in the deque: drop them before judging.
            store.queue = deque(f for f in store.queue if not f.done())
        if len(store.queue) >= s.queue:
            self.counters["rejected"] += 1
            if s.overload == "pause":
                self._account(now, paused_all=False)
                store.paused_from = now
                store.paused_until = now + s.pause_s
                return json_response(
                    {"error": "store paused", "store": name},
                    503,
                    {"Retry-After": str(max(1, math.ceil(s.pause_s)))},
                )
            self.counters["shed"] += 1
            rate = s.capacity_per_s
            wait = math.ceil((len(store.queue) + 1) / rate) if rate > 0 else 5
            headers = {"Retry-After": str(max(1, wait))}
            return json_response({"error": "store overloaded", "store": name}, 429, headers)
        waiter: asyncio.Future[bool] = loop.create_future()
        store.queue.append(waiter)
        self._schedule(store)
        got = await waiter
        if not got:
            self.counters["rejected"] += 1
            return json_response({"error": "store closed", "store": name}, 503)
        self.counters["accepted"] += 1
        queued_ms = (loop.time() - now) * 1000.0
        self.histograms["store_queue_ms"].record(queued_ms)
        return json_response({"store": name, "queued_ms": round(queued_ms, 3)})

    def _schedule(self, store: _Store) -> None:
        if store.timer is not None or not store.queue:
            return
        rate = self.settings.capacity_per_s
        if rate <= 0.0:
            return  # nothing drains until capacity comes back (settings_changed reschedules)
        wait = max(0.0, (1.0 - store.tokens) / rate)
        store.timer = asyncio.get_running_loop().call_later(wait, self._drain, store)

    def _drain(self, store: _Store) -> None:
        store.timer = None
        self._refill(store, asyncio.get_running_loop().time())
        queue = store.queue
        while queue and store.tokens >= 1.0:
            waiter = queue.popleft()
            if waiter.done():
                continue
            store.tokens -= 1.0
            waiter.set_result(True)
        self._schedule(store)

    def _close(self, store: _Store) -> None:
        if store.timer is not None:
            store.timer.cancel()
            store.timer = None
        while store.queue:
            waiter = store.queue.popleft()
            if not waiter.done():
                waiter.set_result(False)

    def _account(self, now: float, *, paused_all: bool) -> None:
        since = self._accounted_at
        if now <= since:
            return
        if paused_all:
            self.counters["paused_seconds"] += (now - since) * len(self.stores)
        else:
            for store in self.stores:
                overlap = min(now, store.paused_until) - max(since, store.paused_from)
                if overlap > 0.0:
                    self.counters["paused_seconds"] += overlap
        self._accounted_at = now

    def before_stats(self) -> None:
        self._account(asyncio.get_running_loop().time(), paused_all=self.settings.paused)

    def settings_changed(self, old: ServiceSettings) -> None:
        assert isinstance(old, StoreSettings)
        now = asyncio.get_running_loop().time()
        self._account(now, paused_all=old.paused)
        new = self.settings
        if new.stores < len(self.stores):
            for store in self.stores[new.stores :]:
                self._close(store)
            del self.stores[new.stores :]
        while len(self.stores) < new.stores:
            self.stores.append(_Store(len(self.stores), now, self._burst()))
        for store in self.stores:
            self._refill(store, now)
            if store.timer is not None:
                store.timer.cancel()
                store.timer = None
            self._schedule(store)

    def gauges(self) -> dict[str, float]:
        now = asyncio.get_running_loop().time()
        if self.settings.paused:
            paused = len(self.stores)
        else:
            paused = sum(1 for s in self.stores if now < s.paused_until)
        return {
            "queue_depth": sum(len(s.queue) for s in self.stores),
            "paused_stores": paused,
            "stores": len(self.stores),
        }
