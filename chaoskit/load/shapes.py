"""Load shapes as pure math: the scheduled rate (open model) or users (closed) at run second t.

No locust import here: the engine process and the plan stage share this clock, so a
shape behaves the same with one process or many.
"""

from __future__ import annotations

import bisect
import csv
import io
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

from chaoskit._yaml import decode
from chaoskit.errors import ExperimentError
from chaoskit.experiment.durations import format_duration
from chaoskit.experiment.limits import MAX_REPLAY_BYTES, MAX_SEGMENTS
from chaoskit.experiment.models import (
    ConstantShape,
    CustomShape,
    RampShape,
    ReplayShape,
    Shape,
    SpikeShape,
    StagesShape,
    StepShape,
    ViralShape,
)

__all__ = [
    "CustomCurve",
    "LoadPhase",
    "LoadShapeCurve",
    "PiecewiseCurve",
    "Segment",
    "ViralCurve",
    "build_shape",
    "format_amount",
    "read_replay_csv",
]


@dataclass(frozen=True, slots=True)
class LoadPhase:
    """A named stretch of the shape, as the plan shows it."""

    start: float
    end: float
    label: str
    start_value: float
    end_value: float


@dataclass(frozen=True, slots=True)
class Segment:
    """The value moves linearly from ``v0`` at ``start`` to ``v1`` at ``end``."""

    start: float
    end: float
    v0: float
    v1: float
    label: str = ""

    def value_at(self, t: float) -> float:
        """The linear interpolation at ``t`` (inside the segment)."""
        if self.v0 == self.v1 or self.end <= self.start:
            return self.v0
        return self.v0 + (self.v1 - self.v0) * (t - self.start) / (self.end - self.start)


class LoadShapeCurve(ABC):
    """Scheduled load over run time; 0 before the start and from ``duration_s`` on."""

    duration_s: float

    @abstractmethod
    def value_at(self, t: float) -> float:
        """Rate (open) or users (closed) scheduled at ``t`` seconds."""

    @abstractmethod
    def phases(self) -> list[LoadPhase]:
        """The named stretches of the shape, in time order."""

    @property
    @abstractmethod
    def peak(self) -> float:
        """The highest scheduled value."""

    @abstractmethod
    def total(self) -> float:
        """The integral of the value over the run (arrivals, for the open model)."""


class PiecewiseCurve(LoadShapeCurve):
    """Linear segments back to back; most shapes are this."""

    def __init__(self, segments: list[Segment], *, phases: list[LoadPhase] | None = None) -> None:
        self._segments = [s for s in segments if s.end > s.start]
        self._starts = [s.start for s in self._segments]
        self.duration_s = self._segments[-1].end if self._segments else 0.0
        self._phases = phases

    def value_at(self, t: float) -> float:
        """Rate or users at ``t``: the segment holding ``t``, interpolated."""
        if not self._segments or t < 0 or t >= self.duration_s:
            return 0.0
        index = max(bisect.bisect_right(self._starts, t) - 1, 0)
        return self._segments[index].value_at(t)

    def phases(self) -> list[LoadPhase]:
        """One phase per segment unless the builder grouped them."""
        if self._phases is not None:
            return list(self._phases)
        return [LoadPhase(s.start, s.end, s.label, s.v0, s.v1) for s in self._segments]

    @property
    def peak(self) -> float:
        """The highest segment end point."""
        return max((max(s.v0, s.v1) for s in self._segments), default=0.0)

    def total(self) -> float:
        """Exact trapezoid sum over the segments."""
        return sum((s.v0 + s.v1) / 2 * (s.end - s.start) for s in self._segments)


