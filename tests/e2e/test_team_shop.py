"""The team's Prometheus and ledger against the tests' second order API (tests/support/shop_api.py).

The shop keeps its orders in a real PostgreSQL (tests/conftest.py), serves its metrics with
prometheus-client, scraped by a real Prometheus; its inventory sits behind a real Toxiproxy.
chaoskit drives it through a step journey, judges PromQL metrics on the shop's own counters,
and audits through the shop's HTTP ledger export and through SQL on its database.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.support.shop import ShopStack, running_shop

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
CHAOSKIT = str(REPO / ".venv" / "bin" / "chaoskit")
Prometheus = Callable[..., Any]  # the prometheus fixture (tests/conftest.py)

JOURNEY = """\
journey:
  name: shop-checkout
  vars:
    sku: {choice: [boba-l, tea-m, latte-s]}
    qty: {int: [1, 3]}
  steps:
    - name: checkout
      request:
        method: POST
        path: /api/v2/checkout
        headers: {Idempotency-Key: "{{order_key}}"}
        json: {sku: "{{sku}}", quantity: "{{qty}}", customer: "{{user_id}}", ref: "{{run_id}}"}
      expect: {status: [201, 200], body: {$.checkout.id: {exists: true}}}
      extract: {checkout_id: $.checkout.id}
    - name: confirm
      request: {method: GET, path: "/api/v2/checkout/{{checkout_id}}"}
      poll: {every: 50ms, timeout: 3s, until: {$.checkout.status: confirmed},
             fail_if: {$.checkout.status: failed}}
  order_id: "{{checkout_id}}"
"""

QUERIES = """\
metrics:
  prometheus:
    url: {prometheus}
    interval: 1s
    queries:
      shop_confirmed_per_s: sum(rate(shop_orders_total{{status="confirmed"}}[4s]))
      shop_failed_per_s: sum(rate(shop_orders_total{{status="failed"}}[4s])) or vector(0)
      shop_p95_s:
        query: >-
          histogram_quantile(0.95,
          sum by (le) (rate(shop_checkout_latency_seconds_bucket[4s])))
        agg: max
"""

HTTP_LEDGER = """\
    http:
      url: "{api}/api/v2/ledger?ref={{{{run_id}}}}"
      order_ids: $.order_ids[*]
"""
SQL_LEDGER = """\
    sql:
      dsn: ${SHOP_LEDGER_DSN}
      query: SELECT id FROM shop_orders WHERE ref = %(run_id)s
