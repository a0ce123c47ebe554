"""The attach preflight: what it refuses (one line each), and the review it shows."""

from __future__ import annotations

import dataclasses
import io
import textwrap
from pathlib import Path

import pytest
from rich.console import Console

from chaoskit.errors import SafetyRefusal
from chaoskit.experiment.loader import parse_experiment
from chaoskit.experiment.models import Experiment
from chaoskit.planning import build_plan
from chaoskit.run.safety import SafetyReview, preflight
from chaoskit.stack.attach import AttachStack
from chaoskit.stack.target import AttachTarget, parse_target

SECRET = "tok_3f9a7c1d2e8b4a6f"
ALL_PROXIES = ["inventory", "lbs", "eligibility", "orders", "store", "rider", "coupon"]

TARGET = """\
version: 1
kind: attach
name: staging
gateway: {url: "http://127.0.0.1:18610"}
toxiproxy:
  - url: http://127.0.0.1:18674
    proxies: {inventory: inventory, store: store, coupon: coupon}
services:
  gateway: http://127.0.0.1:18610
  orders: http://127.0.0.1:18614
  coupon: http://127.0.0.1:18617
  inventory: http://127.0.0.1:18611
  store: http://127.0.0.1:18615
allowed_hosts: [127.0.0.1]
caps: {max_users: 20, max_rate: 50, max_fault_duration: 30s}
headers: {Authorization: "Bearer ${STAGING_TOKEN}"}
watchdog: {ttl: 7s}
"""

EXPERIMENT = """\
version: 1
name: attach-unit
stack: {coupon_mode: sync, riders: 10}
load:
  model: open
  shape: {kind: ramp, for: 20s, from: 5, to: 40}
faults:
  - {name: slow-inventory, kind: latency, dependency: inventory, latency: 200ms, at: 5s, for: 10s}
  - {name: coupon-lag, kind: coupon_lag, lag: 1s, at: 8s, for: 5s}
hypothesis:
  - {metric: fulfilment_rate, min: 0.5}
  - {metric: lost_orders, max: 0}
"""


@pytest.fixture(autouse=True)
def token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STAGING_TOKEN", SECRET)


def target_of(text: str = TARGET) -> AttachTarget:
    target = parse_target(text, path="staging.yaml")
    assert isinstance(target, AttachTarget)
    return target


def experiment_of(text: str = EXPERIMENT) -> Experiment:
    return parse_experiment(textwrap.dedent(text), path="exp.yaml")


def review(
    *,
    target: str = TARGET,
    experiment: str = EXPERIMENT,
    proxies: list[str] | None = None,
) -> SafetyReview:
    attach = target_of(target)
    parsed = experiment_of(experiment)
    return preflight(
        experiment=parsed,
        plan=build_plan(parsed),
        target=attach,
        endpoints=AttachStack(attach).endpoints(),
        proxies_of=lambda url: ALL_PROXIES if proxies is None else proxies,
    )


def refusal(**kwargs: object) -> str:
    with pytest.raises(SafetyRefusal) as refused:
        review(**kwargs)  # type: ignore[arg-type]
    message = str(refused.value)
    assert "\n" not in message
    return message


def rendered(result: SafetyReview) -> str:
    out = io.StringIO()
    result.render(Console(file=out, width=120, color_system=None))
    return out.getvalue()


def test_a_plan_within_the_rules_gives_a_review_with_caps_and_ttl() -> None:
    result = review()
    assert result.caps == {"max_users": 20.0, "max_rate": 50.0}
    assert result.watchdog_ttl_s == 7.0
    assert result.peak == 40.0 and result.model == "open"
    assert [f.name for f in result.faults] == ["slow-inventory", "coupon-lag"]
    assert result.faults[0].where == "proxy 'inventory' on http://127.0.0.1:18674"
    assert result.faults[1].where == "coupon /admin"
    assert result.settings == {"gateway": {"coupon_mode": "sync"}}
    text = rendered(result)
    for expected in (
        "Attach run on staging (staging.yaml)",
        "gateway",
        "http://127.0.0.1:18674",
        "services.coupon",
        "peak 40 arrivals/s (cap 50",
        "slow-inventory",
        "5s .. 15s",
        "8s .. 13s",
        "headers: Authorization (values not shown)",
        "from the environment: STAGING_TOKEN",
        "X-Chaoskit-Run: chaoskit",
        "heartbeating for 7s",
        "skipped: stack settings for rider (riders): no rider /admin endpoint",
    ):
        assert expected in text, expected
    assert SECRET not in text and SECRET not in repr(result)


def test_without_services_the_audit_and_server_metrics_are_skipped_with_a_note() -> None:
    target = TARGET[: TARGET.index("services:")] + TARGET[TARGET.index("allowed_hosts:") :]
    experiment = EXPERIMENT.replace(
        "  - {name: coupon-lag, kind: coupon_lag, lag: 1s, at: 8s, for: 5s}\n", ""
    )
    text = rendered(review(target=target, experiment=experiment))
    assert "skipped: audit (lost/phantom orders, credits): no /ledger for orders, coupon" in text
    assert "skipped: server-side metrics" in text
    assert "skipped: stack settings for gateway (coupon_mode)" in text
    assert "skipped: checks on lost_orders: no data from this target" in text


