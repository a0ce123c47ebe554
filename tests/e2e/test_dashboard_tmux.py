"""The live dashboard in a real terminal: `chaoskit run` under tmux, read with capture-pane."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.e2e

RunStack = Any  # the run_stack fixture (tests/e2e/conftest.py)

PANELS = (
    "Load",
    "Customers",
    "Latency",
    "Failures by step",
    "Coupons",
    "Stores",
    "Riders",
    "Faults",
    "Checks",
)

EXPERIMENT = """
load:
  model: open
  shape: {kind: constant, for: 12s, rate: 20}
faults:
  - {name: slow-lbs, kind: latency, dependency: lbs, latency: 40ms, at: 2s, for: 8s}
hypothesis:
  - {metric: fulfilment_rate, min: 0.9}
report: {formats: [json]}
"""


def tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], capture_output=True, text=True, check=True).stdout


def test_dashboard_shows_every_panel_with_live_numbers(
    clean_stack: RunStack, tmp_path: Path
) -> None:
    assert shutil.which("tmux"), "tmux is not installed: `make test` installs it"
    experiment = clean_stack.experiment(tmp_path, "tmux", EXPERIMENT)
    reports = tmp_path / "reports"
    chaoskit = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "chaoskit"
    command = shlex.join(
        [
            "env",
            f"CHAOSKIT_HOME={clean_stack.home}",
            "TERM=xterm-256color",
            str(chaoskit),
            "run",
            str(experiment),
            "--reports-dir",
            str(reports),
        ]
    )
    session = f"chaoskit-test-{int(time.time() * 1000)}"
    tmux("new-session", "-d", "-s", session, "-x", "100", "-y", "50", f"{command}; sleep 60")
    try:
        screen = ""
        deadline = time.monotonic() + 25
        while time.monotonic() < deadline:
            time.sleep(0.5)
            screen = tmux("capture-pane", "-p", "-t", session)
            if "slow-lbs" in screen and re.search(r"\d+\.\d/s", screen):
                break
        for panel in PANELS:
            assert panel in screen, f"{panel!r} missing from:\n{screen}"
        assert "tmux" in screen  # the experiment's name in the header
        assert re.search(r"\d+\.\d/s", screen), screen  # a live achieved rate
        assert "slow-lbs" in screen, screen  # the active fault, with its time left
        assert max(len(line) for line in screen.splitlines()) <= 100
        # Let the run end by itself (killing the pane would hang up on it mid-run).
        deadline = time.monotonic() + 45
        while time.monotonic() < deadline:
            done = [
                p
                for p in reports.glob("*/summary.json")
                if json.loads(p.read_text()).get("status") != "running"
            ]
            if done:
                break
            time.sleep(0.5)
        assert done, "the run did not finish"
        assert json.loads(done[0].read_text())["status"] == "completed"
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)


SMALL_TERMINAL = """
load:
  model: open
  shape: {kind: constant, for: 12s, rate: 10}
faults:
  - {name: rider-shortage-at-peak, kind: riders, available: 1, at: 2s, for: 8s}
hypothesis:
  - {metric: fulfilment_rate, min: 0.0, phase: during}
  - {metric: lost_orders, max: 0}
  - {metric: phantom_orders, max: 0}
guardrails:
  - {metric: error_rate, max: 0.99, for: 5s}
report: {formats: [json]}
"""


def test_dashboard_fits_an_80_by_24_terminal(clean_stack: RunStack, tmp_path: Path) -> None:
    experiment = clean_stack.experiment(tmp_path, "small", SMALL_TERMINAL)
    reports = tmp_path / "reports"
    chaoskit = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "chaoskit"
    command = shlex.join(
        [
            "env",
            f"CHAOSKIT_HOME={clean_stack.home}",
            "TERM=xterm-256color",
            str(chaoskit),
            "run",
            str(experiment),
            "--reports-dir",
            str(reports),
        ]
    )
    session = f"chaoskit-test-small-{int(time.time() * 1000)}"
    tmux("new-session", "-d", "-s", session, "-x", "80", "-y", "24", f"{command}; sleep 60")
    try:
        screen = ""
        deadline = time.monotonic() + 25
        while time.monotonic() < deadline:
            time.sleep(0.5)
            screen = tmux("capture-pane", "-p", "-t", session)
            if "rider-shortage-at-peak" in screen and "left" in screen:
                break
        lines = screen.rstrip("\n").splitlines()
        assert "● rider-shortage-at-peak" in screen, screen  # the whole fault name
        for check in ("fulfilment_rate", "lost_orders", "phantom_orders", "error_rate"):
            assert check in screen, f"{check!r} cut from:\n{screen}"  # every check row
        assert lines[-1].startswith("╰") and lines[-1].rstrip().endswith("╯"), screen
        assert "..." not in lines[-1]
        deadline = time.monotonic() + 45
        done: list[Path] = []
        while time.monotonic() < deadline and not done:
            time.sleep(0.5)
            done = [
                p
                for p in reports.glob("*/summary.json")
                if json.loads(p.read_text()).get("status") != "running"
            ]
        assert done, "the run did not finish"
        time.sleep(1.0)  # the last frame is drawn before the verdict lines below it
        final = tmux("capture-pane", "-p", "-S", "-60", "-t", session)  # with scrollback
        clocks = re.findall(r"(\d\d:\d\d) / (\d\d:\d\d)", final)
        assert clocks, final
        elapsed, planned = clocks[-1]
        assert elapsed <= planned, final  # never "00:13 / 00:12" in the last frame
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