"""


@dataclass(frozen=True)
class TeamShop:
    stack: ShopStack
    prometheus: Any
    dsn: str
    password: str
    work: Path

    def target(
        self,
        name: str,
        *,
        ledger: tuple[str, ...] = ("http", "sql"),
        audit: str | None = None,
        prometheus: str | None = None,
        prometheus_headers: str = "",
    ) -> Path:
        """A target file for the shop; ``audit`` (its text, ``{api}`` filled in) replaces
        the ledger made of ``ledger``'s parts; ``prometheus`` replaces the Prometheus URL and
        ``prometheus_headers`` (YAML flow mapping) are its headers."""
        path = self.work / f"{name}.yaml"
        parts = {"http": HTTP_LEDGER.format(api=self.stack.api_url), "sql": SQL_LEDGER}
        if audit is not None:
            audit = audit.replace("{api}", self.stack.api_url)
        elif ledger:
            audit = "audit:\n  ledger:\n" + "".join(parts[p] for p in ledger)
        else:
            audit = ""
        path.write_text(
            textwrap.dedent(
                f"""\
                version: 1
                kind: attach
                name: shop
                gateway: {{url: "{self.stack.api_url}"}}
                toxiproxy:
                  - url: {self.stack.toxiproxy_url}
                    proxies: {{inventory: {self.stack.inventory_proxy}}}
                allowed_hosts: [127.0.0.1]
                caps: {{max_rate: 100, max_fault_duration: 30s}}
                """
            )
            + JOURNEY
            + QUERIES.format(prometheus=prometheus or self.prometheus.url)
            + (f"    headers: {prometheus_headers}\n" if prometheus_headers else "")
            + audit
        )
        return path

    def run(
        self, experiment: str, target: Path, name: str, *flags: str, **env: str
    ) -> tuple[int, str, Path | None]:
        path = self.work / f"{name}.yaml"
        path.write_text(experiment)
        reports = self.work / f"reports-{name}"
        done = subprocess.run(
            [CHAOSKIT, "run", str(path), "--target", str(target), "--yes", "--no-dashboard"]
            + ["--reports-dir", str(reports), *flags],
            cwd=self.work,
            env={
                **os.environ,
                "CHAOSKIT_HOME": str(self.work / "home"),
                "COLUMNS": "200",
                "SHOP_LEDGER_DSN": self.dsn,
                **env,
            },
            capture_output=True,
            text=True,
            timeout=180,
        )
        runs = sorted(reports.iterdir()) if reports.is_dir() else []
        return done.returncode, done.stdout + done.stderr, runs[-1] if runs else None


@pytest.fixture(scope="module")
def team_shop(tmp_path_factory: pytest.TempPathFactory, postgres: Any) -> Iterator[TeamShop]:
    from tests.conftest import start_prometheus

    work = tmp_path_factory.mktemp("team-shop")
    with running_shop(work / "shop", dsn=postgres.dsn) as stack:
        server = start_prometheus([urlsplit(stack.api_url).netloc])
        try:
            server.wait_for_scrape()
            yield TeamShop(stack, server, postgres.dsn, postgres.password, work)
        finally:
            server.stop()


def orders_created(stack: ShopStack) -> float:
    """How many checkouts reached the shop so far (its own counter)."""
    answer = httpx.get(f"{stack.api_url}/metrics", trust_env=False, timeout=10)
    for line in answer.text.splitlines():
        if line.startswith('shop_orders_total{status="created"}'):
            return float(line.split()[-1])
    return 0.0


def no_toxics(stack: ShopStack) -> bool:
    from chaoskit.faults.toxiproxy import ToxiproxyClient

    with ToxiproxyClient(stack.toxiproxy_url) as client:
        return not client.toxics(stack.inventory_proxy)


def summary_of(run_dir: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((run_dir / "summary.json").read_text())
    return data


def told(run_dir: Path, verdict: str) -> set[str]:
    ids = set()
    for file in (run_dir / "outcomes").glob("*.jsonl"):
        for line in file.read_text().splitlines():
            record = json.loads(line)
            if record["told"] == verdict:
                ids.add(record["order_id"])
    return ids


SURGE = """\
version: 1
name: shop-team
seed: 11
recovery: 3s
load:
  model: open
  behaviour: {reclick: 0, request_timeout: 2s}
  shape: {kind: constant, for: 16s, rate: 15}
faults:
  - {name: slow-inventory, kind: latency, dependency: inventory, latency: 300ms, at: 6s, for: 5s}
hypothesis:
  - {metric: fulfilment_rate, phase: baseline, min: 0.95}
  - {metric: shop_confirmed_per_s, phase: baseline, min: 8}
  - {metric: shop_p95_s, phase: during, min: 0.25}
  - {metric: shop_p95_s, phase: baseline, max: 0.25}
  - {metric: lost_orders, max: 0}
  - {metric: phantom_orders, max: 0}
"""


def test_promql_metrics_per_phase_and_the_audit_through_http_and_sql(team_shop: TeamShop) -> None:
    code, output, run_dir = team_shop.run(SURGE, team_shop.target("both-target"), "surge")
    assert run_dir is not None, output
    data = summary_of(run_dir)
    assert code == 0, output + json.dumps(data["checks"], indent=1)
    assert data["errors"] == [], data["errors"]  # the summary took the PromQL metrics as they are
    phases = data["phases"]
    # The shop's own counters, through its Prometheus, per phase: ~15 confirmed/s at baseline,
    # and its p95 shows the 300 ms the fault adds to its inventory call.
    assert phases["baseline"]["shop_confirmed_per_s"] >= 8, phases["baseline"]
    assert phases["during"]["shop_p95_s"] >= 0.25, phases["during"]
    assert phases["baseline"]["shop_p95_s"] < 0.25, phases["baseline"]
    audit = data["audit"]
    assert audit["status"] == "passed", audit
    for name in ("lost_orders", "phantom_orders"):
        found = audit["invariants"][name]
        assert (found["count"], found["order_ids"], found.get("skipped")) == (0, [], None), found
    ok, ledger = told(run_dir, "ok"), set(team_shop.stack.ledger(data["run_id"]))
    # Told confirmed means recorded; an intent still polling when the load stopped may be
    # recorded without a verdict (never told: neither lost nor phantom).
    assert ok and ok <= ledger and len(ledger - ok) <= 3, (len(ok), len(ledger))
    # The DSN's password is in no file of the run folder.
    for path in run_dir.rglob("*"):
        if path.is_file():
            assert team_shop.password.encode() not in path.read_bytes(), path
    assert team_shop.password not in output


DROPPED = """\
version: 1
name: shop-dropped
seed: 5
recovery: 2s
load:
  model: open
  behaviour: {reclick: 0, request_timeout: 2s}
  shape: {kind: constant, for: 5s, rate: 10}
