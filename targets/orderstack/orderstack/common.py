"""What every service shares: its routes, /healthz /stats /admin /ledger, http_errors injection."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Mapping
from typing import Any, ClassVar

from .config import StackConfig
from .histogram import LogHistogram
from .httpserver import Handler, Request, Response, Route, get, post
from .settings import ServiceSettings, SettingsError, apply_patch, settings_to_json

__all__ = ["BadRequest", "Handler", "Service", "field_of", "json_response", "read_json"]

_dumps = json.JSONEncoder(separators=(",", ":")).encode


def json_response(
    body: object, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    """A compact JSON response (no per-call encoder set-up)."""
    return Response(status, _dumps(body).encode(), headers)


class BadRequest(ValueError):
    """The request body is not what the endpoint accepts; the message says why."""


async def read_json(request: Request) -> Any:
    """The request body as JSON, or BadRequest."""
    raw = request.body
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
    def routes(self) -> list[Route]:
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

    def injected_response(self, status: int) -> Response:
        """What an injected API failure looks like on this service."""
        headers = {"Retry-After": "1"} if status in (429, 503) else None
        body = {"error": "injected http error", "service": self.name}
        return json_response(body, status, headers)

    # --- machinery --------------------------------------------------------------------------
    def business(self, handler: Handler) -> Handler:
        """Wrap a business handler with http_errors injection and bad-request handling."""

        async def wrapped(request: Request) -> Response:
            errors = self.settings.http_errors
            if errors.rate > 0.0 and self.rng.random() < errors.rate:
                self.counters["http_errors_injected"] += 1
                return self.injected_response(errors.status)
            try:
                return await handler(request)
            except BadRequest as exc:
                return json_response({"error": str(exc)}, 400)

        return wrapped

    def all_routes(self) -> list[Route]:
        """What this service answers: the shared endpoints, then its business routes."""
        shared = [
            get("/healthz", self._healthz),
            get("/stats", self._stats),
            get("/admin", self._admin_get),
            post("/admin", self._admin_post),
            get("/ledger", self._ledger),
        ]
        business = [Route(r.method, r.path, self.business(r.handler)) for r in self.routes()]
        return shared + business

    async def _healthz(self, request: Request) -> Response:
        return json_response({"status": "ok", "service": self.name})

    async def _stats(self, request: Request) -> Response:
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

    async def _admin_get(self, request: Request) -> Response:
        return json_response(settings_to_json(self.settings))

    async def _admin_post(self, request: Request) -> Response:
        try:
            patch = await read_json(request)
            new = apply_patch(self.settings, patch)
        except (BadRequest, SettingsError) as exc:
            return json_response({"error": str(exc)}, 400)
        old, self.settings = self.settings, new
        self.settings_changed(old)
        return json_response(settings_to_json(self.settings))

    async def _ledger(self, request: Request) -> Response:
        return json_response(self.ledger())
