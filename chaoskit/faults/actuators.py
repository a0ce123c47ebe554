"""Putting one fault in place and taking it away again: network, domain and container faults.

An actuator is made per fault window. ``apply`` puts the fault in place (at a ramp level
from 0 to 1), ``update`` moves a ramp, ``remove`` undoes it and is safe to call twice.
Everything is written to the run's record *before* it touches the target.
"""

from __future__ import annotations

from typing import Any, Protocol, cast

from chaoskit.errors import ChaoskitError, FaultNotApplied
from chaoskit.experiment.models import (
    CONTAINER_FAULT_KINDS,
    DOMAIN_FAULT_KINDS,
    NETWORK_FAULT_KINDS,
)
from chaoskit.faults.domain import AdminClient, domain_change
from chaoskit.faults.toxiproxy import Stream, Toxic, ToxiproxyClient, toxic_name
from chaoskit.planning import FaultWindow
from chaoskit.run.registry import LiveRecord
from chaoskit.stack.endpoints import StackEndpoints

__all__ = [
    "Actuator",
    "ContainerActuator",
    "DomainActuator",
    "NetworkActuator",
    "make_actuator",
]


class Actuator(Protocol):
    """One fault's life on its target."""

    def apply(self, level: float) -> None: ...

    def update(self, level: float) -> None: ...

    def remove(self) -> None: ...


def _ms(seconds: Any) -> int:
    return round(float(seconds) * 1000.0)


def toxic_attributes(kind: str, params: dict[str, Any], level: float) -> dict[str, int]:
    """Toxiproxy attributes for a network fault at ramp ``level`` (0..1)."""
    if kind == "latency":
        return {
            "latency": round(_ms(params["latency"]) * level),
            "jitter": round(_ms(params.get("jitter", 0)) * level),
        }
    if kind == "bandwidth":
        return {"rate": int(params["rate_kbps"])}
    if kind == "timeout":
        return {"timeout": round(_ms(params["timeout"]) * level)}
    if kind == "reset_peer":
        return {"timeout": _ms(params.get("timeout", 0))}
    if kind == "slicer":
        return {
            "average_size": int(params["average_size"]),
            "size_variation": int(params.get("size_variation", 0)),
            "delay": round(float(params.get("delay", 0)) * 1_000_000),
        }
    if kind == "limit_data":
        return {"bytes": int(params["bytes"])}
    raise FaultNotApplied(f"unknown network fault kind {kind!r}")


class NetworkActuator:
    """A toxic (or a disabled proxy, for ``down``) on one dependency's Toxiproxy proxy."""

    def __init__(
        self,
        *,
        spec: FaultWindow,
        run_id: str,
        endpoints: StackEndpoints,
        record: LiveRecord,
        client_for: Any,
    ) -> None:
        dependency = spec.target
        try:
            self._proxy = endpoints.proxies[dependency]
        except KeyError:
            raise FaultNotApplied(
                f"fault {spec.name!r}: no Toxiproxy proxy for dependency {dependency!r} "
                "on this target"
            ) from None
        self._spec = spec
        self._record = record
        self._client: ToxiproxyClient = client_for(self._proxy.api_url)
        direction = str(spec.params.get("direction", "downstream"))
        self._streams: tuple[Stream, ...] = (
            ("upstream", "downstream") if direction == "both" else (cast(Stream, direction),)
        )
        self._names = {s: toxic_name(run_id, spec.name, s) for s in self._streams}
        self._applied: list[Stream] = []
        self._disabled = False

    def apply(self, level: float) -> None:
        """Add the toxics (or disable the proxy)."""
        api, proxy = self._proxy.api_url, self._proxy.name
        if self._spec.kind == "down":
            self._record.add_disabled(api, proxy)
            self._disabled = True
            self._client.set_enabled(proxy, False)
            return
        toxicity = float(self._spec.params.get("toxicity", 1.0))
        attributes = toxic_attributes(self._spec.kind, self._spec.params, level)
        for stream, name in self._names.items():
            self._record.add_toxic(api, proxy, name)
            self._applied.append(stream)
            self._client.add_toxic(
                proxy,
                Toxic(
                    name=name,
                    type=self._spec.kind,
                    stream=stream,
                    toxicity=toxicity,
                    attributes=attributes,
                ),
            )

    def update(self, level: float) -> None:
        """Move a ramp: new attributes on the same toxics."""
        if self._spec.kind == "down":
            return
        attributes = toxic_attributes(self._spec.kind, self._spec.params, level)
        for stream in self._applied:
            self._client.update_toxic(self._proxy.name, self._names[stream], attributes)

    def remove(self) -> None:
        """Take the toxics away (a toxic already gone counts as removed)."""
        api, proxy = self._proxy.api_url, self._proxy.name
        errors: list[str] = []
        if self._disabled:
            try:
                self._client.set_enabled(proxy, True)
                self._disabled = False
                self._record.drop_disabled(api, proxy)
            except ChaoskitError as exc:
                errors.append(str(exc))
        for stream in list(self._applied):
            name = self._names[stream]
            try:
                self._client.remove_toxic(proxy, name, missing_ok=True)
                self._applied.remove(stream)
                self._record.drop_toxic(api, proxy, name)
            except ChaoskitError as exc:
                errors.append(str(exc))
        if errors:
            raise FaultNotApplied(
                f"fault {self._spec.name!r} not fully removed: {'; '.join(errors)}"
            )