hypothesis:
  - {metric: lost_orders, max: 0}
  - {metric: phantom_orders, max: 0}
"""


@pytest.mark.parametrize("ledger", ["http", "sql"])
def test_a_dropped_record_is_a_lost_order_named_by_id(team_shop: TeamShop, ledger: str) -> None:
    team_shop.stack.admin(drop_next=2)  # the next two checkouts answer 201, confirm, vanish
    code, output, run_dir = team_shop.run(
        DROPPED, team_shop.target(f"drop-target-{ledger}", ledger=(ledger,)), f"dropped-{ledger}"
    )
    assert run_dir is not None, output
    data = summary_of(run_dir)
    assert code == 1, output
    lost = data["audit"]["invariants"]["lost_orders"]
    missing = told(run_dir, "ok") - set(team_shop.stack.ledger(data["run_id"]))
    assert lost["count"] == 2 and set(lost["order_ids"]) == missing, (lost, missing)
    assert data["audit"]["invariants"]["phantom_orders"]["count"] == 0
    check = next(c for c in data["checks"] if c["metric"] == "lost_orders")
    assert check["ok"] is False and check["value"] == 2


GUARDED = """\
version: 1
name: shop-guarded
seed: 3
load:
  model: open
  behaviour: {reclick: 0, request_timeout: 2s}
  shape: {kind: constant, for: 30s, rate: 10}
faults:
  - {name: inventory-down, kind: down, dependency: inventory, at: 3s, for: 20s}
guardrails:
  - {metric: shop_failed_per_s, max: 2, for: 1s}
"""


def test_a_guardrail_on_the_shops_promql_failures_aborts_and_rolls_back(
    team_shop: TeamShop,
) -> None:
    code, output, run_dir = team_shop.run(
        GUARDED, team_shop.target("guard-target", ledger=()), "guarded"
    )
    assert run_dir is not None, output
    data = summary_of(run_dir)
    assert code == 3, output
    assert data["status"] == "aborted"
    assert data["abort"]["metric"] == "shop_failed_per_s" and data["abort"]["value"] > 2
    assert data["abort"]["t"] < 15  # well before the outage's planned end
    assert data["faults"][0]["status"] == "removed"
    from chaoskit.faults.toxiproxy import ToxiproxyClient

    with ToxiproxyClient(team_shop.stack.toxiproxy_url) as client:
        proxy = client.proxy(team_shop.stack.inventory_proxy)
        assert proxy.enabled and not client.toxics(team_shop.stack.inventory_proxy)


# The whole ledger: orders, credits with their times, the orders owed a credit, the stock.
FULL_HTTP_LEDGER = """\
audit:
  ledger:
    http: {url: "{api}/api/v2/ledger?ref={{run_id}}", order_ids: "$.order_ids[*]"}
    credits:
      http:
        url: "{api}/api/v2/credits?ref={{run_id}}"
        rows: "$.credits[*]"
        fields: {order_id: $.order, credited_at: $.at}
    entitled:
      http: {url: "{api}/api/v2/ledger?ref={{run_id}}", order_ids: "$.entitled[*]"}
    stock:
      http:
        url: "{api}/api/v2/stock"
        rows: "$.items[*]"
        fields: {item: $.sku, stock: $.capacity, reserved: $.sold}
