"""The load generator of one engine process: open-model arrivals or closed-model users.

chaoskit owns the shape clock (``t`` = seconds since the spec's ``t0``), so one process or
many behave the same (locust issue 2242: a master's ramp skips ``tick()``). Locust gives us
its fast HTTP client, request events (its own stats keep working) and, in
``engine_dist``, the master/worker transport. Importing this module gevent-patches the
process: only the engine process imports it.
"""

from __future__ import annotations

import math
import os
import random
import time
from pathlib import Path
from typing import Any, TextIO

import gevent
import gevent.event
import gevent.pool
from locust.contrib.fasthttp import FastHttpSession
from locust.env import Environment

from chaoskit.load.engine_shapes import Curve
from chaoskit.load.intents import (
    Attempt,
    Intent,
    json_string,
    make_intent,
    user_for,
)
from chaoskit.load.journey_run import JourneyDriver
from chaoskit.load.spec import LoadSpec
from chaoskit.load.tally import Tally

__all__ = ["LoadGenerator", "OutcomeLog"]

_STEP_S = 0.01  # integration step of the arrival clock; rate changes are seen this fast
_CONTROL_S = 0.1  # how often the closed model re-reads the user target


class OutcomeLog:
    """Buffered ``outcomes/<pid>.jsonl`` writer: one line per HTTP attempt, for the audit."""

    def __init__(self, run_dir: Path) -> None:
        folder = run_dir / "outcomes"
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / f"{os.getpid()}.jsonl"
        self._file: TextIO = self.path.open("a", encoding="utf-8")
        self._lines: list[str] = []

    def attempt(self, intent_id: str, order_id: str, attempt: Attempt, t: float) -> None:
        """Remember one attempt; written at the next ``flush``."""
        # Formatted by hand: one line per request, json.dumps of a dict costs more.
        step = "null" if attempt.step is None else json_string(attempt.step)
        status = "null" if attempt.status is None else str(attempt.status)
        self._lines.append(
            f'{{"intent":{json_string(intent_id)},"order_id":{json_string(order_id)},'
            f'"told":"{attempt.told}","step":{step},"status":{status},"t":{t:.3f}}}\n'
        )

    def flush(self) -> None:
        """Write what is buffered."""
        if self._lines:
            lines, self._lines = self._lines, []
            self._file.write("".join(lines))
            self._file.flush()

    def close(self) -> None:
        """Flush and close."""
        self.flush()
        self._file.close()


