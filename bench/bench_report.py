"""Report generation for a long run with one million request events: time and peak memory.

    python -m bench.bench_report [--requests 1000000] [--seconds 10800]

Builds a run folder (3 h of per-second samples in events.jsonl, 1,000,000 HTTP attempts in
outcomes/*.jsonl in the load engine's format, faults, checks, audit), then runs
``write_reports`` for every format in a fresh subprocess so the peak RSS is the report's
alone. Goal: <= 10 s and <= 300 MB. Writes bench/out/report.json.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from chaoskit.events import FaultApplied, FaultRemoved, RunStarted, Sample
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

GOAL_SECONDS = 10.0
GOAL_MB = 300.0
OUT = Path(__file__).with_name("out") / "report.json"
STEPS = ("parse", "inventory", "lbs", "eligibility", "orders", "store", "rider", "coupon")
ENGINE_PROCESSES = 4


def _sample(t: int, seconds: int, rng: random.Random) -> dict[str, float | None]:
    surge = min(800.0, 20 * 2 ** (t / (seconds / 6)))
    hurt = 0.3 if seconds * 0.4 <= t < seconds * 0.6 else 0.01
    failures = {f"failures.{s}": round(surge * hurt * rng.random() / 4) for s in STEPS}
    busy = min(200.0, surge / 3)
    return {
        "target_load": round(surge, 2),
        "achieved_rate": round(surge * 0.98, 2),
        "users": round(surge * 0.4, 1),
        "intents": float(t * 100),
        "orders": float(t * 90),
        "orders_per_s": round(surge * (1 - hurt), 2),
        "fulfilment_rate": round(1 - hurt * rng.random(), 4),
        "fulfilment_time_p95_s": round(0.3 + hurt * 5 * rng.random(), 3),
        "latency_p50_ms": round(30 + 20 * rng.random(), 1),
        "latency_p95_ms": round(120 + 300 * hurt + 50 * rng.random(), 1),
        "latency_p99_ms": round(400 + 900 * hurt + 100 * rng.random(), 1),
        "error_rate": round(hurt * rng.random(), 4),
        "retry_amplification": round(1 + hurt, 3),
        "coupon_delay_p95_s": round(0.05 + 3 * hurt * rng.random(), 3),
        "coupon_pending": float(round(surge * hurt * 10)),
        "store_rejections": float(round(surge * hurt)),
        "store_paused_s": 0.0,
        "store_queue_depth": round(100 * hurt * rng.random(), 1),
        "rider_wait_p95_s": round(0.01 + hurt, 3),
        "riders_free": 200 - busy,
        "riders_busy": busy,
        **failures,
    }


def build(folder: Path, *, requests: int, seconds: int, seed: int = 1) -> None:
    """Write a long run's folder: summary.json, events.jsonl, outcomes/<pid>.jsonl."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    windows = [
        ("stores-slow", "store_capacity", seconds * 0.4, seconds * 0.6),
        ("coupon-down", "down", seconds * 0.5, seconds * 0.55),
        ("riders-short", "riders", seconds * 0.7, seconds * 0.8),
    ]
    with JournalWriter(folder) as journal:
        journal.handle(
            RunStarted(
                t=0.0, run_id="bench", experiment="bench", target="local", duration_s=0, plan={}
            )
        )
        for t in range(seconds):
            for name, kind, start, end in windows:
                if t == math.floor(start):
                    journal.handle(
                        FaultApplied(
                            t=t, name=name, kind=kind, target="coupon", lag_ms=0, ends_at=end
                        )
                    )
                if t == math.floor(end):
                    journal.handle(
                        FaultRemoved(t=t, name=name, kind=kind, reason="ended", lag_ms=0)
                    )
            journal.handle(Sample(t=float(t), metrics=_sample(t, seconds, rng)))
    outcomes = folder / "outcomes"
    outcomes.mkdir(exist_ok=True)
    per_file = requests // ENGINE_PROCESSES
    for process in range(ENGINE_PROCESSES):
        with (outcomes / f"{10_000 + process}.jsonl").open("w") as stream:
            lines = []
            for i in range(per_file):
                roll = rng.random()
                if roll < 0.9:
                    told, step, status = "ok", None, 200
                elif roll < 0.98:
                    told, step, status = "failed", rng.choice(STEPS), 503
                else:
                    told, step, status = "timeout", None, None
                record = {
                    "intent": f"{process}-{i // 2}",
                    "order_id": f"o-{process}-{i}",
                    "told": told,
                    "step": step,
                    "status": status,
                    "t": round(i * seconds / per_file, 3),
                }
                lines.append(json.dumps(record, separators=(",", ":")))
                if len(lines) == 10_000:
                    stream.write("\n".join(lines) + "\n")
                    lines.clear()
            if lines:
                stream.write("\n".join(lines) + "\n")
    ids = [f"o-0-{i}" for i in range(50)]
    summary = Summary(
        run_id="bench",
        experiment=ExperimentInfo(name="festival-surge-bench", seed=seed),
        started_at=time.time() - seconds,
        ended_at=time.time(),
        duration_s=float(seconds),
        status="completed",
        verdict="violated",
        exit_code=1,
        environment=EnvironmentInfo(
            chaoskit_version="0.1.0",
            python=sys.version.split()[0],
            platform=sys.platform,
            target_kind="local",
            workers=ENGINE_PROCESSES,
        ),  # fmt: skip
        metrics={"fulfilment_rate": 0.93, "intents": float(requests), "error_rate": 0.08},
        phases={"baseline": {"fulfilment_rate": 0.99}, "during": {"fulfilment_rate": 0.81}},
        checks=[
            Check(
                kind="hypothesis",
                phase="during",
                metric="fulfilment_rate",
                min=0.95,
                value=0.81,
                ok=False,
            ),
            Check(kind="guardrail", metric="error_rate", max=0.5, value=0.3, ok=True),
        ],  # fmt: skip
        faults=[
            FaultRecord(name=n, kind=k, applied_at=s, removed_at=e, status="removed")
            for n, k, s, e in windows
        ],
        audit=Audit(
            status="failed",
            invariants={
                "lost_orders": Invariant(count=1234, order_ids=ids),
                "double_credits": Invariant(count=0),
            },
        ),
        plan=Plan(
            duration_s=float(seconds),
            load_phases=[
                LoadPhase(start=0, end=seconds, label="viral", **{"from": 20.0}, to=800.0)
            ],
            fault_windows=[FaultWindow(name=n, kind=k, start=s, end=e) for n, k, s, e in windows],
            check_phases=CheckPhases(
                baseline=(0.0, seconds * 0.4),
                during=(seconds * 0.4, seconds * 0.8),
                recovery=(seconds * 0.8, float(seconds)),
            ),
        ),
    )
    SummaryWriter(folder).write(summary)


