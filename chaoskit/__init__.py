"""chaoskit: rehearse a flash-sale surge against an order stack.

The public surface is what ``__all__`` lists; everything else is private. The stages are
functions with typed inputs and outputs::

    experiment = chaoskit.load_experiment("experiments/baseline.yaml")   # -> Experiment
    timeline = chaoskit.plan(experiment)                                 # -> Plan
    result = chaoskit.rehearse(experiment)                               # -> RunResult
    assert result.held, result.explain()

The CLI (``chaoskit.cli``) is one user of this surface; ``chaoskit.pytest_plugin`` another.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chaoskit._version import __version__

if TYPE_CHECKING:  # the names, for type checkers; imported on first use at run time
    from chaoskit._api import load_experiment, plan, rehearse, resolve_target, review
    from chaoskit.errors import (
        ChaoskitError,
        EnvironmentProblem,
        ExperimentError,
        InputError,
        SafetyRefusal,
        TargetFileError,
    )
    from chaoskit.events import (
        AuditDone,
        CheckJudged,
        Event,
        FaultApplied,
        FaultFailed,
        FaultRemoved,
        FaultRequested,
        FaultUpdated,
        GuardrailTripped,
        LogMessage,
        PhaseChanged,
        RunEnded,
        RunStarted,
        Sample,
        StackConfigured,
        WorkerLost,
    )
    from chaoskit.exit_codes import ExitCode
    from chaoskit.experiment.models import Experiment
    from chaoskit.faults.timeline import FaultRecord
    from chaoskit.observe.audit import AuditResult
    from chaoskit.planning import FaultWindow, Plan
    from chaoskit.run.checks import CheckResult
    from chaoskit.run.result import Abort, RunResult
    from chaoskit.run.safety import SafetyReview

# Imported on first use: `import chaoskit.experiment` must not pull in the runner, httpx,
# the stack backends or locust.
_LAZY: dict[str, str] = {
    "Abort": "chaoskit.run.result",
    "AuditDone": "chaoskit.events",
    "AuditResult": "chaoskit.observe.audit",
    "ChaoskitError": "chaoskit.errors",
    "CheckJudged": "chaoskit.events",
    "CheckResult": "chaoskit.run.checks",
    "EnvironmentProblem": "chaoskit.errors",
    "Event": "chaoskit.events",
    "ExitCode": "chaoskit.exit_codes",
    "Experiment": "chaoskit.experiment.models",
    "ExperimentError": "chaoskit.errors",
    "FaultApplied": "chaoskit.events",
    "FaultFailed": "chaoskit.events",
    "FaultRecord": "chaoskit.faults.timeline",
    "FaultRemoved": "chaoskit.events",
    "FaultRequested": "chaoskit.events",
    "FaultUpdated": "chaoskit.events",
    "FaultWindow": "chaoskit.planning",
    "GuardrailTripped": "chaoskit.events",
    "InputError": "chaoskit.errors",
    "LogMessage": "chaoskit.events",
    "PhaseChanged": "chaoskit.events",
    "Plan": "chaoskit.planning",
    "RunEnded": "chaoskit.events",
    "RunResult": "chaoskit.run.result",
    "RunStarted": "chaoskit.events",
    "SafetyRefusal": "chaoskit.errors",
    "SafetyReview": "chaoskit.run.safety",
    "Sample": "chaoskit.events",
    "StackConfigured": "chaoskit.events",
    "TargetFileError": "chaoskit.errors",
    "WorkerLost": "chaoskit.events",
    "load_experiment": "chaoskit._api",
    "plan": "chaoskit._api",
    "rehearse": "chaoskit._api",
    "resolve_target": "chaoskit._api",
    "review": "chaoskit._api",
}

__all__ = [
    "Abort",
    "AuditDone",
    "AuditResult",
    "ChaoskitError",
    "CheckJudged",
    "CheckResult",
    "EnvironmentProblem",
    "Event",
    "ExitCode",
    "Experiment",
    "ExperimentError",
    "FaultApplied",
    "FaultFailed",
    "FaultRecord",
    "FaultRemoved",
    "FaultRequested",
    "FaultUpdated",
    "FaultWindow",
    "GuardrailTripped",
    "InputError",
    "LogMessage",
    "PhaseChanged",
    "Plan",
    "RunEnded",
    "RunResult",
    "RunStarted",
    "SafetyRefusal",
    "SafetyReview",
    "Sample",
    "StackConfigured",
    "TargetFileError",
    "WorkerLost",
    "__version__",
    "load_experiment",
    "plan",
    "rehearse",
    "resolve_target",
    "review",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'chaoskit' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
