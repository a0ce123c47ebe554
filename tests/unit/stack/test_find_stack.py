"""Commands on a stack that is up find it from its state file, whatever its backend."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from chaoskit.cli.stack import Backend, find_target
from chaoskit.errors import InputError
from chaoskit.stack.state import (
    ProcessRecord,
    StackState,
    process_start_time,
    recorded_stacks,
    write_state,
)
from chaoskit.stack.target import DockerTarget, LocalTarget


def _record(home: Path, name: str, kind: str, *, base_port: int, alive: bool = True) -> None:
    folder = home / "stacks" / name / ("docker" if kind == "docker" else "")
    pid = os.getpid() if alive else 2**22 + 17  # this process is certainly alive
    processes = [
        ProcessRecord(
            name="gateway",
            pid=pid,
            start_time=process_start_time(pid) if alive else 1,
            port=base_port + 10,
            log="gateway.log",
        )
    ]
    write_state(
        folder,
        StackState(
            name=name,
            kind=kind,
            base_port=base_port,
            toxiproxy_url=f"http://127.0.0.1:{base_port + 74}",
            gateway_url=f"http://127.0.0.1:{base_port + 10}",
            services={},
            proxies={},
            processes=processes if kind == "local" else [],
        ),
    )


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CHAOSKIT_HOME", str(tmp_path))
    return tmp_path


def test_the_one_docker_stack_up_is_found_without_flags(home: Path) -> None:
    _record(home, "docker", "docker", base_port=18500)
    found = find_target(None, None)
    assert isinstance(found, DockerTarget) and found.name == "docker"


def test_a_renamed_stack_keeps_its_name_and_ports(home: Path) -> None:
    _record(home, "staging-twin", "docker", base_port=40100)
    found = find_target(None, None)
    assert isinstance(found, DockerTarget)
    assert (found.name, found.base_port) == ("staging-twin", 40100)


def test_a_local_record_with_no_live_process_is_not_up(home: Path) -> None:
    _record(home, "local", "local", base_port=18400, alive=False)
    _record(home, "docker", "docker", base_port=18500)
    assert [s.kind for s in recorded_stacks()] == ["docker"]
    assert isinstance(find_target(None, None), DockerTarget)


def test_two_stacks_up_name_the_flags_for_each(home: Path) -> None:
    _record(home, "local", "local", base_port=18400)
    _record(home, "docker", "docker", base_port=18500)
    with pytest.raises(InputError) as caught:
        find_target(None, None)
    message = str(caught.value)
    assert "2 stacks are up" in message
    assert "--target local --backend local" in message
    assert "--target docker --backend docker" in message


def test_flags_win_and_nothing_recorded_means_the_default(home: Path) -> None:
    _record(home, "docker", "docker", base_port=18500)
    assert isinstance(find_target(None, Backend.local), LocalTarget)
    (home / "stacks" / "docker" / "docker" / "state.json").unlink()
    found = find_target(None, None)
    assert isinstance(found, LocalTarget) and found.name == "local"
