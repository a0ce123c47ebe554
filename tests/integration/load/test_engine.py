"""The load engine as a real process against a real HTTP endpoint on 127.0.0.1."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from conftest import GatewayBehaviour
from hdrh.histogram import HdrHistogram

from chaoskit.experiment.models import Behaviour
from chaoskit.load.process import LoadProcess
from chaoskit.load.spec import LoadSpec, write_spec

pytestmark = [pytest.mark.integration, pytest.mark.timeout(40)]


def _spec(tmp_path: Path, url: str, **overrides: Any) -> LoadSpec:
    fields: dict[str, Any] = {
        "run_id": "it",
        "run_dir": str(tmp_path / "run"),
        "gateway_url": url,
        "t0": time.time() + 1.5,
        "duration_s": 6.0,
        "seed": 3,
        "model": "open",
        "shape": {"kind": "constant", "for": 6, "rate": 40},
    }
    fields.update(overrides)
    return LoadSpec(**fields)


def _run(spec: LoadSpec) -> tuple[list[dict[str, Any]], LoadProcess]:
    engine = LoadProcess.start(spec)
    records = list(engine.ticks())
    assert engine.wait(timeout=10) == 0, engine.stderr_tail()
    assert records and records[-1] == {"type": "done"}, engine.stderr_tail()
    return records, engine


def _ticks(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in records if r["type"] == "tick"]


def _total(ticks: list[dict[str, Any]], field: str) -> int:
    return sum(int(t[field]) for t in ticks)


def _outcomes(spec: LoadSpec) -> list[dict[str, Any]]:
    lines: list[dict[str, Any]] = []
    for path in sorted((Path(spec.run_dir) / "outcomes").glob("*.jsonl")):
        lines += [json.loads(line) for line in path.read_text().splitlines()]
    return lines


def test_open_model_holds_the_scheduled_rate(tmp_path: Path, gateway: tuple[str, Any]) -> None:
    url, behaviour = gateway
    spec = _spec(tmp_path, url)
    records, _ = _run(spec)
    ticks = _ticks(records)
    started = _total(ticks, "intents_started")
    assert abs(started - 240) <= 12, started  # within 5% of 40/s * 6 s
    assert _total(ticks, "dropped") == 0
    assert _total(ticks, "fulfilled") + _total(ticks, "abandoned") == started
    # a request cut by the stop reached the server but has no attempt record
    abandoned = _total(ticks, "abandoned")
    assert _total(ticks, "requests") == len(_outcomes(spec)) == started - abandoned
    assert 0 <= len(behaviour.received()) - _total(ticks, "requests") <= abandoned
    # every full second carries its 40 arrivals (a tick may wake a few ms late on a busy
    # machine, moving an arrival or two across the boundary): spacing is held, not bunched
    assert all(abs(t["intents_started"] - 40) <= 4 for t in ticks[1:5]), ticks
    assert [t["t"] for t in ticks[:5]] == [1.0, 2.0, 3.0, 4.0, 5.0]
    latency = HdrHistogram.decode(ticks[2]["latency_hdr"])
    assert latency.get_total_count() == ticks[2]["requests"]
    fulfilment = HdrHistogram.decode(ticks[2]["fulfilment_hdr"])
    assert fulfilment.get_total_count() == ticks[2]["fulfilled"]


def test_every_failure_is_reclicked_with_a_new_key(
    tmp_path: Path, gateway: tuple[str, GatewayBehaviour]
) -> None:
    url, behaviour = gateway
    behaviour.fail_step = "store"
    behaviour.fail_status = 503
    spec = _spec(
        tmp_path,
        url,
        duration_s=3.0,
        shape={"kind": "constant", "for": 3, "rate": 20},
        behaviour=Behaviour(reclick=2, think_time=0.05),
    )
    records, _ = _run(spec)
    ticks = _ticks(records)
    failed = _total(ticks, "failed")
    assert failed > 40
    assert _total(ticks, "fulfilled") == 0
    per_intent: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for line in _outcomes(spec):
        per_intent[line["intent"]].append(line)
    complete = [a for a in per_intent.values() if len(a) == 3]
    assert len(complete) == failed  # each failed intent: 1 click + 2 re-clicks
    assert all(len(a) <= 3 for a in per_intent.values())
    for attempts in complete:
        assert len({a["order_id"] for a in attempts}) == 3
        assert {(a["told"], a["step"], a["status"]) for a in attempts} == {("failed", "store", 503)}
    assert _total(ticks, "requests") == len(behaviour.received()) == len(_outcomes(spec))
    assert _total(ticks, "request_errors") == _total(ticks, "requests")
    steps: dict[str, int] = defaultdict(int)
    for tick in ticks:
        for step, n in tick["failed_steps"].items():
            steps[step] += n
    # failures.<step> counts failed attempts: every click and re-click failed at the store.
    assert dict(steps) == {"store": _total(ticks, "requests")}


def test_reused_key_and_unfixable_400(
    tmp_path: Path, gateway: tuple[str, GatewayBehaviour]
) -> None:
    url, behaviour = gateway
    behaviour.fail_step = "inventory"
    spec = _spec(
        tmp_path,
        url,
        duration_s=2.0,
        shape={"kind": "constant", "for": 2, "rate": 10},
        behaviour=Behaviour(reclick=1, think_time=0.05, reuse_idempotency_key=True),
    )
    _run(spec)
    per_intent: dict[str, set[str]] = defaultdict(set)
    for line in _outcomes(spec):
        per_intent[line["intent"]].add(line["order_id"])
    assert per_intent and all(len(keys) == 1 for keys in per_intent.values())

    behaviour.fail_step, behaviour.fail_status = "parse", 400
    behaviour.orders.clear()
    spec = _spec(
        tmp_path / "b",
        url,
        duration_s=2.0,
        shape={"kind": "constant", "for": 2, "rate": 10},
        behaviour=Behaviour(reclick=3, think_time=0.05),
    )
    records, _ = _run(spec)
    ticks = _ticks(records)
    assert _total(ticks, "requests") == _total(ticks, "intents_started") == 20
    assert _total(ticks, "abandoned") == 20 and _total(ticks, "failed") == 0


def test_same_seed_same_intents(tmp_path: Path, gateway: tuple[str, GatewayBehaviour]) -> None:
    url, behaviour = gateway
    texts = []
    for name in ("a", "b"):
        behaviour.orders.clear()
        spec = _spec(
            tmp_path / name, url, duration_s=1.0, shape={"kind": "constant", "for": 1, "rate": 15}
        )
        _run(spec)
        received = sorted(behaviour.received(), key=lambda o: int(str(o["intent_id"])[4:]))
        texts.append([(o["user_id"], o["text"]) for o in received])
    assert len(texts[0]) == 15 and texts[0] == texts[1]
    assert len({text for _, text in texts[0]}) > 5  # varied


def test_sigterm_stops_within_two_seconds(tmp_path: Path, gateway: tuple[str, Any]) -> None:
    url, _ = gateway
    spec = _spec(tmp_path, url, duration_s=60.0, shape={"kind": "constant", "for": 60, "rate": 30})
    engine = LoadProcess.start(spec)
    ready = engine.poll_tick(timeout=10)
    assert ready is not None and ready["type"] == "ready", engine.stderr_tail()
    first = engine.poll_tick(timeout=10)
    assert first is not None and first["type"] == "tick", engine.stderr_tail()
    began = time.monotonic()
    code = engine.stop(grace_s=3)
    took = time.monotonic() - began
    rest = list(engine.ticks())
    assert code == 0 and took < 2.0, (code, took, engine.stderr_tail())
    assert rest[-1] == {"type": "done"} and rest[-2]["type"] == "tick"
    assert rest[-2]["t"] < 10
    # the outcome file was flushed at exit: one line per request the ticks counted
    ticks = [first, *_ticks(rest)]
    assert len(_outcomes(spec)) == _total(ticks, "requests") > 0


def test_closed_model_users_follow_the_curve(
    tmp_path: Path, gateway: tuple[str, GatewayBehaviour]
) -> None:
    url, behaviour = gateway
    behaviour.delay_s = 0.01
    shape = {
        "kind": "stages",
        "stages": [{"for": 2, "users": 2}, {"for": 2, "users": 5}, {"for": 2, "users": 3}],
    }
    spec = _spec(tmp_path, url, model="closed", shape=shape)
    records, _ = _run(spec)
    ticks = {t["t"]: t for t in _ticks(records)}
    assert (ticks[1.0]["target"], ticks[1.0]["users"]) == (2, 2)
    assert (ticks[3.0]["target"], ticks[3.0]["users"]) == (5, 5)
    assert (ticks[5.0]["target"], ticks[5.0]["users"]) == (3, 3)
    # 10 ms per request: a closed user makes at most ~100 requests a second
    assert 25 <= ticks[3.0]["requests"] <= 5 * 100
    assert len({o["user_id"] for o in behaviour.received()}) == 5


def test_two_workers_merge_their_ticks(
    tmp_path: Path, gateway: tuple[str, GatewayBehaviour]
) -> None:
    url, behaviour = gateway
    # worker start-up (three processes importing locust) takes seconds on a busy machine
    spec = _spec(tmp_path, url, workers=2, t0=time.time() + 7.0)
    records, _ = _run(spec)
    ticks = _ticks(records)
    started = _total(ticks, "intents_started")
    assert abs(started - 240) <= 12, [t["intents_started"] for t in ticks]
    assert [r for r in records if r["type"] not in ("tick", "done", "ready")] == []
    files = list((Path(spec.run_dir) / "outcomes").glob("*.jsonl"))
    assert len(files) == 2 and all(f.stat().st_size > 0 for f in files)
    assert _total(ticks, "requests") == len(behaviour.received()) == len(_outcomes(spec))
    ids = [o["intent_id"] for o in behaviour.received()]
    assert len(ids) == len(set(ids))  # the workers split the arrivals, never duplicate them
    merged = HdrHistogram(1, 3_600_000, 3)
    for tick in ticks:
        merged.decode_and_add(tick["latency_hdr"])
    assert merged.get_total_count() == _total(ticks, "requests")


def test_lost_worker_is_reported(tmp_path: Path, gateway: tuple[str, Any]) -> None:
    url, _ = gateway
    spec = _spec(
        tmp_path,
        url,
        workers=2,
        t0=time.time() + 7.0,
        duration_s=8.0,
        shape={"kind": "constant", "for": 8, "rate": 20},
    )
    engine = LoadProcess.start(spec)
    assert engine.poll_tick(timeout=20) is not None, engine.stderr_tail()
    workers = subprocess.run(
        ["pgrep", "-P", str(engine.pid)], capture_output=True, text=True, check=False
    ).stdout.split()
    assert len(workers) == 2
    os.kill(int(workers[0]), signal.SIGKILL)
    rest = list(engine.ticks())
    assert engine.wait(timeout=10) == 0
    assert [r["type"] for r in rest].count("worker_lost") == 1
    assert rest[-1] == {"type": "done"}
    after = _ticks(rest)[-3:]
    assert all(t["intents_started"] > 0 for t in after[:-1])  # the run went on
    # its share was handed to the worker left: the whole 20/s again once the new share began
    lost = next(r for r in rest if r["type"] == "worker_lost")
    reshare = next(r for r in rest if r["type"] == "reshare")
    assert lost["share"] == 0.5 and reshare["workers"] == 1 and reshare["lost"] == [lost["worker"]]
    full = [t for t in _ticks(rest) if t["t"] >= reshare["from_t"] + 1 and t["t"].is_integer()]
    assert full and all(abs(t["intents_started"] - 20) <= 2 for t in full), _ticks(rest)


def test_stop_on_worker_loss_still_ends_the_run(tmp_path: Path, gateway: tuple[str, Any]) -> None:
    url, _ = gateway
    spec = _spec(
        tmp_path,
        url,
        workers=2,
        duration_s=30.0,
        shape={"kind": "constant", "for": 30, "rate": 20},
        stop_on_worker_loss=True,
    )
    engine = LoadProcess.start(spec)
    assert engine.poll_tick(timeout=20) is not None, engine.stderr_tail()
    workers = subprocess.run(
        ["pgrep", "-P", str(engine.pid)], capture_output=True, text=True, check=False
    ).stdout.split()
    assert len(workers) == 2
    os.kill(int(workers[0]), signal.SIGKILL)
    began = time.monotonic()
    rest = list(engine.ticks())
    assert engine.wait(timeout=10) == 0
    assert time.monotonic() - began < 8.0  # ended at the loss, not at 30 s
    types = [r["type"] for r in rest]
    assert types.count("worker_lost") == 1 and "reshare" not in types
    assert rest[-1] == {"type": "done"} and _ticks(rest)[-1]["t"] < 15


def test_gateway_outside_localhost_is_refused(tmp_path: Path) -> None:
    spec = _spec(tmp_path, "http://10.20.30.40:8080")
    path = write_spec(spec, tmp_path / "spec.json")
    done = subprocess.run(
        [sys.executable, "-m", "chaoskit.load", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1 and "allowed_hosts" in done.stderr
