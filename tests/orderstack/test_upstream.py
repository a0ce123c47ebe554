"""The gateway's HTTP/1.1 client against real servers on 127.0.0.1: aiohttp, raw, Toxiproxy."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web

from orderstack.upstream import BadResponse, ConnectFailed, Disconnected, Upstream

from .conftest import free_ports

TOXIPROXY = Path(__file__).resolve().parents[2] / ".chaoskit" / "bin" / "toxiproxy-server"


@contextlib.asynccontextmanager
async def aiohttp_server(routes: list[web.RouteDef]) -> AsyncIterator[str]:
    """A real aiohttp server on a free port; yields its base URL."""
    app = web.Application()
    app.add_routes(routes)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_ports(1)[0]
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


_Reply = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@contextlib.asynccontextmanager
async def raw_server(reply: _Reply) -> AsyncIterator[tuple[str, list[int]]]:
    """A TCP server answering with hand-made bytes; yields its URL and each connection's port."""
    peers: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peers.append(writer.get_extra_info("peername")[1])
        try:
            await reply(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    port = free_ports(1)[0]
    server = await asyncio.start_server(handle, "127.0.0.1", port)
    try:
        yield f"http://127.0.0.1:{port}", peers
    finally:
        server.close()
        await server.wait_closed()


async def read_request(reader: asyncio.StreamReader) -> bytes:
    """One request's body (requests from this client always carry Content-Length or none)."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return await reader.readexactly(length)


async def echo_peer(request: web.Request) -> web.Response:
    """Answers with the client's port (one port = one connection) and the body it got."""
    assert request.transport is not None
    body = await request.read()
    await asyncio.sleep(json.loads(body).get("sleep", 0) if body else 0)
    peer = request.transport.get_extra_info("peername")[1]
    return web.json_response({"peer": peer, "got": body.decode()})


def run(scenario: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(scenario())


def test_keep_alive_reuses_connections_lifo() -> None:
    async def scenario() -> None:
        async with aiohttp_server([web.post("/echo", echo_peer)]) as url:
            upstream = Upstream(url)
            try:
                peers = set()
                for i in range(5):
                    resp = await upstream.post("/echo", json.dumps({"i": i}).encode(), timeout=2)
                    assert resp.status == 200
                    assert resp.headers["content-type"].startswith("application/json")
                    assert json.loads(resp.body)["got"] == json.dumps({"i": i})
                    peers.add(json.loads(resp.body)["peer"])
                assert len(peers) == 1 and upstream.connections_opened == 1

                # Three at once need three connections; they come back in the order they finish
                # and the one released last (the slowest) is reused first.
                answers = await asyncio.gather(
                    *(
                        upstream.post("/echo", json.dumps({"sleep": s}).encode(), timeout=2)
                        for s in (0.0, 0.1, 0.2)
                    )
                )
                assert upstream.connections_opened == 3 and upstream.idle == 3
                slowest = json.loads(answers[2].body)["peer"]
                again = await upstream.post("/echo", b"{}", timeout=2)
                assert json.loads(again.body)["peer"] == slowest
                assert upstream.connections_opened == 3
            finally:
                upstream.close()
            assert upstream.idle == 0
            with pytest.raises(ConnectFailed, match="closed"):
                await upstream.post("/echo", b"{}", timeout=2)

    run(scenario)


def test_connection_close_header_and_idle_close_by_the_server_open_a_new_connection() -> None:
    async def closing(request: web.Request) -> web.Response:
        resp = web.json_response({"ok": True})
        resp.force_close()  # sends Connection: close and hangs up
        return resp

    async def scenario() -> None:
        async with aiohttp_server([web.post("/close", closing)]) as url:
            upstream = Upstream(url)
            for _ in range(3):
                resp = await upstream.post("/close", b"{}", timeout=2)
                assert resp.status == 200 and resp.headers["connection"] == "close"
                assert upstream.idle == 0
            assert upstream.connections_opened == 3
            upstream.close()

        # A keep-alive answer, then the server hangs up while the connection sits idle.
        async def once_then_hang_up(reader: asyncio.StreamReader, _w: asyncio.StreamWriter) -> None:
            await read_request(reader)
            _w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await _w.drain()

        async with raw_server(once_then_hang_up) as (url, peers):
            upstream = Upstream(url)
            assert (await upstream.post("/", b"{}", timeout=2)).body == b"ok"
            await asyncio.sleep(0.1)  # the FIN arrives while idle: the pool notices and drops it
            assert (await upstream.post("/", b"{}", timeout=2)).body == b"ok"
            assert len(peers) == 2 and upstream.connections_opened == 2
            upstream.close()

    run(scenario)


def test_only_idempotent_calls_are_resent_when_a_kept_alive_connection_dies() -> None:
    # Each connection answers one request, then takes the next one and hangs up: the race of a
    # server closing an idle connection just as the client reuses it.
    async def one_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        await read_request(reader)

    async def scenario() -> None:
        async with raw_server(one_answer) as (url, peers):
            upstream = Upstream(url)
            assert (await upstream.get("/", timeout=2)).body == b"ok"
            assert (await upstream.get("/", timeout=2)).body == b"ok"  # resent once, quietly
            assert len(peers) == 2
            # A POST may have been acted on: the caller decides (the gateway's retry policy).
            with pytest.raises(Disconnected):
                await upstream.post("/", b"{}", timeout=2)
            assert len(peers) == 2
            upstream.close()

    run(scenario)


def test_a_response_cut_short_raises_disconnected_and_drops_the_connection() -> None:
    async def half(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"partial":')
        await writer.drain()

    async def scenario() -> None:
        async with raw_server(half) as (url, _):
            upstream = Upstream(url)
            with pytest.raises(Disconnected, match="closed"):
                await upstream.post("/", b"{}", timeout=2)
            assert upstream.idle == 0
            upstream.close()

    run(scenario)


def test_timeout_covers_the_whole_call_and_discards_the_connection() -> None:
    async def scenario() -> None:
        async with aiohttp_server([web.post("/echo", echo_peer)]) as url:
            upstream = Upstream(url)
            started = time.monotonic()
            with pytest.raises(TimeoutError):
                await upstream.post("/echo", b'{"sleep": 2}', timeout=0.2)
            assert 0.15 < time.monotonic() - started < 1.0
            assert upstream.idle == 0
            # The late answer must not leak into the next call: it gets a fresh connection.
            resp = await upstream.post("/echo", b'{"n": 2}', timeout=2)
            assert json.loads(resp.body)["got"] == '{"n": 2}'
            assert upstream.connections_opened == 2
            upstream.close()

    run(scenario)


def test_chunked_responses_are_reassembled_and_keep_the_connection() -> None:
    async def chunked(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for piece in (b'{"a":', b"[1,2,3]", b',"b":"', b"x" * 5000, b'"}'):
            await resp.write(piece)
        await resp.write_eof()
        return resp

    async def scenario() -> None:
        async with aiohttp_server([web.get("/chunked", chunked)]) as url:
            upstream = Upstream(url)
            for _ in range(3):
                resp = await upstream.get("/chunked", timeout=2)
                assert resp.headers["transfer-encoding"] == "chunked"
                assert json.loads(resp.body) == {"a": [1, 2, 3], "b": "x" * 5000}
            assert upstream.connections_opened == 1
            upstream.close()

    run(scenario)


CHUNKED_WITH_TRAILER = (
    b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\nRetry-After: 3\r\n\r\n"
    b'4;ext=1\r\n{"k"\r\nA\r\n:"0123456"\r\n1\r\n}\r\n0\r\nX-Trailer: t\r\n\r\n'
)
LENGTH_RESPONSE = b'HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\n{"ok": true }'


@pytest.mark.parametrize("response", [CHUNKED_WITH_TRAILER, LENGTH_RESPONSE])
def test_responses_arriving_one_byte_at_a_time(response: bytes) -> None:
    async def dribble(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_request(reader)
            for i in range(len(response)):
                writer.write(response[i : i + 1])
                await writer.drain()
                await asyncio.sleep(0)

    async def scenario() -> None:
        async with raw_server(dribble) as (url, peers):
            upstream = Upstream(url)
            for _ in range(2):
                resp = await upstream.post("/", b"{}", timeout=5)
                body = json.loads(resp.body)
                assert body in ({"k": "0123456"}, {"ok": True})
                if response is CHUNKED_WITH_TRAILER:
                    assert resp.status == 201 and resp.headers["retry-after"] == "3"
            assert len(peers) == 1
            upstream.close()

    run(scenario)


def test_http10_body_read_until_close_and_no_body_statuses() -> None:
    async def http10(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end")

    async def no_content(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_request(reader)
            writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")

    async def scenario() -> None:
        async with raw_server(http10) as (url, _):
            upstream = Upstream(url)
            assert (await upstream.post("/", b"{}", timeout=2)).body == b"until the end"
            assert upstream.idle == 0
            upstream.close()
        async with raw_server(no_content) as (url, peers):
            upstream = Upstream(url)
            for _ in range(3):
                resp = await upstream.post("/", b"{}", timeout=2)
                assert (resp.status, resp.body) == (204, b"")
            assert len(peers) == 1
            upstream.close()

    run(scenario)


def test_garbage_is_a_bad_response() -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"SSH-2.0-OpenSSH_9.2\r\n\r\n")
        await asyncio.sleep(1)

    async def scenario() -> None:
        async with raw_server(garbage) as (url, _):
            upstream = Upstream(url)
            with pytest.raises(BadResponse, match="status line"):
                await upstream.post("/", b"{}", timeout=2)
            assert upstream.idle == 0
            upstream.close()

    run(scenario)


def test_connection_refused_is_connect_failed() -> None:
    async def scenario() -> None:
        with socket.socket() as sock:  # a port that was free a moment ago: nothing listens
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        upstream = Upstream(f"http://127.0.0.1:{port}")
        started = time.monotonic()
        with pytest.raises(ConnectFailed, match=str(port)):
            await upstream.post("/x", b"{}", timeout=2)
        assert time.monotonic() - started < 1.0
        upstream.close()

    run(scenario)


def test_limit_bounds_connections_and_queued_calls_share_the_timeout() -> None:
    inflight = [0, 0]  # now, peak

    async def slow(request: web.Request) -> web.Response:
        inflight[0] += 1
        inflight[1] = max(inflight)
        await asyncio.sleep(0.1)
        inflight[0] -= 1
        return web.json_response({})

    async def scenario() -> None:
        async with aiohttp_server([web.post("/slow", slow)]) as url:
            upstream = Upstream(url, limit=2)
            answers = await asyncio.gather(
                *(upstream.post("/slow", b"{}", timeout=2) for _ in range(6))
            )
            assert [a.status for a in answers] == [200] * 6
            assert inflight[1] == 2 and upstream.connections_opened == 2
            # Two calls hold the slots; a third waits for one and times out waiting.
            calls = [upstream.post("/slow", b"{}", timeout=t) for t in (2, 2, 0.05)]
            results = await asyncio.gather(*calls, return_exceptions=True)
            assert isinstance(results[2], TimeoutError)
            assert [getattr(r, "status", None) for r in results[:2]] == [200, 200]
            upstream.close()

    run(scenario)


@pytest.mark.integration
def test_through_toxiproxy_slicer_timeout_and_disabled_proxy() -> None:
    assert TOXIPROXY.exists(), f"{TOXIPROXY} missing: run `make setup`"
    api_port, proxy_port = free_ports(2)
    api = f"http://127.0.0.1:{api_port}"
    server = subprocess.Popen(
        [str(TOXIPROXY), "-host", "127.0.0.1", "-port", str(api_port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{api}/version", timeout=1, trust_env=False).status_code == 200:
                    break
            time.sleep(0.05)

        async def scenario() -> None:
            async with (
                aiohttp_server([web.post("/echo", echo_peer)]) as url,
                httpx.AsyncClient(base_url=api, trust_env=False) as admin,
            ):
                proxy = {
                    "name": "dep",
                    "listen": f"127.0.0.1:{proxy_port}",
                    "upstream": url.removeprefix("http://"),
                }
                assert (await admin.post("/proxies", json=proxy)).status_code == 201
                upstream = Upstream(f"http://127.0.0.1:{proxy_port}")
                slicer = {
                    "type": "slicer",
                    "stream": "downstream",
                    "attributes": {"average_size": 3, "size_variation": 2, "delay": 100},
                }
                response = await admin.post("/proxies/dep/toxics", json=slicer)
                assert response.status_code == 200, response.text
                big = json.dumps({"pad": "p" * 3000})
                for _ in range(2):
                    resp = await upstream.post("/echo", big.encode(), timeout=5)
                    assert json.loads(resp.body)["got"] == big
                assert upstream.connections_opened == 1
                await admin.delete("/proxies/dep/toxics/slicer_downstream")

                stall = {"type": "timeout", "attributes": {"timeout": 0}}
                assert (await admin.post("/proxies/dep/toxics", json=stall)).status_code == 200
                with pytest.raises(TimeoutError):
                    await upstream.post("/echo", b"{}", timeout=0.3)
                await admin.delete("/proxies/dep/toxics/timeout_downstream")
                assert (await upstream.post("/echo", b"{}", timeout=2)).status == 200

                # Disabling the proxy closes its connections and refuses new ones.
                await admin.post("/proxies/dep", json={"enabled": False})
                await asyncio.sleep(0.1)
                with pytest.raises(ConnectFailed):
                    await upstream.post("/echo", b"{}", timeout=2)
                assert upstream.idle == 0
                upstream.close()

        run(scenario)
    finally:
        server.terminate()
        server.wait(timeout=5)
