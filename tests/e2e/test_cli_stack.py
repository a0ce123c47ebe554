"""`chaoskit up / status / down` as real subprocesses: exit codes, messages, no twins."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from chaoskit.stack.state import read_state

pytestmark = pytest.mark.e2e

BASE_PORT = 19600 + int(os.environ.get("CHAOSKIT_TEST_PORT_SHIFT", "0"))
REPO = Path(__file__).resolve().parents[2]


def _chaoskit_command() -> list[str]:
    script = REPO / ".venv" / "bin" / "chaoskit"
    return [str(script)] if script.exists() else [sys.executable, "-m", "chaoskit"]


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    environment = dict(os.environ)
    environment["CHAOSKIT_HOME"] = str(tmp_path / "home")
    environment["NO_COLOR"] = "1"
    environment["COLUMNS"] = "200"
    return environment


@pytest.fixture
def target_file(tmp_path: Path) -> Path:
    path = tmp_path / "e2e.yaml"
    path.write_text(f"version: 1\nkind: local\nname: e2e\nbase_port: {BASE_PORT}\n")
    return path


def run(env: dict[str, str], *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*_chaoskit_command(), *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def stack_guard(env: dict[str, str], target_file: Path) -> Iterator[None]:
    """Whatever a test leaves running is stopped."""
    yield
    run(env, "down", "--target", str(target_file))


@pytest.mark.usefixtures("stack_guard")
def test_up_status_down_twice_each(env: dict[str, str], target_file: Path) -> None:
    up = run(env, "up", "--target", str(target_file))
    assert up.returncode == 0, up.stderr
    assert f"http://127.0.0.1:{BASE_PORT + 10}" in up.stdout

    status = run(env, "status", "--target", str(target_file), "--json")
    assert status.returncode == 0, status.stderr
    report = json.loads(status.stdout)
    assert report["running"] and report["healthy"]
    assert [s["service"] for s in report["services"]][0] == "gateway"
    assert all(s["health"] == "ok" and s["pid"] for s in report["services"])
    assert report["toxiproxy"]["url"] == f"http://127.0.0.1:{BASE_PORT + 74}"

    table = run(env, "status", "--target", str(target_file))
    assert table.returncode == 0
    assert "inventory" in table.stdout and str(BASE_PORT + 11) in table.stdout

    again = run(env, "up", "--target", str(target_file))
    assert again.returncode == 4
    assert "already running" in again.stderr
    assert "Traceback" not in again.stderr

    state = read_state(Path(env["CHAOSKIT_HOME"]) / "stacks" / "e2e")
    assert state is not None and len(state.processes) == 9
    assert all(p.is_alive() for p in state.processes)

    down = run(env, "down", "--target", str(target_file))
    assert down.returncode == 0, down.stderr
    assert "stopped" in down.stdout.lower()
    # Exactly the processes it started are gone (pid and start time checked).
    assert not [p.name for p in state.processes if p.is_alive()]

    down_again = run(env, "down", "--target", str(target_file))
    assert down_again.returncode == 0
    assert "nothing to stop" in down_again.stdout

    after = run(env, "status", "--target", str(target_file))
    assert after.returncode == 4
    assert "no 'e2e' stack is running" in after.stderr


@pytest.mark.usefixtures("stack_guard")
def test_port_in_use_names_the_port_and_service(env: dict[str, str], target_file: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", BASE_PORT + 13))
        squatter.listen(1)
        up = run(env, "up", "--target", str(target_file))
    assert up.returncode == 4
    assert f"port {BASE_PORT + 13}" in up.stderr and "eligibility" in up.stderr
    assert len(up.stderr.strip().splitlines()) == 1  # one clear line, no traceback


def test_missing_toxiproxy_says_how_to_install(env: dict[str, str], target_file: Path) -> None:
    env["CHAOSKIT_TOXIPROXY"] = str(Path(env["CHAOSKIT_HOME"]) / "no-such-binary")
    up = run(env, "up", "--target", str(target_file))
    assert up.returncode == 4
    assert "toxiproxy-server not found" in up.stderr and "make setup" in up.stderr


def test_bad_target_file_is_exit_2_with_its_line(env: dict[str, str], tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nkind: local\nname: bad\nbase_port: nope\n")
    up = run(env, "up", "--target", str(bad))
    assert up.returncode == 2
    assert f"{bad}:4:1: base_port" in up.stderr.replace("\n", "")