"""
FULL_SQL_LEDGER = """\
audit:
  ledger:
    sql: {dsn: "${SHOP_LEDGER_DSN}", query: "SELECT id FROM shop_orders WHERE ref = %(run_id)s"}
    credits:
      sql:
        dsn: ${SHOP_LEDGER_DSN}
        query: SELECT order_id, credited_at FROM shop_credits WHERE ref = %(run_id)s
    entitled:
      sql:
        dsn: ${SHOP_LEDGER_DSN}
        query: SELECT id FROM shop_orders WHERE ref = %(run_id)s AND entitled
    stock:
      sql: {dsn: "${SHOP_LEDGER_DSN}", query: "SELECT sku AS item, stock, reserved FROM shop_stock"}
"""
FULL_LEDGERS = {"http": FULL_HTTP_LEDGER, "sql": FULL_SQL_LEDGER}
JUDGED = (
    "lost_orders",
    "phantom_orders",
    "double_credits",
    "missing_credits",
    "late_credits",
    "oversold",
)

CREDITS = """\
version: 1
name: shop-credits
seed: 7
recovery: 2s
audit: {credit_slo: 1s}
load:
  model: open
  behaviour: {reclick: 0, request_timeout: 2s}
  shape: {kind: constant, for: 6s, rate: 10}
hypothesis:
""" + "".join(f"  - {{metric: {name}, max: 0}}\n" for name in JUDGED)


def invariants(data: dict[str, Any]) -> dict[str, tuple[int, list[str], str | None]]:
    found = data["audit"]["invariants"]
    return {n: (i["count"], sorted(i["order_ids"]), i.get("skipped")) for n, i in found.items()}


@pytest.mark.parametrize("ledger", ["http", "sql"])
def test_a_clean_run_judges_credits_and_stock_from_the_teams_ledger(
    team_shop: TeamShop, ledger: str
) -> None:
    team_shop.stack.admin(reset=True)
    target = team_shop.target(f"full-{ledger}", audit=FULL_LEDGERS[ledger])
    code, output, run_dir = team_shop.run(CREDITS, target, f"clean-{ledger}")
    assert run_dir is not None, output
    data = summary_of(run_dir)
    found = invariants(data)
    assert code == 0, output + json.dumps(data["audit"], indent=1)
    for name in JUDGED:
        assert found[name] == (0, [], None), (name, found[name])
    assert found["lost_entitlements"][2]  # a team's ledger has no grants: skipped, with why
    # Something was there to judge: owed orders, their credits, stock sold.
    run_id = data["run_id"]
    assert len(team_shop.stack.entitled(run_id)) >= 10
    assert len(team_shop.stack.credits(run_id)) == len(team_shop.stack.entitled(run_id))
    audited = {c["metric"]: c for c in data["checks"] if c["kind"] == "audit"}
    assert set(audited) == set(JUDGED) and all(c["ok"] for c in audited.values())
    for path in run_dir.rglob("*"):
        if path.is_file():
            assert team_shop.password.encode() not in path.read_bytes(), path


@pytest.mark.parametrize("ledger", ["http", "sql"])
def test_each_knob_is_found_by_its_invariant_with_the_order_ids(
    team_shop: TeamShop, ledger: str
) -> None:
    team_shop.stack.admin(reset=True)
    team_shop.stack.admin(
        skip_credit_next=2,
        double_credit_next=2,
        late_credit_next=2,
        late_by_s=2.0,
        stock={"latte-s": 2},
        oversell=True,
    )
    target = team_shop.target(f"full-{ledger}", audit=FULL_LEDGERS[ledger])
    code, output, run_dir = team_shop.run(CREDITS, target, f"knobs-{ledger}")
    assert run_dir is not None, output
    data = summary_of(run_dir)
    found = invariants(data)
    broken = team_shop.stack.broken()
    ok = told(run_dir, "ok")
    assert code == 1, output
    assert len(broken["double"]) == len(broken["late"]) == len(broken["skipped"]) == 2, broken
    assert found["double_credits"] == (2, sorted(broken["double"]), None)
    # Owed, told ok, never credited; credited 2 s after the buyer was told ok (SLO 1 s).
    missing = sorted(set(broken["skipped"]) & ok)
    late = sorted(set(broken["late"]) & ok)
    assert missing and late, (broken, len(ok))
    assert found["missing_credits"] == (len(missing), missing, None)
    assert found["late_credits"] == (len(late), late, None)
    assert team_shop.stack.stock()["latte-s"][1] > 2  # sold past its stock of 2
    assert found["oversold"] == (1, ["latte-s"], None)
    assert found["lost_orders"][:2] == found["phantom_orders"][:2] == (0, [])
    failed = {c["metric"] for c in data["checks"] if c["kind"] == "audit" and c["ok"] is False}
    assert failed == {"double_credits", "missing_credits", "late_credits", "oversold"}
    team_shop.stack.admin(reset=True)


PARTLY_NAMED = """\
audit:
  ledger:
    http: {url: "{api}/api/v2/ledger?ref={{run_id}}", order_ids: "$.order_ids[*]"}
    credits:            # the list form: one order id per credit, no times
      http: {url: "{api}/api/v2/credits?ref={{run_id}}", order_ids: "$.credits[*].order"}
