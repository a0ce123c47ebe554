"""Realistic run folders for report tests: 120 s of samples, 3 faults, checks, a failed audit.

``build_run_folder`` is a plain function so the e2e Chromium test can use it too.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest

from chaoskit.events import (
    CheckJudged,
    FaultApplied,
    FaultRemoved,
    FaultRequested,
    PhaseChanged,
    RunEnded,
    RunStarted,
    Sample,
)
from chaoskit.report.summary import (
    Audit,
    Check,
    CheckPhases,
    EnvironmentInfo,
    ExperimentInfo,
    FaultRecord,
    FaultWindow,
    Invariant,
    JournalWriter,
    LoadPhase,
    Plan,
    Summary,
    SummaryWriter,
)

STEPS = ("inventory", "lbs", "eligibility", "orders", "store", "rider", "coupon", "gateway")
FAULTS = (
    # name, kind, target, params, start, end
    ("stores-slow", "store_capacity", "store", {"capacity_per_s": 5}, 30.0, 60.0),
    ("coupon-lag", "coupon_lag", "coupon", {"lag": 1.5}, 50.0, 80.0),
    ("lbs-latency", "latency", "lbs", {"latency": 0.4, "jitter": 0.05}, 70.0, 90.0),
)


def _active(t: float, name: str) -> bool:
    return any(f[0] == name and f[4] <= t < f[5] for f in FAULTS)


def sample_metrics(t: float, rng: random.Random) -> dict[str, float | None]:
    """One second of a surge: the store fault hurts fulfilment, coupon lag delays credits."""
    target = 20 + 80 * min(1.0, t / 60)
    achieved = target * (0.97 + 0.03 * rng.random())
    store_hurt = _active(t, "stores-slow")
    coupon_hurt = _active(t, "coupon-lag")
    lbs_hurt = _active(t, "lbs-latency")
    failures = {f"failures.{s}": 0.0 for s in STEPS}
    if store_hurt:
        failures["failures.store"] = round(achieved * 0.35)
    if lbs_hurt:
        failures["failures.lbs"] = round(achieved * 0.05)
    failures["failures.inventory"] = float(rng.random() < 0.1)
    failed = sum(v for v in failures.values() if v)
    p50 = 40 + 5 * rng.random() + (400 if lbs_hurt else 0)
    busy = min(200.0, achieved * 1.6)
    metrics: dict[str, float | None] = {
        "target_load": round(target, 2),
        "achieved_rate": round(achieved, 2),
        "users": round(achieved * 0.3, 1),
        "intents": None,
        "orders_per_s": round(achieved - failed, 2),
        "fulfilment_rate": round(max(0.0, 1 - failed / achieved), 4),
        "fulfilment_time_p95_s": round(0.2 + (1.5 if store_hurt else 0) + rng.random() * 0.05, 3),
        "latency_p50_ms": round(p50, 1),
        "latency_p95_ms": round(p50 * 2.2, 1),
        "latency_p99_ms": round(p50 * 3.5, 1),
        "error_rate": round(failed / achieved, 4),
        "retry_amplification": round(1.0 + (0.4 if store_hurt else 0.02), 3),
        "coupon_delay_p95_s": round(0.05 + (1.6 if coupon_hurt else 0), 3),
        "coupon_pending": round(achieved * 1.5) if coupon_hurt else 0.0,
        "store_rejections": failures["failures.store"],
        "store_queue_depth": 95.0 if store_hurt else round(3 * rng.random(), 1),
        "store_paused_s": 0.0,
        "rider_wait_p95_s": 0.01,
        "riders_free": 200 - busy,
        "riders_busy": busy,
        **failures,
    }
    if t < 2:  # the first seconds have no latency yet: exercises empty cells
        metrics["latency_p99_ms"] = None
    # NaN appears when a window has no requests: the journal must still be valid JSON.
    metrics["rider_wait_p95_s"] = math.nan if t == 5 else metrics["rider_wait_p95_s"]
    return metrics


def make_summary(
    *,
    run_id: str = "20260101-120000-festival-surge",
    name: str = "festival-surge",
    seconds: int = 120,
    verdict: str = "violated",
    coupon_ok: bool = False,
) -> Summary:
    """A finished run's summary: hypothesis violated during the store fault, audit failed."""
    checks = []
    for phase, value, ok in (
        ("baseline", 0.99, True),
        ("during", 0.71, False),
        ("recovery", 0.97, True),
    ):
        checks.append(
            Check(
                kind="hypothesis",
                phase=phase,
                metric="fulfilment_rate",
                min=0.95,
                value=value,
                ok=ok,
                t=seconds,
            )
        )
        checks.append(
            Check(
                kind="hypothesis",
                phase=phase,
                metric="latency_p95_ms",
                max=1000,
                value=120.0,
                ok=True,
                t=seconds,
            )
        )
    checks.append(
        Check(
            kind="hypothesis",
            phase="during",
            metric="coupon_delay_p95_s",
            max=1.0,
            value=0.4 if coupon_ok else 1.65,
            ok=coupon_ok,
            t=seconds,
        )
    )
    checks.append(
        Check(
            kind="guardrail",
            phase=None,
            metric="error_rate",
            max=0.6,
            value=0.36,
            ok=True,
            t=seconds,
        )
    )
    faults = [
        FaultRecord(
            name=n,
            kind=k,
            target=tg,
            params=p,
            scheduled_at=s,
            requested_at=s + 0.01,
            applied_at=s + 0.03,
            removed_at=e + 0.02,
            apply_lag_ms=21.5,
            remove_lag_ms=12.0,
            status="removed",
        )
        for n, k, tg, p, s, e in FAULTS
    ]
    audit = Audit(
        status="failed",
        invariants={
            "lost_orders": Invariant(count=2, order_ids=["o-000101", "o-000207"]),
            "phantom_orders": Invariant(count=0),
            "double_credits": Invariant(count=1, order_ids=["o-000333"]),
            "missing_credits": Invariant(
                count=0 if coupon_ok else 3, order_ids=[] if coupon_ok else ["o-1", "o-2", "o-3"]
            ),
            "oversold": Invariant(count=0),
        },
    )
    overall = {
        "intents": 10_200.0,
        "orders": 8_850.0,
        "fulfilment_rate": 0.868,
        "latency_p50_ms": 48.0,
        "latency_p95_ms": 120.0,
        "latency_p99_ms": 480.0,
        "error_rate": 0.09,
        "retry_amplification": 1.12,
        "coupon_delay_p95_s": 0.4 if coupon_ok else 1.65,
        "coupon_pending": 0.0,
        "store_rejections": 880.0,
        "riders_free": 80.0,
        "lost_orders": 2.0,
        "double_credits": 1.0,
    }
    return Summary(
        run_id=run_id,
        experiment=ExperimentInfo(
            name=name,
            description="Viral surge with a store slowdown",
            file="experiments/festival-surge.yaml",
            seed=7,
            target="local",
        ),
        started_at=1_767_268_800.0,
        ended_at=1_767_268_800.0 + seconds,
        duration_s=float(seconds),
        status="completed",
        verdict=verdict,  # type: ignore[arg-type]
        exit_code={"held": 0, "violated": 1}.get(verdict, 3),
        environment=EnvironmentInfo(
            chaoskit_version="0.1.0",
            python="3.11.7",
            platform="Linux-x86_64",
            target_kind="local",
            workers=0,
        ),
        metrics=overall,
        phases={
            "baseline": {"fulfilment_rate": 0.99, "latency_p95_ms": 95.0},
            "during": {
                "fulfilment_rate": 0.71,
                "latency_p95_ms": 120.0,
                "coupon_delay_p95_s": overall["coupon_delay_p95_s"],
            },
            "recovery": {"fulfilment_rate": 0.97, "latency_p95_ms": 99.0},
        },
        checks=checks,
        faults=faults,
        audit=audit,
        abort=None,
        plan=Plan(
            duration_s=float(seconds),
            load_phases=[
                LoadPhase(start=0, end=60, label="ramp", **{"from": 20.0}, to=100.0),
                LoadPhase(start=60, end=seconds, label="hold", **{"from": 100.0}, to=100.0),
            ],
            fault_windows=[
                FaultWindow(name=n, kind=k, start=s, end=e) for n, k, _, _, s, e in FAULTS
            ],
            check_phases=CheckPhases(
                baseline=(0.0, 30.0), during=(30.0, 90.0), recovery=(90.0, float(seconds))
            ),
        ),
        errors=[],
    )


