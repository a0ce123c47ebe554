"""Reading a finished run's folder in e2e tests: one copy for every test module."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def summary(run_dir: Path) -> dict[str, Any]:
    """The run's summary.json."""
    data: dict[str, Any] = json.loads((run_dir / "summary.json").read_text())
    return data


def only_run_dir(reports: Path) -> Path:
    """The one run folder under ``reports`` (a test that made two has a bug)."""
    runs = [p for p in reports.iterdir() if p.is_dir()]
    assert len(runs) == 1, runs
    return runs[0]


def events(run_dir: Path) -> list[dict[str, Any]]:
    """The run's events.jsonl, one dict per event."""
    lines = (run_dir / "events.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]
