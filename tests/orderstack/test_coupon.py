"""The coupon ledger: idempotent credits keyed by order, a switch that shows double credits."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from .conftest import make_config, running


def test_credit_is_idempotent_by_order_id(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running(make_config(tmp_path), ["coupon"]) as stack:
            credit = {"order_id": "o-1", "order_time": time.time() - 2.0, "amount": 1.0}
            first = await stack.post("coupon", "/credit", credit)
            again = await stack.post("coupon", "/credit", credit)
            assert (first[0], first[1]["status"]) == (200, "credited")
            assert (again[0], again[1]["status"]) == (200, "duplicate")
            credits = (await stack.get("coupon", "/ledger"))["credits"]
            assert [c["order_id"] for c in credits] == ["o-1"]
            assert credits[0]["credited_at"] >= credits[0]["order_time"] + 2.0
            stats = await stack.get("coupon", "/stats")
            assert stats["counters"]["credits"] == 1
            assert stats["counters"]["duplicates_ignored"] == 1
            delay = stats["histograms"]["coupon_delay_ms"]
            assert delay["count"] == 1 and delay["max_ms"] >= 2000.0

    asyncio.run(scenario())


def test_non_idempotent_ledger_writes_every_credit(tmp_path: Path) -> None:
    async def scenario() -> None:
        config = make_config(tmp_path, settings={"coupon": {"idempotent": False}})
        async with running(config, ["coupon"]) as stack:
            credit = {"order_id": "o-2", "order_time": time.time()}
            await asyncio.gather(*(stack.post("coupon", "/credit", credit) for _ in range(3)))
            credits = (await stack.get("coupon", "/ledger"))["credits"]
            assert [c["order_id"] for c in credits] == ["o-2"] * 3

    asyncio.run(scenario())


def test_ledger_survives_a_restart(tmp_path: Path) -> None:
    async def scenario() -> None:
        config = make_config(tmp_path)
        async with running(config, ["coupon"]) as stack:
            await stack.post("coupon", "/credit", {"order_id": "o-3", "order_time": time.time()})
            await stack.stop("coupon")
            await stack.start("coupon")
            assert len((await stack.get("coupon", "/ledger"))["credits"]) == 1
            status, body, _ = await stack.post(
                "coupon", "/credit", {"order_id": "o-3", "order_time": time.time()}
            )
            assert body["status"] == "duplicate"

    asyncio.run(scenario())


def test_small_pool_with_lag_bounds_throughput(tmp_path: Path) -> None:
    async def scenario() -> None:
        config = make_config(tmp_path, settings={"coupon": {"pool_size": 1, "lag_ms": 100}})
        async with running(config, ["coupon"]) as stack:
            started = time.monotonic()
            calls = [
                stack.post("coupon", "/credit", {"order_id": f"p{i}", "order_time": time.time()})
                for i in range(4)
            ]
            task = asyncio.gather(*calls)
            await asyncio.sleep(0.05)
            gauges = (await stack.get("coupon", "/stats"))["gauges"]
            assert gauges["pool_in_use"] == 1 and gauges["pool_waiting"] == 3
            await task
            one_at_a_time = time.monotonic() - started
            assert one_at_a_time >= 0.4  # 4 credits x 100 ms through one connection

            await stack.post("coupon", "/admin", {"pool_size": 4})
            started = time.monotonic()
            await asyncio.gather(
                *(
                    stack.post(
                        "coupon", "/credit", {"order_id": f"q{i}", "order_time": time.time()}
                    )
                    for i in range(4)
                )
            )
            assert time.monotonic() - started < one_at_a_time * 0.75

    asyncio.run(scenario())
