"""An experiment's ``faults:``: network (Toxiproxy), domain (/admin) and container faults,
and the metric triggers that start them."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    Field,
    TypeAdapter,
    model_validator,
)
from pydantic_core import PydanticCustomError

from chaoskit.experiment._common import (
    Amount,
    Dependency,
    Metric,
    Service,
    Slug,
    _Model,
    problem,
)
from chaoskit.experiment.durations import Duration, PositiveDuration, format_duration
from chaoskit.observe.metrics import is_after_run


def _no_audit(value: str) -> str:
    if is_after_run(value):
        raise PydanticCustomError(
            "experiment",
            "{message}",
            {"message": f'"{value}" is an audit metric, known only after the run'},
        )
    return value


LiveMetric = Annotated[Metric, AfterValidator(_no_audit)]


class Trigger(_Model):
    """Start a fault when a metric is above/below a value for a while."""

    metric: LiveMetric
    above: float | None = None
    below: float | None = None
    for_: Duration = Field(default=0.0, alias="for")

    @model_validator(mode="after")
    def _one_bound(self) -> Trigger:
        if (self.above is None) == (self.below is None):
            raise problem("expected exactly one of above or below")
        return self

    def holds(self, value: float | None) -> bool:
        """Whether one sample meets the condition (no data never does)."""
        if value is None:
            return False
        if self.above is not None:
            return value > self.above
        return self.below is not None and value < self.below


class _FaultBase(_Model):
    family: ClassVar[str] = ""
    # The numeric attribute a `ramp` moves from 0 to its value; None: this kind cannot ramp.
    ramp_attribute: ClassVar[str | None] = None
    _timing_keys: ClassVar[frozenset[str]] = frozenset(
        {"name", "kind", "at", "when", "for_", "ramp"}
    )

    name: Slug
    kind: str
    at: Duration = 0.0
    when: Trigger | None = None
    for_: PositiveDuration | None = Field(default=None, alias="for")
    ramp: PositiveDuration | None = None

    @model_validator(mode="after")
    def _timing(self) -> _FaultBase:
        if self.when is not None and "at" in self.model_fields_set:
            raise problem("give either at or when, not both", "at")
        if self.ramp is not None:
            if self.ramp_attribute is None:
                raise problem(f"a {self.kind} fault cannot ramp (no numeric attribute)", "ramp")
            if self.for_ is not None and self.ramp > self.for_:
                raise problem(
                    f"ramp ({format_duration(self.ramp)}) is longer than the window "
                    f"({format_duration(self.for_)})",
                    "ramp",
                )
        return self

    @property
    def target(self) -> str:
        """The dependency, service or container the fault hits."""
        raise NotImplementedError

    def params(self) -> dict[str, Any]:
        """The kind's own settings (durations in seconds), without the timing keys."""
        return self.model_dump(exclude=set(self._timing_keys), by_alias=True)


class _NetworkFault(_FaultBase):
    family: ClassVar[str] = "network"

    dependency: Dependency
    direction: Literal["downstream", "upstream", "both"] = "downstream"
    toxicity: float = Field(default=1.0, ge=0, le=1)

    @property
    def target(self) -> str:
        """The dependency whose proxy gets the toxic."""
        return self.dependency


class LatencyFault(_NetworkFault):
    """Adds latency (and jitter) to a dependency."""

    kind: Literal["latency"]
    ramp_attribute: ClassVar[str | None] = "latency"
    latency: PositiveDuration
    jitter: Duration = 0.0


class BandwidthFault(_NetworkFault):
    """Caps a dependency's bandwidth."""

    kind: Literal["bandwidth"]
    rate_kbps: int = Field(ge=0)


class TimeoutFault(_NetworkFault):
    """Stops data and closes the connection after a timeout (0: never closes)."""

    kind: Literal["timeout"]
    ramp_attribute: ClassVar[str | None] = "timeout"
    timeout: Duration


class ResetPeerFault(_NetworkFault):
    """Resets connections (TCP RST) after a timeout."""

    kind: Literal["reset_peer"]
    timeout: Duration = 0.0


class SlicerFault(_NetworkFault):
    """Slices data into small packets with a delay between them."""

    kind: Literal["slicer"]
    average_size: int = Field(ge=1)
    size_variation: int = Field(default=0, ge=0)
    delay: Duration = 0.0