"""


def test_a_piece_the_target_does_not_name_is_skipped_and_never_a_pass(
    team_shop: TeamShop,
) -> None:
    team_shop.stack.admin(reset=True)
    team_shop.stack.admin(stock={"latte-s": 2}, oversell=True)  # oversold, but unseen
    target = team_shop.target("partly-target", audit=PARTLY_NAMED)
    code, output, _ = team_shop.run(CREDITS, target, "partly-dry", "--dry-run")
    assert code == 0, output
    for expected in (
        "journey: shop-checkout (2 steps)",
        "checkout  POST /api/v2/checkout",
        "confirm   GET /api/v2/checkout/{{checkout_id}}",
        "judges lost_orders, phantom_orders, double_credits",
        "skipped: audit of oversold: the target names no stock ledger (audit.ledger.stock)",
        "skipped: audit of late_credits: the credits ledger gives no credit times",
        "skipped: checks on late_credits, missing_credits, oversold: no data from this target",
        "dry run: nothing was touched",
    ):
        assert expected in output, expected
    code, output, run_dir = team_shop.run(CREDITS, target, "partly")
    assert run_dir is not None, output
    data = summary_of(run_dir)
    found = invariants(data)
    # Judged from what the target names ...
    assert found["double_credits"] == (0, [], None) and found["lost_orders"] == (0, [], None)
    # ... and the rest skipped with the key that would give it, never passed.
    assert "audit.ledger.stock" in str(found["oversold"][2])
    assert "audit.ledger.entitled" in str(found["missing_credits"][2])
    assert "credited_at" in str(found["late_credits"][2])
    unjudged = {c["metric"]: c for c in data["checks"] if c["ok"] is None}
    assert set(unjudged) == {"missing_credits", "late_credits", "oversold"}
    assert "audit.ledger.stock" in unjudged["oversold"]["note"]
    assert not any(c["kind"] == "audit" and c["metric"] == "oversold" for c in data["checks"])
    assert (code, data["verdict"]) == (4, "error"), output
    team_shop.stack.admin(reset=True)


SHORT = """\
version: 1
name: shop-short
seed: 13
recovery: 3s
load:
  model: open
  behaviour: {reclick: 0, request_timeout: 2s}
  shape: {kind: constant, for: 12s, rate: 15}
faults:
  - {name: slow-inventory, kind: latency, dependency: inventory, latency: 300ms, at: 6s, for: 3s}
hypothesis:
  - {metric: fulfilment_rate, phase: baseline, min: 0.9}
  - {metric: shop_confirmed_per_s, phase: baseline, min: 5}
