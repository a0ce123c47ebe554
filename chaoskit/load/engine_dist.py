"""Distributed load on Locust's master/worker transport, with chaoskit's clock.

The master runs no users. Once ``spec.workers`` workers have joined it fixes the shape
clock's t0 (a handshake: the clock never starts before the workers are there) and says so
(``ready``), then hands each worker the spec and a *share* (``chaoskit_spec``): worker
``index`` of ``count`` runs arrival/user ``m`` with ``m % count == index``. Workers send a
delta at every whole second (``chaoskit_delta``); the master merges each second's deltas
and prints the tick.

The fleet can change while the shape clock runs, and the clock never waits or skips for
it: a worker that dies or is cut off (no heartbeat for a few seconds) is reported
(``worker_lost``) and its share is handed to the others (``reshare``); a worker that
joins late, or comes back, is given a share. A new share takes effect at a shape time
``_RESHARE_LEAD_S`` ahead, the same for every worker, and arrivals are one global
sequence (see ``LoadGenerator``), so each arrival is run by exactly one worker. A worker
that hears nothing from its master for ``_CUTOFF_S`` stops its load (its share is being
handed on) until the master gives it a share again. With ``stop_on_worker_loss`` a loss
ends the run instead.
"""

from __future__ import annotations

import math
import os
import socket
import subprocess
import sys
import time
from typing import Any

import gevent
import gevent.event
import locust.runners
from locust.env import Environment
from locust.runners import STATE_MISSING, MasterRunner, WorkerRunner

from chaoskit.errors import EnvironmentProblem
from chaoskit.load.engine import LoadGenerator, Share
from chaoskit.load.engine_run import Clock, StopSignal, build_curve, emit, tick_line
from chaoskit.load.lifeline import child_env
from chaoskit.load.spec import LoadSpec
from chaoskit.load.tally import merge_deltas

__all__ = ["run_master", "run_worker"]

_SPEC_MSG, _READY_MSG, _GO_MSG, _SHARE_MSG, _DELTA_MSG, _STOP_MSG, _FINAL_MSG, _BACK_MSG = (
    "chaoskit_spec",
    "chaoskit_ready",
    "chaoskit_go",
    "chaoskit_share",
    "chaoskit_delta",
    "chaoskit_stop",
    "chaoskit_final",
    "chaoskit_back",
)
_TICK_GRACE_S = 0.25  # the master prints second k at k + this, once workers' deltas are in
_FINAL_WAIT_S = 1.0
_LOCAL_CONNECT_TIMEOUT_S = 30.0
_READY_LEAD_S = 0.5  # t0 is this far after the last worker is ready (or the spec's, if later)
_RESHARE_LEAD_S = 1.0  # a new share starts this far ahead, so every worker has it in time
_CHECK_S = 0.2  # how often the master looks for lost and joining workers
_SPEC_RESEND_S = 1.0  # the spec again to a worker not ready after this
_CUTOFF_S = 3.0  # a worker with no heartbeat from its master this long stops its load
_SHARE_GRID_S = 0.01  # shares start on the arrival clock's grid


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class _Merger:
    """Deltas from workers, filed by the second they belong to."""

    def __init__(self) -> None:
        self.pending: dict[int, list[dict[str, Any]]] = {}
        self.users: dict[str, int] = {}
        self.pids: dict[str, int] = {}
        self.finals: dict[str, dict[str, Any]] = {}

    def on_delta(self, environment: Environment, msg: Any, **_: Any) -> None:
        data = msg.data
        self.users[msg.node_id] = int(data["users"])
        self.pids[msg.node_id] = int(data["pid"])
        self.pending.setdefault(int(data["k"]), []).append(data["delta"])

    def on_final(self, environment: Environment, msg: Any, **_: Any) -> None:
        self.users[msg.node_id] = 0
        self.finals[msg.node_id] = msg.data["delta"]

    def take_until(self, k: int | None) -> dict[str, Any]:
        """Merge every delta for seconds <= k (None: all), late ones included."""
        keys = [key for key in self.pending if k is None or key <= k]
        deltas = [delta for key in sorted(keys) for delta in self.pending.pop(key)]
        return merge_deltas(deltas)


