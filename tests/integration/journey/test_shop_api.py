"""The tests' second order API itself: its contract, its dependency behind Toxiproxy, its ledger."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import httpx
import psycopg
import pytest

from chaoskit.faults.toxiproxy import ToxiproxyClient
from tests.support.postgres import PostgresServer
from tests.support.shop import ShopStack, running_shop

pytestmark = pytest.mark.integration


def checkout(http: httpx.Client, shop: ShopStack, *, ref: str, key: str | None = None):
    return http.post(
        f"{shop.api_url}/api/v2/checkout",
        json={"sku": "boba-l", "quantity": 2, "customer": "c1", "ref": ref},
        headers={"Idempotency-Key": key or uuid.uuid4().hex},
    )


def wait_final(http: httpx.Client, shop: ShopStack, checkout_id: str) -> dict[str, object]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        view = http.get(f"{shop.api_url}/api/v2/checkout/{checkout_id}").json()["checkout"]
        if view["status"] != "pending":
            return dict(view)
        time.sleep(0.02)
    raise AssertionError(f"{checkout_id} still pending")


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ShopStack]:
    with running_shop(tmp_path_factory.mktemp("shop")) as running:
        yield running


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10, trust_env=False) as client:
        yield client


def test_checkout_confirms_by_polling_and_is_idempotent(shop: ShopStack, http: httpx.Client):
    created = checkout(http, shop, ref="r1", key="k-1")
    assert created.status_code == 201
    checkout_id = created.json()["checkout"]["id"]
    assert wait_final(http, shop, checkout_id)["status"] == "confirmed"
    again = checkout(http, shop, ref="r1", key="k-1")
    assert again.status_code == 200 and again.json()["checkout"]["id"] == checkout_id
    assert shop.ledger("r1") == [checkout_id]


def test_its_own_error_body(shop: ShopStack, http: httpx.Client):
    missing = http.post(f"{shop.api_url}/api/v2/checkout", json={"sku": "x"})
    assert missing.status_code == 400
    assert missing.json()["error"]["code"] == "missing_idempotency_key"
    bad = http.post(
        f"{shop.api_url}/api/v2/checkout", json={"sku": "x"}, headers={"Idempotency-Key": "k"}
    )
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_request"
    assert http.get(f"{shop.api_url}/api/v2/checkout/chk_nope").status_code == 404


def test_outage_on_its_dependency_fails_orders(shop: ShopStack, http: httpx.Client):
    with ToxiproxyClient(shop.toxiproxy_url) as toxiproxy:
        toxiproxy.set_enabled(shop.inventory_proxy, False)
        try:
            created = checkout(http, shop, ref="r-outage")
            assert created.status_code == 201
            view = wait_final(http, shop, created.json()["checkout"]["id"])
        finally:
            toxiproxy.set_enabled(shop.inventory_proxy, True)
    assert view["status"] == "failed" and view["reason"] == "inventory_unavailable"
    assert shop.ledger("r-outage") == []
    metrics = http.get(f"{shop.api_url}/metrics").text
    assert 'shop_order_failures_total{reason="inventory_unavailable"}' in metrics
    assert "shop_checkout_latency_seconds_bucket" in metrics


def test_drop_switch_loses_a_confirmed_order(shop: ShopStack, http: httpx.Client):
    shop.admin(drop_next=1)
    lost = checkout(http, shop, ref="r-drop")
    kept = checkout(http, shop, ref="r-drop")
    assert lost.status_code == kept.status_code == 201
    lost_id, kept_id = lost.json()["checkout"]["id"], kept.json()["checkout"]["id"]
    assert wait_final(http, shop, lost_id)["status"] == "confirmed"
    assert wait_final(http, shop, kept_id)["status"] == "confirmed"
    assert shop.ledger("r-drop") == [kept_id]


def test_postgres_ledger(tmp_path: Path, http: httpx.Client, postgres: PostgresServer):
    ref = f"r-sql-{uuid.uuid4().hex[:8]}"  # the server is the session's: other tests' rows too
    with running_shop(tmp_path / "shop", dsn=postgres.dsn) as pg:
        created = checkout(http, pg, ref=ref)
        checkout_id = created.json()["checkout"]["id"]
        assert wait_final(http, pg, checkout_id)["status"] == "confirmed"
        assert pg.ledger(ref) == [checkout_id]
        with psycopg.connect(postgres.dsn) as conn:
            rows = conn.execute("SELECT id FROM shop_orders WHERE ref = %s", (ref,)).fetchall()
        assert rows == [(checkout_id,)]


def _confirmed(http: httpx.Client, shop: ShopStack, ref: str, sku: str = "boba-l") -> str:
    created = http.post(
        f"{shop.api_url}/api/v2/checkout",
        json={"sku": sku, "quantity": 2, "customer": "c1", "ref": ref},
        headers={"Idempotency-Key": uuid.uuid4().hex},
    )
    checkout_id = str(created.json()["checkout"]["id"])
    assert wait_final(http, shop, checkout_id)["status"] == "confirmed"
    return checkout_id


def _credit_knobs_and_stock(shop: ShopStack, http: httpx.Client, ref: str) -> None:
    shop.admin(reset=True)
    shop.admin(skip_credit_next=1, double_credit_next=1, late_credit_next=1, late_by_s=0.4)
    ids = [_confirmed(http, shop, ref) for _ in range(4)]
    latte = _confirmed(http, shop, ref, sku="latte-s")  # not on promotion: owed nothing
    time.sleep(0.8)  # the late credit lands
    assert shop.entitled(ref) == ids and shop.ledger(ref) == [*ids, latte]
    credits = shop.credits(ref)
    assert [c["order"] for c in credits] == [ids[1], ids[1], ids[3], ids[2]]
    assert shop.broken() == {"skipped": [ids[0]], "double": [ids[1]], "late": [ids[2]]}
    at = {c["order"]: datetime.fromisoformat(c["at"]) for c in credits}
    assert (at[ids[2]] - at[ids[3]]).total_seconds() >= 0.3  # late: after the one behind it
    # Stock: a sku's stock is kept; past it a checkout fails, unless the shop oversells.
    shop.admin(stock={"tea-m": 3})
    _confirmed(http, shop, ref, sku="tea-m")
    created = checkout(http, shop, ref=ref)  # boba-l: plenty
    assert wait_final(http, shop, created.json()["checkout"]["id"])["status"] == "confirmed"
    second = http.post(
        f"{shop.api_url}/api/v2/checkout",
        json={"sku": "tea-m", "quantity": 2, "customer": "c1", "ref": ref},
        headers={"Idempotency-Key": uuid.uuid4().hex},
    )
    view = wait_final(http, shop, second.json()["checkout"]["id"])
    assert (view["status"], view["reason"]) == ("failed", "out_of_stock")
    assert shop.stock()["tea-m"] == (3, 2)
    shop.admin(oversell=True)
    _confirmed(http, shop, ref, sku="tea-m")
    assert shop.stock()["tea-m"] == (3, 4)
    shop.admin(reset=True)
    assert shop.stock()["tea-m"] == (1_000_000, 0) and shop.broken() == {}


def test_credits_and_stock_with_their_knobs_in_memory(shop: ShopStack, http: httpx.Client):
    _credit_knobs_and_stock(shop, http, f"r-knobs-{uuid.uuid4().hex[:8]}")


def test_credits_and_stock_with_their_knobs_in_postgres(
    tmp_path: Path, http: httpx.Client, postgres: PostgresServer
):
    ref = f"r-knobs-{uuid.uuid4().hex[:8]}"
    with running_shop(tmp_path / "shop", dsn=postgres.dsn) as pg:
        _credit_knobs_and_stock(pg, http, ref)
        with psycopg.connect(postgres.dsn) as conn:
            rows = conn.execute(
                "SELECT order_id, credited_at FROM shop_credits WHERE ref = %s ORDER BY id", (ref,)
            ).fetchall()
    # 4 for the knobs' orders (one skipped, one doubled), 3 for the promotion orders after.
    assert len(rows) == 7 and all(at.tzinfo is not None for _, at in rows)
