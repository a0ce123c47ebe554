"""The local backend: toxiproxy-server and the stub services as processes on 127.0.0.1.

Each process runs in its own session (so a Ctrl-C in the terminal that ran `chaoskit up`
does not reach it) with its output in ``<state_dir>/logs/<name>.log``. Its pid and start
time go to ``state.json`` the moment it exists, so `down` can stop exactly what `up`
started, even after `up` itself was interrupted.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import httpx

from chaoskit.errors import (
    ChaoskitError,
    PortInUse,
    ServiceFailedToStart,
    StackAlreadyRunning,
    StackNotRunning,
    ToxiproxyMissing,
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
from chaoskit.stack.state import (
    ProcessRecord,
    StackState,
    default_state_dir,
    process_start_time,
    read_state,
    remove_state,
    stop_processes,
    write_state,
)
from chaoskit.stack.target import LocalTarget, PortLayout

__all__ = ["HOST", "LocalStack", "check_ports", "find_toxiproxy", "write_stack_config"]

HOST = "127.0.0.1"
TOXIPROXY_ENV = "CHAOSKIT_TOXIPROXY"
_PROJECT_ROOT = Path(__file__).resolve().parent.parent.parent
_LOG_TAIL_LINES = 15


def find_toxiproxy(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The toxiproxy-server binary: given, ``$CHAOSKIT_TOXIPROXY``, PATH, ``.chaoskit/bin``."""
    configured = explicit if explicit is not None else os.environ.get(TOXIPROXY_ENV)
    if configured:
        path = Path(configured)
        if path.is_file() and os.access(path, os.X_OK):
            return path.resolve()
        raise ToxiproxyMissing(
            f"toxiproxy-server not found at {path} (from ${TOXIPROXY_ENV}): "
            "point it at an executable toxiproxy-server, or unset it and run `make setup`"
        )
    on_path = shutil.which("toxiproxy-server")
    if on_path:
        return Path(on_path).resolve()
    for folder in (Path.cwd(), _PROJECT_ROOT):
        candidate = folder / ".chaoskit" / "bin" / "toxiproxy-server"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate.resolve()
    raise ToxiproxyMissing(
        "toxiproxy-server not found (looked at $CHAOSKIT_TOXIPROXY, PATH and "
        ".chaoskit/bin/toxiproxy-server): run `make setup`, or "
        "`go install github.com/Shopify/toxiproxy/v2/cmd/server@v2.12.0` and copy the "
        "resulting `server` binary to .chaoskit/bin/toxiproxy-server"
    )


def check_ports(layout: PortLayout, *, host: str = HOST, hint: str = "") -> None:
    """Raise ``PortInUse`` naming the first port of ``layout`` that something else holds."""
    for port, owner in layout.all_ports().items():
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            # Same option the servers use, so a port in TIME_WAIT does not count as taken.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, port))
            except OSError:
                raise PortInUse(
                    f"port {port} on {host} is in use; the stack needs it for {owner}{hint}"
                ) from None


