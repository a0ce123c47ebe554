"""A small HTTP/1.1 server for the stub services: JSON in, JSON out, keep-alive, pipelining.

aiohttp's server cost each service ~140 us of CPU per request at the order chain's load; this
one does only what the services need, over an asyncio.Protocol, for ~70-90 us, much of it the
send/recv system calls (README "Dependencies"). Requests may carry Content-Length or chunked
bodies and arrive in any number of pieces (Toxiproxy's slicer); pipelined requests are answered
one at a time, in order. Each request runs its handler in a task of its own, as aiohttp does.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from email.utils import formatdate
from http import HTTPStatus
from typing import cast
from urllib.parse import unquote

__all__ = [
    "Handler",
    "HttpServer",
    "Request",
    "Response",
    "Route",
    "Router",
    "get",
    "post",
    "start_server",
]

log = logging.getLogger("orderstack.http")

MAX_HEAD = 64 * 1024
MAX_BODY = 1 << 20  # as aiohttp's client_max_size before
_MAX_QUEUED = 32  # pipelined requests parsed ahead of the one being answered

# Parser states.
_HEAD, _LENGTH, _CHUNK_SIZE, _CHUNK_DATA, _TRAILER = range(5)
_HEX_DIGITS = b"0123456789abcdefABCDEF"
_TOKEN_BYTES = frozenset(
    b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
)
_REASONS = {s.value: s.phrase for s in HTTPStatus}


@dataclass(slots=True)
class Request:
    """One complete request; header names are lower-case, `path` is still percent-encoded."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    match_info: dict[str, str] = field(default_factory=dict)

    async def read(self) -> bytes:
        """The body (already read whole before the handler runs)."""
        return self.body


@dataclass(slots=True)
class Response:
    """A JSON answer: status, encoded body, extra headers."""

    status: int
    body: bytes
    headers: Mapping[str, str] | None = None


Handler = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True, slots=True)
class Route:
    """METHOD path -> handler; a path segment `{name}` matches one segment into match_info."""

    method: str
    path: str
    handler: Handler


def get(path: str, handler: Handler) -> Route:
    """A GET route (HEAD is answered too, without the body)."""
    return Route("GET", path, handler)


def post(path: str, handler: Handler) -> Route:
    """A POST route."""
    return Route("POST", path, handler)


def _error(status: int, message: str) -> Response:
    return Response(status, json.dumps({"error": message}).encode())


class Router:
    """Exact paths by dictionary; templated ones (`/orders/{order_id}/cancel`) by segment."""

    def __init__(self, routes: list[Route]) -> None:
        self._static: dict[str, dict[str, Handler]] = {}
        self._templates: dict[tuple[str, ...], dict[str, Handler]] = {}
        for route in routes:
            if "{" in route.path:
                methods = self._templates.setdefault(tuple(route.path.split("/")), {})
            else:
                methods = self._static.setdefault(route.path, {})
            if route.method in methods:
                raise ValueError(f"route {route.method} {route.path} added twice")
            methods[route.method] = route.handler

    def resolve(self, request: Request) -> Handler | Response:
        """The handler for `request` (match_info filled in), or a 404/405 answer."""
        methods = self._static.get(request.path)
        if methods is None:
            methods = self._match(request)
            if methods is None:
                return _error(404, f"no such path: {request.path[:200]}")
        method = "GET" if request.method == "HEAD" else request.method
        handler = methods.get(method)
        if handler is None:
            allowed = ", ".join(sorted(methods))
            response = _error(405, f"method {request.method} not allowed; allowed: {allowed}")
            response.headers = {"Allow": allowed}
            return response
        return handler

    def _match(self, request: Request) -> dict[str, Handler] | None:
        parts = request.path.split("/")
        for segments, methods in self._templates.items():
            if len(segments) != len(parts):
                continue
            info: dict[str, str] = {}
            for pattern, part in zip(segments, parts, strict=True):
                if pattern.startswith("{") and pattern.endswith("}"):
                    if not part:
                        break
                    info[pattern[1:-1]] = unquote(part)
                elif pattern != part:
                    break
            else:
                request.match_info = info
                return methods
        return None


class _BadRequest(Exception):
    """The bytes are not a request this server accepts: answer `status` and close."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class _Date:
    """The Date header's value, formatted at most once a second."""

    __slots__ = ("second", "value")

    def __init__(self) -> None:
        self.second = -1
        self.value = b""

    def now(self) -> bytes:
        second = int(time.time())
        if second != self.second:
            self.second = second
            self.value = formatdate(second, usegmt=True).encode("ascii")
        return self.value


_DATE = _Date()


