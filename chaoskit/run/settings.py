"""An experiment's ``stack:`` section as /admin settings per service."""

from __future__ import annotations

from typing import Any

__all__ = ["stack_settings"]

_SIMULATED_DELIVERY_MIN = 25.0


def stack_settings(stack: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Map the experiment's stack settings (already validated, durations in seconds) to services."""
    out: dict[str, dict[str, Any]] = {}

    def put(service: str, key: str, value: Any) -> None:
        if value is not None:
            out.setdefault(service, {})[key] = value

    put("gateway", "coupon_mode", stack.get("coupon_mode"))
    gateway = stack.get("gateway") or {}
    put("gateway", "timeout_s", gateway.get("timeout"))
    for key in ("retries", "max_retries", "circuit_breaker", "load_shedding", "max_inflight"):
        put("gateway", key, gateway.get(key))
    put("rider", "riders", stack.get("riders"))
    delivery = stack.get("delivery_time")
    if delivery is not None:
        # One delivery is 25 simulated minutes; the compression makes it last `delivery` seconds.
        put("rider", "delivery_minutes", _SIMULATED_DELIVERY_MIN)
        compression = _SIMULATED_DELIVERY_MIN * 60.0 / max(float(delivery), 0.001)
        put("rider", "time_compression", compression)
    put("rider", "dispatch_wait_s", stack.get("dispatch_wait"))
    stores = stack.get("stores") or {}
    put("store", "stores", stores.get("count"))
    for key in ("capacity_per_s", "queue", "overload"):
        put("store", key, stores.get(key))
    put("store", "pause_s", stores.get("pause"))
    coupon = stack.get("coupon") or {}
    put("coupon", "pool_size", coupon.get("pool_size"))
    lag = coupon.get("lag")
    put("coupon", "lag_ms", None if lag is None else float(lag) * 1000.0)
    put("coupon", "idempotent", coupon.get("idempotent"))
    eligibility = stack.get("eligibility") or {}
    for key in ("free_orders_per_user", "referral_share", "release_on_failure"):
        put("eligibility", key, eligibility.get(key))
    return out
