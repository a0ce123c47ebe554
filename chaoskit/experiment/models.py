"""The experiment file, format version 1, as typed models (pydantic v2, unknown keys refused).

Cross-field problems are raised as ``PydanticCustomError("experiment", ...)`` whose context
carries ``loc``: the place, relative to the failing model, the loader points the user at.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    TypeAdapter,
    ValidationInfo,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import PydanticCustomError

from chaoskit._yaml import did_you_mean
from chaoskit.experiment.durations import Duration, PositiveDuration, format_duration
from chaoskit.experiment.limits import MAX_SEGMENTS
from chaoskit.journey.models import JourneyConfig
from chaoskit.observe.metrics import METRICS, is_after_run
from chaoskit.observe.prometheus import (
    MetricsSettings,
    PrometheusMetrics,
    PromQuerySpec,
)
from chaoskit.stack.endpoints import DEPENDENCIES, SERVICES

__all__ = [
    "CONTAINER_FAULT_KINDS",
    "DOMAIN_FAULT_KINDS",
    "NETWORK_FAULT_KINDS",
    "SHAPE_KINDS",
    "AuditSettings",
    "Behaviour",
    "Check",
    "ConstantShape",
    "CustomShape",
    "Experiment",
    "Fault",
    "Guardrail",
    "LoadSettings",
    "MetricsSettings",
    "Milestone",
    "PromQuerySpec",
    "PrometheusMetrics",
    "RampShape",
    "ReplayShape",
    "ReportSettings",
    "Shape",
    "SpikeShape",
    "Stage",
    "StagesShape",
    "StackSettings",
    "StepShape",
    "Trigger",
    "ViralShape",
    "did_you_mean",
    "parse_fault",
    "parse_shape",
]

NETWORK_FAULT_KINDS: tuple[str, ...] = (
    "latency",
    "bandwidth",
    "timeout",
    "reset_peer",
    "slicer",
    "limit_data",
    "down",
)
DOMAIN_FAULT_KINDS: tuple[str, ...] = (
    "riders",
    "store_capacity",
    "store_pause",
    "coupon_lag",
    "db_pool",
    "http_errors",
)
CONTAINER_FAULT_KINDS: tuple[str, ...] = (
    "container_pause",
    "container_stop",
    "container_kill",
    "cpu_limit",
)
SHAPE_KINDS: tuple[str, ...] = (
    "constant",
    "stages",
    "ramp",
    "step",
    "spike",
    "viral",
    "replay",
    "custom",
)
ReportFormat = Literal["html", "md", "json", "junit", "csv"]
REPORT_FORMATS: tuple[ReportFormat, ...] = ("html", "md", "json", "junit", "csv")


def problem(message: str, *loc: str | int) -> PydanticCustomError:
    """A validation problem at ``loc`` below the model that raises it."""
    return PydanticCustomError("experiment", "{message}", {"message": message, "loc": loc})


def _hint(value: str, allowed: tuple[str, ...]) -> str:
    # A close match says enough; the full list only helps when nothing is close.
    return did_you_mean(value, allowed) or f"; expected one of: {', '.join(allowed)}"


def _one_of(what: str, allowed: tuple[str, ...]) -> Any:
    def check(value: str) -> str:
        if value not in allowed:
            raise PydanticCustomError(
                "experiment",
                "{message}",
                {"message": f'unknown {what} "{value}"{_hint(value, allowed)}'},
            )
        return value

    return AfterValidator(check)


_SLUG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def _slug(value: str) -> str:
    if not _SLUG.match(value):
        raise PydanticCustomError(
            "experiment",
            "{message}",
            {"message": "expected a name of letters, digits, '-', '_' or '.' (at most 64)"},
        )
    return value


Slug = Annotated[
    str,
    AfterValidator(_slug),
    WithJsonSchema({"type": "string", "pattern": _SLUG.pattern}),
]
Dependency = Annotated[
    str,
    _one_of("dependency", DEPENDENCIES),
    WithJsonSchema({"type": "string", "enum": list(DEPENDENCIES)}),
]
Service = Annotated[
    str,
    _one_of("service", SERVICES),
    WithJsonSchema({"type": "string", "enum": list(SERVICES)}),
]
_METRIC_NAMES = tuple(METRICS)
_STEP_METRIC = re.compile(r"^failures\.[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def _metric(value: str, info: ValidationInfo) -> str:
    # failures.<step> of any journey step: the journey (target or experiment) names them.
    if _STEP_METRIC.match(value) or value in METRICS:
        return value
    # Names the run's PromQL queries add (this experiment's metrics block and its target
    # file's) are metrics too; the loader passes them in the validation context.
    context = info.context if isinstance(info.context, dict) else {}
    extra = tuple(context.get("extra_metrics", ()))
    if value not in extra:
        allowed = (*_METRIC_NAMES, *extra)
        raise PydanticCustomError(
            "experiment",
            "{message}",
            {"message": f'unknown metric "{value}"{_hint(value, allowed)}'},
        )
    return value


Metric = Annotated[
    str,
    AfterValidator(_metric),
    WithJsonSchema({"type": "string"}),
]
Amount = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Scale = Annotated[float, Field(gt=0, allow_inf_nan=False)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


# ---------------------------------------------------------------- stack settings


class GatewaySettings(_Model):
    """Resilience switches on the gateway."""

    timeout: PositiveDuration | None = None
    retries: Literal["none", "naive", "backoff"] | None = None
    max_retries: int | None = Field(default=None, ge=0)
    circuit_breaker: bool | None = None
    load_shedding: bool | None = None
    max_inflight: int | None = Field(default=None, ge=1)


class StoreSettings(_Model):
    """Store intake: how many stores, how fast each accepts, how it handles overload."""

    count: int | None = Field(default=None, ge=1)
    capacity_per_s: Amount | None = None
    queue: int | None = Field(default=None, ge=0)
    overload: Literal["shed", "pause"] | None = None
    pause: Duration | None = None


class CouponSettings(_Model):
    """The coupon/subsidy ledger."""

    pool_size: int | None = Field(default=None, ge=1)
    lag: Duration | None = None
    idempotent: bool | None = None


class EligibilitySettings(_Model):
    """Free-order eligibility."""

    free_orders_per_user: int | None = Field(default=None, ge=0)
    referral_share: float | None = Field(default=None, ge=0, le=1)
    release_on_failure: bool | None = None
    """The compensating design: a failed order gives its free order back to the buyer."""


class StackSettings(_Model):
    """Stub-stack settings applied through /admin before the load, restored after."""

    coupon_mode: Literal["sync", "async"] | None = None
    riders: int | None = Field(default=None, ge=0)
    delivery_time: PositiveDuration | None = None
    dispatch_wait: Duration | None = None
    gateway: GatewaySettings | None = None
    stores: StoreSettings | None = None
    coupon: CouponSettings | None = None
    eligibility: EligibilitySettings | None = None


# ---------------------------------------------------------------- load shapes


class _ValueKeyed(_Model):
    """A shape part whose value is given as `rate` (open model) or `users` (closed model)."""

    rate: Amount | None = None
    users: Amount | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> _ValueKeyed:
        if (self.rate is None) == (self.users is None):
            raise problem("expected exactly one of rate (open model) or users (closed model)")
        return self

    @property
    def value(self) -> float:
        """The rate or the users, whichever was given."""
        return self.rate if self.rate is not None else float(self.users or 0.0)

    @property
    def value_key(self) -> str:
        """ "rate" or "users"."""
        return "rate" if self.rate is not None else "users"


class ConstantShape(_ValueKeyed):
    """A flat load for a while."""

    kind: Literal["constant"]
    for_: PositiveDuration = Field(alias="for")


class Stage(_ValueKeyed):
    """One flat stage of a `stages` shape."""

    for_: PositiveDuration = Field(alias="for")
    name: str | None = None


class StagesShape(_Model):
    """Flat stages, one after another."""

    kind: Literal["stages"]
    stages: list[Stage] = Field(min_length=1, max_length=MAX_SEGMENTS)

    @model_validator(mode="after")
    def _same_key(self) -> StagesShape:
        first = self.stages[0].value_key
        for index, stage in enumerate(self.stages):
            if stage.value_key != first:
                raise problem(
                    f"every stage must use the key of the first ({first}), got {stage.value_key}",
                    "stages",
                    index,
                    stage.value_key,
                )
        return self


class RampShape(_Model):
    """A linear ramp from `from` to `to` over `for`."""

    kind: Literal["ramp"]
    for_: PositiveDuration = Field(alias="for")
    from_: Amount = Field(alias="from")
    to: Amount


class StepShape(_Model):
    """`steps` steps of `every`; step k (from 0) holds start + step*k."""

    kind: Literal["step"]
    start: Amount
    step: float = Field(allow_inf_nan=False)
    every: PositiveDuration
    steps: int = Field(ge=1, le=MAX_SEGMENTS)

    @model_validator(mode="after")
    def _never_negative(self) -> StepShape:
        if self.start + self.step * (self.steps - 1) < 0:
            raise problem("start + step * (steps - 1) must not be negative", "step")
        return self


class SpikeShape(_Model):
    """`base`, a linear rise to `peak` reached at `at`, `peak` held `spike_for`, then `base`."""

    kind: Literal["spike"]
    base: Amount
    peak: Amount
    at: Duration
    spike_for: PositiveDuration
    total: PositiveDuration
    rise: Duration = 0.0

    @model_validator(mode="after")
    def _fits(self) -> SpikeShape:
        if self.rise > self.at:
            raise problem(
                f"the rise ({format_duration(self.rise)}) must fit before at "
                f"({format_duration(self.at)})",
                "rise",
            )
        if self.at + self.spike_for > self.total:
            raise problem(
                f"at + spike_for ({format_duration(self.at + self.spike_for)}) must not exceed "
                f"total ({format_duration(self.total)})",
                "total",
            )
        return self


class Milestone(_Model):
    """A cumulative total of arrivals reached at a (story) time."""

    at: PositiveDuration
    total: Amount


class ViralShape(_Model):
    """Referral growth: doubling from `start` up to `cap` then `hold`, or milestone totals.

    Exponential form: value(t) = min(cap, start * 2**(t * time_scale / doubling)) * rate_scale.
    Milestone form: the rate is the slope between cumulative totals, times time_scale * rate_scale.
    """

    kind: Literal["viral"]
    start: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = None
    doubling: PositiveDuration | None = None
    cap: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = None
    hold: Duration | None = None
    milestones: list[Milestone] | None = Field(default=None, min_length=1, max_length=MAX_SEGMENTS)
    time_scale: Scale = 1.0
    rate_scale: Scale = 1.0

    @model_validator(mode="after")
    def _one_form(self) -> ViralShape:
        exponential = ("start", "doubling", "cap", "hold")
        given = [key for key in exponential if getattr(self, key) is not None]
        if self.milestones is not None:
            if given:
                raise problem(
                    "give either milestones or start/doubling/cap/hold, not both", given[0]
                )
            previous_at, previous_total = 0.0, 0.0
            for index, milestone in enumerate(self.milestones):
                if milestone.at <= previous_at:
                    raise problem("milestone times must increase", "milestones", index, "at")
                if milestone.total < previous_total:
                    raise problem(
                        "milestone totals are cumulative: they must not decrease",
                        "milestones",
                        index,
                        "total",
                    )
                previous_at, previous_total = milestone.at, milestone.total
            return self
        missing = [key for key in exponential if getattr(self, key) is None]
        if missing:
            raise problem(
                f"missing {', '.join(missing)} (the exponential form needs start, doubling, "
                "cap and hold; or give milestones)"
            )
        return self


class ReplayShape(_Model):
    """Replays a CSV of `time_s,rate` (or `time_s,users`), interpolated linearly."""

    kind: Literal["replay"]
    file: str = Field(min_length=1)
    time_scale: Scale = 1.0
    rate_scale: Scale = 1.0


class CustomShape(_Model):
    """The user's own locust LoadTestShape class, for `for` seconds (closed model only)."""

    kind: Literal["custom"]
    class_: str = Field(alias="class", pattern=r"^[^:]+:[A-Za-z_][A-Za-z0-9_]*$")
    for_: PositiveDuration = Field(alias="for")


