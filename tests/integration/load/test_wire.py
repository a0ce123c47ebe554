"""What a journey's requests carry on the wire, as a real server on 127.0.0.1 sees them.

The engine sends through geventhttpclient's connection layer (``chaoskit.load.wire``), not
Locust's user agent: these check what the user agent used to give and a team's API relies
on: cookies a step's answer sets, credentials in the gateway URL, and a connection that
still works after a step's own timeout cut a request off.
"""

from __future__ import annotations

import base64
import contextlib
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from chaoskit.journey import JourneyConfig
from chaoskit.load.process import LoadProcess
from chaoskit.load.spec import LoadSpec

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


@dataclass
class Seen:
    """What the server saw, by path."""

    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    slow_first: int = 0  # this many /slow requests take 2 s
    lock: threading.Lock = field(default_factory=threading.Lock)

    def of(self, path: str) -> list[dict[str, str]]:
        with self.lock:
            return self.of_unlocked(path)

    def of_unlocked(self, path: str) -> list[dict[str, str]]:
        return [headers for p, headers in self.requests if p == path]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    seen: Seen


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib name
        pass

    def _answer(self, status: int, payload: dict[str, Any], extra: dict[str, str]) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        for name, value in extra.items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.wfile.write(body)

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        seen = self.server.seen
        headers = {name.lower(): value for name, value in self.headers.items()}
        with seen.lock:
            seen.requests.append((self.path, headers))
            slow = self.path == "/slow" and len(seen.of_unlocked("/slow")) <= seen.slow_first
        if self.path == "/login":
            cookie = "sid=s-42; Path=/; HttpOnly"
            self._answer(200, {"ok": True}, {"Set-Cookie": cookie})
        elif self.path == "/orders":
            ok = "sid=s-42" in headers.get("cookie", "")
            self._answer(200 if ok else 401, {"ok": ok}, {})
        elif self.path == "/slow":
            if slow:
                time.sleep(2.0)
            self._answer(200, {"ok": True}, {})
        else:
            self._answer(404, {}, {})


@pytest.fixture
def server() -> Iterator[tuple[str, Seen]]:
    http = _Server(("127.0.0.1", 0), _Handler)
    http.seen = Seen()
    thread = threading.Thread(target=http.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"127.0.0.1:{http.server_address[1]}", http.seen
    finally:
        http.shutdown()
        http.server_close()
        thread.join(timeout=5)


def _run(
    tmp_path: Path, url: str, journey: dict[str, Any], **overrides: Any
) -> list[dict[str, Any]]:
    fields: dict[str, Any] = {
        "run_id": "wire",
        "run_dir": str(tmp_path / "run"),
        "gateway_url": url,
        "t0": time.time() + 1.5,
        "duration_s": 3.0,
        "seed": 5,
        "model": "closed",
        "shape": {"kind": "constant", "for": 3, "users": 1},
        "journey": JourneyConfig.model_validate(journey),
    }
    fields.update(overrides)
    engine = LoadProcess.start(LoadSpec(**fields))
    records = list(engine.ticks())
    assert engine.wait(timeout=20) == 0, engine.stderr_tail()
    return [r for r in records if r["type"] == "tick"]


def _total(ticks: list[dict[str, Any]], name: str) -> int:
    return sum(int(t[name]) for t in ticks)


def _step(name: str, path: str, **request: Any) -> dict[str, Any]:
    return {
        "name": name,
        "request": {"method": "POST", "path": path, "json": {"k": "{{order_key}}"}, **request},
        "expect": {"status": [200]},
    }


def test_a_cookie_set_by_one_step_goes_with_the_next(
    tmp_path: Path, server: tuple[str, Seen]
) -> None:
    address, seen = server
    journey = {
        "steps": [_step("login", "/login"), _step("order", "/orders")],
        "order_id": "{{order_key}}",
    }
    ticks = _run(tmp_path, f"http://{address}", journey)
    orders = seen.of("/orders")
    assert orders, "no order request arrived"
    assert all("sid=s-42" in headers.get("cookie", "") for headers in orders)
    assert _total(ticks, "fulfilled") > 0
    assert _total(ticks, "request_errors") == 0
    # a login's cookie is the attempt's own: the first step never carries one
    assert all("cookie" not in headers for headers in seen.of("/login"))


def test_credentials_in_the_gateway_url_become_basic_auth(
    tmp_path: Path, server: tuple[str, Seen]
) -> None:
    address, seen = server
    journey = {"steps": [_step("slow", "/slow")], "order_id": "{{order_key}}"}
    _run(tmp_path, f"http://buyer:p%40ss@{address}", journey, duration_s=2.0)
    expected = "Basic " + base64.b64encode(b"buyer:p@ss").decode()
    requests = seen.of("/slow")
    assert requests
    assert {headers.get("authorization") for headers in requests} == {expected}


def test_a_step_timeout_cuts_the_request_and_the_user_goes_on(
    tmp_path: Path, server: tuple[str, Seen]
) -> None:
    address, seen = server
    seen.slow_first = 2  # the first two answers come after 2 s; the step allows 0.3 s
    journey = {"steps": [_step("slow", "/slow", timeout="300ms")], "order_id": "{{order_key}}"}
    ticks = _run(tmp_path, f"http://{address}", journey, duration_s=4.0)
    assert _total(ticks, "request_errors") >= 2
    # after the cut-off requests, the same user's connection carries on
    assert _total(ticks, "fulfilled") >= 10, ticks
    assert len(seen.of("/slow")) >= 12