def run_master(spec: LoadSpec, stop: StopSignal) -> int:
    """Bind a Locust master, start or await ``spec.workers`` workers, print merged ticks."""
    port = spec.master_port or _free_port()
    environment = Environment(user_classes=[])
    master: MasterRunner = environment.create_master_runner(spec.master_bind, port)
    merger = _Merger()
    master.register_message(_DELTA_MSG, merger.on_delta)
    master.register_message(_FINAL_MSG, merger.on_final)
    children: list[subprocess.Popen[bytes]] = []
    if not spec.expect_workers:
        command = [
            sys.executable,
            "-m",
            "chaoskit.load",
            "--worker",
            "--master",
            f"127.0.0.1:{port}",
        ]
        for _ in range(spec.workers):
            children.append(
                # Each worker dies with this master (chaoskit.load.lifeline), however it ends.
                subprocess.Popen(
                    command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, env=child_env()
                )
            )
    try:
        return _drive(spec, stop, master=master, merger=merger, children=children)
    finally:
        master.quit()
        for child in children:
            try:
                child.wait(timeout=2.0)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()


class _Fleet:
    """Which workers hold a share now; hands out new shares when that changes."""

    def __init__(
        self,
        *,
        spec: LoadSpec,
        master: MasterRunner,
        merger: _Merger,
        children: list[subprocess.Popen[bytes]],
        clock: Clock,
    ) -> None:
        self.spec = spec
        self.master = master
        self.merger = merger
        self.children = children
        self.clock = clock
        self.active: list[str] = []
        self.lost: set[str] = set()
        self.has_spec: set[str] = set()
        self.back: set[str] = set()  # workers that say they were cut off and are back
        self.ready: set[str] = set()  # workers that built their generator and await t0
        self.shares: dict[str, Share] = {}  # the last share each active worker was given
        self.epoch = 0
        self._started = False
        self._dead_pids: set[int] = set()
        master.register_message(_BACK_MSG, self._on_back)
        master.register_message(_READY_MSG, self._on_ready)

    def _on_back(self, environment: Environment, msg: Any, **_: Any) -> None:
        self.back.add(msg.node_id)

    def _on_ready(self, environment: Environment, msg: Any, **_: Any) -> None:
        self.ready.add(msg.node_id)

    def offer(self, workers: list[str]) -> None:
        """The first hand-out: spec and shares from t = 0; t0 follows in ``go``."""
        self.active = list(workers)
        for index, client_id in enumerate(self.active):
            self.shares[client_id] = Share(0.0, index, len(self.active), 0)
            self._send_spec(client_id, self.shares[client_id])

    def offer_again(self) -> None:
        """The spec again to each worker that has not said it is ready."""
        for client_id in self.active:
            if client_id not in self.ready:
                self._send_spec(client_id, self.shares[client_id])

    def go(self, t0: float) -> None:
        """Start the shape clock at ``t0`` for every worker."""
        self.spec = self.spec.model_copy(update={"t0": t0})
        self._started = True
        for client_id in self.active:
            self.master.send_message(_GO_MSG, {"t0": t0}, client_id)

    def _send_spec(self, client_id: str, share: Share) -> None:
        payload = self.spec.model_dump(mode="json")
        data = {"spec": payload, "share": _share_json(share), "go": self._started}
        self.master.send_message(_SPEC_MSG, data, client_id)
        self.has_spec.add(client_id)

    def _gone(self, client_id: str) -> bool:
        node = self.master.clients.get(client_id)
        if node is None or node.state == STATE_MISSING:
            return True
        return self.merger.pids.get(client_id) in self._dead_pids

    def check(self) -> bool:
        """Find lost and joining workers and re-share; True if the run must stop."""
        self._dead_pids |= {c.pid for c in self.children if c.poll() is not None}
        now = self.clock.now()
        lost = [c for c in self.active if self._gone(c)]
        back, self.back = self.back, set()
        for client_id in back & set(self.active):
            # It paused itself while cut off, but we never saw it go: its share stands.
            if not self._gone(client_id) and client_id in self.shares:
                again = _share_json(self.shares[client_id])
                self.master.send_message(_SHARE_MSG, again, client_id)
        joined = [
            client_id
            for client_id in sorted(self.master.clients.keys())
            if client_id not in self.active
            and client_id not in self.merger.finals
            and not self._gone(client_id)
        ]
        joined = [c for c in joined if c not in lost]
        if not lost and not joined:
            return False
        before = len(self.active)
        self.active = [c for c in self.active if c not in lost and c not in joined] + joined
        for client_id in lost:
            self.lost.add(client_id)
            self.merger.users.pop(client_id, None)
            emit(
                {
                    "type": "worker_lost",
                    "worker": client_id,
                    "t": round(now, 3),
                    "share": round(1.0 / max(1, before), 4),
                    "workers_left": len(self.active),
                }
            )
        if lost and self.spec.stop_on_worker_loss:
            return True
        self.epoch += 1
        from_t = math.ceil((now + _RESHARE_LEAD_S) / _SHARE_GRID_S) * _SHARE_GRID_S
        count = len(self.active)
        for index, client_id in enumerate(self.active):
            share = self.shares[client_id] = Share(from_t, index, count, self.epoch)
            if client_id in self.has_spec:
                self.master.send_message(_SHARE_MSG, _share_json(share), client_id)
            else:
                self._send_spec(client_id, Share(0.0, 0, 0, 0))
                self.master.send_message(_SHARE_MSG, _share_json(share), client_id)
        emit(
            {
                "type": "reshare",
                "t": round(now, 3),
                "from_t": round(from_t, 3),
                "workers": count,
                "epoch": self.epoch,
                "lost": lost,
                "joined": joined,
            }
        )
        if not count:
            emit(
                {
                    "type": "log",
                    "level": "warning",
                    "message": f"no load workers left at t={now:.1f} s: "
                    "no load is sent until one joins",
                }
            )
        return False


