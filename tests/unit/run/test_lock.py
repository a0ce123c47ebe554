"""The run lock: one run per target, stale locks of dead runs taken over, down's stop request."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from chaoskit.run.lock import RunBusy, RunLock, end_run_for_down, held_by


def test_a_second_lock_on_the_same_target_is_refused_naming_the_first(tmp_path: Path) -> None:
    first = RunLock("local", state_dir=tmp_path)
    first.acquire("20260101000000-aaaaaa")
    try:
        holder = held_by("local", tmp_path)
        assert holder is not None and holder.run_id == "20260101000000-aaaaaa"
        assert holder.pid == os.getpid() and holder.alive()
        named = rf"in use by run 20260101000000-aaaaaa \(pid {os.getpid()}\)"
        with pytest.raises(RunBusy, match=named):
            RunLock("local", state_dir=tmp_path).acquire("20260101000001-bbbbbb")
    finally:
        first.release()
    assert held_by("local", tmp_path) is None
    again = RunLock("local", state_dir=tmp_path)
    again.acquire("20260101000002-cccccc")
    again.release()


def test_the_lock_of_a_dead_run_is_taken_over_and_named(tmp_path: Path) -> None:
    # What a SIGKILLed run leaves: the file with its holder, but no kernel lock.
    (tmp_path / "run.lock").write_text(
        json.dumps({"run_id": "dead-run", "pid": 999999, "pid_start": 1, "target": "local"})
    )
    assert held_by("local", tmp_path) is None
    lock = RunLock("local", state_dir=tmp_path)
    lock.acquire("next-run")
    try:
        assert lock.previous is not None and lock.previous.run_id == "dead-run"
        assert not lock.previous.alive()
    finally:
        lock.release()


def test_down_refuses_a_held_target_and_force_asks_the_run_to_end(tmp_path: Path) -> None:
    lock = RunLock("local", state_dir=tmp_path)
    lock.acquire("busy-run")
    try:
        with pytest.raises(RunBusy, match="busy-run .*--force"):
            end_run_for_down("local", force=False, say=print, state_dir=tmp_path)
        assert lock.stop_requested() is None
        said: list[str] = []
        # The run does not let go here, so down waits its (short) time and goes on.
        end_run_for_down("local", force=True, say=said.append, wait_s=0.3, state_dir=tmp_path)
        assert said and "busy-run" in said[0]
        assert lock.stop_requested() is not None and "down --force" in str(lock.stop_requested())
    finally:
        lock.release()
    assert lock.stop_requested() is None  # the request does not outlive the run
