"""Domain faults through the stack's ``/admin`` endpoints: riders, stores, coupon ledger, errors.

Each domain fault is a partial settings change on one service. What it changes is read
first, so the exact previous values can be put back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from chaoskit.errors import FaultNotApplied, TargetUnreachable

__all__ = ["AdminClient", "DomainChange", "domain_change"]


class AdminClient:
    """Reads and changes one stack's service settings; never hangs on a dead service."""

    def __init__(self, services: dict[str, str], *, timeout_s: float = 3.0) -> None:
        self._services = dict(services)
        self._http = httpx.Client(timeout=httpx.Timeout(timeout_s, connect=1.0), trust_env=False)

    def close(self) -> None:
        """Release the connection pool."""
        self._http.close()

    def has(self, service: str) -> bool:
        """Whether ``service`` exposes an admin endpoint on this target."""
        return service in self._services

    def get(self, service: str) -> dict[str, Any]:
        """The current settings of ``service``."""
        return self._call("GET", service, None)

    def set(self, service: str, settings: dict[str, Any]) -> dict[str, Any]:
        """Apply a partial ``settings`` change to ``service``; returns all its settings."""
        return self._call("POST", service, settings)

    def _call(self, method: str, service: str, body: dict[str, Any] | None) -> dict[str, Any]:
        try:
            base = self._services[service]
        except KeyError:
            raise FaultNotApplied(f"{service}: this target exposes no admin endpoint") from None
        url = f"{base}/admin"
        try:
            response = self._http.request(method, url, json=body)
        except httpx.HTTPError as exc:
            raise TargetUnreachable(f"{service} admin at {url} does not answer: {exc}") from exc
        if response.status_code >= 400:
            try:
                message = response.json().get("error", response.text)
            except ValueError:
                message = response.text
            raise FaultNotApplied(f"{service} /admin refused {body}: {message}")
        data: dict[str, Any] = response.json()
        return data


@dataclass(frozen=True, slots=True)
class DomainChange:
    """One partial settings change on one service, and which value a ramp scales."""

    service: str
    settings: dict[str, Any]
    ramp_key: str | None = None  # numeric setting a ramp moves from its old value to the new


def domain_change(kind: str, params: dict[str, Any]) -> DomainChange:
    """Translate a domain fault of ``kind`` with ``params`` into a settings change."""
    if kind == "riders":
        return DomainChange("rider", {"riders": int(params["available"])}, "riders")
    if kind == "store_capacity":
        settings: dict[str, Any] = {"capacity_per_s": float(params["capacity_per_s"])}
        if params.get("queue") is not None:
            settings["queue"] = int(params["queue"])
        return DomainChange("store", settings, "capacity_per_s")
    if kind == "store_pause":
        return DomainChange("store", {"paused": True})
    if kind == "coupon_lag":
        return DomainChange("coupon", {"lag_ms": float(params["lag"]) * 1000.0}, "lag_ms")
    if kind == "db_pool":
        return DomainChange("coupon", {"pool_size": int(params["size"])}, "pool_size")
    if kind == "http_errors":
        errors = {"rate": float(params["rate"]), "status": int(params.get("status", 500))}
        return DomainChange(str(params["service"]), {"http_errors": errors})
    raise FaultNotApplied(f"unknown domain fault kind {kind!r}")
