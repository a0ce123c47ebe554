"""The journey driver of one engine process: one attempt of one intent, as the journey says.

The engine's re-click loop calls ``JourneyDriver.attempt`` for every click; the driver sends
the steps (or calls the Python journey), counts every HTTP request in the tally (a failed one
under its step's name) and tells the engine how the attempt ended. Importing this module
needs gevent (the engine process only).
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeAlias
from urllib.parse import urlsplit

import gevent
from locust.contrib.fasthttp import FastHttpSession
from locust.event import EventHook

from chaoskit._secrets import expand_headers
from chaoskit.errors import InputError, SafetyRefusal
from chaoskit.journey.builtin import resolve_journey
from chaoskit.journey.compiled import CompiledJourney, CompiledStep, compile_journey
from chaoskit.journey.models import JourneyConfig
from chaoskit.journey.outcome import JourneyIntent, Outcome
from chaoskit.journey.paths import MISSING
from chaoskit.load.intents import RETRYABLE_4XX, Attempt, Intent
from chaoskit.load.spec import LOCAL_HOSTS, LoadSpec
from chaoskit.load.tally import Tally
from chaoskit.load.wire import Answer, Wire

__all__ = [
    "Connection",
    "HookClient",
    "JourneyDriver",
    "journey_of",
    "load_hook",
    "locust_session",
]

# What one buyer (closed) or the open model's arrivals send through: the journey's wire, or
# Locust's session for a Python journey.
Connection: TypeAlias = Wire | FastHttpSession

_BAD_JSON: Any = object()
HookFunction = Callable[[Any, JourneyIntent], Any]


def journey_of(spec: LoadSpec) -> JourneyConfig:
    """The spec's journey, or the built-in agent buyer on the spec's orders path."""
    return resolve_journey(
        spec.journey, orders_path=spec.orders_path, intent_format=spec.intent_format
    )


def load_hook(reference: str) -> HookFunction:
    """Import ``file.py:function`` (an absolute or cwd-relative file); ``InputError`` if not."""
    file_name, _, function_name = reference.rpartition(":")
    path = Path(file_name)
    if not path.is_file():
        raise InputError(f"journey python: no such file {path}")
    module_name = f"chaoskit_journey_{abs(hash(str(path.resolve())))}"
    module_spec = importlib.util.spec_from_file_location(module_name, path)
    if module_spec is None or module_spec.loader is None:
        raise InputError(f"journey python: cannot import {path}")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[module_name] = module
    try:
        module_spec.loader.exec_module(module)
    except Exception as exc:
        raise InputError(f"journey python: importing {path} failed: {exc!r}") from exc
    function = getattr(module, function_name, None)
    if not callable(function):
        raise InputError(f"journey python: {path} has no function {function_name!r}")
    hook: HookFunction = function
    return hook


def locust_session(spec: LoadSpec, concurrency: int) -> FastHttpSession:
    """Locust's session to the spec's gateway (a Python journey's client), stats unheard."""
    timeout_s = spec.behaviour.request_timeout
    return FastHttpSession(
        base_url=spec.gateway_url.rstrip("/"),
        # Nobody listens: chaoskit's tally is the record, not Locust's stats.
        request_event=EventHook(),  # type: ignore[no-untyped-call]
        user=None,
        concurrency=max(1, concurrency),
        network_timeout=timeout_s,
        connection_timeout=timeout_s,
        max_retries=0,
    )


class HookClient:
    """Locust's ``FastHttpSession`` API for a Python journey; every request is counted.

    Requests count in requests, latency and errors; the failure's step is the one the
    journey's ``Outcome.failed(step)`` names. An absolute URL must be on the target's
    allow-list: a journey never leaves it.
    """

    def __init__(
        self,
        session: FastHttpSession,
        tally: Tally,
        allowed_hosts: frozenset[str],
        headers: Mapping[str, str],
    ) -> None:
        self.session = session
        self._tally = tally
        self._allowed = allowed_hosts
        self._headers = headers  # the target's (run tag, auth), under the journey's own

    @property
    def base_url(self) -> str:
        """The target's gateway URL relative paths go to."""
        return str(self.session.base_url)

    def request(self, method: str, url: str, name: str | None = None, **kwargs: Any) -> Any:
        """Send one request, like ``FastHttpSession.request``."""
        if "://" in url:
            host = (urlsplit(url).hostname or "").lower()
            if host not in self._allowed:
                raise SafetyRefusal(f"journey request to {host!r}: not in allowed_hosts")
        kwargs["headers"] = {**self._headers, **(kwargs.get("headers") or {})}
        began = time.perf_counter()
        response = self.session.request(method, url, name=name, **kwargs)
        latency_ms = (time.perf_counter() - began) * 1000.0
        status = int(getattr(response, "status_code", 0) or 0)
        self._tally.request(latency_ms, ok=True)
        if not 0 < status < 400 or getattr(response, "error", None) is not None:
            # An error answer; the step it fails is the journey's to say (its Outcome).
            self._tally.counts["request_errors"] += 1
        return response

    def get(self, url: str, **kwargs: Any) -> Any:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, data: Any = None, **kwargs: Any) -> Any:
        return self.request("POST", url, data=data, **kwargs)

    def put(self, url: str, data: Any = None, **kwargs: Any) -> Any:
        return self.request("PUT", url, data=data, **kwargs)

    def patch(self, url: str, data: Any = None, **kwargs: Any) -> Any:
        return self.request("PATCH", url, data=data, **kwargs)

    def delete(self, url: str, **kwargs: Any) -> Any:
        return self.request("DELETE", url, **kwargs)

    def head(self, url: str, **kwargs: Any) -> Any:
        return self.request("HEAD", url, **kwargs)

    def options(self, url: str, **kwargs: Any) -> Any:
        return self.request("OPTIONS", url, **kwargs)


