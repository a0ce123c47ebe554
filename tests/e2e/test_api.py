"""``chaoskit.rehearse()`` in-process against the real e2e stack: the same run as the CLI,
handlers that fail, and a KeyboardInterrupt that must not leave a fault behind."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

import chaoskit
from tests.e2e.runs import summary

RunStack = Any  # the run_stack fixture (tests/e2e/conftest.py)

pytestmark = pytest.mark.e2e

# A latency fault in the middle; fulfilment holds, the p50 bound cannot (a violated verdict
# that does not depend on timing).
EXPERIMENT = """
load:
  model: open
  shape: {kind: constant, for: 8s, rate: 15}
faults:
  - {name: slow-lbs, kind: latency, dependency: lbs, latency: 40ms, at: 2s, for: 4s}
hypothesis:
  - {metric: fulfilment_rate, min: 0.9}
  - {metric: latency_p50_ms, max: 0.001, phase: overall}
  - {metric: lost_orders, max: 0}
report: {formats: [json, md, junit, csv]}
"""


@pytest.fixture
def home(clean_stack: RunStack, monkeypatch: pytest.MonkeyPatch) -> RunStack:
    """In-process runs share the CLI's state folder of the e2e stack."""
    monkeypatch.setenv("CHAOSKIT_HOME", str(clean_stack.home))
    return clean_stack


def test_rehearse_gives_the_same_verdict_checks_and_reports_as_the_cli(
    home: RunStack, tmp_path: Path
) -> None:
    experiment = home.experiment(tmp_path, "api-vs-cli", EXPERIMENT)
    seen: list[chaoskit.Event] = []
    result = chaoskit.rehearse(experiment, reports_dir=tmp_path / "api", on_event=seen.append)
    cli = home.play(experiment, tmp_path / "cli")
    assert cli.returncode == int(result.exit_code) == 1, cli.stdout + cli.stderr
    assert result.verdict == "violated" and result.status == "completed"
    assert not result.held
    [cli_dir] = [p for p in (tmp_path / "cli").iterdir() if p.is_dir()]
    by_cli = summary(cli_dir)
    judged = [(c.kind, c.phase, c.metric, c.ok) for c in result.checks]
    assert judged == [(c["kind"], c["phase"], c["metric"], c["ok"]) for c in by_cli["checks"]]
    assert set(result.reports) == {"json", "md", "junit", "csv"}
    assert sorted(p.name for p in result.run_dir.iterdir()) == sorted(
        p.name for p in cli_dir.iterdir()
    )
    # One number, one place: summary.json holds exactly the values the result judged.
    by_api = summary(result.run_dir)
    assert by_api["metrics"] == pytest.approx(dict(result.metrics), nan_ok=True)
    assert by_api["verdict"] == result.verdict and by_api["exit_code"] == 1
    assert result.metrics["intents"] == pytest.approx(by_cli["metrics"]["intents"], rel=0.1)
    # Typed events reached the handler in order, ending with the run's end.
    kinds = [type(e) for e in seen]
    assert kinds[0] is chaoskit.RunStarted and kinds[-1] is chaoskit.RunEnded
    assert chaoskit.FaultApplied in kinds and chaoskit.FaultRemoved in kinds
    assert "latency_p50_ms" in repr(result)  # what a failing `assert result.held` shows
    assert home.toxics() == {}


def test_a_handler_that_raises_neither_stops_the_run_nor_skips_the_rollback(
    home: RunStack, tmp_path: Path
) -> None:
    experiment = home.experiment(tmp_path, "bad-handler", EXPERIMENT)
    calls = []

    def explode(event: chaoskit.Event) -> None:
        calls.append(event)
        if isinstance(event, chaoskit.FaultApplied):
            raise RuntimeError("dashboard bug")

    result = chaoskit.rehearse(experiment, reports_dir=tmp_path / "r", on_event=explode)
    assert result.status == "completed" and result.verdict == "violated"
    assert any("dashboard bug" in error for error in result.errors)
    assert not any(isinstance(e, chaoskit.RunEnded) for e in calls)  # detached after failing
    assert [f.status for f in result.faults] == ["removed"]
    assert home.toxics() == {}


def test_a_keyboard_interrupt_rolls_every_fault_back_before_it_propagates(
    home: RunStack, tmp_path: Path
) -> None:
    riders_before = home.admin("rider")["riders"]
    experiment = home.experiment(
        tmp_path,
        "ctrl-c",
        """
load:
  model: open
  shape: {kind: constant, for: 40s, rate: 10}
faults:
  - {name: slow-lbs, kind: latency, dependency: lbs, latency: 30ms, at: 1s}
  - {name: few-riders, kind: riders, available: 7, at: 1s}
""",
    )
    faulted = threading.Event()

    def on_event(event: chaoskit.Event) -> None:
        if isinstance(event, chaoskit.FaultApplied) and not faulted.is_set():
            faulted.set()
            # Ctrl-C, as a terminal sends it: the main thread gets KeyboardInterrupt.
            threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGINT)).start()

    with pytest.raises(KeyboardInterrupt):
        chaoskit.rehearse(experiment, reports_dir=tmp_path / "r", on_event=on_event)
    assert faulted.is_set()
    assert home.toxics() == {}
    assert home.admin("rider")["riders"] == riders_before
    [run_dir] = [p for p in (tmp_path / "r").iterdir() if p.is_dir()]
    data = summary(run_dir)
    assert data["status"] == "interrupted"
    assert all(f["status"] == "removed" for f in data["faults"])


def test_rehearse_starts_a_stack_when_none_is_up_and_stops_it_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What `make demo` does on a fresh clone: no stack is up, so the run brings one up.
    monkeypatch.setenv("CHAOSKIT_HOME", str(tmp_path / "home"))
    base_port = 19500 + int(os.environ.get("CHAOSKIT_TEST_PORT_SHIFT", "0"))
    target = tmp_path / "cold.yaml"
    target.write_text(f"version: 1\nkind: local\nname: e2e-cold\nbase_port: {base_port}\n")
    experiment = tmp_path / "cold-start.yaml"
    experiment.write_text(
        f"version: 1\nname: cold-start\ntarget: {target}\nseed: 1\n"
        "load:\n  model: open\n  shape: {kind: constant, for: 4s, rate: 8}\n"
        "hypothesis:\n  - {metric: fulfilment_rate, min: 0.9}\n"
    )
    result = chaoskit.rehearse(experiment, reports_dir=tmp_path / "r")
    assert result.verdict == "held", result.explain()
    assert result.metrics["intents"]
    with pytest.raises(httpx.ConnectError):  # the stack it started is stopped again
        httpx.get(f"http://127.0.0.1:{base_port + 10}/healthz", timeout=2.0)


def test_a_report_that_cannot_be_written_makes_the_run_an_error_everywhere(
    home: RunStack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chaoskit.report import markdown

    def broken(run: object) -> Path:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(markdown, "write_markdown", broken)
    experiment = home.experiment(
        tmp_path,
        "no-md",
        "load:\n  model: open\n  shape: {kind: constant, for: 3s, rate: 8}\n"
        "hypothesis:\n  - {metric: fulfilment_rate, min: 0.5}\n"
        "report: {formats: [json, md]}\n",
    )
    result = chaoskit.rehearse(experiment, reports_dir=tmp_path / "r")
    assert (result.status, result.verdict, int(result.exit_code)) == ("error", "error", 4)
    assert "md" in result.report_errors
    assert any("md report" in error for error in result.errors)
    data = summary(result.run_dir)
    assert (data["status"], data["verdict"], data["exit_code"]) == ("error", "error", 4)