"""
PROM_TOKEN = "prom-t0ken-" + "5e1f"
BEARER = '{Authorization: "Bearer ${PROM_TOKEN}"}'


def test_a_prometheus_behind_a_bearer_token(team_shop: TeamShop) -> None:
    from tests.support.auth_proxy import bearer_proxy

    team_shop.stack.admin(reset=True)
    with bearer_proxy(team_shop.prometheus.url, token=PROM_TOKEN) as proxy:
        target = team_shop.target(
            "prom-auth", ledger=("sql",), prometheus=proxy.url, prometheus_headers=BEARER
        )
        # An unset variable: one line, exit 2, before anything starts.
        code, output, run_dir = team_shop.run(SHORT, target, "prom-unset")
        assert (code, run_dir) == (2, None), output
        assert "metrics.prometheus.headers.Authorization needs environment variable PROM_TOKEN" in (
            output
        )
        # A wrong token: exit 4 before any load, naming the URL and never the token.
        before = orders_created(team_shop.stack)
        code, output, run_dir = team_shop.run(
            SHORT, target, "prom-wrong", PROM_TOKEN="wrong-" + PROM_TOKEN
        )
        assert (code, run_dir) == (4, None), output
        assert f"Prometheus at {proxy.url} refused the credentials (HTTP 401" in output
        assert PROM_TOKEN not in output
        assert proxy.refused == ["Bearer wrong-" + PROM_TOKEN]  # sent, so refused by the proxy
        assert orders_created(team_shop.stack) == before and no_toxics(team_shop.stack)
        # The right token: the PromQL metric per phase in summary.json, the token in no file.
        code, output, run_dir = team_shop.run(SHORT, target, "prom-right", PROM_TOKEN=PROM_TOKEN)
        assert run_dir is not None, output
        data = summary_of(run_dir)
        assert code == 0, output + json.dumps(data["checks"], indent=1)
    assert proxy.passed > 10 and len(proxy.refused) == 1  # every sample went through it
    for phase in ("baseline", "during", "recovery"):
        assert data["phases"][phase]["shop_confirmed_per_s"] > 0, (phase, data["phases"][phase])
    for path in run_dir.rglob("*"):
        if path.is_file():
            assert PROM_TOKEN.encode() not in path.read_bytes(), path
    assert PROM_TOKEN not in output


MISSPELT = FULL_SQL_LEDGER.replace("order_id, credited_at FROM", "order_id, credited_att FROM")


def test_the_ledger_is_checked_before_any_load(team_shop: TeamShop) -> None:
    team_shop.stack.admin(reset=True)
    before = orders_created(team_shop.stack)
    # The dry run says what will be checked, and contacts nothing.
    target = team_shop.target("misspelt-target", audit=MISSPELT)
    code, output, run_dir = team_shop.run(SHORT, target, "misspelt-dry", "--dry-run")
    assert (code, run_dir) == (0, None), output
    assert "checked before any load" in output
    assert re.search(
        r"audit\.ledger\.credits\.sql +the query runs read-only on \$\{SHOP_LEDGER_DSN\} and "
        r"returns an order_id column",
        output,
    ), output
    # A misspelt column: exit 2 at the query's line, before any load or fault.
    code, output, run_dir = team_shop.run(SHORT, target, "misspelt")
    line = next(
        i for i, text in enumerate(target.read_text().splitlines(), 1) if "credited_att" in text
    )
    assert (code, run_dir) == (2, None), output
    assert f"{target}:{line}:" in output and "audit.ledger.credits.sql" in output, output
    assert 'column "credited_att" does not exist' in output
    assert team_shop.password not in output
    # A wrong password: exit 4 naming host:port, never the DSN.
    port = urlsplit(team_shop.dsn).port
    wrong = team_shop.dsn.replace(team_shop.password, "not-the-password")
    code, output, run_dir = team_shop.run(
        SHORT,
        team_shop.target("badpw-target", audit=FULL_SQL_LEDGER),
        "badpw",
        SHOP_LEDGER_DSN=wrong,
    )
    assert (code, run_dir) == (4, None), output
    assert f"ledger database postgresql://127.0.0.1:{port} cannot be read" in output
    assert "not-the-password" not in output
    # An export URL that answers 404: exit 4 naming the URL.
    gone = FULL_HTTP_LEDGER.replace("/api/v2/credits?", "/api/v2/credit?")
    code, output, run_dir = team_shop.run(
        SHORT, team_shop.target("gone-target", audit=gone), "gone"
    )
    assert (code, run_dir) == (4, None), output
    assert f"ledger export {team_shop.stack.api_url}/api/v2/credit?ref=" in output
    assert "answered HTTP 404" in output
    # Nothing reached the shop and no fault was left behind by any of them.
    assert orders_created(team_shop.stack) == before
    assert no_toxics(team_shop.stack)
