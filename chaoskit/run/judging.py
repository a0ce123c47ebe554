"""Judging a finished run: its check phases, every check's final result, and the verdict.

Pure functions over the plan's checks and the run's numbers, so each rule is tested on
known values (tests/unit/run/test_judging.py) rather than through whole runs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from chaoskit.exit_codes import Verdict
from chaoskit.experiment.models import Check, Guardrail
from chaoskit.observe.audit import AuditResult
from chaoskit.observe.metrics import is_after_run
from chaoskit.run.audit_checks import judge_after_run
from chaoskit.run.checks import CheckResult, GuardrailWatch, judge
from chaoskit.run.result import Status

__all__ = ["check_phases", "final_checks", "unjudged", "verdict_of"]

Span = tuple[float, float]


def check_phases(fault_spans: Sequence[Span], end: float) -> dict[str, Span | None]:
    """Baseline, during and recovery from when faults were really in place (not planned).

    A phase shorter than a second is not a phase: there is nothing to judge in it.
    """
    if not fault_spans:
        return {"baseline": (0.0, end), "during": None, "recovery": None}
    first = min(s for s, _ in fault_spans)
    last = max(e for _, e in fault_spans)
    return {
        "baseline": (0.0, first) if first >= 1.0 else None,
        "during": (first, min(last, end)),
        "recovery": (last, end) if end - last >= 1.0 else None,
    }


def final_checks(
    *,
    hypothesis: Sequence[Check],
    guardrails: Sequence[Guardrail],
    phases: dict[str, Span | None],
    window: Callable[[str, float, float], float | None],
    overall: dict[str, float | None],
    audit: AuditResult | None,
    tripped: CheckResult | None,
) -> list[CheckResult]:
    """Every check's final result: hypotheses per phase, audit-metric hypotheses on the
    whole run, guardrails, and one line per audit invariant."""
    checks = judge(
        [h for h in hypothesis if not is_after_run(h.metric)],
        phases=phases,
        window=window,
        overall=overall,
    )
    # Audit invariants and ledger KPIs exist once, after the drain.
    after_run = judge_after_run([h for h in hypothesis if is_after_run(h.metric)], audit)
    checks.extend(c for c in after_run if c.kind == "hypothesis")
    checks.extend(GuardrailWatch(guardrails).final(tripped))
    checks.extend(c for c in after_run if c.kind == "audit")
    return checks


def unjudged(checks: Sequence[CheckResult], hypothesis: Sequence[Check]) -> list[CheckResult]:
    """Hypothesis checks that could not be judged: never a pass. (An audit invariant the
    target gives no ledger for is skipped with a note; only a hypothesis on it is a gap.)

    A hypothesis for phase "all" means every phase the run had data in: a short phase
    without data is no gap as long as the metric was judged in another phase.
    """
    every_phase = {h.metric for h in hypothesis if h.phase == "all"}
    judged = {c.metric for c in checks if c.ok is not None}
    return [
        c
        for c in checks
        if c.kind == "hypothesis"
        and c.ok is None
        and not (c.metric in every_phase and c.metric in judged and c.note == "no data")
    ]


def verdict_of(
    status: Status, checks: Sequence[CheckResult], hypothesis: Sequence[Check] = ()
) -> Verdict:
    """The run's verdict: a failed check is a violation (a finding, whatever else happened);
    a check that could not be judged is never a pass, so without a violation it is an error."""
    if status == "error":
        return "error"
    if status in ("aborted", "interrupted"):
        return "aborted"
    if any(c.ok is False for c in checks if c.kind in ("hypothesis", "audit")):
        return "violated"
    if unjudged(checks, hypothesis):
        return "error"
    return "held"
