"""summary.json: the run's verdict and numbers, as typed models, written atomically as the run goes.

The JSON Schema shipped next to this module (``summary.schema.json``) is generated from
``Summary`` (see ``summary_json_schema``); a test keeps the two in step.
"""

from __future__ import annotations

import json
import math
import os
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from chaoskit.events import Event

__all__ = [
    "SCHEMA_PATH",
    "SCHEMA_VERSION",
    "Abort",
    "Audit",
    "Check",
    "CheckPhases",
    "EnvironmentInfo",
    "ExperimentInfo",
    "FaultRecord",
    "FaultWindow",
    "FreeOrders",
    "Invariant",
    "JournalWriter",
    "LoadPhase",
    "Plan",
    "Summary",
    "SummaryWriter",
    "summary_json_schema",
]

SCHEMA_VERSION = 1
SCHEMA_PATH = Path(__file__).with_name("summary.schema.json")

RunStatus = Literal["running", "completed", "aborted", "interrupted", "error"]
Verdict = Literal["held", "violated", "aborted", "error"]
FaultStatus = Literal["pending", "active", "removed", "failed", "skipped"]
MetricValue = float | None


class _Model(BaseModel):
    # Unknown keys are mistakes in a stable format: refuse them rather than drop them.
    model_config = ConfigDict(extra="forbid")


def _iso(value: object) -> object:
    """Epoch seconds become ISO 8601 UTC text; anything else is left to validation."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(float(value), UTC).isoformat().replace("+00:00", "Z")
    return value


class ExperimentInfo(_Model):
    """Which experiment ran."""

    name: str
    description: str = ""
    file: str | None = None
    seed: int = 0
    target: str = "local"


class EnvironmentInfo(_Model):
    """Where it ran."""

    chaoskit_version: str
    python: str
    platform: str
    target_kind: str
    workers: int = 0


class Check(_Model):
    """One hypothesis, guardrail or audit check and its outcome."""

    kind: Literal["hypothesis", "guardrail", "audit"]
    phase: str | None = None
    metric: str
    min: float | None = None
    max: float | None = None
    value: float | None = None
    ok: bool | None = Field(description="true held, false violated, null not judged (no data)")
    t: float | None = Field(default=None, description="seconds since the run started")
    note: str = Field(default="", description="the window judged, or why it was not judged")


class FaultRecord(_Model):
    """One fault: when it was planned, asked for, in place and gone (seconds since start)."""

    name: str
    kind: str
    target: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    scheduled_at: float | None = None
    requested_at: float | None = None
    applied_at: float | None = None
    removed_at: float | None = None
    apply_lag_ms: float | None = None
    remove_lag_ms: float | None = None
    status: FaultStatus = "pending"
    error: str | None = None


class Invariant(_Model):
    """One audit invariant: how many violations and (up to 50 of) the order ids."""

    count: int = Field(ge=0)
    order_ids: list[str] = Field(default_factory=list, max_length=50)
    skipped: str | None = Field(
        default=None, description="why it was not computed (the count then means nothing)"
    )


class FreeOrders(_Model):
    """Entitled buyers (granted a free order) and how many had it honoured."""

    entitled: int = Field(ge=0, description="distinct buyers granted a free order")
    honoured: int = Field(ge=0, description="... whose free order was credited or is queued")
    in_slo: int | None = Field(
        default=None, ge=0, description="... credited within credit_slo_s (null: no SLO)"
    )


class Audit(_Model):
    """Reconciliation of what clients were told against the stack's ledgers."""

    status: Literal["passed", "failed", "skipped"]
    reason: str | None = None
    invariants: dict[str, Invariant] = Field(default_factory=dict)
    queued_credits: int | None = Field(
        default=None, ge=0, description="this run's credits still in the durable outbox"
    )
    oldest_queued_age_s: float | None = Field(
        default=None, description="the oldest queued credit's age at the audit (since its order)"
    )
    credit_slo_s: float | None = Field(
        default=None, description="the experiment's audit.credit_slo"
    )
    free_orders: dict[str, FreeOrders] = Field(
        default_factory=dict, description="by phase and overall (phase of the first grant)"
    )


class Abort(_Model):
    """Why a run stopped early."""

    reason: str
    metric: str | None = None
    value: float | None = None
    limit: float | None = None
    t: float | None = None


