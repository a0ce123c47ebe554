"""The fault timeline: applies each fault window on time (or when a metric says so), moves
ramps, removes each fault at its window's end, and rolls back everything on ``stop``.

It runs on its own thread against the run clock. Every change is reported as an event;
``stop`` is safe to call from any thread, any number of times, and never raises.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from chaoskit.events import (
    Event,
    FaultApplied,
    FaultFailed,
    FaultRemoved,
    FaultRequested,
    FaultUpdated,
    LogMessage,
)
from chaoskit.faults.actuators import Actuator
from chaoskit.planning import FaultWindow

__all__ = ["FaultRecord", "FaultState", "FaultTimeline"]

Status = Literal["pending", "active", "removed", "failed", "skipped"]
_RAMP_STEP_S = 0.25


@dataclass(frozen=True, slots=True, kw_only=True)
class FaultRecord:
    """One fault as it played out (seconds since the load started; None: did not happen)."""

    name: str
    kind: str
    target: str
    params: Mapping[str, object]
    status: Status
    scheduled_at: float | None  # when the plan (or its trigger) said it should start
    requested_at: float | None  # when the actuator was asked
    applied_at: float | None  # when the server confirmed it
    removed_at: float | None  # when it was rolled back
    apply_lag_ms: float | None
    remove_lag_ms: float | None
    error: str | None  # why it could not be applied or removed


@dataclass
class FaultState:
    """A fault window as it plays out."""

    window: FaultWindow
    start: float | None
    end: float | None
    status: Status = "pending"
    actuator: Actuator | None = None
    scheduled_at: float | None = None
    requested_at: float | None = None
    applied_at: float | None = None
    removed_at: float | None = None
    apply_lag_ms: float | None = None
    remove_lag_ms: float | None = None
    error: str | None = None
    trigger_since: float | None = None
    level: float = 0.0
    last_ramp: float = 0.0

    def record(self) -> FaultRecord:
        """The fault as it played out so far."""
        spec = self.window
        return FaultRecord(
            name=spec.name,
            kind=spec.kind,
            target=spec.target,
            params={k: v for k, v in spec.params.items() if v is not None},
            status=self.status,
            scheduled_at=_r(self.scheduled_at),
            requested_at=_r(self.requested_at),
            applied_at=_r(self.applied_at),
            removed_at=_r(self.removed_at),
            apply_lag_ms=_r(self.apply_lag_ms),
            remove_lag_ms=_r(self.remove_lag_ms),
            error=self.error,
        )


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


class FaultTimeline:
    """Plays fault windows against the run clock on a background thread."""

    def __init__(
        self,
        *,
        windows: Sequence[FaultWindow],
        make_actuator: Callable[[FaultWindow], Actuator],
        emit: Callable[[Event], None],
        clock: Callable[[], float],
        tick_s: float = 0.01,
    ) -> None:
        self._make = make_actuator
        self._emit = emit
        self._clock = clock
        self._tick_s = tick_s
        self._lock = threading.RLock()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self.failures: list[str] = []
        self.states = [
            FaultState(
                window=w,
                start=w.start,
                end=None if w.start is None else _end(w.start, w.length),
                scheduled_at=w.start,
            )
            for w in windows
        ]

    # --- life cycle ----------------------------------------------------------------------
    def start(self) -> None:
        """Begin playing the timeline."""
        self._thread = threading.Thread(target=self._loop, name="fault-timeline", daemon=True)
        self._thread.start()

    def stop(self, reason: str = "run ended") -> list[str]:
        """Stop the timeline and remove every fault still in place; returns what failed."""
        self._stopped.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5.0)
        errors: list[str] = []
        with self._lock:
            for state in reversed(self.states):
                if state.status == "active" or (state.status == "failed" and state.actuator):
                    error = self._remove(state, reason)
                    if error:
                        errors.append(error)
                elif state.status == "pending":
                    state.status = "skipped"
        return errors

    @property
    def active(self) -> list[FaultState]:
        """Faults in place now."""
        with self._lock:
            return [s for s in self.states if s.status == "active"]

    def records(self) -> tuple[FaultRecord, ...]:
        """Every fault as it played out so far."""
        with self._lock:
            return tuple(s.record() for s in self.states)

    def observed_windows(self) -> list[tuple[float, float]]:
        """When faults were really in place (applied to removed), for phase boundaries."""
        with self._lock:
            spans = []
            for s in self.states:
                if s.applied_at is not None:
                    spans.append((s.applied_at, s.removed_at if s.removed_at else self._clock()))
            return spans

    # --- metric triggers ---------------------------------------------------------------------
    def on_sample(self, t: float, metrics: dict[str, float | None]) -> None:
        """Feed a per-second sample; starts triggered faults whose condition held long enough."""
        with self._lock:
            for state in self.states:
                trigger = state.window.trigger
                if trigger is None or state.status != "pending" or state.start is not None:
                    continue
                if trigger.holds(metrics.get(trigger.metric)):
                    if state.trigger_since is None:
                        state.trigger_since = t
                    if t - state.trigger_since >= trigger.for_:
                        state.start = t
                        state.scheduled_at = t
                        state.end = _end(t, state.window.length)
                else:
                    state.trigger_since = None

    # --- the loop --------------------------------------------------------------------------------
    def _loop(self) -> None:
        while not self._stopped.is_set():
            now = self._clock()
            with self._lock:
                for state in self.states:
                    if self._stopped.is_set():
                        break
                    self._step(state, now)
            self._stopped.wait(self._tick_s)

    def _step(self, state: FaultState, now: float) -> None:
        if state.status == "pending" and state.start is not None and now >= state.start:
            if state.end is not None and now >= state.end:
                state.status = "skipped"
                return
            self._apply(state, now)
        elif state.status == "active":
            if state.end is not None and now >= state.end:
                self._remove(state, "window ended")
            elif state.window.ramp and state.level < 1.0 and now - state.last_ramp >= _RAMP_STEP_S:
                self._ramp(state, now)

    def _level(self, state: FaultState, now: float) -> float:
        ramp = state.window.ramp
        if not ramp or state.start is None:
            return 1.0
        return max(0.0, min(1.0, (now - state.start) / ramp))

    def _apply(self, state: FaultState, now: float) -> None:
        spec = state.window
        state.requested_at = now
        self._emit(
            FaultRequested(
                t=now, name=spec.name, kind=spec.kind, target=spec.target, params=spec.params
            )
        )
        try:
            state.actuator = self._make(spec)
            state.level = self._level(state, now)
            state.actuator.apply(state.level)
        except Exception as exc:  # any failure to apply is recorded and ends the run cleanly
            state.status = "failed"
            state.error = str(exc)
            self.failures.append(f"fault {spec.name!r} could not be applied: {exc}")
            self._emit(FaultFailed(t=self._clock(), name=spec.name, kind=spec.kind, error=str(exc)))
            return
        confirmed = self._clock()
        state.status = "active"
        state.applied_at = confirmed
        state.last_ramp = confirmed
        base = state.scheduled_at if state.scheduled_at is not None else now
        state.apply_lag_ms = (confirmed - base) * 1000.0
        self._emit(
            FaultApplied(
                t=confirmed,
                name=spec.name,
                kind=spec.kind,
                target=spec.target,
                lag_ms=round(state.apply_lag_ms, 2),
                ends_at=state.end,
            )
        )

    def _ramp(self, state: FaultState, now: float) -> None:
        assert state.actuator is not None
        state.level = self._level(state, now)
        state.last_ramp = now
        try:
            state.actuator.update(state.level)
        except Exception as exc:  # a missed ramp step is retried on the next one
            self._emit(LogMessage(t=now, level="warning", message=f"ramp step failed: {exc}"))
            return
        self._emit(FaultUpdated(t=now, name=state.window.name, level=round(state.level, 3)))

    def _remove(self, state: FaultState, reason: str) -> str | None:
        spec = state.window
        asked = self._clock()
        error: str | None = None
        for attempt in range(3):
            try:
                if state.actuator is not None:
                    state.actuator.remove()
                error = None
                break
            except Exception as exc:  # retried: a fault must not outlive its run
                error = f"fault {spec.name!r} could not be removed: {exc}"
                time.sleep(0.1 * (attempt + 1))
        done = self._clock()
        if error is not None:
            state.error = error
            state.status = "failed"
            self._emit(FaultFailed(t=done, name=spec.name, kind=spec.kind, error=error))
            return error
        state.status = "removed"
        state.removed_at = done
        planned = state.end if state.end is not None and reason == "window ended" else asked
        state.remove_lag_ms = (done - planned) * 1000.0
        self._emit(
            FaultRemoved(
                t=done,
                name=spec.name,
                kind=spec.kind,
                reason=reason,
                lag_ms=round(state.remove_lag_ms, 2),
            )
        )
        return None


def _end(start: float, duration: float | None) -> float | None:
    if duration is None:
        return None  # until stop(), which the runner calls when the load ends
    return start + duration
