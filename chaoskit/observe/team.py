"""What a run reads from the team's own systems: its Prometheus and its ledger, checked.

``team_observation`` turns an experiment and its target into the typed parts the runner
takes (``PrometheusSource``, ``TeamLedgerReader``) and refuses, before anything runs, a
metric no query defines, a host off the allow-list or a Prometheus header naming an unset
``${ENV_VAR}`` (exit 2). ``TeamObservation.check_before_load`` (the network calls: each
query once, each ledger source read once) is left to the caller, after a dry run has
returned and before any load or fault.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from chaoskit._secrets import env_refs
from chaoskit.errors import InputError, SafetyRefusal
from chaoskit.experiment.models import Experiment
from chaoskit.observe.metrics import METRICS
from chaoskit.observe.prometheus import PrometheusSource, check_queries, merge_sources
from chaoskit.observe.team_ledger import TeamLedgerReader, ledger_checks, ledger_hosts
from chaoskit.stack.target import AttachTarget, Target

__all__ = [
    "TeamObservation",
    "check_team_env",
    "team_checks",
    "team_env_vars",
    "team_hosts",
    "team_observation",
]


@dataclass(frozen=True, slots=True)
class TeamObservation:
    """The team's metrics source and ledger reader for one run (either may be absent)."""

    prometheus: PrometheusSource | None
    ledger: TeamLedgerReader | None
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ), repr=False)
    """Where header and DSN ``${ENV_VAR}``s are read, at request time only."""

    def check_before_load(self, run_id: str) -> None:
        """Before any load or fault: every PromQL query once, every ledger source read once
        for ``run_id``. Unreachable or refusing credentials: exit 4; wrong input: exit 2."""
        if self.prometheus is not None:
            check_queries(self.prometheus, environ=self.environ)
        if self.ledger is not None:
            self.ledger.check(run_id)


def _source(experiment: Experiment, target: Target) -> PrometheusSource | None:
    target_metrics = target.metrics if isinstance(target, AttachTarget) else None
    return merge_sources(target_metrics, experiment.metrics)


def team_hosts(
    experiment: Experiment, target: Target, environ: Mapping[str, str]
) -> dict[str, str]:
    """Role -> URL of the team's Prometheus and ledger endpoints (for the allow-list)."""
    hosts: dict[str, str] = {}
    source = _source(experiment, target)
    if source is not None:
        hosts["metrics.prometheus"] = source.url
    if isinstance(target, AttachTarget) and target.audit is not None:
        hosts.update(ledger_hosts(target.audit.ledger, environ))
    return hosts


def team_checks(experiment: Experiment, target: Target) -> dict[str, str]:
    """Key -> what ``check_before_load`` will check there (for the review; contacts nothing)."""
    checks: dict[str, str] = {}
    source = _source(experiment, target)
    if source is not None:
        count = len(source.queries)
        checks["metrics.prometheus"] = (
            f"{count} quer{'y' if count == 1 else 'ies'} run once at {source.url}"
        )
    if isinstance(target, AttachTarget) and target.audit is not None:
        checks.update(ledger_checks(target.audit.ledger))
    return checks


def team_env_vars(experiment: Experiment, target: Target) -> list[str]:
    """The environment variables the run's Prometheus headers name, in file order."""
    source = _source(experiment, target)
    names: list[str] = []
    for value in () if source is None else source.headers.values():
        names.extend(name for name in env_refs(value) if name not in names)
    return names


def check_team_env(experiment: Experiment, target: Target, environ: Mapping[str, str]) -> None:
    """Refuse (exit 2, before anything starts) a Prometheus header naming an unset variable."""
    source = _source(experiment, target)
    for header, value in {} if source is None else source.headers.items():
        for name in env_refs(value):
            if not environ.get(name):
                raise SafetyRefusal(
                    f"metrics.prometheus.headers.{header} needs environment variable {name}, "
                    "which is not set"
                )


def _used_metrics(experiment: Experiment) -> dict[str, str]:
    """Metric name -> where the experiment uses it first (hypothesis[0], guardrails[1] ...)."""
    used: dict[str, str] = {}
    for index, check in enumerate(experiment.hypothesis):
        used.setdefault(check.metric, f"hypothesis[{index}]")
    for index, guardrail in enumerate(experiment.guardrails):
        used.setdefault(guardrail.metric, f"guardrails[{index}]")
    for index, fault in enumerate(experiment.faults):
        if fault.when is not None:
            used.setdefault(fault.when.metric, f"faults[{index}].when")
    return used


def team_observation(
    experiment: Experiment,
    target: Target,
    *,
    allowed_hosts: tuple[str, ...],
    environ: Mapping[str, str] | None = None,
) -> TeamObservation:
    """The run's Prometheus source and ledger reader; refuses what cannot work."""
    env = dict(os.environ) if environ is None else dict(environ)
    check_team_env(experiment, target, env)
    source = _source(experiment, target)
    defined = set(source.names) if source is not None else set()
    # failures.<step> of the run's journey (the experiment's, else the target's) is a metric.
    journey = experiment.load.journey or getattr(target, "journey", None)
    if journey is not None:
        defined |= {f"failures.{step}" for step in journey.failure_steps()}
    for metric, where in _used_metrics(experiment).items():
        if metric not in METRICS and metric not in defined:
            if metric.startswith("failures."):
                raise InputError(
                    f"{where} uses metric {metric!r}, but the run's journey has no step "
                    f"{metric.removeprefix('failures.')!r}"
                )
            raise InputError(
                f"{where} uses metric {metric!r}, which no metrics.prometheus query of the "
                f"experiment or of target {target.name!r} defines"
            )
    allowed = {host.lower() for host in allowed_hosts}
    for role, url in team_hosts(experiment, target, env).items():
        host = (urlsplit(url).hostname or "").lower()
        if host not in allowed:
            raise SafetyRefusal(
                f"{role} host {host!r} is not in the allowed hosts of target {target.name!r} "
                f"({', '.join(sorted(allowed))})"
            )
    ledger = None
    if isinstance(target, AttachTarget) and target.audit is not None:
        ledger = TeamLedgerReader(ledger=target.audit.ledger, environ=env, error_at=target.error_at)
    return TeamObservation(prometheus=source, ledger=ledger, environ=env)
