"""Does the demo tell the same story every time? Run it N times and compare the verdicts.

    python -m bench.bench_demo [--runs 5] [--target FILE] [--reports-dir DIR] [EXPERIMENT]

Not a timed test: each run is a full `chaoskit run` of the demo experiment (about 80 s on
the local stack), one after another, on whatever else the machine is doing (that is the
point: the demo must reach the same verdict on a busy 2-core machine). Prints one line per
run (exit code, status, verdict, failed checks, each guardrail's longest breach in seconds:
its margin against the guardrail's ``for``, whether a recovery phase was judged) and a
last line saying whether the runs agree.
Exit 0 when every run reached the same verdict with a recovery phase, 1 otherwise.
Writes bench/out/demo.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DEMO = REPO / "experiments" / "festival-surge.yaml"


def _chaoskit() -> list[str]:
    script = REPO / ".venv" / "bin" / "chaoskit"
    return [str(script)] if script.exists() else [sys.executable, "-m", "chaoskit"]


def _samples(run_dir: Path) -> list[dict[str, Any]]:
    journal = run_dir / "events.jsonl"
    if not journal.exists():
        return []
    found = []
    for line in journal.read_text(encoding="utf-8").splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict) and event.get("type") == "sample":
            found.append(event.get("metrics") or {})
    return found


def _longest_breach(samples: list[dict[str, Any]], guardrail: Any) -> int:
    """The longest run of one-second samples breaching ``guardrail`` (its margin: vs ``for``)."""
    longest = streak = 0
    for metrics in samples:
        value = metrics.get(guardrail.metric)
        breached = isinstance(value, int | float) and (
            (guardrail.max is not None and value > guardrail.max)
            or (guardrail.min is not None and value < guardrail.min)
        )
        streak = streak + 1 if breached else 0
        longest = max(longest, streak)
    return longest


def one_run(
    experiment: Path, *, target: str | None, reports: Path, guardrails: list[Any]
) -> dict[str, Any]:
    """One `chaoskit run` of ``experiment``; what it ended with."""
    reports.mkdir(parents=True, exist_ok=True)
    before = set(reports.iterdir())
    command = [
        *_chaoskit(),
        "run",
        str(experiment),
        "--no-dashboard",
        "--reports-dir",
        str(reports),
    ]
    if target:
        command += ["--target", target]
    started = time.monotonic()
    proc = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=REPO)
    took = time.monotonic() - started
    new = sorted(set(reports.iterdir()) - before)
    row: dict[str, Any] = {"exit": proc.returncode, "seconds": round(took, 1)}
    if not new:
        row.update(status="-", verdict="-", failed=[], recovery=False, guardrails={})
        row["error"] = (proc.stderr.strip().splitlines() or ["no run folder"])[-1]
        return row
    run_dir = new[-1]
    summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    row.update(
        run=run_dir.name,
        status=summary.get("status"),
        verdict=summary.get("verdict"),
        failed=[
            f"{c['kind']}:{c['metric']}[{c.get('phase') or '-'}]"
            for c in summary.get("checks", [])
            if c.get("ok") is False
        ],
        recovery=any(
            c.get("phase") == "recovery" and c.get("ok") is not None
            for c in summary.get("checks", [])
        ),
        guardrails={
            f"{g.metric} for {g.for_:g}s": _longest_breach(_samples(run_dir), g) for g in guardrails
        },
        errors=summary.get("errors", []),
    )
    return row


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_demo")
    parser.add_argument("experiment", nargs="?", default=str(DEMO))
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--target", default=None, help="target file (default: the experiment's)")
    parser.add_argument("--reports-dir", default=None, help="default: a temporary folder")
    args = parser.parse_args()
    if not 1 <= args.runs <= 50:
        parser.error("--runs: expected 1 to 50")
    reports = Path(args.reports_dir or tempfile.mkdtemp(prefix="chaoskit-demo-bench-"))
    from chaoskit import load_experiment

    guardrails = list(load_experiment(Path(args.experiment)).guardrails)
    rows = []
    for i in range(1, args.runs + 1):
        row = one_run(
            Path(args.experiment), target=args.target, reports=reports, guardrails=guardrails
        )
        rows.append(row)
        margins = ", ".join(f"{k}: longest breach {v} s" for k, v in row["guardrails"].items())
        print(
            f"run {i}/{args.runs}: exit {row['exit']} {row['status']}/{row['verdict']} "
            f"recovery={'yes' if row['recovery'] else 'no'} "
            f"guardrails ({margins or '-'}) "
            f"failed={','.join(row['failed']) or '-'} ({row['seconds']} s)"
            + (f" error: {row['error']}" if row.get("error") else ""),
            flush=True,
        )
    verdicts = Counter(str(r["verdict"]) for r in rows)
    stable = len(verdicts) == 1 and all(r["recovery"] and r["exit"] in (0, 1, 3) for r in rows)
    print(
        f"verdicts: {dict(verdicts)}; "
        + ("stable: every run told the same story" if stable else "NOT stable")
    )
    out = HERE / "out"
    out.mkdir(exist_ok=True)
    (out / "demo.json").write_text(json.dumps({"runs": rows, "stable": stable}, indent=2))
    return 0 if stable else 1


if __name__ == "__main__":
    sys.exit(main())
