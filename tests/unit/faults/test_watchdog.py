"""The watchdog's own life: beats are cheap, it exits with its run, and stop() undoes nothing.

Undoing real toxics after a kill is tested against a real Toxiproxy in
tests/integration/test_attach.py; here the records list nothing that needs a server.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from chaoskit.faults.watchdog import Watchdog
from chaoskit.run.registry import RunRecord, RunRegistry
from chaoskit.stack.state import process_start_time


def wait_exit(watchdog: Watchdog, timeout: float = 10.0) -> bool:
    pid = watchdog.pid
    assert pid is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done:
            return True
        time.sleep(0.05)
    return False


def started(tmp_path: Path, record: RunRecord, ttl_s: float = 0.5) -> Watchdog:
    registry = RunRegistry(tmp_path / "state")
    registry.write(record)
    watchdog = Watchdog(
        record_path=registry.path(record.run_id),
        heartbeat_path=tmp_path / "run" / "heartbeat",
        ttl_s=ttl_s,
    )
    watchdog.start()
    return watchdog


def own_record(run_id: str = "20260101000000-abc123") -> RunRecord:
    pid = os.getpid()
    return RunRecord(run_id=run_id, pid=pid, pid_start=process_start_time(pid), target="t")


def test_beat_touches_the_heartbeat_at_most_twice_a_second(tmp_path: Path) -> None:
    heartbeat = tmp_path / "heartbeat"
    watchdog = Watchdog(record_path=tmp_path / "r.json", heartbeat_path=heartbeat, ttl_s=5)
    watchdog.beat()
    assert heartbeat.exists()
    os.utime(heartbeat, (1_000_000, 1_000_000))
    for _ in range(100):
        watchdog.beat()
    assert heartbeat.stat().st_mtime == 1_000_000
    time.sleep(0.55)
    watchdog.beat()
    assert time.time() - heartbeat.stat().st_mtime < 1.0


def test_ttl_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="ttl_s must be > 0"):
        Watchdog(record_path=tmp_path / "r.json", heartbeat_path=tmp_path / "h", ttl_s=0)


def test_it_exits_on_its_own_once_the_run_record_is_gone(tmp_path: Path) -> None:
    record = own_record()
    watchdog = started(tmp_path, record)
    try:
        time.sleep(0.3)
        RunRegistry(tmp_path / "state").forget(record.run_id)
        assert wait_exit(watchdog)
        log = (tmp_path / "run" / "watchdog.log").read_text()
        assert "run record gone: the run ended; exiting" in log
    finally:
        watchdog.stop()


def test_a_silent_driver_with_nothing_in_place_is_left_alone_and_stop_undoes_nothing(
    tmp_path: Path,
) -> None:
    record = own_record()
    record.restore = {}  # nothing to undo, even though the heartbeat goes stale (ttl 0.5 s)
    watchdog = started(tmp_path, record)
    pid = watchdog.pid
    time.sleep(1.2)
    assert pid is not None and os.waitpid(pid, os.WNOHANG) == (0, 0)  # still watching
    watchdog.stop()
    assert RunRegistry(tmp_path / "state").path(record.run_id).exists()
    log = (tmp_path / "run" / "watchdog.log").read_text()
    assert "told to stop; exiting without undoing anything" in log
    assert "undoing" not in log.replace("without undoing", "")


def test_a_dead_driver_with_nothing_in_place_is_forgotten(tmp_path: Path) -> None:
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    record = RunRecord(
        run_id="20260101000000-dead00", pid=int(dead.stdout), pid_start=1, target="t"
    )
    watchdog = started(tmp_path, record, ttl_s=30)
    try:
        assert wait_exit(watchdog)
        assert not RunRegistry(tmp_path / "state").path(record.run_id).exists()
        log = (tmp_path / "run" / "watchdog.log").read_text()
        assert "driver gone: undoing" in log and "undone; exiting" in log
    finally:
        watchdog.stop()
