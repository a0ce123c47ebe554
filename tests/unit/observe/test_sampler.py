"""StatsSampler against a real HTTP server on 127.0.0.1, with one service dead."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

from chaoskit.observe.sampler import StatsSampler


def test_samples_every_service_and_reports_a_dead_one_as_missing(stack: Any) -> None:
    stack.routes["/gateway/stats"] = {"service": "gateway", "counters": {"orders_ok": 1}}
    stack.routes["/store/stats"] = {"service": "store", "counters": {}}
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}"
    rounds: list[tuple[float, dict[str, Any]]] = []
    got_three = threading.Event()

    def on_sample(t: float, stats: dict[str, Any]) -> None:
        rounds.append((t, stats))
        if len(rounds) >= 3:
            got_three.set()

    services = {**stack.services("gateway", "store"), "rider": dead, "coupon": stack.base + "/x"}
    sampler = StatsSampler(services, on_sample=on_sample, interval_s=0.1, timeout_s=0.5)
    sampler.start()
    try:
        assert got_three.wait(5.0)
    finally:
        sampler.stop()
    t, stats = rounds[0]
    assert set(stats) == {"gateway", "store"}  # rider refused, coupon answered 404
    assert stats["gateway"]["counters"]["orders_ok"] == 1
    assert rounds[1][0] > t
    assert sampler.failures["rider"] >= 3


def test_a_failing_consumer_does_not_stop_sampling(stack: Any) -> None:
    stack.routes["/gateway/stats"] = {"service": "gateway"}
    calls: list[float] = []

    def broken(t: float, stats: dict[str, Any]) -> None:
        calls.append(t)
        raise RuntimeError("consumer bug")

    sampler = StatsSampler(stack.services("gateway"), on_sample=broken, interval_s=0.05)
    sampler.start()
    deadline = time.monotonic() + 5
    while len(calls) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    sampler.stop()
    assert len(calls) >= 3
    stopped_at = len(calls)
    time.sleep(0.2)
    assert len(calls) == stopped_at  # stop() really stops it
