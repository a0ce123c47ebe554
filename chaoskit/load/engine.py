"""The load generator of one engine process: open-model arrivals or closed-model users.

chaoskit owns the shape clock (``t`` = seconds since the spec's ``t0``), so one process or
many behave the same (locust issue 2242: a master's ramp skips ``tick()``). Locust gives us
gevent, its fast HTTP client's connection layer (``chaoskit.load.wire``; a Python journey
gets its ``FastHttpSession``) and, in ``engine_dist``, the master/worker transport. Importing
this module needs the gevent-patched engine process: only the engine process imports it.
"""

from __future__ import annotations

import math
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import gevent
import gevent.event
import gevent.pool

from chaoskit.load.engine_shapes import Curve
from chaoskit.load.intents import (
    Attempt,
    Intent,
    json_string,
    make_intent,
    user_for,
)
from chaoskit.load.journey_run import Connection, JourneyDriver
from chaoskit.load.spec import LoadSpec
from chaoskit.load.tally import Tally

__all__ = ["LoadGenerator", "OutcomeLog", "Share"]

_STEP_S = 0.01  # integration step of the arrival clock; rate changes are seen this fast
_CONTROL_S = 0.1  # how often the closed model re-reads the user target
_LOOKAHEAD_S = 0.2  # how far the arrival walk may run ahead of the clock (< a reshare's lead)


