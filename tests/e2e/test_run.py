"""`chaoskit run` end to end on a real stack: verdicts, guardrails, signals, kill + cleanup.

Every test checks what matters to a user afterwards: the exit code, the summary's status,
and that no toxic and no changed setting outlives the run.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from chaoskit.faults.toxiproxy import Toxic
from tests.e2e.runs import only_run_dir, summary

RunStack = Any  # the run_stack fixture (tests/e2e/conftest.py)


pytestmark = pytest.mark.e2e


def toxics_on(stack: RunStack) -> dict[str, list[str]]:
    return dict(stack.toxics())


def wait_for_fault(stack: RunStack, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if toxics_on(stack):
            return
        time.sleep(0.1)
    raise AssertionError("the run never applied its fault")


SHORT = """
load:
  model: open
  shape: {kind: constant, for: 8s, rate: 15}
faults:
  - {name: slow-lbs, kind: latency, dependency: lbs, latency: 50ms, at: 3s, for: 3s}
hypothesis:
  - {metric: fulfilment_rate, min: 0.9}
  - {metric: lost_orders, max: 0}
report: {formats: [json, md, junit]}
"""


def test_a_short_run_holds_and_cleans_up(clean_stack: RunStack, tmp_path: Path) -> None:
    experiment = clean_stack.experiment(tmp_path, "short", SHORT)
    reports = tmp_path / "reports"
    result = clean_stack.play(experiment, reports)
    assert result.returncode == 0, result.stdout + result.stderr
    run_dir = only_run_dir(reports)
    data = summary(run_dir)
    assert data["status"] == "completed" and data["verdict"] == "held"
    assert data["metrics"]["intents"] == pytest.approx(8 * 15, rel=0.1)
    assert data["audit"]["status"] == "passed"
    fault = data["faults"][0]
    assert fault["status"] == "removed" and fault["apply_lag_ms"] < 500
    phases = {c["phase"] for c in data["checks"] if c["kind"] == "hypothesis"}
    assert {"baseline", "during", "recovery", "overall"} <= phases
    assert (run_dir / "report.md").exists() and (run_dir / "junit.xml").exists()
    assert toxics_on(clean_stack) == {}
    assert not list((clean_stack.home / "runs").glob("*.json"))


GUARDRAIL = """
load:
  model: open
  shape: {kind: constant, for: 30s, rate: 10}
faults:
  - {name: orders-broken, kind: http_errors, service: orders, rate: 1.0, status: 503, at: 1s}
  - {name: slow-inventory, kind: latency, dependency: inventory, latency: 20ms, at: 1s}
guardrails:
  - {metric: error_rate, max: 0.5, for: 2s}
"""


def test_a_guardrail_aborts_with_exit_3_and_leaves_nothing(
    clean_stack: RunStack, tmp_path: Path
) -> None:
    before = clean_stack.admin("orders")["http_errors"]
    experiment = clean_stack.experiment(tmp_path, "guard", GUARDRAIL)
    reports = tmp_path / "reports"
    started = time.monotonic()
    result = clean_stack.play(experiment, reports)
    assert result.returncode == 3, result.stdout + result.stderr
    assert time.monotonic() - started < 25  # stopped well before the 30 s of load
    data = summary(only_run_dir(reports))
    assert data["status"] == "aborted" and data["abort"]["metric"] == "error_rate"
    assert toxics_on(clean_stack) == {}
    assert clean_stack.admin("orders")["http_errors"] == before


LONG = """
load:
  model: open
  shape: {kind: constant, for: 40s, rate: 10}
faults:
  - {name: slow-store, kind: latency, dependency: store, latency: 30ms, at: 1s}
  - {name: few-riders, kind: riders, available: 7, at: 1s}
"""


@pytest.mark.parametrize(
    "signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=["SIGINT", "SIGTERM", "SIGHUP"]
)
def test_a_signal_mid_run_rolls_back_and_exits_3(
    clean_stack: RunStack, tmp_path: Path, signum: signal.Signals
) -> None:
    riders_before = clean_stack.admin("rider")["riders"]
    experiment = clean_stack.experiment(tmp_path, "signal", LONG)
    reports = tmp_path / "reports"
    proc = clean_stack.start(experiment, reports)
    try:
        wait_for_fault(clean_stack)
        assert clean_stack.admin("rider")["riders"] == 7
        proc.send_signal(signum)
        sent = time.monotonic()
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    out, err = proc.communicate()
    assert proc.returncode == 3, out + err
    assert time.monotonic() - sent < 15
    assert toxics_on(clean_stack) == {}
    assert clean_stack.admin("rider")["riders"] == riders_before
    data = summary(only_run_dir(reports))
    assert data["status"] == "interrupted"
    assert all(f["status"] == "removed" for f in data["faults"])


def test_cleanup_after_sigkill_removes_only_chaoskit_leftovers(
    clean_stack: RunStack, tmp_path: Path
) -> None:
    riders_before = clean_stack.admin("rider")["riders"]
    experiment = clean_stack.experiment(tmp_path, "killed", LONG)
    proc = clean_stack.start(experiment, tmp_path / "reports")
    try:
        wait_for_fault(clean_stack)
        with clean_stack.toxiproxy() as client:
            client.add_toxic(
                "lbs",
                Toxic(name="team-b-latency", type="latency", attributes={"latency": 5}),
            )
        proc.kill()
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    left = toxics_on(clean_stack)
    assert any(name.startswith("chaoskit.") for names in left.values() for name in names)
    assert clean_stack.admin("rider")["riders"] == 7

    result = clean_stack.run("cleanup", "--target", str(clean_stack.target_file))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "removed toxic" in result.stdout
    assert toxics_on(clean_stack) == {"lbs": ["team-b-latency"]}
    assert clean_stack.admin("rider")["riders"] == riders_before
    again = clean_stack.run("cleanup", "--target", str(clean_stack.target_file))
    assert again.returncode == 0 and "nothing to clean up" in again.stdout


def coupon_experiment(mode: str) -> str:
    return f"""
