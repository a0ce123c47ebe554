"""`chaoskit run` with the team's Prometheus, for real: PromQL metrics judged per phase, a
guardrail on one, the run's own metrics scraped from --metrics-port, the team ledger's audit.

A real Prometheus (tests/conftest.py) scrapes a prometheus-client app standing in for the
team's service metrics, and the driver's --metrics-port; the stack is the e2e run stack.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Gauge, start_http_server

from chaoskit.stack.local import LocalStack
from chaoskit.stack.target import load_target, port_layout
from tests.e2e.conftest import RunStack
from tests.e2e.runs import events, only_run_dir, summary

Prometheus = Callable[..., Any]  # the prometheus fixture (tests/conftest.py)

pytestmark = pytest.mark.e2e

# This file's own stack, on a base port picked at run time above the kernel's ephemeral
# range (32768-60999): there, a busy machine's outgoing connections can hold any port (seen:
# a neighbour's Toxiproxy on 37910, hundreds of ports in 44000-44900 at once).
TEAM_PORTS = range(61000, 65400, 100)


def _window_free(base: int) -> bool:
    layout = port_layout(base)
    for port in (*layout.all_ports(), base):
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


@pytest.fixture(scope="module")
def team_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunStack]:
    """A live local stack for these runs, on free ports picked now."""
    base = next((b for b in TEAM_PORTS if _window_free(b)), None)
    if base is None:
        raise RuntimeError("no base port in 61000-65400 whose stack ports are all free")
    folder = tmp_path_factory.mktemp("team-stack")
    home = folder / "home"
    target_file = folder / "team-run.yaml"
    target_file.write_text(f"version: 1\nkind: local\nname: team-run\nbase_port: {base}\n")
    env = dict(os.environ)
    env.update({"CHAOSKIT_HOME": str(home), "NO_COLOR": "1", "COLUMNS": "120"})
    stack = LocalStack(load_target(str(target_file)), state_dir=home / "stacks" / "team-run")
    stack.up()
    try:
        yield RunStack(target_file=target_file, endpoints=stack.endpoints(), env=env, home=home)
    finally:
        stack.down()


@pytest.fixture
def clean_stack(team_stack: RunStack) -> Iterator[RunStack]:
    """The team stack, free of toxics before and after the test."""
    with team_stack.toxiproxy() as client:
        client.reset()
    yield team_stack
    with team_stack.toxiproxy() as client:
        client.reset()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def team_app() -> Iterator[tuple[str, Gauge]]:
    """The team's service metrics: shop_queue_depth = 7, served by prometheus-client."""
    registry = CollectorRegistry()
    gauge = Gauge("shop_queue_depth", "orders waiting in the shop", registry=registry)
    gauge.set(7)
    server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    try:
        yield f"127.0.0.1:{server.server_port}", gauge
    finally:
        server.shutdown()
        server.server_close()
        thread.join(2)


def metrics_block(url: str) -> str:
    return (
        "metrics:\n"
        "  prometheus:\n"
        f"    url: {url}\n"
        "    interval: 1s\n"
        "    queries:\n"
        "      shop_queue: max(shop_queue_depth)\n"
        "      shop_queue_peak: {query: max(shop_queue_depth), agg: max}\n"
        "      shop_nothing: max(shop_metric_nobody_exports)\n"
    )


def scraped(server: Any, timeout: float = 20.0) -> None:
    """Until the team app's gauge is in Prometheus: a run started before its first scrape
    would see "no data" in its baseline (right, but not what these tests are about)."""
    deadline = time.monotonic() + timeout
    while not server.query("max(shop_queue_depth)"):
        assert time.monotonic() < deadline, "Prometheus never scraped the team app"
        time.sleep(0.2)


