"""The team's Prometheus and ledger, for real: Debian's prometheus scraping a prometheus-client
app, and Debian's PostgreSQL holding a ledger, both started by the fixtures in tests/conftest.py.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psycopg
import pytest
from prometheus_client import CollectorRegistry, Gauge, start_http_server

from chaoskit.errors import InputError, TargetUnreachable
from chaoskit.exit_codes import exit_code_for_error
from chaoskit.observe.aggregate import MetricsAggregator
from chaoskit.observe.ledger_sources import query_rows
from chaoskit.observe.prometheus import (
    PrometheusSampler,
    PrometheusSource,
    PromQuery,
    check_queries,
)
from chaoskit.observe.team_ledger import TeamLedgerReader, read_credits, read_stock
from chaoskit.stack.target import (
    CreditsLedger,
    HttpLedger,
    HttpStock,
    SqlLedger,
    StockFields,
    StockLedger,
    TeamLedger,
)

pytestmark = pytest.mark.integration

Prometheus = Callable[..., Any]  # the prometheus fixture's factory (tests/conftest.py)


@pytest.fixture
def team_app() -> Iterator[tuple[str, Gauge]]:
    """A prometheus-client app exposing shop_queue_depth{store=...} on a free port."""
    registry = CollectorRegistry()
    gauge = Gauge("shop_queue_depth", "orders waiting", ["store"], registry=registry)
    gauge.labels("a").set(3)
    gauge.labels("b").set(5)
    server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    try:
        yield f"127.0.0.1:{server.server_port}", gauge
    finally:
        server.shutdown()
        server.server_close()
        thread.join(2)


def source(url: str, **queries: str) -> PrometheusSource:
    return PrometheusSource(
        url=url,
        interval_s=0.5,
        queries=tuple(PromQuery(name=n, query=q) for n, q in queries.items()),
    )


def test_queries_are_checked_once_against_a_real_prometheus(
    prometheus: Prometheus, team_app: tuple[str, Gauge]
) -> None:
    address, _ = team_app
    server = prometheus([address])
    server.wait_for_scrape()
    values = check_queries(
        source(server.url, queue="sum(shop_queue_depth)", none="shop_queue_depth{store='zz'}")
    )
    assert values == {"queue": 8.0, "none": None}  # no data is None, not 0
    with pytest.raises(InputError, match="parse error") as refused:
        check_queries(source(server.url, bad="sum(shop_queue_depth"))
    assert exit_code_for_error(refused.value) == 2
    with pytest.raises(InputError, match="2 series"):
        check_queries(source(server.url, many="shop_queue_depth"))


def test_an_unreachable_prometheus_is_an_environment_problem() -> None:
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}"
    with pytest.raises(TargetUnreachable, match="cannot be reached") as caught:
        check_queries(source(url, queue="up"))
    assert exit_code_for_error(caught.value) == 4


def test_the_sampler_feeds_the_time_series(
    prometheus: Prometheus, team_app: tuple[str, Gauge]
) -> None:
    address, gauge = team_app
    server = prometheus([address])
    server.wait_for_scrape()
    aggregator = MetricsAggregator()
    src = source(server.url, queue="max(shop_queue_depth)")
    aggregator.declare_external(src.aggregations(), interval_s=src.interval_s)
    clock = iter(float(i) for i in range(1, 1000))
    sampler = PrometheusSampler(src, on_values=aggregator.add_external, clock=lambda: next(clock))
    import httpx

    with httpx.Client(trust_env=False, timeout=2.0) as client:
        for _ in range(3):
            sampler.sample_once(client)
        gauge.labels("b").set(40)
        deadline = 30
        while deadline and sampler.sample_once(client)["queue"] != 40.0:
            deadline -= 1
            threading.Event().wait(0.3)
    assert aggregator.window("queue", 0.0, 3.0) == 5.0
    assert aggregator.overall()["queue"] is not None
    assert aggregator.window("queue", 0.0, 1000.0) > 5.0  # mean with the 40s in it


class _Export(BaseHTTPRequestHandler):
    document: Any = None
    seen: list[str] = []
    status = 200
    raw: bytes | None = None  # sent as is instead of the document

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        type(self).seen.append(self.path + " " + str(self.headers.get("Authorization")))
        body = type(self).raw or json.dumps(type(self).document).encode()
        self.send_response(type(self).status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def http_export() -> Iterator[tuple[str, type[_Export]]]:
    handler = type("Export", (_Export,), {"document": None, "seen": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", handler
    finally:
        server.shutdown()
        server.server_close()


def write_outcomes(folder: Path, told: dict[str, str]) -> Path:
    folder.mkdir(parents=True)
    lines = [json.dumps({"intent": k, "order_id": k, "told": v}) for k, v in told.items()]
    (folder / "w0.jsonl").write_text("\n".join(lines) + "\n")
    return folder


def test_the_audit_through_an_http_export(
    http_export: tuple[str, type[_Export]], tmp_path: Path
) -> None:
    url, handler = http_export
    handler.document = {"data": {"orders": [{"id": "o1"}, {"id": "o2"}, {"id": "o4"}]}}
    outcomes = write_outcomes(tmp_path / "out", {"o1": "ok", "o2": "ok", "o3": "failed"})
    ledger = TeamLedger(
        http=HttpLedger(
            url=url + "/export?ref={{run_id}}",
            order_ids="$.data.orders[*].id",
            headers={"Authorization": "Bearer ${LEDGER_TOKEN}"},
        )
    )
    reader = TeamLedgerReader(ledger=ledger, environ={"LEDGER_TOKEN": "s3cret"})
    result = reader.audit("run-42", outcomes)
    assert handler.seen == ["/export?ref=run-42 Bearer s3cret"]
    assert result.status == "passed", result
    assert result.invariants["lost_orders"].count == 0
    assert result.invariants["phantom_orders"].count == 0
    handler.document = {"data": {"orders": [{"id": "o1"}, {"id": "o3"}]}}
    result = reader.audit("run-42", outcomes)
    assert result.invariants["lost_orders"].order_ids == ("o2",)
    assert result.invariants["phantom_orders"].order_ids == ("o3",)


@pytest.fixture
def ledger_db(postgres: Any) -> Iterator[str]:
    """A fresh team_orders table in the real PostgreSQL; yields its DSN (with its password)."""
    with psycopg.connect(postgres.dsn, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS team_orders")
        conn.execute("CREATE TABLE team_orders (id text PRIMARY KEY, run_ref text NOT NULL)")
    yield postgres.dsn


def test_the_audit_through_sql_in_a_read_only_transaction(ledger_db: str, tmp_path: Path) -> None:
    with psycopg.connect(ledger_db, autocommit=True) as conn:
        for order_id, ref in (("o1", "r1"), ("o2", "r1"), ("x9", "other-run")):
            conn.execute("INSERT INTO team_orders VALUES (%s, %s)", (order_id, ref))
    outcomes = write_outcomes(tmp_path / "out", {"o1": "ok", "o2": "ok", "o3": "failed"})
    ledger = TeamLedger(
        sql=SqlLedger(
            dsn="${LEDGER_DSN}", query="SELECT id FROM team_orders WHERE run_ref = %(run_id)s"
        )
    )
    reader = TeamLedgerReader(ledger=ledger, environ={"LEDGER_DSN": ledger_db})
    result = reader.audit("r1", outcomes)
    assert result.status == "passed", result
    assert (result.invariants["lost_orders"].count, result.invariants["phantom_orders"].count) == (
        0,
        0,
    )
    with psycopg.connect(ledger_db, autocommit=True) as conn:
        conn.execute("DELETE FROM team_orders WHERE id = 'o2'")  # the record is lost
    result = reader.audit("r1", outcomes)
    assert result.status == "failed"
    assert result.invariants["lost_orders"].order_ids == ("o2",)


def test_a_query_that_writes_is_refused_and_writes_nothing(ledger_db: str) -> None:
    writer = SqlLedger(
        dsn="${LEDGER_DSN}", query="INSERT INTO team_orders VALUES ('evil', 'r') RETURNING id"
    )
    with pytest.raises(InputError, match="tried to write"):
        query_rows(writer, role="audit.ledger.sql", run_id="r", environ={"LEDGER_DSN": ledger_db})
    with psycopg.connect(ledger_db) as conn:
        assert conn.execute("SELECT count(*) FROM team_orders").fetchone() == (0,)


def test_ledger_errors_never_show_the_dsn(postgres: Any) -> None:
    wrong = postgres.dsn.replace(postgres.password, "not-the-password-" + postgres.password)
    with pytest.raises(TargetUnreachable) as caught:
        query_rows(
            SqlLedger(dsn="${LEDGER_DSN}", query="SELECT 1"),
            role="audit.ledger.sql",
            run_id="r",
            environ={"LEDGER_DSN": wrong},
        )
    assert postgres.password not in str(caught.value)
    assert "127.0.0.1" in str(caught.value)
    with pytest.raises(InputError, match="query failed") as bad:
        query_rows(
            SqlLedger(dsn="${LEDGER_DSN}", query="SELEC id"),
            role="audit.ledger.sql",
            run_id="r",
            environ={"LEDGER_DSN": postgres.dsn},
        )
    assert postgres.password not in str(bad.value)


def test_a_field_or_column_the_ledger_lacks_is_one_line_naming_the_key(
    http_export: tuple[str, type[_Export]], ledger_db: str
) -> None:
    url, handler = http_export
    handler.document = {"items": [{"sku": "a", "capacity": 3, "sold": 1}, {"sku": "b"}]}
    stock = StockLedger(http=HttpStock(url=url + "/stock", rows="$.items[*]", fields=FIELDS))
    with pytest.raises(InputError) as caught:
        read_stock(stock, run_id="r", environ={})
    assert str(caught.value) == (
        f"audit.ledger.stock.http.fields.stock: $.capacity in row 2 of {url}/stock: expected "
        "one value, found none"
    )
    with psycopg.connect(ledger_db, autocommit=True) as conn:
        conn.execute("INSERT INTO team_orders VALUES ('o1', 'r')")
    env = {"LEDGER_DSN": ledger_db}
    two_columns = SqlLedger(dsn="${LEDGER_DSN}", query="SELECT id, run_ref FROM team_orders")
    with pytest.raises(InputError, match="expected an order_id column") as no_id:
        read_credits(CreditsLedger(sql=two_columns), run_id="r", environ=env)
    assert "audit.ledger.credits.sql: the query returns columns id, run_ref" in str(no_id.value)
    naive = SqlLedger(
        dsn="${LEDGER_DSN}",
        query="SELECT id AS order_id, now()::timestamp AS credited_at FROM team_orders",
    )
    with pytest.raises(InputError, match="row 1 .*, credited_at: a time without a time zone"):
        read_credits(CreditsLedger(sql=naive), run_id="r", environ=env)
    sold = SqlLedger(dsn="${LEDGER_DSN}", query="SELECT 'a' AS item, 3 AS stock")
    with pytest.raises(InputError, match=r"expected item, stock and reserved \(no reserved"):
        read_stock(StockLedger(sql=sold), run_id="r", environ=env)
    for error in (caught.value, no_id.value):
        assert ledger_db not in str(error) and "\n" not in str(error)


FIELDS = StockFields(item="$.sku", stock="$.capacity", reserved="$.sold")


def test_prometheus_behind_a_bearer_token_and_refused_credentials_are_exit_4(
    prometheus: Prometheus, team_app: tuple[str, Gauge]
) -> None:
    from chaoskit.errors import CredentialsRefused
    from tests.support.auth_proxy import bearer_proxy

    address, _ = team_app
    server = prometheus([address])
    server.wait_for_scrape()
    guarded = PrometheusSource(
        url="",
        interval_s=0.5,
        queries=(PromQuery(name="queue", query="sum(shop_queue_depth)"),),
        headers={"Authorization": "Bearer ${PROM_TOKEN}"},
    )
    with bearer_proxy(server.url, token="right-t0ken") as proxy:
        source = replace(guarded, url=proxy.url)
        assert check_queries(source, environ={"PROM_TOKEN": "right-t0ken"}) == {"queue": 8.0}
        assert proxy.passed == 1
        # The proxy's 401 has a JSON body: still the credentials (exit 4), not the query (2).
        with pytest.raises(CredentialsRefused) as refused:
            check_queries(source, environ={"PROM_TOKEN": "wrong-t0ken"})
        assert proxy.refused == ["Bearer wrong-t0ken"]  # it was sent ...
        message = str(refused.value)
        assert "wrong-t0ken" not in message and "Bearer" not in message  # ... never shown
        assert message.startswith(f"Prometheus at {proxy.url} refused the credentials (HTTP 401")
        assert exit_code_for_error(refused.value) == 4
        with pytest.raises(InputError, match="environment variable PROM_TOKEN is not set"):
            check_queries(source, environ={})
        # The sampler sends the same headers: a refused round is no data, never a crash.
        sampler = PrometheusSampler(
            source, on_values=lambda t, v: None, environ={"PROM_TOKEN": "wrong-t0ken"}
        )
        sampler.start()
        deadline = 50
        while not sampler.rounds and deadline:
            deadline -= 1
            threading.Event().wait(0.1)
        sampler.stop()
        assert sampler.rounds and sampler.failures == {"queue": sampler.rounds}


def ledger_target(tmp_path: Path, export: str, *, orders: str, stock: str) -> tuple[Any, Path]:
    """An attach target naming an HTTP export and SQL queries on team_orders; and its file."""
    from chaoskit.stack.target import AttachTarget, parse_target

    path = tmp_path / "t.yaml"
    path.write_text(
        "version: 1\nkind: attach\nname: t\ngateway: {url: 'http://127.0.0.1:1'}\n"
        "toxiproxy: [{url: 'http://127.0.0.1:2', proxies: {store: store}}]\n"
        "allowed_hosts: [127.0.0.1]\n"
        "audit:\n"
        "  ledger:\n"
        f"    http: {{url: '{export}/export?ref={{{{run_id}}}}', order_ids: '$.ids[*]'}}\n"
        "    sql:\n"
        "      dsn: ${LEDGER_DSN}\n"
        f"      query: {orders}\n"
        "    credits:\n"
        "      sql: {dsn: '${LEDGER_DSN}', query: 'SELECT id AS order_id FROM team_orders'}\n"
        "    stock:\n"
        "      sql:\n"
        "        dsn: ${LEDGER_DSN}\n"
        f"        query: {stock}\n"
    )
    target = parse_target(path.read_text(), path=path)
    assert isinstance(target, AttachTarget) and target.audit is not None
    return target, path


GOOD_ORDERS = "SELECT id FROM team_orders WHERE run_ref = %(run_id)s"
GOOD_STOCK = "SELECT id AS item, 3 AS stock, 1 AS reserved FROM team_orders"


def line_of(path: Path, text: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if text in line)


def test_the_ledger_preflight_reads_each_source_once_and_puts_a_wrong_column_at_its_line(
    http_export: tuple[str, type[_Export]], ledger_db: str, tmp_path: Path
) -> None:
    from chaoskit.errors import TargetFileError

    url, handler = http_export
    handler.document = {"ids": []}
    env = {"LEDGER_DSN": ledger_db}

    def check(orders: str = GOOD_ORDERS, stock: str = GOOD_STOCK) -> Path:
        target, path = ledger_target(tmp_path, url, orders=orders, stock=stock)
        reader = TeamLedgerReader(ledger=target.audit.ledger, environ=env, error_at=target.error_at)
        reader.check("run-7")
        return path

    check()  # the good target passes: nothing has rows yet, every source answered
    assert handler.seen == ["/export?ref=run-7 None"]
    misspelt = "SELECT idd FROM team_orders WHERE run_ref = %(run_id)s"
    with pytest.raises(TargetFileError) as caught:
        check(orders=misspelt)
    path = tmp_path / "t.yaml"
    message = str(caught.value)
    assert message.startswith(f"{path}:{line_of(path, 'SELECT idd')}:14: audit.ledger.sql: "), (
        message
    )
    assert 'column "idd" does not exist' in message
    assert exit_code_for_error(caught.value) == 2
    # A column the audit needs that the query does not return: named, at that query's line.
    with pytest.raises(TargetFileError) as caught:
        check(stock="SELECT id AS item, 3 AS stock, 1 AS reservd FROM team_orders")
    message = str(caught.value)
    assert message.startswith(f"{path}:{line_of(path, 'AS reservd')}:16: audit.ledger.stock.sql")
    assert "(no reserved: name them with AS)" in message and ledger_db not in message


def test_the_ledger_preflight_names_the_database_or_the_url_it_cannot_read(
    http_export: tuple[str, type[_Export]], postgres: Any, ledger_db: str, tmp_path: Path
) -> None:
    url, handler = http_export
    handler.document = {"ids": []}
    target, _ = ledger_target(tmp_path, url, orders=GOOD_ORDERS, stock=GOOD_STOCK)
    wrong = postgres.dsn.replace(postgres.password, "not-" + postgres.password)
    reader = TeamLedgerReader(
        ledger=target.audit.ledger, environ={"LEDGER_DSN": wrong}, error_at=target.error_at
    )
    with pytest.raises(TargetUnreachable) as caught:
        reader.check("run-7")
    message = str(caught.value)
    assert f"ledger database postgresql://127.0.0.1:{postgres.port} cannot be read" in message
    assert "password authentication failed" in message
    assert postgres.password not in message and wrong not in message
    assert exit_code_for_error(caught.value) == 4
    handler.status = 404
    reader = replace(reader, environ={"LEDGER_DSN": ledger_db})
    with pytest.raises(TargetUnreachable) as caught:
        reader.check("run-7")
    assert str(caught.value) == f"ledger export {url}/export?ref=run-7 answered HTTP 404"
    handler.status, handler.raw = 200, b"<html>a login page</html>"
    with pytest.raises(
        TargetUnreachable, match=f"ledger export {url}/export.* did not answer JSON"
    ):
        reader.check("run-7")
