"""`make bench`: every benchmark, each beside its baseline in one run, collected into RESULTS.md.

Each bench module prints its own table (ratios against its baseline) and writes
bench/out/<name>.json; this runner runs them one after another, so they never compete
for the machine's two cores, and writes what they printed to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHES = (
    "bench_chain",
    "bench_engine",
    "bench_actuation",
    "bench_report",
    "bench_docker",
    "bench_dashboard",
)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("names", nargs="*", help="benches to run (default: all)")
    parser.add_argument("--no-results", action="store_true", help="do not rewrite RESULTS.md")
    args = parser.parse_args()
    names = args.names or [n for n in BENCHES if (HERE / f"{n}.py").exists()]
    (HERE / "out").mkdir(exist_ok=True)
    sections: list[str] = []
    failed = 0
    for name in names:
        print(f"== {name}", flush=True)
        started = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-m", f"bench.{name}"],
            cwd=HERE.parent,
            capture_output=True,
            text=True,
            timeout=900,
        )
        took = time.monotonic() - started
        print(proc.stdout, end="")
        if proc.returncode != 0:
            failed += 1
            print(proc.stderr[-3000:], file=sys.stderr)
        body = proc.stdout.strip() or "(no output)"
        status = "ok" if proc.returncode == 0 else f"FAILED (exit {proc.returncode})"
        sections.append(f"## {name} — {status}, {took:.0f} s\n\n```\n{body}\n```\n")
    if not args.no_results:
        header = (
            "# Benchmark results\n\n"
            f"Last written by `python -m bench {' '.join(args.names) or '(all)'}` on"
            f" {datetime.date.today()} "
            f"({platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}).\n"
            "Each bench runs chaoskit beside its baseline in the same run; ratios are"
            " chaoskit / baseline.\n\n"
        )
        (HERE / "RESULTS.md").write_text(header + "\n".join(_merge_sections(names, sections)))
    return 1 if failed else 0


_KEPT = "## Analyses"  # hand-written sections from here on are kept across runs


def _merge_sections(names: list[str], sections: list[str]) -> list[str]:
    """The sections just run, in place of their old ones; benches not run keep theirs."""
    path = HERE / "RESULTS.md"
    old = path.read_text() if path.exists() else ""
    body, _, kept = old.partition(_KEPT)
    fresh = dict(zip(names, sections, strict=True))
    merged: list[str] = []
    for chunk in body.split("\n## ")[1:]:
        name = chunk.split(" ", 1)[0]
        if name in fresh:
            merged.append(fresh.pop(name))
        else:
            merged.append("## " + chunk.rstrip("\n") + "\n")
    merged += fresh.values()
    if kept:
        merged.append(_KEPT + kept)
    return merged


if __name__ == "__main__":
    raise SystemExit(main())
