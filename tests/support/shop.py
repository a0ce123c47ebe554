"""Start the tests' second order API (``shop_api.py``) behind a real toxiproxy-server.

    with running_shop(tmp_path) as shop:          # memory ledger
        httpx.post(f"{shop.api_url}/api/v2/checkout", ...)
    with running_shop(tmp_path, dsn=dsn) as shop:  # PostgreSQL ledger

Every port is a free 127.0.0.1 port picked at start. The shop reaches its inventory service
only through the Toxiproxy proxy named ``inventory`` (``shop.toxiproxy_url``), so a fault on
it is a fault on the shop's dependency. Both processes are stopped on exit.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from chaoskit.faults.toxiproxy import ProxySpec, ToxiproxyClient
from chaoskit.stack.local import find_toxiproxy
from tests.support.ports import free_port

SHOP_API = Path(__file__).resolve().with_name("shop_api.py")
INVENTORY_PROXY = "inventory"


@dataclass(frozen=True)
class ShopStack:
    """Where the running shop and its Toxiproxy are."""

    api_url: str  # the shop API's base URL
    toxiproxy_url: str  # the Toxiproxy API in front of the shop's inventory
    inventory_proxy: str  # the proxy's name on that Toxiproxy
    inventory_url: str  # the inventory service itself (not through the proxy)
    logs: Path

    def admin(self, **settings: object) -> dict[str, object]:
        """POST /api/v2/admin (e.g. ``drop_next=1``)."""
        answer = httpx.post(f"{self.api_url}/api/v2/admin", json=settings, trust_env=False)
        answer.raise_for_status()
        result: dict[str, object] = answer.json()
        return result

    def broken(self) -> dict[str, list[str]]:
        """What the knobs broke so far: kind (dropped, double, late, skipped) -> order ids."""
        found: dict[str, list[str]] = self._get("/api/v2/admin")["broken"]
        return found

    def ledger(self, ref: str) -> list[str]:
        """The order ids the shop recorded for ``ref`` (its HTTP ledger export)."""
        return list(self._get("/api/v2/ledger", ref=ref)["order_ids"])

    def entitled(self, ref: str) -> list[str]:
        """The recorded orders of ``ref`` owed a coupon credit."""
        return list(self._get("/api/v2/ledger", ref=ref)["entitled"])

    def credits(self, ref: str) -> list[dict[str, str]]:
        """The coupon credits written for ``ref``: ``{"order", "at"}``, one per credit."""
        return list(self._get("/api/v2/credits", ref=ref)["credits"])

    def stock(self) -> dict[str, tuple[int, int]]:
        """Sku -> (stock, sold)."""
        items = self._get("/api/v2/stock")["items"]
        return {item["sku"]: (item["capacity"], item["sold"]) for item in items}

    def _get(self, path: str, **params: str) -> Any:
        answer = httpx.get(f"{self.api_url}{path}", params=params, trust_env=False, timeout=10)
        answer.raise_for_status()
        return answer.json()


def _wait_http(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: process exited: {log.read_text()[-2000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1.0, trust_env=False).status_code < 500:
                return
        time.sleep(0.05)
    raise RuntimeError(f"{url}: not ready after {timeout} s: {log.read_text()[-2000:]}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@contextlib.contextmanager
def running_shop(work: Path, *, dsn: str | None = None) -> Iterator[ShopStack]:
    """Toxiproxy + the shop API (+ its inventory) on free ports; stopped on exit."""
    work.mkdir(parents=True, exist_ok=True)
    toxiproxy_port, proxy_port = free_port(), free_port()
    api_port, inventory_port = free_port(), free_port()
    processes: list[subprocess.Popen[bytes]] = []
    try:
        toxi_log = work / "toxiproxy.log"
        with toxi_log.open("wb") as out:
            toxiproxy = subprocess.Popen(
                [str(find_toxiproxy()), "-host", "127.0.0.1", "-port", str(toxiproxy_port)],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        processes.append(toxiproxy)
        toxiproxy_url = f"http://127.0.0.1:{toxiproxy_port}"
        _wait_http(f"{toxiproxy_url}/version", toxiproxy, toxi_log, 15)
        with ToxiproxyClient(toxiproxy_url) as client:
            client.create(
                ProxySpec(
                    name=INVENTORY_PROXY,
                    listen=f"127.0.0.1:{proxy_port}",
                    upstream=f"127.0.0.1:{inventory_port}",
                )
            )
        shop_log = work / "shop_api.log"
        argv = [sys.executable, str(SHOP_API), "--port", str(api_port)]
        argv += ["--inventory-port", str(inventory_port)]
        argv += ["--inventory-url", f"http://127.0.0.1:{proxy_port}"]
        if dsn:
            argv += ["--dsn", dsn]
        with shop_log.open("wb") as out:
            shop = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env={**os.environ})
        processes.append(shop)
        api_url = f"http://127.0.0.1:{api_port}"
        _wait_http(f"{api_url}/healthz", shop, shop_log, 20)
        yield ShopStack(
            api_url=api_url,
            toxiproxy_url=toxiproxy_url,
            inventory_proxy=INVENTORY_PROXY,
            inventory_url=f"http://127.0.0.1:{inventory_port}",
            logs=work,
        )
    finally:
        for process in reversed(processes):
            _stop(process)
