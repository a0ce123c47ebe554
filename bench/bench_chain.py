"""Throughput of the full order chain through Toxiproxy, beside the same chain without it.

    .venv/bin/python -m bench.bench_chain [--duration 10] [--connections 64]

Brings up a real LocalStack (toxiproxy-server + the eight services) on a free base port,
plus a second gateway whose upstreams are the services' own ports (no Toxiproxy). wrk
(Debian package ``wrk``, LuaJIT script ``bench/orders.lua``) drives both gateways:
orders/s at saturation, then p50/p99 at half the Toxiproxy chain's saturation rate, paced.
Domain limits (store capacity, riders, stock) are lifted so the chain itself is measured.
Writes bench/out/chain.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from chaoskit.stack.local import HOST, LocalStack, write_stack_config
from chaoskit.stack.progress import RichStartupProgress
from chaoskit.stack.state import read_state
from chaoskit.stack.target import LocalTarget, StackSettings

BENCH_DIR = Path(__file__).resolve().parent
LUA_SCRIPT = BENCH_DIR / "orders.lua"
OUT_FILE = BENCH_DIR / "out" / "chain.json"
DIRECT_GATEWAY_OFFSET = 9  # base_port + 9: free in the stack's layout

# Lift the domain limits: the benchmark measures the chain, not the store's intake.
BENCH_SETTINGS = StackSettings(
    gateway={"coupon_mode": "async", "retries": "backoff", "circuit_breaker": True},
    inventory={"stock_per_item": 10**11},
    store={"capacity_per_s": 1_000_000.0, "queue": 1_000_000},
    rider={"riders": 200_000},
)


@dataclass(frozen=True)
class Measurement:
    """One wrk run against one gateway."""

    label: str
    target_rate: float | None  # None = as fast as it answers (saturation)
    duration_s: float
    requests: int
    orders_ok: int
    failed: int  # HTTP status >= 400 plus socket errors
    orders_per_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    wrk_cpu_share: float  # wrk's CPU seconds / wall seconds (1.0 = one core busy)


def _free_base_port() -> int:
    """A base port in 20000-29999 whose whole layout (base..base+74) is free right now."""
    rng = random.Random()
    for _ in range(50):
        base = rng.randrange(200, 299) * 100
        if all(_port_free(base + offset) for offset in range(75)):
            return base
    raise SystemExit("no free base port found in 20000-29999")


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
        except OSError:
            return False
    return True


def _find_wrk(console: Console) -> str:
    """wrk on PATH; it may still be being installed, so wait up to a minute."""
    deadline = time.monotonic() + 60.0
    while True:
        found = shutil.which("wrk")
        if found:
            return found
        if time.monotonic() > deadline:
            raise SystemExit(
                "wrk not found: install the Debian package `wrk` (apt-get install wrk)"
            )
        console.print("waiting for wrk to be installed ...")
        time.sleep(5.0)


def _run_wrk(
    wrk: str,
    url: str,
    *,
    label: str,
    duration_s: float,
    connections: int,
    rate: float | None,
    tag: str,
) -> Measurement:
    threads = 1  # one wrk thread drives thousands of req/s; a second would steal a core
    argv = [
        wrk,
        f"-t{threads}",
        f"-c{connections}",
        f"-d{duration_s:g}s",
        "--timeout",
        "5s",
        "-s",
        str(LUA_SCRIPT),
        f"{url}/orders",
        "--",
        str(rate or 0),
        str(threads),
        tag,
    ]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=duration_s + 30)
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"wrk failed ({done.returncode}): {done.stderr.strip()}")
    line = next((x for x in done.stdout.splitlines() if x.startswith("CHAOSKIT_RESULT ")), None)
    if line is None:
        raise SystemExit(f"wrk printed no result:\n{done.stdout}\n{done.stderr}")
    result = json.loads(line.removeprefix("CHAOSKIT_RESULT "))
    seconds = result["duration_us"] / 1e6
    failed = int(result["status_errors"]) + int(result["socket_errors"])
    ok = int(result["requests"]) - int(result["status_errors"])
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Measurement(
        label=label,
        target_rate=rate,
        duration_s=round(seconds, 3),
        requests=int(result["requests"]),
        orders_ok=ok,
        failed=failed,
        orders_per_s=round(ok / seconds, 1),
        p50_ms=result["p50_us"] / 1000.0,
        p90_ms=result["p90_us"] / 1000.0,
        p99_ms=result["p99_us"] / 1000.0,
        max_ms=result["max_us"] / 1000.0,
        wrk_cpu_share=round(cpu / wall, 3),
    )


def _cpu_seconds(pids: dict[str, int]) -> dict[str, float]:
    """utime + stime of each process so far, from /proc/<pid>/stat."""
    ticks = os.sysconf("SC_CLK_TCK")
    seconds = {}
    for name, pid in pids.items():
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        seconds[name] = (int(fields[11]) + int(fields[12])) / ticks
    return seconds


def _start_direct_gateway(stack: LocalStack, workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    """A second gateway calling the services on their own ports: the chain without Toxiproxy."""
    layout = stack.layout
    port = layout.base_port + DIRECT_GATEWAY_OFFSET
    ports = dict(layout.services)
    ports["gateway"] = port
    config = workdir / "direct.json"
    write_stack_config(
        config,
        name="bench-direct",
        host=HOST,
        ports=ports,
        upstreams={
            dep: f"http://{HOST}:{p}" for dep, p in layout.services.items() if dep != "gateway"
        },
        data_dir=workdir / "direct-data",
        seed=stack.target.seed,
        settings=stack.target.settings.by_service(),
    )
    (workdir / "direct-data").mkdir(exist_ok=True)
    log = (workdir / "direct-gateway.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "orderstack", "gateway", "--config", str(config)],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    log.close()
    url = f"http://{HOST}:{port}"
    deadline = time.monotonic() + 20.0
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(
                f"direct gateway exited: {(workdir / 'direct-gateway.log').read_text()}"
            )
        try:
            if httpx.get(f"{url}/healthz", timeout=1.0, trust_env=False).status_code == 200:
                return process, url
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    process.kill()
    process.wait()
    raise SystemExit("direct gateway did not answer /healthz in 20 s")


def _check_one_order(url: str) -> None:
    body = {"order_id": f"probe-{time.time_ns()}", "user_id": "probe", "text": "buy a Boya Juexian"}
    response = httpx.post(f"{url}/orders", json=body, timeout=10.0, trust_env=False)
    if response.status_code != 200:
        raise SystemExit(f"probe order through {url} failed: {response.text}")


def _table(results: list[Measurement], ratios: dict[str, float]) -> Table:
    table = Table(title="order chain, wrk -t1 (proxied = through Toxiproxy)")
    for column in ("run", "rate", "orders/s", "failed", "p50 ms", "p90 ms", "p99 ms", "wrk cpu"):
        table.add_column(column, justify="right" if column != "run" else "left")
    for m in results:
        table.add_row(
            m.label,
            "max" if m.target_rate is None else f"{m.target_rate:.0f}",
            f"{m.orders_per_s:.0f}",
            str(m.failed),
            f"{m.p50_ms:.2f}",
            f"{m.p90_ms:.2f}",
            f"{m.p99_ms:.2f}",
            f"{m.wrk_cpu_share:.0%}",
        )
    caption = ", ".join(f"{name} {value:.2f}" for name, value in ratios.items())
    table.caption = f"proxied / direct: {caption}"
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per measurement")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up per gateway")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections")
    parser.add_argument("--out", type=Path, default=OUT_FILE)
    parser.add_argument(
        "--base-port", type=int, default=None, help="the stack's base port (default: a free one)"
    )
    args = parser.parse_args(argv)
    console = Console()
    # Other work on the machine skews every figure: keep the load it started under.
    load_before = os.getloadavg()
    wrk = _find_wrk(console)
    base_port = args.base_port or _free_base_port()
    tag = f"b{time.strftime('%H%M%S')}"
    cpu_share: dict[str, dict[str, float]] = {}
    cpu_ms_per_order: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="chaoskit-bench-") as tmp:
        workdir = Path(tmp)
        target = LocalTarget(
            version=1, kind="local", name="bench", base_port=base_port, settings=BENCH_SETTINGS
        )
        stack = LocalStack(target, state_dir=workdir / "stack")
        with RichStartupProgress(console) as progress:
            endpoints = stack.up(progress=progress)
        direct_process: subprocess.Popen[bytes] | None = None
        try:
            direct_process, direct_url = _start_direct_gateway(stack, workdir)
            via_url = endpoints.gateway_url
            for url in (via_url, direct_url):
                _check_one_order(url)
                _run_wrk(
                    wrk,
                    url,
                    label="warmup",
                    duration_s=args.warmup,
                    connections=args.connections,
                    rate=None,
                    tag=f"{tag}w{url[-5:]}",
                )
            results: list[Measurement] = []
            state = read_state(stack.state_dir)
            pids = {p.name: p.pid for p in state.processes} if state else {}
            pids["direct gateway"] = direct_process.pid
            for label, url in (("proxied max", via_url), ("direct max", direct_url)):
                console.print(f"measuring {label} for {args.duration:g} s ...")
                cpu_before, started = _cpu_seconds(pids), time.monotonic()
                results.append(
                    _run_wrk(
                        wrk,
                        url,
                        label=label,
                        duration_s=args.duration,
                        connections=args.connections,
                        rate=None,
                        tag=f"{tag}{len(results)}",
                    )
                )
                # Which process is busy at saturation: the bottleneck, on a quiet machine.
                wall, cpu_after = time.monotonic() - started, _cpu_seconds(pids)
                cpu_share[label] = {
                    name: round((cpu_after[name] - cpu_before[name]) / wall, 3)
                    for name in cpu_after
                    if name in cpu_before
                }
                # CPU per order does not depend on what else the machine runs: the ceiling
                # of a machine with N free cores is N / (CPU seconds per order).
                orders = max(1.0, results[-1].orders_per_s * wall)
                cpu_ms_per_order[label] = {
                    name: round((cpu_after[name] - cpu_before[name]) * 1000.0 / orders, 3)
                    for name in cpu_after
                    if name in cpu_before
                }
            half = results[0].orders_per_s / 2.0
            for label, url in (("proxied half", via_url), ("direct half", direct_url)):
                console.print(f"measuring {label} ({half:.0f}/s) for {args.duration:g} s ...")
                results.append(
                    _run_wrk(
                        wrk,
                        url,
                        label=label,
                        duration_s=args.duration,
                        connections=args.connections,
                        rate=half,
                        tag=f"{tag}{len(results)}",
                    )
                )
        finally:
            if direct_process is not None:
                direct_process.terminate()
                try:
                    direct_process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    direct_process.kill()
                    direct_process.wait()
            stack.down()

    via_sat, direct_sat, via_half, direct_half = results
    ratios = {
        "saturation orders/s": via_sat.orders_per_s / direct_sat.orders_per_s,
        "p50 at half rate": via_half.p50_ms / direct_half.p50_ms,
        "p99 at half rate": via_half.p99_ms / direct_half.p99_ms,
    }
    report: dict[str, Any] = {
        "benchmark": "chain",
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "loadavg_1_5_15_at_start": [round(x, 2) for x in load_before],
        },
        "load_generator": f"wrk -t1 -c{args.connections} with bench/orders.lua",
        "duration_s": args.duration,
        "goal_orders_per_s": 1000,
        "measurements": [asdict(m) for m in results],
        "ratios_toxiproxy_over_direct": {k: round(v, 3) for k, v in ratios.items()},
        "toxiproxy_saturation_orders_per_s": via_sat.orders_per_s,
        "half_rate": round(half, 1),
        "cpu_share_at_saturation": cpu_share,
        "cpu_ms_per_order_at_saturation": cpu_ms_per_order,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    console.print(_table(results, ratios))
    busiest = sorted(cpu_share.get("proxied max", {}).items(), key=lambda kv: -kv[1])[:4]
    console.print("busiest at saturation: " + ", ".join(f"{n} {v:.0%}" for n, v in busiest))
    for label, per in cpu_ms_per_order.items():
        total = sum(per.values())
        cores = os.cpu_count() or 1
        console.print(
            f"{label}: CPU ms per order "
            + ", ".join(f"{n} {v:.2f}" for n, v in sorted(per.items(), key=lambda kv: -kv[1]))
            + f"; total {total:.2f} (+ wrk) -> ceiling on {cores} free cores"
            f" ~{cores * 1000.0 / total:.0f} orders/s"
        )
    shown = args.out.resolve()
    if shown.is_relative_to(BENCH_DIR.parent):  # no machine paths in what RESULTS.md quotes
        shown = shown.relative_to(BENCH_DIR.parent)
    console.print(f"written to {shown} (load average at start: {load_before[0]:.2f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
