"""The festival's lesson end to end: a slow coupon ledger at the peak, every buyer entitled to
one free order, buyers re-clicking. Coupled loses free orders (and first tries), coupled with
compensation loses none, decoupled loses none and shows late credits instead."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

RunStack = Any  # the run_stack fixture (tests/e2e/conftest.py)

pytestmark = pytest.mark.e2e

# The run (40 -> 150 -> 40 arrivals/s, ledger 1.5 s slower for 25 s at the peak),
# shorter: the fault alone outruns the ledger (8 connections / 1.5 s = 5.3 credits/s).
STORY = """
recovery: 6s
stack:
  coupon_mode: {mode}
  riders: 2000
  gateway: {{timeout: 2s, retries: backoff, max_retries: 2, circuit_breaker: true}}
  eligibility: {{referral_share: 1.0, free_orders_per_user: 1, release_on_failure: {release}}}
load:
  model: open
  behaviour: {{reclick: 3, think_time: 500ms}}
  shape:
    kind: stages
    stages:
      - {{rate: 8, for: 8s}}
      - {{rate: 30, for: 14s}}
      - {{rate: 8, for: 6s}}
faults:
  - {{name: slow-ledger, kind: coupon_lag, lag: 1500ms, at: 10s, for: 10s}}
audit: {{credit_slo: {slo}}}
hypothesis:
  - {{metric: lost_entitlements, max: 0}}
  - {{metric: missing_credits, max: 0}}
  - {{metric: free_orders_honoured_rate, min: 0.99, phase: overall}}
  - {{metric: first_try_failure_rate, max: 0.05, phase: during}}
report: {{formats: [json, md, junit]}}
"""


def story(stack: RunStack, tmp_path: Path, name: str, **params: str) -> dict[str, Any]:
    experiment = stack.experiment(tmp_path, name, STORY.format(**params))
    reports = tmp_path / "reports"
    result = stack.run(
        "run", str(experiment), "--no-dashboard", "--reports-dir", str(reports), timeout=150
    )
    runs = [p for p in reports.iterdir() if p.is_dir()]
    assert len(runs) == 1, (runs, result.stdout, result.stderr)
    data: dict[str, Any] = json.loads((runs[0] / "summary.json").read_text())
    data["_exit"] = result.returncode
    data["_report_md"] = (runs[0] / "report.md").read_text()
    data["_junit"] = (runs[0] / "junit.xml").read_text()
    return data


def hypothesis(data: dict[str, Any], metric: str) -> dict[str, Any]:
    found = [c for c in data["checks"] if c["kind"] == "hypothesis" and c["metric"] == metric]
    assert len(found) == 1, found
    return found[0]


def test_coupled_design_loses_free_orders_and_the_verdict_says_so(
    clean_stack: RunStack, tmp_path: Path
) -> None:
    data = story(clean_stack, tmp_path, "coupled", mode="sync", release="false", slo="30s")
    assert data["status"] == "completed", data["errors"]
    lost = data["audit"]["invariants"]["lost_entitlements"]
    assert lost["count"] > 0 and lost["order_ids"], lost
    check = hypothesis(data, "lost_entitlements")
    assert check["ok"] is False and check["value"] == lost["count"]
    assert data["verdict"] == "violated" and data["_exit"] == 1
    # First tries failed during the fault, whatever the re-clicks did after.
    assert data["phases"]["during"]["first_try_failure_rate"] > 0.05
    assert data["metrics"]["free_orders_honoured_rate"] < 0.99
    assert "`lost_entitlements`" in data["_report_md"]
    assert 'name="lost_entitlements"' in data["_junit"]


def test_compensation_gives_every_free_order_back(clean_stack: RunStack, tmp_path: Path) -> None:
    data = story(clean_stack, tmp_path, "compensated", mode="sync", release="true", slo="30s")
    assert data["status"] == "completed", data["errors"]
    assert data["audit"]["invariants"]["lost_entitlements"]["count"] == 0
    assert hypothesis(data, "lost_entitlements")["ok"] is True
    # The fault still fails first tries: compensation does not make the order path faster.
    assert data["phases"]["during"]["first_try_failure_rate"] > 0.05


def test_decoupled_design_loses_nothing_and_shows_late_credits(
    clean_stack: RunStack, tmp_path: Path
) -> None:
    # The SLO is set below the delay the slow ledger causes: credits are late, not lost.
    data = story(clean_stack, tmp_path, "decoupled", mode="async", release="false", slo="1s")
    assert data["status"] == "completed", data["errors"]
    invariants = data["audit"]["invariants"]
    assert invariants["lost_entitlements"]["count"] == 0
    assert invariants["missing_credits"]["count"] == 0
    assert invariants["late_credits"]["count"] > 0 and invariants["late_credits"]["order_ids"]
    assert data["audit"]["queued_credits"] is not None
    assert data["metrics"]["free_orders_honoured_rate"] == 1.0
    assert data["metrics"]["free_orders_honoured_in_slo_rate"] < 1.0
    assert data["phases"]["during"]["first_try_failure_rate"] < 0.05
