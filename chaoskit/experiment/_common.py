"""What every part of the experiment format shares: the base model, names, metrics and
the problem raised for a cross-field mistake (its ``loc`` is where the loader points)."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError

from chaoskit._yaml import did_you_mean
from chaoskit.observe.metrics import METRICS
from chaoskit.stack.endpoints import DEPENDENCIES, SERVICES

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
