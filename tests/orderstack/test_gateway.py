"""The gateway's order chain against real services (called directly, without Toxiproxy)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from .conftest import make_config, order, running

# user ids with and without a referral (seed 7, referral_share 1.0 / 0.0 make this explicit)
EVERYONE_REFERRED = {"eligibility": {"referral_share": 1.0, "free_orders_per_user": 1}}


def test_a_free_text_order_walks_the_whole_chain(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running(make_config(tmp_path, settings=EVERYONE_REFERRED)) as stack:
            status, body, _ = await stack.post("gateway", "/orders", order("o-1"))
            assert status == 200, body
            assert body["outcome"] == "ok" and body["order_id"] == "o-1"
            assert body["eligible"] is True and body["coupon"] == "pending"
            assert body["store"].startswith("store-") and body["rider_id"] == "rider-0"
            assert body["eta_min"] == 12  # office: 2.4 km
            items = (await stack.get("inventory", "/ledger"))["items"]
            assert items == [{"item": "Boya Juexian", "stock": 1_000_000, "reserved": 1}]
            orders = (await stack.get("orders", "/ledger"))["orders"]
            assert [(o["order_id"], o["intent_id"], o["status"]) for o in orders] == [
                ("o-1", "i-o-1", "created")
            ]
            # Structured intent, same user: the free order is used up.
            structured = {"order_id": "o-2", "user_id": "u-1", "item": "tea", "place": "home"}
            status, body, _ = await stack.post("gateway", "/orders", structured)
            assert status == 200 and body["eligible"] is False and body["coupon"] == "none"
            stats = await stack.get("gateway", "/stats")
            assert stats["counters"]["orders_ok"] == 2
            assert stats["histograms"]["order_latency_ms"]["count"] == 2

    asyncio.run(scenario())


def test_a_failing_step_stops_the_chain_and_is_named(tmp_path: Path) -> None:
    async def scenario() -> None:
        settings = {"inventory": {"stock_per_item": 1}, "gateway": {"retries": "none"}}
        async with running(make_config(tmp_path, settings=settings)) as stack:
            assert (await stack.post("gateway", "/orders", order("a")))[0] == 200
            status, body, _ = await stack.post("gateway", "/orders", order("b"))
            assert status == 409
            assert body["outcome"] == "failed" and body["step"] == "inventory"
            assert "out_of_stock" in body["reason"]
            lbs = await stack.get("lbs", "/stats")
            assert lbs["counters"]["quotes"] == 1  # the chain stopped before lbs

            status, body, _ = await stack.post(
                "gateway", "/orders", {"order_id": "c", "text": "hi"}
            )
            assert (status, body["step"]) == (400, "parse")
            counters = (await stack.get("gateway", "/stats"))["counters"]
            assert counters["failed_step.inventory"] == 1 and counters["failed_step.parse"] == 1

    asyncio.run(scenario())


def test_dependency_statuses_map_to_gateway_answers(tmp_path: Path) -> None:
    async def scenario() -> None:
        settings = {"gateway": {"retries": "none", "timeout_s": 0.3}}
        async with running(make_config(tmp_path, settings=settings)) as stack:
            # store sheds -> 429 with Retry-After passed on; the order is cancelled.
            await stack.post("store", "/admin", {"http_errors": {"rate": 1.0, "status": 429}})
            status, body, headers = await stack.post("gateway", "/orders", order("s"))
            assert (status, body["step"]) == (429, "store") and headers["Retry-After"] == "1"
            cancelled = (await stack.get("orders", "/ledger"))["orders"][0]
            assert cancelled["status"] == "cancelled"
            await stack.post("store", "/admin", {"http_errors": {"rate": 0.0}})

            # rider has nobody -> 503 step rider.
            await stack.post("rider", "/admin", {"riders": 0, "dispatch_wait_s": 0})
            status, body, _ = await stack.post("gateway", "/orders", order("r"))
            assert (status, body["step"]) == (503, "rider") and "no rider" in body["reason"]
            await stack.post("rider", "/admin", {"riders": 10})

            # a slow dependency -> 504; a dead one -> 502.
            await stack.post("rider", "/admin", {"riders": 0, "dispatch_wait_s": 1.0})
            status, body, _ = await stack.post("gateway", "/orders", order("t"))
            assert (status, body["step"]) == (504, "rider") and "timed out" in body["reason"]
            await stack.stop("lbs")
            status, body, _ = await stack.post("gateway", "/orders", order("d"))
            assert (status, body["step"]) == (502, "lbs")

    asyncio.run(scenario())


def test_retries_repeat_failed_calls(tmp_path: Path) -> None:
    async def scenario() -> None:
        settings = {
            "gateway": {"retries": "backoff", "max_retries": 3, "circuit_breaker": False},
            "eligibility": {"http_errors": {"rate": 1.0, "status": 500}},
        }
        async with running(make_config(tmp_path, settings=settings)) as stack:
            status, body, _ = await stack.post("gateway", "/orders", order("x"))
            assert (status, body["step"]) == (500, "eligibility")
            assert (await stack.get("gateway", "/stats"))["counters"]["retries"] == 3
            injected = (await stack.get("eligibility", "/stats"))["counters"]
            assert injected["http_errors_injected"] == 4

    asyncio.run(scenario())


def test_breaker_opens_and_rejects_without_calling(tmp_path: Path) -> None:
    async def scenario() -> None:
        settings = {
            "gateway": {"retries": "none"},
            "inventory": {"http_errors": {"rate": 1.0, "status": 500}},
        }
        async with running(make_config(tmp_path, settings=settings)) as stack:
            answers = [await stack.post("gateway", "/orders", order(f"b{i}")) for i in range(30)]
            statuses = [status for status, _, _ in answers]
            assert statuses[:20] == [500] * 20  # 20 calls: the window's minimum
            assert statuses[20:] == [503] * 10
            # A breaker rejection is still a failure at the dependency that broke the chain.
            assert {body["step"] for _, body, _ in answers[20:]} == {"inventory"}
            assert all("circuit open" in body["reason"] for _, body, _ in answers[20:])
            stats = await stack.get("gateway", "/stats")
            assert stats["counters"]["breaker_rejections"] == 10
            assert stats["gauges"]["breaker_open"] == 1
            inventory = await stack.get("inventory", "/stats")
            assert inventory["counters"]["http_errors_injected"] == 20

    asyncio.run(scenario())


def test_load_shedding_answers_429_above_max_inflight(tmp_path: Path) -> None:
    async def scenario() -> None:
        settings = {
            "gateway": {"load_shedding": True, "max_inflight": 2},
            "rider": {"riders": 0, "dispatch_wait_s": 0.5},
        }
        async with running(make_config(tmp_path, settings=settings)) as stack:
            answers = await asyncio.gather(
                *(stack.post("gateway", "/orders", order(f"l{i}")) for i in range(6))
            )
            shed = [a for a in answers if a[0] == 429]
            assert len(shed) == 4
            assert all(a[1]["step"] == "gateway" and a[2]["Retry-After"] for a in shed)
            assert (await stack.get("gateway", "/stats"))["counters"]["shed"] == 4

    asyncio.run(scenario())


def test_sync_mode_coupon_failure_fails_and_cancels_the_order(tmp_path: Path) -> None:
    async def scenario() -> None:
        settings = {
            **EVERYONE_REFERRED,
            "gateway": {"coupon_mode": "sync", "retries": "none", "timeout_s": 0.5},
        }
        names = ["gateway", "inventory", "lbs", "eligibility", "orders", "store", "rider"]
        async with running(make_config(tmp_path, settings=settings), names) as stack:
            status, body, _ = await stack.post("gateway", "/orders", order("c-1"))
            assert (status, body["step"]) == (502, "coupon")
            orders = (await stack.get("orders", "/ledger"))["orders"]
            assert [(o["order_id"], o["status"]) for o in orders] == [("c-1", "cancelled")]
            await stack.start("coupon")
            status, body, _ = await stack.post("gateway", "/orders", order("c-2", user_id="u-2"))
            assert status == 200 and body["coupon"] == "credited"
            credits = (await stack.get("coupon", "/ledger"))["credits"]
            assert [c["order_id"] for c in credits] == ["c-2"]

    asyncio.run(scenario())


def test_async_outbox_drains_after_the_coupon_service_comes_back(tmp_path: Path) -> None:
    async def scenario() -> None:
        settings = {**EVERYONE_REFERRED, "gateway": {"coupon_mode": "async", "timeout_s": 0.5}}
        config = make_config(tmp_path, settings=settings)
        names = ["gateway", "inventory", "lbs", "eligibility", "orders", "store", "rider"]
        async with running(config, names) as stack:
            for i in range(5):
                status, body, _ = await stack.post("gateway", "/orders", order(f"a{i}", f"u{i}"))
                assert status == 200 and body["coupon"] == "pending"
            await asyncio.sleep(0.5)  # the worker tries and fails meanwhile
            stats = await stack.get("gateway", "/stats")
            assert stats["gauges"]["outbox_pending"] == 5
            outbox = (await stack.get("gateway", "/ledger"))["outbox"]
            assert sorted(o["order_id"] for o in outbox) == [f"a{i}" for i in range(5)]
            assert all(o["attempts"] >= 1 for o in outbox)

            await stack.start("coupon")
            deadline = time.monotonic() + 5.0
            while time.monotonic() < deadline:
                if (await stack.get("gateway", "/stats"))["gauges"]["outbox_pending"] == 0:
                    break
                await asyncio.sleep(0.1)
            credits = (await stack.get("coupon", "/ledger"))["credits"]
            assert sorted(c["order_id"] for c in credits) == [f"a{i}" for i in range(5)]
            assert (await stack.get("gateway", "/stats"))["counters"]["coupon_credited"] == 5
            assert (await stack.get("gateway", "/ledger"))["outbox"] == []

    asyncio.run(scenario())


def test_outbox_survives_a_gateway_restart(tmp_path: Path) -> None:
    async def scenario() -> None:
        config = make_config(tmp_path, settings=EVERYONE_REFERRED)
        names = ["gateway", "inventory", "lbs", "eligibility", "orders", "store", "rider"]
        async with running(config, names) as stack:
            assert (await stack.post("gateway", "/orders", order("k")))[1]["coupon"] == "pending"
            await stack.stop("gateway")
            await stack.start("gateway")
            assert (await stack.get("gateway", "/stats"))["gauges"]["outbox_pending"] == 1
            await stack.start("coupon")
            for _ in range(50):
                if (await stack.get("coupon", "/ledger"))["credits"]:
                    break
                await asyncio.sleep(0.1)
            assert [c["order_id"] for c in (await stack.get("coupon", "/ledger"))["credits"]] == [
                "k"
            ]

    asyncio.run(scenario())


def test_same_order_id_twice_is_one_order(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running(make_config(tmp_path, settings=EVERYONE_REFERRED)) as stack:
            first = await stack.post("gateway", "/orders", order("same"))
            second = await stack.post("gateway", "/orders", order("same"))
            assert first[0] == second[0] == 200
            assert first[1]["rider_id"] == second[1]["rider_id"]
            assert len((await stack.get("orders", "/ledger"))["orders"]) == 1
            assert (await stack.get("orders", "/stats"))["counters"]["duplicates"] == 1
            assert (await stack.get("inventory", "/ledger"))["items"][0]["reserved"] == 1
            for _ in range(30):
                if not (await stack.get("gateway", "/ledger"))["outbox"]:
                    break
                await asyncio.sleep(0.1)
            assert len((await stack.get("coupon", "/ledger"))["credits"]) == 1

    asyncio.run(scenario())
