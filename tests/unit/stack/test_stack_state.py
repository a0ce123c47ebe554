"""Stack state: pids are only trusted with their start time, and only ours are signalled."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from chaoskit.stack.state import (
    ProcessRecord,
    StackState,
    chaoskit_home,
    default_state_dir,
    process_start_time,
    read_state,
    remove_state,
    stop_processes,
    write_state,
)


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def _record(pid: int, start_time: int | None) -> ProcessRecord:
    return ProcessRecord(name="svc", pid=pid, start_time=start_time, port=1, log="x.log")


def test_start_time_of_a_live_process_and_a_gone_one(sleeper: subprocess.Popen[bytes]) -> None:
    assert process_start_time(os.getpid()) is not None
    assert process_start_time(sleeper.pid) is not None
    sleeper.kill()
    time.sleep(0.2)
    # Not yet reaped: a zombie is not alive.
    assert process_start_time(sleeper.pid) is None
    sleeper.wait()
    assert process_start_time(sleeper.pid) is None


def test_a_reused_pid_is_never_signalled(sleeper: subprocess.Popen[bytes]) -> None:
    real = process_start_time(sleeper.pid)
    assert real is not None
    impostor = _record(sleeper.pid, real - 1)  # same pid, another process's start time
    assert not impostor.is_alive()
    assert stop_processes([impostor], grace_s=0.5) == []
    assert sleeper.poll() is None  # untouched


def test_stop_processes_terminates_ours(sleeper: subprocess.Popen[bytes]) -> None:
    record = _record(sleeper.pid, process_start_time(sleeper.pid))
    assert record.is_alive()
    assert stop_processes([record], grace_s=2.0) == ["svc"]
    # stop_processes reaps its own children, so the exit status is gone: check the pid is.
    assert not record.is_alive()
    assert not Path(f"/proc/{sleeper.pid}").exists()
    assert stop_processes([record], grace_s=0.5) == []  # twice is fine


def test_stop_escalates_to_sigkill() -> None:
    stubborn = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            "print('ready', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
    )
    try:
        assert stubborn.stdout is not None and stubborn.stdout.readline() == b"ready\n"
        record = _record(stubborn.pid, process_start_time(stubborn.pid))
        started = time.monotonic()
        assert stop_processes([record], grace_s=0.3) == ["svc"]
        elapsed = time.monotonic() - started
        assert 0.3 <= elapsed < 3  # it outlived SIGTERM's grace, then SIGKILL took it
        assert not Path(f"/proc/{stubborn.pid}").exists()
    finally:
        if stubborn.poll() is None:
            stubborn.kill()
        stubborn.wait()
        assert stubborn.stdout is not None
        stubborn.stdout.close()


def test_state_round_trip_and_removal(tmp_path: Path) -> None:
    state = StackState(
        name="local",
        kind="local",
        base_port=18400,
        toxiproxy_url="http://127.0.0.1:18474",
        gateway_url="http://127.0.0.1:18410",
        services={"gateway": "http://127.0.0.1:18410"},
        proxies={"inventory": {"listen": "127.0.0.1:18421", "upstream": "127.0.0.1:18411"}},
        processes=[_record(123, 456)],
    )
    write_state(tmp_path, state)
    assert read_state(tmp_path) == state
    remove_state(tmp_path)
    assert read_state(tmp_path) is None
    remove_state(tmp_path)  # twice is fine


def test_a_torn_state_file_names_nothing(tmp_path: Path) -> None:
    (tmp_path / "state.json").write_text('{"name": "local", "pro')
    assert read_state(tmp_path) is None


def test_chaoskit_home_honours_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHAOSKIT_HOME", str(tmp_path))
    assert chaoskit_home() == tmp_path
    assert default_state_dir("local") == tmp_path / "stacks" / "local"
    monkeypatch.delenv("CHAOSKIT_HOME")
    monkeypatch.chdir(tmp_path)
    assert chaoskit_home() == tmp_path / ".chaoskit"
