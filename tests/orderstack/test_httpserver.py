"""The services' HTTP/1.1 server against raw sockets, aiohttp's client and a real Toxiproxy."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest

from orderstack.httpserver import MAX_BODY, HttpServer, Request, Response, get, post, start_server
from orderstack.upstream import Upstream

from .conftest import free_ports

TOXIPROXY = Path(__file__).resolve().parents[2] / ".chaoskit" / "bin" / "toxiproxy-server"


def run(scenario: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(scenario())


async def echo(request: Request) -> Response:
    """Answers with what it got: method, path, query, match_info and the body."""
    seen = {
        "method": request.method,
        "path": request.path,
        "query": request.query,
        "match": request.match_info,
        "body": request.body.decode(),
    }
    return Response(200, json.dumps(seen).encode(), {"X-Seen": "yes"})


async def slow(request: Request) -> Response:
    await asyncio.sleep(float(request.body or b"0.05"))
    return Response(200, b'{"slow":true}')


async def crash(request: Request) -> Response:
    raise RuntimeError("boom")


ROUTES = [
    post("/echo", echo),
    get("/echo", echo),
    post("/orders/{order_id}/cancel", echo),
    post("/slow", slow),
    post("/crash", crash),
]


@contextlib.asynccontextmanager
async def serving() -> AsyncIterator[HttpServer]:
    server = await start_server(ROUTES, "127.0.0.1", free_ports(1)[0])
    try:
        yield server
    finally:
        await server.close()


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    """One response (this server always frames with Content-Length)."""
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
    lines = head.split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.lower()] = value.strip()
    body = await reader.readexactly(int(headers["content-length"]))
    return status, headers, body


def request(method: str, path: str, body: bytes = b"", extra: str = "") -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
    return head.encode() + body


async def exchange(server: HttpServer, data: bytes, count: int) -> list[tuple[int, dict, bytes]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(data)
        return [await asyncio.wait_for(read_response(reader), 5) for _ in range(count)]
    finally:
        writer.close()


async def closed_by_server(reader: asyncio.StreamReader) -> bool:
    return await asyncio.wait_for(reader.read(), 5) == b""


def test_keep_alive_and_pipelined_requests_are_answered_in_order() -> None:
    async def scenario() -> None:
        async with serving() as server:
            # The slow one first: the fast ones behind it must still come back after it.
            data = (
                request("POST", "/slow", b"0.1")
                + request("POST", "/echo", b'{"n":1}')
                + request("GET", "/echo?x=1")
            )
            answers = await exchange(server, data, 3)
            assert [a[0] for a in answers] == [200, 200, 200]
            assert answers[0][2] == b'{"slow":true}'
            assert json.loads(answers[1][2])["body"] == '{"n":1}'
            third = json.loads(answers[2][2])
            assert (third["method"], third["path"], third["query"]) == ("GET", "/echo", "x=1")
            assert answers[1][1]["content-type"] == "application/json"
            assert answers[1][1]["x-seen"] == "yes" and "date" in answers[1][1]

    run(scenario)


def test_requests_arriving_one_byte_at_a_time() -> None:
    async def scenario() -> None:
        async with serving() as server:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            body = json.dumps({"pad": "p" * 500}).encode()
            data = request("POST", "/echo", body) + request("POST", "/echo", b"{}")
            for i in range(len(data)):
                writer.write(data[i : i + 1])
                await writer.drain()
                if i % 64 == 0:
                    await asyncio.sleep(0)
            first = await read_response(reader)
            second = await read_response(reader)
            assert json.loads(first[2])["body"] == body.decode()
            assert json.loads(second[2])["body"] == "{}"
            writer.close()

    run(scenario)


def test_chunked_bodies_with_extensions_and_trailers() -> None:
    async def scenario() -> None:
        async with serving() as server:
            head = b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            chunks = b'5;ext=1\r\n{"a":\r\na\r\n"chunked"}\r\n0\r\nX-Trailer: 1\r\n\r\n'
            answers = await exchange(server, head + chunks + request("POST", "/echo", b"1"), 2)
            assert json.loads(answers[0][2])["body"] == '{"a":"chunked"}'
            assert json.loads(answers[1][2])["body"] == "1"

    run(scenario)


def test_templated_path_404_405_and_head() -> None:
    async def scenario() -> None:
        async with serving() as server:
            data = (
                request("POST", "/orders/a%2Fb%20c/cancel")
                + request("GET", "/nowhere")
                + request("DELETE", "/echo")
                + request("HEAD", "/echo")
                + request("POST", "/orders//cancel")
            )
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(data)
            cancel, missing, wrong = [await read_response(reader) for _ in range(3)]
            assert cancel[0] == 200 and json.loads(cancel[2])["match"] == {"order_id": "a/b c"}
            assert missing[0] == 404 and "no such path" in json.loads(missing[2])["error"]
            assert wrong[0] == 405 and wrong[1]["allow"] == "GET, POST"
            head = (await reader.readuntil(b"\r\n\r\n")).decode()
            assert head.startswith("HTTP/1.1 200 OK") and "Content-Length: " in head
            empty = await read_response(reader)  # HEAD sent no body: the next answer follows
            assert empty[0] == 404
            writer.close()

    run(scenario)


def test_a_crashing_handler_answers_500_and_the_connection_goes_on() -> None:
    async def scenario() -> None:
        async with serving() as server:
            data = request("POST", "/crash") + request("POST", "/echo", b"after")
            crashed, after = await exchange(server, data, 2)
            assert crashed[0] == 500 and "boom" in json.loads(crashed[2])["error"]
            assert json.loads(after[2])["body"] == "after"

    run(scenario)


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"NOT HTTP\r\n\r\n", 400),
        (b"GET /echo HTTP/2.0\r\n\r\n", 400),
        (b"GET echo HTTP/1.1\r\n\r\n", 400),
        (b"GET /echo HTTP/1.1\r\nBad Header\r\n\r\n", 400),
        (b"POST /echo HTTP/1.1\r\nContent-Length: 1, 2\r\n\r\n", 400),
        (b"POST /echo HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
        (b"POST /echo HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
        (b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
        (f"POST /echo HTTP/1.1\r\nContent-Length: {MAX_BODY + 1}\r\n\r\n".encode(), 413),
        (b"GET /echo HTTP/1.1\r\nX: " + b"x" * (70 * 1024), 431),
    ],
)
def test_bytes_that_are_not_a_request_get_an_error_and_a_close(data: bytes, status: int) -> None:
    async def scenario() -> None:
        async with serving() as server:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            # A good request first: it is answered before the bad bytes are.
            writer.write(request("POST", "/echo", b"ok") + data)
            good = await read_response(reader)
            bad = await read_response(reader)
            assert good[0] == 200 and bad[0] == status, bad
            assert bad[1]["connection"] == "close" and "error" in json.loads(bad[2])
            assert await closed_by_server(reader)
            writer.close()

    run(scenario)


def test_connection_close_http_1_0_and_half_close() -> None:
    async def scenario() -> None:
        async with serving() as server:
            # Connection: close is answered, then the server closes; later bytes are ignored.
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(
                request("POST", "/echo", b"1", "Connection: close\r\n")
                + request("POST", "/echo", b"2")
            )
            answer = await read_response(reader)
            assert answer[1]["connection"] == "close" and await closed_by_server(reader)
            writer.close()
            # HTTP/1.0 closes unless asked to keep alive.
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(b"GET /echo HTTP/1.0\r\n\r\n")
            assert (await read_response(reader))[0] == 200 and await closed_by_server(reader)
            writer.close()
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(b"GET /echo HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" * 2)
            assert [(await read_response(reader))[0] for _ in range(2)] == [200, 200]
            writer.close()
            # A client that sends its requests and shuts its side still gets every answer.
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(request("POST", "/slow", b"0.05") + request("POST", "/echo", b"3"))
            writer.write_eof()
            answers = [await read_response(reader) for _ in range(2)]
            assert [a[0] for a in answers] == [200, 200] and await closed_by_server(reader)
            writer.close()

    run(scenario)


def test_expect_100_continue() -> None:
    async def scenario() -> None:
        async with serving() as server:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            head = b"POST /echo HTTP/1.1\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n"
            writer.write(head)
            interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
            writer.write(b"hi")
            assert json.loads((await read_response(reader))[2])["body"] == "hi"
            writer.close()

    run(scenario)


def test_many_pipelined_requests_and_a_client_that_leaves_mid_request() -> None:
    async def scenario() -> None:
        async with serving() as server:
            data = b"".join(request("POST", "/echo", str(i).encode()) for i in range(500))
            answers = await exchange(server, data, 500)
            assert [json.loads(a[2])["body"] for a in answers] == [str(i) for i in range(500)]
            # A client gone while its handler runs: the server drops the answer and serves on.
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(request("POST", "/slow", b"0.1"))
            await writer.drain()
            writer.close()
            await asyncio.sleep(0.2)
            assert (await exchange(server, request("POST", "/echo", b"x"), 1))[0][0] == 200

    run(scenario)


def test_real_clients_aiohttp_and_the_gateways_upstream() -> None:
    async def scenario() -> None:
        async with serving() as server, aiohttp.ClientSession() as session:
            url = f"http://127.0.0.1:{server.port}"
            for _ in range(3):
                async with session.post(f"{url}/echo", data=b'{"k":1}') as resp:
                    assert resp.status == 200
                    assert json.loads(await resp.read())["body"] == '{"k":1}'
            async with session.post(f"{url}/echo", data=_chunks()) as resp:
                assert json.loads(await resp.read())["body"] == "abcdef"
            upstream = Upstream(url)
            for _ in range(3):
                resp = await upstream.post("/echo", b"{}", timeout=5)
                assert resp.status == 200 and resp.headers["x-seen"] == "yes"
            assert upstream.connections_opened == 1
            upstream.close()

    run(scenario)


async def _chunks() -> AsyncIterator[bytes]:
    for part in (b"ab", b"cd", b"ef"):
        yield part


@pytest.mark.integration
def test_through_toxiproxy_slicing_requests_and_answers() -> None:
    assert TOXIPROXY.exists(), f"{TOXIPROXY} missing: run `make setup`"
    api_port, proxy_port = free_ports(2)
    api = f"http://127.0.0.1:{api_port}"
    toxiproxy = subprocess.Popen(
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
                serving() as server,
                httpx.AsyncClient(base_url=api, trust_env=False) as admin,
            ):
                proxy = {
                    "name": "svc",
                    "listen": f"127.0.0.1:{proxy_port}",
                    "upstream": f"127.0.0.1:{server.port}",
                }
                assert (await admin.post("/proxies", json=proxy)).status_code == 201
                for stream in ("upstream", "downstream"):
                    slicer = {
                        "type": "slicer",
                        "stream": stream,
                        "attributes": {"average_size": 3, "size_variation": 2, "delay": 50},
                    }
                    response = await admin.post("/proxies/svc/toxics", json=slicer)
                    assert response.status_code == 200, response.text
                upstream = Upstream(f"http://127.0.0.1:{proxy_port}")
                big = json.dumps({"pad": "p" * 2000})
                for _ in range(2):
                    resp = await upstream.post("/echo", big.encode(), timeout=10)
                    assert json.loads(resp.body)["body"] == big
                assert upstream.connections_opened == 1
                upstream.close()

        run(scenario)
    finally:
        toxiproxy.terminate()
        toxiproxy.wait(5)
