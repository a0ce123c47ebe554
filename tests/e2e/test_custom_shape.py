"""A custom LoadTestShape end to end: `chaoskit run` drives it and writes every report.

Before: a correct shape ran, then the summary was refused (`plan.load_phases.0.from: Input
should be a valid number`), exit 2, no HTML or Markdown report.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

RunStack = Any  # the run_stack fixture (tests/e2e/conftest.py)

pytestmark = pytest.mark.e2e

WAVES = '''\
from locust import LoadTestShape


class Waves(LoadTestShape):
    """5 users, then 10, then the shape ends itself."""

    def tick(self):
        t = self.get_run_time()
        if t >= 7:
            return None
        return (5 if t < 3 else 10, 10)
'''

BODY = """
load:
  model: closed
  behaviour: {think_time: 500ms}
  shape: {kind: custom, class: waves.py:Waves, for: 8s}
faults:
  - {name: slow-lbs, kind: latency, dependency: lbs, latency: 20ms, at: 2s, for: 2s}
hypothesis:
  - {metric: lost_orders, max: 0}
report: {formats: [json, md, html, junit]}
"""


def test_a_custom_shape_runs_end_to_end_with_every_report(
    clean_stack: RunStack, tmp_path: Path
) -> None:
    (tmp_path / "waves.py").write_text(WAVES)
    experiment = clean_stack.experiment(tmp_path, "custom-waves", BODY)
    checked = clean_stack.run("validate", str(experiment))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    reports = tmp_path / "reports"
    result = clean_stack.run(
        "run", str(experiment), "--no-dashboard", "--reports-dir", str(reports), timeout=150
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (run_dir,) = [p for p in reports.iterdir() if p.is_dir()]
    data = json.loads((run_dir / "summary.json").read_text())
    assert data["status"] == "completed" and data["verdict"] == "held"
    assert data["plan"]["load_phases"][0]["from"] is None  # decided by tick(), in the engine
    assert data["metrics"]["intents"] > 0
    for report in ("report.md", "report.html", "junit.xml"):
        assert (run_dir / report).is_file(), report
