"""Where a running stack can be reached: what every backend hands to the runner."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["DEPENDENCIES", "SERVICES", "ProxyRef", "StackEndpoints"]

# The order chain, in call order. Each dependency is one service behind one Toxiproxy proxy.
DEPENDENCIES: tuple[str, ...] = (
    "inventory",
    "lbs",
    "eligibility",
    "orders",
    "store",
    "rider",
    "coupon",
)
SERVICES: tuple[str, ...] = ("gateway", *DEPENDENCIES)


@dataclass(frozen=True, slots=True)
class ProxyRef:
    """One Toxiproxy proxy: the API server that owns it and its name there."""

    api_url: str
    name: str


@dataclass(frozen=True, kw_only=True)
class StackEndpoints:
    """Everything the runner needs to drive load, apply faults and read metrics."""

    name: str
    kind: str  # "local" | "docker" | "attach"
    gateway_url: str  # base URL; orders are POSTed to f"{gateway_url}/orders"
    toxiproxy_urls: tuple[str, ...]  # Toxiproxy API base URLs (one per server)
    proxies: dict[str, ProxyRef]  # dependency name -> its proxy
    # service name -> base URL serving /healthz /stats /admin /ledger; empty on a
    # target that exposes none (attach), and then domain faults and the audit are skipped.
    services: dict[str, str] = field(default_factory=dict)
    containers: dict[str, str] = field(default_factory=dict)  # docker: service -> container
    headers: dict[str, str] = field(default_factory=dict)  # sent with every load request
    allowed_hosts: tuple[str, ...] = ("127.0.0.1", "localhost")
