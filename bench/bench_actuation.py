"""Fault actuation lag and rollback time, beside the bare Toxiproxy API doing the same work.

    .venv/bin/python -m bench.bench_actuation [--faults 60]

1. Actuation lag (goal: p99 <= 100 ms): a real LocalStack on its own ports; chaoskit's fault
   timeline plays short back-to-back windows (latency toxics on each dependency and rider
   /admin changes); lag = server confirmation time - scheduled time, per fault. Baseline: the
   same toxic added and removed with one bare HTTP call each (httpx to Toxiproxy's REST API).
2. Rollback on Ctrl-C (goal: <= 1 s): `chaoskit run` with seven toxics (one per dependency)
   and two domain faults in place gets SIGINT; time from the signal until Toxiproxy has no
   toxic left and the riders setting is back. Baseline: removing seven toxics with bare calls.
Writes bench/out/actuation.json.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from chaoskit.events import Event
from chaoskit.faults.actuators import make_actuator
from chaoskit.faults.domain import AdminClient
from chaoskit.faults.timeline import FaultTimeline
from chaoskit.faults.toxiproxy import ToxiproxyClient
from chaoskit.planning import FaultWindow
from chaoskit.run.registry import RunRegistry
from chaoskit.stack.endpoints import DEPENDENCIES
from chaoskit.stack.local import LocalStack
from chaoskit.stack.target import load_target

BASE_PORT = 24400
OUT_FILE = Path(__file__).resolve().parent / "out" / "actuation.json"
REPO = Path(__file__).resolve().parents[1]


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def actuation(stack_home: Path, endpoints: Any, faults: int) -> dict[str, Any]:
    registry = RunRegistry(stack_home)
    record = registry.open(
        run_id="benchact", target="bench", toxiproxy_urls=list(endpoints.toxiproxy_urls)
    )
    admin = AdminClient(endpoints.services)
    clients: dict[str, ToxiproxyClient] = {}
    windows = []
    for i in range(faults):
        start = 0.5 + i * 0.25
        if i % 4 == 3:
            name, kind, target = f"riders{i}", "riders", "rider"
            params: dict[str, object] = {"available": 50 + i}
        else:
            dep = DEPENDENCIES[i % len(DEPENDENCIES)]
            name, kind, target = f"lat{i}", "latency", dep
            params = {"dependency": dep, "latency": 0.01, "jitter": 0.0}
        windows.append(
            FaultWindow(
                name=name,
                kind=kind,
                family="domain" if kind == "riders" else "network",
                target=target,
                start=start,
                end=start + 0.2,
                length=0.2,
                trigger=None,
                ramp=None,
                params=params,
            )
        )
    events: list[Event] = []
    t0 = time.monotonic()
    timeline = FaultTimeline(
        windows=windows,
        make_actuator=lambda spec: make_actuator(
            spec,
            run_id="benchact",
            endpoints=endpoints,
            admin=admin,
            record=record,
            client_for=lambda url: clients.setdefault(url, ToxiproxyClient(url)),
        ),
        emit=events.append,
        clock=lambda: time.monotonic() - t0,
    )
    timeline.start()
    deadline = time.monotonic() + 0.5 + faults * 0.25 + 2.0
    while time.monotonic() < deadline and any(
        s.status in ("pending", "active") for s in timeline.states
    ):
        time.sleep(0.05)
    timeline.stop()
    record.close()
    admin.close()
    apply = [s.apply_lag_ms for s in timeline.states if s.apply_lag_ms is not None]
    remove = [s.remove_lag_ms for s in timeline.states if s.remove_lag_ms is not None]
    # Baseline: the same toxic with one bare REST call each way.
    bare = []
    api = endpoints.toxiproxy_urls[0]
    with httpx.Client(base_url=api, trust_env=False) as http:
        for i in range(faults):
            body = {
                "name": f"bare{i}",
                "type": "latency",
                "stream": "downstream",
                "attributes": {"latency": 10},
            }
            began = time.perf_counter()
            http.post("/proxies/inventory/toxics", json=body).raise_for_status()
            bare.append((time.perf_counter() - began) * 1000)
            http.delete(f"/proxies/inventory/toxics/bare{i}").raise_for_status()
    return {
        "faults": len(apply),
        "apply_lag_ms": {
            "p50": statistics.median(apply),
            "p99": _pct(apply, 99),
            "max": max(apply),
        },
        "remove_lag_ms": {"p50": statistics.median(remove), "p99": _pct(remove, 99)},
        "bare_add_ms": {"p50": statistics.median(bare), "p99": _pct(bare, 99)},
        "failed": [s.window.spec.name for s in timeline.states if s.status != "removed"],
    }


ROLLBACK_EXPERIMENT = """
version: 1
name: bench-rollback
target: {target}
load:
  model: open
  shape: {{kind: constant, for: 60s, rate: 5}}
