"""LoadSpec, the agent buyer's intents and tick deltas: the engine's pure parts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hdrh.histogram import HdrHistogram

from chaoskit.errors import InputError, SafetyRefusal
from chaoskit.experiment.models import Behaviour
from chaoskit.load.intents import classify, make_intent
from chaoskit.load.spec import LoadSpec, check_gateway_host, read_spec, write_spec
from chaoskit.load.tally import Tally, merge_deltas


def _spec(**overrides: object) -> LoadSpec:
    fields: dict[str, object] = {
        "run_id": "r1",
        "run_dir": "/tmp/r1",
        "gateway_url": "http://127.0.0.1:18410",
        "t0": 1_700_000_000.0,
        "duration_s": 30.0,
        "shape": {"kind": "constant", "for": 30, "rate": 10},
    }
    fields.update(overrides)
    return LoadSpec.model_validate(fields)


def test_spec_round_trips_through_its_file(tmp_path: Path) -> None:
    spec = _spec(
        behaviour=Behaviour(reclick=3, think_time=0.5), workers=2, headers={"X-Tag": "t"}
    )
    path = write_spec(spec, tmp_path / "deep" / "spec.json")
    assert read_spec(path) == spec
    assert json.loads(path.read_text())["behaviour"]["reclick"] == 3


def test_spec_defaults_follow_the_contract() -> None:
    spec = _spec()
    assert (spec.model, spec.workers, spec.max_inflight, spec.seed) == ("open", 0, 2000, 0)
    assert spec.behaviour == Behaviour(
        reclick=0, think_time=1.0, reuse_idempotency_key=False, request_timeout=5.0
    )
    assert (spec.caps.max_users, spec.caps.max_rate) == (None, None)


@pytest.mark.parametrize(
    ("raw", "where"),
    [
        ("{not json", "cannot read"),
        (json.dumps({"run_id": "x"}), "run_dir"),
        (json.dumps({**_spec().model_dump(), "duration_s": 0}), "duration_s"),
        (json.dumps({**_spec().model_dump(), "bogus": 1}), "bogus"),
        (json.dumps({**_spec().model_dump(), "model": "half-open"}), "model"),
    ],
)
def test_bad_spec_files_are_input_errors(tmp_path: Path, raw: str, where: str) -> None:
    path = tmp_path / "spec.json"
    path.write_text(raw)
    with pytest.raises(InputError, match=where):
        read_spec(path)


def test_missing_spec_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read"):
        read_spec(tmp_path / "absent.json")


@pytest.mark.parametrize("url", ["http://127.0.0.1:1/x", "http://localhost:8080"])
def test_local_gateways_are_allowed(url: str) -> None:
    check_gateway_host(_spec(gateway_url=url))


def test_other_gateway_hosts_need_the_allow_list() -> None:
    with pytest.raises(SafetyRefusal, match="staging.example"):
        check_gateway_host(_spec(gateway_url="https://staging.example:443"))
    check_gateway_host(
        _spec(gateway_url="https://staging.example:443", allowed_hosts=["staging.example"])
    )
    with pytest.raises(InputError, match="http"):
        check_gateway_host(_spec(gateway_url="ftp://127.0.0.1/"))


def test_intents_are_seeded_and_varied() -> None:
    first = [make_intent(7, f"o{k}", run_id="a") for k in range(50)]
    again = [make_intent(7, f"o{k}", run_id="b") for k in range(50)]
    other = [make_intent(8, f"o{k}", run_id="a") for k in range(50)]
    assert [i.text for i in first] == [i.text for i in again]
    # Buyers are scoped to the run, so a stack kept up between runs has no spent quotas.
    assert [i.user_id.removeprefix("a-") for i in first] == [
        i.user_id.removeprefix("b-") for i in again
    ]
    assert first[0].user_id.startswith("a-u") and again[0].user_id.startswith("b-u")
    assert [i.text for i in first] != [i.text for i in other]
    assert len({i.text for i in first}) > 30
    assert first[0].intent_id == "a-o0" and again[0].intent_id == "b-o0"
    assert all(i.text.startswith("help me buy a ") and " within " in i.text for i in first)
    body = json.loads(first[0].body("a-o0.1"))
    assert body == {
        "intent_id": "a-o0",
        "order_id": "a-o0.1",
        "user_id": first[0].user_id,
        "text": first[0].text,
    }
    assert make_intent(7, "c1.0", run_id="a", user="u5").user_id == "u5"


def test_attempts_are_classified_like_a_buyer_would() -> None:
    assert classify(200, None, timed_out=False).told == "ok"
    store = classify(503, b'{"outcome":"failed","step":"store"}', timed_out=False)
    assert (store.told, store.step, store.status, store.retryable) == ("failed", "store", 503, True)
    parse = classify(400, b'{"outcome":"failed","step":"parse"}', timed_out=False)
    assert (parse.step, parse.retryable) == ("parse", False)
    shed = classify(429, b'{"step":"gateway"}', timed_out=False)
    assert shed.retryable
    timeout = classify(None, None, timed_out=True)
    assert (timeout.told, timeout.step, timeout.status) == ("timeout", "timeout", None)
    refused = classify(None, None, timed_out=False)
    assert (refused.told, refused.step, refused.retryable) == ("failed", "gateway", True)
    assert classify(502, b"<html>bad gateway</html>", timed_out=False).step == "gateway"


def test_tally_deltas_reset_and_merge() -> None:
    a, b = Tally(), Tally()
    a.add("intents_started", 3)
    a.request(12.0, ok=True)
    a.request(40.0, ok=False, step="store")
    a.fulfilled(15.0, started_t=2.4)
    a.failed("store", started_t=2.9)
    b.add("dropped", 2)
    b.request(0.2, ok=True)  # below 1 ms is recorded as 1 ms
    b.request(30.0, ok=False, step="store")
    b.request(30.0, ok=False, step="rider")
    b.failed("store", started_t=3.0)
    b.failed("rider")
    first = a.take()
    assert first["requests"] == 2 and first["request_errors"] == 1
    assert a.take()["requests"] == 0  # a delta, not a running total
    merged = merge_deltas([first, b.take()])
    assert merged["dropped"] == 2 and merged["failed"] == 3
    assert merged["requests"] == 5  # a: 2, b: 3
    assert merged["failed_steps"] == {"store": 2, "rider": 1}  # failed attempts, by step
    assert merged["by_start"] == {"2:f": 1, "2:x": 1, "3:x": 1}
    latency = HdrHistogram.decode(merged["latency_hdr"])
    assert latency.get_total_count() == 5 and latency.get_min_value() == 1
    assert HdrHistogram.decode(merged["fulfilment_hdr"]).get_total_count() == 1
    assert merge_deltas([])["requests"] == 0


def test_structured_intents_carry_the_same_order_as_the_text() -> None:
    intent = make_intent(7, "o1", run_id="r")
    body = json.loads(intent.body("r-o1.0", fields=True))
    assert set(body) == {
        "intent_id",
        "order_id",
        "user_id",
        "item",
        "spec",
        "deadline_min",
        "place",
    }
    assert body["item"] in intent.text and body["spec"] in intent.text
    assert f"within {body['deadline_min']} min" in intent.text
    assert intent.text.endswith(f"to {body['place']}")
    assert "text" not in body and "text" in json.loads(intent.body("r-o1.0"))