stack:
  coupon_mode: {mode}
  gateway: {{timeout: 1s, retries: none, circuit_breaker: false}}
load:
  model: open
  behaviour: {{reclick: 0}}
  shape: {{kind: constant, for: 16s, rate: 25}}
faults:
  - {{name: coupon-down, kind: down, dependency: coupon, at: 3s, for: 8s}}
hypothesis:
  - {{metric: fulfilment_rate, min: 0.9, phase: during}}
  - {{metric: double_credits, max: 0}}
report: {{formats: [json]}}
"""


@pytest.mark.slow
def test_decoupled_coupons_keep_fulfilment_and_turn_failures_into_delay(
    clean_stack: RunStack, tmp_path: Path
) -> None:
    results = {}
    for mode in ("sync", "async"):
        experiment = clean_stack.experiment(tmp_path, f"coupon-{mode}", coupon_experiment(mode))
        reports = tmp_path / f"reports-{mode}"
        outcome = clean_stack.play(experiment, reports)
        results[mode] = (outcome.returncode, summary(only_run_dir(reports)))
    (sync_code, coupled), (async_code, decoupled) = results["sync"], results["async"]
    assert toxics_on(clean_stack) == {}
    during_coupled = coupled["phases"]["during"]["fulfilment_rate"]
    during_decoupled = decoupled["phases"]["during"]["fulfilment_rate"]
    # The coupled design fails every eligible order while the ledger is down ...
    assert sync_code == 1 and coupled["verdict"] == "violated"
    assert during_coupled < 0.85
    assert coupled["metrics"]["failures.coupon"] > 20
    # ... the decoupled one keeps taking orders and credits them late, exactly once.
    assert async_code == 0 and decoupled["verdict"] == "held", decoupled["checks"]
    assert during_decoupled > during_coupled + 0.1
    assert decoupled["metrics"]["coupon_delay_p95_s"] > 2.0
    assert decoupled["audit"]["invariants"]["double_credits"]["count"] == 0
    assert decoupled["audit"]["invariants"]["missing_credits"]["count"] == 0


WORKERS = """
load:
  model: open
  shape: {kind: stages, stages: [{for: 4s, rate: 10}, {for: 4s, rate: 30}]}
hypothesis:
  - {metric: fulfilment_rate, min: 0.9}
report: {formats: [json]}
"""


def test_two_workers_run_the_same_shape_with_merged_metrics(
    clean_stack: RunStack, tmp_path: Path
) -> None:
    experiment = clean_stack.experiment(tmp_path, "workers", WORKERS)
    reports = tmp_path / "reports"
    result = clean_stack.play(
        experiment,
        reports,
        "--workers",
        "2",
        "--master-port",
        str(19957 + int(os.environ.get("CHAOSKIT_TEST_PORT_SHIFT", "0"))),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    data = summary(only_run_dir(reports))
    assert data["environment"]["workers"] == 2
    # 4 s at 10/s + 4 s at 30/s, split over two processes, merged back: 160 intents.
    assert data["metrics"]["intents"] == pytest.approx(160, abs=4)
    assert data["metrics"]["orders"] == pytest.approx(data["metrics"]["intents"], abs=4)
    assert data["audit"]["status"] == "passed"


def test_a_worker_started_separately_joins_an_expecting_master(
    clean_stack: RunStack, tmp_path: Path
) -> None:
    experiment = clean_stack.experiment(tmp_path, "joined", WORKERS)
    reports = tmp_path / "reports"
    driver = clean_stack.start(
        experiment,
        reports,
        "--expect-workers",
        "1",
        "--master-port",
        str(19958 + int(os.environ.get("CHAOSKIT_TEST_PORT_SHIFT", "0"))),
    )
    try:
        time.sleep(1.0)
        port = 19958 + int(os.environ.get("CHAOSKIT_TEST_PORT_SHIFT", "0"))
        joined = clean_stack.run("worker", "--master", f"127.0.0.1:{port}", timeout=60)
        driver.wait(timeout=60)
    finally:
        if driver.poll() is None:
            driver.kill()
    out, err = driver.communicate()
    assert driver.returncode == 0, out + err
    assert joined.returncode == 0, joined.stdout + joined.stderr
    data = summary(only_run_dir(reports))
    assert data["metrics"]["intents"] == pytest.approx(160, abs=4)