faults:
{toxics}
  - {{name: riders, kind: riders, available: 3, at: 0s}}
  - {{name: lag, kind: coupon_lag, lag: 100ms, at: 0s}}
"""


def rollback(
    target_file: Path, endpoints: Any, env: dict[str, str], workdir: Path, rounds: int
) -> dict[str, Any]:
    toxics = "\n".join(
        f"  - {{name: slow-{d}, kind: latency, dependency: {d}, latency: 5ms, at: 0s}}"
        for d in DEPENDENCIES
    )
    experiment = workdir / "rollback.yaml"
    experiment.write_text(ROLLBACK_EXPERIMENT.format(target=target_file, toxics=toxics))
    api = endpoints.toxiproxy_urls[0]
    rider_admin = f"{endpoints.services['rider']}/admin"
    riders_before = httpx.get(rider_admin, trust_env=False).json()["riders"]
    times, bare = [], []
    with httpx.Client(base_url=api, trust_env=False) as http:

        def toxic_count() -> int:
            return sum(len(p["toxics"]) for p in http.get("/proxies").json().values())

        for _ in range(rounds):
            proc = subprocess.Popen(
                [
                    str(REPO / ".venv" / "bin" / "chaoskit"),
                    "run",
                    str(experiment),
                    "--no-dashboard",
                    "--reports-dir",
                    str(workdir / "reports"),
                ],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and toxic_count() < len(DEPENDENCIES):
                time.sleep(0.05)
            time.sleep(1.0)
            sent = time.perf_counter()
            proc.send_signal(signal.SIGINT)
            while (
                toxic_count() > 0
                or httpx.get(rider_admin, trust_env=False).json()["riders"] != riders_before
            ):
                if time.perf_counter() - sent > 10:
                    break
                time.sleep(0.005)
            times.append((time.perf_counter() - sent) * 1000)
            proc.wait(timeout=30)
            # Baseline: seven toxics removed by hand, one bare DELETE each.
            for d in DEPENDENCIES:
                http.post(
                    f"/proxies/{d}/toxics",
                    json={"name": f"b-{d}", "type": "latency", "attributes": {"latency": 5}},
                )
            began = time.perf_counter()
            for d in DEPENDENCIES:
                http.delete(f"/proxies/{d}/toxics/b-{d}")
            bare.append((time.perf_counter() - began) * 1000)
    return {
        "rollback_ms": times,
        "rollback_ms_max": max(times),
        "bare_remove_7_ms": round(statistics.median(bare), 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_actuation")
    parser.add_argument("--faults", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="ck-bench-act-"))
    home = workdir / "home"
    target_file = workdir / "bench-act.yaml"
    target_file.write_text(f"version: 1\nkind: local\nname: bench-act\nbase_port: {BASE_PORT}\n")
    stack = LocalStack(load_target(str(target_file)), state_dir=home / "stacks" / "bench-act")
    stack.up()
    env = dict(os.environ, CHAOSKIT_HOME=str(home), NO_COLOR="1")
    try:
        endpoints = stack.endpoints()
        act = actuation(home, endpoints, args.faults)
        back = rollback(target_file, endpoints, env, workdir, args.rounds)
    finally:
        stack.down()
    OUT_FILE.parent.mkdir(exist_ok=True)
    OUT_FILE.write_text(json.dumps({"actuation": act, "rollback": back}, indent=2))
    table = Table(title="fault actuation and rollback (real Toxiproxy, real /admin)")
    for column in ("measure", "chaoskit", "bare API baseline", "goal"):
        table.add_column(column)
    a = act["apply_lag_ms"]
    table.add_row(
        f"apply lag, {act['faults']} faults (p50 / p99)",
        f"{a['p50']:.1f} / {a['p99']:.1f} ms",
        f"{act['bare_add_ms']['p50']:.1f} / {act['bare_add_ms']['p99']:.1f} ms",
        "p99 <= 100 ms",
    )
    r = act["remove_lag_ms"]
    table.add_row("remove lag (p50 / p99)", f"{r['p50']:.1f} / {r['p99']:.1f} ms", "", "")
    table.add_row(
        f"rollback after SIGINT, 7 toxics + 2 settings ({args.rounds} runs, max)",
        f"{back['rollback_ms_max']:.0f} ms",
        f"{back['bare_remove_7_ms']:.1f} ms (7 DELETEs)",
        "<= 1000 ms",
    )
    Console(width=110).print(table)
    ok = a["p99"] <= 100 and back["rollback_ms_max"] <= 1000 and not act["failed"]
    print(f"goals: {'met' if ok else 'MISSED'}")
    return 0 if not act["failed"] else 1


if __name__ == "__main__":
    sys.exit(main())
