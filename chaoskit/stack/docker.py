"""The docker backend: the stub services and Toxiproxy as containers on their own network.

One user-defined network per stack (``chaoskit-<name>``), one container per service plus a
Toxiproxy container, one data volume. Ports are published on 127.0.0.1 only, with the same
numbers as the local layout: the gateway, every service (so /stats, /admin and /ledger work
from the host) and the Toxiproxy API. The proxies live inside the Toxiproxy container and
reach each service by its container name. Everything created carries the labels
``chaoskit.stack=<name>`` and ``chaoskit.run=<id of this up>``; the engine is the source of
truth, so `down` removes exactly what carries this stack's label.
"""

from __future__ import annotations

import contextlib
import io
import json
import secrets
import socket
import tarfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from chaoskit.errors import (
    ChaoskitError,
    EnvironmentProblem,
    PortInUse,
    ServiceFailedToStart,
    StackAlreadyRunning,
    StackNotRunning,
)
from chaoskit.faults.toxiproxy import Proxy, ProxySpec, ToxiproxyClient
from chaoskit.stack.backend import (
    Health,
    ProgressCallback,
    ServiceStatus,
    StackStatus,
    StartupUpdate,
    http_health,
    no_progress,
    probe_toxiproxy,
)
from chaoskit.stack.endpoints import DEPENDENCIES, SERVICES, ProxyRef, StackEndpoints
from chaoskit.stack.engine import (
    LABEL_HEALTH,
    LABEL_RUN,
    LABEL_SERVICE,
    LABEL_STACK,
    connect,
    engine_errors,
    explain,
    hang_up,
    is_missing,
)
from chaoskit.stack.images import BASE_IMAGE_OFFLINE, ImageBuilder, ImageNames, image_names
from chaoskit.stack.state import (
    StackState,
    default_state_dir,
    remove_state,
    write_state,
)
from chaoskit.stack.target import DockerTarget

__all__ = [
    "CONFIG_PATH",
    "DockerServiceStatus",
    "DockerStack",
    "container_name",
    "images_for",
    "network_name",
    "remove_stacks",
    "stack_containers",
]

HOST = "127.0.0.1"
TOXIPROXY_PORT = 8474  # inside the Toxiproxy container
CONFIG_PATH = "/chaoskit-stack.json"  # stack.json inside every service container
DATA_DIR = "/data"  # the stack's volume, inside every service container
_LOG_TAIL_LINES = 15
_SECOND_NS = 1_000_000_000


def network_name(stack: str) -> str:
    """The stack's user-defined network."""
    return f"chaoskit-{stack}"


def container_name(stack: str, component: str) -> str:
    """The container of one service (or "toxiproxy") of a stack."""
    return f"chaoskit-{stack}-{component}"


def volume_name(stack: str) -> str:
    """The stack's data volume (coupon ledger, gateway outbox)."""
    return f"chaoskit-{stack}-data"


def images_for(target: DockerTarget) -> ImageNames:
    """The images a docker target runs: the project's own offline base unless it names one."""
    offline = target.image.base in (None, BASE_IMAGE_OFFLINE)
    return image_names(offline=offline, orderstack=target.image.name, base=target.image.base)


def stack_containers(client: Any, stack: str | None = None) -> list[Any]:
    """Every container (any state) labelled for ``stack`` (or for any chaoskit stack)."""
    label = LABEL_STACK if stack is None else f"{LABEL_STACK}={stack}"
    return list(client.containers.list(all=True, filters={"label": label}))


def remove_stacks(
    stack: str | None = None, *, client_factory: Callable[[], Any] = connect
) -> list[str]:
    """Remove the containers, networks and volumes of ``stack`` (or of every chaoskit stack)."""
    client = client_factory()
    try:
        return _remove_labelled(client, stack)
    except engine_errors() as exc:
        raise EnvironmentProblem(f"the Docker engine refused: {_first_line(exc)}") from exc
    finally:
        hang_up(client)


