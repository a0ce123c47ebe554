"""Store intake: token bucket + bounded queue; overload sheds (429) or pauses (503)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from .conftest import make_config, running


def _accept(i: int) -> dict[str, object]:
    return {"order_id": f"o{i}", "store_hint": 0}  # every order to the same store


def test_full_queue_sheds_with_retry_after(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = {"stores": 1, "capacity_per_s": 10, "queue": 5, "overload": "shed"}
        async with running(make_config(tmp_path, settings={"store": store}), ["store"]) as stack:
            started = time.monotonic()
            answers = await asyncio.gather(
                *(stack.post("store", "/accept", _accept(i)) for i in range(25))
            )
            elapsed = time.monotonic() - started
            statuses = [a[0] for a in answers]
            # 10 tokens at once (one second of burst) + 5 queued; the other 10 are shed.
            assert statuses.count(200) == 15
            assert statuses.count(429) == 10
            assert all(int(a[2]["Retry-After"]) >= 1 for a in answers if a[0] == 429)
            assert elapsed >= 0.4  # the queued five waited for tokens at 10/s
            stats = await stack.get("store", "/stats")
            assert stats["counters"]["accepted"] == 15
            assert stats["counters"]["rejected"] == 10
            assert stats["gauges"]["queue_depth"] == 0

    asyncio.run(scenario())


def test_full_queue_pauses_the_store_and_counts_paused_time(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = {"stores": 2, "capacity_per_s": 1, "queue": 1, "overload": "pause", "pause_s": 0.5}
        async with running(make_config(tmp_path, settings={"store": store}), ["store"]) as stack:
            first = await stack.post("store", "/accept", _accept(0))  # takes the one token
            queued = asyncio.ensure_future(stack.post("store", "/accept", _accept(1)))
            await asyncio.sleep(0.05)
            overflow = await stack.post("store", "/accept", _accept(2))
            assert first[0] == 200
            assert overflow[0] == 503 and overflow[1]["error"] == "store paused"
            while_paused = await stack.post("store", "/accept", _accept(3))
            assert while_paused[0] == 503
            other_store = await stack.post("store", "/accept", {"order_id": "x", "store_hint": 1})
            assert other_store[0] == 200
            gauges = (await stack.get("store", "/stats"))["gauges"]
            assert gauges["paused_stores"] == 1
            assert (await queued)[0] == 200  # already-queued orders still drain
            await asyncio.sleep(0.6)
            stats = await stack.get("store", "/stats")
            assert stats["gauges"]["paused_stores"] == 0
            assert 0.45 <= stats["counters"]["paused_seconds"] <= 0.55

    asyncio.run(scenario())


def test_admin_paused_pauses_every_store(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running(
            make_config(tmp_path, settings={"store": {"stores": 4}}), ["store"]
        ) as stack:
            await stack.post("store", "/admin", {"paused": True})
            answers = [
                await stack.post("store", "/accept", {"order_id": f"o{i}"}) for i in range(8)
            ]
            assert {a[0] for a in answers} == {503}
            await asyncio.sleep(0.2)
            stats = await stack.get("store", "/stats")
            assert stats["gauges"]["paused_stores"] == 4
            await stack.post("store", "/admin", {"paused": False})
            assert (await stack.post("store", "/accept", {"order_id": "z"}))[0] == 200
            paused = (await stack.get("store", "/stats"))["counters"]["paused_seconds"]
            assert 0.8 <= paused <= 4 * 1.0  # four stores x ~0.2-0.25 s

    asyncio.run(scenario())
