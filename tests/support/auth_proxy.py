"""A tiny authenticating reverse proxy, as a team puts in front of its Prometheus.

    with bearer_proxy(prometheus.url, token="t0k") as proxy:   # http://127.0.0.1:PORT
        ...                                                    # proxy.refused, proxy.passed

A stdlib ``http.server`` on 127.0.0.1: a GET carrying ``Authorization: Bearer <token>`` is
forwarded to the upstream (path and query as given) and its answer returned; any other is
answered 401 with a JSON error body, like an auth proxy's (so a client that reads the body
before the status would mistake it for Prometheus refusing the query).
"""

from __future__ import annotations

import contextlib
import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["BearerProxy", "bearer_proxy"]


@dataclass
class BearerProxy:
    """Where the proxy listens, and what it let through or refused."""

    url: str
    passed: int = 0
    refused: list[str] = field(default_factory=list)  # the Authorization values it refused


@contextlib.contextmanager
def bearer_proxy(upstream: str, *, token: str) -> Iterator[BearerProxy]:
    """Serve on a free 127.0.0.1 port until the block ends."""
    upstream = upstream.rstrip("/")
    state = BearerProxy(url="")
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # no proxy from env

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            given = self.headers.get("Authorization")
            if given != f"Bearer {token}":
                state.refused.append(str(given))
                self._answer(401, json.dumps({"status": "error", "error": "unauthorized"}))
                return
            state.passed += 1
            try:
                with direct.open(upstream + self.path, timeout=10) as answer:
                    self._answer(answer.status, answer.read().decode())
            except urllib.error.HTTPError as exc:
                self._answer(exc.code, exc.read().decode())

        def _answer(self, status: int, body: str) -> None:
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
