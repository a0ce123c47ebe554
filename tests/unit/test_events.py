"""Typed events: their journal lines, and a bus on which a failing handler is detached."""

from __future__ import annotations

import json

from chaoskit.events import (
    AuditDone,
    CheckJudged,
    Event,
    EventBus,
    FaultApplied,
    GuardrailTripped,
    Sample,
)


def test_each_event_is_one_journal_line_with_its_type_and_fields() -> None:
    applied = FaultApplied(
        t=3.14159, wall=1.0, name="slow", kind="latency", target="lbs", lag_ms=2.5, ends_at=9.0
    )
    assert applied.to_json() == {
        "type": "fault_applied",
        "t": 3.142,
        "wall": 1.0,
        "name": "slow",
        "kind": "latency",
        "target": "lbs",
        "lag_ms": 2.5,
        "ends_at": 9.0,
    }
    check = CheckJudged(
        t=1, kind="hypothesis", phase="during", metric="m", min=None, max=1.0, value=None, ok=None
    )
    assert check.to_json()["type"] == "check" and check.to_json()["ok"] is None
    audit = AuditDone(t=2, audit={"status": "passed", "invariants": {}})
    assert audit.to_json()["status"] == "passed"  # the audit's keys at the top, as before
    json.dumps(Sample(t=1, metrics={"orders": 3.0}).to_json())
    assert GuardrailTripped(t=1, metric="e", value=0.9, min=None, max=0.5).limit == 0.5


def test_a_failing_handler_is_reported_once_and_detached_the_others_go_on() -> None:
    failures: list[tuple[object, BaseException]] = []
    bus = EventBus(on_handler_error=lambda handler, exc: failures.append((handler, exc)))
    seen: list[Event] = []

    class Broken:
        calls = 0

        def handle(self, event: Event) -> None:
            self.calls += 1
            raise RuntimeError("bug")

    class Good:
        def handle(self, event: Event) -> None:
            seen.append(event)

    broken = Broken()
    bus.subscribe(broken)
    bus.subscribe(Good())
    for t in range(3):
        bus.emit(Sample(t=float(t), metrics={}))
    assert broken.calls == 1
    assert len(failures) == 1 and failures[0][0] is broken
    assert [e.t for e in seen] == [0.0, 1.0, 2.0]