class ViralCurve(LoadShapeCurve):
    """min(cap, start * 2**(t * time_scale / doubling)) * rate_scale, then ``hold`` at the cap."""

    def __init__(
        self,
        *,
        start: float,
        doubling_s: float,
        cap: float,
        hold_s: float,
        time_scale: float = 1.0,
        rate_scale: float = 1.0,
    ) -> None:
        self.start = start
        self.doubling_s = doubling_s
        self.cap = cap
        self.time_scale = time_scale
        self.rate_scale = rate_scale
        # Real (compressed) seconds until the curve reaches its cap.
        self.growth_s = doubling_s * math.log2(cap / start) / time_scale if cap > start else 0.0
        self.hold_s = hold_s
        self.duration_s = self.growth_s + hold_s

    def value_at(self, t: float) -> float:
        """The doubling curve, capped; 0 outside the run."""
        if t < 0 or t >= self.duration_s:
            return 0.0
        grown = self.start * 2 ** (t * self.time_scale / self.doubling_s)
        return min(self.cap, grown) * self.rate_scale

    def phases(self) -> list[LoadPhase]:
        """Growth to the cap, then the hold."""
        phases = []
        first = min(self.start, self.cap) * self.rate_scale
        if self.growth_s > 0:
            phases.append(
                LoadPhase(0.0, self.growth_s, "viral growth", first, self.cap * self.rate_scale)
            )
        if self.hold_s > 0:
            value = self.cap * self.rate_scale
            phases.append(LoadPhase(self.growth_s, self.duration_s, "hold at cap", value, value))
        return phases

    @property
    def peak(self) -> float:
        """The cap: min(cap, ...) never exceeds it and always reaches it."""
        return self.cap * self.rate_scale

    def total(self) -> float:
        """Closed form: the exponential's integral up to the cap plus the hold."""
        k = self.time_scale * math.log(2) / self.doubling_s
        growth = self.start * (math.exp(k * self.growth_s) - 1) / k if self.growth_s else 0.0
        return (growth + self.cap * self.hold_s) * self.rate_scale


class CustomCurve(LoadShapeCurve):
    """The user's LoadTestShape decides in the engine; only the duration is known here."""

    def __init__(self, *, class_spec: str, duration_s: float) -> None:
        self.class_spec = class_spec
        self.duration_s = duration_s

    def value_at(self, t: float) -> float:
        """Unknown inside the run (nan); 0 outside it."""
        return math.nan if 0 <= t < self.duration_s else 0.0

    def phases(self) -> list[LoadPhase]:
        """One opaque phase."""
        return [LoadPhase(0.0, self.duration_s, f"custom {self.class_spec}", math.nan, math.nan)]

    @property
    def peak(self) -> float:
        """Unknown."""
        return math.nan

    def total(self) -> float:
        """Unknown."""
        return math.nan


def format_amount(value: float) -> str:
    """A count or rate, short: 1000000 -> "1M", 2500 -> "2.5k", 12.5 -> "12.5"."""
    if math.isnan(value):
        return "?"
    if math.isinf(value):
        return "∞" if value > 0 else "-∞"
    # Pick the unit after rounding, so 999,999 reads "1M", not "1e+03k".
    for size, suffix in ((1.0, ""), (1e3, "k"), (1e6, "M"), (1e9, "G"), (1e12, "T")):
        shown = float(f"{value / size:.3g}")
        if abs(shown) < 1000:
            return f"{shown:g}{suffix}"
    return f"{value:.3g}"


def read_replay_csv(path: Path) -> list[tuple[float, float]]:
    """(time_s, value) rows of a replay CSV; ExperimentError points at the bad line."""
    try:
        size = path.stat().st_size
        if size > MAX_REPLAY_BYTES:
            raise ExperimentError(
                f"the replay CSV is {size / 1024 / 1024:.1f} MiB; the limit is "
                f"{MAX_REPLAY_BYTES // 1024 // 1024} MiB",
                path=path,
            )
        data = path.read_bytes()
    except OSError as exc:
        raise ExperimentError(f"cannot read replay CSV: {exc.strerror or exc}", path=path) from exc
    text = decode(data, path=path, error=ExperimentError, what="replay CSV")
    rows: list[tuple[float, float]] = []
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header: list[str] | None = None
        for record in reader:
            line = reader.line_num
            if not record or all(not cell.strip() for cell in record):
                continue
            if header is None:
                header = [cell.strip().lower() for cell in record]
                value_column = next((c for c in ("rate", "users") if c in header), None)
                if "time_s" not in header or value_column is None:
                    raise ExperimentError(
                        f"expected a header time_s,rate (or time_s,users), got {','.join(record)}",
                        path=path,
                        line=line,
                    )
                time_index, value_index = header.index("time_s"), header.index(value_column)
                continue
            if len(record) != len(header):
                raise ExperimentError(
                    f"expected {len(header)} columns, got {len(record)}", path=path, line=line
                )
            point = []
            for column, index in (("time_s", time_index), (value_column, value_index)):
                cell = record[index].strip()
                try:
                    number = float(cell)
                except ValueError:
                    number = math.nan
                if not math.isfinite(number) or number < 0:
                    raise ExperimentError(
                        f"{column}: expected a number >= 0, got {cell!r}", path=path, line=line
                    )
                point.append(number)
            if rows and point[0] <= rows[-1][0]:
                raise ExperimentError(
                    f"time_s must increase, got {point[0]:g} after {rows[-1][0]:g}",
                    path=path,
                    line=line,
                )
            rows.append((point[0], point[1]))
            if len(rows) > MAX_SEGMENTS:
                raise ExperimentError(
                    f"more than {MAX_SEGMENTS:,} rows (the limit); resample the recording",
                    path=path,
                    line=line,
                )
    except csv.Error as exc:
        raise ExperimentError(f"not a CSV file: {exc}", path=path, line=reader.line_num) from None
    if len(rows) < 2:
        raise ExperimentError(
            f"expected at least 2 rows of time_s,rate, got {len(rows)}", path=path
        )
    return rows


