"""What a run gives back: ``RunResult``, the one place every reader takes its numbers from.

summary.json, the reports, the CLI's last lines and ``rehearse()``'s caller all read the
values judged here; none of them computes its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from chaoskit.exit_codes import ExitCode, Verdict
from chaoskit.faults.timeline import FaultRecord
from chaoskit.observe.audit import AuditResult
from chaoskit.run.checks import CheckResult

__all__ = ["Abort", "RunResult", "Status"]

Status = Literal["completed", "aborted", "interrupted", "error"]
MetricValues = Mapping[str, float | None]


@dataclass(frozen=True, slots=True, kw_only=True)
class Abort:
    """Why a run stopped before its load ended."""

    reason: Literal["guardrail", "signal"]
    t: float  # run time it stopped
    metric: str | None = None  # the guardrail's metric
    value: float | None = None  # its value when it tripped
    limit: float | None = None  # the bound it crossed


@dataclass(frozen=True, slots=True, kw_only=True)
class RunResult:
    """How a rehearsal ended and what it found."""

    run_id: str
    status: Status  # completed | aborted | interrupted | error
    verdict: Verdict  # held | violated | aborted | error
    exit_code: ExitCode  # what the CLI exits with (chaoskit.exit_codes)
    checks: tuple[CheckResult, ...]  # hypothesis per phase, guardrails, audit invariants
    metrics: MetricValues  # the whole run's metrics, by chaoskit.observe.metrics names
    phases: Mapping[str, MetricValues]  # baseline / during / recovery: the judged values
    audit: AuditResult | None  # None: the run did not reach the audit
    faults: tuple[FaultRecord, ...]
    abort: Abort | None
    errors: tuple[str, ...]  # environment failures and other problems, in order
    run_dir: Path  # summary.json, events.jsonl, reports
    duration_s: float
    reports: Mapping[str, Path] = field(default_factory=dict)  # format -> written file
    report_errors: Mapping[str, str] = field(default_factory=dict)  # format -> why not

    def __repr__(self) -> str:
        # What a failed `assert result.held` shows in pytest, which cuts reprs to ~240
        # characters: the verdict and why first, the run id last (its folder: explain()).
        reasons = [check.describe() for check in self.failed_checks] + list(self.errors)
        why = f": {'; '.join(reasons)}" if reasons else ""
        return f"RunResult({self.verdict}{why}; status={self.status} run={self.run_id})"

    @property
    def held(self) -> bool:
        """True when the hypothesis held: every check judged, none violated."""
        return self.verdict == "held"

    @property
    def failed_checks(self) -> tuple[CheckResult, ...]:
        """Checks that were judged and failed."""
        return tuple(c for c in self.checks if c.ok is False)

    def explain(self) -> str:
        """A few lines saying why the run did not hold (empty when it held)."""
        if self.held:
            return ""
        lines = [f"{self.verdict.upper()} status={self.status} run={self.run_id}"]
        lines.extend(f"  ✗ {check.describe()}" for check in self.failed_checks)
        lines.extend(f"  error: {error}" for error in self.errors)
        if self.abort is not None and self.abort.reason == "guardrail":
            lines.append(
                f"  aborted by guardrail {self.abort.metric}={self.abort.value} "
                f"(limit {self.abort.limit}) at t={self.abort.t:.0f}s"
            )
        lines.append(f"  reports: {self.run_dir}")
        return "\n".join(lines)
