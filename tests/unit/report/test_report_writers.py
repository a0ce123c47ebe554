"""Each report writer produces valid output; write_reports keeps going when one fails."""

from __future__ import annotations

import csv
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from chaoskit.errors import InputError
from chaoskit.report import FORMATS, write_reports
from chaoskit.report.html import build_figure
from chaoskit.report.rundir import RunFolder


def test_junit_has_a_suite_per_kind_and_failures_carry_value_and_limit(run_folder: Path) -> None:
    paths = write_reports(run_folder, ["junit"]).paths
    root = ET.parse(paths["junit"]).getroot()
    suites = {s.get("name"): s for s in root.iter("testsuite")}
    assert set(suites) == {"hypothesis", "guardrail", "audit", "run"}

    hypothesis = suites["hypothesis"]
    assert len(hypothesis.findall("testcase")) == 7  # 2 metrics x 3 phases + coupon delay
    assert hypothesis.get("tests") == "7" and hypothesis.get("failures") == "2"
    failed = {
        c.get("name"): c.find("failure")
        for c in hypothesis.findall("testcase")
        if c.find("failure") is not None
    }
    assert set(failed) == {"fulfilment_rate [during]", "coupon_delay_p95_s [during]"}
    message = failed["fulfilment_rate [during]"].get("message")  # type: ignore[union-attr]
    assert message == "fulfilment_rate = 71.0% < min 95.0%"
    assert "> max 1" in failed["coupon_delay_p95_s [during]"].get("message")  # type: ignore[union-attr,operator]

    audit = suites["audit"]
    assert len(audit.findall("testcase")) == 5 and audit.get("failures") == "3"
    lost = next(c for c in audit.findall("testcase") if c.get("name") == "lost_orders")
    assert "o-000101" in (lost.find("failure").text or "")  # type: ignore[union-attr]

    assert len(suites["guardrail"].findall("testcase")) == 1
    assert root.get("tests") == "14" and root.get("failures") == "5" and root.get("errors") == "0"


def test_junit_skips_an_audit_that_did_not_run_and_errors_an_aborted_run(run_folder: Path) -> None:
    raw = json.loads((run_folder / "summary.json").read_text())
    raw["audit"] = {"status": "skipped", "reason": "attach target exposes no ledger"}
    raw["status"], raw["verdict"] = "aborted", "aborted"
    raw["abort"] = {"reason": "guardrail error_rate > 0.5", "metric": "error_rate", "value": 0.7}
    (run_folder / "summary.json").write_text(json.dumps(raw))
    root = ET.parse(write_reports(run_folder, ["junit"]).paths["junit"]).getroot()
    audit = next(s for s in root.iter("testsuite") if s.get("name") == "audit")
    skipped = audit.find("testcase/skipped")
    assert skipped is not None and skipped.get("message") == "attach target exposes no ledger"
    error = root.find("testsuite[@name='run']/testcase/error")
    assert error is not None and error.get("message") == "guardrail error_rate > 0.5"
    assert root.get("skipped") == "1" and root.get("errors") == "1"


def test_markdown_tells_the_verdict_and_has_tables(run_folder: Path) -> None:
    text = write_reports(run_folder, ["md"]).paths["md"].read_text()
    assert text.startswith("# ❌ VIOLATED: festival-surge")
    assert "**Verdict: VIOLATED**" in text
    assert "| `fulfilment_rate` | during | ≥ 95.0% | 71.0% | ❌ violated |" in text
    assert "| `lost_orders` | 2 | ❌ | `o-000101`, `o-000207` |" in text
    assert (
        "| `stores-slow` | store_capacity | store | 30.0 s | 60.0 s | 22 ms | 12 ms | removed |"
        in text
    )
    spark = re.search(r"\| `fulfilment_rate` \| `([▁▂▃▄▅▆▇█ ]+)` \|", text)
    assert spark is not None and len(spark.group(1)) == 40
    assert "▁" in spark.group(1) and "█" in spark.group(1)  # the dip during the store fault


def test_csv_has_t_and_one_column_per_metric(run_folder: Path) -> None:
    path = write_reports(run_folder, ["csv"]).paths["csv"]
    with path.open() as stream:
        rows = list(csv.reader(stream))
    header, body = rows[0], rows[1:]
    assert header[0] == "t"
    assert {"fulfilment_rate", "latency_p95_ms", "failures.store", "riders_free"} <= set(header)
    assert len(header) == len(set(header))
    assert len(body) == 120
    assert all(len(row) == len(header) for row in body)
    p99 = header.index("latency_p99_ms")
    assert body[0][p99] == ""  # no value yet: empty cell
    assert float(body[10][header.index("target_load")]) > 0
    assert body[3][0] == "3"