class LoadGenerator:
    """Runs this process's share (``worker_index`` of ``worker_count``) of the spec's load."""

    def __init__(
        self,
        *,
        spec: LoadSpec,
        curve: Curve,
        environment: Environment,
        worker_index: int = 0,
        worker_count: int = 1,
    ) -> None:
        self.spec = spec
        self.curve = curve
        self.tally = Tally()
        self.outcomes = OutcomeLog(Path(spec.run_dir))
        self._index = worker_index
        self._count = max(1, worker_count)
        # perf_counter value at t0: the shared epoch clock read once, then a monotonic one.
        self._perf_t0 = time.perf_counter() - (time.time() - spec.t0)
        self._stopping = False
        self._greenlets = gevent.pool.Group()
        self._intents = gevent.pool.Pool(spec.max_inflight if spec.model == "open" else None)
        self._wake = gevent.event.Event()
        self._target = 0.0
        self._local_users: list[int] = []
        # What one attempt is (the journey's steps, or its Python function): one code path
        # for every target, the stub stack's contract being the built-in agent-buyer.
        self.journey = JourneyDriver(spec=spec, tally=self.tally)
        self._environment = environment
        # Open model: one pool shared by all arrivals; closed: one connection per user,
        # as Locust's FastHttpUser has (cheaper than sharing a pool).
        self.session = self._new_session(spec.max_inflight)
        self._sessions: list[FastHttpSession] = [self.session]

    def _new_session(self, concurrency: int) -> FastHttpSession:
        return FastHttpSession(
            base_url=self.spec.gateway_url.rstrip("/"),
            request_event=self._environment.events.request,
            user=None,
            concurrency=max(1, concurrency),
            network_timeout=self.spec.behaviour.request_timeout,
            connection_timeout=self.spec.behaviour.request_timeout,
            max_retries=0,
        )

    def now(self) -> float:
        """Seconds since the spec's t0."""
        return time.perf_counter() - self._perf_t0

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start the scheduler (open) or the users and their controller (closed)."""
        if self.spec.model == "open":
            self._greenlets.spawn(self._schedule_arrivals)
        else:
            peak = int(math.ceil(self.curve.peak - 1e-9))
            self._local_users = list(range(self._index, peak, self._count))
            self._target = self.curve.value_at(self.now())
            self._greenlets.spawn(self._control_users)
            for user in self._local_users:
                self._intents.spawn(self._closed_user, user)

    def stop(self) -> None:
        """Stop issuing load; intents still running become ``abandoned``."""
        self._stopping = True
        self._greenlets.kill(block=True, timeout=0.5)
        self._intents.kill(block=True, timeout=1.0)
        self.outcomes.flush()

    def close(self) -> None:
        """Release the output file and HTTP connections."""
        self.outcomes.close()
        for session in self._sessions:
            session.client.clientpool.close()

    def users(self) -> int:
        """Closed: users active now; open: intents in flight."""
        if self.spec.model == "open":
            return len(self._intents)
        return sum(1 for user in self._local_users if user < self._target)

    def take_delta(self) -> dict[str, Any]:
        """This process's counts since the last call; flushes the outcome file."""
        self.outcomes.flush()
        return self.tally.take()

    # -- open model --------------------------------------------------------------------------

    def _schedule_arrivals(self) -> None:
        """Issue arrivals at the curve's rate, whatever the server does (no coordinated omission).

        Arrival j of this process happens when the integral of its rate share reaches
        ``offset + j`` (uniform) or a seeded exponential sum (poisson).
        """
        spec, curve, count = self.spec, self.curve, self._count
        rng = random.Random(f"{spec.seed}:arrivals:{self._index}")
        poisson = spec.arrivals == "poisson"
        t = max(0.0, self.now())
        area = 0.0
        next_at = rng.expovariate(1.0) if poisson else self._index / count
        j = 0
        while t < spec.duration_s:
            while area < next_at and t < spec.duration_s:
                rate = curve.value_at(t) / count
                if rate <= 0.0:
                    t += _STEP_S
                    continue
                dt = min((next_at - area) / rate, _STEP_S)
                area += rate * dt
                t += dt
            if t >= spec.duration_s:
                break
            delay = t - self.now()
            if delay > 0:
                gevent.sleep(delay)
            if self._intents.full():
                self.tally.add("dropped")
            else:
                key = f"o{self._index + j * count}"
                intent = make_intent(spec.seed, key, run_id=spec.run_id)
                self.tally.add("intents_started")
                self._intents.spawn(self._run_intent, intent, t, None, self.session)
            j += 1
            next_at += rng.expovariate(1.0) if poisson else 1.0

    # -- closed model ------------------------------------------------------------------------

    def _control_users(self) -> None:
        while True:
            target = self.curve.value_at(self.now())
            if target > self._target:
                self._target = target
                wake, self._wake = self._wake, gevent.event.Event()
                wake.set()
            else:
                self._target = target
            gevent.sleep(_CONTROL_S)

    def _closed_user(self, user: int) -> None:
        spec = self.spec
        user_id = user_for(spec.seed, user, run_id=spec.run_id)
        session = self._new_session(1)
        self._sessions.append(session)
        n = 0
        while not self._stopping:
            if user < self._target:
                intent = make_intent(spec.seed, f"c{user}.{n}", run_id=spec.run_id, user=user_id)
                n += 1
                self.tally.add("intents_started")
                self._run_intent(intent, self.now(), user, session)
            else:
                self._wake.wait(0.5)

    # -- the agent buyer ---------------------------------------------------------------------

    def _run_intent(
        self, intent: Intent, started_t: float, user: int | None, session: FastHttpSession
    ) -> None:
        """One intent to its outcome: attempt, and re-click after think time on failure."""
        behaviour = self.spec.behaviour
        order_id = f"{intent.intent_id}.0"
        last_step: str | None = None
        try:
            for attempt_no in range(behaviour.reclick + 1):
                if attempt_no:
                    if self._stopping or (user is not None and user >= self._target):
                        self.tally.abandoned(started_t)
                        return
                    gevent.sleep(behaviour.think_time)
                    if not behaviour.reuse_idempotency_key:
                        order_id = f"{intent.intent_id}.{attempt_no}"
                attempt = self._attempt(session, intent, attempt_no, order_id)
                if not attempt_no:
                    self.tally.first_try(ok=attempt.told == "ok", started_t=started_t)
                if attempt.told == "ok":
                    self.tally.fulfilled((self.now() - started_t) * 1000.0, started_t)
                    return
                last_step = attempt.step
                if not attempt.retryable:
                    self.tally.abandoned(started_t)
                    return
            self.tally.failed(last_step or "gateway", started_t)
        except gevent.GreenletExit:
            self.tally.abandoned(started_t)
            raise

    def _attempt(
        self, session: FastHttpSession, intent: Intent, attempt_no: int, order_key: str
    ) -> Attempt:
        attempt, order_id = self.journey.attempt(session, intent, attempt_no, order_key)
        self.outcomes.attempt(intent.intent_id, order_id, attempt, self.now())
        return attempt