class DomainActuator:
    """A settings change on one service's /admin, with the previous values put back."""

    def __init__(
        self, *, spec: FaultWindow, admin: AdminClient, services: dict[str, str], record: LiveRecord
    ) -> None:
        self._spec = spec
        self._change = domain_change(spec.kind, spec.params)
        if not admin.has(self._change.service):
            raise FaultNotApplied(
                f"fault {spec.name!r}: service {self._change.service!r} has no admin endpoint here"
            )
        self._admin = admin
        self._url = services.get(self._change.service, "")
        self._record = record
        self._previous: dict[str, Any] | None = None

    def _at(self, level: float) -> dict[str, Any]:
        settings = dict(self._change.settings)
        key = self._change.ramp_key
        if key is not None and level < 1.0 and self._previous is not None:
            start, end = float(self._previous[key]), float(settings[key])
            value = start + (end - start) * level
            settings[key] = round(value) if isinstance(self._change.settings[key], int) else value
        return settings

    def apply(self, level: float) -> None:
        """Read the current values, remember them, then change them."""
        current = self._admin.get(self._change.service)
        self._previous = {k: current.get(k) for k in self._change.settings}
        for key, value in self._previous.items():
            self._record.remember_setting(self._change.service, self._url, key, value)
        self._admin.set(self._change.service, self._at(level))

    def update(self, level: float) -> None:
        """Move a ramp toward the fault's value."""
        if self._previous is not None:
            self._admin.set(self._change.service, self._at(level))

    def remove(self) -> None:
        """Put the previous values back."""
        if self._previous is None:
            return
        self._admin.set(self._change.service, self._previous)
        self._previous = None


class ContainerActuator:
    """A Docker-level fault on one service's container (pause, stop, kill, CPU limit)."""

    def __init__(self, *, spec: FaultWindow, endpoints: StackEndpoints, record: LiveRecord) -> None:
        service = spec.target
        container = endpoints.containers.get(service)
        if container is None:
            raise FaultNotApplied(
                f"fault {spec.name!r}: {spec.kind} needs the docker backend "
                f"(no container for {service!r} on this target)"
            )
        self._spec = spec
        self._container = container
        self._record = record
        self._rollback: Any = None
        self._entry = {"kind": spec.kind, "container": container, "params": spec.params}

    def apply(self, level: float) -> None:
        """Pause, stop, kill or limit the container."""
        from chaoskit.faults.container import ContainerFaults  # docker SDK only when needed

        self._record.add_container(self._entry)
        self._rollback = ContainerFaults().apply(
            self._spec.kind, self._container, self._spec.params
        )

    def update(self, level: float) -> None:
        """Container faults do not ramp."""

    def remove(self) -> None:
        """Unpause, start again, or lift the limit."""
        if self._rollback is not None:
            self._rollback.undo()
            self._rollback = None
        self._record.drop_container(self._entry)


def make_actuator(
    spec: FaultWindow,
    *,
    run_id: str,
    endpoints: StackEndpoints,
    admin: AdminClient,
    record: LiveRecord,
    client_for: Any,
) -> Actuator:
    """The actuator for ``spec``'s kind on this target."""
    if spec.kind in NETWORK_FAULT_KINDS:
        return NetworkActuator(
            spec=spec, run_id=run_id, endpoints=endpoints, record=record, client_for=client_for
        )
    if spec.kind in DOMAIN_FAULT_KINDS:
        return DomainActuator(spec=spec, admin=admin, services=endpoints.services, record=record)
    if spec.kind in CONTAINER_FAULT_KINDS:
        return ContainerActuator(spec=spec, endpoints=endpoints, record=record)
    raise FaultNotApplied(f"unknown fault kind {spec.kind!r}")
