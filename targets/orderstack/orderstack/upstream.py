"""A small HTTP/1.1 keep-alive client for the gateway's calls to its dependencies.

aiohttp's client costs ~110-160 us of CPU per call and the gateway makes 7+ calls per order;
this one does only what those calls need (JSON bodies, small responses, one origin per pool) over
an asyncio.Protocol, for ~45 us, most of it the send/recv system calls. Responses may use
Content-Length, chunked encoding or read-until-close framing, and arrive in any number of pieces
(Toxiproxy's slicer).
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass
from typing import cast
from urllib.parse import urlsplit

__all__ = [
    "BadResponse",
    "ConnectFailed",
    "Disconnected",
    "Response",
    "Upstream",
    "UpstreamError",
]

_MAX_HEAD = 64 * 1024
_MAX_BODY = 16 * 1024 * 1024
_NO_BODY_STATUSES = frozenset({204, 304})
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
_HEX_DIGITS = b"0123456789abcdefABCDEF"
_NOT_IN_PATH = frozenset(" \r\n\t")

# Parser states.
_HEAD, _LENGTH, _CHUNK_SIZE, _CHUNK_DATA, _TRAILER, _UNTIL_CLOSE, _DONE = range(7)


class UpstreamError(Exception):
    """The dependency could not be reached or did not answer in HTTP (timeouts: TimeoutError)."""


class ConnectFailed(UpstreamError):
    """No connection could be opened (refused, unreachable, name not resolved)."""


class Disconnected(UpstreamError):
    """The connection closed or was reset before the whole response arrived."""


class BadResponse(UpstreamError):
    """The bytes received are not an HTTP/1.x response this client understands."""


@dataclass(frozen=True, slots=True)
class Response:
    """A complete response; header names are lower-case."""

    status: int
    headers: dict[str, str]
    body: bytes


class _Connection(asyncio.Protocol):
    """One TCP connection carrying one request at a time; parses responses as bytes arrive."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.open = True  # False once the peer closed it or it failed
        self.reusable = False  # True after a response that leaves the connection clean
        self.requests = 0
        self.received = False  # any byte of the current response arrived
        self._waiter: asyncio.Future[Response] | None = None
        self._no_body = False
        self._buf = b""
        self._state = _HEAD
        self._status = 0
        self._headers: dict[str, str] = {}
        self._keep_alive = False
        self._remaining = 0
        self._parts: list[bytes] = []
        self._size = 0

    # --- asyncio.Protocol -----------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (uvloop's is not an asyncio.Transport subclass, but behaves as one).
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self._waiter is None or self._waiter.done():
            # Bytes nobody asked for: the stream is out of step, never reuse it.
            self._fail(BadResponse("unsolicited data from the server"))
            return
        self.received = True
        self._buf = self._buf + data if self._buf else data
        try:
            self._parse()
        except BadResponse as exc:
            self._fail(exc)

    def eof_received(self) -> bool | None:
        self.open = False
        return None  # let the transport close itself

    def connection_lost(self, exc: Exception | None) -> None:
        self.open = False
        self.reusable = False
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        if exc is None and self._state == _UNTIL_CLOSE:
            self._finish(b"".join(self._parts))
            return
        reason = f"connection closed after {self.requests} request(s)"
        error = Disconnected(f"{reason}: {exc}" if exc else reason)
        waiter.set_exception(error)

    # --- one exchange ---------------------------------------------------------------------
    def send(self, data: bytes, *, no_body: bool) -> asyncio.Future[Response]:
        """Write a whole request; the future resolves with its response."""
        transport = self.transport
        assert transport is not None and self.open
        self.requests += 1
        self.reusable = False
        self.received = False
        self._no_body = no_body
        self._state = _HEAD
        self._buf = b""
        waiter: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        self._waiter = waiter
        transport.write(data)
        return waiter

    def abort(self) -> None:
        """Drop the connection at once (after an error, a timeout or a cancelled call)."""
        self.open = False
        self.reusable = False
        if self.transport is not None:
            self.transport.abort()

    def close(self) -> None:
        self.open = False
        self.reusable = False
        if self.transport is not None:
            self.transport.close()

    def _fail(self, exc: UpstreamError) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
        self.abort()

    def _finish(self, body: bytes) -> None:
        waiter = self._waiter
        assert waiter is not None
        # Left-over bytes mean the server sent more than one response: the stream is unusable.
        self.reusable = self._keep_alive and self.open and not self._buf
        self._parts = []
        self._state = _DONE
        self._waiter = None  # an idle connection holds no response
        if not waiter.done():
            waiter.set_result(Response(self._status, self._headers, body))

    def _parse(self) -> None:
        while True:
            buf = self._buf
            state = self._state
            if state == _HEAD:
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    if len(buf) > _MAX_HEAD:
                        raise BadResponse("response head too large")
                    return
                self._buf = buf[end + 4 :]
                self._head(buf[:end])
            elif state == _LENGTH:
                n = self._remaining
                if len(buf) < n:
                    return
                self._buf = buf[n:]
                self._finish(buf[:n])
            elif state == _DONE:
                return
            elif state == _CHUNK_SIZE:
                end = buf.find(b"\r\n")
                if end < 0:
                    if len(buf) > 1024:
                        raise BadResponse("chunk size line too long")
                    return
                size_text = buf[:end].split(b";", 1)[0].strip()
                if not size_text or size_text.strip(_HEX_DIGITS):
                    raise BadResponse(f"bad chunk size {size_text[:20]!r}")
                size = int(size_text, 16)
                self._buf = buf[end + 2 :]
                if size == 0:
                    self._state = _TRAILER
                else:
                    self._size += size
                    if self._size > _MAX_BODY:
                        raise BadResponse("response body too large")
                    self._remaining = size
                    self._state = _CHUNK_DATA
            elif state == _CHUNK_DATA:
                n = self._remaining
                if len(buf) < n + 2:
                    return
                if buf[n : n + 2] != b"\r\n":
                    raise BadResponse("chunk not followed by CRLF")
                self._parts.append(buf[:n])
                self._buf = buf[n + 2 :]
                self._state = _CHUNK_SIZE
            elif state == _TRAILER:
                end = buf.find(b"\r\n")
                if end < 0:
                    if len(buf) > _MAX_HEAD:
                        raise BadResponse("trailer too large")
                    return
                self._buf = buf[end + 2 :]
                if end == 0:  # the empty line that ends the trailer section
                    self._finish(b"".join(self._parts))
            else:  # _UNTIL_CLOSE: everything up to the server's FIN is the body
                self._parts.append(buf)
                self._size += len(buf)
                self._buf = b""
                if self._size > _MAX_BODY:
                    raise BadResponse("response body too large")
                return

    def _head(self, head: bytes) -> None:
        lines = head.split(b"\r\n")
        status_line = lines[0]
        code = status_line[9:12]
        if not status_line.startswith(b"HTTP/1.") or status_line[8:9] != b" " or not code.isdigit():
            raise BadResponse(f"not an HTTP/1.x status line: {status_line[:40]!r}")
        status = int(code)
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, colon, value = line.partition(b":")
            if not colon or not name or name != name.strip():
                raise BadResponse(f"bad header line: {line[:40]!r}")
            key = name.decode("latin-1").lower()
            text = value.strip().decode("latin-1")
            headers[key] = f"{headers[key]}, {text}" if key in headers else text
        if 100 <= status < 200:
            if status == 101:
                raise BadResponse("protocol switch not supported")
            return  # an interim response (100 Continue): the real one follows
        self._status = status
        self._headers = headers
        connection = headers.get("connection", "").lower()
        if status_line[7:8] == b"1":
            self._keep_alive = "close" not in connection
        else:
            self._keep_alive = "keep-alive" in connection
        self._parts = []
        self._size = 0
        if self._no_body or status in _NO_BODY_STATUSES:
            self._finish(b"")
            return
        encoding = headers.get("transfer-encoding")
        if encoding is not None:
            if encoding.lower().rsplit(",", 1)[-1].strip() != "chunked":
                raise BadResponse(f"unsupported transfer-encoding {encoding!r}")
            if "content-length" in headers:
                # Both framings at once (RFC 9112 6.3): trust chunked, but never reuse the stream.
                self._keep_alive = False
            self._state = _CHUNK_SIZE
            return
        length = headers.get("content-length")
        if length is None:
            self._keep_alive = False
            self._state = _UNTIL_CLOSE
            return
        if not (length.isascii() and length.isdigit()):  # also rejects duplicates ("12, 13")
            raise BadResponse(f"bad content-length {length!r}")
        self._remaining = int(length)
        if self._remaining > _MAX_BODY:
            raise BadResponse("response body too large")
        self._state = _LENGTH


