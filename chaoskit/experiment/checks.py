"""An experiment's ``hypothesis:``, ``guardrails:`` and ``report:`` sections."""

from __future__ import annotations

from typing import Literal

from pydantic import (
    Field,
    model_validator,
)

from chaoskit.experiment._common import (
    REPORT_FORMATS,
    Metric,
    ReportFormat,
    _Model,
    problem,
)
from chaoskit.experiment.durations import Duration
from chaoskit.experiment.faults import (
    LiveMetric,
)


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
