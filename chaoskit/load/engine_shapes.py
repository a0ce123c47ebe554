"""The engine's view of a load shape: a curve on chaoskit's clock, clamped to the caps.

Built-in kinds come from ``chaoskit.load.shapes``; ``custom`` loads a user's locust
``LoadTestShape`` and asks its ``tick()`` with our clock, so one process or many agree.
Engine-side only: a custom shape file imports locust.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import sys
from pathlib import Path
from typing import Any, Protocol

from chaoskit.errors import ChaoskitError, InputError
from chaoskit.load.spec import Caps

__all__ = ["CappedCurve", "Curve", "LocustShapeCurve", "load_curve"]

_PROBE_STEP_S = 0.25


class Curve(Protocol):
    """Scheduled arrivals/s (open) or users (closed) at ``t`` seconds after t0."""

    @property
    def duration_s(self) -> float: ...

    @property
    def peak(self) -> float: ...

    def value_at(self, t: float) -> float: ...


class CappedCurve:
    """A curve never above ``cap``."""

    def __init__(self, inner: Curve, cap: float | None) -> None:
        self._inner = inner
        self._cap = cap

    @property
    def duration_s(self) -> float:
        return self._inner.duration_s

    @property
    def peak(self) -> float:
        return self._inner.peak if self._cap is None else min(self._cap, self._inner.peak)

    def value_at(self, t: float) -> float:
        value = max(0.0, self._inner.value_at(t))
        return value if self._cap is None else min(self._cap, value)


def _load_class(ref: str, base_dir: Path | None) -> type[Any]:
    """``path/to/file.py:Name`` (relative to ``base_dir``) or ``package.module:Name``."""
    module_ref, sep, name = ref.rpartition(":")
    if not sep or not module_ref or not name:
        raise InputError(
            f"shape.class: expected 'file.py:ClassName' or 'module:Class', got {ref!r}"
        )
    try:
        if module_ref.endswith(".py"):
            path = Path(module_ref)
            if not path.is_absolute() and base_dir is not None:
                path = base_dir / path
            spec = importlib.util.spec_from_file_location(f"chaoskit_shape_{path.stem}", path)
            if spec is None or spec.loader is None:
                raise InputError(f"shape.class: cannot load {path}")
            module = importlib.util.module_from_spec(spec)
            sys.modules[spec.name] = module
            spec.loader.exec_module(module)
        else:
            module = importlib.import_module(module_ref)
    except InputError:
        raise
    except Exception as exc:  # a user's file can fail in any way; report it as input
        raise InputError(f"shape.class: cannot import {module_ref}: {exc}") from exc
    cls = getattr(module, name, None)
    if not isinstance(cls, type):
        raise InputError(f"shape.class: {module_ref} has no class {name!r}")
    return cls


class LocustShapeCurve:
    """A user's ``LoadTestShape`` read through its ``tick()`` at our times; None ends it."""

    def __init__(self, shape_cls: type[Any], *, horizon_s: float, max_users: int | None) -> None:
        self._shape = shape_cls()
        self._ended_at: float | None = None
        self._horizon_s = horizon_s
        self._peak = float(max_users) if max_users is not None else self._probe_peak(shape_cls)

    def _probe_peak(self, shape_cls: type[Any]) -> float:
        # A fresh instance, so probing does not disturb any state the real one keeps.
        probe = shape_cls()
        peak = 0.0
        steps = int(math.ceil(self._horizon_s / _PROBE_STEP_S)) + 1
        for k in range(steps):
            value = self._tick(probe, k * _PROBE_STEP_S)
            if value is None:
                break
            peak = max(peak, value)
        return peak

    @staticmethod
    def _tick(shape: Any, t: float) -> float | None:
        shape.get_run_time = lambda: t
        result = shape.tick()
        if result is None:
            return None
        return float(result[0])

    @property
    def duration_s(self) -> float:
        return self._ended_at if self._ended_at is not None else self._horizon_s

    @property
    def peak(self) -> float:
        return self._peak

    def value_at(self, t: float) -> float:
        if t >= self._horizon_s or (self._ended_at is not None and t >= self._ended_at):
            return 0.0
        value = self._tick(self._shape, t)
        if value is None:
            self._ended_at = t
            return 0.0
        return value


def load_curve(
    shape: dict[str, Any],
    *,
    model: str,
    base_dir: str | None,
    horizon_s: float,
    caps: Caps,
) -> Curve:
    """Build the curve for ``shape`` (a dumped experiment shape model), capped per ``caps``."""
    from chaoskit.experiment.models import CustomShape, parse_shape
    from chaoskit.load.shapes import build_shape

    cap = caps.max_rate if model == "open" else caps.max_users
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    try:
        parsed = parse_shape(shape)
    except ChaoskitError:
        raise
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        raise InputError(f"shape: {exc}") from exc
    if isinstance(parsed, CustomShape):
        if model != "closed":
            raise InputError("shape.kind custom: a LoadTestShape gives users; use model: closed")
        custom = LocustShapeCurve(
            _load_class(parsed.class_, base),
            horizon_s=min(horizon_s, parsed.for_),
            max_users=caps.max_users,
        )
        return CappedCurve(custom, cap)
    built: Curve = build_shape(parsed, base_dir=base)
    return CappedCurve(built, cap)