def test_promql_metrics_per_phase_and_the_fault_window_in_prometheus(
    clean_stack: RunStack,
    prometheus: Prometheus,
    team_app: tuple[str, Gauge],
    tmp_path: Path,
) -> None:
    app, _ = team_app
    port = free_port()
    server = prometheus([app, f"127.0.0.1:{port}"])
    scraped(server)
    body = (
        "load:\n  model: open\n  shape: {kind: constant, for: 12s, rate: 10}\n"
        "faults:\n"
        "  - {name: slow-inventory, kind: latency, dependency: inventory, latency: 30ms,"
        " at: 4s, for: 4s}\n"
        "hypothesis:\n"
        "  - {metric: shop_queue, max: 10}\n"
        "  - {metric: shop_queue_peak, max: 10, phase: overall}\n"
        "  - {metric: fulfilment_rate, min: 0.8}\n"
        "report: {formats: [json, md, html, csv]}\n" + metrics_block(server.url)
    )
    experiment = clean_stack.experiment(tmp_path, "team-held", body)
    reports = tmp_path / "reports"
    result = clean_stack.play(experiment, reports, "--metrics-port", str(port))
    assert result.returncode == 0, result.stdout + result.stderr
    run_dir = only_run_dir(reports)
    data = summary(run_dir)
    assert data["verdict"] == "held"
    assert data["errors"] == [], data["errors"]
    for phase in ("baseline", "during", "recovery"):
        assert data["phases"][phase]["shop_queue"] == pytest.approx(7.0), phase
        assert data["phases"][phase]["shop_nothing"] is None  # no data is not 0
    assert data["metrics"]["shop_queue_peak"] == pytest.approx(7.0)
    queue_checks = [c for c in data["checks"] if c["metric"] == "shop_queue"]
    assert {c["phase"] for c in queue_checks} >= {"baseline", "during", "recovery", "overall"}
    assert all(c["ok"] is True and c["value"] == pytest.approx(7.0) for c in queue_checks)
    assert "shop_queue" in (run_dir / "timeseries.csv").read_text().splitlines()[0]
    assert "shop_queue" in (run_dir / "report.html").read_text()

    # The fault window as the team's Prometheus saw it, scrape by scrape.
    marks = {e["type"]: e["wall"] for e in events(run_dir) if e["type"].startswith("fault_")}
    applied, removed = marks["fault_applied"], marks["fault_removed"]
    raw = server.query('chaoskit_fault_active{fault="slow-inventory"}[10m]')
    assert len(raw) == 1, raw
    assert raw[0]["metric"]["kind"] == "latency"
    assert raw[0]["metric"]["dependency"] == "inventory"
    samples = [(float(ts), float(value)) for ts, value in raw[0]["values"]]
    on = [ts for ts, value in samples if value == 1.0]
    off = [ts for ts, value in samples if value == 0.0]
    assert len(on) >= 3, samples
    # 1 only while the fault was on (a scrape reads the state a few ms after its timestamp)
    assert all(applied - 0.1 <= ts <= removed + 0.1 for ts in on), (applied, removed, samples)
    assert any(ts < applied for ts in off) and any(ts > removed for ts in off), samples
    assert all(not applied + 0.1 < ts < removed - 0.1 for ts in off), samples
    orders = server.query("max(max_over_time(chaoskit_orders_total[10m]))")
    assert float(orders[0]["value"][1]) > 0
    phase = server.query('max_over_time(chaoskit_phase{phase="during"}[10m])')
    assert float(phase[0]["value"][1]) == 1.0


def test_a_promql_hypothesis_that_does_not_hold_is_violated(
    clean_stack: RunStack,
    prometheus: Prometheus,
    team_app: tuple[str, Gauge],
    tmp_path: Path,
) -> None:
    app, _ = team_app
    server = prometheus([app])
    scraped(server)
    body = (
        "load:\n  model: open\n  shape: {kind: constant, for: 6s, rate: 8}\n"
        "hypothesis:\n"
        "  - {metric: shop_queue, max: 5, phase: overall}\n"
        "  - {metric: shop_nothing, max: 5, phase: overall}\n"
        "report: {formats: [json]}\n" + metrics_block(server.url)
    )
    experiment = clean_stack.experiment(tmp_path, "team-violated", body)
    reports = tmp_path / "reports"
    result = clean_stack.play(experiment, reports)
    assert result.returncode == 1, result.stdout + result.stderr
    data = summary(only_run_dir(reports))
    checks = {c["metric"]: c for c in data["checks"] if c["kind"] == "hypothesis"}
    assert checks["shop_queue"]["ok"] is False
    assert checks["shop_queue"]["value"] == pytest.approx(7.0)
    assert checks["shop_nothing"]["ok"] is None and checks["shop_nothing"]["value"] is None


