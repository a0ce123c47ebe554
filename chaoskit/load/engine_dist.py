"""Distributed load on Locust's master/worker transport, with chaoskit's clock.

The master runs no users: it hands the spec to each worker (custom message
``chaoskit_spec`` with the worker's index), workers run their 1/N share of the load on
the shared t0 clock and send a delta at every whole second (``chaoskit_delta``); the
master merges the deltas of each second and prints the tick. Locust's ``worker_report``
still carries Locust's own stats and each worker's active-user gauge.
"""

from __future__ import annotations

import math
import os
import socket
import subprocess
import sys
from typing import Any

import gevent
import gevent.event
import locust.runners
from locust.env import Environment
from locust.runners import STATE_MISSING, MasterRunner, WorkerRunner

from chaoskit.errors import EnvironmentProblem
from chaoskit.load.engine import LoadGenerator
from chaoskit.load.engine_run import Clock, StopSignal, build_curve, emit, tick_line
from chaoskit.load.lifeline import child_env
from chaoskit.load.spec import LoadSpec
from chaoskit.load.tally import merge_deltas

__all__ = ["run_master", "run_worker"]

_SPEC_MSG, _DELTA_MSG, _STOP_MSG, _FINAL_MSG = (
    "chaoskit_spec",
    "chaoskit_delta",
    "chaoskit_stop",
    "chaoskit_final",
)
_TICK_GRACE_S = 0.25  # the master prints second k at k + this, once workers' deltas are in
_FINAL_WAIT_S = 1.0
_LOCAL_CONNECT_TIMEOUT_S = 30.0


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
    curve = build_curve(spec)
    clock = Clock(spec.t0)
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
        return _drive(
            spec, stop, curve=curve, clock=clock, master=master, merger=merger, children=children
        )
    finally:
        master.quit()
        for child in children:
            try:
                child.wait(timeout=2.0)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()


def _drive(
    spec: LoadSpec,
    stop: StopSignal,
    *,
    curve: Any,
    clock: Clock,
    master: MasterRunner,
    merger: _Merger,
    children: list[subprocess.Popen[bytes]],
) -> int:
    timeout = spec.expect_workers_timeout_s if spec.expect_workers else _LOCAL_CONNECT_TIMEOUT_S
    deadline = clock.now() + timeout
    while master.worker_count < spec.workers:
        if stop.wait(0.05):
            emit({"type": "done"})
            return 0
        if clock.now() > deadline or any(child.poll() is not None for child in children):
            emit(
                {"type": "error", "message": f"{master.worker_count}/{spec.workers} workers joined"}
            )
            emit({"type": "done"})
            raise EnvironmentProblem(
                f"load workers: {master.worker_count} of {spec.workers} joined the master"
            )
    assigned = sorted(master.clients.keys())[: spec.workers]
    payload = spec.model_dump(mode="json")
    for index, client_id in enumerate(assigned):
        master.send_message(
            _SPEC_MSG, {"spec": payload, "index": index, "count": len(assigned)}, client_id
        )
    late = clock.now()
    if late > 0.5:
        # The shape clock started without them: say what was not sent, never hide it.
        emit(
            {
                "type": "log",
                "level": "warning",
                "message": f"load workers joined {late:.1f} s after the shape clock started: "
                f"the first {late:.1f} s of load were not sent",
            }
        )
    lost: set[str] = set()

    def check_lost() -> bool:
        # Our own children are seen dying at once; any worker, by Locust's heartbeats.
        dead_pids = {child.pid for child in children if child.poll() is not None}
        for client_id in assigned:
            if client_id in lost or client_id in merger.finals:
                continue
            node = master.clients.get(client_id)
            gone = node is None or node.state == STATE_MISSING
            if gone or merger.pids.get(client_id) in dead_pids:
                lost.add(client_id)
                merger.users.pop(client_id, None)
                emit({"type": "worker_lost", "worker": client_id})
                if spec.stop_on_worker_loss:
                    return True
        return len(lost) == len(assigned)

    k = max(1, int(math.floor(clock.now())) + 1)
    stopped = False
    while k < spec.duration_s:
        if stop.wait(k + _TICK_GRACE_S - clock.now()) or check_lost():
            stopped = True
            break
        emit(
            tick_line(float(k), curve.value_at(k), sum(merger.users.values()), merger.take_until(k))
        )
        k += 1
    if not stopped:
        stop.wait(spec.duration_s - clock.now())
    end = min(clock.now(), spec.duration_s)
    users = sum(merger.users.values())
    live = [client_id for client_id in assigned if client_id not in lost]
    for client_id in live:
        master.send_message(_STOP_MSG, None, client_id)
    wait_until = clock.now() + _FINAL_WAIT_S
    while clock.now() < wait_until and any(c not in merger.finals for c in live):
        gevent.sleep(0.02)
    final = merge_deltas([merger.take_until(None), *merger.finals.values()])
    emit(tick_line(end, curve.value_at(end), users, final))
    emit({"type": "done"})
    return 0


def run_worker(master_host: str, master_port: int, stop: StopSignal) -> int:
    """Join a master, wait for the spec, run this worker's share until told to stop."""
    # Tighter than Locust's 60 s: an orphaned worker must not keep sending load for long.
    locust.runners.MASTER_HEARTBEAT_TIMEOUT = 10
    environment = Environment(user_classes=[])
    worker: WorkerRunner = environment.create_worker_runner(master_host, master_port)
    state: dict[str, Any] = {}
    finished = gevent.event.Event()

    def run(data: dict[str, Any]) -> None:
        spec = LoadSpec.model_validate(data["spec"])
        curve = build_curve(spec)
        clock = Clock(spec.t0)
        generator = LoadGenerator(
            spec=spec,
            curve=curve,
            environment=environment,
            worker_index=int(data["index"]),
            worker_count=int(data["count"]),
        )
        state["generator"] = generator
        gevent.sleep(max(0.0, -clock.now()))
        generator.start()
        k = max(1, int(math.floor(clock.now())) + 1)
        # A safety net: the master orders the stop; this ends a worker whose master is gone.
        while k < spec.duration_s + 5.0:
            gevent.sleep(max(0.0, k - clock.now()))
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
        state["runner"] = gevent.spawn(run, msg.data)

    def on_stop(environment: Environment, msg: Any, **_: Any) -> None:
        gevent.spawn(finish)

    worker.register_message(_SPEC_MSG, on_spec)
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
