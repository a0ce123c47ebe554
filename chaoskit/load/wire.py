"""How a journey's requests reach the target: geventhttpclient's ``HTTPClient``.

It is the connection layer Locust's ``FastHttpUser`` is built on (the same sockets, parser,
keep-alive pool and retry rules), without the layers Locust puts above it for a locustfile:
the user agent (cookie jar, redirects, retries, response wrapper) and the request event with
its per-request dict. Counted per request against nginx, those layers cost about 40% of
bare Locust's CPU per request (bench/RESULTS.md): chaoskit keeps its own tally and judges
every answer itself, so it sends through the connection layer directly. A Python journey
still gets Locust's ``FastHttpSession`` (``chaoskit.load.journey_run.HookClient``), the API
a team's locustfile code expects.

Importing this module needs gevent (the engine process only).
"""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass
from http.cookies import CookieError, SimpleCookie
from typing import Any
from urllib.parse import unquote, urlsplit

import gevent
from geventhttpclient.client import HTTPClient
from geventhttpclient.response import HTTPParseError
from locust.contrib.fasthttp import insecure_ssl_context_factory

__all__ = ["Answer", "Wire"]

# What a request can fail with short of an answer (socket and TLS errors are OSErrors;
# Locust's FastHttpSession catches the same).
_NO_ANSWER = (OSError, HTTPParseError, gevent.Timeout)


@dataclass(slots=True)
class Answer:
    """One request's answer: ``status`` 0 means none arrived (``timed_out`` says if by time)."""

    status: int
    body: bytes
    latency_ms: float
    timed_out: bool = False
    cookies: dict[str, str] | None = None  # Set-Cookie name=value pairs; None: there were none


class Wire:
    """Keep-alive connections (``concurrency`` at most) to the target's gateway URL.

    Paths are relative to the URL (its own path, if any, is their prefix). Credentials in
    the URL (``https://user:pass@host``) become Basic auth, as in Locust.
    """

    def __init__(self, base_url: str, *, concurrency: int, timeout_s: float) -> None:
        parts = urlsplit(base_url)
        self._prefix = parts.path.rstrip("/")
        self._auth: str | None = None
        if parts.username is not None:
            pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            self._auth = "Basic " + base64.b64encode(pair.encode("latin-1")).decode("ascii")
        tls = parts.scheme == "https"
        self._options: dict[str, Any] = {
            "host": parts.hostname or "127.0.0.1",
            "port": parts.port or (443 if tls else 80),
            "concurrency": max(1, concurrency),
            "network_timeout": timeout_s,
            "connection_timeout": timeout_s,
            "ssl": tls,
            # TLS without certificate checks, as Locust's FastHttpUser (insecure=True)
            "ssl_context_factory": insecure_ssl_context_factory if tls else None,
            "insecure": True,
        }
        self._client = HTTPClient(**self._options)

    def send(
        self,
        method: str,
        path: str,
        body: str | None,
        headers: dict[str, str],
        *,
        timeout_s: float | None = None,
    ) -> Answer:
        """Send one request and read its whole answer; never raises for a failed request.

        ``timeout_s`` bounds the whole request, beside the connection's network timeout.
        ``GreenletExit`` (the run stopping) is not a failed request: it propagates.
        """
        if self._auth is not None and "Authorization" not in headers:
            headers = {**headers, "Authorization": self._auth}
        began = time.perf_counter()
        if timeout_s is None:
            return self._send(method, path, body, headers, began)
        with gevent.Timeout(timeout_s, False):
            return self._send(method, path, body, headers, began)
        # Cut off mid-request: geventhttpclient releases a socket cut off while it reads,
        # not one cut off while it sends, which would hold a pool slot for good. A new pool
        # costs one connect. The old one is dropped, not closed: requests other greenlets
        # still have in it finish there, and its sockets close when it is collected.
        self._client = HTTPClient(**self._options)
        return Answer(0, b"", (time.perf_counter() - began) * 1000.0, timed_out=True)

    def _send(
        self, method: str, path: str, body: str | None, headers: dict[str, str], began: float
    ) -> Answer:
        try:
            response = self._client.request(method, self._prefix + path, body, headers)
            try:
                content = response.read()
            finally:
                response.release()
        except _NO_ANSWER as exc:
            if isinstance(exc, gevent.Timeout) and exc.exception is False:
                raise  # send()'s own bound: it answers for it
            latency_ms = (time.perf_counter() - began) * 1000.0
            timed_out = isinstance(exc, TimeoutError | gevent.Timeout)
            return Answer(0, b"", latency_ms, timed_out=timed_out)
        latency_ms = (time.perf_counter() - began) * 1000.0
        cookies = _cookies(response.get("set-cookie")) if "set-cookie" in response else None
        return Answer(response.status_code, content, latency_ms, cookies=cookies)

    def close(self) -> None:
        """Close every connection."""
        self._client.close()


def _cookies(header: str | list[str] | None) -> dict[str, str] | None:
    """``name=value`` of each Set-Cookie (attributes left out: one host, one attempt)."""
    found: dict[str, str] = {}
    for line in [header] if isinstance(header, str) else header or []:
        jar = SimpleCookie()
        try:
            jar.load(line)
        except CookieError:
            continue
        for name, morsel in jar.items():
            found[name] = morsel.value
    return found or None
