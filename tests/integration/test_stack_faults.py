"""Faults on the real stack, measured: Toxiproxy toxics and /admin settings change orders."""

from __future__ import annotations

import statistics
import time
from typing import Any

import httpx
import pytest

from chaoskit.errors import ToxiproxyError
from chaoskit.faults.toxiproxy import Toxic, ToxiproxyClient, toxic_name
from chaoskit.stack.endpoints import DEPENDENCIES, StackEndpoints

# Fixture types (conftest.Admin, conftest.PlaceOrder): tests here are not a package.
Admin = Any
PlaceOrder = Any

pytestmark = pytest.mark.integration

SAMPLES = 20


def _median_latency_ms(place_order: PlaceOrder, count: int = SAMPLES) -> float:
    latencies = []
    for _ in range(count):
        order = place_order()
        assert order.ok, order.body
        latencies.append(order.elapsed_ms)
    return statistics.median(latencies)


def _get(url: str) -> Any:
    response = httpx.get(url, timeout=5.0, trust_env=False)
    response.raise_for_status()
    return response.json()


def test_the_stack_takes_orders_through_every_proxy(
    local_stack: StackEndpoints, toxiproxy: ToxiproxyClient, place_order: PlaceOrder
) -> None:
    proxies = toxiproxy.proxies()
    assert sorted(proxies) == sorted(DEPENDENCIES)
    for dep in DEPENDENCIES:
        assert proxies[dep].enabled and proxies[dep].toxics == ()
    order = place_order()
    assert order.ok, order.body
    stats = _get(f"{local_stack.services['gateway']}/stats")
    assert stats["counters"]["orders_ok"] >= 1


def test_latency_toxic_on_inventory_adds_200ms(
    toxiproxy: ToxiproxyClient, place_order: PlaceOrder
) -> None:
    place_order()  # warm the gateway's connection pool
    before = _median_latency_ms(place_order)
    toxiproxy.add_toxic(
        "inventory",
        Toxic(
            name=toxic_name("itest", "slow-inventory", "downstream"),
            type="latency",
            attributes={"latency": 200, "jitter": 0},
        ),
    )
    after = _median_latency_ms(place_order)
    added = after - before
    print(f"latency: median {before:.1f} ms -> {after:.1f} ms (+{added:.1f})")
    assert 160.0 <= added <= 240.0, f"median {before:.1f} ms -> {after:.1f} ms (+{added:.1f})"


@pytest.mark.parametrize(
    ("dependency", "fault"), [("lbs", "reset_peer"), ("store", "down"), ("coupon", "down")]
)
def test_a_broken_dependency_fails_orders_at_its_step(
    toxiproxy: ToxiproxyClient,
    admin: Admin,
    place_order: PlaceOrder,
    dependency: str,
    fault: str,
) -> None:
    if dependency == "coupon":
        # The coupon is only on the order path for eligible orders in sync mode.
        admin.set("gateway", coupon_mode="sync")
        admin.set("eligibility", referral_share=1.0, free_orders_per_user=1000)
    assert place_order().ok
    if fault == "down":
        toxiproxy.set_enabled(dependency, False)
    else:
        toxiproxy.add_toxic(
            dependency,
            Toxic(
                name=toxic_name("itest", "reset", "downstream"),
                type="reset_peer",
                attributes={"timeout": 0},
            ),
        )
    for _ in range(3):
        order = place_order()
        assert not order.ok
        assert order.step == dependency, order.body
        assert order.status >= 500
        assert order.body["outcome"] == "failed"


def test_no_free_rider_makes_dispatch_wait_then_fail(
    admin: Admin, place_order: PlaceOrder, local_stack: StackEndpoints
) -> None:
    admin.set("rider", riders=0, dispatch_wait_s=0.5)
    order = place_order()
    assert not order.ok
    assert order.step == "rider", order.body
    assert order.status == 503
    # It waited for a rider (dispatch_wait_s) before giving up.
    assert order.elapsed_ms >= 450.0
    stats = _get(f"{local_stack.services['rider']}/stats")
    assert stats["counters"]["dispatch_failed"] >= 1
    admin.set("rider", riders=200)
    assert place_order().ok


