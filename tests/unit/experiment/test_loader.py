"""The loader: every kind of bad input ends in one ExperimentError pointing at the right line."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from chaoskit.errors import ExperimentError
from chaoskit.exit_codes import exit_code_for_error
from chaoskit.experiment.loader import load_experiment, parse_experiment
from chaoskit.experiment.models import (
    CouponLagFault,
    Experiment,
    LatencyFault,
    RidersFault,
    StagesShape,
    parse_fault,
    parse_shape,
)

REPO = Path(__file__).resolve().parents[3]
EXPERIMENTS = sorted((REPO / "experiments").glob("*.yaml"))

# The sketch from issue 3, as written; line numbers below refer to it.
SKETCH = textwrap.dedent(
    """\
    version: 1
    name: rider-shortage
    description: Riders fall to 5 for half a minute at peak.
    target: local
    seed: 7
    stack:
      coupon_mode: async
      gateway: {timeout: 2s, retries: backoff, circuit_breaker: true}
      riders: 200
      stores: {count: 20, capacity_per_s: 20, queue: 50}
      delivery_time: 5s
    load:
      model: open
      behaviour: {reclick: 3, think_time: 1s, reuse_idempotency_key: false}
      shape:
        kind: stages
        stages:
          - {for: 20s, rate: 20}
          - {for: 50s, rate: 80}
          - {for: 20s, rate: 20}
    faults:
      - name: rider-shortage
        at: 30s
        for: 30s
        kind: riders
        available: 5
      - name: slow-inventory
        at: 40s
        for: 20s
        kind: latency
        dependency: inventory
        latency: 250ms
        jitter: 50ms
    hypothesis:
      - {metric: fulfilment_rate, min: 0.9}
      - {metric: coupon_delay_p95_s, max: 10}
    guardrails:
      - {metric: error_rate, max: 0.8, for: 10s}
    report:
      formats: [html, md, json, junit]
    """
)


def _error(text: str, path: str = "exp.yaml") -> ExperimentError:
    with pytest.raises(ExperimentError) as info:
        parse_experiment(text, path=path)
    return info.value


def test_the_issue_sketch_loads_as_written() -> None:
    experiment = parse_experiment(SKETCH, path="exp.yaml")
    assert experiment.name == "rider-shortage"
    assert experiment.stack.gateway is not None and experiment.stack.gateway.timeout == 2.0
    assert experiment.stack.delivery_time == 5.0
    shape = experiment.load.shape
    assert isinstance(shape, StagesShape)
    assert [(s.for_, s.rate) for s in shape.stages] == [(20.0, 20.0), (50.0, 80.0), (20.0, 20.0)]
    riders, latency = experiment.faults
    assert isinstance(riders, RidersFault) and riders.available == 5 and riders.target == "rider"
    assert isinstance(latency, LatencyFault)
    assert (latency.at, latency.for_, latency.latency, latency.jitter) == (40.0, 20.0, 0.25, 0.05)
    assert latency.params() == {
        "dependency": "inventory",
        "direction": "downstream",
        "toxicity": 1.0,
        "latency": 0.25,
        "jitter": 0.05,
    }
    assert experiment.guardrails[0].for_ == 10.0
    assert experiment.report.formats == ["html", "md", "json", "junit"]
    assert experiment.source_path == Path("exp.yaml")


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: p.name)
def test_every_shipped_experiment_loads(path: Path) -> None:
    experiment = load_experiment(path)
    assert experiment.source_path == path
    assert path.stem == experiment.name


def test_shipped_experiments_are_all_there() -> None:
    names = {p.stem for p in EXPERIMENTS}
    assert {
        "baseline",
        "festival-surge",
        "rider-shortage",
        "coupon-coupled",
        "coupon-compensated",
        "coupon-decoupled",
        "retry-storm",
        "demo-short",
    } <= names


@pytest.mark.parametrize(
    ("old", "new", "where", "message"),
    [
        pytest.param(
            "{for: 50s, rate: 80}",
            "{for: thirty, rate: 80}",
            "exp.yaml:19:15",
            'load.shape.stages[1].for: expected a duration like "30s", "250ms", "5m" or "1h30m",'
            ' got "thirty"',
            id="bad-duration",
        ),
        pytest.param(
            "riders: 200",
            "riders: many",
            "exp.yaml:9:11",
            'stack.riders: expected an integer, got "many"',
            id="wrong-type",
        ),
        pytest.param(
            "    jitter: 50ms",
            "    jiter: 50ms",
            "exp.yaml:33:5",
            'faults[1].jiter: unknown key (did you mean "jitter"?)',
            id="unknown-key-did-you-mean",
        ),
        pytest.param(
            "seed: 7",
            "sed: 7",
            "exp.yaml:5:1",
            'sed: unknown key (did you mean "seed"?)',
            id="unknown-top-level-key",
        ),
        pytest.param(
            "{for: 50s, rate: 80}",
            "{for: 50s, rat: 80}",
            "exp.yaml:19:20",
            'load.shape.stages[1].rat: unknown key (did you mean "rate"?)',
            id="unknown-key-in-tagged-union",
        ),
        pytest.param(
            "    at: 40s",
            "    at: -5s",
            "exp.yaml:28:9",
            'faults[1].at: expected a duration >= 0, got "-5s"',
            id="negative-duration",
        ),
        pytest.param(
            "    for: 20s\n    kind: latency",
            "    for: 0s\n    kind: latency",
            "exp.yaml:29:10",
            "faults[1].for: expected a duration > 0",
            id="empty-window",
        ),
        pytest.param(
            "dependency: inventory",
            "dependency: inventry",
            "exp.yaml:31:17",
            'faults[1].dependency: unknown dependency "inventry" (did you mean "inventory"?)',
            id="unknown-dependency",
        ),
        pytest.param(
            "dependency: inventory",
            "dependency: database",
            "exp.yaml:31:17",
            'faults[1].dependency: unknown dependency "database"; expected one of: inventory, '
            "lbs, eligibility, orders, store, rider, coupon",
            id="unknown-dependency-listed",
        ),
        pytest.param(
            "metric: coupon_delay_p95_s",
            "metric: coupon_delay",
            "exp.yaml:36:14",
            'hypothesis[1].metric: unknown metric "coupon_delay" (did you mean '
            '"coupon_delay_p95_s"?)',
            id="unknown-metric",
        ),
        pytest.param(
            "{metric: error_rate, max: 0.8, for: 10s}",
            "{metric: lost_orders, max: 0, for: 10s}",
            "exp.yaml:38:14",
            'guardrails[0].metric: "lost_orders" is an audit metric, known only after the run',
            id="audit-metric-as-guardrail",
        ),
        pytest.param(
            "{metric: error_rate, max: 0.8, for: 10s}",
            "{metric: error_rate, for: 10s}",
            "exp.yaml:38:5",
            "guardrails[0]: expected min or max (or both)",
            id="check-without-bounds",
        ),
        pytest.param(
            "kind: stages",
            "kind: stagez",
            "exp.yaml:16:11",
            'load.shape.kind: unknown kind "stagez" (did you mean "stages"?)',
            id="unknown-shape-kind",
        ),
        pytest.param(
            "kind: riders",
            "kind: rider",
            "exp.yaml:25:11",
            'faults[0].kind: unknown kind "rider" (did you mean "riders"?)',
            id="unknown-fault-kind",
        ),
        pytest.param(
            "retries: backoff",
            "retries: backof",
            "exp.yaml:8:35",
            'stack.gateway.retries: expected one of none, naive, backoff, got "backof" '
            '(did you mean "backoff"?)',
            id="bad-choice",
        ),
        pytest.param(
            "    available: 5\n",
            "",
            "exp.yaml:22:5",
            "faults[0].available: required key is missing",
            id="missing-key",
        ),
        pytest.param(
            "version: 1",
            "version: 2",
            "exp.yaml:1:10",
            "version: expected 1, got 2",
            id="wrong-version",
        ),
        pytest.param(
            "model: open",
            "model: closed",
            "exp.yaml:18:26",
            "load.shape.stages[0].rate: load.model is closed: give users (concurrent users), "
            "not rate",
            id="rate-under-closed-model",
        ),
        pytest.param(
            "name: slow-inventory",
            "name: rider-shortage",
            "exp.yaml:27:11",
            'faults[1].name: fault name "rider-shortage" is already used by faults[0]',
            id="duplicate-fault-name",
        ),
        pytest.param(
            "kind: riders\n    available: 5",
            "kind: latency\n    dependency: inventory\n    latency: 1s",
            "exp.yaml:29:9",
            'faults[1].at: overlaps fault "rider-shortage" (faults[0]): two latency faults on '
            "inventory at once",
            id="overlapping-windows",
        ),
        pytest.param(
            "kind: riders\n    available: 5",
            "kind: container_stop\n    service: store",
            "exp.yaml:25:11",
            "faults[0].kind: container_stop needs containers: set target to docker",
            id="container-fault-on-local",
        ),
        pytest.param(
            "    jitter: 50ms",
            "    jitter: 50ms\n    ramp: 30s",
            "exp.yaml:34:11",
            "faults[1].ramp: ramp (30s) is longer than the window (20s)",
            id="ramp-longer-than-window",
        ),
        pytest.param(
            "    jitter: 50ms",
            "    jitter: 50ms\n    when: {metric: orders_per_s, above: 50}",
            "exp.yaml:28:9",
            "faults[1].at: give either at or when, not both",
            id="at-and-when",
        ),
    ],
)
def test_bad_input_points_at_the_line(old: str, new: str, where: str, message: str) -> None:
    assert old in SKETCH
    error = _error(SKETCH.replace(old, new, 1))
    assert str(error).startswith(f"{where}: {message}")
    assert (error.line, error.col) == tuple(int(n) for n in where.split(":")[1:])
    assert exit_code_for_error(error) == 2


def test_several_problems_report_the_first_and_count_the_rest() -> None:
    text = SKETCH.replace("riders: 200", "riders: many").replace("jitter: 50ms", "jitter: x")
    error = _error(text)
    assert str(error) == 'exp.yaml:9:11: stack.riders: expected an integer, got "many" (and 1 more)'


@pytest.mark.parametrize(
    ("text", "where", "message"),
    [
        ("version: 1\nname: [a\n", "exp.yaml:3:1", "YAML syntax error:"),
        ("version: 1\nname: x\n  load: {}\n", "exp.yaml:3:7", "YAML syntax error:"),
        (
            "version: 1\nversion: 1\n",
            "exp.yaml:2:1",
            'YAML syntax error: found duplicate key "version"',
        ),
        ("seed:\t7\n\tx: 1\n", "exp.yaml:1:6", "YAML syntax error: found character '\\t'"),
        ("- a\n- b\n", "exp.yaml:1:1", "expected a mapping of experiment keys"),
        ("", "exp.yaml:1:1", "expected a mapping of experiment keys"),
        (
            "version: 1\nname: x\nlod: {}\n",
            "exp.yaml:3:1",
            'lod: unknown key (did you mean "load"?)',
        ),
        ("version: 1\nname: x\n", "exp.yaml:1:1", "load: required key is missing"),
        (
            "version: 1\nname: 'a b'\nload: {shape: {kind: constant, for: 1s, rate: 1}}\n",
            "exp.yaml:2:7",
            "name: expected a name of letters",
        ),
    ],
)
def test_yaml_and_structure_problems(text: str, where: str, message: str) -> None:
    error = _error(text)
    assert str(error).startswith(f"{where}: {message}"), str(error)


def test_missing_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(ExperimentError, match="nope.yaml: no such experiment file"):
        load_experiment(tmp_path / "nope.yaml")


def test_a_directory_is_not_an_experiment(tmp_path: Path) -> None:
    with pytest.raises(ExperimentError, match="cannot read"):
        load_experiment(tmp_path)


def _replay_experiment(tmp_path: Path, csv_text: str | None) -> Path:
    if csv_text is not None:
        (tmp_path / "surge.csv").write_text(csv_text)
    path = tmp_path / "replay.yaml"
    path.write_text(
        "version: 1\nname: replay\nload:\n  shape:\n    kind: replay\n    file: surge.csv\n"
    )
    return path


def test_replay_csv_is_read_relative_to_the_experiment(tmp_path: Path) -> None:
    experiment = load_experiment(_replay_experiment(tmp_path, "time_s,rate\n0,5\n10,15\n"))
    assert experiment.base_dir == tmp_path


def test_missing_replay_csv_points_at_the_file_key(tmp_path: Path) -> None:
    path = _replay_experiment(tmp_path, None)
    with pytest.raises(ExperimentError) as info:
        load_experiment(path)
    assert str(info.value).startswith(f"{path}:6:11: load.shape.file: no such replay CSV file")


def test_bad_replay_csv_points_at_the_csv_line(tmp_path: Path) -> None:
    path = _replay_experiment(tmp_path, "time_s,rate\n0,5\n10,lots\n")
    with pytest.raises(ExperimentError) as info:
        load_experiment(path)
    assert (
        str(info.value) == f"{tmp_path / 'surge.csv'}:3: rate: expected a number >= 0, got 'lots'"
    )


def test_custom_shape_needs_closed_model_and_its_file(tmp_path: Path) -> None:
    (tmp_path / "shape.py").write_text("class MyShape: ...\n")
    base = (
        "version: 1\nname: c\nload:\n  model: {model}\n"
        "  shape: {{kind: custom, class: '{cls}', for: 10s}}\n"
    )
    experiment = parse_experiment(
        base.format(model="closed", cls="shape.py:MyShape"), path=tmp_path / "c.yaml"
    )
    assert experiment.shape_spec() == {"kind": "custom", "class": "shape.py:MyShape", "for": 10.0}
    error = _error(base.format(model="open", cls="shape.py:MyShape"), str(tmp_path / "c.yaml"))
    assert ":5:17: load.shape.kind: a custom LoadTestShape drives users" in str(error)
    error = _error(base.format(model="closed", cls="other.py:MyShape"), str(tmp_path / "c.yaml"))
    assert ":5:32: load.shape.class: no such file" in str(error)


def test_zero_length_shape_is_refused() -> None:
    text = (
        "version: 1\nname: v\nload:\n"
        "  shape: {kind: viral, start: 10, doubling: 1s, cap: 5, hold: 0s}\n"
    )
    assert "load.shape: the shape lasts 0s" in str(_error(text))


def test_models_take_python_names_and_dicts_round_trip() -> None:
    shape = parse_shape({"kind": "ramp", "for": "1m", "from": 1, "to": 10})
    assert shape.model_dump(by_alias=True) == {"kind": "ramp", "for": 60.0, "from": 1.0, "to": 10.0}
    fault = parse_fault({"name": "lag", "kind": "coupon_lag", "lag": "2s", "ramp": "5s"})
    assert isinstance(fault, CouponLagFault) and fault.target == "coupon"
    assert fault.params() == {"lag": 2.0}
    assert fault.ramp_attribute == "lag" and fault.family == "domain"


def test_json_schema_uses_yaml_key_names() -> None:
    schema = Experiment.model_json_schema(by_alias=True)
    assert {"version", "name", "load", "faults", "hypothesis"} <= set(schema["properties"])
    constant = schema["$defs"]["ConstantShape"]
    assert "for" in constant["properties"] and "for_" not in constant["properties"]
    assert constant["additionalProperties"] is False
