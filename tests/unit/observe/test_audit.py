"""The audit against a real HTTP server serving ledgers on 127.0.0.1, and the drain."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from typing import Any

import pytest

from chaoskit.errors import TargetUnreachable
from chaoskit.observe.audit import drain, iter_json_array, run_audit
from chaoskit.observe.metrics import AUDIT_METRICS


def write_outcomes(folder: Path, records: list[dict[str, Any]], name: str = "101") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.jsonl"
    with path.open("a", encoding="utf-8") as out:
        for r in records:
            out.write(json.dumps(r) + "\n")
    return folder


def attempt(order_id: str, told: str, step: str | None = None) -> dict[str, Any]:
    status = 200 if told == "ok" else (None if told == "timeout" else 503)
    return {
        "intent": "i-" + order_id,
        "order_id": order_id,
        "told": told,
        "step": step,
        "status": status,
        "t": 1.0,
    }


def order(order_id: str, *, status: str = "created", eligible: bool = False) -> dict[str, Any]:
    return {
        "order_id": order_id,
        "intent_id": "i-" + order_id,
        "user_id": "u1",
        "created_at": 1.0,
        "eligible": eligible,
        "status": status,
    }


def credit(order_id: str) -> dict[str, Any]:
    return {"order_id": order_id, "order_time": 1.0, "credited_at": 2.0, "amount": 5}


def serve_ledgers(stack: Any, orders: list[Any], credits: list[Any], items: list[Any]) -> None:
    stack.routes["/orders/ledger"] = {"orders": orders}
    stack.routes["/coupon/ledger"] = {"credits": credits}
    stack.routes["/inventory/ledger"] = {"items": items}


LEDGERS = ("gateway", "orders", "coupon", "inventory")


def test_clean_run_passes(stack: Any, tmp_path: Path) -> None:
    outcomes = write_outcomes(
        tmp_path / "outcomes",
        [
            attempt("o1", "failed", "store"),
            attempt("o1", "ok"),
            attempt("o2", "ok"),
            attempt("o3", "timeout"),
        ],
    )
    serve_ledgers(
        stack,
        [
            order("o1", eligible=True),
            order("o2"),
            order("o3", status="cancelled"),
            order("old-run"),
        ],
        [credit("o1")],
        [{"item": "tea", "stock": 10, "reserved": 10}],
    )
    result = run_audit(stack.services(*LEDGERS), outcomes)
    assert result.status == "passed", result
    assert result.records == 4
    assert list(result.to_json()["invariants"]) == list(AUDIT_METRICS)
    assert all(v["count"] == 0 for v in result.to_json()["invariants"].values())


def test_each_invariant_is_detected_with_its_ids(stack: Any, tmp_path: Path) -> None:
    outcomes = write_outcomes(
        tmp_path / "outcomes",
        [
            attempt("lost-missing", "ok"),  # no order at all
            attempt("lost-cancelled", "ok"),  # order compensated after the client heard ok
            attempt("phantom", "timeout"),
            attempt("phantom", "failed", "rider"),
            attempt("not-phantom", "failed", "store"),
            attempt("not-phantom", "ok"),
            attempt("double", "ok"),
            attempt("missing-credit", "ok"),
            attempt("ineligible", "ok"),
        ],
    )
    write_outcomes(tmp_path / "outcomes", [attempt("phantom-2", "failed", "gateway")], name="202")
    serve_ledgers(
        stack,
        [
            order("lost-cancelled", status="cancelled"),
            order("phantom"),
            order("phantom-2"),
            order("not-phantom"),
            order("double", eligible=True),
            order("missing-credit", eligible=True),
            order("ineligible"),
        ],
        [credit("double"), credit("double"), credit("not-phantom"), credit("old"), credit("old")],
        [{"item": "tea", "stock": 10, "reserved": 11}, {"item": "cake", "stock": 5, "reserved": 5}],
    )
    result = run_audit(stack.services(*LEDGERS), outcomes)
    got = {name: inv.to_json() for name, inv in result.invariants.items()}
    assert result.status == "failed"
    assert got["lost_orders"] == {"count": 2, "order_ids": ["lost-cancelled", "lost-missing"]}
    assert got["phantom_orders"] == {"count": 2, "order_ids": ["phantom", "phantom-2"]}
    assert got["double_credits"] == {"count": 1, "order_ids": ["double"]}
    assert got["missing_credits"] == {"count": 1, "order_ids": ["missing-credit"]}
    assert got["oversold"] == {"count": 1, "order_ids": ["tea"]}
    assert "lost_orders" in result.reason


def test_ids_are_capped_at_fifty_but_counted(stack: Any, tmp_path: Path) -> None:
    outcomes = write_outcomes(
        tmp_path / "outcomes", [attempt(f"o{i:03d}", "ok") for i in range(120)]
    )
    serve_ledgers(stack, [], [], [])
    lost = run_audit(stack.services(*LEDGERS), outcomes).invariants["lost_orders"]
    assert lost.count == 120
    assert list(lost.order_ids) == [f"o{i:03d}" for i in range(50)]


def test_odd_lines_fall_back_to_json_and_torn_lines_are_counted(stack: Any, tmp_path: Path) -> None:
    folder = tmp_path / "outcomes"
    folder.mkdir()
    (folder / "1.jsonl").write_text(
        '{"told": "ok", "order_id": "reordered"}\n'
        '{"intent": "x", "order_id": "quo\\"te", "told": "ok"}\n'
        "\n"
        '{"intent": "x", "order_id": "torn", "to'  # a kill cut the last line
    )
    serve_ledgers(stack, [order("reordered"), order('quo"te')], [], [])
    result = run_audit(stack.services(*LEDGERS), folder)
    assert result.status == "passed"
    assert (result.records, result.bad_lines) == (2, 1)


def test_skipped_without_ledgers_or_outcomes(stack: Any, tmp_path: Path) -> None:
    outcomes = write_outcomes(tmp_path / "outcomes", [attempt("o1", "ok")])
    attach = run_audit({}, outcomes)
    assert attach.status == "skipped"
    assert "no ledger" in attach.reason
    assert attach.ok
    # A target that has the services but no /ledger endpoint (404).
    no_endpoint = run_audit(stack.services(*LEDGERS), outcomes)
    assert no_endpoint.status == "skipped"
    assert "exposes no ledger" in no_endpoint.reason
    serve_ledgers(stack, [], [], [])
    empty = run_audit(stack.services(*LEDGERS), tmp_path / "nothing-here")
    assert empty.status == "skipped"
    assert "no outcome records" in empty.to_json()["reason"]


def test_unreadable_ledger_is_an_environment_problem(stack: Any, tmp_path: Path) -> None:
    outcomes = write_outcomes(tmp_path / "outcomes", [attempt("o1", "ok")])
    serve_ledgers(stack, [], [], [])
    stack.routes["/orders/ledger"] = b'{"orders": [{"order_id": "o1", "sta'
    with pytest.raises(TargetUnreachable, match="not valid JSON|ends early"):
        run_audit(stack.services(*LEDGERS), outcomes)
    # Nothing listens on the services' port any more.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    with pytest.raises(TargetUnreachable, match="cannot read"):
        run_audit({name: f"{closed}/{name}" for name in LEDGERS}, outcomes)


def test_json_array_survives_any_chunking() -> None:
    doc = json.dumps({"credits": [credit(f"o{i}") for i in range(40)]})
    for size in (1, 7, 64, len(doc)):
        chunks = [doc[i : i + size] for i in range(0, len(doc), size)]
        assert [c["order_id"] for c in iter_json_array(chunks, "credits")] == [
            f"o{i}" for i in range(40)
        ]
    assert list(iter_json_array(['{"items": []}'], "items")) == []


def test_drain_waits_for_outbox_and_inflight(stack: Any) -> None:
    pending = iter([3, 1, 0])
    stack.routes["/gateway/stats"] = lambda: {
        "gauges": {"outbox_pending": next(pending, 0), "inflight": 0}
    }
    result = drain(stack.services("gateway"), timeout_s=10, poll_s=0.05)
    assert result.drained
    assert result.outbox_pending == 0
    assert stack.stats_calls == 3


def test_drain_gives_up_in_time(stack: Any) -> None:
    stack.routes["/gateway/stats"] = {"gauges": {"outbox_pending": 7, "inflight": 2}}
    started = time.monotonic()
    result = drain(stack.services("gateway"), timeout_s=0.5, poll_s=0.1)
    assert time.monotonic() - started < 2.0
    assert not result.drained
    assert (result.outbox_pending, result.inflight) == (7, 2)
    assert "7 credits pending" in result.reason
    assert not drain({}, timeout_s=1).drained


@pytest.mark.slow
def test_a_million_outcome_lines_audit_quickly(stack: Any, tmp_path: Path) -> None:
    folder = tmp_path / "outcomes"
    folder.mkdir()
    # 1M attempts over 250k orders in 4 engine files; every 4th order is told ok.
    for part in range(4):
        with (folder / f"{part}.jsonl").open("w") as out:
            for n in range(250_000):
                oid = f"o-{part}-{n // 4}"
                told = "ok" if n % 4 == 3 else "failed"
                out.write(
                    f'{{"intent":"i-{oid}","order_id":"{oid}","told":"{told}",'
                    f'"step":null,"status":200,"t":{n / 1000}}}\n'
                )
    serve_ledgers(
        stack, [order(f"o-{p}-{k}") for p in range(4) for k in range(0, 62_500, 1000)], [], []
    )
    started = time.perf_counter()
    result = run_audit(stack.services(*LEDGERS), folder)
    elapsed = time.perf_counter() - started
    assert result.records == 1_000_000
    assert result.invariants["lost_orders"].count == 250_000 - 4 * 63
    assert elapsed < 10.0, f"audit of 1M lines took {elapsed:.1f}s"
    print(f"\naudit of 1M outcome lines: {elapsed:.2f}s")


def test_outbox_and_grants_ledgers_feed_the_credit_and_entitlement_invariants(
    stack: Any, tmp_path: Path
) -> None:
    outcomes = write_outcomes(
        tmp_path / "outcomes",
        [
            attempt("u1.0", "failed", "coupon"),  # consumed u1's free order
            attempt("u1.1", "ok"),  # the re-click paid full price
            attempt("u2.0", "ok"),  # credit still in the outbox
            attempt("u3.0", "ok"),  # credit never queued nor landed
        ],
    )
    serve_ledgers(
        stack,
        [
            order("u1.0", status="cancelled", eligible=True),
            order("u1.1"),
            order("u2.0", eligible=True),
            order("u3.0", eligible=True),
        ],
        [],
        [],
    )
    stack.routes["/gateway/ledger"] = {
        "outbox": [{"order_id": "u2.0", "order_time": 1000.0, "attempts": 3}]
    }
    stack.routes["/eligibility/ledger"] = {
        "grants": [
            {"order_id": o, "user_id": o[:2], "granted_at": 1000.0, "released_at": None}
            for o in ("u1.0", "u2.0", "u3.0")
        ]
    }
    services = stack.services(*LEDGERS, "eligibility")
    result = run_audit(services, outcomes, credit_slo_s=30.0, clock=lambda: 1100.0)
    got = result.to_json()
    assert got["invariants"]["missing_credits"] == {"count": 1, "order_ids": ["u3.0"]}
    assert got["invariants"]["late_credits"] == {"count": 1, "order_ids": ["u2.0"]}
    assert got["invariants"]["lost_entitlements"] == {"count": 2, "order_ids": ["u1.0", "u3.0"]}
    assert (got["queued_credits"], got["oldest_queued_age_s"]) == (1, 100.0)
    assert got["free_orders"]["overall"] == {"entitled": 3, "honoured": 1, "in_slo": 0}
    assert result.kpis()["free_orders_honoured_rate"] == pytest.approx(1 / 3)
    # The same target without its eligibility ledger: the entitlement invariant is skipped
    # with a note, never reported as passed, and the KPIs are unknown.
    without = run_audit(stack.services(*LEDGERS), outcomes, credit_slo_s=30.0)
    lost = without.to_json()["invariants"]["lost_entitlements"]
    assert lost["skipped"] == "the target names no eligibility ledger (grants)"
    assert without.kpis() == {}
    stack.routes["/eligibility/ledger"] = {"something": []}
    odd = run_audit(services, outcomes).invariants["lost_entitlements"]
    assert odd.skipped is not None and "no grants export" in odd.skipped
