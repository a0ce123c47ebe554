"""Metrics pipeline overhead: the load engine's requests/s with the dashboard and samplers on
vs off, in the same run (goal >= 0.95x).

    .venv/bin/python -m bench.bench_dashboard [--duration 10] [--users 32]

nginx (Debian's nginx-light) on 127.0.0.1 stands in for the gateway and for eight services'
/stats, so the server is never the bottleneck. Both legs run the same closed-model load
engine; the "on" leg also runs, in the driver process as `chaoskit run` does, the per-second
/stats sampler over eight endpoints, the metrics aggregator fed by every tick and stats
round, and the Rich dashboard redrawing 4x a second into a terminal-sized console. Legs
alternate (off, on, off, on) so drift in the machine's load hits both. Writes
bench/out/dashboard.json.
"""

from __future__ import annotations

import argparse
import io
import json
import resource
import statistics
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench.bench_engine import NGINX, PORT, URL, _start_nginx
from chaoskit.dashboard import Dashboard
from chaoskit.events import Sample
from chaoskit.load.process import LoadProcess
from chaoskit.load.spec import LoadSpec
from chaoskit.observe.aggregate import MetricsAggregator
from chaoskit.observe.sampler import StatsSampler
from chaoskit.stack.endpoints import SERVICES

OUT_FILE = Path(__file__).resolve().parent / "out" / "dashboard.json"
STATS = {
    "service": "x",
    "time": 0,
    "counters": {"rejected": 0, "paused_seconds": 0.0, "credits": 0},
    "gauges": {"queue_depth": 0, "riders_free": 10, "riders_busy": 0, "outbox_pending": 0},
    "histograms": {},
}


def _add_stats_location(workdir: Path) -> None:
    """Teach the bench nginx to answer GET /stats like a stack service."""
    conf = workdir / "nginx.conf"
    text = conf.read_text()
    body = json.dumps(STATS).replace("'", "")
    location = textwrap.dedent(
        f"""
                    location /stats {{
                        default_type application/json;
                        return 200 '{body}';
                    }}
        """
    )
    conf.write_text(text.replace("location /orders {", location + "location /orders {", 1))


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _leg(
    *, users: int, duration: int, workdir: Path, pipeline: bool, n: int
) -> tuple[float, float]:
    """(engine requests/s, driver CPU share of one core) for one leg."""
    cpu0, wall0 = _cpu_s(), time.monotonic()
    spec = LoadSpec(
        run_id=f"bench-dash-{n}-{int(time.time())}",
        run_dir=str(workdir / f"leg-{n}"),
        gateway_url=URL,
        t0=time.time() + 1.5,
        duration_s=float(duration),
        model="closed",
        shape={"kind": "constant", "for": duration, "users": users},
    )
    aggregator = MetricsAggregator()
    sampler = None
    dashboard = None
    if pipeline:
        console = Console(file=io.StringIO(), width=100, height=50, force_terminal=True)
        dashboard = Dashboard(console=console, name="bench", refresh_per_s=4.0)
        sampler = StatsSampler(
            {service: URL for service in SERVICES},
            on_sample=aggregator.add_stats,
            clock=lambda: time.time() - spec.t0,
        )
        sampler.start()
        dashboard.start()
    engine = LoadProcess.start(spec)
    ticks: list[dict[str, Any]] = []
    for record in engine.ticks():
        if record.get("type") != "tick":
            continue
        ticks.append(record)
        if pipeline:
            aggregator.add_tick(record)
            metrics = aggregator.sample(float(record["t"]))
            assert dashboard is not None
            dashboard.handle(Sample(t=float(record["t"]), metrics=metrics))
    engine.wait(timeout=30)
    if dashboard is not None:
        dashboard.stop()
    if sampler is not None:
        sampler.stop()
    cpu = (_cpu_s() - cpu0) / (time.monotonic() - wall0)
    full = [t for t in ticks if float(t["t"]).is_integer() and int(t["requests"]) > 0][1:]
    return sum(int(t["requests"]) for t in full) / max(1, len(full)), cpu


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_dashboard")
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--users", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="ck-bench-dash-"))
    if not Path(NGINX).exists():
        raise SystemExit("nginx is not installed: run `make bench` (it installs nginx-light)")
    nginx = _start_nginx(workdir)
    nginx.terminate()
    nginx.wait(timeout=10)
    _add_stats_location(workdir)
    nginx = _start_nginx_again(workdir)
    results: dict[str, list[float]] = {"off": [], "on": []}
    cpu: dict[str, list[float]] = {"off": [], "on": []}
    try:
        n = 0
        for _ in range(args.rounds):
            for label in ("off", "on"):
                n += 1
                rps, share = _leg(
                    users=args.users,
                    duration=args.duration,
                    workdir=workdir,
                    pipeline=label == "on",
                    n=n,
                )
                results[label].append(round(rps, 1))
                cpu[label].append(share)
    finally:
        nginx.terminate()
        nginx.wait(timeout=10)
    off, on = statistics.median(results["off"]), statistics.median(results["on"])
    ratio = on / off if off else 0.0
    OUT_FILE.parent.mkdir(exist_ok=True)
    cpu_off, cpu_on = statistics.median(cpu["off"]), statistics.median(cpu["on"])
    OUT_FILE.write_text(
        json.dumps(
            {
                "off_rps": results["off"],
                "on_rps": results["on"],
                "ratio": round(ratio, 3),
                "goal": 0.95,
                "driver_cpu_share_off": round(cpu_off, 4),
                "driver_cpu_share_on": round(cpu_on, 4),
            },
            indent=2,
        )
    )
    table = Table(title=f"metrics pipeline overhead, {args.users} users, {args.duration} s legs")
    for column in ("leg", "requests/s (each round)", "median", "driver CPU"):
        table.add_column(column)
    table.add_row(
        "engine alone", ", ".join(map(str, results["off"])), f"{off:,.0f}", f"{cpu_off:.1%}"
    )
    table.add_row(
        "+ samplers, aggregator, dashboard",
        ", ".join(map(str, results["on"])),
        f"{on:,.0f}",
        f"{cpu_on:.1%}",
    )
    Console(width=100).print(table)
    print(f"ratio on/off: {ratio:.3f}  (goal >= 0.95: {'met' if ratio >= 0.95 else 'MISSED'})")
    return 0


def _start_nginx_again(workdir: Path) -> Any:
    import subprocess

    import httpx

    conf = workdir / "nginx.conf"
    proc = subprocess.Popen(
        [NGINX, "-p", str(workdir), "-c", str(conf), "-e", str(workdir / "error.log")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{URL}/stats", trust_env=False).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"nginx did not serve /stats on port {PORT}")


if __name__ == "__main__":
    raise SystemExit(main())
