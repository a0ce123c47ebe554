"""`chaoskit report show | compare | render` through Typer's CliRunner."""

from __future__ import annotations

from pathlib import Path

from conftest import build_run_folder, make_summary
from typer.testing import CliRunner

from chaoskit.cli import app

runner = CliRunner()


def test_show_prints_verdict_metrics_checks_faults_and_audit(run_folder: Path) -> None:
    result = runner.invoke(app, ["report", "show", str(run_folder)], env={"COLUMNS": "160"})
    assert result.exit_code == 0, result.output
    out = result.output
    assert "VIOLATED" in out and "festival-surge" in out
    assert "fulfilment_rate" in out and "86.8%" in out
    assert "share of intents fulfilled" in out  # descriptions from the registry
    assert "violated" in out and "stores-slow" in out
    assert "lost_orders" in out and "o-000101" in out
    narrow = runner.invoke(app, ["report", "show", str(run_folder)], env={"COLUMNS": "80"})
    assert "definitions below" in narrow.output  # descriptions move under the table
    assert "fulfilment_rate: share of intents fulfilled" in narrow.output
    assert max(len(line) for line in narrow.output.splitlines()) <= 80


def test_compare_shows_deltas_and_changed_verdicts(tmp_path: Path) -> None:
    coupled = build_run_folder(tmp_path / "coupled", seconds=30, outcomes=0)
    decoupled_summary = make_summary(run_id="decoupled-run", verdict="held", coupon_ok=True)
    decoupled_summary.metrics["fulfilment_rate"] = 0.97
    decoupled = build_run_folder(
        tmp_path / "decoupled", seconds=30, outcomes=0, summary=decoupled_summary
    )
    result = runner.invoke(
        app, ["report", "compare", str(coupled), str(decoupled)], env={"COLUMNS": "160"}
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    fulfilment = next(ln for ln in lines if ln.strip("│ ").startswith("fulfilment_rate"))
    assert "86.8%" in fulfilment and "97.0%" in fulfilment
    assert "+10.2 pp" in fulfilment and "better" in fulfilment
    delay = next(ln for ln in lines if ln.strip("│ ").startswith("coupon_delay_p95_s"))
    assert "better" in delay  # lower is better for a delay
    assert "Verdicts that changed" in result.output
    changed = result.output.split("Verdicts that changed", 1)[1]
    assert "coupon_delay_p95_s" in changed and "missing_credits" in changed
    assert "fulfilment_rate" not in changed  # its checks did not change
    assert "VIOLATED" in changed and "HELD" in changed


def test_compare_one_phase(run_folder: Path) -> None:
    result = runner.invoke(
        app, ["report", "compare", str(run_folder), str(run_folder), "--phase", "during"]
    )
    assert result.exit_code == 0, result.output
    assert "Metrics (during)" in result.output and "No verdict changed." in result.output
    bad = runner.invoke(
        app, ["report", "compare", str(run_folder), str(run_folder), "--phase", "x"]
    )
    assert bad.exit_code == 2
    assert "--phase: expected baseline, during or recovery" in bad.output


def test_render_rewrites_the_chosen_formats(run_folder: Path) -> None:
    result = runner.invoke(app, ["report", "render", str(run_folder), "--formats", "md,junit"])
    assert result.exit_code == 0, result.output
    assert (run_folder / "report.md").is_file() and (run_folder / "junit.xml").is_file()
    assert not (run_folder / "report.html").exists()


def test_render_reports_a_failing_format_and_exits_nonzero(run_folder: Path) -> None:
    (run_folder / "junit.xml").mkdir()
    result = runner.invoke(app, ["report", "render", str(run_folder), "-f", "md", "-f", "junit"])
    assert result.exit_code == 4  # a report that could not be written is an error, never "violated"
    assert "junit: IsADirectoryError" in result.output
    assert (run_folder / "report.md").is_file()


def test_bad_run_dir_is_one_line_and_exit_2(tmp_path: Path) -> None:
    for command in (["show", str(tmp_path / "nope")], ["render", str(tmp_path)]):
        result = runner.invoke(app, ["report", *command])
        assert result.exit_code == 2, result.output
        lines = [ln for ln in result.output.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("error:"), result.output
        assert "Traceback" not in result.output
    result = runner.invoke(app, ["report", "compare", str(tmp_path), str(tmp_path)])
    assert result.exit_code == 2 and "no summary.json" in result.output


def test_render_unknown_format_is_exit_2(run_folder: Path) -> None:
    result = runner.invoke(app, ["report", "render", str(run_folder), "--formats", "pdf"])
    assert result.exit_code == 2
    assert "got pdf" in result.output


def test_compare_lists_every_invariant_queued_credits_and_free_order_kpis(tmp_path: Path) -> None:
    from chaoskit.report.summary import Invariant

    coupled_summary = make_summary(run_id="coupled-run")
    assert coupled_summary.audit is not None
    coupled_summary.audit.invariants["lost_entitlements"] = Invariant(count=2904, order_ids=["a"])
    coupled_summary.metrics["free_orders_honoured_rate"] = 0.575
    decoupled_summary = make_summary(run_id="decoupled-run", verdict="held", coupon_ok=True)
    assert decoupled_summary.audit is not None
    decoupled_summary.audit.invariants["lost_entitlements"] = Invariant(count=0)
    decoupled_summary.audit.queued_credits = 12
    decoupled_summary.metrics["free_orders_honoured_rate"] = 1.0
    coupled = build_run_folder(tmp_path / "a", seconds=30, outcomes=0, summary=coupled_summary)
    decoupled = build_run_folder(tmp_path / "b", seconds=30, outcomes=0, summary=decoupled_summary)
    result = runner.invoke(
        app, ["report", "compare", str(coupled), str(decoupled)], env={"COLUMNS": "160"}
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    honoured = next(ln for ln in lines if ln.strip("│ ").startswith("free_orders_honoured_rate"))
    assert "57.5%" in honoured and "100.0%" in honoured and "better" in honoured
    audit = result.output.split("Audit invariants", 1)[1]
    lost = next(ln for ln in audit.splitlines() if "lost_entitlements" in ln)
    assert "2,904" in lost and "0" in lost
    assert "double_credits" in audit  # unchanged invariants are listed too
    queued = next(ln for ln in audit.splitlines() if "credits still queued" in ln)
    assert "12" in queued
