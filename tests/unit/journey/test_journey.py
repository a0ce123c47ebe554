"""Journeys without a network: validation (file:line), templates, JSONPath, seeded variables."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from pydantic import ValidationError

from chaoskit.errors import ExperimentError, TargetFileError
from chaoskit.exit_codes import exit_code_for_error
from chaoskit.experiment.loader import parse_experiment
from chaoskit.journey import JourneyConfig, agent_buyer, compile_journey, resolve_journey
from chaoskit.journey.paths import MISSING, PathSyntaxError, compile_path
from chaoskit.journey.template import compile_json, compile_text
from chaoskit.load.intents import make_intent
from chaoskit.observe.metrics import FAILURE_STEPS
from chaoskit.stack.target import AttachTarget, parse_target

SHOP_JOURNEY = {
    "name": "shop",
    "vars": {"sku": {"choice": ["boba-l", "tea-m"]}, "qty": {"int": [1, 3]}, "ref": "uuid"},
    "steps": [
        {
            "name": "checkout",
            "request": {
                "method": "post",
                "path": "/api/v2/checkout",
                "headers": {"Idempotency-Key": "{{order_key}}"},
                "json": {"sku": "{{sku}}", "quantity": "{{qty}}", "note": "for {{user_id}}"},
            },
            "expect": {"status": [201, 200]},
            "extract": {"checkout_id": "$.checkout.id"},
        },
        {
            "name": "confirm",
            "request": {"path": "/api/v2/checkout/{{checkout_id}}"},
            "poll": {
                "every": "100ms",
                "timeout": "5s",
                "until": {"$.checkout.status": "confirmed"},
                "fail_if": {"$.checkout.status": {"in": ["failed"]}},
            },
        },
    ],
    "order_id": "{{checkout_id}}",
}


def problem(data: object) -> tuple[tuple[object, ...], str]:
    with pytest.raises(ValidationError) as caught:
        JourneyConfig.model_validate(data)
    error = caught.value.errors()[0]
    ctx = error.get("ctx") or {}
    return (*error["loc"], *ctx.get("loc", ())), str(ctx.get("message", error["msg"]))


def with_step(index: int, **changes: object) -> dict[str, object]:
    data = json.loads(json.dumps(SHOP_JOURNEY))
    data["steps"][index].update(changes)
    return data


def test_a_step_journey_validates_and_names_its_failure_steps() -> None:
    journey = JourneyConfig.model_validate(SHOP_JOURNEY)
    assert [s.name for s in journey.steps] == ["checkout", "confirm"]
    assert journey.steps[0].request.method == "POST"
    assert journey.failure_steps() == ("checkout", "confirm")
    assert JourneyConfig.model_validate("agent-buyer").failure_steps() == FAILURE_STEPS


def test_unknown_variable_is_named_with_where_it_is() -> None:
    data = with_step(1, request={"path": "/api/v2/checkout/{{checkout}}"})
    loc, message = problem(data)
    assert loc == ("steps", 1, "request", "path")
    assert "unknown variable {{checkout}}" in message and 'did you mean "checkout_id"' in message


def test_a_variable_extracted_later_is_unknown_earlier() -> None:
    data = with_step(0, request={"path": "/x/{{checkout_id}}"})
    loc, message = problem(data)
    assert loc == ("steps", 0, "request", "path") and "unknown variable" in message


def test_unknown_variable_in_a_json_body_points_at_its_key() -> None:
    data = with_step(0, request={"method": "POST", "path": "/c", "json": {"a": [{"b": "{{x}}"}]}})
    loc, _ = problem(data)
    assert loc == ("steps", 0, "request", "json", "a", 0, "b")


def test_bad_jsonpath_is_named() -> None:
    loc, message = problem(with_step(0, extract={"checkout_id": "$.checkout["}))
    assert loc == ("steps", 0, "extract", "checkout_id") and "bad JSONPath" in message
    loc, message = problem(with_step(0, expect={"body": {"checkout.id": {"exists": True}}}))
    assert loc[-1] == "checkout.id" and "starting with $" in message


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ("nope", "unknown built-in journey"),
        ({"python": "hooks.py"}, "path/to/file.py:function"),
        ({"python": "hooks.py:buy", "steps": SHOP_JOURNEY["steps"]}, "not python and steps"),
        ({"vars": {"run_id": "uuid"}, "steps": SHOP_JOURNEY["steps"]}, "built-in variable"),
        (with_step(1, name="checkout"), "already steps[0]"),
        (with_step(0, request={"path": "api/v2"}), "starting with /"),
        (with_step(0, request={"path": "/a", "json": {}, "body": "x"}), "not json and body"),
        (with_step(0, request={"path": "/a {{ order_key"}), "must open a reference"),
        ({**SHOP_JOURNEY, "order_id": "{{nope}}"}, "unknown variable {{nope}}"),
        ({"vars": {"q": {"int": [3, 1]}}, "steps": SHOP_JOURNEY["steps"]}, "lo <= hi"),
    ],
)
def test_mistakes_are_refused(data: object, fragment: str) -> None:
    _, message = problem(data)
    assert fragment in message


def test_templates_compile_once_and_render_by_joining() -> None:
    template = compile_json({"q": "{{qty}}", "t": 'say "{{text}}"', "k": ["{{key}}", 1, None]})
    assert template.names == ("qty", "text", "key")
    rendered = template.render({"qty": 2, "text": 'a "b"', "key": "k-1"})
    assert json.loads(rendered) == {"q": 2, "t": 'say "a "b""', "k": ["k-1", 1, None]}
    assert compile_text("/c/{{id}}", path=True).render({"id": "a b/c"}) == "/c/a%20b%2Fc"
    assert compile_text("plain").render({}) == "plain"


def test_agent_buyer_sends_the_bytes_the_hand_built_body_did() -> None:
    for intent_format, fields in (("text", False), ("fields", True)):
        journey = compile_journey(agent_buyer(intent_format=intent_format), seed=3)
        intent = make_intent(3, "o7", run_id="r1")
        values = {
            "intent_id": intent.intent_id,
            "order_key": f"{intent.intent_id}.0",
            "user_id": intent.user_id,
            "text": intent.text,
            "item": intent.item,
            "spec": intent.spec,
            "deadline_min": intent.deadline_min,
            "place": intent.place,
        }
        body = journey.steps[0].body
        assert body is not None
        assert body.render(values) == intent.body(f"{intent.intent_id}.0", fields=fields)


def test_jsonpath_fast_walk_and_library_paths_agree() -> None:
    body = {"checkout": {"id": "c1", "items": [{"sku": "a"}, {"sku": "b"}]}}
    assert compile_path("$.checkout.id").first(body) == "c1"
    assert compile_path("$.checkout.items[-1].sku").first(body) == "b"
    assert compile_path("$.checkout.items[5].sku").first(body) is MISSING
    assert compile_path("$.checkout.items[?@.sku == 'b'].sku").first(body) == "b"
    with pytest.raises(PathSyntaxError):
        compile_path("$.checkout[")


@pytest.mark.parametrize(
    "path",
    [
        "$",
        "$.checkout.id",
        "$.checkout.items[0].sku",
        "$.checkout.items[-1]",
        "$['checkout']",
        '$["checkout"]["items"][1]["sku"]',
        "$.missing.deeper",
        "$.checkout.items[9]",
    ],
)
def test_the_fast_walk_agrees_with_python_jsonpath(path: str) -> None:
    import jsonpath

    body = {"checkout": {"id": "c1", "items": [{"sku": "a"}, {"sku": "b"}]}}
    found = jsonpath.compile(path).match(body)
    expected = MISSING if found is None else found.obj
    assert compile_path(path).first(body) == expected


def test_the_engine_does_not_import_the_jsonpath_library_for_simple_paths() -> None:
    import subprocess
    import sys

    code = (
        "import sys; from chaoskit.journey import agent_buyer, compile_journey; "
        "compile_journey(agent_buyer(), seed=1); print('jsonpath' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.strip() == "False", done.stderr


def test_seeded_vars_are_the_same_for_the_same_seed_and_intent() -> None:
    config = JourneyConfig.model_validate(SHOP_JOURNEY)
    one = compile_journey(config, seed=5).seeded_vars("o1")
    assert one == compile_journey(config, seed=5).seeded_vars("o1")
    assert one["sku"] in ("boba-l", "tea-m") and 1 <= one["qty"] <= 3 and len(one["ref"]) == 36
    many = {compile_journey(config, seed=5).seeded_vars(f"o{i}")["qty"] for i in range(50)}
    assert many == {1, 2, 3}


TARGET = """\
version: 1
kind: attach
name: shop
gateway: {url: "http://127.0.0.1:18610"}
toxiproxy:
  - url: http://127.0.0.1:18674
    proxies: {inventory: inventory}