def test_a_guardrail_on_a_promql_metric_aborts_and_rolls_back(
    clean_stack: RunStack,
    prometheus: Prometheus,
    team_app: tuple[str, Gauge],
    tmp_path: Path,
) -> None:
    app, gauge = team_app
    server = prometheus([app])
    scraped(server)
    body = (
        "load:\n  model: open\n  shape: {kind: constant, for: 40s, rate: 8}\n"
        "faults:\n"
        "  - {name: slow-inventory, kind: latency, dependency: inventory, latency: 20ms, at: 1s}\n"
        "guardrails:\n  - {metric: shop_queue, max: 20, for: 1s}\n"
        "report: {formats: [json]}\n" + metrics_block(server.url)
    )
    experiment = clean_stack.experiment(tmp_path, "team-guardrail", body)
    reports = tmp_path / "reports"
    process = clean_stack.start(experiment, reports)
    try:
        # Let the fault be on, then the team's queue blows up.
        start = time.monotonic()
        with clean_stack.toxiproxy() as client:
            while time.monotonic() - start < 20 and not client.toxics("inventory"):
                time.sleep(0.2)
        gauge.set(99)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 3, out + err
    data = summary(only_run_dir(reports))
    assert data["status"] == "aborted"
    assert data["abort"]["metric"] == "shop_queue"
    assert data["abort"]["value"] == pytest.approx(99.0)
    assert data["faults"][0]["status"] == "removed"
    with clean_stack.toxiproxy() as client:
        assert all(not client.toxics(name) for name in client.proxies())


def test_an_unreachable_prometheus_stops_the_run_before_any_load(
    clean_stack: RunStack, tmp_path: Path
) -> None:
    body = "load:\n  model: open\n  shape: {kind: constant, for: 5s, rate: 5}\n" + metrics_block(
        f"http://127.0.0.1:{free_port()}"
    )
    experiment = clean_stack.experiment(tmp_path, "team-down", body)
    reports = tmp_path / "reports"
    result = clean_stack.play(experiment, reports)
    assert result.returncode == 4, result.stdout + result.stderr
    assert "Prometheus" in result.stderr and "cannot be reached" in result.stderr
    assert not reports.exists() or not list(reports.iterdir())


def test_a_query_prometheus_refuses_is_bad_input(
    clean_stack: RunStack, prometheus: Prometheus, team_app: tuple[str, Gauge], tmp_path: Path
) -> None:
    app, _ = team_app
    server = prometheus([app])
    scraped(server)
    body = (
        "load:\n  model: open\n  shape: {kind: constant, for: 5s, rate: 5}\n"
        f"metrics:\n  prometheus:\n    url: {server.url}\n"
        "    queries: {broken: 'sum(rate(shop_queue_depth[1m]'}\n"
    )
    experiment = clean_stack.experiment(tmp_path, "team-badq", body)
    result = clean_stack.play(experiment, tmp_path / "reports")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "metrics.prometheus.queries.broken" in result.stderr
    assert "parse error" in result.stderr


def attach_target(stack: RunStack, folder: Path, extra: str) -> Path:
    """An attach target on the team stack (no services: no /stats, /admin or /ledger)."""
    endpoints = stack.endpoints
    proxies = ", ".join(f"{dep}: {ref.name}" for dep, ref in endpoints.proxies.items())
    path = folder / "team-attach.yaml"
    path.write_text(
        "version: 1\nkind: attach\nname: team-attach\n"
        f'gateway: {{url: "{endpoints.gateway_url}"}}\n'
        f"toxiproxy:\n  - url: {endpoints.toxiproxy_urls[0]}\n    proxies: {{{proxies}}}\n"
        "allowed_hosts: [127.0.0.1]\n"
        "caps: {max_rate: 20, max_fault_duration: 20s}\n"
        'headers: {Authorization: "Bearer ${TEAM_TOKEN}"}\n'
        "watchdog: {ttl: 5s}\n" + extra
    )
    return path