class LimitDataFault(_NetworkFault):
    """Closes connections after a number of bytes."""

    kind: Literal["limit_data"]
    bytes: int = Field(ge=0)


class DownFault(_NetworkFault):
    """Disables the dependency's proxy: every call to it fails."""

    kind: Literal["down"]

    @model_validator(mode="after")
    def _no_toxic_options(self) -> DownFault:
        for key in ("direction", "toxicity"):
            if key in self.model_fields_set:
                raise problem(f"a down fault takes the whole proxy down: {key} does not apply", key)
        return self


class _DomainFault(_FaultBase):
    family: ClassVar[str] = "domain"
    _service: ClassVar[str] = ""

    @property
    def target(self) -> str:
        """The service whose /admin settings change."""
        return self._service


class RidersFault(_DomainFault):
    """Only `available` riders remain."""

    kind: Literal["riders"]
    ramp_attribute: ClassVar[str | None] = "available"
    _service: ClassVar[str] = "rider"
    available: int = Field(ge=0)


class StoreCapacityFault(_DomainFault):
    """Each store accepts only `capacity_per_s` orders a second (and queues `queue`)."""

    kind: Literal["store_capacity"]
    ramp_attribute: ClassVar[str | None] = "capacity_per_s"
    _service: ClassVar[str] = "store"
    capacity_per_s: Amount
    queue: int | None = Field(default=None, ge=0)


class StorePauseFault(_DomainFault):
    """Every store pauses its intake."""

    kind: Literal["store_pause"]
    _service: ClassVar[str] = "store"


class CouponLagFault(_DomainFault):
    """Every coupon ledger write takes `lag` longer."""

    kind: Literal["coupon_lag"]
    ramp_attribute: ClassVar[str | None] = "lag"
    _service: ClassVar[str] = "coupon"
    lag: PositiveDuration


class DbPoolFault(_DomainFault):
    """The coupon ledger's DB connection pool shrinks to `size`."""

    kind: Literal["db_pool"]
    ramp_attribute: ClassVar[str | None] = "size"
    _service: ClassVar[str] = "coupon"
    size: int = Field(ge=1)


class HttpErrorsFault(_DomainFault):
    """A service answers `rate` of its business calls with HTTP `status`."""

    kind: Literal["http_errors"]
    service: Service
    rate: float = Field(ge=0, le=1)
    status: int = Field(default=500, ge=400, le=599)

    @property
    def target(self) -> str:
        """The service that answers with errors."""
        return self.service


class _ContainerFault(_FaultBase):
    family: ClassVar[str] = "container"

    service: Service

    @property
    def target(self) -> str:
        """The service whose container is hit."""
        return self.service


class ContainerPauseFault(_ContainerFault):
    """Freezes a service's container."""

    kind: Literal["container_pause"]


class ContainerStopFault(_ContainerFault):
    """Stops a service's container (started again when the window ends)."""

    kind: Literal["container_stop"]


class ContainerKillFault(_ContainerFault):
    """Kills a service's container (started again when the window ends)."""

    kind: Literal["container_kill"]


class CpuLimitFault(_ContainerFault):
    """Limits a service's container to `cpus` CPUs."""

    kind: Literal["cpu_limit"]
    ramp_attribute: ClassVar[str | None] = None
    cpus: float = Field(gt=0, allow_inf_nan=False)


Fault = Annotated[
    LatencyFault
    | BandwidthFault
    | TimeoutFault
    | ResetPeerFault
    | SlicerFault
    | LimitDataFault
    | DownFault
    | RidersFault
    | StoreCapacityFault
    | StorePauseFault
    | CouponLagFault
    | DbPoolFault
    | HttpErrorsFault
    | ContainerPauseFault
    | ContainerStopFault
    | ContainerKillFault
    | CpuLimitFault,
    Field(discriminator="kind"),
]
_FAULT_ADAPTER: TypeAdapter[Fault] = TypeAdapter(Fault)


def parse_fault(data: dict[str, Any]) -> Fault:
    """A fault model from a dict shaped like one entry of `faults:`."""
    return _FAULT_ADAPTER.validate_python(data)
