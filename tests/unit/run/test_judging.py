"""The runner's judging on known numbers: phases from real fault spans, final checks, and a
verdict that is never "held" when a check could not be judged."""

from __future__ import annotations

import pytest

from chaoskit.experiment.models import Check, Guardrail
from chaoskit.observe.audit import AuditResult, InvariantResult
from chaoskit.run.checks import CheckResult
from chaoskit.run.judging import check_phases, final_checks, verdict_of


def test_phases_follow_the_faults_as_they_really_happened() -> None:
    assert check_phases([], 30.0) == {"baseline": (0.0, 30.0), "during": None, "recovery": None}
    assert check_phases([(10.2, 20.0), (12.0, 25.5)], 40.0) == {
        "baseline": (0.0, 10.2),
        "during": (10.2, 25.5),
        "recovery": (25.5, 40.0),
    }
    # Under a second is not a phase; a fault still on at the end has no recovery.
    assert check_phases([(0.5, 40.0)], 40.0) == {
        "baseline": None,
        "during": (0.5, 40.0),
        "recovery": None,
    }


def values(metric: str, start: float, end: float) -> float | None:
    return {0.0: 0.99, 10.0: 0.5, 20.0: 0.97}[start] if metric == "fulfilment_rate" else None


PHASES = {"baseline": (0.0, 10.0), "during": (10.0, 20.0), "recovery": (20.0, 30.0)}


def audit(**counts: int) -> AuditResult:
    invariants = {name: InvariantResult(count=n) for name, n in counts.items()}
    failed = any(counts.values())
    return AuditResult(status="failed" if failed else "passed", invariants=invariants)


def test_final_checks_judge_phases_audit_metrics_guardrails_and_invariants() -> None:
    checks = final_checks(
        hypothesis=[
            Check(metric="fulfilment_rate", min=0.9),
            Check(metric="lost_orders", max=0),
        ],
        guardrails=[Guardrail(metric="error_rate", max=0.5)],
        phases=PHASES,
        window=values,
        overall={"fulfilment_rate": 0.82},
        audit=audit(lost_orders=2, phantom_orders=0),
        tripped=None,
    )
    got = {(c.kind, c.phase, c.metric): (c.value, c.ok) for c in checks}
    assert got[("hypothesis", "baseline", "fulfilment_rate")] == (0.99, True)
    assert got[("hypothesis", "during", "fulfilment_rate")] == (0.5, False)
    assert got[("hypothesis", "recovery", "fulfilment_rate")] == (0.97, True)
    assert got[("hypothesis", "overall", "fulfilment_rate")] == (0.82, False)
    assert got[("hypothesis", "overall", "lost_orders")] == (2.0, False)
    assert got[("audit", "overall", "lost_orders")] == (2.0, False)
    assert got[("audit", "overall", "phantom_orders")] == (0.0, True)
    assert got[("guardrail", "during", "error_rate")] == (None, True)
    assert verdict_of("completed", checks) == "violated"


def test_an_audit_hypothesis_without_an_audit_is_not_judged_and_the_verdict_is_an_error() -> None:
    checks = final_checks(
        hypothesis=[Check(metric="fulfilment_rate", min=0.9), Check(metric="lost_orders", max=0)],
        guardrails=[],
        phases={"baseline": (0.0, 30.0), "during": None, "recovery": None},
        window=lambda metric, start, end: 0.99,
        overall={"fulfilment_rate": 0.99},
        audit=None,
        tripped=None,
    )
    lost = next(c for c in checks if c.metric == "lost_orders")
    assert lost.ok is None and lost.note == "audit skipped"
    assert verdict_of("completed", checks) == "error"  # never "held" on an unjudged check


def test_a_tripped_guardrail_is_the_failed_guardrail_line() -> None:
    tripped = CheckResult("guardrail", "during", "error_rate", None, 0.5, 0.9, False, t=12.0)
    checks = final_checks(
        hypothesis=[],
        guardrails=[Guardrail(metric="error_rate", max=0.5), Guardrail(metric="orders", min=1)],
        phases={"baseline": (0.0, 12.0), "during": None, "recovery": None},
        window=lambda metric, start, end: None,
        overall={},
        audit=None,
        tripped=tripped,
    )
    assert checks == [tripped, CheckResult("guardrail", "during", "orders", 1, None, None, True)]


@pytest.mark.parametrize(
    ("status", "oks", "verdict"),
    [
        ("completed", [True, True], "held"),
        ("completed", [True, False], "violated"),
        ("completed", [True, None], "error"),
        ("completed", [False, None], "violated"),  # a violation is a finding either way
        ("aborted", [True], "aborted"),
        ("interrupted", [True], "aborted"),
        ("error", [True], "error"),
    ],
)
def test_verdict(status: str, oks: list[bool | None], verdict: str) -> None:
    checks = [CheckResult("hypothesis", "overall", "m", None, 1.0, 0.0, ok) for ok in oks]
    assert verdict_of(status, checks) == verdict  # type: ignore[arg-type]