def test_the_audit_through_the_teams_http_export_and_sql_keeps_secrets_out(
    clean_stack: RunStack, postgres: Any, tmp_path: Path
) -> None:
    import psycopg

    with psycopg.connect(postgres.dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS credits (order_id text, ref text)")
        conn.execute("CREATE TABLE IF NOT EXISTS extra_orders (id text, ref text)")
    orders_url = clean_stack.endpoints.services["orders"]
    target = attach_target(
        clean_stack,
        tmp_path,
        "audit:\n"
        "  ledger:\n"
        "    http:\n"
        f'      url: "{orders_url}/ledger?ref={{{{run_id}}}}"\n'
        '      order_ids: "$.orders[*].order_id"\n'
        '      headers: {X-Ledger-Key: "${TEAM_LEDGER_KEY}"}\n'
        "    sql:\n"
        '      dsn: "${TEAM_LEDGER_DSN}"\n'
        "      query: SELECT id FROM extra_orders WHERE ref = %(run_id)s\n"
        "    credits:\n"
        "      sql:\n"
        '        dsn: "${TEAM_LEDGER_DSN}"\n'
        "        query: SELECT order_id FROM credits WHERE ref = %(run_id)s\n",
    )
    body = (
        "load:\n  model: open\n  shape: {kind: constant, for: 6s, rate: 10}\n"
        "hypothesis:\n"
        "  - {metric: lost_orders, max: 0}\n"
        "  - {metric: phantom_orders, max: 0}\n"
        "  - {metric: double_credits, max: 0}\n"
        "report: {formats: [json, md, html, junit, csv]}\n"
    )
    experiment = clean_stack.experiment(tmp_path, "team-ledger", body)
    token, key = "tok-" + os.urandom(6).hex(), "key-" + os.urandom(6).hex()
    env = {
        **clean_stack.env,
        "TEAM_TOKEN": token,
        "TEAM_LEDGER_KEY": key,
        "TEAM_LEDGER_DSN": postgres.dsn,
    }
    reports = tmp_path / "reports"
    result = subprocess_run(
        env,
        "run",
        str(experiment),
        "--target",
        str(target),
        "--yes",
        "--no-dashboard",
        "--reports-dir",
        str(reports),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    run_dir = only_run_dir(reports)
    data = summary(run_dir)
    audit = data["audit"]
    assert audit["status"] == "passed", audit
    assert audit["invariants"]["lost_orders"]["count"] == 0
    assert audit["invariants"]["phantom_orders"]["count"] == 0
    assert audit["invariants"]["double_credits"]["count"] == 0
    assert "stock" in audit["invariants"]["oversold"]["skipped"]  # not told: never passed
    checks = {c["metric"]: c for c in data["checks"] if c["kind"] == "hypothesis"}
    assert checks["lost_orders"]["ok"] is True and checks["phantom_orders"]["ok"] is True
    assert data["metrics"]["orders"] > 0
    # No secret in any file the run wrote, nor in what it printed.
    secrets_ = (token, key, postgres.password)
    for path in run_dir.rglob("*"):
        if path.is_file():
            text = path.read_bytes()
            for secret in secrets_:
                assert secret.encode() not in text, (path, secret[:4])
    for secret in secrets_:
        assert secret not in result.stdout + result.stderr


def test_a_ledger_host_off_the_allow_list_is_refused_before_load(
    clean_stack: RunStack, tmp_path: Path
) -> None:
    target = attach_target(
        clean_stack,
        tmp_path,
        "audit:\n  ledger:\n"
        "    http: {url: 'http://ledger.example.invalid/x', order_ids: '$[*]'}\n",
    )
    experiment = clean_stack.experiment(
        tmp_path,
        "team-refused",
        "load:\n  model: open\n  shape: {kind: constant, for: 5s, rate: 5}\n",
    )
    result = subprocess_run(
        {**clean_stack.env, "TEAM_TOKEN": "x"},
        "run",
        str(experiment),
        "--target",
        str(target),
        "--yes",
        "--no-dashboard",
        "--reports-dir",
        str(tmp_path / "reports"),
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "audit.ledger.http host 'ledger.example.invalid' is not in" in result.stderr
    assert not (tmp_path / "reports").exists()


def subprocess_run(env: dict[str, str], *args: str) -> Any:
    import subprocess

    from tests.e2e.conftest import REPO, chaoskit_command

    return subprocess.run(
        [*chaoskit_command(), *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_fault_triggered_by_a_promql_metric(
    clean_stack: RunStack,
    prometheus: Prometheus,
    team_app: tuple[str, Gauge],
    tmp_path: Path,
) -> None:
    app, gauge = team_app
    gauge.set(1)
    server = prometheus([app])
    scraped(server)
    server.wait_for_scrape()
    body = (
        "load:\n  model: open\n  shape: {kind: constant, for: 12s, rate: 8}\n"
        "faults:\n"
        "  - {name: slow-inventory, kind: latency, dependency: inventory, latency: 20ms,"
        " for: 2s, when: {metric: shop_queue, above: 5, for: 1s}}\n"
        "report: {formats: [json]}\n" + metrics_block(server.url)
    )
    experiment = clean_stack.experiment(tmp_path, "team-when", body)
    reports = tmp_path / "reports"
    process = clean_stack.start(experiment, reports)
    try:
        time.sleep(6.0)  # the queue is calm for the first seconds of the run
        gauge.set(9)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, out + err
    run_dir = only_run_dir(reports)
    applied = [e for e in events(run_dir) if e["type"] == "fault_applied"]
    assert len(applied) == 1, applied
    samples = [e for e in events(run_dir) if e["type"] == "sample"]
    first_high = min(s["t"] for s in samples if (s["metrics"].get("shop_queue") or 0) > 5)
    assert applied[0]["t"] >= first_high + 0.9  # held above 5 for its 1 s first
    assert summary(run_dir)["faults"][0]["status"] == "removed"
