"""Hypothesis judging per phase and guardrail tripping, on known numbers."""

from __future__ import annotations

from chaoskit.experiment.models import Check, Guardrail
from chaoskit.run.checks import GuardrailWatch, judge


def test_threshold_bounds_and_missing_data() -> None:
    rate = Check(metric="fulfilment_rate", min=0.9)
    assert rate.ok(0.95) is True
    assert rate.ok(0.9) is True
    assert rate.ok(0.89) is False
    assert rate.ok(None) is None
    band = Check(metric="latency_p95_ms", min=1, max=500)
    assert band.ok(0.5) is False and band.ok(501) is False and band.ok(250) is True
    assert band.describe() == "latency_p95_ms >= 1 and <= 500"


def test_judge_uses_each_phase_window_and_skips_phases_that_did_not_happen() -> None:
    asked: list[tuple[str, float, float]] = []
    values = {"baseline": 0.99, "during": 0.6}

    def window(metric: str, t0: float, t1: float) -> float | None:
        asked.append((metric, t0, t1))
        return values["baseline" if t0 == 0 else "during"]

    results = judge(
        [Check(metric="fulfilment_rate", min=0.9)],
        phases={"baseline": (0.0, 10.0), "during": (10.0, 30.0), "recovery": None},
        window=window,
        overall={"fulfilment_rate": 0.7},
    )
    by_phase = {r.phase: r for r in results}
    assert set(by_phase) == {"baseline", "during", "overall"}  # recovery did not happen
    assert by_phase["baseline"].ok is True
    assert by_phase["during"].ok is False and by_phase["during"].value == 0.6
    assert by_phase["overall"].ok is False
    assert asked == [("fulfilment_rate", 0.0, 10.0), ("fulfilment_rate", 10.0, 30.0)]


def test_judge_reports_a_named_phase_that_did_not_happen_as_not_judged() -> None:
    results = judge(
        [Check(metric="error_rate", max=0.1, phase="recovery")],
        phases={"baseline": (0.0, 40.0), "during": None, "recovery": None},
        window=lambda m, a, b: 0.0,
        overall={},
    )
    assert len(results) == 1
    assert results[0].ok is None and results[0].note == "phase did not happen"


def test_guardrail_trips_only_after_its_whole_window() -> None:
    watch = GuardrailWatch(
        [Guardrail.model_validate({"metric": "error_rate", "max": 0.5, "for": 3.0})]
    )
    assert watch.observe(1.0, {"error_rate": 0.9}) is None
    assert watch.observe(2.0, {"error_rate": 0.9}) is None
    assert watch.observe(3.0, {"error_rate": 0.1}) is None  # back in bounds: the clock resets
    assert watch.observe(4.0, {"error_rate": 0.9}) is None
    assert watch.observe(6.0, {"error_rate": 0.9}) is None
    tripped = watch.observe(7.0, {"error_rate": 0.95})
    assert tripped is not None
    assert tripped.metric == "error_rate" and tripped.ok is False and tripped.t == 7.0
    final = watch.final(tripped)
    assert [c.ok for c in final] == [False]


def test_guardrail_ignores_missing_metrics() -> None:
    watch = GuardrailWatch([Guardrail(metric="coupon_pending", max=10)])
    for t in range(1, 10):
        assert watch.observe(float(t), {"coupon_pending": None}) is None
    assert [c.ok for c in watch.final(None)] == [True]
