"""`chaoskit validate`, `plan` and `schema` through the real Typer app (and one subprocess)."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from chaoskit.cli import app
from chaoskit.cli.experiment import render_plan
from chaoskit.experiment.loader import load_experiment
from chaoskit.planning import build_plan

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
FESTIVAL = REPO / "experiments" / "festival-surge.yaml"
EXPERIMENTS = sorted((REPO / "experiments").glob("*.yaml"))
BAD = "version: 1\nname: bad\nload:\n  shape: {kind: constant, for: thirty, rate: 5}\n"


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner(env={"NO_COLOR": "1", "COLUMNS": "100"})


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: p.name)
def test_validate_ok_prints_one_line(runner: CliRunner, path: Path) -> None:
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"✓ {path}: {path.stem} is valid (")


def test_validate_summary_counts(runner: CliRunner) -> None:
    result = runner.invoke(app, ["validate", str(FESTIVAL)])
    assert (
        "(viral shape, open model, 1m7.5s, peak 107 arrivals/s, 4 faults, 6 checks, 1 guardrail)"
        in result.stdout
    )


def test_validate_bad_file_exits_2_with_one_line(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(BAD)
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0] == (
        f'error: {path}:4:32: load.shape.for: expected a duration like "30s", "250ms", "5m" or '
        '"1h30m", got "thirty"'
    )
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_validate_missing_file_exits_2(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(app, ["validate", str(tmp_path / "none.yaml")])
    assert result.exit_code == 2
    assert "none.yaml: no such experiment file" in result.stderr
    assert "Traceback" not in result.output


def test_plan_renders_phases_faults_and_timeline(runner: CliRunner) -> None:
    result = runner.invoke(app, ["plan", str(FESTIVAL)])
    assert result.exit_code == 0, result.output
    out = result.stdout
    for expected in (
        "festival-surge",
        "Load phases",
        "5M by 5h",
        "Fault windows",
        "coupon-ledger-lag",
        "lag=1.5s",
        "Timeline",
        "|0s",
        "1m7.5s|",
        "baseline",
    ):
        assert expected in out
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= 100
    # The slow-inventory bar covers 12 s..32 s of 67.5 s, with its first 5 s ramping.
    bar = next(line for line in lines if line.startswith("slow-inventory ") and "·" in line)[18:]
    assert bar.index("▒") == pytest.approx(12 / 67.5 * len(bar), abs=1)
    assert bar.rstrip("·").rindex("█") + 1 == pytest.approx(32 / 67.5 * len(bar), abs=1)


def test_plan_fits_100_columns_on_a_wide_console() -> None:
    for path in EXPERIMENTS:
        experiment = load_experiment(path)
        out = Console(file=io.StringIO(), width=160, color_system=None)
        render_plan(build_plan(experiment), experiment, out, source=str(path))
        text = out.file.getvalue()  # type: ignore[attr-defined]
        assert max(len(line) for line in text.splitlines()) <= 100, path


def test_plan_shows_triggers_and_notes(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(
        "version: 1\nname: t\nload:\n  shape: {kind: ramp, for: 30s, from: 1, to: 20}\n"
        "faults:\n  - {name: pause, kind: store_pause, for: 5s,"
        " when: {metric: orders_per_s, above: 10}}\n"
    )
    result = runner.invoke(app, ["plan", str(path)])
    assert result.exit_code == 0, result.output
    assert "when orders_per_s > 10" in result.stdout
    assert "┄┄┄" in result.stdout
    assert 'note: fault "pause" starts when orders_per_s > 10' in result.stdout


def test_schema_is_json_schema(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(app, ["schema"])
    assert result.exit_code == 0
    schema = json.loads(result.stdout)
    assert schema["$schema"].startswith("https://json-schema.org/")
    assert schema["required"] == ["version", "name", "load"]
    assert schema["additionalProperties"] is False
    target = tmp_path / "schema.json"
    result = runner.invoke(app, ["schema", "--output", str(target)])
    assert result.exit_code == 0
    assert json.loads(target.read_text()) == schema


def test_bad_file_as_a_subprocess_exits_2_with_one_stderr_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(BAD)
    result = subprocess.run(
        [sys.executable, "-m", "chaoskit", "validate", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"NO_COLOR": "1", "COLUMNS": "200", "PATH": "/usr/bin:/bin"},
        cwd=REPO,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: {path}:4:32: load.shape.for: expected a duration")
