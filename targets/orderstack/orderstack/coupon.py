"""coupon: the durable subsidy ledger (SQLite), credits idempotent by order unless switched off."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from .common import Service, field_of, json_response, read_json
from .config import StackConfig
from .dbpool import SqlitePool, connect
from .histogram import LogHistogram
from .httpserver import Request, Response, Route, post
from .settings import CouponSettings, ServiceSettings

__all__ = ["CouponService", "LEDGER_FILE"]

LEDGER_FILE = "coupon-ledger.sqlite3"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS credit_keys (order_id TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS credits (
    id INTEGER PRIMARY KEY,
    order_id TEXT NOT NULL,
    order_time REAL NOT NULL,
    credited_at REAL NOT NULL,
    amount REAL NOT NULL
);
"""


def _write_credit(
    conn: sqlite3.Connection,
    order_id: str,
    order_time: float,
    amount: float,
    *,
    lag_s: float,
    idempotent: bool,
) -> float | None:
    """Write one credit; the credit time, or None when an idempotent ledger already has it."""
    if lag_s > 0.0:
        # The connection is held while waiting: a slow ledger drains the pool, like a slow DB.
        time.sleep(lag_s)
    conn.execute("BEGIN IMMEDIATE")
    try:
        # The UNIQUE key table is what makes a credit idempotent; with idempotent=false the row
        # is written anyway, which is how an experiment shows double credits.
        first = conn.execute(
            "INSERT OR IGNORE INTO credit_keys(order_id) VALUES (?)", (order_id,)
        ).rowcount
        credited_at: float | None = None
        if first == 1 or not idempotent:
            credited_at = time.time()
            conn.execute(
                "INSERT INTO credits(order_id, order_time, credited_at, amount) VALUES (?,?,?,?)",
                (order_id, order_time, credited_at, amount),
            )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return credited_at


def _read_credits(path: Path) -> list[dict[str, Any]]:
    conn = connect(path)
    try:
        rows = conn.execute(
            "SELECT order_id, order_time, credited_at, amount FROM credits ORDER BY id"
        ).fetchall()
    finally:
        conn.close()
    keys = ("order_id", "order_time", "credited_at", "amount")
    return [dict(zip(keys, row, strict=True)) for row in rows]


class CouponService(Service):
    name = "coupon"
    settings: CouponSettings

    def __init__(self, config: StackConfig) -> None:
        super().__init__(config)
        self.counters.update(credits=0, duplicates_ignored=0, credit_errors=0)
        self.histograms["coupon_delay_ms"] = LogHistogram()
        self.histograms["credit_ms"] = LogHistogram()
        self.path = config.data_dir / LEDGER_FILE
        self.pool = SqlitePool(self.path, size=self.settings.pool_size)
        # More threads than the largest pool, so the pool (not the executor) is the bound.
        self.executor = ThreadPoolExecutor(max_workers=72, thread_name_prefix="coupon-db")

    async def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = connect(self.path)
        try:
            conn.executescript(_SCHEMA)
        finally:
            conn.close()

    async def stop(self) -> None:
        self.pool.close()
        self.executor.shutdown(wait=True, cancel_futures=True)

    def routes(self) -> list[Route]:
        return [post("/credit", self.credit)]

    async def credit(self, request: Request) -> Response:
        body = await read_json(request)
        order_id = field_of(body, "order_id", str)
        order_time = float(field_of(body, "order_time", (int, float)))
        amount = float(field_of(body, "amount", (int, float), 1.0))
        s = self.settings
        loop = asyncio.get_running_loop()
        started = loop.time()
        conn = await self.pool.acquire()
        # The lag is read when the write runs, not when the request came: writes queued for
        # the pool during a coupon_lag fault run at normal speed once the fault is removed.
        write = loop.run_in_executor(
            self.executor,
            lambda: _write_credit(
                conn,
                order_id,
                order_time,
                amount,
                lag_s=self.settings.lag_ms / 1000.0,
                idempotent=s.idempotent,
            ),
        )
        # The connection goes back only when its thread is done with it, even if we are cancelled.
        write.add_done_callback(lambda _: self.pool.release(conn))
        try:
            credited_at = await asyncio.shield(write)
        except sqlite3.Error as exc:
            self.counters["credit_errors"] += 1
            return json_response({"error": f"ledger: {exc}"}, 503, {"Retry-After": "1"})
        self.histograms["credit_ms"].record((loop.time() - started) * 1000.0)
        if credited_at is None:
            self.counters["duplicates_ignored"] += 1
            return json_response({"status": "duplicate", "order_id": order_id})
        self.counters["credits"] += 1
        self.histograms["coupon_delay_ms"].record((credited_at - order_time) * 1000.0)
        return json_response(
            {"status": "credited", "order_id": order_id, "credited_at": credited_at}
        )

    def settings_changed(self, old: ServiceSettings) -> None:
        self.pool.resize(self.settings.pool_size)

    def gauges(self) -> dict[str, float]:
        return {
            "pool_in_use": self.pool.in_use,
            "pool_waiting": self.pool.waiting,
            "pool_size": self.pool.size,
        }

    async def _ledger_json(self) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        return {"credits": await loop.run_in_executor(self.executor, _read_credits, self.path)}

    async def _ledger(self, request: Request) -> Response:
        return json_response(await self._ledger_json())
