"""A real HTTP server on 127.0.0.1 that plays a stack's /stats and /ledger endpoints."""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


class FakeStack:
    """One HTTP server; /<service>/ledger and /<service>/stats answer from ``routes``."""

    def __init__(self) -> None:
        self.routes: dict[str, Any] = {}
        self.stats_calls = 0
        stack = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = stack.answer(self.path)
                if body is None:
                    self.send_response(404)
                    self.end_headers()
                    return
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        for _ in range(50):
            try:
                self.server = ThreadingHTTPServer(
                    ("127.0.0.1", random.randint(24000, 24999)), Handler
                )
                break
            except OSError:
                continue
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def answer(self, path: str) -> Any:
        if path.endswith("/stats"):
            self.stats_calls += 1
        value = self.routes.get(path)
        return value() if callable(value) else value

    def services(self, *names: str) -> dict[str, str]:
        return {name: f"{self.base}/{name}" for name in names}

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stack() -> Iterator[FakeStack]:
    fake = FakeStack()
    yield fake
    fake.close()
