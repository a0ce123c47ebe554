"""Instructions per request of the load engine and of bare Locust, counted by callgrind.

    .venv/bin/python -m bench.callgrind_engine [--port 23080] [--window 20] [--users 32]

Wall-clock requests/s moves with whatever else the machine runs; instruction counts do not.
Each variant runs in its own ``valgrind --tool=callgrind`` process against nginx (see
``bench_engine``): it imports and warms up, zeroes callgrind's counters, runs ``--window``
seconds of load, dumps, and reports the requests it made in between, so start-up and
import costs are not counted. Variants:

- ``locust``: bare Locust ``FastHttpUser``, local runner, its stats on (the baseline);
- ``chaoskit``: the engine's ``LoadGenerator`` (closed model) as ``python -m chaoskit.load``
  runs it;
- ``chaoskit-<part>...``: the same with parts switched off (ablation), to attribute the
  difference: ``outcomes`` (the audit's per-attempt log), ``tally``, ``intent`` (building
  the seeded intent). (``stats``, Locust's runner listening to request events, only
  applies to the engine before its journeys sent through ``chaoskit.load.wire``.)

``--native`` runs the same children without valgrind and reports CPU time (user + system,
from ``getrusage``) per request over the window instead: what the instructions cost on the
machine (kernel time, cache misses), beside what callgrind counts. Writes
bench/out/callgrind_engine.json (``--native``: native_engine.json) and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
OUT_FILE = BENCH_DIR / "out" / "callgrind_engine.json"
PARTS = ("stats", "outcomes", "tally", "intent")
_NATIVE_MODE = False


# -- the child: runs under valgrind ------------------------------------------------------------


_NATIVE: list[tuple[float, float]] = []  # --native: (user, system) CPU seconds at each mark


def _callgrind(command: str) -> None:
    if _NATIVE_MODE:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        _NATIVE.append((usage.ru_utime, usage.ru_stime))
        return
    subprocess.run(
        ["callgrind_control", command, str(os.getpid())],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=True,
    )


def _measure_window(count: Any, window_s: float, warmup_s: float) -> dict[str, Any]:
    import gevent

    gevent.sleep(warmup_s)
    before = count()
    _callgrind("-z")
    after_zero = count()
    gevent.sleep(window_s)
    before_dump = count()
    _callgrind("-d")
    after_dump = count()
    # callgrind acts on the command between our two reads: take the middle of each pair.
    result: dict[str, Any] = {
        "requests": ((before_dump + after_dump) - (before + after_zero)) / 2.0
    }
    if _NATIVE_MODE:
        (user0, sys0), (user1, sys1) = _NATIVE[-2:]
        result["user_s"], result["system_s"] = user1 - user0, sys1 - sys0
    return result


def _child_locust(url: str, users: int, window_s: float, warmup_s: float) -> dict[str, Any]:
    import gevent
    from locust import FastHttpUser, constant, task
    from locust.env import Environment

    text = "help me buy a no-ice Boya Juexian within 15 min to the office"

    class Buyer(FastHttpUser):
        wait_time = constant(0)
        host = url
        n = 0

        @task
        def order(self) -> None:
            Buyer.n += 1
            key = f"bench-{id(self)}-{Buyer.n}"
            body = {"intent_id": key, "order_id": key, "user_id": "u1", "text": text}
            self.client.post(
                "/orders", data=json.dumps(body), headers={"Content-Type": "application/json"}
            )

    environment = Environment(user_classes=[Buyer], host=url)
    runner = environment.create_local_runner()
    runner.start(users, spawn_rate=users * 1000)
    result = _measure_window(lambda: environment.stats.total.num_requests, window_s, warmup_s)
    runner.quit()
    gevent.sleep(0.1)
    return result


def _child_chaoskit(
    url: str, users: int, window_s: float, warmup_s: float, off: set[str]
) -> dict[str, Any]:
    from locust.env import Environment

    import chaoskit.load.engine as engine_module
    import chaoskit.load.intents as intents_module
    from chaoskit.load.engine import LoadGenerator, OutcomeLog
    from chaoskit.load.engine_run import build_curve
    from chaoskit.load.spec import LoadSpec
    from chaoskit.load.tally import Tally

    if "outcomes" in off:
        OutcomeLog.attempt = lambda *args, **kwargs: None  # type: ignore[method-assign]
    if "tally" in off:
        Tally.request = lambda *args, **kwargs: None  # type: ignore[method-assign]
        Tally.fulfilled = lambda *args, **kwargs: None  # type: ignore[method-assign]
    if "intent" in off:
        made = intents_module.make_intent(0, "c0.0", run_id="cg")
        setattr(engine_module, "make_intent", lambda *args, **kwargs: made)  # noqa: B010
    run_dir = Path(tempfile.mkdtemp(prefix="chaoskit-callgrind-"))
    total = warmup_s + window_s + 3600.0
    spec = LoadSpec(
        run_id="cg",
        run_dir=str(run_dir),
        gateway_url=url,
        t0=time.time(),
        duration_s=total,
        model="closed",
        shape={"kind": "constant", "for": total, "users": users},
    )
    import inspect

    if "environment" in inspect.signature(LoadGenerator).parameters:  # the engine before
        environment = Environment(user_classes=[])
        if "stats" not in off:
            environment.create_local_runner()  # Locust's stats listen to request events
        old_engine: Any = LoadGenerator
        generator = old_engine(spec=spec, curve=build_curve(spec), environment=environment)
    else:
        generator = LoadGenerator(spec=spec, curve=build_curve(spec))
    counted = {"requests": 0}
    original_request = Tally.request

    def counting_request(self: Tally, *args: Any, **kwargs: Any) -> None:
        counted["requests"] += 1
        original_request(self, *args, **kwargs)

    Tally.request = counting_request  # type: ignore[method-assign]
    generator.start()
    result = _measure_window(lambda: counted["requests"], window_s, warmup_s)
    generator.stop()
    generator.close()
    shutil.rmtree(run_dir, ignore_errors=True)
    return result


def _child(args: argparse.Namespace) -> int:
    global _NATIVE_MODE
    _NATIVE_MODE = bool(args.native)
    variant = str(args.child)
    if variant == "locust":
        result = _child_locust(args.url, args.users, args.window, args.warmup)
    else:
        off = set(variant.split("-")[1:])
        result = _child_chaoskit(args.url, args.users, args.window, args.warmup, off)
    print("CALLGRIND_RESULT " + json.dumps(result), flush=True)
    return 0


# -- the parent ---------------------------------------------------------------------------------


def _total_ir(path: Path) -> int:
    for line in path.read_text().splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    raise SystemExit(f"no totals in {path.name}")


def _run_variant(variant: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    out = workdir / f"{variant}.cg"
    grind = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"]
    command = [
        *([] if args.native else grind),
        sys.executable,
        "-m",
        "bench.callgrind_engine",
        "--child",
        variant,
        "--url",
        f"http://127.0.0.1:{args.port}",
        "--users",
        str(args.users),
        "--window",
        str(args.window),
        "--warmup",
        str(args.warmup),
        *(["--native"] if args.native else []),
    ]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=1800, cwd=BENCH_DIR.parent
    )
    (workdir / f"{variant}.stderr").write_text(done.stderr)
    line = next((x for x in done.stdout.splitlines() if x.startswith("CALLGRIND_RESULT ")), None)
    if line is None:
        raise SystemExit(f"{variant} failed: {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(line.split(" ", 1)[1])
    if args.native:
        requests = max(1.0, result["requests"])
        result["cpu_us_per_request"] = round(
            1e6 * (result["user_s"] + result["system_s"]) / requests, 1
        )
        result["user_us_per_request"] = round(1e6 * result["user_s"] / requests, 1)
        return result
    dumps = sorted(workdir.glob(f"{variant}.cg.*"))  # .1 is the window's dump
    window_ir = _total_ir(dumps[0])
    result["instructions"] = window_ir
    result["instructions_per_request"] = round(window_ir / max(1.0, result["requests"]))
    return result


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.callgrind_engine")
    parser.add_argument("--port", type=int, default=23080)
    parser.add_argument("--users", type=int, default=32)
    parser.add_argument("--window", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=8.0)
    parser.add_argument("--variants", default="locust,chaoskit")
    parser.add_argument("--child", default=None)
    parser.add_argument("--url", default=None)
    parser.add_argument(
        "--native",
        action="store_true",
        help="no valgrind: CPU time (user + system) per request over the window instead",
    )
    args = parser.parse_args()
    if args.child:
        return _child(args)

    from rich.console import Console
    from rich.table import Table

    from bench.bench_engine import _start_nginx as start_nginx

    console = Console()
    workdir = Path(tempfile.mkdtemp(prefix="chaoskit-callgrind-"))
    nginx = start_nginx(workdir, args.port)
    results: dict[str, Any] = {}
    try:
        for variant in args.variants.split(","):
            console.print(f"[dim]callgrind {variant} ...[/dim]")
            results[variant] = _run_variant(variant, args, workdir)
    finally:
        nginx.terminate()
        nginx.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)
    key = "cpu_us_per_request" if args.native else "instructions_per_request"
    base = results.get("locust", {}).get(key)
    what = "CPU us (user + system)" if args.native else "instructions (callgrind)"
    table = Table(title=f"{what} per request, {args.users} users, nginx")
    for column in ("variant", "requests", "per request", "vs locust"):
        table.add_column(column, justify="left" if column == "variant" else "right")
    for name, row in results.items():
        ratio = f"{row[key] / base:.3f}" if base else ""
        table.add_row(name, f"{row['requests']:.0f}", f"{row[key]:,}", ratio)
    console.print(table)
    OUT_FILE.parent.mkdir(parents=True, exist_ok=True)
    out = OUT_FILE.with_name("native_engine.json") if args.native else OUT_FILE
    out.write_text(json.dumps({"users": args.users, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
