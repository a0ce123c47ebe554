"""Helpers for orderstack tests: real services on 127.0.0.1, ports from 21000-21999."""

from __future__ import annotations

import contextlib
import json
import random
import socket
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

import aiohttp

from orderstack.common import Service
from orderstack.config import DEPENDENCIES, SERVICES, StackConfig, parse_config
from orderstack.httpserver import HttpServer
from orderstack.server import start_service, stop_service
from orderstack.services import create_service

PORT_RANGE = (21000, 21999)


def free_ports(count: int) -> list[int]:
    """`count` consecutive-ish free ports from the test range, starting at a random offset."""
    ports: list[int] = []
    start = random.randint(PORT_RANGE[0], PORT_RANGE[1] - 200)
    for port in range(start, PORT_RANGE[1]):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        ports.append(port)
        if len(ports) == count:
            return ports
    raise RuntimeError("no free ports in the test range")


def make_config(
    data_dir: Path,
    *,
    settings: dict[str, dict[str, Any]] | None = None,
    upstreams: dict[str, str] | None = None,
    seed: int = 7,
) -> StackConfig:
    """A config for all services on fresh ports; the gateway calls services directly by default."""
    ports = dict(zip(SERVICES, free_ports(len(SERVICES)), strict=True))
    direct = {dep: f"http://127.0.0.1:{ports[dep]}" for dep in DEPENDENCIES}
    raw = {
        "name": "test",
        "host": "127.0.0.1",
        "ports": ports,
        "upstreams": {**direct, **(upstreams or {})},
        "data_dir": str(data_dir),
        "seed": seed,
        "settings": settings or {},
    }
    return parse_config(raw)


class Stack:
    """Running services of one config, started and stopped inside the test's event loop."""

    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.services: dict[str, Service] = {}
        self.servers: dict[str, HttpServer] = {}
        self.http = aiohttp.ClientSession()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.config.ports[name]}"

    async def start(self, name: str) -> Service:
        service = create_service(name, self.config)
        server = await start_service(service, "127.0.0.1", self.config.ports[name])
        self.services[name], self.servers[name] = service, server
        return service

    async def stop(self, name: str) -> None:
        await stop_service(self.services.pop(name), self.servers.pop(name))

    async def post(self, name: str, path: str, body: object) -> tuple[int, Any, Any]:
        """POST JSON; (status, parsed body, headers)."""
        async with self.http.post(self.url(name) + path, data=json.dumps(body)) as resp:
            return resp.status, json.loads(await resp.read()), resp.headers

    async def get(self, name: str, path: str) -> Any:
        async with self.http.get(self.url(name) + path) as resp:
            assert resp.status == 200, await resp.text()
            return json.loads(await resp.read())

    async def close(self) -> None:
        for name in list(self.servers):
            await self.stop(name)
        await self.http.close()


@contextlib.asynccontextmanager
async def running(config: StackConfig, names: Iterable[str] = SERVICES) -> AsyncIterator[Stack]:
    """Start `names` (all services by default); stop everything on exit."""
    stack = Stack(config)
    try:
        for name in names:
            await stack.start(name)
        yield stack
    finally:
        await stack.close()


def order(order_id: str, user_id: str = "u-1", **extra: Any) -> dict[str, Any]:
    """A gateway order body with the canonical free-text intent."""
    body: dict[str, Any] = {
        "order_id": order_id,
        "intent_id": f"i-{order_id}",
        "user_id": user_id,
        "text": "help me buy a no-ice Boya Juexian within 15 min to the office",
    }
    body.update(extra)
    return body