Shape = Annotated[
    ConstantShape
    | StagesShape
    | RampShape
    | StepShape
    | SpikeShape
    | ViralShape
    | ReplayShape
    | CustomShape,
    Field(discriminator="kind"),
]
_SHAPE_ADAPTER: TypeAdapter[Shape] = TypeAdapter(Shape)


def parse_shape(data: dict[str, Any]) -> Shape:
    """A shape model from its dumped dict (what the engine receives in LoadSpec.shape)."""
    return _SHAPE_ADAPTER.validate_python(data)


class Behaviour(_Model):
    """The agent buyer: re-clicks after a failure, think time, idempotency key reuse."""

    reclick: int = Field(default=0, ge=0)
    think_time: Duration = 1.0
    reuse_idempotency_key: bool = False
    request_timeout: PositiveDuration = 5.0


class LoadSettings(_Model):
    """How the surge is driven."""

    model: Literal["open", "closed"] = "open"
    max_inflight: int = Field(default=2000, ge=1)
    behaviour: Behaviour = Field(default_factory=Behaviour)
    shape: Shape
    # What one buyer's order is as HTTP requests; None: the target's journey (the built-in
    # agent-buyer unless the target file names one).
    journey: JourneyConfig | None = None


# ---------------------------------------------------------------- faults


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


