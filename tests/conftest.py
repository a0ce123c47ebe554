"""Shared fixtures. Real parts only: see tests/integration/conftest.py for the live stack.

Here: a real Prometheus server (Debian's ``prometheus``) and a real PostgreSQL (Debian's
``postgresql``, started by tests/support/postgres.py), each on a free 127.0.0.1 port with
its data in a temp folder, for the team-metrics and team-ledger tests (and later e2e tests).
``make test`` installs both (scripts/setup-tools.sh).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support.ports import free_port
from tests.support.postgres import PostgresServer, start_postgres

# pytester runs the chaoskit pytest plugin in a pytest of its own (tests/e2e/test_pytest_plugin.py).
pytest_plugins = ["pytester"]


# ---------------------------------------------------------------- Prometheus


@dataclass
class PrometheusServer:
    """A running Prometheus scraping ``targets`` (host:port) every ``interval``."""

    url: str
    folder: Path
    process: subprocess.Popen[bytes]
    targets: tuple[str, ...]

    def query(self, promql: str) -> list[dict[str, object]]:
        """The instant-vector result of ``promql`` now."""
        response = httpx.get(
            f"{self.url}/api/v1/query", params={"query": promql}, trust_env=False, timeout=5.0
        )
        response.raise_for_status()
        result: list[dict[str, object]] = response.json()["data"]["result"]
        return result

    def query_range(
        self, promql: str, start: float, end: float, step: float = 1.0
    ) -> list[dict[str, object]]:
        """The range-vector result of ``promql`` over [start, end] (unix seconds)."""
        response = httpx.get(
            f"{self.url}/api/v1/query_range",
            params={"query": promql, "start": start, "end": end, "step": step},
            trust_env=False,
            timeout=10.0,
        )
        response.raise_for_status()
        result: list[dict[str, object]] = response.json()["data"]["result"]
        return result

    def wait_for_scrape(self, job_up: str = "up", timeout: float = 20.0) -> None:
        """Until every target has been scraped up at least once."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ups = self.query(job_up)
            if len(ups) >= len(self.targets) and all(
                str(u["value"][1]) == "1"  # type: ignore[index]
                for u in ups
            ):
                return
            time.sleep(0.3)
        raise AssertionError(f"Prometheus did not scrape {self.targets} within {timeout}s")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        shutil.rmtree(self.folder, ignore_errors=True)


def start_prometheus(targets: Sequence[str], *, interval: str = "1s") -> PrometheusServer:
    """Start ``prometheus`` on a free loopback port scraping ``targets`` (host:port)."""
    binary = shutil.which("prometheus")
    if binary is None:
        raise RuntimeError("prometheus is not installed: run make setup-tools")
    folder = Path(tempfile.mkdtemp(prefix="chaoskit-prom-"))
    port = free_port()
    listed = ", ".join(f"'{t}'" for t in targets)
    (folder / "prometheus.yml").write_text(
        "global:\n"
        f"  scrape_interval: {interval}\n"
        f"  evaluation_interval: {interval}\n"
        "scrape_configs:\n"
        "  - job_name: test\n"
        f"    scrape_interval: {interval}\n"
        f"    scrape_timeout: {interval}\n"
        f"    static_configs:\n      - targets: [{listed}]\n"
    )
    with (folder / "prometheus.log").open("wb") as log:  # the child keeps its own fd
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={folder / 'prometheus.yml'}",
                f"--storage.tsdb.path={folder / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--storage.tsdb.retention.time=1h",
                "--log.level=warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = PrometheusServer(f"http://127.0.0.1:{port}", folder, process, tuple(targets))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            text = (folder / "prometheus.log").read_text(errors="replace")[-2000:]
            server.stop()
            raise RuntimeError(f"prometheus exited: {text}")
        try:
            if httpx.get(f"{server.url}/-/ready", trust_env=False, timeout=1.0).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    server.stop()
    raise RuntimeError("prometheus did not become ready in 30 s")


@pytest.fixture
def prometheus() -> Iterator[Callable[..., PrometheusServer]]:
    """A factory: ``prometheus(["127.0.0.1:PORT"])`` starts a real Prometheus, stopped after."""
    started: list[PrometheusServer] = []

    def start(targets: Sequence[str], *, interval: str = "1s") -> PrometheusServer:
        server = start_prometheus(targets, interval=interval)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


# ---------------------------------------------------------------- PostgreSQL


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A real PostgreSQL for the session (stopped and deleted at the end)."""
    server = start_postgres()
    try:
        yield server
    finally:
        server.stop()
