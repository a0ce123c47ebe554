"""The docker backend: `up` time with cached images, and its order-chain throughput beside local.

    .venv/bin/python -m bench.bench_docker [--duration 10] [--connections 64]

Builds (or reuses) the offline images, then times a DockerStack's `up` until every service
answers /healthz (goal <= 20 s). Brings a LocalStack up beside it (same settings, domain
limits lifted) and drives both gateways with wrk (``bench/orders.lua``) to saturation, one
after the other: docker / local is the ratio. Writes bench/out/docker.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench.bench_chain import (
    BENCH_SETTINGS,
    Measurement,
    _check_one_order,
    _find_wrk,
    _free_base_port,
    _run_wrk,
)
from chaoskit.stack.docker import DockerStack
from chaoskit.stack.images import ImageBuilder, image_names
from chaoskit.stack.local import LocalStack
from chaoskit.stack.target import DockerTarget, LocalTarget

BENCH_DIR = Path(__file__).resolve().parent
OUT_FILE = BENCH_DIR / "out" / "docker.json"
UP_GOAL_S = 20.0


def _table(up_s: float, down_s: float, results: list[Measurement], ratio: float) -> Table:
    table = Table(title="docker backend (offline images, cached)")
    for column in ("run", "orders/s", "failed", "p50 ms", "p99 ms", "wrk cpu"):
        table.add_column(column, justify="left" if column == "run" else "right")
    for m in results:
        table.add_row(
            m.label,
            f"{m.orders_per_s:.0f}",
            str(m.failed),
            f"{m.p50_ms:.2f}",
            f"{m.p99_ms:.2f}",
            f"{m.wrk_cpu_share:.0%}",
        )
    verdict = "meets" if up_s <= UP_GOAL_S else "MISSES"
    table.caption = (
        f"up to all healthy {up_s:.1f} s ({verdict} the {UP_GOAL_S:g} s goal), down {down_s:.1f} s;"
        f" docker / local orders/s {ratio:.2f}"
    )
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per measurement")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up per gateway")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections")
    parser.add_argument("--out", type=Path, default=OUT_FILE)
    args = parser.parse_args(argv)
    console = Console()
    load_before = os.getloadavg()
    wrk = _find_wrk(console)

    started = time.monotonic()
    builds = ImageBuilder(console=console).build(image_names(offline=True))
    build_s = time.monotonic() - started

    docker_base = _free_base_port()
    local_base = _free_base_port()
    while local_base == docker_base:
        local_base = _free_base_port()
    tag = f"d{time.strftime('%H%M%S')}"
    results: list[Measurement] = []
    with tempfile.TemporaryDirectory(prefix="chaoskit-bench-docker-") as tmp:
        workdir = Path(tmp)
        docker_target = DockerTarget(
            version=1,
            kind="docker",
            name="benchdocker",
            base_port=docker_base,
            settings=BENCH_SETTINGS,
        )
        local_target = LocalTarget(
            version=1,
            kind="local",
            name="benchlocal",
            base_port=local_base,
            settings=BENCH_SETTINGS,
        )
        docker_stack = DockerStack(docker_target, state_dir=workdir / "docker")
        local_stack = LocalStack(local_target, state_dir=workdir / "local")
        docker_stack.down()  # leftovers of an interrupted earlier bench
        console.print(f"docker stack up on base_port {docker_base} ...")
        started = time.monotonic()
        docker_endpoints = docker_stack.up()
        up_s = time.monotonic() - started
        try:
            local_endpoints = local_stack.up()
            try:
                runs = (
                    ("local", local_endpoints.gateway_url),
                    ("docker", docker_endpoints.gateway_url),
                )
                for label, url in runs:
                    _check_one_order(url)
                    _run_wrk(
                        wrk,
                        url,
                        label="warmup",
                        duration_s=args.warmup,
                        connections=args.connections,
                        rate=None,
                        tag=f"{tag}w{label}",
                    )
                for label, url in runs:
                    console.print(f"measuring {label} max for {args.duration:g} s ...")
                    results.append(
                        _run_wrk(
                            wrk,
                            url,
                            label=f"{label} max",
                            duration_s=args.duration,
                            connections=args.connections,
                            rate=None,
                            tag=f"{tag}{label}",
                        )
                    )
            finally:
                local_stack.down()
        finally:
            started = time.monotonic()
            docker_stack.down()
            down_s = time.monotonic() - started

    local_max, docker_max = results
    ratio = docker_max.orders_per_s / local_max.orders_per_s
    report: dict[str, Any] = {
        "benchmark": "docker",
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "loadavg_1_5_15_at_start": [round(x, 2) for x in load_before],
        },
        "images": {
            "seconds": round(build_s, 2),
            "actions": {o.image: o.action for o in builds},
        },
        "up_to_healthy_s": round(up_s, 2),
        "up_goal_s": UP_GOAL_S,
        "up_meets_goal": up_s <= UP_GOAL_S,
        "down_s": round(down_s, 2),
        "load_generator": f"wrk -t1 -c{args.connections} with bench/orders.lua",
        "duration_s": args.duration,
        "measurements": [asdict(m) for m in results],
        "ratio_docker_over_local_orders_per_s": round(ratio, 3),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    console.print(_table(up_s, down_s, results, ratio))
    shown = args.out.resolve()
    if shown.is_relative_to(BENCH_DIR.parent):  # no machine paths in what RESULTS.md quotes
        shown = shown.relative_to(BENCH_DIR.parent)
    console.print(f"written to {shown} (load average at start: {load_before[0]:.2f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
