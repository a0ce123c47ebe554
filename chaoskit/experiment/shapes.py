"""An experiment's ``load:`` section: the surge shapes, the buyer's behaviour, the model."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    Field,
    TypeAdapter,
    model_validator,
)

from chaoskit.experiment._common import (
    Amount,
    Scale,
    _Model,
    problem,
)
from chaoskit.experiment.durations import Duration, PositiveDuration, format_duration
from chaoskit.experiment.limits import MAX_SEGMENTS
from chaoskit.journey.models import JourneyConfig


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
