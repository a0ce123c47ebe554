"""A run folder on disk: summary.json, events.jsonl and outcomes/, read the way reports need them.

Journals of interrupted runs can end in half a line; readers skip lines they cannot parse
and count them rather than fail.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from chaoskit.errors import InputError
from chaoskit.report.summary import Summary

__all__ = ["FaultSpan", "OutcomeTally", "RunFolder", "TimeSeries", "make_run_dir"]

_SLUG = re.compile(r"[^A-Za-z0-9_.-]+")


def make_run_dir(base: Path, name: str, *, run_id: str | None = None) -> Path:
    """Create and return a new, unique ``base/<YYYYmmdd-HHMMSS>-<name>/``.

    With ``run_id`` the folder is ``base/<run_id>-<name>/``: one source for both, so the
    folder a user opens and the id every report and toxic carries never disagree.
    """
    slug = _SLUG.sub("-", name).strip("-.") or "run"
    stamp = run_id or datetime.now().strftime("%Y%m%d-%H%M%S")
    base = Path(base)
    try:
        base.mkdir(parents=True, exist_ok=True)
        for attempt in range(1000):
            suffix = "" if attempt == 0 else f"-{attempt + 1}"
            path = base / f"{stamp}-{slug}{suffix}"
            try:
                path.mkdir()
            except FileExistsError:
                continue
            return path
    except OSError as exc:
        raise InputError(f"{base}: cannot create the run folder: {exc.strerror or exc}") from exc
    raise InputError(f"{base}: cannot make a unique run folder for {name!r}")


@dataclass
class TimeSeries:
    """Samples in columns: ``t`` and, per metric, one value (or None) per sample."""

    t: list[float] = field(default_factory=list)
    columns: dict[str, list[float | None]] = field(default_factory=dict)

    def append(self, t: float, metrics: dict[str, Any]) -> None:
        """Add one sample; a metric first seen now gets None for earlier samples."""
        n = len(self.t)
        self.t.append(t)
        for name, value in metrics.items():
            column = self.columns.get(name)
            if column is None:
                column = self.columns[name] = [None] * n
            column.append(_number(value))
        for column in self.columns.values():
            if len(column) == n:  # absent in this sample
                column.append(None)

    def __len__(self) -> int:
        return len(self.t)

    def get(self, name: str) -> list[float | None] | None:
        """The column for ``name``, or None when the run never reported it."""
        return self.columns.get(name)

    def has_data(self, name: str) -> bool:
        """Whether ``name`` has at least one value."""
        column = self.columns.get(name)
        return column is not None and any(v is not None for v in column)


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        number = float(value)
        return number if number == number and abs(number) != float("inf") else None
    return None


@dataclass
class OutcomeTally:
    """What clients were told, counted from outcomes/*.jsonl (one line per HTTP attempt)."""

    attempts: int = 0
    told: Counter[str] = field(default_factory=Counter)
    failed_steps: Counter[str] = field(default_factory=Counter)
    statuses: Counter[str] = field(default_factory=Counter)
    unreadable_lines: int = 0


def _read_lines(path: Path) -> Iterator[dict[str, Any] | None]:
    """Each line of a JSONL file parsed; None for a line that is not a JSON object."""
    with path.open("rb") as stream:
        for raw in stream:
            if not raw.strip():
                continue
            try:
                record = json.loads(raw)
            except ValueError:
                yield None
                continue
            yield record if isinstance(record, dict) else None


# The load engine writes outcome keys in one order; matching that with one regex over a block
# of lines is ~5x faster than json.loads per line. A block where any line does not match
# (another writer, a torn line) is parsed line by line instead, so the fast path never guesses.
_OUTCOME = re.compile(
    rb'"told":\s*"([^"]*)"\s*,\s*"step":\s*(?:null|"([^"]*)")\s*,\s*"status":\s*(null|\d+)'
)


def _tally_file(path: Path, tally: OutcomeTally) -> None:
    told, steps, statuses = tally.told, tally.failed_steps, tally.statuses
    with path.open("rb") as stream:
        while True:
            lines = stream.readlines(1 << 22)
            if not lines:
                return
            block = b"".join(lines)
            found = Counter(_OUTCOME.findall(block))
            if sum(found.values()) == len(lines) and block.count(b"\n") == len(lines):
                for (said, step, status), n in found.items():
                    said_text = said.decode()
                    told[said_text] += n
                    if said_text != "ok":
                        steps[step.decode() or "-"] += n
                    statuses["-" if status == b"null" else status.decode()] += n
                continue
            for raw in lines:
                if not raw.strip():
                    continue
                try:
                    record = json.loads(raw)
                except ValueError:
                    record = None
                if not isinstance(record, dict):
                    tally.unreadable_lines += 1
                    continue
                said_text = str(record.get("told"))
                told[said_text] += 1
                if said_text != "ok":
                    steps[str(record.get("step") or "-")] += 1
                statuses[str(record.get("status") or "-")] += 1


class RunFolder:
    """One run's folder; raises InputError when ``path`` is not a readable run folder."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        if not self.path.is_dir():
            raise InputError(f"{self.path}: not a run folder (no such directory)")
        summary_path = self.path / "summary.json"
        if not summary_path.is_file():
            raise InputError(f"{self.path}: not a run folder (no summary.json)")
        try:
            raw = json.loads(summary_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise InputError(f"{summary_path}: not readable JSON ({exc})") from exc
        try:
            self.summary = Summary.model_validate(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "(top)"
            raise InputError(f"{summary_path}: {where}: {first['msg']}") from exc
        self._series: TimeSeries | None = None
        self._events: list[dict[str, Any]] = []
        self._tally: OutcomeTally | None = None
        self.unreadable_lines = 0

    @property
    def events_path(self) -> Path:
        return self.path / "events.jsonl"

    def _load(self) -> None:
        series = TimeSeries()
        events: list[dict[str, Any]] = []
        unreadable = 0
        if self.events_path.is_file():
            for record in _read_lines(self.events_path):
                if record is None:
                    unreadable += 1
                    continue
                if record.get("type") == "sample":
                    metrics = record.get("metrics")
                    t = _number(record.get("t"))
                    if isinstance(metrics, dict) and t is not None:
                        series.append(t, metrics)
                    else:
                        unreadable += 1
                else:
                    events.append(record)
        self._series, self._events, self.unreadable_lines = series, events, unreadable

    @property
    def series(self) -> TimeSeries:
        """Every ``sample`` event's metrics, in journal order."""
        if self._series is None:
            self._load()
        assert self._series is not None
        return self._series

    def events(self, *types: str) -> list[dict[str, Any]]:
        """Journal records other than samples, optionally only of the given types."""
        if self._series is None:
            self._load()
        if not types:
            return list(self._events)
        wanted = set(types)
        return [e for e in self._events if e.get("type") in wanted]

    def outcome_files(self) -> list[Path]:
        """outcomes/*.jsonl, one per load-engine process."""
        folder = self.path / "outcomes"
        return sorted(folder.glob("*.jsonl")) if folder.is_dir() else []

    def outcome_tally(self) -> OutcomeTally | None:
        """Count what clients were told per attempt, streaming; None when there are no outcomes."""
        if self._tally is not None:
            return self._tally
        files = self.outcome_files()
        if not files:
            return None
        tally = self._tally = OutcomeTally()
        for path in files:
            _tally_file(path, tally)
        tally.attempts = sum(tally.told.values())
        return tally

    def fault_spans(self) -> list[FaultSpan]:
        """When each fault was in place: as applied if known, else as planned."""
        end_of_run = self.summary.duration_s
        if self.series.t:
            end_of_run = max(end_of_run or 0.0, self.series.t[-1])
        spans: list[FaultSpan] = []
        seen: set[str] = set()
        for fault in self.summary.faults:
            if fault.applied_at is None:
                continue
            seen.add(fault.name)
            end = fault.removed_at if fault.removed_at is not None else end_of_run
            spans.append(
                FaultSpan(name=fault.name, kind=fault.kind, start=fault.applied_at, end=end)
            )
        # An interrupted run may not have rewritten summary.json: the journal still knows.
        applied: dict[str, dict[str, Any]] = {}
        for event in self.events("fault_applied", "fault_removed"):
            name = str(event.get("name"))
            if name in seen:
                continue
            t = _number(event.get("t"))
            if event.get("type") == "fault_applied" and t is not None:
                applied[name] = {"kind": str(event.get("kind", "")), "start": t, "end": None}
            elif name in applied and t is not None:
                applied[name]["end"] = t
        for name, info in applied.items():
            seen.add(name)
            end = info["end"] if info["end"] is not None else end_of_run
            spans.append(FaultSpan(name=name, kind=info["kind"], start=info["start"], end=end))
        if self.summary.plan is not None:
            for window in self.summary.plan.fault_windows:
                if window.name in seen or window.start is None:
                    continue
                end = window.end if window.end is not None else end_of_run
                spans.append(
                    FaultSpan(
                        name=window.name,
                        kind=window.kind,
                        start=window.start,
                        end=end,
                        planned_only=True,
                    )
                )
        return sorted(spans, key=lambda span: span.start)


@dataclass(frozen=True, slots=True, kw_only=True)
class FaultSpan:
    """A fault's window on the run's time axis, in seconds since start."""

    name: str
    kind: str
    start: float
    end: float | None
    planned_only: bool = False  # never confirmed applied: shown as planned
