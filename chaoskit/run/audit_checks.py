"""Checks on what the audit read from the ledgers after the drain: invariants and ledger KPIs."""

from __future__ import annotations

from collections.abc import Sequence

from chaoskit.experiment.models import Check
from chaoskit.observe.audit import AuditResult
from chaoskit.observe.metrics import AUDIT_METRICS, LEDGER_KPIS
from chaoskit.run.checks import PHASES, CheckResult

__all__ = ["judge_after_run"]


def judge_after_run(thresholds: Sequence[Check], audit: AuditResult | None) -> list[CheckResult]:
    """Hypothesis checks on audit metrics, then one audit check per computed invariant.

    A hypothesis on an invariant or KPI the audit could not compute is not judged (with the
    reason): never held. An invariant not computed gets no audit check (the audit notes why).
    """
    results: list[CheckResult] = []
    skipped = audit is None or audit.status == "skipped"
    audit_reason = "audit skipped" if audit is None else (audit.reason or "audit skipped")
    for threshold in thresholds:
        if threshold.metric in AUDIT_METRICS:
            # Invariants exist once, after the drain: judged on the whole run.
            invariant = None if audit is None else audit.invariants.get(threshold.metric)
            if skipped or invariant is None or invariant.skipped is not None:
                note = invariant.skipped if invariant and invariant.skipped else audit_reason
                results.append(_check(threshold, "overall", None, note))
            else:
                results.append(
                    _check(threshold, "overall", float(invariant.count), "audit after drain")
                )
        elif threshold.metric in LEDGER_KPIS:
            wanted = PHASES if threshold.phase == "all" else (threshold.phase,)
            for phase in wanted:
                if skipped or audit is None:
                    results.append(_check(threshold, phase, None, audit_reason))
                    continue
                if phase not in audit.free_orders:
                    if threshold.phase == "all":
                        continue  # "all" means every phase this run had
                    note = (
                        "phase did not happen"
                        if audit.free_orders
                        else audit.invariants["lost_entitlements"].skipped or "no data"
                    )
                    results.append(_check(threshold, phase, None, note))
                    continue
                value = audit.kpis(phase).get(threshold.metric)
                note = "ledgers after drain" if value is not None else "no data"
                if value is None and threshold.metric.endswith("_in_slo_rate"):
                    note = (
                        "no audit.credit_slo in the experiment"
                        if audit.credit_slo_s is None
                        else note
                    )
                results.append(_check(threshold, phase, value, note))
    if audit is not None and not skipped:
        for name, invariant in audit.invariants.items():
            if invariant.skipped is not None:
                # Not a check the run could judge, nor one it passed: the audit shows the note.
                continue
            count = float(invariant.count)
            results.append(
                CheckResult("audit", "overall", name, None, 0.0, count, invariant.count == 0)
            )
    return results


def _check(threshold: Check, phase: str, value: float | None, note: str) -> CheckResult:
    return CheckResult(
        "hypothesis",
        phase,
        threshold.metric,
        threshold.min,
        threshold.max,
        value,
        threshold.ok(value),
        note=note,
    )
