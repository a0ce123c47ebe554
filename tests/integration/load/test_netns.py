"""Scale-out past one network stack: master and each worker in their own network namespace.

The test builds its own little network (needs root and ``ip netns``): a driver namespace
holding the master and a gateway double on 10.231.0.1, and one namespace per worker,
each joined to the driver by a veth pair (10.231.N.1 <-> 10.231.N.2). Workers start
with ``chaoskit worker --master 10.231.0.1:PORT``. No traffic leaves those namespaces.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hdrh.histogram import HdrHistogram

from chaoskit.load.process import LoadProcess
from chaoskit.load.spec import LoadSpec, write_spec

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

HERE = Path(__file__).resolve().parent
DRIVER_IP = "10.231.0.1"  # on the driver namespace's loopback, routed to from each worker
SHIFT = int(os.environ.get("CHAOSKIT_TEST_PORT_SHIFT", "0"))
GATEWAY_PORT = 25600 + SHIFT
MASTER_PORT = 25500 + SHIFT
CHAOSKIT = str(Path(sys.executable).parent / "chaoskit")


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=10)


@dataclass
class Net:
    """The namespaces and links of one test."""

    driver: str
    workers: list[str]
    links: list[str]  # driver-side end of each worker's veth pair
    processes: list[subprocess.Popen[Any]] = field(default_factory=list)

    def in_ns(self, ns: str, command: list[str], **kwargs: Any) -> subprocess.Popen[Any]:
        popen = subprocess.Popen(["ip", "netns", "exec", ns, *command], **kwargs)
        self.processes.append(popen)
        return popen

    def link(self, worker: int, up: bool) -> None:
        _ip("-n", self.driver, "link", "set", self.links[worker], "up" if up else "down")


def _can_make_namespaces() -> str | None:
    if shutil.which("ip") is None:
        return "no `ip` command"
    probe = f"ck-engine-probe-{os.getpid()}"
    done = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if done.returncode != 0:
        return f"`ip netns add` failed: {done.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


@pytest.fixture
def net() -> Iterator[Net]:
    """A driver namespace and two worker namespaces, removed afterwards."""
    reason = _can_make_namespaces()
    if reason is not None:
        # Not a skip: the scale-out test is the real part, and set-up already needs root.
        pytest.fail(f"needs root and network namespaces: {reason}")
    tag = f"{os.getpid() % 100000}"
    driver = f"ck-engine-{tag}-d"
    workers = [f"ck-engine-{tag}-w{i}" for i in (1, 2)]
    made: list[str] = []
    links: list[str] = []
    try:
        for ns in (driver, *workers):
            _ip("netns", "add", ns)
            made.append(ns)
            _ip("-n", ns, "link", "set", "lo", "up")
        _ip("-n", driver, "addr", "add", f"{DRIVER_IP}/32", "dev", "lo")
        for i, ns in enumerate(workers, start=1):
            here, there = f"cke{tag}d{i}", f"cke{tag}w{i}"
            _ip("link", "add", here, "type", "veth", "peer", "name", there)
            _ip("link", "set", here, "netns", driver)
            _ip("link", "set", there, "netns", ns)
            _ip("-n", driver, "addr", "add", f"10.231.{i}.1/24", "dev", here)
            _ip("-n", ns, "addr", "add", f"10.231.{i}.2/24", "dev", there)
            _ip("-n", driver, "link", "set", here, "up")
            _ip("-n", ns, "link", "set", there, "up")
            _ip("-n", ns, "route", "add", f"{DRIVER_IP}/32", "via", f"10.231.{i}.1")
            links.append(here)
        network = Net(driver=driver, workers=workers, links=links)
        yield network
    finally:
        for popen in locals().get("network", Net("", [], [])).processes:
            if popen.poll() is None:
                popen.kill()
            popen.communicate(timeout=10)  # reap it and close its pipes
        for ns in made:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def _gateway(net: Net, record: Path) -> None:
    popen = net.in_ns(
        net.driver,
        [
            sys.executable,
            str(HERE / "gateway_double.py"),
            DRIVER_IP,
            str(GATEWAY_PORT),
            str(record),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert popen.stdout is not None and popen.stdout.readline().strip() == "ready"


def _spec(tmp_path: Path, name: str, **overrides: Any) -> LoadSpec:
    fields: dict[str, Any] = {
        "run_id": name,
        "run_dir": str(tmp_path / name),
        "gateway_url": f"http://{DRIVER_IP}:{GATEWAY_PORT}",
        "allowed_hosts": [DRIVER_IP],
        "t0": time.time() + 1.0,
        "duration_s": 8.0,
        "seed": 5,
        "model": "open",
        "shape": {"kind": "stages", "stages": [{"for": 4, "rate": 20}, {"for": 4, "rate": 40}]},
        "workers": 2,
        "master_port": MASTER_PORT,
    }
    fields.update(overrides)
    return LoadSpec(**fields)


def _master(net: Net, spec: LoadSpec) -> LoadProcess:
    path = write_spec(spec, Path(spec.run_dir) / "load-spec.json")
    popen = net.in_ns(
        net.driver,
        [sys.executable, "-m", "chaoskit.load", str(path)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        bufsize=1,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    return LoadProcess(popen, path)


def _remote_workers(net: Net) -> None:
    for ns in net.workers:
        net.in_ns(
            ns,
            [CHAOSKIT, "worker", "--master", f"{DRIVER_IP}:{MASTER_PORT}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )


def _ticks(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in records if r["type"] == "tick"]


def _total(ticks: list[dict[str, Any]], name: str) -> int:
    return sum(int(t[name]) for t in ticks)


def _received(record: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in record.read_text().splitlines()]


def _outcomes_by_file(spec: LoadSpec) -> dict[str, list[dict[str, Any]]]:
    return {
        path.name: [json.loads(line) for line in path.read_text().splitlines()]
        for path in sorted((Path(spec.run_dir) / "outcomes").glob("*.jsonl"))
    }


def _finish(engine: LoadProcess) -> list[dict[str, Any]]:
    records = list(engine.ticks())
    assert engine.wait(timeout=20) == 0, engine.stderr_tail()
    assert records and records[-1] == {"type": "done"}, engine.stderr_tail()
    return records


def test_workers_in_their_own_namespaces_give_the_same_run_as_local_ones(
    net: Net, tmp_path: Path
) -> None:
    record = tmp_path / "received.jsonl"
    _gateway(net, record)
    runs: dict[str, tuple[list[dict[str, Any]], LoadSpec, list[dict[str, Any]]]] = {}
    for name in ("local", "remote"):
        before = len(_received(record)) if record.exists() else 0
        if name == "local":
            spec = _spec(tmp_path, name)  # the master starts its own workers on 127.0.0.1
            engine = _master(net, spec)
        else:
            spec = _spec(tmp_path, name, expect_workers=True, master_bind="0.0.0.0")
            engine = _master(net, spec)
            _remote_workers(net)
        records = _finish(engine)
        runs[name] = (records, spec, _received(record)[before:])
    shapes = {}
    for name, (records, spec, received) in runs.items():
        ticks = _ticks(records)
        assert records[0]["type"] == "ready", records[0]  # the clock started after the join
        assert [r for r in records if r["type"] not in ("tick", "done", "ready")] == []
        started = _total(ticks, "intents_started")
        assert abs(started - 240) <= 8, (name, [t["intents_started"] for t in ticks])
        files = _outcomes_by_file(spec)
        assert len(files) == 2 and all(files.values()), name  # both workers ran load
        lines = [line for attempts in files.values() for line in attempts]
        # merged metrics: every request counted once, in the ticks and in the audit's input
        assert _total(ticks, "requests") == len(lines) == len(received), name
        ids = [o["intent_id"] for o in received]
        assert len(ids) == len(set(ids)), name
        latency = HdrHistogram(1, 3_600_000, 3)
        for tick in ticks:
            latency.decode_and_add(tick["latency_hdr"])
        assert latency.get_total_count() == _total(ticks, "requests")
        shapes[name] = (
            [t["intents_started"] for t in ticks[:-1]],  # whole seconds; the last is the end
            {str(o["intent_id"]).split("-", 1)[1] for o in received},
        )
    # the same shape second by second, and the same arrivals (one global sequence)
    local_series, local_keys = shapes["local"]
    remote_series, remote_keys = shapes["remote"]
    assert len(local_series) == len(remote_series)
    assert all(abs(a - b) <= 4 for a, b in zip(local_series, remote_series, strict=True)), (
        local_series,
        remote_series,
    )
    assert len(local_keys ^ remote_keys) <= 4, sorted(local_keys ^ remote_keys)


def test_a_cut_off_worker_hands_its_share_over_and_gets_one_back(net: Net, tmp_path: Path) -> None:
    record = tmp_path / "received.jsonl"
    _gateway(net, record)
    spec = _spec(
        tmp_path,
        "cut",
        expect_workers=True,
        master_bind="0.0.0.0",
        duration_s=22.0,
        shape={"kind": "constant", "for": 22, "rate": 40},
    )
    engine = _master(net, spec)
    _remote_workers(net)
    records: list[dict[str, Any]] = []
    cut_at = back_at = None
    while True:
        record_line = engine.poll_tick(timeout=30)
        assert record_line is not None, engine.stderr_tail()
        records.append(record_line)
        if record_line["type"] == "tick" and record_line["t"] == 3.0:
            net.link(1, up=False)
            cut_at = 3.0
        if record_line["type"] == "tick" and record_line["t"] == 12.0:
            net.link(1, up=True)
            back_at = 12.0
        if record_line["type"] == "done":
            break
    assert engine.wait(timeout=20) == 0, engine.stderr_tail()
    assert cut_at is not None and back_at is not None
    lost = [r for r in records if r["type"] == "worker_lost"]
    reshares = [r for r in records if r["type"] == "reshare"]
    assert len(lost) == 1, records
    # detected within a few seconds, and the report has when and how much
    assert cut_at < lost[0]["t"] <= cut_at + 6.0, lost
    assert lost[0]["share"] == 0.5 and lost[0]["workers_left"] == 1
    assert [r["workers"] for r in reshares] == [1, 2], reshares
    handed, rejoined = reshares
    assert handed["lost"] == [lost[0]["worker"]]
    assert rejoined["joined"] == [lost[0]["worker"]] and rejoined["from_t"] > back_at
    ticks = _ticks(records)
    by_second = {t["t"]: t for t in ticks}
    # while cut off, the one worker left carries the whole 40/s (not half of it)
    carried = [
        by_second[float(s)]["intents_started"]
        for s in range(int(handed["from_t"]) + 2, int(back_at))
    ]
    assert carried and all(abs(n - 40) <= 4 for n in carried), carried
    # back again: both workers share the load and the rate holds
    after = [by_second[float(s)]["intents_started"] for s in range(int(rejoined["from_t"]) + 2, 21)]
    assert after and all(abs(n - 40) <= 4 for n in after), after
    files = _outcomes_by_file(spec)
    assert len(files) == 2
    owners: dict[str, str] = {}
    for name, attempts in files.items():
        for attempt in attempts:
            assert owners.setdefault(attempt["intent"], name) == name, attempt  # one owner
    late = [a for attempts in files.values() for a in attempts if a["t"] > rejoined["from_t"] + 1]
    assert {owners[a["intent"]] for a in late} == set(files), "both workers ran load again"
    received = [o["intent_id"] for o in _received(record)]
    assert len(received) == len(set(received))  # never an arrival sent twice
    # every intent counted exactly once in the merged metrics
    started = _total(ticks, "intents_started")
    ended = _total(ticks, "fulfilled") + _total(ticks, "failed") + _total(ticks, "abandoned")
    assert started == ended, (started, ended)
    # intents with a recorded attempt, plus those stopped before their first answer
    assert 0 <= started - len(owners) <= _total(ticks, "abandoned")
