"""Load shapes: the scheduled value matches each kind's formula at every second of the run."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chaoskit.errors import ExperimentError
from chaoskit.experiment.models import parse_shape
from chaoskit.load.shapes import (
    CustomCurve,
    LoadPhase,
    LoadShapeCurve,
    ViralCurve,
    build_shape,
    format_amount,
)


def _curve(data: dict[str, Any], base_dir: Path = Path(".")) -> LoadShapeCurve:
    return build_shape(parse_shape(data), base_dir=base_dir)


def _seconds(curve: LoadShapeCurve) -> range:
    return range(math.ceil(curve.duration_s) + 2)


def test_constant_is_flat_then_zero() -> None:
    curve = _curve({"kind": "constant", "for": "30s", "rate": 12.5})
    assert curve.duration_s == 30
    for t in _seconds(curve):
        assert curve.value_at(t) == (12.5 if t < 30 else 0.0)
    assert curve.value_at(-1) == 0.0
    assert curve.peak == 12.5
    assert curve.total() == pytest.approx(375)
    assert curve.phases() == [LoadPhase(0, 30, "constant", 12.5, 12.5)]


def test_stages_hold_each_value_for_its_time() -> None:
    curve = _curve(
        {
            "kind": "stages",
            "stages": [
                {"for": "20s", "rate": 20},
                {"for": "50s", "rate": 80, "name": "peak"},
                {"for": "20s", "rate": 20},
            ],
        }
    )
    for t in _seconds(curve):
        expected = 20 if t < 20 else 80 if t < 70 else 20 if t < 90 else 0
        assert curve.value_at(t) == expected, t
    assert [p.label for p in curve.phases()] == ["stage 1", "peak", "stage 3"]
    assert curve.total() == pytest.approx(20 * 20 + 50 * 80 + 20 * 20)


@given(
    st.lists(
        st.tuples(st.integers(1, 60), st.floats(0, 500, allow_nan=False)), min_size=1, max_size=8
    )
)
def test_stages_property(stages: list[tuple[int, float]]) -> None:
    curve = _curve(
        {"kind": "stages", "stages": [{"for": length, "rate": rate} for length, rate in stages]}
    )
    assert curve.duration_s == sum(length for length, _ in stages)
    start = 0
    for length, rate in stages:
        for t in range(start, start + length):
            assert curve.value_at(t) == rate
            assert curve.value_at(t + 0.5) == rate
        start += length
    assert curve.value_at(start) == 0.0
    assert curve.peak == max(rate for _, rate in stages)


def test_ramp_is_linear() -> None:
    curve = _curve({"kind": "ramp", "for": "1m", "from": 10, "to": 130})
    for t in _seconds(curve):
        expected = 10 + (130 - 10) * t / 60 if t < 60 else 0.0
        assert curve.value_at(t) == pytest.approx(expected), t
    assert curve.total() == pytest.approx(60 * 70)


@given(
    st.integers(1, 600),
    st.floats(0, 1000, allow_nan=False),
    st.floats(0, 1000, allow_nan=False),
    st.floats(0, 1, allow_nan=False, exclude_max=True),
)
def test_ramp_property(length: int, start: float, end: float, fraction: float) -> None:
    curve = _curve({"kind": "ramp", "for": length, "from": start, "to": end})
    t = fraction * length
    assert curve.value_at(t) == pytest.approx(start + (end - start) * fraction, abs=1e-6)
    assert min(start, end) - 1e-9 <= curve.value_at(t) <= max(start, end) + 1e-9
    assert curve.value_at(length) == 0.0
    assert curve.peak == max(start, end)


def test_step_adds_step_every_period() -> None:
    curve = _curve({"kind": "step", "start": 10, "step": 15, "every": "10s", "steps": 5})
    assert curve.duration_s == 50
    for t in _seconds(curve):
        expected = 10 + 15 * (t // 10) if t < 50 else 0.0
        assert curve.value_at(t) == expected, t
    assert [p.label for p in curve.phases()] == [f"step {k}" for k in range(1, 6)]


def test_step_may_go_down_but_never_below_zero() -> None:
    curve = _curve({"kind": "step", "start": 40, "step": -10, "every": 5, "steps": 5})
    assert [curve.value_at(t) for t in range(0, 25, 5)] == [40, 30, 20, 10, 0]
    with pytest.raises(ValueError, match="must not be negative"):
        parse_shape({"kind": "step", "start": 10, "step": -10, "every": 5, "steps": 3})


def test_spike_rises_to_peak_at_at_holds_and_drops() -> None:
    shape = {
        "kind": "spike",
        "base": 10,
        "peak": 100,
        "at": "20s",
        "rise": "5s",
        "spike_for": "10s",
        "total": "45s",
    }
    curve = _curve(shape)
    for t in _seconds(curve):
        if t < 15:
            expected = 10.0
        elif t < 20:
            expected = 10 + 90 * (t - 15) / 5
        elif t < 30:
            expected = 100.0
        elif t < 45:
            expected = 10.0
        else:
            expected = 0.0
        assert curve.value_at(t) == pytest.approx(expected), t
    assert [p.label for p in curve.phases()] == ["base", "rise", "spike", "after spike"]


def test_spike_without_rise_jumps() -> None:
    curve = _curve({"kind": "spike", "base": 5, "peak": 50, "at": 10, "spike_for": 5, "total": 20})
    assert [curve.value_at(t) for t in (9, 10, 14, 15)] == [5, 50, 50, 5]
    assert len(curve.phases()) == 3  # the empty rise is not a phase


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"rise": "25s"}, "must fit before at"),
        ({"total": "25s"}, "must not exceed total"),
    ],
)
def test_spike_must_fit(changes: dict[str, str], message: str) -> None:
    shape = {"kind": "spike", "base": 1, "peak": 2, "at": "20s", "spike_for": "10s", "total": 40}
    with pytest.raises(ValueError, match=message):
        parse_shape({**shape, **changes})


def test_viral_doubles_until_the_cap_then_holds() -> None:
    shape = {"kind": "viral", "start": 2, "doubling": "10m", "cap": 128, "hold": "20s"}
    curve = _curve({**shape, "time_scale": 60})  # one real second is one story minute
    assert isinstance(curve, ViralCurve)
    # 2 -> 128 is 6 doublings of 10 story minutes = 60 real seconds.
    assert curve.duration_s == pytest.approx(80)
    for t in _seconds(curve):
        expected = min(128, 2 * 2 ** (t * 60 / 600)) if t < 80 else 0.0
        assert curve.value_at(t) == pytest.approx(expected), t
    assert curve.value_at(59.99) < 128 and curve.value_at(60) == pytest.approx(128)
    assert curve.peak == 128
    assert [p.label for p in curve.phases()] == ["viral growth", "hold at cap"]
    # The integral in closed form agrees with a fine numeric sum.
    numeric = sum(curve.value_at(i / 100 + 0.005) for i in range(8000)) / 100
    assert curve.total() == pytest.approx(numeric, rel=1e-3)


def test_viral_rate_scale_scales_every_value() -> None:
    plain = _curve({"kind": "viral", "start": 1, "doubling": 4, "cap": 16, "hold": 4})
    scaled = _curve(
        {"kind": "viral", "start": 1, "doubling": 4, "cap": 16, "hold": 4, "rate_scale": 0.5}
    )
    for t in _seconds(plain):
        assert scaled.value_at(t) == pytest.approx(plain.value_at(t) * 0.5)


def test_viral_milestones_play_the_festival_curve() -> None:
    curve = _curve(
        {
            "kind": "viral",
            "milestones": [
                {"at": "3h", "total": 1_000_000},
                {"at": "5h", "total": 5_000_000},
                {"at": "9h", "total": 10_000_000},
            ],
            "time_scale": 480,
            "rate_scale": 0.0004,
        }
    )
    assert curve.duration_s == pytest.approx(9 * 3600 / 480)
    scale = 480 * 0.0004
    for t in _seconds(curve):
        story = t * 480
        if story < 3 * 3600:
            slope = 1_000_000 / (3 * 3600)
        elif story < 5 * 3600:
            slope = 4_000_000 / (2 * 3600)
        elif story < 9 * 3600:
            slope = 5_000_000 / (4 * 3600)
        else:
            slope = 0.0
        assert curve.value_at(t) == pytest.approx(slope * scale), t
    # Every real order of the day shows up, scaled: 10M * rate_scale arrivals.
    assert curve.total() == pytest.approx(10_000_000 * 0.0004)
    assert curve.peak == pytest.approx(4_000_000 / 7200 * scale)
    assert [p.label for p in curve.phases()] == ["1M by 3h", "5M by 5h", "10M by 9h"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"milestones": [{"at": "3h", "total": 10}, {"at": "2h", "total": 20}]}, "must increase"),
        ({"milestones": [{"at": "3h", "total": 10}, {"at": "4h", "total": 5}]}, "not decrease"),
        ({"milestones": [{"at": "3h", "total": 1}], "start": 1}, "not both"),
        ({"start": 1, "cap": 10}, "missing doubling, hold"),
    ],
)
def test_viral_forms_are_checked(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_shape({"kind": "viral", **data})


def test_replay_interpolates_the_csv(tmp_path: Path) -> None:
    (tmp_path / "day.csv").write_text("time_s,rate\n0,10\n20,30\n40,30\n60,0\n")
    curve = _curve({"kind": "replay", "file": "day.csv", "time_scale": 2}, tmp_path)
    assert curve.duration_s == 30
    for t in _seconds(curve):
        story = t * 2
        if story < 20:
            expected = 10 + 20 * story / 20
        elif story < 40:
            expected = 30.0
        elif story < 60:
            expected = 30 - 30 * (story - 40) / 20
        else:
            expected = 0.0
        assert curve.value_at(t) == pytest.approx(expected), t
    assert curve.phases() == [LoadPhase(0, 30, "replay day.csv", 10, 0)]


def test_replay_holds_the_first_value_before_the_first_row(tmp_path: Path) -> None:
    (tmp_path / "late.csv").write_text("time_s,users\n10,4\n20,8\n")
    curve = _curve({"kind": "replay", "file": str(tmp_path / "late.csv")}, Path("/nonexistent"))
    assert [curve.value_at(t) for t in (0, 9, 10, 15, 20)] == [4, 4, 4, 6, 0]


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("when,rate\n0,1\n", 1, "expected a header time_s,rate"),
        ("time_s,rate\n0,1\n5\n", 3, "expected 2 columns, got 1"),
        ("time_s,rate\n0,1\n\n5,-2\n", 4, "rate: expected a number >= 0, got '-2'"),
        ("time_s,rate\n0,1\n5,2\n5,3\n", 4, "time_s must increase, got 5 after 5"),
        ("time_s,rate\nsoon,1\n", 2, "time_s: expected a number >= 0, got 'soon'"),
        ("time_s,rate\n0,1\n", None, "expected at least 2 rows"),
    ],
)
def test_replay_csv_errors_name_the_line(
    tmp_path: Path, text: str, line: int | None, message: str
) -> None:
    (tmp_path / "bad.csv").write_text(text)
    with pytest.raises(ExperimentError) as info:
        _curve({"kind": "replay", "file": "bad.csv"}, tmp_path)
    assert info.value.line == line
    assert info.value.path == tmp_path / "bad.csv"
    assert message in str(info.value)


def test_custom_shape_knows_only_its_length() -> None:
    curve = _curve({"kind": "custom", "class": "shapes.py:Waves", "for": "40s"})
    assert isinstance(curve, CustomCurve)
    assert curve.duration_s == 40
    assert math.isnan(curve.value_at(10)) and curve.value_at(40) == 0.0
    assert math.isnan(curve.peak)


@pytest.mark.parametrize(
    ("value", "text"),
    [(0, "0"), (12.5, "12.5"), (2500, "2.5k"), (1_000_000, "1M"), (math.nan, "?")],
)
def test_format_amount(value: float, text: str) -> None:
    assert format_amount(value) == text


def test_shapes_module_does_not_import_locust() -> None:
    import subprocess
    import sys

    code = (
        "import sys, chaoskit.load.shapes; print('locust' in sys.modules, 'gevent' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "False False"
