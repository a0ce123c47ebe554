"""Container faults on the docker backend: pause, stop, kill, CPU limit; each one undoable.

``ContainerFaults().apply(kind, container, params)`` puts a fault in place and returns its
``Rollback``; ``undo()`` takes it away (unpause, start again, lift the limit) and is safe to
call twice. After a stop or a kill, ``undo()`` also waits (bounded) until the service
answers /healthz again and records whether and how fast it recovered.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from chaoskit.errors import ChaoskitError, FaultNotApplied
from chaoskit.stack.engine import (
    LABEL_HEALTH,
    LABEL_STACK,
    connect,
    engine_errors,
    hang_up,
    is_missing,
)

__all__ = [
    "CONTAINER_FAULTS",
    "ContainerFaults",
    "Rollback",
    "cleanup_containers",
    "undo_recorded",
]

CONTAINER_FAULTS = ("container_pause", "container_stop", "container_kill", "cpu_limit")
_CPU_PERIOD_US = 100_000
# Docker ignores a quota of 0 in an update ("unchanged"); -1 lifts the CFS limit.
_NO_QUOTA = -1


class Rollback:
    """Undoes one container fault; ``undo()`` is idempotent."""

    def __init__(
        self,
        *,
        kind: str,
        container: str,
        undo: Callable[[], bool | None],
        after: Callable[[], None] = lambda: None,
    ) -> None:
        self.kind = kind
        self.container = container
        self._undo = undo
        self._after = after
        self.undone = False
        # Stop and kill: did the service answer /healthz again after its restart, and when.
        self.recovered: bool | None = None
        self.recovery_s: float | None = None

    def undo(self) -> None:
        """Take the fault away; later calls do nothing."""
        if self.undone:
            return
        started = time.monotonic()
        try:
            recovered = self._undo()
        finally:
            self._after()
        self.undone = True
        if recovered is not None:
            self.recovered = recovered
            self.recovery_s = round(time.monotonic() - started, 3) if recovered else None

    def __repr__(self) -> str:
        return f"Rollback({self.kind} on {self.container}, undone={self.undone})"


class ContainerFaults:
    """Applies container faults through the Docker SDK; failures become FaultNotApplied."""

    def __init__(
        self,
        client_factory: Callable[[], Any] = connect,
        *,
        recover_within_s: float = 30.0,
        stop_grace_s: float = 2.0,
    ) -> None:
        self._client_factory = client_factory
        self._client: Any = None
        self.recover_within_s = recover_within_s
        self.stop_grace_s = stop_grace_s

    @property
    def client(self) -> Any:
        """The docker client, connected on first use."""
        if self._client is None:
            try:
                self._client = self._client_factory()
            except ChaoskitError as exc:
                raise FaultNotApplied(f"container faults need Docker: {exc}") from exc
        return self._client

    def apply(self, kind: str, container: str, params: Mapping[str, Any]) -> Rollback:
        """Put ``kind`` in place on ``container``; the returned Rollback takes it away."""
        if kind not in CONTAINER_FAULTS:
            raise FaultNotApplied(
                f"unknown container fault {kind!r}; expected one of {', '.join(CONTAINER_FAULTS)}"
            )
        try:
            return self._apply(kind, container, params)
        finally:
            hang_up(self._client)

    def _apply(self, kind: str, container: str, params: Mapping[str, Any]) -> Rollback:
        target = self._container(kind, container)
        try:
            if kind == "container_pause":
                target.pause()
                return self._rollback(
                    kind=kind, container=container, undo=lambda: self._unpause(target)
                )
            if kind == "container_stop":
                target.stop(timeout=int(params.get("grace_s", self.stop_grace_s)))
                return self._rollback(
                    kind=kind, container=container, undo=lambda: self._restart(target, params)
                )
            if kind == "container_kill":
                target.kill(signal=str(params.get("signal", "SIGKILL")))
                return self._rollback(
                    kind=kind, container=container, undo=lambda: self._restart(target, params)
                )
            return self._limit_cpu(target, container, params)
        except engine_errors() as exc:
            raise FaultNotApplied(f"{kind} on {container}: {_first_line(exc)}") from exc

    def restore(self, kind: str, container: str) -> None:
        """Undo a fault whose Rollback was lost (a crashed run): unpause, start, lift limits."""
        try:
            target = self._container(kind, container, missing_ok=True)
            if target is None:
                return
            if kind == "container_pause":
                self._unpause(target)
            elif kind in ("container_stop", "container_kill"):
                self._restart(target, {"recover_within_s": 0})
            elif kind == "cpu_limit":
                self._set_cpu(target, container, period=_CPU_PERIOD_US, quota=_NO_QUOTA)
        finally:
            hang_up(self._client)

    # -- the faults ------------------------------------------------------------------------

    def _rollback(self, *, kind: str, container: str, undo: Callable[[], bool | None]) -> Rollback:
        return Rollback(
            kind=kind, container=container, undo=undo, after=lambda: hang_up(self._client)
        )

    def _limit_cpu(self, target: Any, container: str, params: Mapping[str, Any]) -> Rollback:
        try:
            cpus = float(params["cpus"])
        except (KeyError, TypeError, ValueError) as exc:
            raise FaultNotApplied(f"cpu_limit on {container}: needs cpus > 0") from exc
        if cpus <= 0:
            raise FaultNotApplied(f"cpu_limit on {container}: needs cpus > 0, got {cpus:g}")
        host = target.attrs.get("HostConfig", {})
        old_period = int(host.get("CpuPeriod") or 0) or _CPU_PERIOD_US
        old_quota = int(host.get("CpuQuota") or 0) or _NO_QUOTA
        # The kernel refuses quotas under 1 ms.
        quota = max(1_000, round(cpus * _CPU_PERIOD_US))
        self._set_cpu(target, container, period=_CPU_PERIOD_US, quota=quota)
        return self._rollback(
            kind="cpu_limit",
            container=container,
            undo=lambda: self._set_cpu(target, container, period=old_period, quota=old_quota),
        )

    def _set_cpu(self, target: Any, container: str, *, period: int, quota: int) -> None:
        try:
            target.update(cpu_period=period, cpu_quota=quota)
        except engine_errors() as exc:
            if is_missing(exc):
                return  # the stack is gone, and its limits with it
            raise FaultNotApplied(f"cpu_limit on {container}: {_first_line(exc)}") from exc

    def _unpause(self, target: Any) -> None:
        try:
            target.reload()
            if target.status == "paused":
                target.unpause()
        except engine_errors() as exc:
            if is_missing(exc):
                return
            raise FaultNotApplied(f"unpause {target.name}: {_first_line(exc)}") from exc

    def _restart(self, target: Any, params: Mapping[str, Any]) -> bool | None:
        """Start the container again; True when it answers /healthz within the bound."""
        try:
            target.reload()
            if target.status == "paused":
                target.unpause()
            elif target.status != "running":
                target.start()
        except engine_errors() as exc:
            if is_missing(exc):
                return None
            raise FaultNotApplied(f"start {target.name} again: {_first_line(exc)}") from exc
        within = float(params.get("recover_within_s", self.recover_within_s))
        health_url = (target.labels or {}).get(LABEL_HEALTH)
        if not health_url or within <= 0:
            return None
        return _wait_healthy(str(health_url), within)

    def _container(self, kind: str, name: str, *, missing_ok: bool = False) -> Any:
        try:
            return self.client.containers.get(name)
        except engine_errors() as exc:
            if is_missing(exc):
                if missing_ok:
                    return None
                raise FaultNotApplied(
                    f"{kind}: no container {name}; is the docker stack up?"
                ) from exc
            raise FaultNotApplied(f"{kind} on {name}: {_first_line(exc)}") from exc


def undo_recorded(entry: Mapping[str, Any], *, client_factory: Callable[[], Any] = connect) -> None:
    """Undo a container fault from a run record ({"kind", "container", ...}) whose run died."""
    ContainerFaults(client_factory).restore(str(entry["kind"]), str(entry["container"]))


def cleanup_containers(
    stack_name: str | None = None, *, client_factory: Callable[[], Any] = connect
) -> list[str]:
    """Undo container faults left on chaoskit stacks (all, or ``stack_name``'s); says what."""
    client = client_factory()
    try:
        return _restore_all(client, stack_name)
    finally:
        hang_up(client)


def _restore_all(client: Any, stack_name: str | None) -> list[str]:
    label = LABEL_STACK if stack_name is None else f"{LABEL_STACK}={stack_name}"
    done: list[str] = []
    try:
        containers = client.containers.list(all=True, filters={"label": label})
    except engine_errors() as exc:
        raise FaultNotApplied(f"cleanup: cannot list containers: {_first_line(exc)}") from exc
    for container in containers:
        with contextlib.suppress(*engine_errors()):
            if container.status == "paused":
                container.unpause()
                done.append(f"unpaused {container.name}")
            elif container.status in ("exited", "created"):
                container.start()
                done.append(f"started {container.name}")
            quota = int(container.attrs.get("HostConfig", {}).get("CpuQuota") or 0)
            # chaoskit never creates containers with a CPU quota: any is a fault's leftover.
            if quota > 0:
                container.update(cpu_period=_CPU_PERIOD_US, cpu_quota=_NO_QUOTA)
                done.append(f"lifted the CPU limit of {container.name}")
    return done


def _wait_healthy(url: str, within_s: float) -> bool:
    """Poll ``url`` (a published 127.0.0.1 port) until it answers 200 or time runs out."""
    deadline = time.monotonic() + within_s
    with httpx.Client(timeout=httpx.Timeout(1.0), trust_env=False) as http:
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if http.get(url).status_code == 200:
                    return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.1)


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