class JourneyDriver:
    """Runs attempts of the spec's journey (steps or a Python function) for the engine."""

    def __init__(self, *, spec: LoadSpec, tally: Tally) -> None:
        self._spec = spec
        self._tally = tally
        self._run_id = spec.run_id
        self._prefix = len(spec.run_id) + 1  # intent ids are "<run_id>-<key>"
        config = journey_of(spec)
        self.config = config
        self._hook: HookFunction | None = None
        self._journey: CompiledJourney | None = None
        self._allowed = frozenset(LOCAL_HOSTS | {h.lower() for h in spec.allowed_hosts})
        # Header values may name environment variables (${TOKEN}): expanded here, in the
        # engine's own environment, so secrets are never written to the spec or the journal.
        headers = expand_headers(spec.headers, os.environ, needed_by="the target's headers")
        if config.python_ref is not None:
            file_name, function_name = config.python_ref
            self._hook = load_hook(f"{file_name}:{function_name}")
            self._hook_steps = frozenset(config.failure_steps())
            self._hook_headers = headers
        else:
            steps = [
                step.model_copy(
                    update={
                        "request": step.request.model_copy(
                            update={
                                "headers": expand_headers(
                                    step.request.headers,
                                    os.environ,
                                    needed_by=f"journey step {step.name}",
                                )
                            }
                        )
                    }
                )
                for step in config.steps
            ]
            self._journey = compile_journey(
                config.model_copy(update={"steps": steps}), seed=spec.seed, headers=headers
            )
            # Constant headers (the common case) are one dict shared by every request.
            self._steps: tuple[tuple[CompiledStep, dict[str, str] | None], ...] = tuple(
                (
                    step,
                    {name: t.render({}) for name, t in step.headers}
                    if all(not t.names for _, t in step.headers)
                    else None,
                )
                for step in self._journey.steps
            )

    # -- one attempt ------------------------------------------------------------------------

    def connect(self, concurrency: int) -> Connection:
        """A connection for one closed-model user (1) or the open model's arrivals."""
        spec = self._spec
        timeout_s = spec.behaviour.request_timeout
        if self._hook is None:
            return Wire(spec.gateway_url, concurrency=concurrency, timeout_s=timeout_s)
        return locust_session(spec, concurrency)

    @staticmethod
    def disconnect(connection: Connection) -> None:
        """Close a connection from ``connect``."""
        if isinstance(connection, Wire):
            connection.close()
        else:
            connection.client.clientpool.close()

    def attempt(
        self, connection: Connection, intent: Intent, attempt_no: int, order_key: str
    ) -> tuple[Attempt, str]:
        """One click of ``intent``: how it ended, and the order id to log for the audit."""
        if self._hook is not None:
            assert not isinstance(connection, Wire)
            return self._hook_attempt(connection, intent, attempt_no, order_key)
        assert isinstance(connection, Wire)
        journey = self._journey
        assert journey is not None
        values: dict[str, Any] = {
            "run_id": self._run_id,
            "intent_id": intent.intent_id,
            "user_id": intent.user_id,
            "attempt": attempt_no,
            "order_key": order_key,
            "text": intent.text,
            "item": intent.item,
            "spec": intent.spec,
            "place": intent.place,
            "deadline_min": intent.deadline_min,
        }
        if journey.variables:
            values.update(journey.seeded_vars(intent.intent_id[self._prefix :]))
        outcome: Attempt | None = None
        jar: dict[str, str] = {}  # cookies the attempt's answers set, sent on its later steps
        for step, headers in self._steps:
            outcome = self._step(connection, step, headers, values, jar)
            if outcome.told != "ok":
                break
        assert outcome is not None
        try:
            order_id = journey.order_id.render(values)
        except KeyError:
            order_id = ""  # failed before the step that names the order
        return outcome, order_id

    @staticmethod
    def _send(
        wire: Wire,
        step: CompiledStep,
        headers: dict[str, str] | None,
        values: Mapping[str, Any],
        jar: dict[str, str],
    ) -> Answer:
        """One request of ``step``, and its answer."""
        if headers is None:
            headers = {name: t.render(values) for name, t in step.headers}
        if jar:
            cookie = "; ".join(f"{name}={value}" for name, value in jar.items())
            headers = {**headers, "Cookie": cookie}
        body = None if step.body is None else step.body.render(values)
        answer = wire.send(
            step.method, step.path.render(values), body, headers, timeout_s=step.timeout_s
        )
        if answer.cookies:
            jar.update(answer.cookies)
        return answer

    def _step(
        self,
        wire: Wire,
        step: CompiledStep,
        headers: dict[str, str] | None,
        values: dict[str, Any],
        jar: dict[str, str],
    ) -> Attempt:
        deadline = time.perf_counter() + step.poll_timeout_s if step.poll_until else 0.0
        while True:
            answer = self._send(wire, step, headers, values, jar)
            tally = self._tally
            status, latency_ms = answer.status, answer.latency_ms
            if answer.timed_out:
                tally.request(latency_ms, ok=False, step=step.timeout_step)
                return Attempt("timeout", step.timeout_step, None, True)
            if not status:
                tally.request(latency_ms, ok=False, step=step.name)
                return Attempt("failed", step.name, None, True)
            if status not in step.statuses:
                name = step.name
                if step.failure_step is not None:
                    found = step.failure_step.first(_json(answer.body))
                    if type(found) is str and found:
                        name = found
                tally.request(latency_ms, ok=False, step=name)
                retryable = status >= 500 or status in RETRYABLE_4XX
                return Attempt("failed", name, status, retryable)
            if not step.needs_body:
                tally.request(latency_ms, ok=True)
                return Attempt("ok", None, status, False)
            body = _json(answer.body)
            if body is _BAD_JSON or (step.check is not None and not step.check(body)):
                tally.request(latency_ms, ok=False, step=step.name)
                return Attempt("failed", step.name, status, True)
            if step.poll_until is not None and not step.poll_until(body):
                # Not confirmed yet: failed for good (fail_if), out of time, or ask again.
                failed = step.poll_fail_if is not None and step.poll_fail_if(body)
                if failed or time.perf_counter() + step.poll_every_s > deadline:
                    tally.request(latency_ms, ok=False, step=step.name)
                    return Attempt("failed", step.name, status, True)
                tally.request(latency_ms, ok=True)
                gevent.sleep(step.poll_every_s)
                continue
            for name, path in step.extract:
                found = path.first(body)
                if found is MISSING:
                    tally.request(latency_ms, ok=False, step=step.name)
                    return Attempt("failed", step.name, status, True)
                values[name] = found
            tally.request(latency_ms, ok=True)
            return Attempt("ok", None, status, False)

    # -- a Python journey -------------------------------------------------------------------

    def _hook_attempt(
        self, session: FastHttpSession, intent: Intent, attempt_no: int, order_key: str
    ) -> tuple[Attempt, str]:
        assert self._hook is not None
        journey_intent = JourneyIntent(
            run_id=self._run_id,
            intent_id=intent.intent_id,
            user_id=intent.user_id,
            attempt=attempt_no,
            order_key=order_key,
            text=intent.text,
            item=intent.item,
            spec=intent.spec,
            place=intent.place,
            deadline_min=intent.deadline_min,
        )
        client = HookClient(session, self._tally, self._allowed, self._hook_headers)
        try:
            result = self._hook(client, journey_intent)
        except gevent.GreenletExit:
            raise
        except Exception:  # noqa: BLE001 - the team's code failing is a failed attempt
            result = Outcome.failed("journey")
        if result is True or result is False:
            result = Outcome.ok() if result else Outcome.failed("journey")
        if not isinstance(result, Outcome):
            result = Outcome.failed("journey")
        order_id = result.order_id or order_key
        if result.fulfilled:
            return Attempt("ok", None, None, False), order_id
        step = result.step if result.step in self._hook_steps else "journey"
        self._tally.failed_steps[step] += 1  # one failed attempt, at the step it names
        return Attempt("failed", step, None, result.retryable), order_id


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, TypeError):
        return _BAD_JSON
