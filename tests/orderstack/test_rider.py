"""The rider pool: shortage makes dispatch wait, then fail; the pool can grow and shrink."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from .conftest import make_config, running

# One simulated minute of delivery = 0.3 s real.
FAST = {"delivery_minutes": 1, "time_compression": 200}


def test_shortage_waits_then_fails_with_no_rider(tmp_path: Path) -> None:
    async def scenario() -> None:
        rider = {"riders": 1, "dispatch_wait_s": 0.1, **FAST}
        async with running(make_config(tmp_path, settings={"rider": rider}), ["rider"]) as stack:
            first = await stack.post("rider", "/dispatch", {"order_id": "a"})
            assert first[0] == 200 and first[1]["rider_id"] == "rider-0"
            started = time.monotonic()
            second = await stack.post("rider", "/dispatch", {"order_id": "b"})
            waited = time.monotonic() - started
            assert second[0] == 503 and second[1]["error"] == "no rider"
            assert 0.09 <= waited < 0.25
            stats = await stack.get("rider", "/stats")
            assert stats["counters"]["dispatch_failed"] == 1
            assert stats["gauges"] == {
                "riders_total": 1,
                "riders_free": 0,
                "riders_busy": 1,
                "waiting": 0,
            }
            assert stats["histograms"]["rider_wait_ms"]["max_ms"] >= 90

    asyncio.run(scenario())


def test_waiting_dispatch_gets_the_rider_when_a_delivery_ends(tmp_path: Path) -> None:
    async def scenario() -> None:
        rider = {"riders": 1, "dispatch_wait_s": 2.0, **FAST}
        async with running(make_config(tmp_path, settings={"rider": rider}), ["rider"]) as stack:
            await stack.post("rider", "/dispatch", {"order_id": "a"})
            started = time.monotonic()
            second = await stack.post("rider", "/dispatch", {"order_id": "b"})
            waited = time.monotonic() - started
            assert second[0] == 200 and second[1]["rider_id"] == "rider-0"
            assert 0.25 <= waited <= 0.6  # one delivery: 60 s / 200
            deliveries = (await stack.get("rider", "/ledger"))["deliveries"]
            assert [d["order_id"] for d in deliveries] == ["a", "b"]
            assert deliveries[0]["delivered_at"] is not None
            assert deliveries[1]["delivered_at"] is None
            # A retried dispatch for the same order keeps its rider.
            again = await stack.post("rider", "/dispatch", {"order_id": "b"})
            assert again[1]["rider_id"] == "rider-0"

    asyncio.run(scenario())


def test_pool_resizes_at_runtime(tmp_path: Path) -> None:
    async def scenario() -> None:
        rider = {"riders": 3, "dispatch_wait_s": 0.0, **FAST}
        async with running(make_config(tmp_path, settings={"rider": rider}), ["rider"]) as stack:
            for order_id in ("a", "b"):
                assert (await stack.post("rider", "/dispatch", {"order_id": order_id}))[0] == 200
            await stack.post("rider", "/admin", {"riders": 1})  # riders 0 and 1 busy, 2 free
            gauges = (await stack.get("rider", "/stats"))["gauges"]
            assert (gauges["riders_total"], gauges["riders_free"], gauges["riders_busy"]) == (
                1,
                0,
                2,
            )
            assert (await stack.post("rider", "/dispatch", {"order_id": "c"}))[0] == 503
            await asyncio.sleep(0.45)  # both return; rider-1 retires
            gauges = (await stack.get("rider", "/stats"))["gauges"]
            assert (gauges["riders_free"], gauges["riders_busy"]) == (1, 0)
            await stack.post("rider", "/admin", {"riders": 4})
            gauges = (await stack.get("rider", "/stats"))["gauges"]
            assert (gauges["riders_total"], gauges["riders_free"]) == (4, 4)

    asyncio.run(scenario())