def write_stack_config(
    path: Path,
    *,
    name: str,
    host: str,
    ports: Mapping[str, int],
    upstreams: Mapping[str, str],
    data_dir: Path,
    seed: int,
    settings: Mapping[str, Mapping[str, object]],
) -> None:
    """Write the orderstack config (stack.json) every service reads at start."""
    config = {
        "name": name,
        "host": host,
        "ports": dict(ports),
        "upstreams": dict(upstreams),
        "data_dir": str(data_dir.resolve()),
        "seed": seed,
        "settings": {service: dict(values) for service, values in settings.items()},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")


def _log_tail(path: Path, lines: int = _LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no log)"
    tail = text.rstrip().splitlines()[-lines:]
    return "\n".join(f"  | {line}" for line in tail) if tail else "  | (log is empty)"


class LocalStack:
    """The stub stack and its Toxiproxy as local processes (the default backend)."""

    kind = "local"

    def __init__(
        self,
        target: LocalTarget,
        *,
        state_dir: Path | None = None,
        toxiproxy_binary: str | os.PathLike[str] | None = None,
        python: str | None = None,
        stop_grace_s: float = 5.0,
    ) -> None:
        self.target = target
        self.layout = target.ports
        self.state_dir = (state_dir or default_state_dir(target.name)).absolute()
        self._toxiproxy_binary = toxiproxy_binary
        self._python = python or sys.executable
        self._stop_grace_s = stop_grace_s

    @property
    def toxiproxy_url(self) -> str:
        """The Toxiproxy API this stack starts."""
        return f"http://{HOST}:{self.layout.toxiproxy_api}"

    @property
    def config_path(self) -> Path:
        """The stack.json the services are started with."""
        return self.state_dir / "stack.json"

    # -- lifecycle ---------------------------------------------------------------------------

    def up(self, *, progress: ProgressCallback | None = None) -> StackEndpoints:
        """Start Toxiproxy, its proxies and every service; wait until all answer."""
        report = progress or no_progress
        existing = read_state(self.state_dir)
        if existing is not None and existing.kind != self.kind:
            raise StackAlreadyRunning(
                f"a {existing.kind} stack is recorded in {self.state_dir}; "
                f"run `chaoskit down --backend {existing.kind}` first"
            )
        if existing is not None:
            alive = [p.name for p in existing.processes if p.is_alive()]
            if alive:
                raise StackAlreadyRunning(
                    f"stack {self.target.name!r} is already running (gateway at "
                    f"{existing.gateway_url}, state in {self.state_dir}); "
                    f"run `{self._down_command()}` first"
                )
            # Left over from a crash or a reboot: nothing of it runs any more.
            remove_state(self.state_dir)
        binary = find_toxiproxy(self._toxiproxy_binary)
        where = f" (base_port {self.layout.base_port}"
        where += f" in {self.target.source})" if self.target.source else ")"
        check_ports(self.layout, hint=where)

        logs_dir = self.state_dir / "logs"
        data_dir = self.state_dir / "data"
        # A fresh ledger per stack: an audit must never see a previous stack's orders.
        shutil.rmtree(data_dir, ignore_errors=True)
        logs_dir.mkdir(parents=True, exist_ok=True)
        data_dir.mkdir(parents=True, exist_ok=True)
        proxies = {
            dep: {
                "listen": f"{HOST}:{self.layout.proxies[dep]}",
                "upstream": f"{HOST}:{self.layout.services[dep]}",
            }
            for dep in DEPENDENCIES
        }
        write_stack_config(
            self.config_path,
            name=self.target.name,
            host=HOST,
            ports=self.layout.services,
            upstreams={dep: f"http://{p['listen']}" for dep, p in proxies.items()},
            data_dir=data_dir,
            seed=self.target.seed,
            settings=self.target.settings.by_service(),
        )
        state = StackState(
            name=self.target.name,
            kind=self.kind,
            base_port=self.layout.base_port,
            toxiproxy_url=self.toxiproxy_url,
            gateway_url=f"http://{HOST}:{self.layout.services['gateway']}",
            services={s: f"http://{HOST}:{p}" for s, p in self.layout.services.items()},
            proxies=proxies,
        )
        deadline = time.monotonic() + self.target.start_timeout_s
        try:
            report(StartupUpdate("toxiproxy", "starting"))
            argv = [str(binary), "-host", HOST, "-port", str(self.layout.toxiproxy_api)]
            argv += ["-seed", str(self.target.seed)]
            toxiproxy = self._spawn("toxiproxy", argv, self.layout.toxiproxy_api, logs_dir)
            state.processes.append(toxiproxy)
            write_state(self.state_dir, state)
            self._wait_toxiproxy(toxiproxy, deadline)
            with ToxiproxyClient(self.toxiproxy_url) as client:
                client.populate(
                    ProxySpec(name=d, listen=p["listen"], upstream=p["upstream"])
                    for d, p in proxies.items()
                )
            report(StartupUpdate("toxiproxy", "ready", f"{len(proxies)} proxies"))

            for service in SERVICES:
                argv = [self._python, "-m", "orderstack", service, "--config"]
                argv.append(str(self.config_path))
                record = self._spawn(service, argv, self.layout.services[service], logs_dir)
                state.processes.append(record)
                write_state(self.state_dir, state)
                report(StartupUpdate(service, "starting"))
            self._wait_services(state, deadline, report)
        except BaseException:
            # Ctrl-C or a failure half way: leave nothing running behind us.
            stop_processes(state.processes, grace_s=self._stop_grace_s)
            remove_state(self.state_dir)
            raise
        return self._endpoints(state)

    def down(self) -> bool:
        """Remove its proxies and stop exactly the processes it started; safe to repeat."""
        state = read_state(self.state_dir)
        if state is None:
            return False
        if state.kind != self.kind:
            raise StackNotRunning(
                f"the stack in {self.state_dir} is a {state.kind} stack; "
                f"use `chaoskit down --backend {state.kind}`"
            )
        toxiproxy = state.process("toxiproxy")
        if toxiproxy is not None and toxiproxy.is_alive():
            with ToxiproxyClient(state.toxiproxy_url, read_timeout_s=2.0) as client:
                for name in state.proxies:
                    # Best effort: the server is stopped next anyway.
                    with contextlib.suppress(ChaoskitError):
                        client.delete(name)
        # Gateway first, so nothing new enters the chain while it is taken apart.
        services = [p for p in state.processes if p.name != "toxiproxy"]
        stop_processes(services, grace_s=self._stop_grace_s)
        if toxiproxy is not None:
            stop_processes([toxiproxy], grace_s=self._stop_grace_s)
        remove_state(self.state_dir)
        return True

    def is_up(self) -> bool:
        """True when every process this stack started is alive."""
        state = read_state(self.state_dir)
        return (
            state is not None
            and bool(state.processes)
            and all(p.is_alive() for p in state.processes)
        )

    def endpoints(self) -> StackEndpoints:
        """Where the running stack is reached."""
        state = self._running_state()
        dead = [p.name for p in state.processes if not p.is_alive()]
        if dead:
            raise StackNotRunning(
                f"stack {state.name!r} is only partly running ({', '.join(dead)} stopped); "
                "run `chaoskit down` and `chaoskit up` again"
            )
        return self._endpoints(state)

    def status(self) -> StackStatus:
        """Health of Toxiproxy and every service, with each proxy's active toxics."""
        state = self._running_state()
        problems: list[str] = []
        toxiproxy = state.process("toxiproxy")
        toxiproxy_alive = toxiproxy is not None and toxiproxy.is_alive()
        toxiproxy_health: Health = "down"
        proxies: dict[str, Proxy] = {}
        if toxiproxy_alive:
            toxiproxy_health, proxies = probe_toxiproxy(state.toxiproxy_url, problems)
        else:
            problems.append("toxiproxy-server is not running")
        rows: list[ServiceStatus] = []
        with httpx.Client(timeout=httpx.Timeout(1.0), trust_env=False) as http:
            for service in SERVICES:
                record = state.process(service)
                alive = record is not None and record.is_alive()
                health = http_health(http, state.services[service], service) if alive else "down"
                if not alive:
                    problems.append(f"{service} is not running")
                proxy = proxies.get(service)
                rows.append(
                    ServiceStatus(
                        service=service,
                        port=self.layout.services[service],
                        url=state.services[service],
                        health=health,
                        pid=record.pid if record is not None else None,
                        proxy=service if service in state.proxies else None,
                        proxy_enabled=None if proxy is None else proxy.enabled,
                        active_toxics=() if proxy is None else tuple(t.name for t in proxy.toxics),
                    )
                )
        return StackStatus(
            name=state.name,
            kind=self.kind,
            running=all(p.is_alive() for p in state.processes),
            toxiproxy_url=state.toxiproxy_url,
            toxiproxy_health=toxiproxy_health,
            toxiproxy_pid=toxiproxy.pid if toxiproxy is not None else None,
            services=tuple(rows),
            state_dir=str(self.state_dir),
            problems=tuple(problems),
        )

    # -- internals ---------------------------------------------------------------------------

    def _down_command(self) -> str:
        source = self.target.source
        if source is None or source.stem == self.target.name == self.kind:
            return "chaoskit down"
        return f"chaoskit down --target {source}"

    def _running_state(self) -> StackState:
        state = read_state(self.state_dir)
        if state is not None and state.kind != self.kind:
            raise StackNotRunning(
                f"the stack in {self.state_dir} is a {state.kind} stack; use --backend {state.kind}"
            )
        if state is None:
            raise StackNotRunning(
                f"no {self.target.name!r} stack is running (no state in {self.state_dir}); "
                "start one with `chaoskit up`"
            )
        return state

    def _endpoints(self, state: StackState) -> StackEndpoints:
        return StackEndpoints(
            name=state.name,
            kind=self.kind,
            gateway_url=state.gateway_url,
            toxiproxy_urls=(state.toxiproxy_url,),
            proxies={dep: ProxyRef(state.toxiproxy_url, dep) for dep in state.proxies},
            services=dict(state.services),
        )

    def _spawn(self, name: str, argv: Sequence[str], port: int, logs_dir: Path) -> ProcessRecord:
        """Start one process in its own session, output to its log file."""
        log = logs_dir / f"{name}.log"
        env = dict(os.environ)
        env["PYTHONUNBUFFERED"] = "1"
        # toxiproxy-server logs every API request at its default (debug) level.
        env.setdefault("LOG_LEVEL", "info")
        orderstack_src = _PROJECT_ROOT / "targets" / "orderstack"
        if orderstack_src.is_dir():
            # Works from a checkout even when orderstack is not installed in the venv.
            env["PYTHONPATH"] = os.pathsep.join(
                p for p in (str(orderstack_src), env.get("PYTHONPATH", "")) if p
            )
        file_actions = [
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_OPEN, 1, str(log), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644),
            (os.POSIX_SPAWN_DUP2, 1, 2),
        ]
        # posix_spawn rather than subprocess.Popen: the processes outlive this one (`up`
        # returns), and a Popen object would warn about them at exit.
        try:
            pid = os.posix_spawn(argv[0], list(argv), env, file_actions=file_actions, setsid=True)
        except OSError as exc:
            raise ServiceFailedToStart(f"{name} could not be started ({argv[0]}): {exc}") from exc
        start_time = process_start_time(pid)
        if start_time is None:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
            raise ServiceFailedToStart(
                f"{name} exited at once; last lines of {log}:\n{_log_tail(log)}"
            )
        return ProcessRecord(
            name=name, pid=pid, start_time=start_time, port=port, log=str(log), pgid=pid
        )

    def _wait_toxiproxy(self, record: ProcessRecord, deadline: float) -> None:
        with ToxiproxyClient(self.toxiproxy_url, connect_timeout_s=0.5) as client:
            while True:
                if not record.is_alive():
                    raise ServiceFailedToStart(
                        f"toxiproxy-server exited during start; last lines of {record.log}:\n"
                        f"{_log_tail(Path(record.log))}"
                    )
                try:
                    client.version()
                    return
                except ChaoskitError:
                    if time.monotonic() > deadline:
                        raise ServiceFailedToStart(
                            f"toxiproxy-server did not answer on {self.toxiproxy_url} in "
                            f"{self.target.start_timeout_s:g} s; last lines of {record.log}:\n"
                            f"{_log_tail(Path(record.log))}"
                        ) from None
                    time.sleep(0.05)

    def _wait_services(self, state: StackState, deadline: float, report: ProgressCallback) -> None:
        pending = [p for p in state.processes if p.name in SERVICES]
        with httpx.Client(timeout=httpx.Timeout(1.0), trust_env=False) as http:
            while pending:
                for record in list(pending):
                    if not record.is_alive():
                        report(StartupUpdate(record.name, "failed", "exited"))
                        raise ServiceFailedToStart(
                            f"service {record.name} exited during start; last lines of "
                            f"{record.log}:\n{_log_tail(Path(record.log))}"
                        )
                    if http_health(http, state.services[record.name], record.name) == "ok":
                        pending.remove(record)
                        report(StartupUpdate(record.name, "ready", state.services[record.name]))
                if pending and time.monotonic() > deadline:
                    record = pending[0]
                    report(StartupUpdate(record.name, "failed", "no answer"))
                    raise ServiceFailedToStart(
                        f"service {record.name} did not answer /healthz on "
                        f"{state.services[record.name]} in {self.target.start_timeout_s:g} s; "
                        f"last lines of {record.log}:\n{_log_tail(Path(record.log))}"
                    )
                if pending:
                    time.sleep(0.1)