def test_html_is_self_contained_with_every_chart_row(run_folder: Path) -> None:
    run = RunFolder(run_folder)
    figure = build_figure(run)
    titles = [a.text for a in figure.layout.annotations]
    for expected in ("Load", "Fulfilment", "Latency", "Failures", "Coupons", "Store", "Riders"):
        assert any(t.startswith(expected) for t in titles), expected
    assert len(figure.layout.shapes) >= 3 * 7  # each fault shaded on every row
    names = {trace.name for trace in figure.data}
    assert {"planned shape", "target", "achieved rate", "p99", "store", "busy"} <= names

    text = write_reports(run_folder, ["html"]).paths["html"].read_text()
    assert text.startswith("<!DOCTYPE html>")
    assert "<script src=" not in text  # no CDN: plotly.js is inline
    assert "Plotly.newPlot" in text
    assert 3_000_000 < len(text) < 6_000_000
    assert '<div class="verdict" style="background:#cf222e">VIOLATED</div>' in text
    for heading in ("Hypothesis checks per phase", "Guardrails", "Audit", "Faults", "definitions"):
        assert heading in text
    assert "o-000207" in text and "clients told success" in text


def test_html_downsamples_long_series(tmp_path: Path) -> None:
    from conftest import build_run_folder

    run = RunFolder(build_run_folder(tmp_path / "long", seconds=8000, outcomes=0))
    figure = build_figure(run)
    assert max(len(trace.x) for trace in figure.data) <= 3600


def test_write_reports_all_formats(run_folder: Path) -> None:
    result = write_reports(run_folder)
    assert result.ok and set(result.paths) == set(FORMATS)
    assert result.paths["json"] == run_folder / "summary.json"
    for path in result.paths.values():
        assert path.is_file() and path.stat().st_size > 0


def test_one_failing_writer_does_not_stop_the_others(run_folder: Path) -> None:
    (run_folder / "report.md").mkdir()  # the markdown writer cannot write its file
    result = write_reports(run_folder, ["html", "md", "junit", "csv"])
    assert set(result.errors) == {"md"}
    assert "IsADirectoryError" in result.errors["md"]
    assert set(result.paths) == {"html", "junit", "csv"}
    assert not result.ok


def test_unknown_format_is_an_input_error(run_folder: Path) -> None:
    with pytest.raises(InputError, match="expected some of html, md, json, junit, csv, got pdf"):
        write_reports(run_folder, ["html", "pdf"])


def test_reports_from_a_run_that_is_still_running(tmp_path: Path) -> None:
    """A summary written mid-run (no verdict, no audit, no plan) still renders."""
    from conftest import build_run_folder, make_summary

    summary = make_summary().model_copy(
        update={"status": "running", "verdict": None, "audit": None, "plan": None, "checks": []}
    )
    folder = build_run_folder(tmp_path / "live", seconds=20, outcomes=0, summary=summary)
    result = write_reports(folder)
    assert result.ok, result.errors
    assert "RUNNING" in result.paths["md"].read_text()


def test_every_view_shows_queued_credits_skipped_invariants_and_free_order_kpis(
    run_folder: Path,
) -> None:
    raw = json.loads((run_folder / "summary.json").read_text())
    raw["audit"]["invariants"]["late_credits"] = {"count": 3, "order_ids": ["o-9", "o-8", "o-7"]}
    raw["audit"]["invariants"]["lost_entitlements"] = {
        "count": 0,
        "order_ids": [],
        "skipped": "the target names no eligibility ledger (grants)",
    }
    raw["audit"].update(queued_credits=42, oldest_queued_age_s=37.5, credit_slo_s=30.0)
    raw["metrics"]["free_orders_honoured_rate"] = 0.97
    raw["phases"]["during"]["first_try_failure_rate"] = 0.5
    (run_folder / "summary.json").write_text(json.dumps(raw))
    paths = write_reports(run_folder, ["md", "html", "junit"]).paths
    queue = "42 credits of this run were still durably queued in the outbox, the oldest 37.5 s"
    md = paths["md"].read_text()
    assert queue in md and "| `lost_entitlements` | – | – skipped |" in md
    assert "`free_orders_honoured_rate`" in md and "97.0%" in md
    assert "`first_try_failure_rate`" in md
    html = paths["html"].read_text()
    assert queue in html and "free_orders_honoured_rate" in html
    root = ET.parse(paths["junit"]).getroot()
    audit = next(s for s in root.iter("testsuite") if s.get("name") == "audit")
    cases = {c.get("name"): c for c in audit.iter("testcase")}
    skipped = cases["lost_entitlements"].find("skipped")
    assert skipped is not None and "no eligibility ledger" in str(skipped.get("message"))
    assert cases["late_credits"].find("failure") is not None
