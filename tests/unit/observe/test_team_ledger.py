"""The team ledger's logic: its target-file keys, its values, and what is judged or skipped.

The readers against a real HTTP export and a real PostgreSQL are in
tests/integration/test_team_observe.py; whole runs against the tests' shop API in
tests/e2e/test_team_shop.py.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from chaoskit.errors import InputError, SafetyRefusal, TargetFileError
from chaoskit.exit_codes import exit_code_for_error
from chaoskit.experiment.loader import parse_experiment
from chaoskit.experiment.models import Check
from chaoskit.observe.ledger import InventoryRecord
from chaoskit.observe.ledger_sources import count, epoch, order_id
from chaoskit.observe.team import team_observation
from chaoskit.observe.team_ledger import (
    CreditRow,
    LedgerRecords,
    ledger_hosts,
    planned_gaps,
    reconcile_team_ledger,
)
from chaoskit.run.audit_checks import judge_after_run
from chaoskit.run.judging import verdict_of
from chaoskit.stack.target import AttachTarget, parse_target

T0 = 1_700_000_000.0

ATTACH = (
    "version: 1\nkind: attach\nname: s\ngateway: {url: 'http://127.0.0.1:1'}\n"
    "toxiproxy: [{url: 'http://127.0.0.1:2', proxies: {store: store}}]\n"
    "allowed_hosts: [127.0.0.1]\n"
)
FULL_LEDGER = """\
audit:
  ledger:
    http: {url: "http://127.0.0.1:3/orders?ref={{run_id}}", order_ids: "$.order_ids[*]"}
    credits:
      http:
        url: "http://127.0.0.1:3/credits?ref={{run_id}}"
        rows: "$.credits[*]"
        fields: {order_id: "$.order", credited_at: "$.at"}
    entitled:
      sql: {dsn: "${LEDGER_DSN}", query: "SELECT id FROM orders WHERE free"}
    stock:
      http:
        url: "http://127.0.0.1:3/stock"
        rows: "$.items[*]"
        fields: {item: "$.sku", stock: "$.capacity", reserved: "$.sold"}
