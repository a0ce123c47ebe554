"""The live stack for integration tests: real toxiproxy-server and real services on 127.0.0.1.

``local_stack`` (session) brings up a LocalStack on base_port 19400 with its state in a
temporary folder and tears it down at the end. ``toxiproxy`` resets every toxic and
re-enables every proxy after each test; ``admin`` restores every /admin setting a test
changed; ``place_order`` posts one order to the gateway and times it.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from chaoskit.faults.toxiproxy import ToxiproxyClient
from chaoskit.stack.endpoints import StackEndpoints
from chaoskit.stack.local import LocalStack
from chaoskit.stack.target import LocalTarget, StackSettings

BASE_PORT = 19400 + int(os.environ.get("CHAOSKIT_TEST_PORT_SHIFT", "0"))
ORDER_TEXT = "help me buy a no-ice Boya Juexian within 15 min to the office"

# Deterministic failures for the tests: one attempt per call and no breaker, so a fault on
# a dependency shows as that step failing rather than as "gateway: circuit open".
STACK_SETTINGS = StackSettings(
    gateway={"retries": "none", "circuit_breaker": False, "timeout_s": 2.0},
)


@pytest.fixture(scope="session")
def local_stack_backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """The LocalStack object behind ``local_stack`` (for tests of the backend itself)."""
    target = LocalTarget(
        version=1, kind="local", name="itest", base_port=BASE_PORT, settings=STACK_SETTINGS
    )
    stack = LocalStack(target, state_dir=tmp_path_factory.mktemp("itest-stack"))
    stack.up()
    try:
        yield stack
    finally:
        stack.down()


@pytest.fixture(scope="session")
def local_stack(local_stack_backend: LocalStack) -> StackEndpoints:
    """Endpoints of the running integration stack."""
    return local_stack_backend.endpoints()


@pytest.fixture
def toxiproxy(local_stack: StackEndpoints) -> Iterator[ToxiproxyClient]:
    """A client for the stack's Toxiproxy; every toxic is removed after the test."""
    client = ToxiproxyClient(local_stack.toxiproxy_urls[0])
    try:
        yield client
    finally:
        client.reset()
        client.close()


class Admin:
    """Changes /admin settings and puts back what it changed."""

    def __init__(self, services: dict[str, str]) -> None:
        self._services = services
        self._http = httpx.Client(timeout=5.0, trust_env=False)
        self._saved: dict[str, dict[str, Any]] = {}

    def get(self, service: str) -> dict[str, Any]:
        response = self._http.get(f"{self._services[service]}/admin")
        response.raise_for_status()
        settings: dict[str, Any] = response.json()
        return settings

    def set(self, service: str, **patch: Any) -> dict[str, Any]:
        if service not in self._saved:
            self._saved[service] = self.get(service)
        response = self._http.post(f"{self._services[service]}/admin", json=patch)
        assert response.status_code == 200, response.text
        settings: dict[str, Any] = response.json()
        return settings

    def restore(self) -> None:
        for service, settings in self._saved.items():
            response = self._http.post(f"{self._services[service]}/admin", json=settings)
            assert response.status_code == 200, response.text
        self._saved.clear()
        self._http.close()


@pytest.fixture
def admin(local_stack: StackEndpoints) -> Iterator[Admin]:
    """Set services' /admin settings for one test; restored afterwards."""
    controller = Admin(local_stack.services)
    try:
        yield controller
    finally:
        controller.restore()


@dataclass(frozen=True)
class Order:
    """One order's answer as the client saw it."""

    status: int
    body: dict[str, Any]
    elapsed_ms: float
    order_id: str

    @property
    def ok(self) -> bool:
        return self.status == 200 and self.body.get("outcome") == "ok"

    @property
    def step(self) -> str | None:
        step = self.body.get("step")
        return None if step is None else str(step)


PlaceOrder = Callable[..., Order]


@pytest.fixture
def place_order(local_stack: StackEndpoints) -> Iterator[PlaceOrder]:
    """POST one order to the gateway (a new user and order id unless given) and time it."""
    http = httpx.Client(timeout=15.0, trust_env=False)

    def place(*, user_id: str | None = None, order_id: str | None = None) -> Order:
        order_id = order_id or f"it-{uuid.uuid4().hex[:12]}"
        body = {
            "intent_id": order_id,
            "order_id": order_id,
            "user_id": user_id or f"user-{uuid.uuid4().hex[:12]}",
            "text": ORDER_TEXT,
        }
        started = time.perf_counter()
        response = http.post(f"{local_stack.gateway_url}/orders", json=body)
        elapsed_ms = (time.perf_counter() - started) * 1000.0
        return Order(response.status_code, response.json(), elapsed_ms, order_id)

    try:
        yield place
    finally:
        http.close()
