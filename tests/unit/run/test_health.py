"""The environment watch: gone (refused) is a failure, slow is not, excused services are not."""

from __future__ import annotations

import socket
import time

from chaoskit.run.health import EnvironmentWatch


class _Sampler:
    def __init__(self, gone: dict[str, float]) -> None:
        self.gone = gone

    def unreachable(self, rounds: int = 2) -> dict[str, float]:
        return dict(self.gone)


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_toxiproxy_that_refuses_connections_is_reported_within_seconds() -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    watch = EnvironmentWatch(
        toxiproxy_urls=[url], sampler=None, clock=time.monotonic, probe_every_s=0.1
    )
    watch.start()
    try:
        deadline = time.monotonic() + 5
        while watch.check() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        failure = watch.check()
        assert failure is not None and f"Toxiproxy at {url} stopped answering" in failure
    finally:
        watch.stop()


def test_a_gone_service_fails_unless_a_container_fault_stopped_it() -> None:
    sampler = _Sampler({"store": 12.0})
    excused: set[str] = {"store"}
    watch = EnvironmentWatch(
        toxiproxy_urls=[], sampler=sampler, clock=lambda: 13.0, excused=lambda: excused
    )
    assert watch.check() is None
    excused.clear()
    assert watch.check() == "service store stopped answering at t=12.0s (connection refused)"


def test_a_stop_request_ends_the_run() -> None:
    watch = EnvironmentWatch(
        toxiproxy_urls=[],
        sampler=None,
        clock=lambda: 4.0,
        stop_requested=lambda: "`chaoskit down --force` (pid 1)",
    )
    assert watch.check() == "the run was ended by `chaoskit down --force` (pid 1) at t=4.0s"
