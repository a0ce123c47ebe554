"""summary.json from the run: the running snapshot, then the final one from the RunResult.

The file's models (``chaoskit.report.summary``) are its stable, versioned format; this module
maps the run's typed objects onto them, so no one writes summary.json by hand.
"""

from __future__ import annotations

import dataclasses
import platform
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from chaoskit._version import __version__
from chaoskit.experiment.models import Experiment
from chaoskit.faults.timeline import FaultRecord
from chaoskit.planning import Plan
from chaoskit.report.summary import Abort as SummaryAbort
from chaoskit.report.summary import Audit, EnvironmentInfo, ExperimentInfo, Summary
from chaoskit.report.summary import Check as SummaryCheck
from chaoskit.report.summary import FaultRecord as SummaryFault
from chaoskit.report.summary import Plan as SummaryPlan
from chaoskit.run.result import RunResult

__all__ = ["SummaryContext", "final_summary", "running_summary"]


@dataclass(frozen=True, slots=True, kw_only=True)
class SummaryContext:
    """What summary.json says about a run whatever its state."""

    run_id: str
    experiment: Experiment
    plan: Plan
    target_name: str
    target_kind: str
    workers: int
    started_at: datetime


def _base(context: SummaryContext) -> dict[str, object]:
    experiment = context.experiment
    return {
        "run_id": context.run_id,
        "experiment": ExperimentInfo(
            name=experiment.name,
            description=experiment.description,
            file=str(getattr(experiment, "source_path", "") or ""),
            seed=experiment.seed,
            target=context.target_name,
        ),
        "started_at": context.started_at.isoformat(),
        "environment": EnvironmentInfo(
            chaoskit_version=__version__,
            python=platform.python_version(),
            platform=platform.platform(),
            target_kind=context.target_kind,
            workers=context.workers,
        ),
        "plan": SummaryPlan.model_validate(context.plan.to_json()),
    }


def _faults(faults: Sequence[FaultRecord]) -> list[SummaryFault]:
    return [SummaryFault.model_validate(dataclasses.asdict(f)) for f in faults]


def running_summary(
    context: SummaryContext,
    *,
    duration_s: float,
    metrics: Mapping[str, float | None],
    faults: Sequence[FaultRecord],
    errors: Sequence[str],
) -> Summary:
    """The summary while the run goes on: status "running", no verdict yet."""
    return Summary.model_validate(
        {
            **_base(context),
            "duration_s": round(max(0.0, duration_s), 3),
            "status": "running",
            "metrics": dict(metrics),
            "faults": _faults(faults),
            "audit": Audit(status="skipped", reason="run did not reach the audit"),
            "errors": list(errors),
        }
    )


def final_summary(context: SummaryContext, result: RunResult) -> Summary:
    """The summary of a finished run: every number is the RunResult's."""
    audit = result.audit
    return Summary.model_validate(
        {
            **_base(context),
            "ended_at": datetime.now(UTC).isoformat(),
            "duration_s": result.duration_s,
            "status": result.status,
            "verdict": result.verdict,
            "exit_code": int(result.exit_code),
            "metrics": dict(result.metrics),
            "phases": {phase: dict(values) for phase, values in result.phases.items()},
            "checks": [SummaryCheck.model_validate(c.to_json()) for c in result.checks],
            "faults": _faults(result.faults),
            "audit": Audit.model_validate(audit.to_json())
            if audit is not None
            else Audit(status="skipped", reason="run did not reach the audit"),
            "abort": None
            if result.abort is None
            else SummaryAbort.model_validate(dataclasses.asdict(result.abort)),
            "errors": list(result.errors),
        }
    )
