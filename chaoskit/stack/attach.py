"""The attach backend: a stack someone else runs (staging), reached through its target file.

chaoskit never starts, stops or reconfigures an attached stack. It only probes it here;
faults go through the Toxiproxy servers and /admin endpoints the target file lists, and
every host it talks to must be on the file's ``allowed_hosts``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from chaoskit.errors import ChaoskitError, InputError, SafetyRefusal, TargetUnreachable
from chaoskit.faults.toxiproxy import Proxy, ToxiproxyClient
from chaoskit.journey.models import JourneyConfig
from chaoskit.stack.backend import Health, ProgressCallback, ServiceStatus, StackStatus
from chaoskit.stack.endpoints import StackEndpoints
from chaoskit.stack.target import AttachTarget

__all__ = ["AttachEndpoints", "AttachStack", "check_allowed_hosts"]

_PROBE_TIMEOUT_S = 2.0
_NOT_OURS = "attach targets are run by someone else; chaoskit never starts or stops them"


@dataclass(frozen=True, kw_only=True)
class AttachEndpoints(StackEndpoints):
    """StackEndpoints plus how the attached gateway takes orders."""

    orders_path: str = "/orders"
    intent_format: str = "text"  # "text" | "fields"
    journey: JourneyConfig | None = None  # the target file's (a Python file made absolute)


def check_allowed_hosts(target: AttachTarget) -> None:
    """``SafetyRefusal`` naming the first URL whose host is not on the target's allow-list."""
    allowed = set(target.allowed_hosts)
    for role, url in target.hosts().items():
        host = (urlsplit(url).hostname or "").lower()
        if host not in allowed:
            where = f" ({target.source})" if target.source else ""
            raise SafetyRefusal(
                f"{role} host {host!r} is not in allowed_hosts of target {target.name!r}{where}"
            )


class AttachStack:
    """Probes an attached stack and hands out its endpoints; ``up``/``down`` refuse."""

    kind = "attach"

    def __init__(self, target: AttachTarget, *, state_dir: Path | None = None) -> None:
        # Refused before anything talks to the network: no call ever leaves the allow-list.
        check_allowed_hosts(target)
        self.target = target
        self.state_dir = state_dir  # nothing is kept per attached stack; accepted for the protocol

    def up(self, *, progress: ProgressCallback | None = None) -> StackEndpoints:
        """Refused: chaoskit does not start an attached stack."""
        raise InputError(_NOT_OURS)

    def down(self) -> bool:
        """Refused: chaoskit does not stop an attached stack."""
        raise InputError(_NOT_OURS)

    def is_up(self) -> bool:
        """True when the gateway answers at all; ``TargetUnreachable`` when it does not."""
        url = f"{self.target.gateway.url}/healthz"
        with _http() as http:
            try:
                http.get(url)
            except httpx.HTTPError as exc:
                raise TargetUnreachable(
                    f"gateway of target {self.target.name!r} at {self.target.gateway.url} "
                    f"does not answer: {exc or type(exc).__name__}"
                ) from exc
        return True

    def endpoints(self) -> AttachEndpoints:
        """Where the attached stack is reached; header values stay ``${VAR}`` templates."""
        target = self.target
        return AttachEndpoints(
            name=target.name,
            kind="attach",
            gateway_url=target.gateway.url,
            toxiproxy_urls=tuple(server.url for server in target.toxiproxy),
            proxies=target.proxy_refs(),
            services=dict(target.services),
            headers=target.request_headers(),
            allowed_hosts=tuple(target.allowed_hosts),
            orders_path=target.gateway.orders_path,
            intent_format=target.gateway.intent_format,
            journey=None
            if target.journey is None
            else target.journey.resolved(target.source.parent if target.source else Path.cwd()),
        )

    def status(self) -> StackStatus:
        """Probe the gateway, each listed service and each Toxiproxy server; changes nothing."""
        target = self.target
        problems: list[str] = []
        proxies: dict[str, Proxy] = {}
        toxiproxy_health: Health = "ok"
        for server in target.toxiproxy:
            try:
                with ToxiproxyClient(server.url, read_timeout_s=_PROBE_TIMEOUT_S) as client:
                    found = client.proxies()
            except ChaoskitError as exc:
                toxiproxy_health = "down"
                problems.append(str(exc))
                continue
            for dependency, name in server.proxies.items():
                if name in found:
                    proxies[dependency] = found[name]
                else:
                    problems.append(f"Toxiproxy at {server.url} has no proxy named {name!r}")
        refs = target.proxy_refs()
        rows: list[ServiceStatus] = []
        with _http() as http:
            urls = {"gateway": target.gateway.url, **target.services}
            for service, url in urls.items():
                health = _health(http, url)
                if health != "ok":
                    problems.append(f"{service} at {url} is {health}")
                proxy = proxies.get(service)
                rows.append(
                    ServiceStatus(
                        service=service,
                        port=urlsplit(url).port or 0,
                        url=url,
                        health=health,
                        pid=None,
                        proxy=refs[service].name if service in refs else None,
                        proxy_enabled=None if proxy is None else proxy.enabled,
                        active_toxics=() if proxy is None else tuple(t.name for t in proxy.toxics),
                    )
                )
        gateway_up = rows[0].health != "down"
        return StackStatus(
            name=target.name,
            kind=self.kind,
            running=gateway_up,
            toxiproxy_url=target.toxiproxy[0].url,
            toxiproxy_health=toxiproxy_health,
            toxiproxy_pid=None,
            services=tuple(rows),
            state_dir=None,
            problems=tuple(problems),
        )


def _http() -> httpx.Client:
    # trust_env=False: an environment proxy must never sit between chaoskit and the target.
    return httpx.Client(timeout=httpx.Timeout(_PROBE_TIMEOUT_S), trust_env=False)


def _health(http: httpx.Client, base_url: str) -> Health:
    try:
        response = http.get(f"{base_url}/healthz")
    except httpx.HTTPError:
        return "down"
    return "ok" if response.status_code == 200 else "unhealthy"
