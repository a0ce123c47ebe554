"""What users hit with the docker backend: one clear line, exit 4, and nothing left behind."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from chaoskit.cli import app
from chaoskit.errors import (
    DockerUnavailable,
    EnvironmentProblem,
    PortInUse,
    ServiceFailedToStart,
    StackAlreadyRunning,
)
from chaoskit.stack.docker import DockerStack
from chaoskit.stack.engine import LABEL_STACK, connect
from chaoskit.stack.target import DockerTarget, load_target

pytestmark = pytest.mark.docker


def _target(folder: Path, name: str, base_port: int, extra: str = "") -> DockerTarget:
    path = folder / f"{name}.yaml"
    path.write_text(
        f"version: 1\nkind: docker\nname: {name}\nbase_port: {base_port}\n{extra}",
        encoding="utf-8",
    )
    target = load_target(path)
    assert isinstance(target, DockerTarget)
    return target


def _leftovers(client: Any, name: str) -> list[str]:
    label = {"label": f"{LABEL_STACK}={name}"}
    found = [c.name for c in client.containers.list(all=True, filters=label)]
    found += [n.name for n in client.networks.list(filters=label)]
    found += [v.name for v in client.volumes.list(filters=label)]
    return found


def test_no_engine_is_one_line_with_exit_4(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    with pytest.raises(DockerUnavailable, match="no Docker engine answers"):
        connect()
    target = _target(tmp_path, "dnoengine", 20000)
    result = CliRunner().invoke(app, ["status", "-t", str(target.source)])
    assert result.exit_code == 4
    assert "no Docker engine answers" in result.output
    assert "Traceback" not in result.output


def test_missing_image_in_offline_mode_says_how_to_build_it(
    tmp_path: Path, docker_client: Any
) -> None:
    target = _target(
        tmp_path,
        "dnoimage",
        20000,
        "image:\n  name: chaoskit/not-built-here:none\n  build: false\n",
    )
    with pytest.raises(EnvironmentProblem, match=r"run `chaoskit images build --offline`"):
        DockerStack(target, state_dir=tmp_path / "state").up()
    assert _leftovers(docker_client, "dnoimage") == []


def test_a_port_already_in_use_is_named(
    tmp_path: Path, docker_images: Any, docker_client: Any
) -> None:
    target = _target(tmp_path, "dports", 20000)
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 20000 + 13))  # eligibility's port
        holder.listen()
        with pytest.raises(PortInUse, match="port 20013 .* service eligibility"):
            DockerStack(target, state_dir=tmp_path / "state").up()
    assert _leftovers(docker_client, "dports") == []


def test_a_container_that_exits_during_start_shows_its_last_lines(
    tmp_path: Path, docker_images: Any, docker_client: Any
) -> None:
    valid = _target(tmp_path, "dbadconf", 20000, "start_timeout_s: 60\n")
    # A target file with this value is refused before anything starts; a container that dies
    # during start (a bad image, a crash) is what is tested, so it is made to here.
    bad_settings = valid.settings.model_copy(update={"store": {"capacity_per_s": "lots"}})
    target = valid.model_copy(update={"settings": bad_settings})
    stack = DockerStack(target, state_dir=tmp_path / "state")
    with pytest.raises(ServiceFailedToStart) as caught:
        stack.up()
    message = str(caught.value)
    assert "exited during start" in message
    assert "capacity_per_s" in message  # orderstack's own line, from the container's log
    # Everything the failed `up` created is gone again.
    assert _leftovers(docker_client, "dbadconf") == []


def test_a_second_up_is_refused(tmp_path: Path, docker_images: Any, docker_client: Any) -> None:
    target = _target(tmp_path, "dtwice", 20000)
    stack = DockerStack(target, state_dir=tmp_path / "state")
    stack.up()
    try:
        with pytest.raises(StackAlreadyRunning, match="already running"):
            DockerStack(target, state_dir=tmp_path / "state").up()
    finally:
        stack.down()
    assert _leftovers(docker_client, "dtwice") == []


def test_permission_denied_on_the_socket_says_what_to_do() -> None:
    # As root the real socket never refuses us; the translation is what is checked here.
    from chaoskit.stack.engine import explain

    error = explain(PermissionError(13, "Permission denied"))
    assert isinstance(error, DockerUnavailable)
    assert "permission denied on the Docker socket" in str(error)
    assert "'docker' group" in str(error)