class LoadPhase(_Model):
    """One stretch of the load shape: value goes linearly from `from` to `to`.

    `from` and `to` are null when the values are not known before the run (a custom
    LoadTestShape decides them in the load engine).
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    start: float
    end: float
    label: str = ""
    from_: float | None = Field(alias="from")
    to: float | None


class FaultWindow(_Model):
    """When a fault is planned to be active; `end` null means until the load ends."""

    name: str
    kind: str
    start: float | None = None
    end: float | None = None


class CheckPhases(_Model):
    """[start, end] of each check phase, seconds since start; absent when it has no time."""

    baseline: tuple[float, float] | None = None
    during: tuple[float, float] | None = None
    recovery: tuple[float, float] | None = None


class Plan(_Model):
    """The timeline the run followed."""

    duration_s: float
    load_phases: list[LoadPhase] = Field(default_factory=list)
    fault_windows: list[FaultWindow] = Field(default_factory=list)
    check_phases: CheckPhases = Field(default_factory=CheckPhases)


class WorkerChange(_Model):
    """A change in the distributed load engine's fleet, and where the load went."""

    t: float = Field(description="seconds since start when the master saw it")
    change: Literal["lost", "reshared"]
    worker: str | None = Field(default=None, description="the lost worker's id")
    share: float | None = Field(
        default=None, description="fraction of the load the lost worker was running"
    )
    from_t: float | None = Field(default=None, description="when the new shares took effect")
    workers: int = Field(description="workers running load after the change")
    lost: list[str] = Field(default_factory=list)
    joined: list[str] = Field(default_factory=list)


class Summary(_Model):
    """summary.json, schema 1."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    schema_: Literal[1] = Field(default=1, alias="schema")
    run_id: str
    experiment: ExperimentInfo
    started_at: str | None = Field(default=None, description="ISO 8601, UTC")
    ended_at: str | None = Field(default=None, description="ISO 8601, UTC")
    duration_s: float | None = None
    status: RunStatus = "running"
    verdict: Verdict | None = None
    exit_code: int | None = None
    environment: EnvironmentInfo
    metrics: dict[str, MetricValue] = Field(default_factory=dict)
    phases: dict[Literal["baseline", "during", "recovery"], dict[str, MetricValue]] = Field(
        default_factory=dict
    )
    checks: list[Check] = Field(default_factory=list)
    faults: list[FaultRecord] = Field(default_factory=list)
    audit: Audit | None = None
    abort: Abort | None = None
    plan: Plan | None = None
    load_workers: list[WorkerChange] = Field(default_factory=list)
    errors: list[str] = Field(default_factory=list)

    @field_validator("started_at", "ended_at", mode="before")
    @classmethod
    def _epoch_to_iso(cls, value: object) -> object:
        return _iso(value)

    def to_json_text(self) -> str:
        """The summary as summary.json text (NaN and infinities become null)."""
        return self.model_dump_json(by_alias=True, indent=2) + "\n"


def summary_json_schema() -> dict[str, Any]:
    """The JSON Schema of summary.json, as shipped in summary.schema.json."""
    schema = Summary.model_json_schema(by_alias=True, mode="serialization")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        **schema,
    }


class SummaryWriter:
    """Writes summary.json atomically (temp file + rename), so readers never see half a file."""

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / "summary.json"
        self._lock = threading.Lock()

    def write(self, summary: Summary) -> Path:
        """Replace summary.json with ``summary``."""
        text = summary.to_json_text()
        tmp = self.path.with_name(f".summary.json.{os.getpid()}.{threading.get_ident()}.tmp")
        with self._lock:
            tmp.write_text(text, encoding="utf-8")
            os.replace(tmp, self.path)
        return self.path


def _finite(value: Any) -> Any:
    """``value`` with NaN and infinities (which JSON cannot hold) turned into None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _event_line(event: Event) -> str:
    record = event.to_json()
    try:
        text = json.dumps(record, separators=(",", ":"), allow_nan=False, default=str)
    except ValueError:  # NaN somewhere: rare, so only then walk the record
        text = json.dumps(_finite(record), separators=(",", ":"), default=str)
    return text + "\n"


class JournalWriter:
    """An event handler appending each event to events.jsonl, one JSON object per line."""

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / "events.jsonl"
        self._lock = threading.Lock()
        # Line-buffered: every event reaches the file at once, so a killed run keeps its journal.
        self._file: IO[str] | None = self.path.open("a", encoding="utf-8", buffering=1)

    def handle(self, event: Event) -> None:
        """Append ``event`` as one line."""
        line = _event_line(event)
        with self._lock:
            if self._file is not None:
                self._file.write(line)

    def close(self) -> None:
        """Flush and close the journal; later events are dropped."""
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None

    def __enter__(self) -> JournalWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