@dataclass(frozen=True, slots=True)
class Share:
    """From shape time ``from_t`` on, this process runs arrival/user ``m`` with
    ``m % count == index`` (``count`` 0: none). ``epoch`` numbers the master's hand-outs."""

    from_t: float
    index: int
    count: int
    epoch: int = 0

    def owns(self, m: int) -> bool:
        """True if arrival (open) or user (closed) ``m`` is this process's."""
        return self.count > 0 and m % self.count == self.index


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
        if attempt.told == "ok":  # the common case, in one piece
            tail = '"told":"ok","step":null,"status":200'
        else:
            step = "null" if attempt.step is None else json_string(attempt.step)
            status = "null" if attempt.status is None else str(attempt.status)
            tail = f'"told":"{attempt.told}","step":{step},"status":{status}'
        self._lines.append(
            f'{{"intent":{json_string(intent_id)},"order_id":{json_string(order_id)},'
            f'{tail},"t":{t:.3f}}}\n'
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
    """Runs this process's share of the spec's load; the share can change while it runs."""

    def __init__(
        self,
        *,
        spec: LoadSpec,
        curve: Curve,
        share: Share | None = None,
    ) -> None:
        self.spec = spec
        self.curve = curve
        self.tally = Tally()
        self.outcomes = OutcomeLog(Path(spec.run_dir))
        # Shares in force, oldest first: the one for time t is the last with from_t <= t.
        self._shares: list[Share] = [share if share is not None else Share(0.0, 0, 1)]
        self._share_now = self._shares[0]  # closed model: the share as of the last control step
        # perf_counter value at t0: the shared epoch clock read once, then a monotonic one.
        self._perf_t0 = time.perf_counter() - (time.time() - spec.t0)
        self._stopping = False
        self._greenlets = gevent.pool.Group()
        self._intents = gevent.pool.Pool(spec.max_inflight if spec.model == "open" else None)
        self._wake = gevent.event.Event()
        self._target = 0.0
        self._user_greenlets: dict[int, gevent.Greenlet[Any]] = {}
        # What one attempt is (the journey's steps, or its Python function): one code path
        # for every target, the stub stack's contract being the built-in agent-buyer.
        self.journey = JourneyDriver(spec=spec, tally=self.tally)
        # Open model: one pool shared by all arrivals; closed: one connection per user,
        # as Locust's FastHttpUser has (cheaper than sharing a pool).
        self.connection = self.journey.connect(spec.max_inflight)
        self._connections: list[Connection] = [self.connection]

    def now(self) -> float:
        """Seconds since the spec's t0."""
        return time.perf_counter() - self._perf_t0

    # -- shares ------------------------------------------------------------------------------

    def share_at(self, t: float) -> Share:
        """The share in force at shape time ``t``."""
        found = self._shares[0]
        for share in self._shares:
            if share.from_t <= t:
                found = share
        return found

    def reshare(self, share: Share) -> None:
        """Take ``share`` from its ``from_t`` on (a later hand-out replaces any not yet due).

        The master's share given again after a pause takes effect from now.
        """
        if share.from_t < self.now() and share.epoch >= self.share_at(self.now()).epoch:
            share = Share(max(share.from_t, self.now()), share.index, share.count, share.epoch)
        self._shares = [s for s in self._shares if s.from_t < share.from_t] + [share]
        if len(self._shares) > 8:  # keep the list short; only the last one before now matters
            now = self.now()
            current = self.share_at(now)
            self._shares = [current, *[s for s in self._shares if s.from_t > now]]

    def pause(self) -> None:
        """Run nothing from now on until a new share comes (cut off from the master)."""
        current = self.share_at(self.now())
        self.reshare(Share(self.now(), 0, 0, current.epoch))

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start the scheduler (open) or the user controller (closed)."""
        if self.spec.model == "open":
            self._greenlets.spawn(self._schedule_arrivals)
        else:
            self._target = self.curve.value_at(self.now())
            self._greenlets.spawn(self._control_users)

    def stop(self) -> None:
        """Stop issuing load; intents still running become ``abandoned``."""
        self._stopping = True
        self._greenlets.kill(block=True, timeout=0.5)
        self._intents.kill(block=True, timeout=1.0)
        self.outcomes.flush()

    def close(self) -> None:
        """Release the output file and HTTP connections."""
        self.outcomes.close()
        for connection in self._connections:
            self.journey.disconnect(connection)

    def users(self) -> int:
        """Closed: users active now; open: intents in flight."""
        if self.spec.model == "open":
            return len(self._intents)
        share = self.share_at(self.now())
        return sum(1 for user in self._user_greenlets if user < self._target and share.owns(user))

    def take_delta(self) -> dict[str, Any]:
        """This process's counts since the last call; flushes the outcome file."""
        self.outcomes.flush()
        return self.tally.take()

    # -- open model --------------------------------------------------------------------------

    def _schedule_arrivals(self) -> None:
        """Issue arrivals at the curve's rate, whatever the server does (no coordinated omission).

        One global sequence of arrivals for all processes: arrival ``m`` happens when the
        integral of the rate reaches ``m`` (uniform) or a seeded exponential sum (poisson),
        integrated on a fixed grid from t = 0, so every process computes the same times and
        the shares (``m % count == index``) split them exactly, however often they change.
        Arrivals before this process's first share are walked past, not sent.
        """
        spec, curve = self.spec, self.curve
        rng = random.Random(f"{spec.seed}:arrivals")
        poisson = spec.arrivals == "poisson"
        duration = spec.duration_s
        steps = int(math.ceil(duration / _STEP_S - 1e-9))
        area = 0.0
        next_at = rng.expovariate(1.0) if poisson else 0.0
        m = 0
        ahead_until = 0.0
        for k in range(steps):
            t_k = k * _STEP_S
            if t_k > ahead_until:
                # Never walk far ahead of the clock: a share handed out now takes effect
                # _RESHARE_LEAD_S ahead, and must find this walk not yet there.
                wait = t_k - _LOOKAHEAD_S - self.now()
                if wait > 0:
                    gevent.sleep(wait)
                ahead_until = t_k + _LOOKAHEAD_S / 2
            rate = curve.value_at(t_k)
            if rate <= 0.0:
                continue
            area_end = area + rate * _STEP_S
            if next_at >= area_end:
                area = area_end
                continue
            share = self.share_at(t_k)
            while next_at < area_end:
                if share.owns(m):
                    t = t_k + (next_at - area) / rate
                    if t >= duration - 1e-9:  # the sum of steps is a hair off the end
                        return
                    delay = t - self.now()
                    if delay > 0:
                        gevent.sleep(delay)
                    self._arrive(m, t)
                m += 1
                next_at += rng.expovariate(1.0) if poisson else 1.0
            area = area_end

    def _arrive(self, m: int, t: float) -> None:
        if self._intents.full():
            self.tally.add("dropped")
            return
        intent = make_intent(self.spec.seed, f"o{m}", run_id=self.spec.run_id)
        self.tally.add("intents_started")
        self._intents.spawn(self._run_intent, intent, t, None, self.connection)

    # -- closed model ------------------------------------------------------------------------

    def _control_users(self) -> None:
        peak = int(math.ceil(self.curve.peak - 1e-9))
        reconciled: Share | None = None
        while True:
            now = self.now()
            target = self.curve.value_at(now)
            share = self._share_now = self.share_at(now)
            if target > self._target:
                self._target = target
                wake, self._wake = self._wake, gevent.event.Event()
                wake.set()
            else:
                self._target = target
            if share is not reconciled:  # users change hands only when the share does
                reconciled = share
                for user in range(peak):
                    if share.owns(user):
                        running = self._user_greenlets.get(user)
                        if running is None or running.dead:
                            self._user_greenlets[user] = self._intents.spawn(
                                self._closed_user, user, share.epoch
                            )
            gevent.sleep(_CONTROL_S)

    def _closed_user(self, user: int, epoch: int) -> None:
        spec = self.spec
        user_id = user_for(spec.seed, user, run_id=spec.run_id)
        connection = self.journey.connect(1)
        self._connections.append(connection)
        # Keys stay unique when a user moves between processes: a later share's keys
        # carry the epoch it was handed out in.
        prefix = f"c{user}." if epoch == 0 else f"c{user}.e{epoch}."
        n = 0
        while not self._stopping:
            if not self._share_now.owns(user):
                return  # handed to another process: it runs this user from now on
            if user < self._target:
                intent = make_intent(spec.seed, f"{prefix}{n}", run_id=spec.run_id, user=user_id)
                n += 1
                self.tally.add("intents_started")
                self._run_intent(intent, self.now(), user, connection)
            else:
                self._wake.wait(0.5)

    # -- the agent buyer ---------------------------------------------------------------------

    def _run_intent(
        self, intent: Intent, started_t: float, user: int | None, connection: Connection
    ) -> None:
        """One intent to its outcome: attempt, and re-click after think time on failure.

        ``started_t`` is when the intent was scheduled (open) or began (closed); each
        attempt's latency is also measured from when it was due, so an engine that falls
        behind its schedule shows it (coordinated omission).
        """
        behaviour = self.spec.behaviour
        order_id = f"{intent.intent_id}.0"
        last_step: str | None = None
        due_t = started_t
        try:
            for attempt_no in range(behaviour.reclick + 1):
                if attempt_no:
                    if self._stopping or (user is not None and user >= self._target):
                        self.tally.abandoned(started_t)
                        return
                    gevent.sleep(behaviour.think_time)
                    due_t += behaviour.think_time
                    if not behaviour.reuse_idempotency_key:
                        order_id = f"{intent.intent_id}.{attempt_no}"
                attempt, ended_t = self._attempt(connection, intent, attempt_no, order_id, due_t)
                if not attempt_no:
                    self.tally.first_try(ok=attempt.told == "ok", started_t=started_t)
                if attempt.told == "ok":
                    self.tally.fulfilled((ended_t - started_t) * 1000.0, started_t)
                    return
                due_t = ended_t
                last_step = attempt.step
                if not attempt.retryable:
                    self.tally.abandoned(started_t)
                    return
            self.tally.failed(last_step or "gateway", started_t)
        except gevent.GreenletExit:
            self.tally.abandoned(started_t)
            raise

    def _attempt(
        self,
        connection: Connection,
        intent: Intent,
        attempt_no: int,
        order_key: str,
        due_t: float,
    ) -> tuple[Attempt, float]:
        began = self.now()
        attempt, order_id = self.journey.attempt(connection, intent, attempt_no, order_key)
        ended = self.now()
        # the attempt's latency from when it was due, beside each request's from its send
        self.tally.attempt_due((ended - min(due_t, began)) * 1000.0)
        self.outcomes.attempt(intent.intent_id, order_id, attempt, ended)
        return attempt, ended