def _share_json(share: Share) -> dict[str, Any]:
    return {
        "from_t": share.from_t,
        "index": share.index,
        "count": share.count,
        "epoch": share.epoch,
    }


def _share_from(data: dict[str, Any]) -> Share:
    return Share(float(data["from_t"]), int(data["index"]), int(data["count"]), int(data["epoch"]))


def _drive(
    spec: LoadSpec,
    stop: StopSignal,
    *,
    master: MasterRunner,
    merger: _Merger,
    children: list[subprocess.Popen[bytes]],
) -> int:
    timeout = spec.expect_workers_timeout_s if spec.expect_workers else _LOCAL_CONNECT_TIMEOUT_S
    deadline = time.monotonic() + timeout
    while master.worker_count < spec.workers:
        if stop.wait(0.05):
            emit({"type": "done"})
            return 0
        if time.monotonic() > deadline or any(child.poll() is not None for child in children):
            emit(
                {"type": "error", "message": f"{master.worker_count}/{spec.workers} workers joined"}
            )
            emit({"type": "done"})
            raise EnvironmentProblem(
                f"load workers: {master.worker_count} of {spec.workers} joined the master"
            )
    # The handshake: the shape clock starts once the workers are here and have built their
    # generators (imports, the curve), never before: a slow start costs no load.
    clock = Clock(spec.t0)
    fleet = _Fleet(spec=spec, master=master, merger=merger, children=children, clock=clock)
    fleet.offer(sorted(master.clients.keys())[: spec.workers])
    resend_at = time.monotonic() + _SPEC_RESEND_S
    while not all(client_id in fleet.ready for client_id in fleet.active):
        if stop.wait(0.02):
            emit({"type": "done"})
            return 0
        if time.monotonic() > resend_at:
            # A worker can get our spec before it registered its handler (Locust drops it
            # as "Unknown message type"): say it again; a worker takes the first one only.
            fleet.offer_again()
            resend_at = time.monotonic() + _SPEC_RESEND_S
        if time.monotonic() > deadline + _LOCAL_CONNECT_TIMEOUT_S:
            raise EnvironmentProblem("load workers joined but never became ready")
    t0 = max(spec.t0, time.time() + _READY_LEAD_S)
    spec = spec.model_copy(update={"t0": t0})
    fleet.clock = clock = Clock(t0)
    fleet.go(t0)
    curve = build_curve(spec)
    emit({"type": "ready", "t0": t0, "workers": spec.workers})

    def wait_until(t: float) -> bool:
        """Sleep until shape time ``t``, minding the fleet; True when the run must stop."""
        while True:
            left = t - clock.now()
            if stop.wait(min(left, _CHECK_S)) or fleet.check():
                return True
            if left <= _CHECK_S:
                return False

    k = max(1, int(math.floor(clock.now())) + 1)
    stopped = False
    while k < spec.duration_s:
        if wait_until(k + _TICK_GRACE_S):
            stopped = True
            break
        emit(
            tick_line(float(k), curve.value_at(k), sum(merger.users.values()), merger.take_until(k))
        )
        k += 1
    if not stopped:
        stopped = wait_until(spec.duration_s)
    end = min(clock.now(), spec.duration_s)
    users = sum(merger.users.values())
    for client_id in fleet.active:
        master.send_message(_STOP_MSG, None, client_id)
    final_by = clock.now() + _FINAL_WAIT_S
    while clock.now() < final_by and any(c not in merger.finals for c in fleet.active):
        gevent.sleep(0.02)
    final = merge_deltas([merger.take_until(None), *merger.finals.values()])
    emit(tick_line(end, curve.value_at(end), users, final))
    emit({"type": "done"})
    return 0


