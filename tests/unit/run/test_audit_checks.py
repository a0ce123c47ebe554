"""Checks on audit invariants and ledger KPIs: judged when computed, never held when skipped."""

from __future__ import annotations

from chaoskit.experiment.models import Check
from chaoskit.observe.audit import AuditResult
from chaoskit.observe.ledger import FreeOrderRates, InvariantResult
from chaoskit.run.audit_checks import judge_after_run


def audit(**invariants: InvariantResult) -> AuditResult:
    return AuditResult(
        "failed",
        "invariants violated: lost_entitlements",
        dict(invariants),
        credit_slo_s=None,
        free_orders={
            "overall": FreeOrderRates(entitled=10, honoured=6),
            "during": FreeOrderRates(entitled=4, honoured=1),
        },
    )


def test_invariants_and_kpis_are_judged_per_phase_and_skips_are_not_held() -> None:
    result = audit(
        lost_entitlements=InvariantResult.of(["a.0", "b.0"]),
        late_credits=InvariantResult.skip("no audit.credit_slo in the experiment"),
    )
    checks = judge_after_run(
        [
            Check(metric="lost_entitlements", max=0.0),
            Check(metric="late_credits", max=0.0),
            Check(metric="free_orders_honoured_rate", min=0.99, phase="all"),
            Check(metric="free_orders_honoured_in_slo_rate", min=0.9, phase="overall"),
            Check(metric="free_orders_honoured_rate", min=0.5, phase="recovery"),
        ],
        result,
    )
    got = [(c.kind, c.phase, c.metric, c.value, c.ok, c.note) for c in checks]
    assert got == [
        ("hypothesis", "overall", "lost_entitlements", 2.0, False, "audit after drain"),
        (
            "hypothesis",
            "overall",
            "late_credits",
            None,
            None,
            "no audit.credit_slo in the experiment",
        ),
        ("hypothesis", "during", "free_orders_honoured_rate", 0.25, False, "ledgers after drain"),
        ("hypothesis", "overall", "free_orders_honoured_rate", 0.6, False, "ledgers after drain"),
        (
            "hypothesis",
            "overall",
            "free_orders_honoured_in_slo_rate",
            None,
            None,
            "no audit.credit_slo in the experiment",
        ),
        ("hypothesis", "recovery", "free_orders_honoured_rate", None, None, "phase did not happen"),
        ("audit", "overall", "lost_entitlements", 2.0, False, ""),
    ]  # late_credits was not computed: no audit line claims it passed


def test_a_skipped_audit_judges_nothing() -> None:
    skipped = AuditResult("skipped", "the target exposes no ledger for orders")
    checks = judge_after_run([Check(metric="free_orders_honoured_rate", min=0.9)], skipped)
    assert {(c.ok, c.note) for c in checks} == {(None, "the target exposes no ledger for orders")}
    assert judge_after_run([Check(metric="lost_entitlements", max=0)], None)[0].ok is None
