"""gateway: parses an intent and walks the order chain, every hop through its dependency's proxy."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import random
import time
import uuid
from typing import Any
from urllib.parse import quote

from .breaker import CircuitBreaker
from .common import Service, json_response
from .config import DEPENDENCIES, StackConfig
from .histogram import LogHistogram
from .httpserver import Request, Response, Route, post
from .outbox import OUTBOX_FILE, Outbox, OutboxItem
from .parse import Intent, ParseError, burn, intent_from_fields, parse_intent
from .settings import GatewaySettings, ServiceSettings
from .upstream import Upstream, UpstreamError

__all__ = ["GatewayService", "StepFailed"]

log = logging.getLogger("orderstack.gateway")

STEPS: tuple[str, ...] = ("parse", *DEPENDENCIES, "gateway")
_PATHS = {
    "inventory": "/reserve",
    "lbs": "/quote",
    "eligibility": "/check",
    "orders": "/orders",
    "store": "/accept",
    "rider": "/dispatch",
    "coupon": "/credit",
}
_dumps = json.JSONEncoder(separators=(",", ":")).encode
_BACKOFF_BASE_S = 0.05
_BACKOFF_CAP_S = 1.0
_CREDIT_AMOUNT = 1.0


class StepFailed(Exception):
    """A chain step failed: which step, the HTTP status to answer with, and why."""

    def __init__(self, step: str, status: int, reason: str, retry_after: int | None = None) -> None:
        super().__init__(f"{step}: {reason}")
        self.step = step
        self.status = status
        self.reason = reason
        self.retry_after = retry_after


def _reason(dep: str, status: int, body: bytes) -> str:
    try:
        detail = json.loads(body).get("error", "")
    except (ValueError, AttributeError):
        detail = body[:80].decode("utf-8", "replace")
    return f"{dep} answered {status}" + (f": {detail}" if detail else "")


def _retry_after(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return max(1, math.ceil(float(value)))
    except ValueError:
        return 1


class GatewayService(Service):
    name = "gateway"
    settings: GatewaySettings

    def __init__(self, config: StackConfig) -> None:
        super().__init__(config)
        self.counters.update(
            intents_received=0,
            orders_ok=0,
            orders_failed=0,
            retries=0,
            shed=0,
            breaker_rejections=0,
            coupon_credited=0,
            coupon_enqueued=0,
            compensations=0,
            compensations_failed=0,
            releases=0,
            releases_failed=0,
        )
        for step in STEPS:
            self.counters[f"failed_step.{step}"] = 0
        self.histograms["order_latency_ms"] = LogHistogram()
        # One keep-alive pool per dependency, no cap on connections: the proxies and the
        # services are what is under test, not a client-side limit (max_inflight is the knob).
        self.upstreams = {dep: Upstream(config.upstreams[dep]) for dep in DEPENDENCIES}
        self.breakers = {dep: CircuitBreaker() for dep in DEPENDENCIES}
        self.inflight = 0
        self.retry_rng = random.Random(f"{config.seed}:retry")
        self.outbox = Outbox(
            config.data_dir / OUTBOX_FILE, rng=random.Random(f"{config.seed}:outbox")
        )
        self._drainer: asyncio.Task[None] | None = None

    # --- lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        self.outbox.open()
        self._drainer = asyncio.get_running_loop().create_task(self.outbox.drain(self._send_credit))

    async def stop(self) -> None:
        if self._drainer is not None:
            self._drainer.cancel()
            await asyncio.gather(self._drainer, return_exceptions=True)
        await self.outbox.close()
        for upstream in self.upstreams.values():
            upstream.close()

    def routes(self) -> list[Route]:
        return [post("/orders", self.place_order)]

    def settings_changed(self, old: ServiceSettings) -> None:
        if not self.settings.circuit_breaker:
            self.breakers = {dep: CircuitBreaker() for dep in DEPENDENCIES}

    # --- the order chain --------------------------------------------------------------------
    async def place_order(self, request: Request) -> Response:
        started = time.perf_counter()
        self.counters["intents_received"] += 1
        s = self.settings
        if s.load_shedding and self.inflight >= s.max_inflight:
            self.counters["shed"] += 1
            response = self._failed(StepFailed("gateway", 429, "shedding load", retry_after=1))
        else:
            self.inflight += 1
            try:
                response = await self._chain(await request.read())
            except StepFailed as failure:
                response = self._failed(failure)
            except Exception as exc:  # a bug here must still answer in the contract's shape
                log.exception("order chain crashed")
                response = self._failed(StepFailed("gateway", 500, f"internal: {exc!r}"))
            finally:
                self.inflight -= 1
        self.histograms["order_latency_ms"].record((time.perf_counter() - started) * 1000.0)
        return response

    def _failed(self, failure: StepFailed) -> Response:
        self.counters["orders_failed"] += 1
        self.counters[f"failed_step.{failure.step}"] += 1
        headers = None
        if failure.retry_after is not None or failure.status in (429, 503):
            headers = {"Retry-After": str(failure.retry_after or 1)}
        body = {"outcome": "failed", "step": failure.step, "reason": failure.reason}
        return json_response(body, failure.status, headers)

    def injected_response(self, status: int) -> Response:
        self.counters["orders_failed"] += 1
        self.counters["failed_step.gateway"] += 1
        headers = {"Retry-After": "1"} if status in (429, 503) else None
        body = {"outcome": "failed", "step": "gateway", "reason": "injected http error"}
        return json_response(body, status, headers)

    def _intent(self, body: dict[str, Any]) -> Intent:
        text = body.get("text")
        if text is None:
            return intent_from_fields(body)
        if not isinstance(text, str):
            raise ParseError(f"text: expected a string, got {json.dumps(text)}")
        if self.settings.parse_cost:
            burn(self.settings.parse_cost)
        return parse_intent(text)

    async def _chain(self, raw: bytes) -> Response:
        try:
            body = json.loads(raw)
            if not isinstance(body, dict):
                raise ParseError("body: expected a JSON object")
            order_id = body.get("order_id") or f"gw-{uuid.uuid4().hex}"
            user_id = body.get("user_id", "anonymous")
            intent_id = body.get("intent_id", order_id)
            ids = (("order_id", order_id), ("user_id", user_id), ("intent_id", intent_id))
            for key, value in ids:
                if not isinstance(value, str):
                    raise ParseError(f"{key}: expected a string, got {json.dumps(value)}")
            intent = self._intent(body)
        except ValueError as exc:  # ParseError and JSON errors
            raise StepFailed("parse", 400, str(exc)) from None

        call = self.call
        await call("inventory", {"order_id": order_id, "item": intent.item})
        quote = await call("lbs", {"order_id": order_id, "place": intent.place})
        verdict = await call("eligibility", {"order_id": order_id, "user_id": user_id})
        eligible = bool(verdict.get("eligible"))
        # The compensating design: a failed order gives its free order back to the buyer.
        releasable = eligible and bool(verdict.get("release_on_failure"))
        try:
            order = await call(
                "orders",
                {
                    "order_id": order_id,
                    "intent_id": intent_id,
                    "user_id": user_id,
                    "eligible": eligible,
                },
            )
        except StepFailed:
            if releasable:
                await self._release(order_id)
            raise
        try:
            accepted = await call(
                "store", {"order_id": order_id, "store_hint": quote.get("store_hint", 0)}
            )
            dispatched = await call("rider", {"order_id": order_id})
            coupon = "none"
            if eligible:
                coupon = await self._credit(order_id, float(order.get("created_at", time.time())))
        except StepFailed:
            # The client is told "failed": cancel the order so the ledger agrees (best effort;
            # nothing else is released, as in the system being modelled).
            await self._cancel(order_id)
            if releasable:
                await self._release(order_id)
            raise
        self.counters["orders_ok"] += 1
        return json_response(
            {
                "outcome": "ok",
                "order_id": order_id,
                "eligible": eligible,
                "coupon": coupon,
                "store": accepted.get("store"),
                "rider_id": dispatched.get("rider_id"),
                "eta_min": quote.get("eta_min"),
            }
        )

    async def _credit(self, order_id: str, order_time: float) -> str:
        if self.settings.coupon_mode == "sync":
            await self.call(
                "coupon", {"order_id": order_id, "order_time": order_time, "amount": _CREDIT_AMOUNT}
            )
            self.counters["coupon_credited"] += 1
            return "credited"
        try:
            added = await self.outbox.add(order_id, order_time, _CREDIT_AMOUNT)
        except Exception as exc:
            raise StepFailed("gateway", 500, f"outbox write failed: {exc}") from None
        if added:
            self.counters["coupon_enqueued"] += 1
        return "pending"

    async def call(self, dep: str, payload: dict[str, Any]) -> Any:
        """POST to a dependency through its upstream, with timeout, retries and the breaker."""
        s = self.settings
        breaker = self.breakers[dep] if s.circuit_breaker else None
        attempts = 1 if s.retries == "none" else 1 + s.max_retries
        data = _dumps(payload).encode()
        upstream, path = self.upstreams[dep], _PATHS[dep]
        failure = StepFailed(dep, 502, f"{dep}: no attempt made")
        for attempt in range(attempts):
            if breaker is not None and not breaker.allow():
                self.counters["breaker_rejections"] += 1
                wait = max(1, math.ceil(breaker.retry_after()))
                # The chain broke at this dependency: say so, and that the breaker answered.
                raise StepFailed(dep, 503, f"{dep}: circuit open", retry_after=wait)
            if attempt:
                self.counters["retries"] += 1
            try:
                resp = await upstream.post(path, data, timeout=s.timeout_s)
                status = resp.status
                if status < 400:
                    if breaker is not None:
                        breaker.record(True)
                    return json.loads(resp.body)
                reason = _reason(dep, status, resp.body)
                retry_after = _retry_after(resp.headers.get("retry-after"))
                failure = StepFailed(dep, status, reason, retry_after)
                retryable = status >= 500 or status == 429
            except TimeoutError:
                failure = StepFailed(dep, 504, f"{dep} timed out after {s.timeout_s:g}s")
                retryable = True
            except UpstreamError as exc:
                failure = StepFailed(dep, 502, f"{dep} unreachable: {type(exc).__name__}")
                retryable = True
            if breaker is not None:
                # Business answers (409 out of stock, 422 out of range) say the dependency works.
                breaker.record(not retryable)
            if not retryable:
                break
            if s.retries == "backoff" and attempt + 1 < attempts:
                # Full jitter: sleep uniformly in [0, base * 2^attempt] (capped).
                ceiling = min(_BACKOFF_CAP_S, _BACKOFF_BASE_S * 2**attempt)
                await asyncio.sleep(ceiling * self.retry_rng.random())
        raise failure

    async def _cancel(self, order_id: str) -> None:
        self.counters["compensations"] += 1
        path = f"/orders/{quote(order_id, safe='')}/cancel"
        try:
            resp = await self.upstreams["orders"].post(path, b"", timeout=self.settings.timeout_s)
            ok = resp.status < 300 or resp.status == 404
        except (TimeoutError, UpstreamError):
            ok = False
        if not ok:
            self.counters["compensations_failed"] += 1

    async def _release(self, order_id: str) -> None:
        """Give the free-order quota back (best effort: a failed release is counted)."""
        self.counters["releases"] += 1
        data = _dumps({"order_id": order_id}).encode()
        try:
            resp = await self.upstreams["eligibility"].post(
                "/release", data, timeout=self.settings.timeout_s
            )
            ok = resp.status < 300
        except (TimeoutError, UpstreamError):
            ok = False
        if not ok:
            self.counters["releases_failed"] += 1

    async def _send_credit(self, item: OutboxItem) -> bool:
        payload = {"order_id": item.order_id, "order_time": item.order_time, "amount": item.amount}
        data = _dumps(payload).encode()
        try:
            resp = await self.upstreams["coupon"].post(
                _PATHS["coupon"], data, timeout=self.settings.timeout_s
            )
            ok = resp.status < 300
        except (TimeoutError, UpstreamError):
            return False
        if ok:
            self.counters["coupon_credited"] += 1
        return ok

    # --- observation ----------------------------------------------------------------------
    def gauges(self) -> dict[str, float]:
        return {
            "inflight": self.inflight,
            "outbox_pending": len(self.outbox.pending),
            "breaker_open": sum(1 for b in self.breakers.values() if b.state != "closed"),
        }

    def ledger(self) -> dict[str, Any]:
        return {"outbox": self.outbox.ledger()}
