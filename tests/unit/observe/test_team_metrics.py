"""PromQL metrics as series, the team ledger's reconciliation, and the run's exported metrics.

Logic only: the real Prometheus and PostgreSQL are in tests/integration/test_team_observe.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from chaoskit.errors import ExperimentError, TargetFileError
from chaoskit.events import FaultApplied, FaultRemoved, FaultRequested, PhaseChanged
from chaoskit.exit_codes import exit_code_for_error
from chaoskit.experiment.loader import parse_experiment
from chaoskit.journey.paths import parse_json_path, select
from chaoskit.observe.aggregate import MetricsAggregator
from chaoskit.observe.exporter import RunMetrics
from chaoskit.observe.histogram import LatencyHistogram
from chaoskit.observe.prometheus import merge_sources
from chaoskit.observe.team_ledger import CreditRow, LedgerRecords, reconcile_team_ledger
from chaoskit.stack.target import AttachTarget, parse_target

BASE = """\
version: 1
name: team
load:
  model: open
  shape: {kind: constant, for: 10s, rate: 5}
"""


def test_a_promql_metric_can_be_judged_like_a_built_in() -> None:
    text = BASE + (
        "metrics:\n  prometheus:\n    url: http://127.0.0.1:9090\n    interval: 1s\n"
        "    queries:\n      queue: sum(shop_queue)\n      p95: {query: x, agg: max}\n"
        "hypothesis:\n  - {metric: queue, max: 10}\n"
        "guardrails:\n  - {metric: p95, max: 3}\n"
    )
    experiment = parse_experiment(text, path="team.yaml")
    source = merge_sources(None, experiment.metrics)
    assert source is not None
    assert source.interval_s == 1.0
    assert source.aggregations() == {"queue": "mean", "p95": "max"}


def test_a_query_named_like_a_built_in_is_refused_with_its_line() -> None:
    text = BASE + (
        "metrics:\n  prometheus:\n    url: http://127.0.0.1:9090\n"
        "    queries:\n      fulfilment_rate: up\n"
    )
    with pytest.raises(ExperimentError) as caught:
        parse_experiment(text, path="team.yaml")
    assert "fulfilment_rate" in str(caught.value) and "built-in" in str(caught.value)
    assert exit_code_for_error(caught.value) == 2
    assert str(caught.value).startswith("team.yaml:10:")


def test_an_undeclared_metric_is_still_unknown() -> None:
    with pytest.raises(ExperimentError, match='unknown metric "queue"'):
        parse_experiment(BASE + "hypothesis:\n  - {metric: queue, max: 1}\n", path="t.yaml")


def test_metrics_a_target_file_declares_are_known_to_its_experiments(tmp_path: Path) -> None:
    (tmp_path / "staging.yaml").write_text(
        "version: 1\nkind: attach\nname: s\ngateway: {url: 'http://127.0.0.1:1'}\n"
        "toxiproxy: [{url: 'http://127.0.0.1:2', proxies: {store: store}}]\n"
        "allowed_hosts: [127.0.0.1]\n"
        "metrics: {prometheus: {url: 'http://127.0.0.1:9090', queries: {queue: up}}}\n"
    )
    text = BASE.replace("name: team\n", "name: team\ntarget: staging.yaml\n")
    experiment = parse_experiment(
        text + "hypothesis:\n  - {metric: queue, max: 1}\n", path=tmp_path / "e.yaml"
    )
    assert experiment.hypothesis[0].metric == "queue"


def test_a_sql_ledger_dsn_must_come_from_the_environment() -> None:
    text = (
        "version: 1\nkind: attach\nname: s\ngateway: {url: 'http://127.0.0.1:1'}\n"
        "toxiproxy: [{url: 'http://127.0.0.1:2', proxies: {store: store}}]\n"
        "allowed_hosts: [127.0.0.1]\n"
        "audit:\n  ledger:\n    sql: {dsn: 'postgresql://u:hunter2@db/x', query: 'select 1'}\n"
    )
    with pytest.raises(TargetFileError) as caught:
        parse_target(text, path="s.yaml")
    assert "environment variable" in str(caught.value)
    assert "hunter2" not in str(caught.value)
    assert caught.value.line == 9


def test_a_bad_jsonpath_is_refused_at_load() -> None:
    text = (
        "version: 1\nkind: attach\nname: s\ngateway: {url: 'http://127.0.0.1:1'}\n"
        "toxiproxy: [{url: 'http://127.0.0.1:2', proxies: {store: store}}]\n"
        "allowed_hosts: [127.0.0.1]\n"
        "audit:\n  ledger:\n    http:\n"
        "      {url: 'http://127.0.0.1:3/x?ref={{run_id}}', order_ids: 'orders[*]'}\n"
    )
    with pytest.raises(TargetFileError, match=r"starts with \$"):
        parse_target(text, path="s.yaml")


def test_jsonpath_subset_picks_ids() -> None:
    doc = {"data": {"orders": [{"id": "a"}, {"id": 7}, {"other": 1}]}}
    assert select(doc, parse_json_path("$.data.orders[*].id")) == ["a", 7]
    assert select(doc, parse_json_path("$['data'].orders[1].id")) == [7]
    assert select([1, 2], parse_json_path("$[*]")) == [1, 2]


def test_external_series_are_judged_per_window_by_their_aggregation() -> None:
    agg = MetricsAggregator()
    agg.declare_external({"q": "mean", "m": "max", "l": "last", "n": "min"}, interval_s=1.0)
    for t, v in ((1.0, 2.0), (2.0, 4.0), (3.0, None), (4.0, 9.0)):
        agg.add_external(t, {"q": v, "m": v, "l": v, "n": v})
    assert agg.window("q", 0.0, 3.0) == 3.0
    assert agg.window("m", 0.0, 4.0) == 9.0
    assert agg.window("l", 0.0, 3.0) == 4.0  # no data at 3 s: the last known value
    assert agg.window("n", 0.0, 4.0) == 2.0
    assert agg.window("q", 10.0, 20.0) is None  # no samples: no data, never 0
    row = agg.sample(4.0)
    assert row["q"] == 9.0
    assert agg.windows(0.0, 4.0)["m"] == 9.0
    assert agg.overall()["q"] == 5.0
    assert agg.series()[-1]["q"] == 9.0
    assert agg.sample(30.0)["q"] is None  # stale


def _outcomes(folder: Path, records: list[tuple[str, str]]) -> Path:
    folder.mkdir()
    with (folder / "w0.jsonl").open("w") as stream:
        for order_id, told in records:
            stream.write(
                json.dumps({"intent": order_id, "order_id": order_id, "told": told}) + "\n"
            )
    return folder


def test_the_team_ledger_names_lost_and_phantom_orders(tmp_path: Path) -> None:
    outcomes = _outcomes(
        tmp_path / "outcomes",
        [("o1", "ok"), ("o2", "ok"), ("o3", "failed"), ("o4", "timeout"), ("o5", "ok")],
    )
    result = reconcile_team_ledger(LedgerRecords(("o1", "o2", "o4", "other-run")), outcomes)
    assert result.status == "failed"
    assert result.invariants["lost_orders"].order_ids == ("o5",)
    assert result.invariants["phantom_orders"].order_ids == ("o4",)
    # What ids alone cannot tell is skipped with why, never passed.
    assert "credits ledger" in str(result.invariants["double_credits"].skipped)
    assert result.invariants["oversold"].skipped and result.invariants["missing_credits"].skipped


def test_credits_are_audited_where_the_target_names_them(tmp_path: Path) -> None:
    outcomes = _outcomes(tmp_path / "outcomes", [("o1", "ok"), ("o2", "ok")])
    credits = tuple(CreditRow(o) for o in ("o1", "o2", "o2", "elsewhere"))
    records = LedgerRecords(("o1", "o2"), credits=credits)
    result = reconcile_team_ledger(records, outcomes)
    assert result.invariants["lost_orders"].count == 0
    assert result.invariants["double_credits"].order_ids == ("o2",)


def test_the_exporter_serves_fault_windows_phases_and_latency() -> None:
    metrics = RunMetrics(run_id="r1", experiment="e")
    registry = CollectorRegistry(auto_describe=False)
    registry.register(metrics)
    metrics.handle(
        FaultRequested(t=1.0, name="slow", kind="latency", target="store", params={})
    )
    metrics.handle(
        FaultApplied(t=1.0, name="slow", kind="latency", target="store", lag_ms=3.0, ends_at=None)
    )
    metrics.handle(PhaseChanged(t=1.0, phase="during"))
    hist = LatencyHistogram()
    hist.add(3, 4)
    hist.add(700)
    metrics.add_tick(
        {
            "intents_started": 5,
            "fulfilled": 4,
            "requests": 5,
            "failed_steps": {"store": 1},
            "latency_hdr": hist.encode(),
        }
    )
    text = generate_latest(registry).decode()
    assert 'chaoskit_fault_active{dependency="store",fault="slow",kind="latency"} 1.0' in text
    assert 'chaoskit_phase{phase="during"} 1.0' in text
    assert "chaoskit_orders_total 4.0" in text
    assert 'chaoskit_failures_total{step="store"} 1.0' in text
    assert 'chaoskit_request_latency_seconds_bucket{le="0.005"} 4.0' in text
    assert 'chaoskit_request_latency_seconds_bucket{le="1.0"} 5.0' in text
    metrics.handle(FaultRemoved(t=4.0, name="slow", kind="latency", reason="end", lag_ms=2.0))
    assert 'fault="slow",kind="latency"} 0.0' in generate_latest(registry).decode()


ATTACH = (
    "version: 1\nkind: attach\nname: s\ngateway: {url: 'http://127.0.0.1:1'}\n"
    "toxiproxy: [{url: 'http://127.0.0.1:2', proxies: {store: store}}]\n"
    "allowed_hosts: [127.0.0.1]\n"
)


def test_a_target_query_named_like_a_built_in_is_refused_with_its_line() -> None:
    text = ATTACH + (
        "metrics:\n  prometheus:\n    url: http://127.0.0.1:9090\n"
        "    queries: {error_rate: up}\n"
    )
    with pytest.raises(TargetFileError) as caught:
        parse_target(text, path="s.yaml")
    assert "error_rate" in str(caught.value) and "built-in" in str(caught.value)
    assert str(caught.value).startswith("s.yaml:10:")


def test_a_prometheus_off_the_allow_list_is_refused_before_anything_runs() -> None:
    from chaoskit.errors import SafetyRefusal
    from chaoskit.observe.team import team_observation

    target = parse_target(
        ATTACH + "metrics: {prometheus: {url: 'http://prom.example.invalid:9090',"
        " queries: {queue: up}}}\n"
    )
    experiment = parse_experiment(BASE, path="e.yaml")
    with pytest.raises(SafetyRefusal, match="metrics.prometheus host 'prom.example.invalid'"):
        team_observation(experiment, target, allowed_hosts=("127.0.0.1",))
    # A metric no query defines cannot be judged: refused, not silently "no data".
    from chaoskit.errors import InputError

    local = parse_target("version: 1\nkind: local\nname: l\n")
    uses = parse_experiment(
        BASE + "hypothesis:\n  - {metric: queue, max: 1}\n",
        path="e.yaml",
        extra_metrics=["queue"],
    )
    with pytest.raises(InputError, match="hypothesis\\[0\\] uses metric 'queue'"):
        team_observation(uses, local, allowed_hosts=("127.0.0.1",))


def test_a_fault_can_be_triggered_by_a_promql_metric() -> None:
    text = BASE + (
        "metrics:\n  prometheus:\n    url: http://127.0.0.1:9090\n"
        "    queries: {queue: max(shop_queue_depth)}\n"
        "faults:\n  - {name: slow, kind: latency, dependency: store, latency: 50ms,"
        " for: 2s, when: {metric: queue, above: 5, for: 1s}}\n"
    )
    experiment = parse_experiment(text, path="e.yaml")
    assert experiment.faults[0].when is not None
    assert experiment.faults[0].when.metric == "queue"


PROM_BLOCK = "metrics:\n  prometheus:\n    url: http://127.0.0.1:9090\n    queries: {queue: up}\n"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ('"Bad Name": x', "'Bad Name' is not a valid HTTP header name"),
        ('Authorization: "Bearer ${1TOKEN}"', "${...} must name an environment variable"),
    ],
)
def test_a_bad_prometheus_header_is_refused_with_its_line(header: str, expected: str) -> None:
    text = BASE + PROM_BLOCK + f"    headers: {{{header}}}\n"
    with pytest.raises(ExperimentError) as caught:
        parse_experiment(text, path="team.yaml")
    message = str(caught.value)
    assert message.startswith("team.yaml:10:") and "metrics.prometheus.headers" in message
    assert expected in message
    assert exit_code_for_error(caught.value) == 2


def test_prometheus_headers_stay_templates_and_go_only_to_their_own_url() -> None:
    target = parse_target(
        ATTACH + PROM_BLOCK + '    headers: {Authorization: "Bearer ${PROM_TOKEN}"}\n'
    )
    assert isinstance(target, AttachTarget)
    same_url = parse_experiment(
        BASE + PROM_BLOCK.replace("{queue: up}", "{ready: up}") + "    headers: {X-Org: '7'}\n",
        path="e.yaml",
    )
    source = merge_sources(target.metrics, same_url.metrics)
    assert source is not None
    assert dict(source.headers) == {"Authorization": "Bearer ${PROM_TOKEN}", "X-Org": "7"}
    assert source.request_headers({"PROM_TOKEN": "t0k"})["Authorization"] == "Bearer t0k"
    # An experiment that points at another Prometheus does not take the target's token there.
    other = parse_experiment(
        BASE + PROM_BLOCK.replace("9090", "9091").replace("{queue: up}", "{ready: up}"),
        path="e.yaml",
    )
    moved = merge_sources(target.metrics, other.metrics)
    assert moved is not None and moved.url == "http://127.0.0.1:9091"
    assert dict(moved.headers) == {}


def test_an_unset_prometheus_header_variable_is_refused_before_anything_runs() -> None:
    from chaoskit.errors import SafetyRefusal
    from chaoskit.observe.team import team_observation

    experiment = parse_experiment(
        BASE + PROM_BLOCK + '    headers: {Authorization: "Bearer ${PROM_TOKEN}"}\n',
        path="e.yaml",
    )
    local = parse_target("version: 1\nkind: local\nname: l\n")
    with pytest.raises(SafetyRefusal) as caught:
        team_observation(experiment, local, allowed_hosts=("127.0.0.1",), environ={})
    assert str(caught.value) == (
        "metrics.prometheus.headers.Authorization needs environment variable PROM_TOKEN, "
        "which is not set"
    )
    assert exit_code_for_error(caught.value) == 2
    seen = team_observation(
        experiment, local, allowed_hosts=("127.0.0.1",), environ={"PROM_TOKEN": "t0k"}
    )
    assert seen.prometheus is not None
    assert dict(seen.prometheus.headers) == {"Authorization": "Bearer ${PROM_TOKEN}"}