def test_a_domain_fault_without_its_admin_endpoint_is_refused() -> None:
    experiment = EXPERIMENT.replace(
        "kind: coupon_lag, lag: 1s,", "kind: riders, available: 5,"
    ).replace("coupon-lag", "few-riders")
    message = refusal(experiment=experiment)
    assert message.startswith("fault 'few-riders' (riders): needs the rider /admin endpoint")
    assert "services.rider" in message


def test_container_faults_are_always_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The experiment names a target file, as with --target: only "local" rules containers out.
    (tmp_path / "staging.yaml").write_text(textwrap.dedent(TARGET))
    monkeypatch.chdir(tmp_path)  # the experiment's target file must exist to validate
    experiment = EXPERIMENT.replace(
        "kind: coupon_lag, lag: 1s,", "kind: container_pause, service: store,"
    ).replace("name: attach-unit\n", "name: attach-unit\ntarget: staging.yaml\n")
    assert "container faults are never applied to an attach target" in refusal(
        experiment=experiment
    )


def test_a_network_fault_on_an_unmapped_dependency_is_refused() -> None:
    experiment = EXPERIMENT.replace("dependency: inventory", "dependency: lbs")
    assert "maps no Toxiproxy proxy for dependency 'lbs'" in refusal(experiment=experiment)


def test_open_load_above_max_rate_is_refused_and_at_the_cap_is_fine() -> None:
    message = refusal(experiment=EXPERIMENT.replace("to: 40", "to: 50.5"))
    assert message.startswith("the load peaks at 50.5 arrivals/s, above caps.max_rate = 50")
    assert review(experiment=EXPERIMENT.replace("to: 40", "to: 50")).peak == 50.0


def test_closed_load_above_max_users_is_refused() -> None:
    closed = EXPERIMENT.replace("model: open", "model: closed").replace(
        "{kind: ramp, for: 20s, from: 5, to: 40}", "{kind: constant, for: 20s, users: 21}"
    )
    assert "above caps.max_users = 20" in refusal(experiment=closed)
    assert review(experiment=closed.replace("users: 21", "users: 20")).peak == 20.0


def test_no_cap_for_the_model_is_a_note_not_a_refusal() -> None:
    target = TARGET.replace("max_rate: 50, ", "")
    result = review(target=target, experiment=EXPERIMENT.replace("to: 40", "to: 400"))
    assert result.caps == {"max_users": 20.0}
    assert "sets no caps.max_rate" in rendered(result)


def test_fault_duration_cap() -> None:
    longer = EXPERIMENT.replace("at: 5s, for: 10s", "at: 1s, for: 31s")
    assert "lasts 31s, above caps.max_fault_duration = 30s" in refusal(experiment=longer)
    open_ended = EXPERIMENT.replace("at: 5s, for: 10s", "at: 5s")
    assert "lasts until the load ends" in refusal(experiment=open_ended)
    uncapped = TARGET.replace(", max_fault_duration: 30s", "")
    assert review(target=uncapped, experiment=open_ended).faults[0].end is None


def test_a_missing_or_empty_env_var_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STAGING_TOKEN")
    message = refusal()
    assert message == (
        "headers.Authorization of target 'staging' needs environment variable STAGING_TOKEN, "
        "which is not set"
    )
    monkeypatch.setenv("STAGING_TOKEN", "")
    assert "STAGING_TOKEN" in refusal()


def test_a_host_off_the_allow_list_is_refused() -> None:
    attach = target_of()
    parsed = experiment_of()
    endpoints = AttachStack(attach).endpoints()
    sneaky = dataclasses.replace(
        endpoints, services={**endpoints.services, "rider": "http://10.0.0.9:18616"}
    )
    with pytest.raises(SafetyRefusal, match=r"^services.rider host '10.0.0.9' is not in"):
        preflight(
            experiment=parsed,
            plan=build_plan(parsed),
            target=attach,
            endpoints=sneaky,
            proxies_of=lambda url: ALL_PROXIES,
        )


def test_a_proxy_the_server_does_not_have_is_refused() -> None:
    message = refusal(proxies=["inventory", "coupon", "lbs"])
    assert message == (
        "toxiproxy[0] at http://127.0.0.1:18674 has no proxy named 'store' (for store); "
        "it has: coupon, inventory, lbs"
    )


def test_static_refusals_come_before_asking_the_server() -> None:
    asked: list[str] = []

    def proxies_of(url: str) -> list[str]:
        asked.append(url)
        return ALL_PROXIES

    attach = target_of()
    parsed = experiment_of(EXPERIMENT.replace("to: 40", "to: 60"))
    with pytest.raises(SafetyRefusal):
        preflight(
            experiment=parsed,
            plan=build_plan(parsed),
            target=attach,
            endpoints=AttachStack(attach).endpoints(),
            proxies_of=proxies_of,
        )
    assert asked == []


