"""After `chaoskit up --backend docker`, plain `status`, `logs` and `down` find that stack.

Before: plain `status` said no stack was running (exit 4), `down` said "No stack was
running; nothing to stop." while the containers ran, and `logs gateway` printed an old
local log file.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.docker

REPO = Path(__file__).resolve().parents[2]
BASE_PORT = 19300 + int(os.environ.get("CHAOSKIT_TEST_PORT_SHIFT", "0"))
NAME = "dfind"


def _chaoskit(
    env: dict[str, str], *args: str, timeout: float = 240
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "chaoskit", *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def docker_up(tmp_path: Path, docker_images: object) -> Iterator[tuple[dict[str, str], Path]]:
    target = tmp_path / f"{NAME}.yaml"
    target.write_text(
        f"version: 1\nkind: local\nname: {NAME}\nbase_port: {BASE_PORT}\nstart_timeout_s: 60\n"
    )
    env = dict(os.environ)
    env.update({"CHAOSKIT_HOME": str(tmp_path / "home"), "NO_COLOR": "1", "COLUMNS": "160"})
    # A stale local log of the same name: `logs` must not show it for the docker stack.
    local_log = tmp_path / "home" / "stacks" / NAME / "logs" / "gateway.log"
    local_log.parent.mkdir(parents=True)
    local_log.write_text("OLD LOCAL LOG LINE\n")
    started = _chaoskit(env, "up", "--target", str(target), "--backend", "docker")
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        yield env, target
    finally:
        _chaoskit(env, "down", "--target", str(target), "--backend", "docker")


def test_plain_status_logs_and_down_find_the_docker_stack(
    docker_up: tuple[dict[str, str], Path],
) -> None:
    env, target = docker_up
    status = _chaoskit(env, "status")
    assert status.returncode == 0, status.stdout + status.stderr
    assert f"stack {NAME} (docker): running" in status.stdout
    logs = _chaoskit(env, "logs", "gateway", "--tail", "20")
    assert logs.returncode == 0, logs.stderr
    assert "OLD LOCAL LOG LINE" not in logs.stdout
    assert logs.stdout.strip(), "the gateway container said nothing"
    down = _chaoskit(env, "down")
    assert down.returncode == 0, down.stderr
    assert "Stack stopped." in down.stdout
    after = _chaoskit(env, "status", "--target", str(target), "--backend", "docker")
    assert after.returncode == 4 and f"no docker stack '{NAME}' is running" in after.stderr, (
        after.stdout + after.stderr
    )
    left = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"name=chaoskit-{NAME}-"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert left.stdout.strip() == "", "containers outlived `chaoskit down`"
