"""Circuit breaker state machine, driven by a fake clock."""

from __future__ import annotations

from orderstack.breaker import CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_opens_on_failure_ratio_then_probes_half_open() -> None:
    clock = Clock()
    breaker = CircuitBreaker(min_calls=10, failure_ratio=0.5, open_s=5.0, clock=clock)
    for _ in range(5):
        breaker.record(True)
    for _ in range(4):
        breaker.record(False)
    assert breaker.state == "closed"  # 9 calls: below min_calls
    breaker.record(False)
    assert breaker.state == "open" and not breaker.allow()
    clock.now += 5.0
    assert breaker.allow() and breaker.state == "half_open"
    assert not breaker.allow()  # one probe at a time
    breaker.record(False)
    assert breaker.state == "open"
    clock.now += 5.0
    assert breaker.allow()
    breaker.record(True)
    assert breaker.state == "closed" and breaker.allow()


def test_old_failures_leave_the_window() -> None:
    clock = Clock()
    breaker = CircuitBreaker(window_s=10.0, min_calls=4, failure_ratio=0.5, clock=clock)
    for _ in range(3):
        breaker.record(False)
    clock.now += 11.0
    breaker.record(False)
    breaker.record(True)
    breaker.record(True)
    breaker.record(True)
    assert breaker.state == "closed"  # 1 failure in 4 recent calls
