"""The gateway's durable coupon outbox: credits owed, written before the order is answered,
drained to the coupon service in the background with backoff until each one lands."""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import random
import sqlite3
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .dbpool import connect

__all__ = ["OUTBOX_FILE", "Outbox", "OutboxItem"]

OUTBOX_FILE = "gateway-outbox.sqlite3"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    order_id TEXT PRIMARY KEY,
    order_time REAL NOT NULL,
    amount REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0
);
"""

# (sql, params) pairs written together in one transaction: a group commit.
_Op = tuple[str, tuple[Any, ...]]


@dataclass(slots=True)
class OutboxItem:
    """One credit still owed."""

    order_id: str
    order_time: float
    amount: float
    attempts: int = 0
    sending: bool = False


_Send = Callable[[OutboxItem], Awaitable[bool]]


class Outbox:
    """Pending credits in SQLite (group-committed) plus the in-memory mirror the drainer uses."""

    def __init__(
        self,
        path: Path,
        *,
        rng: random.Random,
        concurrency: int = 32,
        backoff_base_s: float = 0.1,
        backoff_cap_s: float = 2.0,
    ) -> None:
        self.path = path
        self.rng = rng
        self.concurrency = concurrency
        self.backoff_base_s = backoff_base_s
        self.backoff_cap_s = backoff_cap_s
        self.pending: dict[str, OutboxItem] = {}
        self._due: list[tuple[float, int, str]] = []  # heap of (loop time, seq, order_id)
        self._seq = 0
        self._ops: list[_Op] = []
        self._committed: list[asyncio.Future[None]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._sends: set[asyncio.Task[None]] = set()
        # One thread: SQLite writes to one file serialise anyway, and order is kept.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="outbox")
        self._conn: sqlite3.Connection | None = None

    def open(self) -> None:
        """Create or reopen the outbox file and load what is still owed (survives restarts)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = connect(self.path)
        self._conn.executescript(_SCHEMA)
        rows = self._conn.execute("SELECT order_id, order_time, amount, attempts FROM outbox")
        now = asyncio.get_running_loop().time()
        for order_id, order_time, amount, attempts in rows:
            self.pending[order_id] = OutboxItem(order_id, order_time, amount, attempts)
            self._push(now, order_id)

    async def close(self) -> None:
        """Stop sending, flush what is queued for the file, close it."""
        for task in list(self._sends):
            task.cancel()
        if self._flusher is not None:
            await asyncio.gather(self._flusher, return_exceptions=True)
        self._executor.shutdown(wait=True)
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    async def add(self, order_id: str, order_time: float, amount: float) -> bool:
        """Durably record a credit owed; False if that order is already owed one."""
        if order_id in self.pending:
            return False
        self.pending[order_id] = OutboxItem(order_id, order_time, amount)
        try:
            await self._write(
                "INSERT OR IGNORE INTO outbox(order_id, order_time, amount) VALUES (?,?,?)",
                (order_id, order_time, amount),
            )
        except BaseException:
            self.pending.pop(order_id, None)
            raise
        self._push(asyncio.get_running_loop().time(), order_id)
        return True

    def ledger(self) -> list[dict[str, Any]]:
        """The /ledger form of what is still owed."""
        return [
            {"order_id": i.order_id, "order_time": i.order_time, "attempts": i.attempts}
            for i in self.pending.values()
        ]

    async def drain(self, send: _Send) -> None:
        """Forever: send due credits (bounded concurrency); failures retry with jittered backoff."""
        loop = asyncio.get_running_loop()
        slots = asyncio.Semaphore(self.concurrency)
        while True:
            if not self._due:
                self._wake.clear()
                await self._wake.wait()
                continue
            delay = self._due[0][0] - loop.time()
            if delay > 0.0:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), delay)
                continue
            _, _, order_id = heapq.heappop(self._due)
            item = self.pending.get(order_id)
            if item is None or item.sending:
                continue
            await slots.acquire()
            item.sending = True
            task = loop.create_task(self._deliver(item, send, slots))
            self._sends.add(task)
            task.add_done_callback(self._sends.discard)

    async def _deliver(self, item: OutboxItem, send: _Send, slots: asyncio.Semaphore) -> None:
        try:
            try:
                ok = await send(item)
            except Exception:
                ok = False
            if ok:
                del self.pending[item.order_id]
                # Not awaited: losing this delete in a crash only re-sends an idempotent credit.
                self._enqueue("DELETE FROM outbox WHERE order_id = ?", (item.order_id,))
                return
            item.attempts += 1
            self._enqueue(
                "UPDATE outbox SET attempts = ? WHERE order_id = ?", (item.attempts, item.order_id)
            )
            backoff = min(self.backoff_cap_s, self.backoff_base_s * 2 ** (item.attempts - 1))
            # Equal jitter: spread retries out, but never retry sooner than half the backoff.
            wait = backoff * (0.5 + 0.5 * self.rng.random())
            self._push(asyncio.get_running_loop().time() + wait, item.order_id)
        finally:
            item.sending = False
            slots.release()

    def _push(self, due: float, order_id: str) -> None:
        self._seq += 1
        heapq.heappush(self._due, (due, self._seq, order_id))
        self._wake.set()

    # --- group commit -------------------------------------------------------------------
    def _enqueue(self, sql: str, params: tuple[Any, ...]) -> asyncio.Future[None]:
        committed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._ops.append((sql, params))
        self._committed.append(committed)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush())
        return committed

    async def _write(self, sql: str, params: tuple[Any, ...]) -> None:
        await self._enqueue(sql, params)

    async def _flush(self) -> None:
        loop = asyncio.get_running_loop()
        while self._ops:
            ops, self._ops = self._ops, []
            committed, self._committed = self._committed, []
            try:
                await loop.run_in_executor(self._executor, self._commit, ops)
            except Exception as exc:
                for fut in committed:
                    if not fut.done():
                        fut.set_exception(exc)
                        fut.exception()  # mark retrieved: fire-and-forget callers never await
                continue
            for fut in committed:
                if not fut.done():
                    fut.set_result(None)

    def _commit(self, ops: list[_Op]) -> None:
        conn = self._conn
        if conn is None:
            raise sqlite3.ProgrammingError("outbox is closed")
        conn.execute("BEGIN")
        try:
            for sql, params in ops:
                conn.execute(sql, params)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
