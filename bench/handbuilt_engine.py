"""Bench only: the load engine with the hand-built agent-buyer request it had before journeys.

    python bench/handbuilt_engine.py SPEC.json

The baseline ``bench_engine`` compares the journey code path against in the same run: the
engine as it is, except that each attempt is the old hand-written POST /orders (body built by
``Intent.body``, answer judged by ``classify``, sent through Locust's ``FastHttpSession``)
instead of the journey driver. Nothing in chaoskit uses it.
"""

# locust first: it gevent-patches the process, and must do so before anything else loads.
import locust  # noqa: F401, I001

import os
import sys
import time
from typing import Any

import gevent
from locust.contrib.fasthttp import FastHttpSession

from chaoskit._secrets import expand_headers
from chaoskit.load import engine
from chaoskit.load.intents import Attempt, Intent, classify
from chaoskit.load.journey_run import JourneyDriver, locust_session

_original_init = engine.LoadGenerator.__init__


def _init(self: Any, **kwargs: Any) -> None:
    _original_init(self, **kwargs)
    self._fields = self.spec.intent_format == "fields"
    self._headers = {
        "Content-Type": "application/json",
        **expand_headers(self.spec.headers, os.environ, needed_by="the target's headers"),
    }


def _connect(self: Any, concurrency: int) -> FastHttpSession:
    # The engine's session as of commit 0d3925f: Locust's FastHttpSession, nobody listening.
    return locust_session(self._spec, concurrency)


def _attempt(
    self: Any, session: Any, intent: Intent, attempt_no: int, order_id: str, due_t: float
) -> tuple[Attempt, float]:
    # The engine's request code as of commit 0d3925f, unchanged; only the engine's
    # bookkeeping around it (latency from when it was due, the end time) follows the engine.
    began_t = self.now()
    began = time.perf_counter()
    response = session.request(
        "POST",
        self.spec.orders_path,
        name=self.spec.orders_path,
        data=intent.body(order_id, fields=self._fields),
        headers=self._headers,
    )
    latency_ms = (time.perf_counter() - began) * 1000.0
    error = getattr(response, "error", None)
    status = int(response.status_code or 0)
    cause = getattr(error, "original", error)
    timed_out = isinstance(cause, TimeoutError | gevent.Timeout) and not status
    body = None if status in (0, 200) else response.content
    attempt = classify(status or None, body, timed_out=timed_out)
    self.tally.request(latency_ms, ok=attempt.told == "ok", step=attempt.step)
    ended = self.now()
    self.tally.attempt_due((ended - min(due_t, began_t)) * 1000.0)
    self.outcomes.attempt(intent.intent_id, order_id, attempt, ended)
    return attempt, ended


JourneyDriver.connect = _connect  # type: ignore[method-assign]
engine.LoadGenerator.__init__ = _init  # type: ignore[method-assign]
engine.LoadGenerator._attempt = _attempt  # type: ignore[method-assign, assignment]

if __name__ == "__main__":
    from chaoskit.load.__main__ import main

    sys.exit(main(sys.argv[1:]))