allowed_hosts: [127.0.0.1]
journey:
  steps:
    - name: checkout
      request:
        method: POST
        path: /api/v2/checkout
        json: {sku: "{{skew}}"}
"""


def test_target_file_error_names_file_line_and_key() -> None:
    with pytest.raises(TargetFileError) as caught:
        parse_target(TARGET, path="shop.yaml")
    text = str(caught.value)
    assert exit_code_for_error(caught.value) == 2
    assert "shop.yaml:15" in text and "journey.steps.0.request.json.sku" in text, text
    assert "unknown variable {{skew}}" in text


def test_target_python_journey_file_must_exist(tmp_path: Path) -> None:
    text = TARGET.split("journey:")[0] + "journey: {python: hooks/shop.py:buy}\n"
    with pytest.raises(TargetFileError) as caught:
        parse_target(text, path=tmp_path / "shop.yaml")
    assert "shop.yaml:9" in str(caught.value) and "no such file" in str(caught.value)
    (tmp_path / "hooks").mkdir()
    (tmp_path / "hooks" / "shop.py").write_text("def buy(client, intent): return True\n")
    target = parse_target(text, path=tmp_path / "shop.yaml")
    assert isinstance(target, AttachTarget) and target.journey is not None
    resolved = target.journey.resolved(tmp_path)
    assert resolved.python == f"{tmp_path / 'hooks' / 'shop.py'}:buy"


def test_experiment_journey_error_names_file_line_and_key(tmp_path: Path) -> None:
    text = textwrap.dedent(
        """\
        version: 1
        name: shop
        load:
          shape: {kind: constant, for: 5s, rate: 5}
          journey:
            steps:
              - name: checkout
                request: {method: POST, path: /c}
                extract: {id: "$.a["}
        hypothesis:
          - {metric: failures.checkout, max: 3}
        """
    )
    with pytest.raises(ExperimentError) as caught:
        parse_experiment(text, path=tmp_path / "exp.yaml")
    assert "exp.yaml:9" in str(caught.value) and "bad JSONPath" in str(caught.value)
    good = parse_experiment(text.replace("$.a[", "$.a"), path=tmp_path / "exp.yaml")
    assert good.load.journey is not None
    assert good.hypothesis[0].metric == "failures.checkout"


def test_the_builtin_by_name_is_the_agent_buyer_on_the_targets_orders_path() -> None:
    by_name = JourneyConfig.model_validate("agent-buyer")
    journey = resolve_journey(by_name, orders_path="/v1/orders", intent_format="fields")
    assert journey.steps[0].request.path == "/v1/orders"
    assert "item" in journey.steps[0].request.json_body
    assert resolve_journey(None, orders_path="/v1/orders", intent_format="fields") == journey
    own = JourneyConfig.model_validate(SHOP_JOURNEY)
    assert resolve_journey(own) is own


def test_failures_of_the_journeys_steps_are_metrics_a_run_can_judge(tmp_path: Path) -> None:
    from chaoskit.errors import InputError
    from chaoskit.observe.team import team_observation

    target = parse_target(TARGET.replace("{{skew}}", "{{item}}"), path=tmp_path / "shop.yaml")
    text = textwrap.dedent(
        """\
        version: 1
        name: shop
        load:
          shape: {kind: constant, for: 5s, rate: 5}
        hypothesis:
          - {metric: failures.checkout, max: 3}
        """
    )
    experiment = parse_experiment(text, path=tmp_path / "exp.yaml")
    team_observation(experiment, target, allowed_hosts=("127.0.0.1",))  # the target's step
    wrong = parse_experiment(text.replace("checkout", "chekout"), path=tmp_path / "exp.yaml")
    with pytest.raises(InputError, match="the run's journey has no step 'chekout'"):
        team_observation(wrong, target, allowed_hosts=("127.0.0.1",))
