"""The fault timeline's logic around actuators: windows, ramps, triggers, rollback on stop.

The actuators here are recorders (a unit test of the timeline's logic); real Toxiproxy and
real /admin are exercised in tests/integration and tests/e2e.
"""

from __future__ import annotations

import threading
import time

import pytest

from chaoskit.events import Event
from chaoskit.experiment.models import Trigger
from chaoskit.faults.timeline import FaultTimeline
from chaoskit.planning import FaultWindow


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.now

    def set(self, t: float) -> None:
        with self._lock:
            self.now = t


class Recorder:
    def __init__(
        self,
        log: list[tuple[str, str, float]],
        name: str,
        *,
        fail_apply: bool = False,
        fail_remove: int = 0,
    ) -> None:
        self.log, self.name = log, name
        self.fail_apply, self.fail_remove = fail_apply, fail_remove

    def apply(self, level: float) -> None:
        if self.fail_apply:
            raise RuntimeError("proxy refused")
        self.log.append(("apply", self.name, level))

    def update(self, level: float) -> None:
        self.log.append(("update", self.name, level))

    def remove(self) -> None:
        if self.fail_remove > 0:
            self.fail_remove -= 1
            raise RuntimeError("flaky")
        self.log.append(("remove", self.name, 0.0))


def window(
    name: str,
    start: float | None,
    duration: float | None,
    *,
    ramp: float | None = None,
    trigger: Trigger | None = None,
) -> FaultWindow:
    return FaultWindow(
        name=name,
        kind="latency",
        family="network",
        target="lbs",
        start=start,
        end=None if start is None or duration is None else start + duration,
        length=duration,
        trigger=trigger,
        ramp=ramp,
    )


def wait_for(predicate: object, timeout: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.005)
    raise AssertionError("condition not reached")


@pytest.fixture
def rig() -> tuple[Clock, list[tuple[str, str, float]], list[Event]]:
    return Clock(), [], []


def make(
    rig: tuple[Clock, list[tuple[str, str, float]], list[Event]],
    windows: list[FaultWindow],
    **recorder_kw: object,
) -> FaultTimeline:
    clock, log, events = rig
    return FaultTimeline(
        windows=windows,
        make_actuator=lambda spec: Recorder(log, spec.name, **recorder_kw),  # type: ignore[arg-type]
        emit=events.append,
        clock=clock,
        tick_s=0.002,
    )


def test_window_applies_at_start_and_removes_at_end(rig) -> None:  # type: ignore[no-untyped-def]
    clock, log, events = rig
    timeline = make(rig, [window("slow", 5.0, 10.0)])
    timeline.start()
    clock.set(4.9)
    time.sleep(0.05)
    assert log == []
    clock.set(5.0)
    wait_for(lambda: log == [("apply", "slow", 1.0)])
    clock.set(15.0)
    wait_for(lambda: len(log) == 2)
    assert log[-1] == ("remove", "slow", 0.0)
    assert timeline.stop() == []
    state = timeline.states[0]
    assert state.status == "removed" and state.applied_at == 5.0 and state.removed_at == 15.0
    assert [e.type for e in events] == ["fault_requested", "fault_applied", "fault_removed"]


def test_stop_rolls_back_active_faults_and_skips_pending(rig) -> None:  # type: ignore[no-untyped-def]
    clock, log, _ = rig
    timeline = make(
        rig, [window("a", 0.0, None), window("b", 0.0, 30.0), window("late", 50.0, 5.0)]
    )
    timeline.start()
    wait_for(lambda: len(log) == 2)
    assert timeline.stop(reason="interrupted") == []
    assert sorted(e for e in log if e[0] == "remove") == [
        ("remove", "a", 0.0),
        ("remove", "b", 0.0),
    ]
    assert [s.status for s in timeline.states] == ["removed", "removed", "skipped"]
    assert timeline.stop() == []  # safe twice


def test_ramp_moves_level_from_zero_to_one(rig) -> None:  # type: ignore[no-untyped-def]
    clock, log, _ = rig
    timeline = make(rig, [window("ramp", 0.0, 20.0, ramp=10.0)])
    timeline.start()
    wait_for(lambda: log and log[0][0] == "apply")
    assert log[0] == ("apply", "ramp", 0.0)
    for t in (2.5, 5.0, 10.0):
        clock.set(t)
        wait_for(lambda t=t: log[-1][0] == "update" and log[-1][2] == pytest.approx(t / 10.0))
    timeline.stop()


def test_metric_trigger_starts_a_window_after_the_condition_holds(rig) -> None:  # type: ignore[no-untyped-def]
    clock, log, _ = rig
    trigger = Trigger.model_validate({"metric": "orders_per_s", "above": 50.0, "for": 2.0})
    timeline = make(rig, [window("surge-fault", None, 5.0, trigger=trigger)])
    timeline.start()
    timeline.on_sample(1.0, {"orders_per_s": 60.0})
    timeline.on_sample(2.0, {"orders_per_s": 40.0})  # resets
    timeline.on_sample(3.0, {"orders_per_s": 70.0})
    timeline.on_sample(4.0, {"orders_per_s": 70.0})
    assert timeline.states[0].start is None
    timeline.on_sample(5.0, {"orders_per_s": 70.0})
    assert timeline.states[0].start == 5.0 and timeline.states[0].end == 10.0
    clock.set(5.0)
    wait_for(lambda: log == [("apply", "surge-fault", 1.0)])
    timeline.stop()
    assert log[-1] == ("remove", "surge-fault", 0.0)


def test_a_fault_that_cannot_be_applied_is_reported(rig) -> None:  # type: ignore[no-untyped-def]
    _, log, events = rig
    timeline = make(rig, [window("bad", 0.0, 5.0)], fail_apply=True)
    timeline.start()
    wait_for(lambda: timeline.failures)
    assert "bad" in timeline.failures[0] and "proxy refused" in timeline.failures[0]
    assert timeline.stop() == []
    assert any(e.type == "fault_failed" for e in events)


def test_removal_is_retried(rig) -> None:  # type: ignore[no-untyped-def]
    _, log, _ = rig
    timeline = make(rig, [window("flaky", 0.0, None)], fail_remove=2)
    timeline.start()
    wait_for(lambda: log)
    assert timeline.stop() == []
    assert log[-1] == ("remove", "flaky", 0.0)
