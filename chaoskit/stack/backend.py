"""The backend-neutral face of a stack (local processes, containers, attach): what every
backend offers, and the probes they share. The factory is ``chaoskit.stack.factory``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

import httpx

from chaoskit.errors import ChaoskitError
from chaoskit.faults.toxiproxy import Proxy, ToxiproxyClient
from chaoskit.stack.endpoints import StackEndpoints

__all__ = [
    "ProgressCallback",
    "ServiceStatus",
    "StackBackend",
    "StackStatus",
    "StartupUpdate",
]

Health = Literal["ok", "unhealthy", "down"]


@dataclass(frozen=True, slots=True)
class StartupUpdate:
    """One step of bringing a stack up, for a progress display."""

    component: str  # "toxiproxy", "proxies" or a service name
    state: Literal["starting", "ready", "failed"]
    detail: str = ""


ProgressCallback = Callable[[StartupUpdate], None]


@dataclass(frozen=True, slots=True, kw_only=True)
class ServiceStatus:
    """One service of a running stack as `chaoskit status` shows it."""

    service: str
    port: int
    url: str
    health: Health
    pid: int | None  # None for a container or an attached service
    proxy: str | None  # the Toxiproxy proxy in front of it (None for the gateway)
    proxy_enabled: bool | None = None
    active_toxics: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """The row as `status --json` prints it."""
        return {
            "service": self.service,
            "port": self.port,
            "url": self.url,
            "health": self.health,
            "pid": self.pid,
            "proxy": self.proxy,
            "proxy_enabled": self.proxy_enabled,
            "active_toxics": list(self.active_toxics),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class StackStatus:
    """A stack's state: is it up, and how is each part doing."""

    name: str
    kind: str
    running: bool  # every process/container chaoskit started is alive
    toxiproxy_url: str
    toxiproxy_health: Health
    toxiproxy_pid: int | None
    services: tuple[ServiceStatus, ...] = ()
    state_dir: str | None = None
    problems: tuple[str, ...] = field(default_factory=tuple)

    @property
    def healthy(self) -> bool:
        """Running, Toxiproxy answering, every service answering /healthz."""
        return (
            self.running
            and self.toxiproxy_health == "ok"
            and all(s.health == "ok" for s in self.services)
        )

    def to_json(self) -> dict[str, Any]:
        """The status as `status --json` prints it."""
        return {
            "name": self.name,
            "kind": self.kind,
            "running": self.running,
            "healthy": self.healthy,
            "toxiproxy": {
                "url": self.toxiproxy_url,
                "health": self.toxiproxy_health,
                "pid": self.toxiproxy_pid,
            },
            "services": [s.to_json() for s in self.services],
            "state_dir": self.state_dir,
            "problems": list(self.problems),
        }


@runtime_checkable
class StackBackend(Protocol):
    """What every stack backend offers the CLI and the runner."""

    def up(self, *, progress: ProgressCallback | None = None) -> StackEndpoints:
        """Start the stack; ``StackAlreadyRunning`` if it is up."""
        ...

    def down(self) -> bool:
        """Stop what this backend started; False when there was nothing to stop."""
        ...

    def status(self) -> StackStatus:
        """Health of every part; ``StackNotRunning`` when there is no stack."""
        ...

    def endpoints(self) -> StackEndpoints:
        """Where the running stack is reached; ``StackNotRunning`` when it is not up."""
        ...

    def is_up(self) -> bool:
        """True when every part this backend started is alive."""
        ...


def http_health(http: httpx.Client, base_url: str, service: str) -> Health:
    """ "ok" when the service answers /healthz as itself, "unhealthy" for a wrong answer."""
    try:
        response = http.get(f"{base_url}/healthz")
    except httpx.HTTPError:
        return "down"
    if response.status_code != 200:
        return "unhealthy"
    try:
        body = response.json()
    except ValueError:
        return "unhealthy"
    if isinstance(body, dict) and body.get("service", service) == service:
        return "ok"
    return "unhealthy"


def probe_toxiproxy(url: str, problems: list[str]) -> tuple[Health, dict[str, Proxy]]:
    """Toxiproxy's health and proxies; a failure is added to ``problems``."""
    try:
        with ToxiproxyClient(url, read_timeout_s=2.0) as client:
            return "ok", client.proxies()
    except ChaoskitError as exc:
        problems.append(str(exc))
        return "unhealthy", {}


def no_progress(update: StartupUpdate) -> None:
    """Progress goes nowhere unless the caller asks for it."""