def _stages(shape: StagesShape) -> PiecewiseCurve:
    segments, t = [], 0.0
    for index, stage in enumerate(shape.stages):
        label = stage.name or f"stage {index + 1}"
        segments.append(Segment(t, t + stage.for_, stage.value, stage.value, label))
        t += stage.for_
    return PiecewiseCurve(segments)


def _spike(shape: SpikeShape) -> PiecewiseCurve:
    rise_start, spike_end = shape.at - shape.rise, shape.at + shape.spike_for
    return PiecewiseCurve(
        [
            Segment(0.0, rise_start, shape.base, shape.base, "base"),
            Segment(rise_start, shape.at, shape.base, shape.peak, "rise"),
            Segment(shape.at, spike_end, shape.peak, shape.peak, "spike"),
            Segment(spike_end, shape.total, shape.base, shape.base, "after spike"),
        ]
    )


def _milestones(shape: ViralShape) -> PiecewiseCurve:
    assert shape.milestones is not None
    segments, previous_at, previous_total = [], 0.0, 0.0
    for milestone in shape.milestones:
        # Arrivals per story second, then per real second once the story is compressed.
        slope = (milestone.total - previous_total) / (milestone.at - previous_at)
        rate = slope * shape.time_scale * shape.rate_scale
        start, end = previous_at / shape.time_scale, milestone.at / shape.time_scale
        label = f"{format_amount(milestone.total)} by {format_duration(milestone.at)}"
        segments.append(Segment(start, end, rate, rate, label))
        previous_at, previous_total = milestone.at, milestone.total
    return PiecewiseCurve(segments)


def _replay(shape: ReplayShape, base_dir: Path) -> PiecewiseCurve:
    path = Path(shape.file)
    rows = read_replay_csv(path if path.is_absolute() else base_dir / path)
    segments = [
        Segment(
            t0 / shape.time_scale,
            t1 / shape.time_scale,
            v0 * shape.rate_scale,
            v1 * shape.rate_scale,
            "replay",
        )
        for (t0, v0), (t1, v1) in zip(rows, rows[1:], strict=False)
    ]
    if rows[0][0] > 0:  # before the first row, hold its value
        first = rows[0][1] * shape.rate_scale
        segments.insert(0, Segment(0.0, rows[0][0] / shape.time_scale, first, first, "replay"))
    end = segments[-1].end
    phase = LoadPhase(0.0, end, f"replay {shape.file}", segments[0].v0, segments[-1].v1)
    return PiecewiseCurve(segments, phases=[phase])


def build_shape(shape: Shape, *, base_dir: Path) -> LoadShapeCurve:
    """The curve of ``shape``; relative files are read from ``base_dir``."""
    if isinstance(shape, ConstantShape):
        return PiecewiseCurve([Segment(0.0, shape.for_, shape.value, shape.value, "constant")])
    if isinstance(shape, StagesShape):
        return _stages(shape)
    if isinstance(shape, RampShape):
        return PiecewiseCurve([Segment(0.0, shape.for_, shape.from_, shape.to, "ramp")])
    if isinstance(shape, StepShape):
        return PiecewiseCurve(
            [
                Segment(
                    k * shape.every,
                    (k + 1) * shape.every,
                    shape.start + shape.step * k,
                    shape.start + shape.step * k,
                    f"step {k + 1}",
                )
                for k in range(shape.steps)
            ]
        )
    if isinstance(shape, SpikeShape):
        return _spike(shape)
    if isinstance(shape, ViralShape):
        if shape.milestones is not None:
            return _milestones(shape)
        assert shape.start is not None and shape.doubling is not None
        assert shape.cap is not None and shape.hold is not None
        return ViralCurve(
            start=shape.start,
            doubling_s=shape.doubling,
            cap=shape.cap,
            hold_s=shape.hold,
            time_scale=shape.time_scale,
            rate_scale=shape.rate_scale,
        )
    if isinstance(shape, ReplayShape):
        return _replay(shape, base_dir)
    if isinstance(shape, CustomShape):
        return CustomCurve(class_spec=shape.class_, duration_s=shape.for_)
    raise TypeError(f"unknown shape {shape!r}")  # unreachable: the union is closed
