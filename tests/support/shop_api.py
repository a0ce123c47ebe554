"""A second order API for the tests, with a contract unlike the stub stack's.

Run as its own process (``python tests/support/shop_api.py --port P --inventory-port Q
--inventory-url http://127.0.0.1:<toxiproxy proxy port>``); it serves two things:

- the shop API on ``--port``:
    POST /api/v2/checkout   header ``Idempotency-Key`` (required), JSON
                            ``{"sku", "quantity", "customer", "ref"}`` ->
                            201 ``{"checkout": {"id": "chk_...", "status": "pending"}}``
                            (the same key again: 200 and the same checkout)
    GET  /api/v2/checkout/{id} -> 200 ``{"checkout": {"id", "status", "reason"}}``; the status
                            goes ``pending`` -> ``confirmed`` | ``failed`` once the shop's own
                            inventory service answered (confirmation only by polling)
    GET  /api/v2/ledger?ref=<run id> -> 200 ``{"ref", "order_ids": [...], "entitled": [...]}``:
                            confirmed orders, and those of them owed a coupon credit (a sku on
                            promotion, ``PROMO_SKUS``: a free-order credit per order)
    GET  /api/v2/credits?ref=<run id> -> 200 ``{"ref", "credits": [{"order", "at"}]}``: one row
                            per coupon credit written, ``at`` ISO 8601 with an offset
    GET  /api/v2/stock      -> 200 ``{"items": [{"sku", "capacity", "sold"}]}``
    GET  /metrics           prometheus-client exposition: ``shop_orders_total{status}``,
                            ``shop_order_failures_total{reason}``,
                            ``shop_checkout_latency_seconds`` (create -> confirmed/failed)
    POST /api/v2/admin      knobs that break the shop on purpose: ``drop_next: n`` (the next n
                            checkouts confirm, their record is never written: lost orders);
                            for the next n credits owed, ``double_credit_next`` (credited
                            twice), ``late_credit_next`` (credited ``late_by_s`` later),
                            ``skip_credit_next`` (never credited); ``stock: {sku: n}`` sets
                            a sku's stock (none sold), ``oversell: true`` sells past it;
                            ``reset: true`` first puts every knob back and every sku's stock
                            to ``DEFAULT_STOCK``
    GET  /api/v2/admin      the knobs, and ``broken``: the order ids each knob broke so far
    GET  /healthz
  errors are ``{"error": {"code": "...", "message": "..."}}`` with 400/404/409/422/503.
- its inventory service on ``--inventory-port`` (POST /reserve, GET /healthz), which the shop
  reaches only through ``--inventory-url`` (a Toxiproxy proxy, so faults work).

Orders, coupon credits and stock are kept in memory, or in PostgreSQL with ``--dsn`` (tables
``shop_orders``, ``shop_credits``, ``shop_stock``; the HTTP exports and a SQL audit read the
same rows). A confirmed order reserves its quantity of stock (a checkout past the stock fails
``out_of_stock``), and one on promotion is credited a coupon once its record is written. It
prints ``ready`` on stdout once both ports listen.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

IDEMPOTENCY_HEADER = "Idempotency-Key"
SKUS = ("boba-l", "tea-m", "latte-s")
PROMO_SKUS = frozenset({"boba-l", "tea-m"})  # each order of these is owed a free-order credit
DEFAULT_STOCK = 1_000_000
_SCHEMA = (
    """
    CREATE TABLE IF NOT EXISTS shop_orders (
        id text PRIMARY KEY,
        ref text NOT NULL,
        idempotency_key text NOT NULL,
        sku text NOT NULL,
        quantity integer NOT NULL,
        customer text NOT NULL,
        status text NOT NULL,
        entitled boolean NOT NULL DEFAULT false,
        created_at timestamptz NOT NULL DEFAULT now()
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS shop_credits (
        id bigserial PRIMARY KEY,
        order_id text NOT NULL,
        ref text NOT NULL,
        credited_at timestamptz NOT NULL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS shop_stock (
        sku text PRIMARY KEY,
        stock integer NOT NULL,
        reserved integer NOT NULL DEFAULT 0
    )
    """,
)


class OutOfStock(Exception):
    """The order's quantity is more than is left of its sku."""


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


@dataclass
class Checkout:
    id: str
    ref: str
    key: str
    sku: str
    quantity: int
    customer: str
    created: float
    status: str = "pending"
    reason: str | None = None
    drop: bool = False

    def view(self) -> dict[str, Any]:
        return {"checkout": {"id": self.id, "status": self.status, "reason": self.reason}}


class Ledger:
    """Where confirmed orders, coupon credits and stock are recorded: memory, or PostgreSQL."""

    def __init__(self, dsn: str | None) -> None:
        self._dsn = dsn
        self._orders: dict[str, list[tuple[str, bool]]] = {}  # ref -> (order id, entitled)
        self._credits: dict[str, list[tuple[str, float]]] = {}  # ref -> (order id, epoch s)
        self._stock: dict[str, list[int]] = {sku: [DEFAULT_STOCK, 0] for sku in SKUS}
        self._conn: Any = None
        self._lock = asyncio.Lock()

    async def open(self) -> None:
        if self._dsn:
            import psycopg  # only with --dsn

            self._conn = await psycopg.AsyncConnection.connect(self._dsn, autocommit=True)
            async with self._lock:
                for statement in _SCHEMA:
                    await self._conn.execute(statement)
                await self._conn.execute(
                    "INSERT INTO shop_stock (sku, stock) SELECT unnest(%s::text[]), %s"
                    " ON CONFLICT (sku) DO NOTHING",
                    (list(SKUS), DEFAULT_STOCK),
                )

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()

    async def record(self, checkout: Checkout, *, oversell: bool) -> None:
        """Reserve the order's stock and write its record, or neither (``OutOfStock``)."""
        entitled = checkout.sku in PROMO_SKUS
        if self._conn is None:
            stock = self._stock.setdefault(checkout.sku, [DEFAULT_STOCK, 0])
            if not oversell and stock[1] + checkout.quantity > stock[0]:
                raise OutOfStock(checkout.sku)
            stock[1] += checkout.quantity
            self._orders.setdefault(checkout.ref, []).append((checkout.id, entitled))
            return
        async with self._lock, self._conn.transaction():
            cursor = await self._conn.execute(
                "UPDATE shop_stock SET reserved = reserved + %(q)s"
                " WHERE sku = %(sku)s AND (%(oversell)s OR reserved + %(q)s <= stock)"
                " RETURNING sku",
                {"q": checkout.quantity, "sku": checkout.sku, "oversell": oversell},
            )
            if await cursor.fetchone() is None:
                raise OutOfStock(checkout.sku)
            await self._conn.execute(
                "INSERT INTO shop_orders (id, ref, idempotency_key, sku, quantity, customer,"
                " status, entitled) VALUES (%s, %s, %s, %s, %s, %s, 'confirmed', %s)"
                " ON CONFLICT (id) DO NOTHING",
                (
                    checkout.id,
                    checkout.ref,
                    checkout.key,
                    checkout.sku,
                    checkout.quantity,
                    checkout.customer,
                    entitled,
                ),
            )

    async def credit(self, checkout: Checkout) -> None:
        """Write one coupon credit for the order, stamped now."""
        if self._conn is None:
            self._credits.setdefault(checkout.ref, []).append((checkout.id, time.time()))
            return
        async with self._lock:
            await self._conn.execute(
                "INSERT INTO shop_credits (order_id, ref, credited_at) VALUES (%s, %s, now())",
                (checkout.id, checkout.ref),
            )

    async def order_ids(self, ref: str, *, entitled_only: bool = False) -> list[str]:
        if self._conn is None:
            rows = self._orders.get(ref, [])
            return [order for order, owed in rows if owed or not entitled_only]
        async with self._lock:
            cursor = await self._conn.execute(
                "SELECT id FROM shop_orders WHERE ref = %s AND (entitled OR NOT %s)"
                " ORDER BY created_at, id",
                (ref, entitled_only),
            )
            return [row[0] for row in await cursor.fetchall()]

    async def credits(self, ref: str) -> list[dict[str, str]]:
        if self._conn is None:
            rows = self._credits.get(ref, [])
        else:
            async with self._lock:
                cursor = await self._conn.execute(
                    "SELECT order_id, extract(epoch FROM credited_at)::float8 FROM shop_credits"
                    " WHERE ref = %s ORDER BY id",
                    (ref,),
                )
                rows = await cursor.fetchall()
        return [
            {"order": order, "at": datetime.fromtimestamp(at, UTC).isoformat()}
            for order, at in rows
        ]

    async def stock(self) -> list[dict[str, object]]:
        if self._conn is None:
            rows = [(sku, stock, sold) for sku, (stock, sold) in self._stock.items()]
        else:
            async with self._lock:
                cursor = await self._conn.execute(
                    "SELECT sku, stock, reserved FROM shop_stock ORDER BY sku"
                )
                rows = await cursor.fetchall()
        return [{"sku": sku, "capacity": stock, "sold": sold} for sku, stock, sold in rows]

    async def set_stock(self, levels: dict[str, int]) -> None:
        """Each sku's stock set, nothing of it sold."""
        if self._conn is None:
            self._stock.update({sku: [int(n), 0] for sku, n in levels.items()})
            return
        async with self._lock:
            for sku, n in levels.items():
                await self._conn.execute(
                    "INSERT INTO shop_stock (sku, stock, reserved) VALUES (%s, %s, 0)"
                    " ON CONFLICT (sku) DO UPDATE SET stock = excluded.stock, reserved = 0",
                    (sku, int(n)),
                )


@dataclass
class Shop:
    inventory_url: str
    ledger: Ledger
    reserve_timeout_s: float = 1.0
    checkouts: dict[str, Checkout] = field(default_factory=dict)
    by_key: dict[str, str] = field(default_factory=dict)
    drop_next: int = 0
    double_credit_next: int = 0
    late_credit_next: int = 0
    late_by_s: float = 2.0
    skip_credit_next: int = 0
    oversell: bool = False
    # What the knobs broke, by kind (dropped, double, late, skipped): order ids, the truth
    # a test compares an audit with.
    broken: dict[str, list[str]] = field(default_factory=dict)
    serial: int = 0
    http: aiohttp.ClientSession | None = None
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        self.orders_total = Counter(
            "shop_orders", "Checkouts by final status", ["status"], registry=self.registry
        )
        self.failures_total = Counter(
            "shop_order_failures", "Failed checkouts by reason", ["reason"], registry=self.registry
        )
        self.latency = Histogram(
            "shop_checkout_latency_seconds",
            "Time from checkout to confirmed or failed",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
            registry=self.registry,
        )

    # -- the API ---------------------------------------------------------------------------

    async def create(self, request: web.Request) -> web.Response:
        key = request.headers.get(IDEMPOTENCY_HEADER, "")
        if not key:
            return _error(400, "missing_idempotency_key", f"{IDEMPOTENCY_HEADER} is required")
        try:
            body = await request.json()
        except (ValueError, UnicodeDecodeError):
            return _error(400, "invalid_json", "the body is not JSON")
        problem = _invalid(body)
        if problem:
            return _error(422, "invalid_request", problem)
        known = self.by_key.get(key)
        if known is not None:
            return web.json_response(self.checkouts[known].view(), status=200)
        self.serial += 1
        checkout = Checkout(
            id=f"chk_{os.getpid():x}{self.serial:08x}",
            ref=str(body["ref"]),
            key=key,
            sku=str(body["sku"]),
            quantity=int(body["quantity"]),
            customer=str(body["customer"]),
            created=time.perf_counter(),
        )
        if self.drop_next > 0:
            self.drop_next -= 1
            checkout.drop = True
            self.broken.setdefault("dropped", []).append(checkout.id)
        self.checkouts[checkout.id] = checkout
        self.by_key[key] = checkout.id
        self.orders_total.labels("created").inc()
        task = asyncio.create_task(self._confirm(checkout))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return web.json_response(checkout.view(), status=201)

    async def show(self, request: web.Request) -> web.Response:
        checkout = self.checkouts.get(request.match_info["id"])
        if checkout is None:
            return _error(404, "not_found", "no such checkout")
        return web.json_response(checkout.view())

    async def ledger_export(self, request: web.Request) -> web.Response:
        ref = request.query.get("ref", "")
        if not ref:
            return _error(400, "missing_ref", "ref is required")
        orders = await self.ledger.order_ids(ref)
        entitled = await self.ledger.order_ids(ref, entitled_only=True)
        return web.json_response({"ref": ref, "order_ids": orders, "entitled": entitled})

    async def credits_export(self, request: web.Request) -> web.Response:
        ref = request.query.get("ref", "")
        if not ref:
            return _error(400, "missing_ref", "ref is required")
        return web.json_response({"ref": ref, "credits": await self.ledger.credits(ref)})

    async def stock_export(self, request: web.Request) -> web.Response:
        return web.json_response({"items": await self.ledger.stock()})

    async def admin(self, request: web.Request) -> web.Response:
        body = await request.json()
        if body.get("reset"):
            self.drop_next = self.double_credit_next = 0
            self.late_credit_next = self.skip_credit_next = 0
            self.late_by_s, self.oversell = 2.0, False
            self.broken.clear()
            await self.ledger.set_stock(dict.fromkeys(SKUS, DEFAULT_STOCK))
        for knob in ("drop_next", "double_credit_next", "late_credit_next", "skip_credit_next"):
            if knob in body:
                setattr(self, knob, int(body[knob]))
        if "late_by_s" in body:
            self.late_by_s = float(body["late_by_s"])
        if "oversell" in body:
            self.oversell = bool(body["oversell"])
        if "stock" in body:
            await self.ledger.set_stock({str(k): int(v) for k, v in body["stock"].items()})
        return await self.admin_state(request)

    async def admin_state(self, request: web.Request) -> web.Response:
        knobs = (
            *("drop_next", "double_credit_next", "late_credit_next", "late_by_s"),
            *("skip_credit_next", "oversell", "broken"),
        )
        return web.json_response({knob: getattr(self, knob) for knob in knobs})

    async def metrics(self, request: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(self.registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    # -- confirmation, later -----------------------------------------------------------------

    async def _confirm(self, checkout: Checkout) -> None:
        assert self.http is not None
        reason: str | None = None
        try:
            async with self.http.post(
                f"{self.inventory_url}/reserve",
                json={"sku": checkout.sku, "quantity": checkout.quantity, "ref": checkout.id},
                timeout=aiohttp.ClientTimeout(total=self.reserve_timeout_s),
            ) as answer:
                await answer.read()
                if answer.status != 200:
                    reason = "inventory_rejected"
        except TimeoutError:
            reason = "inventory_timeout"
        except aiohttp.ClientError:
            reason = "inventory_unavailable"
        recorded = False
        if reason is None and not checkout.drop:
            try:
                await self.ledger.record(checkout, oversell=self.oversell)
                recorded = True
            except OutOfStock:
                reason = "out_of_stock"
            except Exception:  # noqa: BLE001 - a database failure fails the order, visibly
                reason = "ledger_unavailable"
        self.latency.observe(time.perf_counter() - checkout.created)
        if reason is None:
            checkout.status = "confirmed"
            self.orders_total.labels("confirmed").inc()
        else:
            checkout.status, checkout.reason = "failed", reason
            self.orders_total.labels("failed").inc()
            self.failures_total.labels(reason).inc()
        if recorded and checkout.sku in PROMO_SKUS:
            await self._credit(checkout)

    async def _credit(self, checkout: Checkout) -> None:
        """The order's free-order coupon credit, as the knobs say (once, on time, by default).

        One knob per credit, in this order: skipped, then doubled, then late.
        """
        times, delay = 1, 0.0
        if self.skip_credit_next > 0:
            self.skip_credit_next -= 1
            self.broken.setdefault("skipped", []).append(checkout.id)
            return
        if self.double_credit_next > 0:
            self.double_credit_next -= 1
            self.broken.setdefault("double", []).append(checkout.id)
            times = 2
        elif self.late_credit_next > 0:
            self.late_credit_next -= 1
            self.broken.setdefault("late", []).append(checkout.id)
            delay = self.late_by_s
        if delay:
            await asyncio.sleep(delay)
        for _ in range(times):
            await self.ledger.credit(checkout)


def _invalid(body: Any) -> str | None:
    if not isinstance(body, dict):
        return "expected a JSON object"
    for name in ("sku", "customer", "ref"):
        if not isinstance(body.get(name), str) or not body[name]:
            return f"{name}: expected a non-empty string"
    quantity = body.get("quantity")
    if not isinstance(quantity, int) or isinstance(quantity, bool) or not 1 <= quantity <= 99:
        return "quantity: expected an integer 1..99"
    return None


async def _reserve(request: web.Request) -> web.Response:
    await request.read()
    return web.json_response({"reserved": True})


async def _healthz(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


async def serve(args: argparse.Namespace) -> None:
    ledger = Ledger(args.dsn)
    await ledger.open()
    shop = Shop(inventory_url=args.inventory_url.rstrip("/"), ledger=ledger)
    shop.http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=200))

    api = web.Application()
    api.router.add_post("/api/v2/checkout", shop.create)
    api.router.add_get("/api/v2/checkout/{id}", shop.show)
    api.router.add_get("/api/v2/ledger", shop.ledger_export)
    api.router.add_get("/api/v2/credits", shop.credits_export)
    api.router.add_get("/api/v2/stock", shop.stock_export)
    api.router.add_post("/api/v2/admin", shop.admin)
    api.router.add_get("/api/v2/admin", shop.admin_state)
    api.router.add_get("/metrics", shop.metrics)
    api.router.add_get("/healthz", shop.healthz)
    inventory = web.Application()
    inventory.router.add_post("/reserve", _reserve)
    inventory.router.add_get("/healthz", _healthz)

    runners = [web.AppRunner(api, access_log=None), web.AppRunner(inventory, access_log=None)]
    for runner in runners:
        await runner.setup()
    await web.TCPSite(runners[0], "127.0.0.1", args.port).start()
    await web.TCPSite(runners[1], "127.0.0.1", args.inventory_port).start()
    print("ready", flush=True)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    for task in list(shop.tasks):
        task.cancel()
    with contextlib.suppress(Exception):
        await shop.http.close()
    for runner in runners:
        await runner.cleanup()
    await ledger.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--inventory-port", type=int, required=True)
    parser.add_argument("--inventory-url", required=True, help="the shop's way to its inventory")
    parser.add_argument("--dsn", default=None, help="PostgreSQL DSN; memory when absent")
    args = parser.parse_args(argv)
    try:
        asyncio.run(serve(args))
    except OSError as exc:
        print(f"shop_api: {exc}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()

__all__ = ["IDEMPOTENCY_HEADER", "main", "serve"]