def _remove_labelled(client: Any, stack: str | None) -> list[str]:
    """Remove what carries the stack label; says what went."""
    removed: list[str] = []
    containers = stack_containers(client, stack)
    # Gateways first, so nothing new enters a chain while it is taken apart.
    containers.sort(key=lambda c: (c.labels.get(LABEL_SERVICE) != "gateway", c.name))
    for container in containers:
        if container.status == "paused":
            with contextlib.suppress(*engine_errors()):
                container.unpause()
        if _gone_or_done(container.remove, force=True, v=True):
            removed.append(f"container {container.name}")
    label = {"label": LABEL_STACK if stack is None else f"{LABEL_STACK}={stack}"}
    for network in client.networks.list(filters=label):
        if _gone_or_done(network.remove):
            removed.append(f"network {network.name}")
    for volume in client.volumes.list(filters=label):
        if _gone_or_done(volume.remove, force=True):
            removed.append(f"volume {volume.name}")
    return removed


def _gone_or_done(remove: Callable[..., Any], **options: Any) -> bool:
    """Run a removal; False when the thing was already gone (a second `down` races nobody)."""
    try:
        remove(**options)
    except engine_errors() as exc:
        if is_missing(exc):
            return False
        raise
    return True


@dataclass(frozen=True, slots=True, kw_only=True)
class DockerServiceStatus(ServiceStatus):
    """A service row with its container's view: name, state, Docker health, restarts."""

    container: str
    state: str  # Docker's: running, paused, exited, ...
    docker_health: str  # healthy, unhealthy, starting, or "-" without a health check
    restarts: int
    published: str  # "127.0.0.1:18510->18510/tcp"

    def to_json(self) -> dict[str, Any]:
        """The row as `status --json` prints it."""
        data = ServiceStatus.to_json(self)
        data.update(
            container=self.container,
            state=self.state,
            docker_health=self.docker_health,
            restarts=self.restarts,
            published=self.published,
        )
        return data


