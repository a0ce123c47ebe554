"""Each invariant's reconciliation on hand-made ledgers (typed records, no HTTP)."""

from __future__ import annotations

import pytest

from chaoskit.observe.ledger import (
    ClientOutcomes,
    CreditRecord,
    EntitlementGrant,
    InventoryRecord,
    OrderRecord,
    QueuedCredit,
    free_orders_honoured,
    late_credits,
    lost_entitlements,
    missing_credits,
    reconcile,
)


def grant(
    order_id: str, user: str, at: float = 100.0, released: float | None = None
) -> EntitlementGrant:
    return EntitlementGrant(order_id=order_id, user_id=user, granted_at=at, released_at=released)


def test_lost_entitlement_is_an_unreleased_grant_of_a_buyer_with_no_honoured_free_order() -> None:
    grants = [
        grant("a.0", "a"),  # failed at the coupon, quota consumed, re-click paid full price
        grant("b.0", "b", released=101.0),  # failed, but the quota was given back: not lost
        grant("c.0", "c"),  # failed ...
        grant("c.1", "c"),  # ... and the buyer's other free order was credited: not lost
        grant("d.0", "d"),  # honoured (credited or queued)
        grant("e.0", "e"),
        grant("e.1", "e"),  # two lost grants of one buyer: both listed
    ]
    result = lost_entitlements(grants, honoured={"c.1", "d.0"})
    assert (result.count, result.order_ids) == (3, ("a.0", "e.0", "e.1"))
    assert result.violated and result.skipped is None


def test_missing_credit_is_neither_credited_nor_durably_queued() -> None:
    result = missing_credits({"credited", "queued", "gone"}, {"credited"}, {"queued"})
    assert (result.count, result.order_ids) == (1, ("gone",))
    assert missing_credits(set(), {}, {}).count == 0


def test_late_credits_counts_landed_late_and_queued_too_long() -> None:
    credited = {"fast": (100.0, 101.0), "slow": (100.0, 140.5), "edge": (100.0, 130.0)}
    queued = {
        "old": QueuedCredit("old", order_time=150.0),
        "young": QueuedCredit("young", order_time=190.0),
        "slow": QueuedCredit("slow", order_time=100.0),  # also landed: counted once
    }
    result = late_credits(credited, queued, slo_s=30.0, now=200.0)
    assert (result.count, result.order_ids) == (2, ("old", "slow"))
    assert late_credits(credited, queued, slo_s=100.0, now=200.0).count == 0


def test_free_orders_honoured_overall_in_slo_and_by_phase_of_the_first_grant() -> None:
    grants = [
        grant("a.0", "a", at=10.0),  # credited in time
        grant("b.0", "b", at=20.0),  # credited late
        grant("c.0", "c", at=25.0),  # queued: honoured, not in SLO
        grant("d.0", "d", at=35.0),  # lost
        grant("d.1", "d", at=36.0),
    ]
    credited = {"a.0": (10.0, 11.0), "b.0": (20.0, 80.0)}
    rates = free_orders_honoured(
        grants,
        credited,
        {"c.0"},
        slo_s=30.0,
        phases={"baseline": (0.0, 15.0), "during": (15.0, 30.0), "recovery": (30.0, 60.0)},
    )
    overall = rates["overall"]
    assert (overall.entitled, overall.honoured, overall.in_slo) == (4, 3, 1)
    assert overall.honoured_rate == pytest.approx(0.75)
    assert overall.in_slo_rate == pytest.approx(0.25)
    assert (rates["baseline"].entitled, rates["baseline"].in_slo_rate) == (1, 1.0)
    assert (rates["during"].entitled, rates["during"].honoured, rates["during"].in_slo) == (2, 2, 0)
    assert rates["recovery"].honoured_rate == 0.0
    no_slo = free_orders_honoured(grants, credited, set(), slo_s=None)["overall"]
    assert no_slo.in_slo is None and no_slo.in_slo_rate is None
    assert free_orders_honoured([], {}, set(), slo_s=1.0)["overall"].honoured_rate is None