class HttpProtocol(asyncio.Protocol):
    """One client connection: parses requests as bytes arrive, answers them in order."""

    def __init__(self, router: Router, connections: set[HttpProtocol]) -> None:
        self.router = router
        self.connections = connections
        self.transport: asyncio.Transport | None = None
        self._buf = b""
        self._state = _HEAD
        self._request: Request | None = None  # parsed head, body still arriving
        self._keep_alive = True
        self._remaining = 0
        self._parts: list[bytes] = []
        self._size = 0
        # Complete requests not yet answered (a Response: bytes that did not parse, then close).
        self._ready: deque[tuple[Request | Response, bool]] = deque()
        self._task: asyncio.Task[Response] | None = None  # the handler running now
        self._current: tuple[Request, bool] = (Request("", "", "", {}, b""), False)  # its request
        self._closing = False  # no more requests are read; close once answers are out
        self._paused = False  # the client's receive window is full (pause_writing)
        self._queue_full = False  # too many pipelined requests wait (reading paused)

    # --- asyncio.Protocol -----------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.connections.discard(self)
        self._closing = True
        self._ready.clear()
        # A running handler finishes (as with aiohttp's default): its answer is dropped.

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return
        self._buf = self._buf + data if self._buf else data
        try:
            self._parse()
        except _BadRequest as exc:
            self._ready.append((_error(exc.status, str(exc)), False))
            self._closing = True
            self._buf = b""
        if len(self._ready) > _MAX_QUEUED and not self._queue_full and self.transport is not None:
            # A client pipelining faster than the handlers answer: stop reading until they catch up.
            self._queue_full = True
            self.transport.pause_reading()
        self._run()

    def eof_received(self) -> bool | None:
        # The client sent all it will: answer what arrived whole, then close.
        self._closing = True
        if self._task is None and not self._ready:
            return None  # nothing owed: let the transport close
        return True

    def pause_writing(self) -> None:
        # The client is not reading its answers: stop reading its requests until it does.
        self._paused = True
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        self._paused = False
        if not self._queue_full and self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    # --- parsing --------------------------------------------------------------------------
    def _parse(self) -> None:
        while self._buf and not self._closing:
            buf = self._buf
            state = self._state
            if state == _HEAD:
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    if len(buf) > MAX_HEAD:
                        raise _BadRequest(431, "request head too large")
                    if buf.startswith(b"\r\n"):  # a stray CRLF between requests (RFC 9112 2.2)
                        self._buf = buf[2:]
                        continue
                    return
                if end == 0:
                    self._buf = buf[4:]
                    continue
                if end > MAX_HEAD:
                    raise _BadRequest(431, "request head too large")
                self._buf = buf[end + 4 :]
                self._head(buf[:end].lstrip(b"\r\n"))
            elif state == _LENGTH:
                n = self._remaining
                if len(buf) < n:
                    return
                self._buf = buf[n:]
                self._complete(buf[:n])
            elif state == _CHUNK_SIZE:
                end = buf.find(b"\r\n")
                if end < 0:
                    if len(buf) > 1024:
                        raise _BadRequest(400, "chunk size line too long")
                    return
                size_text = buf[:end].split(b";", 1)[0].strip()
                if not size_text or size_text.strip(_HEX_DIGITS) or len(size_text) > 8:
                    raise _BadRequest(400, f"bad chunk size {size_text[:20]!r}")
                size = int(size_text, 16)
                self._buf = buf[end + 2 :]
                if size == 0:
                    self._state = _TRAILER
                else:
                    self._size += size
                    if self._size > MAX_BODY:
                        raise _BadRequest(413, f"body larger than {MAX_BODY} bytes")
                    self._remaining = size
                    self._state = _CHUNK_DATA
            elif state == _CHUNK_DATA:
                n = self._remaining
                if len(buf) < n + 2:
                    return
                if buf[n : n + 2] != b"\r\n":
                    raise _BadRequest(400, "chunk not followed by CRLF")
                self._parts.append(buf[:n])
                self._buf = buf[n + 2 :]
                self._state = _CHUNK_SIZE
            else:  # _TRAILER: header lines up to an empty one, ignored
                end = buf.find(b"\r\n")
                if end < 0:
                    if len(buf) > MAX_HEAD:
                        raise _BadRequest(431, "trailer too large")
                    return
                self._buf = buf[end + 2 :]
                if end == 0:
                    self._complete(b"".join(self._parts))

    def _head(self, head: bytes) -> None:
        lines = head.split(b"\r\n")
        method, sp1, rest = lines[0].partition(b" ")
        target, sp2, version = rest.partition(b" ")
        if (
            not sp1
            or not sp2
            or not method
            or not _TOKEN_BYTES.issuperset(method)
            or not target.startswith(b"/")
            or version not in (b"HTTP/1.1", b"HTTP/1.0")
        ):
            raise _BadRequest(400, f"bad request line: {lines[0][:60]!r}")
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, colon, value = line.partition(b":")
            if not colon or not name or not _TOKEN_BYTES.issuperset(name):
                raise _BadRequest(400, f"bad header line: {line[:60]!r}")
            key = name.decode("latin-1").lower()
            text = value.strip().decode("latin-1")
            headers[key] = f"{headers[key]}, {text}" if key in headers else text
        connection = headers.get("connection", "").lower()
        if version == b"HTTP/1.1":
            self._keep_alive = "close" not in connection
        else:
            self._keep_alive = "keep-alive" in connection
        path, _, query = target.decode("latin-1").partition("?")
        self._request = Request(method.decode("ascii"), path, query, headers, b"")
        self._parts = []
        self._size = 0
        encoding = headers.get("transfer-encoding")
        length = headers.get("content-length")
        if encoding is not None:
            if length is not None:  # both framings: refuse rather than guess (RFC 9112 6.3)
                raise _BadRequest(400, "both Transfer-Encoding and Content-Length")
            if encoding.lower() != "chunked":
                raise _BadRequest(501, f"unsupported transfer-encoding {encoding[:40]!r}")
            self._state = _CHUNK_SIZE
        elif length is not None:
            if not (length.isascii() and length.isdigit()):  # also rejects "12, 13"
                raise _BadRequest(400, f"bad content-length {length[:40]!r}")
            self._remaining = int(length)
            if self._remaining > MAX_BODY:
                raise _BadRequest(413, f"body larger than {MAX_BODY} bytes")
            self._state = _LENGTH
            if self._remaining == 0:
                self._complete(b"")
                return
        else:
            self._complete(b"")
            return
        if headers.get("expect", "").lower() == "100-continue":
            assert self.transport is not None
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def _complete(self, body: bytes) -> None:
        request = self._request
        assert request is not None
        request.body = body
        self._request = None
        self._state = _HEAD
        self._ready.append((request, self._keep_alive))
        if not self._keep_alive:
            self._closing = True  # the client asked to close: read nothing after this one

    # --- answering ------------------------------------------------------------------------
    def _run(self) -> None:
        """Start the next complete request's handler, unless one is running (answers in order)."""
        ready = self._ready
        while self._task is None and ready:
            request, keep_alive = ready.popleft()
            if isinstance(request, Response):  # bytes that did not parse: answer and close
                self._write(request, None, False)
                break
            handler = self.router.resolve(request)
            if isinstance(handler, Response):
                self._write(handler, request, keep_alive)
                continue
            self._current = (request, keep_alive)
            self._task = asyncio.get_running_loop().create_task(_call(handler, request))
            self._task.add_done_callback(self._done)
        if self._task is None and not ready and self._closing:
            self._close()
        elif self._queue_full and len(ready) <= _MAX_QUEUED:
            self._queue_full = False
            if not self._paused and self.transport is not None:
                self.transport.resume_reading()

    def _done(self, task: asyncio.Task[Response]) -> None:
        self._task = None
        request, keep_alive = self._current
        # _call never raises; a task is cancelled only when the loop shuts down.
        response = _error(503, "handler cancelled") if task.cancelled() else task.result()
        self._write(response, request, keep_alive)
        if self.transport is not None and not self.transport.is_closing():
            self._run()

    def _write(self, response: Response, request: Request | None, keep_alive: bool) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        status = response.status
        body = response.body
        head = [
            b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\nDate: %s\r\n"
            % (status, _REASONS.get(status, "Unknown").encode("latin-1"), len(body), _DATE.now())
        ]
        if response.headers:
            for name, value in response.headers.items():
                head.append(f"{name}: {value}\r\n".encode("latin-1"))
        if not keep_alive:
            head.append(b"Connection: close\r\n")
        head.append(b"\r\n")
        if request is None or request.method != "HEAD":
            head.append(body)
        transport.write(b"".join(head))
        if not keep_alive:
            self._closing = True
            self._ready.clear()

    def _close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()


async def _call(handler: Handler, request: Request) -> Response:
    try:
        return await handler(request)
    except Exception as exc:
        log.exception("%s %s failed", request.method, request.path[:200])
        return _error(500, f"internal: {exc!r}")


class HttpServer:
    """A listening server; close() stops listening and drops every connection."""

    def __init__(self, server: asyncio.AbstractServer, connections: set[HttpProtocol]) -> None:
        self._server = server
        self._connections = connections

    @property
    def port(self) -> int:
        """The port listened on (useful when 0 was asked for)."""
        sockets = cast(asyncio.Server, self._server).sockets
        return int(sockets[0].getsockname()[1])

    async def close(self) -> None:
        """Stop listening, close idle and busy connections alike."""
        self._server.close()
        for conn in list(self._connections):
            conn._close()
        await self._server.wait_closed()


async def start_server(
    routes: list[Route], host: str, port: int, *, backlog: int = 4096
) -> HttpServer:
    """Listen on host:port and answer `routes`."""
    router = Router(routes)
    connections: set[HttpProtocol] = set()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: HttpProtocol(router, connections), host, port, backlog=backlog, reuse_address=True
    )
    return HttpServer(server, connections)