class DockerStack:
    """The stub stack as containers on the local Docker engine."""

    kind = "docker"

    def __init__(
        self,
        target: DockerTarget,
        *,
        state_dir: Path | None = None,
        client_factory: Callable[[], Any] = connect,
        build_console: Any = None,
    ) -> None:
        self.target = target
        self.layout = target.ports
        self.name = target.name
        # Its own sub-folder: `up --backend docker` keeps the local target's name, and the
        # local backend must never mistake this state for its own.
        self.state_dir = (state_dir or default_state_dir(target.name) / "docker").absolute()
        self._client_factory = client_factory
        self._client: Any = None
        self._build_console = build_console

    @property
    def client(self) -> Any:
        """The docker client, connected on first use (DockerUnavailable when none answers)."""
        if self._client is None:
            self._client = self._client_factory()
        return self._client

    @property
    def toxiproxy_url(self) -> str:
        """The Toxiproxy API, published on the host."""
        return f"http://{HOST}:{self.layout.toxiproxy_api}"

    def service_url(self, service: str) -> str:
        """A service's base URL on the host."""
        return f"http://{HOST}:{self.layout.services[service]}"

    # -- lifecycle ---------------------------------------------------------------------------

    def up(self, *, progress: ProgressCallback | None = None) -> StackEndpoints:
        """Create the network, Toxiproxy and every service container; wait until all answer."""
        report = progress or no_progress
        with self._engine():
            existing = stack_containers(self.client, self.name)
            running = [c.name for c in existing if c.status in ("running", "paused", "restarting")]
            if running:
                raise StackAlreadyRunning(
                    f"docker stack {self.name!r} is already running ({len(running)} containers, "
                    f"gateway at {self.service_url('gateway')}); run `chaoskit down` for this "
                    "target first"
                )
            # Leftovers of a crashed `up`: nothing of it runs any more.
            self._remove_all()
            names = self._ensure_images(report)
            self._check_ports()
            run_id = f"up-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"
            labels = {LABEL_STACK: self.name, LABEL_RUN: run_id}
            deadline = time.monotonic() + self.target.start_timeout_s
            try:
                self._create(names, labels, deadline, report)
            except BaseException:
                # Ctrl-C or a failure half way: leave nothing of this stack behind.
                with contextlib.suppress(Exception):
                    self._remove_all()
                raise
        endpoints = self._endpoints()
        write_state(self.state_dir, self._state(run_id))
        return endpoints

    def down(self) -> bool:
        """Remove exactly this stack's labelled containers, network and volume; safe to repeat."""
        with self._engine():
            removed = self._remove_all()
        remove_state(self.state_dir)
        return removed

    def is_up(self) -> bool:
        """True when Toxiproxy and every service container of this stack are running."""
        try:
            with self._engine():
                containers = {c.name: c for c in stack_containers(self.client, self.name)}
        except ChaoskitError:
            return False
        wanted = [container_name(self.name, c) for c in ("toxiproxy", *SERVICES)]
        return all(
            name in containers and containers[name].status in ("running", "paused")
            for name in wanted
        )

    def endpoints(self) -> StackEndpoints:
        """Where the running stack is reached (published ports on 127.0.0.1)."""
        with self._engine():
            containers = {c.name: c for c in stack_containers(self.client, self.name)}
        if not containers:
            raise StackNotRunning(
                f"no docker stack {self.name!r} is running; start one with "
                "`chaoskit up --backend docker`"
            )
        wanted = [container_name(self.name, c) for c in ("toxiproxy", *SERVICES)]
        dead = [n for n in wanted if n not in containers or containers[n].status != "running"]
        if dead:
            raise StackNotRunning(
                f"docker stack {self.name!r} is only partly running ({', '.join(dead)} not "
                "running); run `chaoskit down --backend docker` and `chaoskit up` again"
            )
        return self._endpoints()

    def status(self) -> StackStatus:
        """Containers, their state, health, published ports and restarts; proxies' toxics."""
        with self._engine():
            containers = {c.name: c for c in stack_containers(self.client, self.name)}
        if not containers:
            raise StackNotRunning(
                f"no docker stack {self.name!r} is running; start one with "
                "`chaoskit up --backend docker`"
            )
        problems: list[str] = []
        toxiproxy = containers.get(container_name(self.name, "toxiproxy"))
        toxiproxy_health: Health = "down"
        proxies: dict[str, Proxy] = {}
        if toxiproxy is not None and toxiproxy.status == "running":
            toxiproxy_health, proxies = probe_toxiproxy(self.toxiproxy_url, problems)
        else:
            problems.append("the toxiproxy container is not running")
        rows: list[ServiceStatus] = []
        running = toxiproxy is not None and toxiproxy.status == "running"
        with httpx.Client(timeout=httpx.Timeout(1.0), trust_env=False) as http:
            for service in SERVICES:
                name = container_name(self.name, service)
                container = containers.get(name)
                state = "missing" if container is None else str(container.status)
                if state != "running":
                    running = False
                    problems.append(f"container {name} is {state}")
                health = http_health(http, self.service_url(service), service)
                if state != "running":
                    health = "down"
                proxy = proxies.get(service)
                attrs = {} if container is None else container.attrs
                rows.append(
                    DockerServiceStatus(
                        service=service,
                        port=self.layout.services[service],
                        url=self.service_url(service),
                        health=health,
                        pid=None,
                        proxy=service if service in DEPENDENCIES else None,
                        proxy_enabled=None if proxy is None else proxy.enabled,
                        active_toxics=() if proxy is None else tuple(t.name for t in proxy.toxics),
                        container=name,
                        state=state,
                        docker_health=str(
                            attrs.get("State", {}).get("Health", {}).get("Status", "-")
                        ),
                        restarts=int(attrs.get("RestartCount", 0)),
                        published=_published(attrs),
                    )
                )
        return StackStatus(
            name=self.name,
            kind=self.kind,
            running=running,
            toxiproxy_url=self.toxiproxy_url,
            toxiproxy_health=toxiproxy_health,
            toxiproxy_pid=None,
            services=tuple(rows),
            state_dir=str(self.state_dir),
            problems=tuple(problems),
        )

    def logs(self, service: str, *, tail: int | None = 100, follow: bool = False) -> Iterator[str]:
        """A service's (or "toxiproxy"'s) container output, line by line; follows when asked."""
        name = container_name(self.name, service)
        with self._engine():
            try:
                container = self.client.containers.get(name)
            except engine_errors() as exc:
                if is_missing(exc):
                    raise StackNotRunning(
                        f"no container {name}: is the docker stack {self.name!r} up?"
                    ) from exc
                raise
            stream = container.logs(
                stream=True, follow=follow, tail="all" if tail is None else tail
            )
            pending = b""
            for chunk in stream:
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    yield line.decode(errors="replace")
            if pending:
                yield pending.decode(errors="replace")

    # -- building blocks ---------------------------------------------------------------------

    @contextlib.contextmanager
    def _engine(self) -> Iterator[None]:
        """SDK exceptions leave as chaoskit errors; connections close when the call ends."""
        import docker.errors

        try:
            yield
        except docker.errors.APIError as exc:
            raise EnvironmentProblem(f"the Docker engine refused: {_first_line(exc)}") from exc
        except engine_errors() as exc:
            raise explain(exc) from exc
        finally:
            hang_up(self._client)

    def _ensure_images(self, report: ProgressCallback) -> ImageNames:
        names = images_for(self.target)
        builder = ImageBuilder(client=self.client, console=self._build_console)
        if not self.target.image.build:
            missing = builder.missing(names)
            if missing:
                how = "images build --offline" if names.offline else "images build"
                raise EnvironmentProblem(
                    f"image {missing[0]} is missing{' (offline mode)' if names.offline else ''}:"
                    f" run `chaoskit {how}` first"
                )
            return names
        report(StartupUpdate("images", "starting", "checking"))
        try:
            outcomes = builder.build(names)
        except ChaoskitError:
            report(StartupUpdate("images", "failed"))
            raise
        built = [o.image for o in outcomes if o.action != "cached"]
        report(StartupUpdate("images", "ready", "built " + ", ".join(built) if built else "cached"))
        return names

    def _check_ports(self) -> None:
        """PortInUse for the first published port something else holds."""
        published = {self.layout.toxiproxy_api: "the toxiproxy API"}
        published.update({p: f"service {s}" for s, p in self.layout.services.items()})
        where = f" (base_port {self.layout.base_port}"
        where += f" in {self.target.source})" if self.target.source else ")"
        for port, owner in published.items():
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    probe.bind((HOST, port))
                except OSError:
                    raise PortInUse(
                        f"port {port} on {HOST} is in use; the docker stack publishes {owner} "
                        f"there{where}: stop what holds it or pick another base_port"
                    ) from None

    def _create(
        self,
        names: ImageNames,
        labels: dict[str, str],
        deadline: float,
        report: ProgressCallback,
    ) -> None:
        client = self.client
        network = network_name(self.name)
        client.networks.create(network, driver="bridge", labels=labels)
        client.volumes.create(volume_name(self.name), labels=labels)

        report(StartupUpdate("toxiproxy", "starting", names.toxiproxy))
        toxiproxy = self._run(
            names.toxiproxy,
            name=container_name(self.name, "toxiproxy"),
            command=["-host=0.0.0.0", f"-port={TOXIPROXY_PORT}", f"-seed={self.target.seed}"],
            ports={f"{TOXIPROXY_PORT}/tcp": (HOST, self.layout.toxiproxy_api)},
            labels={**labels, LABEL_SERVICE: "toxiproxy"},
        )
        self._wait_toxiproxy(toxiproxy, deadline)
        specs = [
            ProxySpec(
                name=dep,
                listen=f"0.0.0.0:{self.layout.proxies[dep]}",
                upstream=f"{container_name(self.name, dep)}:{self.layout.services[dep]}",
            )
            for dep in DEPENDENCIES
        ]
        with ToxiproxyClient(self.toxiproxy_url) as proxies:
            proxies.populate(specs)
        report(StartupUpdate("toxiproxy", "ready", f"{len(specs)} proxies"))

        config = self._config(names)
        started: dict[str, Any] = {}
        for service in SERVICES:
            port = self.layout.services[service]
            health_url = f"{self.service_url(service)}/healthz"
            started[service] = self._run(
                names.orderstack,
                name=container_name(self.name, service),
                entrypoint=["python", "-m", "orderstack"],
                command=[service, "--config", CONFIG_PATH],
                ports={f"{port}/tcp": (HOST, port)},
                labels={**labels, LABEL_SERVICE: service, LABEL_HEALTH: health_url},
                volumes={volume_name(self.name): {"bind": DATA_DIR, "mode": "rw"}},
                environment={"PYTHONUNBUFFERED": "1"},
                healthcheck=_healthcheck(port),
                files={CONFIG_PATH: config},
            )
            report(StartupUpdate(service, "starting", started[service].name))
        self._wait_services(started, deadline, report)

    def _config(self, names: ImageNames) -> bytes:
        """stack.json as the containers see it: bind 0.0.0.0, upstreams via Toxiproxy's name."""
        toxiproxy = container_name(self.name, "toxiproxy")
        config = {
            "name": self.name,
            "host": "0.0.0.0",
            "ports": dict(self.layout.services),
            "upstreams": {
                dep: f"http://{toxiproxy}:{self.layout.proxies[dep]}" for dep in DEPENDENCIES
            },
            "data_dir": DATA_DIR,
            "seed": self.target.seed,
            "settings": self.target.settings.by_service(),
        }
        return (json.dumps(config, indent=2) + "\n").encode()

    def _run(
        self,
        image: str,
        *,
        name: str,
        labels: dict[str, str],
        ports: dict[str, tuple[str, int]],
        files: dict[str, bytes] | None = None,
        **options: Any,
    ) -> Any:
        """Create, copy ``files`` in, start; port clashes become PortInUse."""
        container = self.client.containers.create(
            image,
            name=name,
            labels=labels,
            ports=ports,
            network=network_name(self.name),
            detach=True,
            **options,
        )
        for path, data in (files or {}).items():
            container.put_archive("/", _tar_one(path.lstrip("/"), data))
        try:
            container.start()
        except engine_errors() as exc:
            text = str(exc)
            if "port is already allocated" in text or "address already in use" in text:
                port = next(iter(ports.values()))[1]
                raise PortInUse(
                    f"port {port} on {HOST} is already published or in use; {name} cannot "
                    "publish it: stop what holds it or pick another base_port"
                ) from exc
            raise
        return container

    def _wait_toxiproxy(self, container: Any, deadline: float) -> None:
        with ToxiproxyClient(self.toxiproxy_url, connect_timeout_s=0.5) as client:
            while True:
                container.reload()
                if container.status not in ("created", "running"):
                    raise ServiceFailedToStart(
                        f"container {container.name} exited during start; last lines:\n"
                        f"{_container_tail(container)}"
                    )
                try:
                    client.version()
                    return
                except ChaoskitError:
                    if time.monotonic() > deadline:
                        raise ServiceFailedToStart(
                            f"toxiproxy did not answer on {self.toxiproxy_url} in "
                            f"{self.target.start_timeout_s:g} s; last lines of {container.name}:\n"
                            f"{_container_tail(container)}"
                        ) from None
                    time.sleep(0.1)

    def _wait_services(
        self, started: dict[str, Any], deadline: float, report: ProgressCallback
    ) -> None:
        pending = dict(started)
        with httpx.Client(timeout=httpx.Timeout(1.0), trust_env=False) as http:
            while pending:
                for service, container in list(pending.items()):
                    if http_health(http, self.service_url(service), service) == "ok":
                        del pending[service]
                        report(StartupUpdate(service, "ready", self.service_url(service)))
                        continue
                    container.reload()
                    if container.status not in ("created", "running"):
                        report(StartupUpdate(service, "failed", container.status))
                        raise ServiceFailedToStart(
                            f"container {container.name} exited during start; last lines:\n"
                            f"{_container_tail(container)}"
                        )
                if pending and time.monotonic() > deadline:
                    service, container = next(iter(pending.items()))
                    report(StartupUpdate(service, "failed", "no answer"))
                    raise ServiceFailedToStart(
                        f"service {service} did not answer /healthz on "
                        f"{self.service_url(service)} in {self.target.start_timeout_s:g} s; "
                        f"last lines of {container.name}:\n{_container_tail(container)}"
                    )
                if pending:
                    time.sleep(0.2)

    def _remove_all(self) -> bool:
        """Remove every container, network and volume labelled for this stack."""
        return bool(_remove_labelled(self.client, self.name))

    def _endpoints(self) -> StackEndpoints:
        return StackEndpoints(
            name=self.name,
            kind=self.kind,
            gateway_url=self.service_url("gateway"),
            toxiproxy_urls=(self.toxiproxy_url,),
            proxies={dep: ProxyRef(self.toxiproxy_url, dep) for dep in DEPENDENCIES},
            services={service: self.service_url(service) for service in SERVICES},
            containers={service: container_name(self.name, service) for service in SERVICES},
        )

    def _state(self, run_id: str) -> StackState:
        return StackState(
            name=self.name,
            kind=self.kind,
            base_port=self.layout.base_port,
            toxiproxy_url=self.toxiproxy_url,
            gateway_url=self.service_url("gateway"),
            services={service: self.service_url(service) for service in SERVICES},
            proxies={
                dep: {
                    "listen": f"0.0.0.0:{self.layout.proxies[dep]}",
                    "upstream": f"{container_name(self.name, dep)}:{self.layout.services[dep]}",
                }
                for dep in DEPENDENCIES
            },
            extra={
                "run": run_id,
                "network": network_name(self.name),
                "volume": volume_name(self.name),
                "containers": {c: container_name(self.name, c) for c in ("toxiproxy", *SERVICES)},
            },
        )


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _healthcheck(port: int) -> dict[str, Any]:
    """Docker's own health check: /healthz from inside the container, every 10 s."""
    probe = (
        "import urllib.request;"
        f"urllib.request.urlopen('http://127.0.0.1:{port}/healthz', timeout=2)"
    )
    # A slow interval: eight Python probes on a small machine must not cost a core.
    return {
        "test": ["CMD", "python", "-c", probe],
        "interval": 10 * _SECOND_NS,
        "timeout": 3 * _SECOND_NS,
        "retries": 3,
        "start_period": 5 * _SECOND_NS,
    }


def _tar_one(name: str, data: bytes) -> bytes:
    """A tar archive holding one file (put_archive's input)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        info.mode = 0o644
        info.mtime = int(time.time())
        archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _container_tail(container: Any, lines: int = _LOG_TAIL_LINES) -> str:
    try:
        raw = container.logs(tail=lines)
    except Exception:  # the tail is a courtesy on the error path; never mask the real error
        return "  | (no log)"
    text = raw.decode(errors="replace").rstrip()
    return "\n".join(f"  | {line}" for line in text.splitlines()) or "  | (log is empty)"


def _published(attrs: dict[str, Any]) -> str:
    ports = attrs.get("NetworkSettings", {}).get("Ports") or {}
    shown = []
    for inside, bindings in sorted(ports.items()):
        for binding in bindings or []:
            shown.append(f"{binding.get('HostIp')}:{binding.get('HostPort')}->{inside}")
    return ", ".join(shown) or "-"
