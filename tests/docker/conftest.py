"""The docker stack for docker tests: the real engine, images built offline once per session.

``docker_images`` (session) builds (or reuses) the offline images and times it;
``docker_stack`` (module) brings a DockerStack up on base_port 19700 from a target file
written to a temporary folder, and takes it down at the end.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from chaoskit.stack.docker import DockerStack
from chaoskit.stack.engine import connect
from chaoskit.stack.images import ImageBuilder, ImageOutcome, image_names
from chaoskit.stack.target import DockerTarget, load_target

BASE_PORT = 19700 + int(os.environ.get("CHAOSKIT_TEST_PORT_SHIFT", "0"))
STACK_NAME = "dtest"
ORDER_TEXT = "help me buy a no-ice Boya Juexian within 15 min to the office"

# One attempt per call, no breaker, a short timeout: a fault on a dependency shows quickly
# as that step failing rather than as "gateway: circuit open" after retries.
TARGET_YAML = f"""\
version: 1
kind: docker
name: {STACK_NAME}
base_port: {BASE_PORT}
start_timeout_s: 60
settings:
  gateway:
    retries: none
    circuit_breaker: false
    timeout_s: 1.0
"""


@dataclass(frozen=True)
class BuiltImages:
    """What the session's first build did and how long it took."""

    outcomes: list[ImageOutcome]
    seconds: float


@pytest.fixture(scope="session")
def docker_client() -> Iterator[Any]:
    """A client of the real engine (the tests fail, not skip, when none answers)."""
    client = connect()
    try:
        yield client
    finally:
        client.close()


@pytest.fixture(scope="session")
def docker_images(docker_client: Any) -> BuiltImages:
    """The offline images, built once per session (a no-op while inputs are unchanged)."""
    started = time.monotonic()
    outcomes = ImageBuilder(client=docker_client).build(image_names(offline=True))
    return BuiltImages(outcomes=outcomes, seconds=time.monotonic() - started)


@pytest.fixture(scope="module")
def docker_target(tmp_path_factory: pytest.TempPathFactory) -> DockerTarget:
    """The test target, loaded from a real target file."""
    path = tmp_path_factory.mktemp("docker-target") / "dtest.yaml"
    path.write_text(TARGET_YAML, encoding="utf-8")
    target = load_target(path)
    assert isinstance(target, DockerTarget)
    return target


@pytest.fixture(scope="module")
def docker_stack(
    docker_images: BuiltImages,
    docker_target: DockerTarget,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[DockerStack]:
    """A running docker stack; taken down at the end of the module."""
    stack = DockerStack(docker_target, state_dir=tmp_path_factory.mktemp("dtest-state"))
    stack.down()  # leftovers of an interrupted earlier session
    stack.up()
    try:
        yield stack
    finally:
        stack.down()


@dataclass(frozen=True)
class OrderResult:
    status: int
    body: dict[str, Any]
    seconds: float


def _place_order(gateway_url: str, *, timeout_s: float = 10.0) -> OrderResult:
    """POST one order to the gateway (127.0.0.1) and time it."""
    key = uuid.uuid4().hex
    started = time.monotonic()
    response = httpx.post(
        f"{gateway_url}/orders",
        json={"intent_id": key, "order_id": key, "user_id": f"u-{key[:6]}", "text": ORDER_TEXT},
        timeout=timeout_s,
        trust_env=False,
    )
    return OrderResult(response.status_code, response.json(), time.monotonic() - started)


@pytest.fixture
def place_order() -> Any:
    """POST one order to a gateway URL and time it."""
    return _place_order


@pytest.fixture
def order_ok_within() -> Any:
    """Wait (bounded) until an order succeeds again; returns the successful result."""

    def wait(gateway_url: str, within_s: float = 15.0) -> OrderResult:
        deadline = time.monotonic() + within_s
        while True:
            result = _place_order(gateway_url)
            if result.status == 200 or time.monotonic() > deadline:
                return result
            time.sleep(0.2)

    return wait


def write_target(folder: Path, text: str) -> DockerTarget:
    """A docker target from YAML text written to ``folder``."""
    path = folder / "target.yaml"
    path.write_text(text, encoding="utf-8")
    target = load_target(path)
    assert isinstance(target, DockerTarget)
    return target