def test_without_an_eligibility_ledger_the_entitlement_audit_is_skipped_with_a_note() -> None:
    experiment = EXPERIMENT.replace(
        "  - {metric: lost_orders, max: 0}\n",
        "  - {metric: lost_orders, max: 0}\n  - {metric: lost_entitlements, max: 0}\n",
    )
    text = rendered(review(experiment=experiment))
    assert (
        "skipped: audit (lost entitlements, free orders honoured): no eligibility /ledger" in text
    )
    assert "skipped: checks on lost_entitlements: no data from this target" in text


TEAM_TARGET = """\
version: 1
kind: attach
name: shop
gateway: {url: "http://127.0.0.1:18610"}
toxiproxy:
  - url: http://127.0.0.1:18674
    proxies: {inventory: inventory}
allowed_hosts: [127.0.0.1]
caps: {max_rate: 50}
journey:
  name: shop-checkout
  steps:
    - name: checkout
      request: {method: POST, path: /api/v2/checkout, json: {ref: "{{run_id}}"}}
      extract: {checkout_id: $.checkout.id}
    - name: confirm
      request: {method: GET, path: "/api/v2/checkout/{{checkout_id}}"}
  order_id: "{{checkout_id}}"
audit:
  ledger:
    http: {url: "http://127.0.0.1:18610/api/v2/ledger?ref={{run_id}}", order_ids: "$.order_ids[*]"}
    credits:
      http: {url: "http://127.0.0.1:18610/api/v2/credits?ref={{run_id}}", rows: "$.credits[*]",
             fields: {credited_at: $.credited_at}}
"""

TEAM_EXPERIMENT = """\
version: 1
name: shop-unit
audit: {credit_slo: 5s}
load:
  model: open
  shape: {kind: constant, for: 10s, rate: 5}
hypothesis:
  - {metric: lost_orders, max: 0}
  - {metric: oversold, max: 0}
"""


def test_an_attach_review_lists_the_journey_and_what_the_audit_judges_and_skips() -> None:
    result = review(target=TEAM_TARGET, experiment=TEAM_EXPERIMENT, proxies=["inventory"])
    assert result.journey == "shop-checkout (2 steps)"
    assert [(s.name, s.method, s.path) for s in result.steps] == [
        ("checkout", "POST", "/api/v2/checkout"),
        ("confirm", "GET", "/api/v2/checkout/{{checkout_id}}"),
    ]
    assert result.audit_judged == (
        "lost_orders",
        "phantom_orders",
        "double_credits",
        "late_credits",
    )
    text = rendered(result)
    for expected in (
        "journey: shop-checkout (2 steps)",
        "  checkout  POST /api/v2/checkout",
        "  confirm   GET /api/v2/checkout/{{checkout_id}}",
        "audit from the team's ledger (audit.ledger): judges lost_orders, phantom_orders, "
        "double_credits, late_credits",
        "skipped: audit of missing_credits: the target does not say which orders are owed a "
        "credit (audit.ledger.entitled)",
        "skipped: audit of oversold: the target names no stock ledger (audit.ledger.stock)",
        "skipped: audit of lost_entitlements:",
        "skipped: checks on oversold: no data from this target",
    ):
        assert expected in text, expected
    # The experiment without a credit SLO: late credits are not judged either, and say why.
    no_slo = review(
        target=TEAM_TARGET,
        experiment=TEAM_EXPERIMENT.replace("audit: {credit_slo: 5s}\n", ""),
        proxies=["inventory"],
    )
    assert "late_credits" not in no_slo.audit_judged
    assert "audit of late_credits: no audit.credit_slo in the experiment" in rendered(no_slo)


def test_a_journey_header_naming_an_unset_env_var_is_refused_before_anything_runs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SHOP_TOKEN", raising=False)
    target = TEAM_TARGET.replace(
        "request: {method: GET,",
        'request: {headers: {Authorization: "Bearer ${SHOP_TOKEN}"}, method: GET,',
    )
    message = refusal(target=target, experiment=TEAM_EXPERIMENT, proxies=["inventory"])
    assert message == (
        "journey.steps.1.request.headers.Authorization of target 'shop' needs environment "
        "variable SHOP_TOKEN, which is not set"
    )
    monkeypatch.setenv("SHOP_TOKEN", "t0ken")
    assert review(target=target, experiment=TEAM_EXPERIMENT, proxies=["inventory"]).steps


def test_the_built_in_journey_is_reviewed_as_its_one_request() -> None:
    result = review()
    assert result.journey == "agent-buyer (built in)"
    assert [(s.name, s.method, s.path) for s in result.steps] == [("order", "POST", "/orders")]
    assert "audit from the services' /ledger: judges lost_orders" in rendered(result)
