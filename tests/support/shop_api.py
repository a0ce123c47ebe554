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
    GET  /api/v2/ledger?ref=<run id> -> 200 ``{"ref", "order_ids": [...]}``: confirmed orders
    GET  /metrics           prometheus-client exposition: ``shop_orders_total{status}``,
                            ``shop_order_failures_total{reason}``,
                            ``shop_checkout_latency_seconds`` (create -> confirmed/failed)
    POST /api/v2/admin      ``{"drop_next": n}``: the next n checkouts answer 201 and confirm,
                            but their record is never written (lost orders, on purpose)
    GET  /healthz
  errors are ``{"error": {"code": "...", "message": "..."}}`` with 400/404/409/422/503.
- its inventory service on ``--inventory-port`` (POST /reserve, GET /healthz), which the shop
  reaches only through ``--inventory-url`` (a Toxiproxy proxy, so faults work).

Orders are kept in memory, or in PostgreSQL with ``--dsn`` (table ``shop_orders``; the
ledger export and a SQL audit read the same rows). It prints ``ready`` on stdout once both
ports listen.
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
from typing import Any

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

IDEMPOTENCY_HEADER = "Idempotency-Key"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS shop_orders (
    id text PRIMARY KEY,
    ref text NOT NULL,
    idempotency_key text NOT NULL,
    sku text NOT NULL,
    quantity integer NOT NULL,
    customer text NOT NULL,
    status text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
)
"""


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
    """Where confirmed orders are recorded: memory, or a PostgreSQL table."""

    def __init__(self, dsn: str | None) -> None:
        self._dsn = dsn
        self._rows: dict[str, list[str]] = {}  # ref -> order ids
        self._conn: Any = None
        self._lock = asyncio.Lock()

    async def open(self) -> None:
        if self._dsn:
            import psycopg  # only with --dsn

            self._conn = await psycopg.AsyncConnection.connect(self._dsn, autocommit=True)
            await self._conn.execute(_SCHEMA)

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()

    async def record(self, checkout: Checkout) -> None:
        if self._conn is None:
            self._rows.setdefault(checkout.ref, []).append(checkout.id)
            return
        async with self._lock:
            await self._conn.execute(
                "INSERT INTO shop_orders (id, ref, idempotency_key, sku, quantity, customer,"
                " status) VALUES (%s, %s, %s, %s, %s, %s, 'confirmed')"
                " ON CONFLICT (id) DO NOTHING",
                (
                    checkout.id,
                    checkout.ref,
                    checkout.key,
                    checkout.sku,
                    checkout.quantity,
                    checkout.customer,
                ),
            )

    async def order_ids(self, ref: str) -> list[str]:
        if self._conn is None:
            return list(self._rows.get(ref, []))
        async with self._lock:
            cursor = await self._conn.execute(
                "SELECT id FROM shop_orders WHERE ref = %s ORDER BY created_at, id", (ref,)
            )
            return [row[0] for row in await cursor.fetchall()]


@dataclass
class Shop:
    inventory_url: str
    ledger: Ledger
    reserve_timeout_s: float = 1.0
    checkouts: dict[str, Checkout] = field(default_factory=dict)
    by_key: dict[str, str] = field(default_factory=dict)
    drop_next: int = 0
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
        return web.json_response({"ref": ref, "order_ids": await self.ledger.order_ids(ref)})

    async def admin(self, request: web.Request) -> web.Response:
        body = await request.json()
        if "drop_next" in body:
            self.drop_next = int(body["drop_next"])
        return web.json_response({"drop_next": self.drop_next})

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
        if reason is None and not checkout.drop:
            try:
                await self.ledger.record(checkout)
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
    api.router.add_post("/api/v2/admin", shop.admin)
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