class Upstream:
    """A bounded keep-alive connection pool to one origin (scheme http only)."""

    def __init__(self, base_url: str, *, max_idle: int = 512, limit: int | None = None) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"upstream: expected http://host:port, got {base_url!r}")
        self.host = parts.hostname
        self.port = parts.port or 80
        self.base_path = parts.path.rstrip("/")
        self.max_idle = max_idle
        self.limit = limit
        self.connections_opened = 0
        host_header = f"[{self.host}]" if ":" in self.host else self.host
        if parts.port is not None:
            host_header += f":{self.port}"
        self._host_header = host_header
        self._idle: list[_Connection] = []  # LIFO: the warmest connection is reused first
        self._busy = 0
        self._waiting: deque[asyncio.Future[None]] = deque()
        self._closed = False

    def __repr__(self) -> str:
        return f"Upstream(http://{self._host_header}{self.base_path})"

    @property
    def idle(self) -> int:
        """Connections open and waiting to be reused."""
        return len(self._idle)

    async def post(self, path: str, body: bytes, *, timeout: float) -> Response:
        """POST a JSON body to base_url + path."""
        return await self.request("POST", path, body, timeout=timeout)

    async def get(self, path: str, *, timeout: float) -> Response:
        """GET base_url + path."""
        return await self.request("GET", path, None, timeout=timeout)

    async def request(
        self, method: str, path: str, body: bytes | None, *, timeout: float
    ) -> Response:
        """One request; `timeout` covers waiting for a slot, connecting, sending and receiving.

        Raises TimeoutError, or an UpstreamError (ConnectFailed, Disconnected, BadResponse).
        """
        if self._closed:
            raise ConnectFailed(f"{self!r} is closed")
        target = self.base_path + path
        if not target.startswith("/") or not _NOT_IN_PATH.isdisjoint(target):
            raise ValueError(f"upstream: bad request path {target!r}")
        head = f"{method} {target} HTTP/1.1\r\nHost: {self._host_header}\r\n"
        if body is None:
            data = (head + "\r\n").encode("latin-1")
        else:
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
            data = head.encode("latin-1") + body
        no_body = method == "HEAD"
        async with asyncio.timeout(timeout):
            if self.limit is not None:
                await self._slot()
            self._busy += 1
            try:
                return await self._exchange(data, no_body=no_body, retry=method in _IDEMPOTENT)
            finally:
                self._busy -= 1
                if self._waiting:
                    self._wake_one()

    async def _exchange(self, data: bytes, *, no_body: bool, retry: bool) -> Response:
        while True:
            conn, reused = await self._acquire()
            try:
                response = await conn.send(data, no_body=no_body)
            except Disconnected:
                conn.abort()
                # A kept-alive connection the server closed just as we used it: an idempotent
                # request is safe to send once more on a fresh connection (as aiohttp does).
                if reused and retry and not conn.received:
                    retry = False
                    continue
                raise
            except BaseException:
                conn.abort()
                raise
            self._release(conn)
            return response

    async def _acquire(self) -> tuple[_Connection, bool]:
        idle = self._idle
        while idle:
            conn = idle.pop()
            if conn.open:
                return conn, True
            conn.abort()
        loop = asyncio.get_running_loop()
        try:
            _, conn = await loop.create_connection(_Connection, self.host, self.port)
        except OSError as exc:
            # TimeoutError from the OS's own connect timeout is an OSError too: a connect failure.
            raise ConnectFailed(f"cannot connect to {self._host_header}: {exc}") from exc
        self.connections_opened += 1
        return conn, False

    def _release(self, conn: _Connection) -> None:
        if conn.reusable and conn.open and not self._closed and len(self._idle) < self.max_idle:
            self._idle.append(conn)
        else:
            conn.close()

    async def _slot(self) -> None:
        limit = self.limit
        assert limit is not None
        while self._busy >= limit:
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiting.append(waiter)
            try:
                await waiter
            except BaseException:
                # Cancelled (or timed out) after being woken: pass the wake-up on. A cancelled
                # waiter still queued is skipped by _wake_one.
                if waiter.done() and not waiter.cancelled():
                    self._wake_one()
                raise

    def _wake_one(self) -> None:
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def close(self) -> None:
        """Close idle connections; busy ones close when their call ends. Later calls fail."""
        self._closed = True
        while self._idle:
            self._idle.pop().close()
