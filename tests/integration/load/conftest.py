"""A real HTTP endpoint on 127.0.0.1 that answers POST /orders like the gateway, configurably."""

from __future__ import annotations

import contextlib
import json
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


@dataclass
class GatewayBehaviour:
    """What the endpoint answers: ok, or failure at ``fail_step`` with ``fail_status``."""

    fail_step: str | None = None
    fail_status: int = 503
    delay_s: float = 0.0
    orders: list[dict[str, object]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def received(self) -> list[dict[str, object]]:
        with self.lock:
            return list(self.orders)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 512
    behaviour: GatewayBehaviour


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib name
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        body = json.loads(self.rfile.read(length) or b"{}")
        behaviour = self.server.behaviour
        with behaviour.lock:
            behaviour.orders.append(body)
        if behaviour.delay_s:
            time.sleep(behaviour.delay_s)
        if behaviour.fail_step is None:
            status = 200
            answer: dict[str, object] = {
                "outcome": "ok",
                "order_id": body.get("order_id"),
                "eligible": False,
                "coupon": "none",
                "store": "s1",
                "rider_id": "r1",
                "eta_min": 20,
            }
        else:
            status = behaviour.fail_status
            answer = {"outcome": "failed", "step": behaviour.fail_step, "reason": "test double"}
        payload = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        with contextlib.suppress(BrokenPipeError):  # the engine stopped mid-answer
            self.wfile.write(payload)


@pytest.fixture
def gateway() -> Iterator[tuple[str, GatewayBehaviour]]:
    """(base URL, behaviour) of a fresh gateway double on a port in 22000-22999."""
    behaviour = GatewayBehaviour()
    server: _Server | None = None
    for _ in range(20):
        try:
            server = _Server(("127.0.0.1", random.randint(22000, 22999)), _Handler)
            break
        except OSError:
            continue
    assert server is not None, "no free port in 22000-22999"
    server.behaviour = behaviour
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", behaviour
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