def run_worker(master_host: str, master_port: int, stop: StopSignal) -> int:
    """Join a master, wait for the spec, run this worker's share until told to stop."""
    # A cut-off worker stops its load after _CUTOFF_S; it gives up on its master (and
    # exits) only after this, so a link that comes back in time finds it still there.
    locust.runners.MASTER_HEARTBEAT_TIMEOUT = 30
    environment = Environment(user_classes=[])
    worker: WorkerRunner = environment.create_worker_runner(master_host, master_port)
    state: dict[str, Any] = {}
    finished = gevent.event.Event()

    go = gevent.event.AsyncResult()

    def run(data: dict[str, Any]) -> None:
        spec = LoadSpec.model_validate(data["spec"])
        curve = build_curve(spec)
        if not data.get("go"):
            worker.send_message(_READY_MSG, None)
            spec = spec.model_copy(update={"t0": float(go.get())})
        clock = Clock(spec.t0)
        generator = LoadGenerator(spec=spec, curve=curve, share=_share_from(data["share"]))
        for share in state.pop("early_shares", []):
            generator.reshare(share)
        state["generator"] = generator
        gevent.sleep(max(0.0, -clock.now()))
        generator.start()
        k = max(1, int(math.floor(clock.now())) + 1)
        cut_off = False
        # A safety net: the master orders the stop; this ends a worker whose master is gone.
        while k < spec.duration_s + 5.0:
            gevent.sleep(max(0.0, k - clock.now()))
            heard = worker.last_heartbeat_timestamp or time.time()
            if not cut_off and time.time() - heard > _CUTOFF_S:
                cut_off = True
                generator.pause()
                print(
                    f"load: no word from the master for {_CUTOFF_S:.0f} s: load paused",
                    file=sys.stderr,
                )
            elif cut_off and time.time() - heard <= _CUTOFF_S:
                cut_off = False
                worker.send_message(_BACK_MSG, None)
            delta = generator.take_delta()
            report = {"k": k, "users": generator.users(), "pid": os.getpid(), "delta": delta}
            worker.send_message(_DELTA_MSG, report)
            k += 1
        finish()

    def finish() -> None:
        generator: LoadGenerator | None = state.pop("generator", None)
        if generator is not None:
            runner_greenlet = state.pop("runner", None)
            if runner_greenlet is not None and runner_greenlet is not gevent.getcurrent():
                runner_greenlet.kill(block=True)
            generator.stop()
            worker.send_message(_FINAL_MSG, {"delta": generator.take_delta()})
            generator.close()
        finished.set()

    def on_spec(environment: Environment, msg: Any, **_: Any) -> None:
        if "runner" not in state:
            state["runner"] = gevent.spawn(run, msg.data)

    def on_go(environment: Environment, msg: Any, **_: Any) -> None:
        go.set(float(msg.data["t0"]))

    def on_share(environment: Environment, msg: Any, **_: Any) -> None:
        generator: LoadGenerator | None = state.get("generator")
        if generator is None:  # the spec's greenlet has not built it yet
            state.setdefault("early_shares", []).append(_share_from(msg.data))
        else:
            generator.reshare(_share_from(msg.data))

    def on_stop(environment: Environment, msg: Any, **_: Any) -> None:
        gevent.spawn(finish)

    worker.register_message(_SPEC_MSG, on_spec)
    worker.register_message(_GO_MSG, on_go)
    worker.register_message(_SHARE_MSG, on_share)
    worker.register_message(_STOP_MSG, on_stop)
    quit_watch = gevent.spawn(worker.greenlet.join)
    while not finished.is_set() and not quit_watch.dead:
        if stop.wait(0.2):
            finish()
            break
    if not quit_watch.dead:
        # give the master a moment to send quit, so it does not count us as lost
        quit_watch.join(timeout=3.0)
    return 0
