"""The plan stage: an experiment laid out on one time axis (load phases, fault windows, and
the baseline / during / recovery periods the hypothesis is checked on)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from chaoskit.experiment.durations import format_duration, format_duration_approx
from chaoskit.experiment.models import Check, Experiment, Guardrail, Trigger
from chaoskit.load.shapes import LoadPhase, LoadShapeCurve, build_shape

__all__ = ["CHECK_PHASES", "FaultWindow", "Plan", "build_plan"]

CHECK_PHASES: tuple[str, ...] = ("baseline", "during", "recovery")
Span = tuple[float, float]


@dataclass(frozen=True, slots=True, kw_only=True)
class FaultWindow:
    """When one fault is planned to hit; ``start`` is None when a metric triggers it."""

    name: str
    kind: str
    family: str  # network | domain | container
    target: str
    start: float | None
    end: float | None  # None: until the load ends (or, when triggered, start + length)
    length: float | None  # the fault's `for`; None: until the load ends
    trigger: Trigger | None
    ramp: float | None
    params: dict[str, Any] = field(default_factory=dict)

    def span(self, run_end: float) -> Span:
        """The window clipped to the run; a triggered fault may fall anywhere in it."""
        if self.start is None:
            return (0.0, run_end)
        end = run_end if self.end is None else min(self.end, run_end)
        return (min(self.start, run_end), end)


@dataclass(frozen=True, kw_only=True)
class Plan:
    """The experiment's timeline, before anything runs."""

    name: str
    model: str  # open | closed
    unit: str  # arrivals/s | concurrent users
    shape_kind: str
    duration_s: float
    peak: float
    total: float  # expected arrivals (open model); nan when unknown
    load_phases: tuple[LoadPhase, ...]
    fault_windows: tuple[FaultWindow, ...]
    check_phases: dict[str, Span | None]
    notes: tuple[str, ...]
    hypothesis: tuple[Check, ...] = ()  # judged per phase, from the experiment
    guardrails: tuple[Guardrail, ...] = ()  # watched every second
    curve: LoadShapeCurve = field(repr=False, compare=False)

    def to_json(self) -> dict[str, Any]:
        """The plan as summary.json's "plan" key (exactly the contract's keys).

        A fault's ``end`` is null when it lasts until the load ends; ``start`` and ``end``
        are both null when a metric triggers it. A custom shape's values are unknown (null).
        """
        return {
            "duration_s": _r(self.duration_s),
            "load_phases": [
                {
                    "start": _r(p.start),
                    "end": _r(p.end),
                    "label": p.label,
                    "from": _r(p.start_value),
                    "to": _r(p.end_value),
                }
                for p in self.load_phases
            ],
            "fault_windows": [
                {
                    "name": w.name,
                    "kind": w.kind,
                    "start": None if w.start is None else _r(w.start),
                    "end": None if w.start is None or w.end is None else _r(w.end),
                }
                for w in self.fault_windows
            ],
            "check_phases": {
                name: None if span is None else [_r(span[0]), _r(span[1])]
                for name, span in self.check_phases.items()
            },
        }


def _r(value: float) -> float | None:
    return None if math.isnan(value) else round(value, 3)


def build_plan(experiment: Experiment) -> Plan:
    """Lay ``experiment`` out on its time axis (the shape's length is the run's)."""
    curve: LoadShapeCurve = experiment._curve or build_shape(
        experiment.load.shape, base_dir=experiment.base_dir
    )
    duration = curve.duration_s
    notes: list[str] = []
    windows: list[FaultWindow] = []
    for fault in experiment.faults:
        triggered = fault.when is not None
        start = None if triggered else fault.at
        end = None if fault.for_ is None or start is None else start + fault.for_
        windows.append(
            FaultWindow(
                name=fault.name,
                kind=fault.kind,
                family=fault.family,
                target=fault.target,
                start=start,
                end=end,
                length=fault.for_,
                trigger=fault.when,
                ramp=fault.ramp,
                params=fault.params(),
            )
        )
        notes.extend(_window_notes(fault.name, start, end, fault.when, duration))
    check_phases = _check_phases(windows, duration, notes)
    recovery = check_phases["recovery"]
    if windows and recovery is not None and recovery[1] - recovery[0] < experiment.recovery:
        notes.append(
            f"the recovery period is {format_duration_approx(recovery[1] - recovery[0])}, "
            "shorter than "
            f"recovery: {format_duration(experiment.recovery)}"
        )
    for check in experiment.hypothesis:
        if check.phase in CHECK_PHASES and check_phases[check.phase] is None:
            notes.append(
                f"hypothesis on {check.metric} is checked in the {check.phase} period, "
                "which this plan does not have"
            )
    return Plan(
        name=experiment.name,
        model=experiment.load.model,
        unit=experiment.value_unit,
        shape_kind=experiment.load.shape.kind,
        duration_s=duration,
        peak=curve.peak,
        total=curve.total(),
        load_phases=tuple(curve.phases()),
        fault_windows=tuple(windows),
        check_phases=check_phases,
        notes=tuple(notes),
        hypothesis=tuple(experiment.hypothesis),
        guardrails=tuple(experiment.guardrails),
        curve=curve,
    )


def _window_notes(
    name: str, start: float | None, end: float | None, when: Trigger | None, duration: float
) -> list[str]:
    if when is not None:
        condition = f"{when.metric} {'>' if when.above is not None else '<'} "
        condition += f"{when.above if when.above is not None else when.below:g}"
        return [
            f'fault "{name}" starts when {condition}: its time is unknown before the run, '
            "so the whole run counts as its window"
        ]
    assert start is not None
    if start >= duration:
        return [
            f'fault "{name}" starts at {format_duration(start)}, when the load '
            f"({format_duration_approx(duration)}) is over: it will never be applied"
        ]
    if end is not None and end > duration:
        return [
            f'fault "{name}" would last until {format_duration(end)}, past the load end '
            f"({format_duration_approx(duration)}): it is removed when the load ends"
        ]
    return []


def _check_phases(
    windows: list[FaultWindow], duration: float, notes: list[str]
) -> dict[str, Span | None]:
    if not windows:  # nothing to disturb the steady state: the whole run is the baseline
        return {"baseline": (0.0, duration), "during": None, "recovery": None}
    spans = [w.span(duration) for w in windows]
    first = min(s for s, _ in spans)
    last = max(e for _, e in spans)
    phases: dict[str, Span | None] = {
        "baseline": (0.0, first) if first > 0 else None,
        "during": (first, last) if last > first else None,
        "recovery": (last, duration) if duration > last else None,
    }
    if phases["recovery"] is None:
        notes.append(_no_recovery_note(windows, duration))
    return phases


def _no_recovery_note(windows: list[FaultWindow], duration: float) -> str:
    """Why nothing is left to recover in: name the fault that reaches the load end, and how."""
    window = next(w for w in windows if w.span(duration)[1] >= duration)
    if window.start is None:
        return (
            f'no recovery period: fault "{window.name}" starts when a metric says, so it may '
            "be active until the load ends"
        )
    if window.end is None:
        return (
            f'no recovery period: fault "{window.name}" has no `for`: it lasts until the load ends'
        )
    return (
        f'no recovery period: fault "{window.name}" lasts until {format_duration(window.end)}, '
        f"and the load ends at {format_duration_approx(duration)}"
    )