def _told(ok: set[str], failed: set[str]) -> ClientOutcomes:
    return ClientOutcomes(ok=set(ok), attempted=ok | failed, records=len(ok | failed))


def _order(order_id: str, user: str, *, live: bool = True, eligible: bool = True) -> OrderRecord:
    return OrderRecord(order_id, user, created_at=100.0, eligible=eligible, live=live)


def test_coupled_design_loses_the_entitlement_decoupled_is_only_late() -> None:
    # Coupled: u1's first attempt consumed the grant and failed at the coupon (cancelled);
    # the re-click went through as a full-price order.
    coupled = reconcile(
        _told({"u1.1"}, {"u1.0"}),
        orders=[_order("u1.0", "u1", live=False), _order("u1.1", "u1", eligible=False)],
        credits=[],
        queue=[],
        grants=[grant("u1.0", "u1")],
        items=[],
        credit_slo_s=30.0,
        now=200.0,
    )
    assert coupled.invariants["lost_entitlements"].order_ids == ("u1.0",)
    assert coupled.invariants["missing_credits"].count == 0
    assert coupled.free_orders["overall"].honoured_rate == 0.0
    # Decoupled: the order went through; its credit waits in the outbox, 90 s old.
    decoupled = reconcile(
        _told({"u1.0"}, set()),
        orders=iter([_order("u1.0", "u1")]),
        credits=iter([]),
        queue=[QueuedCredit("u1.0", order_time=110.0, attempts=4)],
        grants=[grant("u1.0", "u1")],
        items=[InventoryRecord("tea", stock=5, reserved=1)],
        credit_slo_s=30.0,
        now=200.0,
    )
    inv = decoupled.invariants
    assert (inv["lost_entitlements"].count, inv["missing_credits"].count) == (0, 0)
    assert inv["late_credits"].order_ids == ("u1.0",)
    assert decoupled.queued_credits == 1
    assert decoupled.oldest_queued_age_s == pytest.approx(90.0)
    assert decoupled.free_orders["overall"].honoured_rate == 1.0
    assert decoupled.free_orders["overall"].in_slo_rate == 0.0


def test_without_a_queue_an_owed_credit_is_missing_and_without_grants_entitlements_skip() -> None:
    found = reconcile(
        _told({"o1", "o2"}, set()),
        orders=[_order("o1", "u1"), _order("o2", "u2")],
        credits=[
            CreditRecord("o1", order_time=100.0, credited_at=101.0),
            CreditRecord("old-run", order_time=1.0, credited_at=500.0),
        ],
        queue=None,
        grants=None,
        items=[],
        credit_slo_s=None,
        now=200.0,
        no_grants_note="the target names no eligibility ledger",
    )
    inv = found.invariants
    assert inv["missing_credits"].order_ids == ("o2",)
    assert inv["lost_entitlements"].skipped == "the target names no eligibility ledger"
    assert not inv["lost_entitlements"].violated
    assert inv["late_credits"].skipped is not None
    assert inv["late_credits"].to_json()["skipped"].startswith("no audit.credit_slo")
    assert (found.queued_credits, found.oldest_queued_age_s, found.free_orders) == (None, None, {})


def test_another_runs_grants_and_queue_rows_are_not_this_runs() -> None:
    found = reconcile(
        _told({"mine"}, set()),
        orders=[_order("mine", "u1")],
        credits=[CreditRecord("mine", 100.0, 101.0)],
        queue=[QueuedCredit("theirs", order_time=1.0)],
        grants=[grant("mine", "u1"), grant("theirs", "u9")],
        items=[],
        credit_slo_s=30.0,
        now=200.0,
    )
    assert found.queued_credits == 0 and found.oldest_queued_age_s is None
    assert found.invariants["lost_entitlements"].count == 0
    assert found.free_orders["overall"].entitled == 1
