"""One engine process, start to ``done``: the tick clock, stdout lines, stopping on signals."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from typing import Any

import gevent
import gevent.event

from chaoskit.load.engine import LoadGenerator
from chaoskit.load.engine_shapes import Curve, load_curve
from chaoskit.load.spec import LoadSpec

_READY_LEAD_S = 0.1  # t0 is at least this far after the engine is ready to run

__all__ = ["Clock", "StopSignal", "build_curve", "emit", "run_local", "tick_line"]


def emit(record: dict[str, Any]) -> None:
    """One protocol line on stdout."""
    sys.stdout.write(json.dumps(record, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def build_curve(spec: LoadSpec) -> Curve:
    """The spec's shape as a curve, capped."""
    return load_curve(
        spec.shape,
        model=spec.model,
        base_dir=spec.base_dir,
        horizon_s=spec.duration_s,
        caps=spec.caps,
    )


def tick_line(t: float, target: float, users: int, delta: dict[str, Any]) -> dict[str, Any]:
    """The contract's tick record."""
    return {"type": "tick", "t": round(t, 3), "target": round(target, 3), "users": users, **delta}


class StopSignal:
    """Set by SIGTERM/SIGINT, or when the process that started us goes away."""

    def __init__(self) -> None:
        self.event = gevent.event.Event()
        self._parent = os.getppid()
        for signum in (signal.SIGTERM, signal.SIGINT):
            gevent.signal_handler(signum, self.event.set)

    def orphaned(self) -> bool:
        """The parent died: nobody reads our ticks, so stop."""
        return os.getppid() != self._parent

    def wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; True when a stop was asked for."""
        if seconds > 0:
            self.event.wait(seconds)
        if self.orphaned():
            self.event.set()
        return bool(self.event.is_set())


class Clock:
    """Seconds since the spec's t0, on the monotonic clock."""

    def __init__(self, t0: float) -> None:
        self._perf_t0 = time.perf_counter() - (time.time() - t0)

    def now(self) -> float:
        return time.perf_counter() - self._perf_t0


def run_local(spec: LoadSpec, stop: StopSignal) -> int:
    """All load in this process; prints a tick at every whole second after t0, then done."""
    curve = build_curve(spec)
    # The handshake: a process that got here late (a slow start on a busy machine) moves
    # t0 rather than skipping the shape's first seconds, and says where t0 is.
    t0 = max(spec.t0, time.time() + _READY_LEAD_S)
    spec = spec.model_copy(update={"t0": t0})
    emit({"type": "ready", "t0": t0, "workers": 0})
    clock = Clock(spec.t0)
    if stop.wait(-clock.now()):
        emit({"type": "done"})
        return 0
    generator = LoadGenerator(spec=spec, curve=curve)
    generator.start()
    k = max(1, int(clock.now()) + 1)
    while k < spec.duration_s:
        if stop.wait(k - clock.now()):
            break
        emit(tick_line(float(k), curve.value_at(k), generator.users(), generator.take_delta()))
        k += 1
    else:
        stop.wait(spec.duration_s - clock.now())
    end = min(clock.now(), spec.duration_s)
    users = generator.users()
    generator.stop()
    emit(tick_line(end, curve.value_at(end), users, generator.take_delta()))
    emit({"type": "done"})
    generator.close()
    return 0