def build_run_folder(
    path: Path,
    *,
    seconds: int = 120,
    outcomes: int = 3000,
    seed: int = 7,
    summary: Summary | None = None,
) -> Path:
    """Write summary.json, events.jsonl and outcomes/ for a realistic finished run into ``path``."""
    path.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    summary = summary or make_summary(seconds=seconds)
    with JournalWriter(path) as journal:
        journal.handle(
            RunStarted(
                t=0.0,
                run_id=summary.run_id,
                experiment=summary.experiment.name,
                target="local",
                duration_s=float(seconds),
                plan={},
            )
        )
        journal.handle(PhaseChanged(t=0.0, phase="baseline", load_phase="ramp"))
        for t in range(seconds):
            for name, kind, target, params, start, end in FAULTS:
                if t == start:
                    journal.handle(
                        FaultRequested(t=t, name=name, kind=kind, target=target, params=params)
                    )
                    journal.handle(
                        FaultApplied(
                            t=t + 0.03,
                            name=name,
                            kind=kind,
                            target=target,
                            lag_ms=21.5,
                            ends_at=float(end),
                        )
                    )
                if t == end:
                    journal.handle(
                        FaultRemoved(t=t + 0.02, name=name, kind=kind, lag_ms=12.0, reason="ended")
                    )
            if t == 30:
                journal.handle(PhaseChanged(t=t, phase="during", load_phase="ramp"))
            if t == 90:
                journal.handle(PhaseChanged(t=t, phase="recovery", load_phase="hold"))
            journal.handle(Sample(t=float(t), metrics=sample_metrics(float(t), rng)))
        for check in summary.checks:
            fields = check.model_dump()
            fields.update(t=check.t or 0.0, phase=fields["phase"] or "")
            journal.handle(CheckJudged(**fields))
        journal.handle(
            RunEnded(
                t=float(seconds),
                status=summary.status,
                verdict=summary.verdict or "error",
                exit_code=summary.exit_code or 0,
            )
        )
    SummaryWriter(path).write(summary)
    if outcomes:
        folder = path / "outcomes"
        folder.mkdir(exist_ok=True)
        with (folder / "4242.jsonl").open("w") as stream:
            for i in range(outcomes):
                roll = rng.random()
                told, step, status = ("ok", None, 200)
                if roll < 0.08:
                    told, step, status = ("failed", "store", 429)
                elif roll < 0.1:
                    told, step, status = ("timeout", None, None)
                record = {
                    "intent": f"i-{i // 2}",
                    "order_id": f"o-{i:06d}",
                    "told": told,
                    "step": step,
                    "status": status,
                    "t": round(i * seconds / outcomes, 3),
                }
                stream.write(json.dumps(record) + "\n")
    return path


@pytest.fixture
def run_folder(tmp_path: Path) -> Path:
    """A finished, violated run with 120 s of samples."""
    return build_run_folder(tmp_path / "20260101-120000-festival-surge")
