"""ToxiproxyClient: error mapping against a tiny local HTTP server, timeouts, toxic names."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from chaoskit.errors import EnvironmentProblem, TargetUnreachable, ToxiproxyError
from chaoskit.exit_codes import exit_code_for_error
from chaoskit.faults.toxiproxy import (
    ProxySpec,
    Toxic,
    ToxicName,
    ToxiproxyClient,
    is_chaoskit_toxic,
    parse_toxic_name,
    toxic_name,
)

# path -> (status, body); a body of bytes is sent as is (not JSON).
Routes = dict[tuple[str, str], tuple[int, Any]]


class _Handler(BaseHTTPRequestHandler):
    routes: Routes = {}
    requests: list[tuple[str, str, Any]] = []

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        self.requests.append((self.command, self.path, json.loads(raw) if raw else None))
        status, body = self.routes.get((self.command, self.path), (404, {"error": "no route"}))
        payload = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_DELETE = _answer

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[tuple[str, type[_Handler]]]:
    handler = type("Handler", (_Handler,), {"routes": {}, "requests": []})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", handler
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.mark.parametrize(
    ("status", "server_error"),
    [
        (400, "bad request body: invalid character 'x'"),
        (404, "proxy not found"),
        (409, "toxic already exists"),
        (500, "listen tcp 127.0.0.1:1: bind: address already in use"),
        (503, "service unavailable"),
    ],
)
def test_http_errors_keep_status_and_server_message(
    server: tuple[str, type[_Handler]], status: int, server_error: str
) -> None:
    url, handler = server
    handler.routes[("POST", "/proxies/inventory/toxics")] = (
        status,
        {"error": server_error, "status": status},
    )
    with ToxiproxyClient(url) as client, pytest.raises(ToxiproxyError) as caught:
        client.add_toxic("inventory", Toxic(name="t", type="latency", attributes={"latency": 5}))
    assert caught.value.status == status
    assert server_error in str(caught.value)
    assert str(status) in str(caught.value)
    assert isinstance(caught.value, EnvironmentProblem) and exit_code_for_error(caught.value) == 4


def test_error_body_that_is_not_json_is_quoted(server: tuple[str, type[_Handler]]) -> None:
    url, handler = server
    handler.routes[("GET", "/proxies")] = (503, b"upstream overloaded")
    with ToxiproxyClient(url) as client, pytest.raises(ToxiproxyError) as caught:
        client.proxies()
    assert caught.value.status == 503
    assert "upstream overloaded" in str(caught.value)


def test_connection_refused_is_target_unreachable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # Nothing listens on the port now.
    url = f"http://127.0.0.1:{port}"
    with ToxiproxyClient(url) as client, pytest.raises(TargetUnreachable) as caught:
        client.version()
    assert str(caught.value).startswith(f"Toxiproxy at {url} does not answer:")


def test_a_server_that_never_answers_does_not_hang() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)  # accepts the connection (kernel backlog) but never responds
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        started = time.monotonic()
        with (
            ToxiproxyClient(url, read_timeout_s=0.3) as client,
            pytest.raises(TargetUnreachable, match="does not answer"),
        ):
            client.proxies()
        assert time.monotonic() - started < 2.0


def test_requests_and_parsing(server: tuple[str, type[_Handler]]) -> None:
    url, handler = server
    proxy = {
        "name": "inventory",
        "listen": "127.0.0.1:18421",
        "upstream": "127.0.0.1:18411",
        "enabled": True,
        "toxics": [
            {
                "name": "chaoskit.r1.slow.downstream",
                "type": "latency",
                "stream": "downstream",
                "toxicity": 0.5,
                "attributes": {"latency": 200, "jitter": 0},
            }
        ],
    }
    handler.routes.update(
        {
            ("GET", "/version"): (200, {"version": "git"}),
            ("POST", "/populate"): (201, {"proxies": [proxy]}),
            ("GET", "/proxies"): (200, {"inventory": proxy}),
            ("POST", "/proxies/inventory"): (200, {**proxy, "enabled": False}),
            ("POST", "/proxies/inventory/toxics/t1"): (200, proxy["toxics"][0]),
            ("DELETE", "/proxies/inventory/toxics/gone"): (404, {"error": "toxic not found"}),
            ("POST", "/reset"): (204, b""),
        }
    )
    with ToxiproxyClient(url + "/") as client:
        assert client.version() == "git"
        populated = client.populate(
            [ProxySpec(name="inventory", listen="127.0.0.1:18421", upstream="127.0.0.1:18411")]
        )
        assert [p.name for p in populated] == ["inventory"]
        listed = client.proxies()["inventory"]
        assert listed.toxics[0].toxicity == 0.5
        assert listed.toxics[0].attributes["latency"] == 200
        assert client.set_enabled("inventory", False).enabled is False
        client.update_toxic("inventory", "t1", {"latency": 300}, toxicity=1.0)
        client.remove_toxic("inventory", "gone", missing_ok=True)
        with pytest.raises(ToxiproxyError) as caught:
            client.remove_toxic("inventory", "gone")
        assert caught.value.status == 404
        client.reset()
    sent = {(method, path): body for method, path, body in handler.requests}
    assert sent[("POST", "/populate")] == [
        {
            "name": "inventory",
            "listen": "127.0.0.1:18421",
            "upstream": "127.0.0.1:18411",
            "enabled": True,
        }
    ]
    assert sent[("POST", "/proxies/inventory")] == {"enabled": False}
    assert sent[("POST", "/proxies/inventory/toxics/t1")] == {
        "attributes": {"latency": 300},
        "toxicity": 1.0,
    }


def test_toxic_names_round_trip() -> None:
    name = toxic_name("20260101-120000-surge", "slow.inventory", "upstream")
    assert name == "chaoskit.20260101-120000-surge.slow.inventory.upstream"
    assert parse_toxic_name(name) == ToxicName(
        "20260101-120000-surge", "slow.inventory", "upstream"
    )
    assert is_chaoskit_toxic(name)
    assert is_chaoskit_toxic(name, run_id="20260101-120000-surge")
    assert not is_chaoskit_toxic(name, run_id="20260101-120000-other")


@pytest.mark.parametrize(
    "foreign",
    [
        "latency_downstream",
        "chaoskit",
        "chaoskit.run",
        "chaoskit.run.downstream",
        "chaoskit.run.fault.sideways",
        "chaoskitx.run.fault.upstream",
        "other.run.fault.upstream",
    ],
)
def test_foreign_toxic_names_are_not_ours(foreign: str) -> None:
    assert parse_toxic_name(foreign) is None
    assert not is_chaoskit_toxic(foreign)


@pytest.mark.parametrize(
    ("run_id", "fault", "stream"),
    [("", "f", "upstream"), ("a.b", "f", "upstream"), ("r", "", "upstream"), ("r", "f", "both")],
)
def test_toxic_name_rejects_ambiguous_parts(run_id: str, fault: str, stream: Any) -> None:
    with pytest.raises(ValueError):
        toxic_name(run_id, fault, stream)
