"""What every service shares: app factory, /healthz /stats /admin /ledger, http_errors injection."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, ClassVar

from aiohttp import web

from .config import StackConfig
from .histogram import LogHistogram
from .settings import ServiceSettings, SettingsError, apply_patch, settings_to_json

__all__ = ["BadRequest", "Handler", "Service", "field_of", "json_response", "read_json"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_dumps = json.JSONEncoder(separators=(",", ":")).encode


def json_response(
    body: object, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    """A compact JSON response (no per-call encoder set-up)."""
    return web.Response(
        body=_dumps(body).encode(), status=status, headers=headers, content_type="application/json"
    )


class BadRequest(ValueError):
    """The request body is not what the endpoint accepts; the message says why."""


async def read_json(request: web.Request) -> Any:
    """The request body as JSON, or BadRequest."""
    raw = await request.read()
    try:
        return json.loads(raw) if raw else {}
    except ValueError as exc:
        raise BadRequest(f"body: expected JSON, got {raw[:60]!r}") from exc


_NUMBER = (int, float)
_KIND_NAMES = {str: "a string", bool: "true or false", int: "an integer", _NUMBER: "a number"}


def field_of(body: Any, key: str, kind: type | tuple[type, ...], default: object = None) -> Any:
    """body[key] checked against `kind`; BadRequest names the field (default when absent)."""
    if not isinstance(body, dict):
        raise BadRequest("body: expected a JSON object")
    value = body.get(key, default)
    if value is None and default is None:
        raise BadRequest(f"{key}: required")
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise BadRequest(f"{key}: expected {_KIND_NAMES.get(kind, kind)}, got {json.dumps(value)}")
    return value


class Service:
    """One stub service: subclasses add business routes, gauges and a ledger."""

    name: ClassVar[str]

    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.settings: ServiceSettings = config.settings[self.name]
        self.counters: dict[str, float] = {"http_errors_injected": 0}
        self.histograms: dict[str, LogHistogram] = {}
        # Seeded per service so a run with the same seed injects the same failures.
        self.rng = random.Random(f"{config.seed}:{self.name}")

    # --- hooks for subclasses -------------------------------------------------------------
    def routes(self) -> list[web.RouteDef]:
        """Business endpoints (http_errors applies to these only)."""
        return []

    def gauges(self) -> dict[str, float]:
        """Current gauge values for /stats."""
        return {}

    def ledger(self) -> dict[str, Any]:
        """The audit export for /ledger."""
        return {}

    def before_stats(self) -> None:
        """Bring time-integrated counters up to now, just before /stats reads them."""

    def settings_changed(self, old: ServiceSettings) -> None:
        """Called after /admin applied a new self.settings."""

    async def start(self) -> None:
        """Open resources (runs on app start-up)."""

    async def stop(self) -> None:
        """Release resources (runs on app clean-up)."""

    def injected_response(self, status: int) -> web.Response:
        """What an injected API failure looks like on this service."""
        headers = {"Retry-After": "1"} if status in (429, 503) else None
        body = {"error": "injected http error", "service": self.name}
        return json_response(body, status, headers)

    # --- machinery --------------------------------------------------------------------------
    def business(self, handler: Handler) -> Handler:
        """Wrap a business handler with http_errors injection and bad-request handling."""

        async def wrapped(request: web.Request) -> web.StreamResponse:
            errors = self.settings.http_errors
            if errors.rate > 0.0 and self.rng.random() < errors.rate:
                self.counters["http_errors_injected"] += 1
                return self.injected_response(errors.status)
            try:
                return await handler(request)
            except BadRequest as exc:
                return json_response({"error": str(exc)}, 400)

        return wrapped

    def make_app(self) -> web.Application:
        """The aiohttp application for this service."""
        app = web.Application(client_max_size=1 << 20)
        app.add_routes(
            [
                web.get("/healthz", self._healthz),
                web.get("/stats", self._stats),
                web.get("/admin", self._admin_get),
                web.post("/admin", self._admin_post),
                web.get("/ledger", self._ledger),
            ]
        )
        for route in self.routes():
            app.router.add_route(route.method, route.path, self.business(route.handler))
        app.on_startup.append(self._on_startup)
        app.on_cleanup.append(self._on_cleanup)
        return app

    async def _on_startup(self, app: web.Application) -> None:
        await self.start()

    async def _on_cleanup(self, app: web.Application) -> None:
        await self.stop()

    async def _healthz(self, request: web.Request) -> web.Response:
        return json_response({"status": "ok", "service": self.name})

    async def _stats(self, request: web.Request) -> web.Response:
        self.before_stats()
        return json_response(
            {
                "service": self.name,
                "time": time.time(),
                "counters": self.counters,
                "gauges": self.gauges(),
                "histograms": {k: h.to_json() for k, h in self.histograms.items()},
            }
        )

    async def _admin_get(self, request: web.Request) -> web.Response:
        return json_response(settings_to_json(self.settings))

    async def _admin_post(self, request: web.Request) -> web.Response:
        try:
            patch = await read_json(request)
            new = apply_patch(self.settings, patch)
        except (BadRequest, SettingsError) as exc:
            return json_response({"error": str(exc)}, 400)
        old, self.settings = self.settings, new
        self.settings_changed(old)
        return json_response(settings_to_json(self.settings))

    async def _ledger(self, request: web.Request) -> web.Response:
        return json_response(self.ledger())
