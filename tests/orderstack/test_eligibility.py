"""Free-order grants: the ledger the audit reads, and the compensating release_on_failure switch."""

from __future__ import annotations

import asyncio
from pathlib import Path

from .conftest import make_config, order, running

_NO_COUPON = ["gateway", "inventory", "lbs", "eligibility", "orders", "store", "rider"]


def _settings(*, release: bool) -> dict[str, dict[str, object]]:
    return {
        "eligibility": {
            "referral_share": 1.0,
            "free_orders_per_user": 1,
            "release_on_failure": release,
        },
        "gateway": {"coupon_mode": "sync", "retries": "none", "timeout_s": 0.5},
    }


def test_coupled_failure_consumes_the_free_order_and_the_reclick_pays(tmp_path: Path) -> None:
    async def scenario() -> None:
        config = make_config(tmp_path, settings=_settings(release=False))
        async with running(config, _NO_COUPON) as stack:
            status, body, _ = await stack.post("gateway", "/orders", order("a-0"))
            assert (status, body["step"]) == (502, "coupon")
            await stack.start("coupon")
            status, body, _ = await stack.post("gateway", "/orders", order("a-1"))
            assert status == 200 and body["eligible"] is False and body["coupon"] == "none"
            grants = (await stack.get("eligibility", "/ledger"))["grants"]
            assert [(g["order_id"], g["user_id"], g["released_at"]) for g in grants] == [
                ("a-0", "u-1", None)
            ]
            assert grants[0]["granted_at"] > 0

    asyncio.run(scenario())


def test_release_on_failure_gives_the_free_order_back(tmp_path: Path) -> None:
    async def scenario() -> None:
        config = make_config(tmp_path, settings=_settings(release=True))
        async with running(config, _NO_COUPON) as stack:
            status, body, _ = await stack.post("gateway", "/orders", order("b-0"))
            assert (status, body["step"]) == (502, "coupon")
            await stack.start("coupon")
            status, body, _ = await stack.post("gateway", "/orders", order("b-1"))
            assert status == 200 and body["eligible"] is True and body["coupon"] == "credited"
            grants = (await stack.get("eligibility", "/ledger"))["grants"]
            by_order = {g["order_id"]: g for g in grants}
            assert by_order["b-0"]["released_at"] is not None
            assert by_order["b-1"]["released_at"] is None
            counters = (await stack.get("gateway", "/stats"))["counters"]
            assert counters["releases"] == 1 and counters["releases_failed"] == 0
            # Releasing twice gives nothing back twice.
            status, body, _ = await stack.post("eligibility", "/release", {"order_id": "b-0"})
            assert status == 200 and body["released"] is False

    asyncio.run(scenario())
