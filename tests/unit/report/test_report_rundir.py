"""Reading run folders: samples, truncated journals, fault spans, outcomes; making run folders."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from chaoskit.errors import InputError
from chaoskit.report._format import downsample, sparkline
from chaoskit.report.rundir import RunFolder, make_run_dir


def test_make_run_dir_is_timestamped_and_unique(tmp_path: Path) -> None:
    first = make_run_dir(tmp_path / "reports", "festival surge/1")
    second = make_run_dir(tmp_path / "reports", "festival surge/1")
    assert first != second
    assert first.is_dir() and second.is_dir()
    assert re.fullmatch(r"\d{8}-\d{6}-festival-surge-1", first.name)
    assert second.name.startswith(first.name)


def test_reads_samples_into_columns(run_folder: Path) -> None:
    run = RunFolder(run_folder)
    series = run.series
    assert len(series) == 120
    assert series.t[:3] == [0.0, 1.0, 2.0]
    assert len(series.columns["fulfilment_rate"]) == 120
    assert series.columns["latency_p99_ms"][0] is None  # absent value stays a gap
    assert series.columns["rider_wait_p95_s"][5] is None  # NaN in the journal became null
    assert not series.has_data("intents")
    assert [e["type"] for e in run.events("phase_changed")] == ["phase_changed"] * 3
    assert run.unreadable_lines == 0


def test_truncated_last_line_of_an_interrupted_run_is_skipped(run_folder: Path) -> None:
    journal = run_folder / "events.jsonl"
    text = journal.read_text()
    journal.write_text(text + '{"type":"sample","t":120.0,"metrics":{"fulfilment_ra')
    run = RunFolder(run_folder)
    assert len(run.series) == 120
    assert run.unreadable_lines == 1


def test_a_sample_appearing_late_is_padded(tmp_path: Path, run_folder: Path) -> None:
    lines = [
        {"type": "sample", "t": 0, "metrics": {"a": 1}},
        {"type": "sample", "t": 1, "metrics": {"a": 2, "b": 5}},
        {"type": "sample", "t": 2, "metrics": {"b": 6}},
    ]
    (run_folder / "events.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    series = RunFolder(run_folder).series
    assert series.columns == {"a": [1.0, 2.0, None], "b": [None, 5.0, 6.0]}


def test_fault_spans_prefer_applied_times_then_journal_then_plan(run_folder: Path) -> None:
    run = RunFolder(run_folder)
    spans = run.fault_spans()
    assert [(s.name, s.start, s.end, s.planned_only) for s in spans] == [
        ("stores-slow", 30.03, 60.02, False),
        ("coupon-lag", 50.03, 80.02, False),
        ("lbs-latency", 70.03, 90.02, False),
    ]
    # A run killed before summary.json knew about its faults: the journal and plan still do.
    raw = json.loads((run_folder / "summary.json").read_text())
    raw["faults"] = []
    (run_folder / "summary.json").write_text(json.dumps(raw))
    journal = run_folder / "events.jsonl"
    kept = [ln for ln in journal.read_text().splitlines() if '"lbs-latency"' not in ln]
    journal.write_text("\n".join(kept) + "\n")
    spans = RunFolder(run_folder).fault_spans()
    assert [(s.name, s.start, s.planned_only) for s in spans] == [
        ("stores-slow", 30.03, False),
        ("coupon-lag", 50.03, False),
        ("lbs-latency", 70.0, True),
    ]


def test_outcome_tally_counts_what_clients_were_told(run_folder: Path) -> None:
    with (run_folder / "outcomes" / "4242.jsonl").open("a") as stream:
        stream.write('{"intent":"i-x","told":"o')  # half a line from a killed engine
    tally = RunFolder(run_folder).outcome_tally()
    assert tally is not None
    assert tally.attempts == 3000
    assert set(tally.told) == {"ok", "failed", "timeout"}
    assert tally.failed_steps["store"] == tally.told["failed"]
    assert tally.unreadable_lines == 1


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda p: None, "no such directory"),
        (lambda p: p.mkdir(), "no summary.json"),
        (lambda p: (p.mkdir(), (p / "summary.json").write_text("{")), "not readable JSON"),
        (
            lambda p: (p.mkdir(), (p / "summary.json").write_text('{"schema": 1}')),
            "run_id: Field required",
        ),
    ],
)
def test_not_a_run_folder_is_an_input_error(tmp_path: Path, setup: object, message: str) -> None:
    path = tmp_path / "run"
    setup(path)  # type: ignore[operator]
    with pytest.raises(InputError, match=re.escape(message)):
        RunFolder(path)


def test_downsample_keeps_spikes_and_bounds_points() -> None:
    t = [float(i) for i in range(10_800)]
    values: list[float | None] = [1.0] * 10_800
    values[5_001] = 99.0  # a one-second spike must survive
    values[7_000:7_100] = [None] * 100
    x, y = downsample(t, values, 3600)
    assert len(x) <= 3600
    assert max(v for v in y if v is not None) == 99.0
    assert None in y  # a gap stays a gap
    assert x == sorted(x)
    short_t, short_v = downsample(t[:10], values[:10], 3600)
    assert short_t == t[:10] and short_v == values[:10]


def test_sparkline_shape() -> None:
    assert sparkline([0, 1, 2, 3, 4, 5, 6, 7], 8) == "▁▂▃▄▅▆▇█"
    assert sparkline([None, None]) == ""
    assert sparkline([1.0, None, 1.0], 3) == "▄ ▄"


def test_outcome_fast_path_and_line_by_line_parse_agree(run_folder: Path) -> None:
    outcomes = run_folder / "outcomes" / "4242.jsonl"
    fast = RunFolder(run_folder).outcome_tally()
    # The same records with keys in another order cannot take the regex path.
    records = [json.loads(line) for line in outcomes.read_text().splitlines()]
    outcomes.write_text("".join(json.dumps(dict(reversed(r.items()))) + "\n" for r in records))
    slow = RunFolder(run_folder).outcome_tally()
    assert fast is not None and slow is not None
    assert fast.attempts == slow.attempts == 3000
    assert fast.told == slow.told
    assert (
        fast.failed_steps
        == slow.failed_steps
        == {"store": fast.told["failed"], "-": fast.told["timeout"]}
    )
    assert fast.statuses == slow.statuses
    assert fast.unreadable_lines == slow.unreadable_lines == 0
