"""The load engine against a cheap endpoint, beside bare Locust and wrk, in one run.

    .venv/bin/python -m bench.bench_engine [--duration 10] [--users 32] [--port 23080]

nginx (Debian's nginx-light) answers POST /orders with a small 200 JSON on 127.0.0.1:PORT,
so the server is not what is measured. Side by side, each for ``--duration`` seconds with
the same users: wrk (the machine's ceiling), bare ``locust --headless`` FastHttpUser with
``--processes 1`` and ``2``, chaoskit's engine (closed model) in one process and with
``workers: 2``, then the open model's rate accuracy (achieved / scheduled arrivals per
10 s window) at 30% of the 1-process capacity, and at ``--open-rate`` (5,000/s) with two
workers, with p99 latency from send and from schedule (coordinated omission).
Writes bench/out/engine.json, prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

from hdrh.histogram import HdrHistogram
from rich.console import Console
from rich.table import Table

from chaoskit.load.process import LoadProcess
from chaoskit.load.spec import LoadSpec
from chaoskit.load.tally import merge_deltas

BENCH_DIR = Path(__file__).resolve().parent
OUT_FILE = BENCH_DIR / "out" / "engine.json"
LUA_SCRIPT = BENCH_DIR / "orders.lua"
PORT = 23080  # --port moves it (parallel checkouts each use their own range)
NGINX = "/usr/sbin/nginx"
ANSWER = (
    '{"outcome":"ok","order_id":"bench","eligible":false,"coupon":"none",'
    '"store":"s1","rider_id":"r1","eta_min":20}'
)
LOCUSTFILE = textwrap.dedent(
    """
    import json
    from locust import FastHttpUser, constant, task

    TEXT = "help me buy a no-ice Boya Juexian within 15 min to the office"

    class Buyer(FastHttpUser):
        wait_time = constant(0)
        n = 0

        @task
        def order(self):
            Buyer.n += 1
            key = f"bench-{id(self)}-{Buyer.n}"
            body = {"intent_id": key, "order_id": key, "user_id": "u1", "text": TEXT}
            self.client.post("/orders", data=json.dumps(body),
                             headers={"Content-Type": "application/json"})
    """
)


def _nginx_config(workdir: Path, port: int) -> Path:
    conf = workdir / "nginx.conf"
    conf.write_text(
        textwrap.dedent(
            f"""
            daemon off;
            worker_processes 1;
            pid {workdir}/nginx.pid;
            error_log {workdir}/error.log warn;
            events {{ worker_connections 4096; }}
            http {{
                access_log off;
                client_body_temp_path {workdir}/body;
                proxy_temp_path {workdir}/proxy;
                fastcgi_temp_path {workdir}/fastcgi;
                uwsgi_temp_path {workdir}/uwsgi;
                scgi_temp_path {workdir}/scgi;
                keepalive_requests 10000000;
                server {{
                    listen 127.0.0.1:{port};
                    location /orders {{
                        default_type application/json;
                        return 200 '{ANSWER}';
                    }}
                }}
            }}
            """
        )
    )
    return conf


def start_nginx(workdir: Path, port: int) -> subprocess.Popen[bytes]:
    """nginx answering POST /orders on 127.0.0.1:``port``, configured in ``workdir``."""
    for _ in range(12):  # the lead may still be installing nginx-light
        if Path(NGINX).exists():
            break
        time.sleep(5)
    conf = _nginx_config(workdir, port)
    url = f"http://127.0.0.1:{port}"
    nginx = subprocess.Popen(
        [NGINX, "-p", str(workdir), "-c", str(conf), "-e", str(workdir / "error.log")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    import httpx

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            if httpx.post(f"{url}/orders", content=b"{}").status_code == 200:
                return nginx
        except httpx.HTTPError:
            time.sleep(0.1)
    nginx.kill()
    raise SystemExit(f"nginx did not answer on {url}: {(workdir / 'error.log').read_text()}")


def _child_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _measured(step: Any) -> dict[str, Any]:
    """Run ``step``; add the CPU seconds its processes used and requests per CPU second."""
    before = _child_cpu_s()
    result: dict[str, Any] = step()
    cpu = _child_cpu_s() - before
    result["cpu_s"] = round(cpu, 2)
    result["requests_per_cpu_s"] = round(result["requests"] / cpu, 1) if cpu else None
    return result


def _wrk(url: str, users: int, duration: int) -> dict[str, Any]:
    done = subprocess.run(
        ["wrk", "-t1", f"-c{users}", f"-d{duration}s", "-s", str(LUA_SCRIPT), url, "--", "0", "1"],
        capture_output=True,
        text=True,
        check=True,
    )
    line = next(x for x in done.stdout.splitlines() if x.startswith("CHAOSKIT_RESULT "))
    result = json.loads(line.split(" ", 1)[1])
    rps = result["requests"] / (result["duration_us"] / 1e6)
    return {"rps": round(rps, 1), "requests": result["requests"]}


def _locust(url: str, users: int, duration: int, processes: int, workdir: Path) -> dict[str, Any]:
    locustfile = workdir / "bench_locustfile.py"
    locustfile.write_text(LOCUSTFILE)
    command = [
        str(Path(sys.executable).parent / "locust"),
        "-f",
        str(locustfile),
        "--headless",
        "--host",
        url,
        "-u",
        str(users),
        "-r",
        str(users),
        "-t",
        f"{duration}s",
        "--processes",
        str(processes),
        "--only-summary",
        "--json-file",
        str(workdir / f"locust-{processes}"),
        "--skip-log",
        "--stop-timeout",
        "1",
    ]
    subprocess.run(command, capture_output=True, text=True, timeout=duration + 60, check=True)
    stats = json.loads((workdir / f"locust-{processes}.json").read_text())
    requests = sum(int(s["num_requests"]) for s in stats)
    start = min(float(s["start_time"]) for s in stats)
    end = max(float(s["last_request_timestamp"]) for s in stats)
    return {"rps": round(requests / max(end - start, 1e-9), 1), "requests": requests}


def _engine(spec: LoadSpec) -> list[dict[str, Any]]:
    engine = LoadProcess.start(spec)
    records = list(engine.ticks())
    code = engine.wait(timeout=30)
    if code != 0 or not records or records[-1].get("type") != "done":
        raise SystemExit(f"engine failed ({code}): {engine.stderr_tail()}")
    return [r for r in records if r["type"] == "tick"]


def _closed(url: str, users: int, duration: int, workers: int, workdir: Path) -> dict[str, Any]:
    spec = LoadSpec(
        run_id=f"bench-closed-{workers}-{int(time.time())}",
        run_dir=str(workdir / f"closed-{workers}"),
        gateway_url=url,
        t0=time.time() + (6.0 if workers else 1.5),
        duration_s=float(duration),
        model="closed",
        shape={"kind": "constant", "for": duration, "users": users},
        workers=workers,
    )
    ticks = _engine(spec)
    requests = sum(int(t["requests"]) for t in ticks)
    errors = sum(int(t["request_errors"]) for t in ticks)
    # Full seconds after the first one that saw load: slow worker start-up is not counted.
    full = [t for t in ticks if float(t["t"]).is_integer() and int(t["requests"]) > 0][1:]
    steady = sum(int(t["requests"]) for t in full) / max(1, len(full))
    return {"rps": round(steady, 1), "requests": requests, "errors": errors}


def _open(url: str, rate: float, duration: int, workdir: Path, workers: int = 0) -> dict[str, Any]:
    spec = LoadSpec(
        run_id=f"bench-open-{workers}-{int(time.time())}",
        run_dir=str(workdir / f"open-{workers}"),
        gateway_url=url,
        t0=time.time() + (6.0 if workers else 1.5),
        duration_s=float(duration),
        model="open",
        shape={"kind": "constant", "for": duration, "rate": rate},
        workers=workers,
    )
    ticks = _engine(spec)
    started = sum(int(t["intents_started"]) for t in ticks)
    full_seconds = [int(t["intents_started"]) for t in ticks if float(t["t"]).is_integer()]
    scheduled = rate * duration
    merged = merge_deltas(ticks)
    sent, due = (
        HdrHistogram.decode(merged[key]) for key in ("latency_hdr", "schedule_latency_hdr")
    )
    return {
        "rate": rate,
        "workers": workers,
        "scheduled": scheduled,
        "achieved": started,
        "accuracy": round(started / scheduled, 4),
        "dropped": sum(int(t["dropped"]) for t in ticks),
        "worst_second": round(min(full_seconds) / rate, 4) if full_seconds else None,
        "p99_from_send_ms": sent.get_value_at_percentile(99.0),
        "p99_from_schedule_ms": due.get_value_at_percentile(99.0),
    }


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_engine")
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--users", type=int, default=32)
    parser.add_argument("--port", type=int, default=PORT, help="nginx's port on 127.0.0.1")
    parser.add_argument("--open-rate", type=float, default=5000.0, help="two-worker open model")
    args = parser.parse_args()
    url = f"http://127.0.0.1:{args.port}"
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is missing (Debian package wrk)")
    console = Console()
    workdir = Path(tempfile.mkdtemp(prefix="chaoskit-bench-engine-"))
    nginx = start_nginx(workdir, args.port)
    results: dict[str, Any] = {}
    try:
        users, duration = args.users, args.duration
        steps = [
            ("wrk", lambda: _wrk(url, users, duration)),
            ("locust_p1", lambda: _locust(url, users, duration, 1, workdir)),
            ("chaoskit_w0", lambda: _closed(url, users, duration, 0, workdir)),
            ("locust_p2", lambda: _locust(url, users, duration, 2, workdir)),
            ("chaoskit_w2", lambda: _closed(url, users, duration, 2, workdir)),
        ]
        for name, step in steps:
            console.print(f"[dim]measuring {name} ...[/dim]")
            results[name] = _measured(step)
        # well below capacity: other work on a shared machine moves capacity a lot
        rate = min(1000.0, round(results["chaoskit_w0"]["rps"] * 0.3, -1))
        console.print(f"[dim]measuring open-model accuracy at {rate:.0f}/s ...[/dim]")
        results["open_accuracy"] = _open(url, rate, duration, workdir)
        console.print(f"[dim]measuring open model at {args.open_rate:.0f}/s, 2 workers ...[/dim]")
        results["open_2w"] = _open(url, args.open_rate, duration, workdir, workers=2)
    finally:
        nginx.terminate()
        nginx.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)

    ratios = {
        "chaoskit_w0_vs_locust_p1": results["chaoskit_w0"]["rps"] / results["locust_p1"]["rps"],
        "chaoskit_w2_vs_locust_p2": results["chaoskit_w2"]["rps"] / results["locust_p2"]["rps"],
        "chaoskit_w2_vs_w0": results["chaoskit_w2"]["rps"] / results["chaoskit_w0"]["rps"],
        "chaoskit_w0_vs_wrk": results["chaoskit_w0"]["rps"] / results["wrk"]["rps"],
        # CPU efficiency: robust when other work shares the machine
        "chaoskit_w0_vs_locust_p1_per_cpu": results["chaoskit_w0"]["requests_per_cpu_s"]
        / results["locust_p1"]["requests_per_cpu_s"],
    }
    goals = {
        "chaoskit_w0_vs_locust_p1": 1.0,
        "chaoskit_w2_vs_locust_p2": 0.95,
        "chaoskit_w2_vs_w0": 1.7,
    }
    table = Table(title=f"load engine, {args.users} users, {args.duration} s each, nginx")
    for column in ("measurement", "requests/s", "requests/CPU-s", "ratio", "goal"):
        table.add_column(column, justify="right" if column != "measurement" else "left")
    for name in ("wrk", "locust_p1", "chaoskit_w0", "locust_p2", "chaoskit_w2"):
        row = results[name]
        table.add_row(name, f"{row['rps']:.0f}", f"{row['requests_per_cpu_s'] or 0:.0f}", "", "")
    for name, value in ratios.items():
        goal = goals.get(name)
        mark = (
            "" if goal is None else ">= {:.2f} {}".format(goal, "ok" if value >= goal else "MISS")
        )
        table.add_row(name, "", "", f"{value:.3f}", mark)
    accuracy = results["open_accuracy"]
    table.add_row(
        f"open model {accuracy['rate']:.0f}/s achieved/scheduled",
        f"{accuracy['achieved']}/{accuracy['scheduled']:.0f}",
        "",
        f"{accuracy['accuracy']:.4f}",
        "within 2% " + ("ok" if abs(accuracy["accuracy"] - 1) <= 0.02 else "MISS"),
    )
    wide = results["open_2w"]
    table.add_row(
        f"open model {wide['rate']:.0f}/s, 2 workers, achieved/scheduled",
        f"{wide['achieved']}/{wide['scheduled']:.0f}",
        "",
        f"{wide['accuracy']:.4f}",
        "within 2% " + ("ok" if abs(wide["accuracy"] - 1) <= 0.02 else "MISS"),
    )
    table.add_row(
        "  p99 latency from send / from schedule (ms)",
        f"{wide['p99_from_send_ms']} / {wide['p99_from_schedule_ms']}",
        "",
        "",
        "",
    )
    console.print(table)
    OUT_FILE.parent.mkdir(parents=True, exist_ok=True)
    OUT_FILE.write_text(
        json.dumps(
            {
                "bench": "engine",
                "when": time.strftime("%Y-%m-%dT%H:%M:%S"),
                "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
                "users": args.users,
                "duration_s": args.duration,
                "results": results,
                "ratios": {k: round(v, 4) for k, v in ratios.items()},
                "goals": goals,
            },
            indent=2,
        )
    )
    console.print(f"[dim]wrote {OUT_FILE.relative_to(BENCH_DIR.parent)}[/dim]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
