"""The plan stage: fault windows, check periods and notes laid out on the shape's time axis."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from chaoskit.experiment.loader import load_experiment, parse_experiment
from chaoskit.planning import build_plan

REPO = Path(__file__).resolve().parents[2]


def _experiment(
    faults: str = "", extra: str = "", shape: str = "{kind: constant, for: 60s, rate: 10}"
):  # noqa: E501
    text = textwrap.dedent(
        f"""\
        version: 1
        name: p
        recovery: 10s
        load:
          shape: {shape}
        """
    )
    if faults:
        text += "faults:\n" + textwrap.indent(textwrap.dedent(faults), "  ")
    return parse_experiment(text + textwrap.dedent(extra), path="p.yaml")


def _model_only(faults: str):  # noqa: ANN202
    """An experiment built in Python, past the loader's checks (the plan must still note)."""
    from ruamel.yaml import YAML

    from chaoskit.experiment.models import Experiment

    text = "version: 1\nname: p\nrecovery: 10s\n"
    text += "load:\n  shape: {kind: constant, for: 60s, rate: 10}\n"
    text += "faults:\n" + textwrap.indent(textwrap.dedent(faults), "  ")
    return Experiment.model_validate(json.loads(json.dumps(YAML(typ="safe").load(text))))


def test_festival_plan_windows_and_check_periods() -> None:
    plan = build_plan(load_experiment(REPO / "experiments" / "festival-surge.yaml"))
    assert plan.duration_s == pytest.approx(67.5)
    assert [(w.name, w.start, w.end) for w in plan.fault_windows] == [
        ("slow-inventory", 12.0, 32.0),
        ("coupon-ledger-lag", 22.0, 42.0),
        ("rider-shortage", 28.0, 43.0),
        ("stores-pause", 36.0, 42.0),
    ]
    assert plan.fault_windows[0].ramp == 5.0
    assert plan.fault_windows[0].target == "inventory"
    assert plan.fault_windows[2].params == {"available": 60}
    assert plan.check_phases == {
        "baseline": (0.0, 12.0),
        "during": (12.0, 43.0),
        "recovery": (43.0, 67.5),
    }
    assert plan.notes == ()
    assert plan.peak <= 120  # the 2-core machine's budget for a shipped experiment


@pytest.mark.parametrize("path", sorted((REPO / "experiments").glob("*.yaml")), ids=str)
def test_shipped_experiments_stay_light(path: Path) -> None:
    plan = build_plan(load_experiment(path))
    assert plan.peak <= 120
    assert plan.duration_s <= 90


def test_no_faults_means_all_baseline() -> None:
    plan = build_plan(_experiment())
    assert plan.check_phases == {"baseline": (0.0, 60.0), "during": None, "recovery": None}
    assert plan.notes == ()


def test_windows_past_the_end_and_short_recovery_are_noted() -> None:
    # The loader refuses a fault that can never fire (test_loader); the plan still says so
    # for an experiment built in Python.
    plan = build_plan(
        _model_only(
            """\
            - {name: late, kind: store_pause, at: 55s, for: 20s}
            - {name: never, kind: riders, available: 1, at: 70s, for: 5s}
            """
        )
    )
    late, never = plan.fault_windows
    assert late.span(plan.duration_s) == (55.0, 60.0)
    assert never.span(plan.duration_s) == (60.0, 60.0)
    assert plan.check_phases == {"baseline": (0.0, 55.0), "during": (55.0, 60.0), "recovery": None}
    notes = " | ".join(plan.notes)
    assert 'fault "late" would last until 1m15s, past the load end (1m)' in notes
    assert 'fault "never" starts at 1m10s, when the load (1m) is over' in notes
    assert "no recovery period" in notes


def test_recovery_shorter_than_setting_is_noted() -> None:
    plan = build_plan(_experiment("- {name: a, kind: store_pause, at: 10s, for: 45s}\n"))
    assert plan.check_phases["recovery"] == (55.0, 60.0)
    assert plan.notes == ("the recovery period is 5s, shorter than recovery: 10s",)


def test_until_end_fault_has_no_end() -> None:
    plan = build_plan(_experiment("- {name: a, kind: store_pause, at: 10s}\n"))
    (window,) = plan.fault_windows
    assert window.end is None and window.length is None
    assert window.span(60.0) == (10.0, 60.0)
    assert plan.to_json()["fault_windows"][0] == {
        "name": "a",
        "kind": "store_pause",
        "start": 10.0,
        "end": None,
    }


def test_metric_triggered_fault_makes_the_whole_run_a_candidate() -> None:
    plan = build_plan(
        _experiment(
            """\
            - name: surge-pause
              kind: store_pause
              when: {metric: orders_per_s, above: 50, for: 2s}
              for: 10s
            """,
            extra="hypothesis:\n  - {metric: fulfilment_rate, min: 0.9, phase: baseline}\n",
        )
    )
    (window,) = plan.fault_windows
    assert plan.to_json()["fault_windows"] == [
        {"name": "surge-pause", "kind": "store_pause", "start": None, "end": None}
    ]
    assert window.start is None and window.trigger is not None
    assert window.trigger.above == 50
    assert plan.check_phases == {"baseline": None, "during": (0.0, 60.0), "recovery": None}
    notes = " | ".join(plan.notes)
    assert 'fault "surge-pause" starts when orders_per_s > 50' in notes
    assert "the whole run counts as its window" in notes
    assert "checked in the baseline period, which this plan does not have" in notes


def test_to_json_is_the_summary_plan() -> None:
    plan = build_plan(load_experiment(REPO / "experiments" / "rider-shortage.yaml"))
    data = json.loads(json.dumps(plan.to_json(), allow_nan=False))
    assert set(data) == {"duration_s", "load_phases", "fault_windows", "check_phases"}
    assert data["duration_s"] == 90.0
    assert data["load_phases"][1] == {
        "start": 20.0,
        "end": 70.0,
        "label": "stage 2",
        "from": 80.0,
        "to": 80.0,
    }
    assert data["fault_windows"][0] == {
        "name": "rider-shortage",
        "kind": "riders",
        "start": 30.0,
        "end": 60.0,
    }
    assert data["check_phases"] == {
        "baseline": [0.0, 30.0],
        "during": [30.0, 60.0],
        "recovery": [60.0, 90.0],
    }


def test_custom_shape_values_are_null_not_nan() -> None:
    text = (
        "version: 1\nname: c\nload:\n  model: closed\n"
        "  shape: {kind: custom, class: 'mypkg.shapes:Waves', for: 20s}\n"
    )
    plan = build_plan(parse_experiment(text, path="c.yaml"))
    data = json.loads(json.dumps(plan.to_json(), allow_nan=False))
    assert data["load_phases"] == [
        {"start": 0.0, "end": 20.0, "label": "custom mypkg.shapes:Waves", "from": None, "to": None}
    ]
