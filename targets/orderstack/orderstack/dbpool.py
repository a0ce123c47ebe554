"""A bounded pool of SQLite connections, used from worker threads: the DB pool that runs dry."""

from __future__ import annotations

import asyncio
import sqlite3
from collections import deque
from pathlib import Path

__all__ = ["SqlitePool", "connect"]


def connect(path: Path) -> sqlite3.Connection:
    """A WAL-mode connection usable from any one thread at a time, with explicit transactions."""
    conn = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    # NORMAL in WAL mode survives a process crash (not a power cut): right for a stub ledger.
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


class SqlitePool:
    """At most `size` open connections; acquire waits (FIFO) when all are busy; size can change."""

    def __init__(self, path: Path, *, size: int) -> None:
        self.path = path
        self.size = size
        self.opened = 0
        self.idle: list[sqlite3.Connection] = []
        self.waiters: deque[asyncio.Future[sqlite3.Connection]] = deque()

    @property
    def in_use(self) -> int:
        """Connections handed out right now."""
        return self.opened - len(self.idle)

    @property
    def waiting(self) -> int:
        """Callers waiting for a connection."""
        return sum(1 for w in self.waiters if not w.done())

    async def acquire(self) -> sqlite3.Connection:
        """A connection; give it back with release()."""
        if self.idle:
            return self.idle.pop()
        if self.opened < self.size:
            self.opened += 1
            return connect(self.path)
        waiter: asyncio.Future[sqlite3.Connection] = asyncio.get_running_loop().create_future()
        self.waiters.append(waiter)
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release(waiter.result())
            raise

    def release(self, conn: sqlite3.Connection) -> None:
        """Return a connection (closed instead when the pool has shrunk below what is open)."""
        if self.opened > self.size:
            self.opened -= 1
            conn.close()
            return
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        self.idle.append(conn)

    def resize(self, size: int) -> None:
        """Change the bound; extra idle connections close now, busy ones when released."""
        self.size = size
        while self.opened > size and self.idle:
            self.idle.pop().close()
            self.opened -= 1
        while self.opened < size and self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                self.opened += 1
                waiter.set_result(connect(self.path))

    def close(self) -> None:
        """Close idle connections and fail waiters (shutdown)."""
        for conn in self.idle:
            conn.close()
        self.opened -= len(self.idle)
        self.idle.clear()
        for waiter in self.waiters:
            if not waiter.done():
                waiter.cancel()
        self.waiters.clear()