# ---------------------------------------------------------------- checks and report


class _Bounds(_Model):
    metric: Metric
    min: float | None = Field(default=None, allow_inf_nan=False)
    max: float | None = Field(default=None, allow_inf_nan=False)

    @model_validator(mode="after")
    def _bounds(self) -> _Bounds:
        if self.min is None and self.max is None:
            raise problem("expected min or max (or both)")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise problem(f"min ({self.min:g}) is above max ({self.max:g})", "min")
        return self

    def ok(self, value: float | None) -> bool | None:
        """True within bounds, False outside, None when there is no value (never a pass)."""
        if value is None:
            return None
        return (self.min is None or value >= self.min) and (self.max is None or value <= self.max)

    def describe(self) -> str:
        """The bound as a reader would say it: ``latency_p95_ms >= 1 and <= 500``."""
        bounds = ((">=", self.min), ("<=", self.max))
        return f"{self.metric} " + " and ".join(
            f"{op} {bound:g}" for op, bound in bounds if bound is not None
        )


class Check(_Bounds):
    """A hypothesis: a metric stays within bounds in a phase of the run."""

    phase: Literal["baseline", "during", "recovery", "overall", "all"] = "all"


class Guardrail(_Bounds):
    """Abort the run when a metric leaves its bounds for `for`."""

    metric: LiveMetric
    for_: Duration = Field(default=0.0, alias="for")


