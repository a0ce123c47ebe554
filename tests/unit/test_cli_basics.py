"""The first five minutes: --version, shell completion, and plan numbers a person can read."""

from __future__ import annotations

import io
import math
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from chaoskit import __version__
from chaoskit.cli import app
from chaoskit.cli.experiment import render_plan
from chaoskit.experiment.durations import format_duration_approx
from chaoskit.experiment.loader import parse_experiment
from chaoskit.load.shapes import format_amount
from chaoskit.planning import build_plan


@pytest.mark.parametrize("flag", ["--version", "-V"])
def test_version_flag_prints_the_version(flag: str) -> None:
    result = CliRunner().invoke(app, [flag])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"chaoskit {__version__}"


def test_shell_completion_is_switched_on() -> None:
    result = CliRunner(env={"COLUMNS": "100"}).invoke(app, ["--help"])
    assert "--install-completion" in result.stdout and "--show-completion" in result.stdout


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(34.989201, "35s"), (47.506993, "47.5s"), (67.5, "1m7.5s"), (0.2504, "250ms"), (3, "3s")],
)
def test_computed_durations_read_like_a_person_wrote_them(seconds: float, text: str) -> None:
    assert format_duration_approx(seconds) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [(1e12, "1T"), (999_999, "1M"), (999.7, "1k"), (1_234_567, "1.23M"), (math.inf, "∞")],
)
def test_amounts_never_print_an_exponent_with_a_unit(value: float, text: str) -> None:
    assert format_amount(value) == text


def test_plan_prints_no_float_noise(tmp_path: Path) -> None:
    text = (
        "version: 1\nname: v\nload:\n"
        "  shape: {kind: viral, start: 10, doubling: 7s, cap: 1000, hold: 1s}\n"
    )
    experiment = parse_experiment(text, path=tmp_path / "v.yaml")
    console = Console(file=io.StringIO(), width=100, no_color=True)
    render_plan(build_plan(experiment), experiment, console)
    out = console.file.getvalue()  # type: ignore[attr-defined]
    assert "duration 47.5s" in out
    assert "46.506993" not in out and "47.506993" not in out and "e+" not in out