def test_sync_coupon_down_fails_the_order_and_cancels_it(
    toxiproxy: ToxiproxyClient,
    admin: Admin,
    place_order: PlaceOrder,
    local_stack: StackEndpoints,
) -> None:
    admin.set("gateway", coupon_mode="sync")
    admin.set("eligibility", referral_share=1.0, free_orders_per_user=1000)
    healthy = place_order()
    assert healthy.ok and healthy.body["coupon"] == "credited", healthy.body
    toxiproxy.set_enabled("coupon", False)
    failed = place_order()
    assert failed.step == "coupon", failed.body
    orders = _get(f"{local_stack.services['orders']}/ledger")["orders"]
    status = {o["order_id"]: o["status"] for o in orders}
    assert status[failed.order_id] == "cancelled"
    assert status[healthy.order_id] == "created"


def test_async_coupon_down_keeps_taking_orders_and_credits_once_after(
    toxiproxy: ToxiproxyClient,
    admin: Admin,
    place_order: PlaceOrder,
    local_stack: StackEndpoints,
) -> None:
    admin.set("gateway", coupon_mode="async")
    admin.set("eligibility", referral_share=1.0, free_orders_per_user=1000)
    toxiproxy.set_enabled("coupon", False)
    orders = [place_order() for _ in range(10)]
    assert all(o.ok and o.body["coupon"] == "pending" for o in orders), [o.body for o in orders]
    ids = {o.order_id for o in orders}
    time.sleep(1.0)  # the outbox worker keeps trying while the proxy is down
    credited = {c["order_id"] for c in _get(f"{local_stack.services['coupon']}/ledger")["credits"]}
    assert not ids & credited
    outbox = {i["order_id"] for i in _get(f"{local_stack.services['gateway']}/ledger")["outbox"]}
    assert ids <= outbox

    toxiproxy.set_enabled("coupon", True)
    deadline = time.monotonic() + 15.0
    while time.monotonic() < deadline:
        outbox = {
            i["order_id"] for i in _get(f"{local_stack.services['gateway']}/ledger")["outbox"]
        }
        if not ids & outbox:
            break
        time.sleep(0.2)
    assert not ids & outbox, f"still pending after 15 s: {sorted(ids & outbox)}"
    credits = _get(f"{local_stack.services['coupon']}/ledger")["credits"]
    per_order: dict[str, int] = {}
    for credit in credits:
        per_order[credit["order_id"]] = per_order.get(credit["order_id"], 0) + 1
    assert {order_id: per_order.get(order_id, 0) for order_id in ids} == dict.fromkeys(ids, 1)


def test_http_error_injection_returns_the_configured_status(
    admin: Admin, place_order: PlaceOrder, local_stack: StackEndpoints
) -> None:
    admin.set("orders", http_errors={"rate": 1.0, "status": 418})
    direct = httpx.post(
        f"{local_stack.services['orders']}/orders",
        json={"order_id": "direct-1", "intent_id": "direct-1", "user_id": "u", "eligible": False},
        timeout=5.0,
        trust_env=False,
    )
    assert direct.status_code == 418
    order = place_order()
    assert order.status == 418 and order.step == "orders", order.body
    admin.set("gateway", http_errors={"rate": 1.0, "status": 503})
    order = place_order()
    assert order.status == 503 and order.step == "gateway", order.body
    # /healthz is not a business endpoint: injection never touches it.
    assert (
        httpx.get(f"{local_stack.services['gateway']}/healthz", trust_env=False).status_code == 200
    )


def test_toxiproxy_client_against_the_real_server(toxiproxy: ToxiproxyClient) -> None:
    name = toxic_name("itest", "slow", "upstream")
    toxic = Toxic(name=name, type="latency", stream="upstream", attributes={"latency": 50})
    added = toxiproxy.add_toxic("rider", toxic)
    assert added.name == name and added.stream == "upstream"
    with pytest.raises(ToxiproxyError) as caught:
        toxiproxy.add_toxic("rider", toxic)
    assert caught.value.status == 409 and "already exists" in str(caught.value)
    updated = toxiproxy.update_toxic("rider", name, {"latency": 75}, toxicity=0.5)
    assert updated.attributes["latency"] == 75 and updated.toxicity == 0.5
    assert [t.name for t in toxiproxy.toxics("rider")] == [name]
    toxiproxy.remove_toxic("rider", name)
    toxiproxy.remove_toxic("rider", name, missing_ok=True)
    with pytest.raises(ToxiproxyError) as caught:
        toxiproxy.proxy("no-such-proxy")
    assert caught.value.status == 404 and "proxy not found" in str(caught.value)
    with pytest.raises(ToxiproxyError) as caught:
        toxiproxy.add_toxic("rider", Toxic(name="x", type="no-such-type"))
    assert caught.value.status == 400
    assert toxiproxy.set_enabled("rider", False).enabled is False
    assert toxiproxy.version()