"""


def outcomes(folder: Path, told: dict[str, tuple[str, float]]) -> Path:
    """Outcome lines as the engine writes them: order id -> (told, seconds since start)."""
    folder.mkdir()
    with (folder / "w0.jsonl").open("w") as stream:
        for order, (verdict, t) in told.items():
            stream.write(
                json.dumps({"intent": order, "order_id": order, "told": verdict, "t": t}) + "\n"
            )
    return folder


def test_every_piece_named_is_judged_with_counts_and_ids(tmp_path: Path) -> None:
    told = outcomes(
        tmp_path / "out",
        {
            "o1": ("ok", 1.0),
            "o2": ("ok", 2.0),
            "o3": ("ok", 3.0),  # owed, never credited: missing
            "o4": ("ok", 4.0),  # owed, credited 30 s after told ok: late
            "o5": ("ok", 5.0),  # not owed, never credited: fine
            "o6": ("failed", 6.0),
        },
    )
    records = LedgerRecords(
        order_ids=("o1", "o2", "o3", "o4", "o5"),
        credits=(
            CreditRow("o1", T0 + 1.5),
            CreditRow("o2", T0 + 2.5),
            CreditRow("o2", T0 + 2.6),  # twice: double
            CreditRow("o4", T0 + 34.0),
            CreditRow("other-run", T0),  # a long-lived ledger's older credit: not ours
        ),
        credit_times=True,
        entitled=frozenset({"o1", "o2", "o3", "o4"}),
        stock=(
            InventoryRecord("boba-l", stock=10, reserved=10),
            InventoryRecord("tea-m", stock=5, reserved=7),
        ),
    )
    result = reconcile_team_ledger(records, told, credit_slo_s=10.0, started_at=T0)
    found = {name: (inv.count, inv.order_ids) for name, inv in result.invariants.items()}
    assert found == {
        "lost_orders": (0, ()),
        "phantom_orders": (0, ()),
        "double_credits": (1, ("o2",)),
        "missing_credits": (1, ("o3",)),
        "late_credits": (1, ("o4",)),
        "lost_entitlements": (0, ()),  # skipped: see below
        "oversold": (1, ("tea-m",)),
    }
    assert result.invariants["lost_entitlements"].skipped
    assert [n for n, inv in result.invariants.items() if inv.skipped] == ["lost_entitlements"]
    assert result.status == "failed" and result.credit_slo_s == 10.0


def test_a_clean_ledger_passes_every_judged_invariant(tmp_path: Path) -> None:
    told = outcomes(tmp_path / "out", {"o1": ("ok", 1.0), "o2": ("ok", 2.0)})
    records = LedgerRecords(
        order_ids=("o1", "o2"),
        credits=(CreditRow("o1", T0 + 3.0),),
        credit_times=True,
        entitled=frozenset({"o1"}),
        stock=(InventoryRecord("boba-l", stock=3, reserved=3),),
    )
    result = reconcile_team_ledger(records, told, credit_slo_s=5.0, started_at=T0)
    assert result.status == "passed", result
    judged = {n: i.count for n, i in result.invariants.items() if i.skipped is None}
    assert judged == dict.fromkeys(
        ("lost_orders", "phantom_orders", "double_credits", "missing_credits")
        + ("late_credits", "oversold"),
        0,
    )
    # A credit is late from when the buyer was told ok, not from the run's start.
    late = reconcile_team_ledger(records, told, credit_slo_s=1.5, started_at=T0)
    assert late.invariants["late_credits"].order_ids == ("o1",)


@pytest.mark.parametrize(
    ("records", "slo", "skipped"),
    [
        (LedgerRecords(("o1",)), 5.0, {"double_credits", "missing_credits", "late_credits"}),
        (
            LedgerRecords(("o1",), credits=(CreditRow("o1"),)),
            5.0,
            {"missing_credits", "late_credits"},
        ),
        (
            LedgerRecords(("o1",), credits=(CreditRow("o1", T0),), credit_times=True),
            None,
            {"missing_credits", "late_credits"},
        ),
    ],
    ids=["no-credits", "credits-without-times", "no-slo"],
)
def test_what_the_target_does_not_name_is_skipped_with_a_note(
    tmp_path: Path, records: LedgerRecords, slo: float | None, skipped: set[str]
) -> None:
    told = outcomes(tmp_path / "out", {"o1": ("ok", 1.0)})
    result = reconcile_team_ledger(records, told, credit_slo_s=slo, started_at=T0)
    notes = {n: i.skipped for n, i in result.invariants.items() if i.skipped is not None}
    assert set(notes) == skipped | {"lost_entitlements", "oversold"}
    assert "audit.ledger.stock" in str(notes["oversold"])
    if "missing_credits" in skipped and records.credits is not None:
        assert "audit.ledger.entitled" in str(notes["missing_credits"])
    if records.credits is not None and not records.credit_times:
        assert "credited_at" in str(notes["late_credits"])
    if slo is None:
        assert "credit_slo" in str(notes["late_credits"])
    # Skipped is never passed: no audit check for it, and a hypothesis on it is not judged,
    # so the verdict cannot be "held" on its account.
    checks = judge_after_run([Check(metric="oversold", max=0)], result)
    assert [c.metric for c in checks if c.kind == "audit"] == [
        n for n in result.invariants if n not in notes
    ]
    hypothesis = next(c for c in checks if c.kind == "hypothesis")
    assert hypothesis.ok is None and "audit.ledger.stock" in hypothesis.note
    assert verdict_of("completed", checks, [Check(metric="oversold", max=0)]) == "error"


def test_the_new_ledger_keys_parse_and_every_host_is_on_the_allow_list_check() -> None:
    target = parse_target(ATTACH + FULL_LEDGER, path="s.yaml")
    assert isinstance(target, AttachTarget) and target.audit is not None
    ledger = target.audit.ledger
    hosts = ledger_hosts(ledger, {"LEDGER_DSN": "postgresql://ro@db.internal/shop"})
    assert hosts == {
        "audit.ledger.http": "http://127.0.0.1:3/orders?ref=x",
        "audit.ledger.credits.http": "http://127.0.0.1:3/credits?ref=x",
        "audit.ledger.entitled.sql": "postgresql://db.internal",
        "audit.ledger.stock.http": "http://127.0.0.1:3/stock",
    }
    assert target.env_vars() == ["LEDGER_DSN"]
    gaps, later = planned_gaps(ledger, credit_slo=True)
    assert (set(gaps), later) == ({"lost_entitlements"}, None)
    experiment = parse_experiment(
        "version: 1\nname: e\nload: {model: open, shape: {kind: constant, for: 5s, rate: 1}}\n",
        path="e.yaml",
    )
    with pytest.raises(SafetyRefusal, match=r"audit\.ledger\.entitled\.sql host 'db\.internal'"):
        team_observation(
            experiment,
            target,
            allowed_hosts=("127.0.0.1",),
            environ={"LEDGER_DSN": "postgresql://ro@db.internal/shop"},
        )


def test_a_credits_query_leaves_late_credits_to_its_columns() -> None:
    target = parse_target(
        ATTACH
        + "audit:\n  ledger:\n    sql: {dsn: '${D}', query: 'SELECT id FROM o'}\n"
        + "    credits: {sql: {dsn: '${D}', query: 'SELECT order_id, credited_at FROM c'}}\n",
        path="s.yaml",
    )
    assert isinstance(target, AttachTarget) and target.audit is not None
    gaps, later = planned_gaps(target.audit.ledger, credit_slo=True)
    assert set(gaps) == {"lost_entitlements", "missing_credits", "oversold"}
    assert later is not None and "credited_at column" in later


@pytest.mark.parametrize(
    ("ledger", "line", "message"),
    [
        (
            "    credits:\n      http: {url: 'http://127.0.0.1:3/c', rows: '$.c[*]',\n"
            "             fields: {credited_at: 'at'}}\n",
            12,
            "audit.ledger.credits.http.fields.credited_at: a JSONPath starts with $",
        ),
        (
            "    credits:\n      http: {url: 'http://127.0.0.1:3/c', fields: {order_id: $.id}}\n",
            11,
            "fields are read relative to each row: give rows too",
        ),
        (
            "    credits:\n      http: {url: 'http://127.0.0.1:3/c', order_ids: '$[*]',"
            " rows: '$[*]'}\n",
            11,
            "order_ids (one id per credit) or rows with fields, not both",
        ),
        (
            "    credits:\n      http: {url: 'http://127.0.0.1:3/c'}\n"
            "      sql: {dsn: '${D}', query: 'SELECT order_id FROM c'}\n",
            10,
            "not both: each row is counted",
        ),
        (
            "    stock:\n      http: {url: 'http://127.0.0.1:3/s'}\n",
            11,
            "audit.ledger.stock.http.rows: required key is missing",
        ),
        (
            "    stock:\n      http: {url: 'http://127.0.0.1:3/s', rows: '$[*]',"
            " fields: {sold: $.n}}\n",
            11,
            "audit.ledger.stock.http.fields.sold: unknown key",
        ),
        ("    entitled: {}\n", 10, "expected http or sql"),
    ],
    ids=["bad-path", "fields-without-rows", "two-forms", "two-sources", "no-rows", "typo", "none"],
)
def test_ledger_mistakes_are_one_line_with_file_and_line(
    ledger: str, line: int, message: str
) -> None:
    text = ATTACH + "audit:\n  ledger:\n    http: {url: 'http://127.0.0.1:3/o'}\n" + ledger
    with pytest.raises(TargetFileError) as caught:
        parse_target(text, path="s.yaml")
    assert message in str(caught.value)
    assert str(caught.value).startswith(f"s.yaml:{line}:"), str(caught.value)
    assert exit_code_for_error(caught.value) == 2
    assert "\n" not in str(caught.value)


def test_ledger_values_become_the_audits_types() -> None:
    assert epoch(12.5, "w") == 12.5 and epoch(Decimal("3"), "w") == 3.0
    at = datetime(2026, 2, 1, 8, 0, tzinfo=UTC)
    assert epoch(at, "w") == at.timestamp()
    assert epoch("2026-02-01T08:00:00Z", "w") == at.timestamp()
    assert epoch("2026-02-01T16:00:00+08:00", "w") == at.timestamp()
    beijing = timezone(timedelta(hours=8))
    assert epoch(at.astimezone(beijing), "w") == at.timestamp()
    with pytest.raises(InputError, match="without a time zone"):
        epoch(datetime(2026, 2, 1, 8, 0), "credited_at")
    with pytest.raises(InputError, match="without a time zone"):
        epoch("2026-02-01T08:00:00", "credited_at")
    with pytest.raises(InputError, match=r"^w, row 2: expected a time"):
        epoch(None, "w, row 2")
    assert order_id(7, "w") == "7"
    with pytest.raises(InputError, match="expected an order id"):
        order_id({"id": 1}, "w")
    assert count(Decimal("4"), "w") == 4.0
    with pytest.raises(InputError, match="expected a number, got bool"):
        count(True, "w")


def test_the_review_lists_what_is_read_before_any_load_and_reads_nothing() -> None:
    from chaoskit.observe.team import team_checks

    target = parse_target(
        ATTACH
        + FULL_LEDGER
        + "metrics: {prometheus: {url: 'http://127.0.0.1:9', queries: {q: up, r: up}}}\n",
        path="s.yaml",
    )
    experiment = parse_experiment(
        "version: 1\nname: e\nload: {model: open, shape: {kind: constant, for: 5s, rate: 1}}\n",
        path="e.yaml",
    )
    # Nothing listens on these ports: listing the checks must not try them.
    assert team_checks(experiment, target) == {
        "metrics.prometheus": "2 queries run once at http://127.0.0.1:9",
        "audit.ledger.http": "GET http://127.0.0.1:3/orders?ref={{run_id}}: answers 200 with JSON",
        "audit.ledger.credits.http": (
            "GET http://127.0.0.1:3/credits?ref={{run_id}}: answers 200 with JSON"
        ),
        "audit.ledger.entitled.sql": (
            "the query runs read-only on ${LEDGER_DSN} and returns the order ids in its first "
            "column"
        ),
        "audit.ledger.stock.http": "GET http://127.0.0.1:3/stock: answers 200 with JSON",
    }


def test_a_problem_found_after_loading_is_put_at_its_key_in_the_target_file() -> None:
    target = parse_target(ATTACH + FULL_LEDGER, path="s.yaml")
    lines = (ATTACH + FULL_LEDGER).splitlines()
    query_line = next(i for i, line in enumerate(lines, 1) if "WHERE free" in line)
    error = target.error_at(("audit", "ledger", "entitled", "sql", "query"), "no column")
    assert isinstance(error, TargetFileError) and exit_code_for_error(error) == 2
    assert str(error).startswith(f"s.yaml:{query_line}:") and str(error).endswith(": no column")
