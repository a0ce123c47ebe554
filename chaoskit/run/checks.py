"""The steady-state hypothesis and the guardrails: thresholds on named metrics.

A hypothesis is judged per phase (baseline, during faults, recovery, overall) from the
metric recomputed over that phase. A guardrail watches every sample and trips when its
metric stays out of bounds for its whole ``for`` window.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from chaoskit.events import CheckJudged
from chaoskit.experiment.models import Check, Guardrail

__all__ = ["CheckResult", "GuardrailWatch", "judge"]

PHASES = ("baseline", "during", "recovery", "overall")


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One judged check: a hypothesis in a phase, a guardrail, or an audit invariant."""

    kind: str  # hypothesis | guardrail | audit
    phase: str
    metric: str
    min: float | None
    max: float | None
    value: float | None
    ok: bool | None  # None: not judged (no data for that phase or metric)
    t: float | None = None
    note: str = ""

    def describe(self) -> str:
        """One line: what was checked, where, the value and the bound it was held to."""
        bounds = " and ".join(
            f"{op} {bound:g}"
            for op, bound in ((">=", self.min), ("<=", self.max))
            if bound is not None
        )
        shown = "no data" if self.value is None else f"{self.value:.4g}"
        where = self.phase or "-"
        note = f" [{self.note}]" if self.ok is None and self.note else ""
        return f"{self.kind} {self.metric} ({where}): {shown}, expected {bounds}{note}"

    def event(self, t: float) -> CheckJudged:
        """The check as the event that tells handlers its final judgement."""
        return CheckJudged(
            t=self.t if self.t is not None else t,
            kind=self.kind,
            phase=self.phase,
            metric=self.metric,
            min=self.min,
            max=self.max,
            value=self.value,
            ok=self.ok,
            note=self.note,
        )

    def to_json(self) -> dict[str, Any]:
        """The check's line in summary.json."""
        return {
            "kind": self.kind,
            "phase": self.phase,
            "metric": self.metric,
            "min": self.min,
            "max": self.max,
            "value": None if self.value is None else round(self.value, 6),
            "ok": self.ok,
            "t": None if self.t is None else round(self.t, 3),
            "note": self.note,
        }


def judge(
    thresholds: Sequence[Check],
    *,
    phases: dict[str, tuple[float, float] | None],
    window: Callable[[str, float, float], float | None],
    overall: dict[str, float | None],
) -> list[CheckResult]:
    """Judge every hypothesis threshold in the phases it names."""
    results: list[CheckResult] = []
    for threshold in thresholds:
        wanted = PHASES if threshold.phase == "all" else (threshold.phase,)
        for phase in wanted:
            if phase == "overall":
                value = overall.get(threshold.metric)
                note = ""
            else:
                span = phases.get(phase)
                if span is None or span[1] - span[0] < 1.0:
                    if threshold.phase == "all":
                        continue  # "all" means every phase this run had
                    results.append(
                        CheckResult(
                            "hypothesis",
                            phase,
                            threshold.metric,
                            threshold.min,
                            threshold.max,
                            None,
                            None,
                            note="phase did not happen",
                        )
                    )
                    continue
                value = window(threshold.metric, span[0], span[1])
                note = f"{span[0]:.0f}s-{span[1]:.0f}s"
            ok = threshold.ok(value)
            results.append(
                CheckResult(
                    "hypothesis",
                    phase,
                    threshold.metric,
                    threshold.min,
                    threshold.max,
                    value,
                    ok,
                    note=note if ok is not None else "no data",
                )
            )
    return results


class GuardrailWatch:
    """Trips when a guardrail's metric has been out of bounds for its whole ``for`` window."""

    def __init__(self, guardrails: Sequence[Guardrail]) -> None:
        self._guardrails = guardrails
        self._since: dict[int, float] = {}

    def observe(self, t: float, metrics: dict[str, float | None]) -> CheckResult | None:
        """Feed one sample; returns the breached guardrail, if one trips now."""
        for index, guardrail in enumerate(self._guardrails):
            ok = guardrail.ok(metrics.get(guardrail.metric))
            if ok is False:
                since = self._since.setdefault(index, t)
                if t - since >= guardrail.for_:
                    return CheckResult(
                        "guardrail",
                        "during",
                        guardrail.metric,
                        guardrail.min,
                        guardrail.max,
                        metrics.get(guardrail.metric),
                        False,
                        t=t,
                        note=f"out of bounds for {t - since:.0f}s",
                    )
            else:
                self._since.pop(index, None)
        return None

    def final(self, tripped: CheckResult | None) -> list[CheckResult]:
        """One result per guardrail for the summary: the tripped one failed, the others held."""
        results = []
        for guardrail in self._guardrails:
            if tripped is not None and tripped.metric == guardrail.metric:
                results.append(tripped)
            else:
                results.append(
                    CheckResult(
                        "guardrail",
                        "during",
                        guardrail.metric,
                        guardrail.min,
                        guardrail.max,
                        None,
                        True,
                    )
                )
        return results
