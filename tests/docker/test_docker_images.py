"""Offline images: built from inputs on this machine, rebuilt only when those inputs change."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from chaoskit.stack.images import (
    BASE_IMAGE_OFFLINE,
    LABEL_INPUTS,
    ORDERSTACK_IMAGE,
    ImageBuilder,
    ImageNames,
    image_names,
    project_root,
)
from chaoskit.stack.state import chaoskit_home

pytestmark = pytest.mark.docker


def test_a_second_build_is_a_fast_no_op(docker_images: Any, docker_client: Any) -> None:
    images = image_names(offline=True)
    started = time.monotonic()
    outcomes = ImageBuilder(client=docker_client).build(images)
    took = time.monotonic() - started
    assert [o.action for o in outcomes] == ["cached", "cached", "cached"]
    assert took < 5.0, took
    for tag in (BASE_IMAGE_OFFLINE, images.orderstack, images.toxiproxy):
        assert docker_client.images.get(tag).labels[LABEL_INPUTS]


def test_the_offline_images_run_without_a_registry(docker_images: Any, docker_client: Any) -> None:
    images = image_names(offline=True)
    version = docker_client.containers.run(
        images.orderstack,
        # orderstack and its dependency (uvloop), installed from the host-downloaded wheels
        entrypoint=["python", "-c", "import sys, orderstack, uvloop; print(sys.version_info[:2])"],
        remove=True,
    )
    assert version.decode().strip() == "(3, 11)"
    toxiproxy = docker_client.containers.run(images.toxiproxy, ["-version"], remove=True)
    assert toxiproxy.startswith(b"toxiproxy-server version")


def test_a_changed_input_rebuilds_only_that_image(
    docker_images: Any, docker_client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A private CHAOSKIT_HOME whose toxiproxy-server differs by one appended byte: a new input.
    cache = chaoskit_home() / "images"
    home = tmp_path / "home"
    (home / "bin").mkdir(parents=True)
    real = project_root() / ".chaoskit" / "bin" / "toxiproxy-server"
    shutil.copy2(real.resolve(), home / "bin" / "toxiproxy-server")
    monkeypatch.setenv("CHAOSKIT_HOME", str(home))
    tag = "chaoskit/toxiproxy-cachetest:1"
    names = ImageNames(
        orderstack=ORDERSTACK_IMAGE, toxiproxy=tag, base=BASE_IMAGE_OFFLINE, offline=True
    )
    builder = ImageBuilder(client=docker_client, cache_dir=cache)
    try:
        first = [o.action for o in builder.build(names)]
        again = [o.action for o in builder.build(names)]
        with (home / "bin" / "toxiproxy-server").open("ab") as binary:
            binary.write(b"\0")
        changed = [o.action for o in builder.build(names)]
    finally:
        docker_client.images.remove(tag, force=True)
    assert first == ["cached", "cached", "built"]
    assert again == ["cached", "cached", "cached"]
    assert changed == ["cached", "cached", "built"]