class ReportSettings(_Model):
    """What the run writes, and where."""

    formats: list[ReportFormat] = Field(default_factory=lambda: list(REPORT_FORMATS))
    dir: str = "reports"


# ---------------------------------------------------------------- the experiment


class AuditSettings(_Model):
    """What the post-run audit holds the ledgers to."""

    credit_slo: PositiveDuration | None = None
    """A coupon credit landing (or still queued) later than this after its order is late."""


class Experiment(_Model):
    """One experiment file: target, stack settings, load, faults, hypothesis, guardrails."""

    version: Literal[1]
    name: Slug
    description: str = ""
    target: str = Field(default="local", min_length=1)
    seed: int = 0
    recovery: Duration = 10.0
    stack: StackSettings = Field(default_factory=StackSettings)
    load: LoadSettings
    faults: list[Fault] = Field(default_factory=list)
    hypothesis: list[Check] = Field(default_factory=list)
    guardrails: list[Guardrail] = Field(default_factory=list)
    report: ReportSettings = Field(default_factory=ReportSettings)
    audit: AuditSettings = Field(default_factory=AuditSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)

    _source_path: Path | None = PrivateAttr(default=None)

    @property
    def source_path(self) -> Path | None:
        """The file this experiment was read from (set through the validation context)."""
        return self._source_path

    @property
    def base_dir(self) -> Path:
        """Where relative paths in the experiment (replay CSV, custom shape) are resolved."""
        return self._source_path.parent if self._source_path is not None else Path.cwd()

    @property
    def value_unit(self) -> str:
        """What the shape's values are: "arrivals/s" (open) or "users" (closed)."""
        return "arrivals/s" if self.load.model == "open" else "concurrent users"

    def shape_spec(self) -> dict[str, Any]:
        """The shape as the load engine receives it (LoadSpec.shape)."""
        return self.load.shape.model_dump(by_alias=True, mode="json", exclude_none=True)

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> Experiment:
        context = info.context if isinstance(info.context, dict) else {}
        source = context.get("source_path")
        if source is not None:
            self._source_path = Path(source)
        self._check_model_keys()
        self._check_faults()
        return self

    def _check_model_keys(self) -> None:
        shape = self.load.shape
        wanted = "rate" if self.load.model == "open" else "users"
        parts: list[tuple[tuple[str | int, ...], _ValueKeyed]] = []
        if isinstance(shape, ConstantShape):
            parts.append(((shape.kind,), shape))
        elif isinstance(shape, StagesShape):
            parts.extend(((shape.kind, "stages", i), stage) for i, stage in enumerate(shape.stages))
        for where, part in parts:
            if part.value_key != wanted:
                raise problem(
                    f"load.model is {self.load.model}: give {wanted} ({self.value_unit}), "
                    f"not {part.value_key}",
                    "load",
                    "shape",
                    *where,
                    part.value_key,
                )
        if isinstance(shape, CustomShape) and self.load.model != "closed":
            raise problem(
                "a custom LoadTestShape drives users: set load.model to closed",
                "load",
                "shape",
                shape.kind,
                "kind",
            )

    def _check_faults(self) -> None:
        seen: dict[str, int] = {}
        for index, fault in enumerate(self.faults):
            if fault.name in seen:
                raise problem(
                    f'fault name "{fault.name}" is already used by faults[{seen[fault.name]}]',
                    "faults",
                    index,
                    fault.kind,
                    "name",
                )
            seen[fault.name] = index
            if fault.family == "container" and self.target == "local":
                raise problem(
                    f"{fault.kind} needs containers: set target to docker (or a docker target "
                    "file); the target is local",
                    "faults",
                    index,
                    fault.kind,
                    "kind",
                )
        # A triggered fault may start at any time, so it may overlap any other fault of its
        # kind on its target; the second one's removal would cancel the first. Refused.
        for j, fault in enumerate(self.faults):
            for i, other in enumerate(self.faults[:j]):
                if (other.kind, other.target) != (fault.kind, fault.target):
                    continue
                if fault.when is None and other.when is None:
                    continue
                triggered = fault if fault.when is not None else other
                raise problem(
                    f'may overlap fault "{other.name}" (faults[{i}]): two {fault.kind} faults on '
                    f'{fault.target} at once, and "{triggered.name}" starts whenever its '
                    "condition holds; give them different kinds or targets, or one fault",
                    "faults",
                    j,
                    fault.kind,
                    "when" if fault.when is not None else "name",
                )
        timed = [(i, f) for i, f in enumerate(self.faults) if f.when is None]
        for later, (j, fault) in enumerate(timed):
            for i, other in timed[:later]:
                if (other.kind, other.target) != (fault.kind, fault.target):
                    continue
                other_end = other.at + other.for_ if other.for_ is not None else float("inf")
                fault_end = fault.at + fault.for_ if fault.for_ is not None else float("inf")
                if fault.at < other_end and other.at < fault_end:
                    raise problem(
                        f'overlaps fault "{other.name}" (faults[{i}]): two {fault.kind} faults '
                        f"on {fault.target} at once",
                        "faults",
                        j,
                        "at",
                    )
