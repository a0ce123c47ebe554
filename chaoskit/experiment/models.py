"""The experiment file, format version 1, as typed models (pydantic v2, unknown keys refused).

Cross-field problems are raised as ``PydanticCustomError("experiment", ...)`` whose context
carries ``loc``: the place, relative to the failing model, the loader points the user at.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import (
    Field,
    PrivateAttr,
    ValidationInfo,
    model_validator,
)

from chaoskit._yaml import did_you_mean
from chaoskit.experiment._common import (
    CONTAINER_FAULT_KINDS,
    DOMAIN_FAULT_KINDS,
    NETWORK_FAULT_KINDS,
    SHAPE_KINDS,
    Slug,
    _Model,
    problem,
)
from chaoskit.experiment.checks import (
    Check,
    Guardrail,
    ReportSettings,
)
from chaoskit.experiment.durations import Duration, PositiveDuration
from chaoskit.experiment.faults import (
    Fault,
    Trigger,
    parse_fault,
)
from chaoskit.experiment.settings import (
    StackSettings,
)
from chaoskit.experiment.shapes import (
    Behaviour,
    ConstantShape,
    CustomShape,
    LoadSettings,
    Milestone,
    RampShape,
    ReplayShape,
    Shape,
    SpikeShape,
    Stage,
    StagesShape,
    StepShape,
    ViralShape,
    _ValueKeyed,
    parse_shape,
)
from chaoskit.observe.prometheus import (
    MetricsSettings,
    PrometheusMetrics,
    PromQuerySpec,
)

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
    # The shape's LoadShapeCurve once the loader built it to check the shape; the plan stage
    # takes it from here rather than building it again (the engine, in its own process,
    # builds its own from LoadSpec.shape). Typed loosely: chaoskit.load.shapes imports this.
    _curve: Any = PrivateAttr(default=None)

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