def _child(folder: Path) -> None:
    from chaoskit.report import FORMATS, write_reports

    start = time.perf_counter()
    result = write_reports(folder, FORMATS)
    seconds = time.perf_counter() - start
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(
        json.dumps(
            {
                "seconds": round(seconds, 3),
                "peak_rss_mb": round(peak_kb / 1024, 1),
                "errors": result.errors,
                "files": {k: p.stat().st_size for k, p in result.paths.items()},
            }
        )
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=int, default=10_800)
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(args.child)
        return 0
    with tempfile.TemporaryDirectory(prefix="chaoskit-bench-report-") as tmp:
        folder = Path(tmp) / "run"
        t0 = time.perf_counter()
        build(folder, requests=args.requests, seconds=args.seconds)
        build_s = time.perf_counter() - t0
        sizes = {
            "events_jsonl_mb": round((folder / "events.jsonl").stat().st_size / 2**20, 1),
            "outcomes_mb": round(
                sum(p.stat().st_size for p in (folder / "outcomes").iterdir()) / 2**20, 1
            ),
        }
        child = subprocess.run(
            [sys.executable, "-m", "bench.bench_report", "--child", str(folder)],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if child.returncode != 0:
            print(child.stderr, file=sys.stderr)
            return 1
        measured = json.loads(child.stdout.strip().splitlines()[-1])
    report = {
        "benchmark": "report generation (write_reports, all formats)",
        "requests": args.requests,
        "samples": args.seconds,
        "input": sizes,
        "build_input_s": round(build_s, 1),
        **measured,
        "goal": {"seconds": GOAL_SECONDS, "peak_rss_mb": GOAL_MB},
        "met": measured["seconds"] <= GOAL_SECONDS
        and measured["peak_rss_mb"] <= GOAL_MB
        and not measured["errors"],
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return 0 if report["met"] else 1


if __name__ == "__main__":
    sys.exit(main())
