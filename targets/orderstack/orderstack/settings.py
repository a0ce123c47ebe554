"""Admin settings: one frozen dataclass per service, validated patches, one-line errors."""

from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import dataclass, field
from typing import Any, TypeVar

__all__ = [
    "CouponSettings",
    "EligibilitySettings",
    "GatewaySettings",
    "HttpErrors",
    "InventorySettings",
    "LbsSettings",
    "OrdersSettings",
    "RiderSettings",
    "SETTINGS_TYPES",
    "ServiceSettings",
    "SettingsError",
    "StoreSettings",
    "apply_patch",
    "settings_to_json",
]


class SettingsError(ValueError):
    """A patch was refused; the message names the field, what is allowed and the value given."""


@dataclass(frozen=True, slots=True)
class _Rule:
    lo: float | None = None
    hi: float | None = None
    choices: tuple[str, ...] = ()


def _setting(
    default: Any, *, lo: float | None = None, hi: float | None = None, choices: tuple[str, ...] = ()
) -> Any:
    return field(default=default, metadata={"rule": _Rule(lo, hi, choices)})


@dataclass(frozen=True, slots=True)
class HttpErrors:
    """Injected API failures on a service's business endpoints."""

    rate: float = _setting(0.0, lo=0.0, hi=1.0)
    status: int = _setting(500, lo=400, hi=599)


@dataclass(frozen=True, slots=True)
class ServiceSettings:
    """Settings every service has."""

    http_errors: HttpErrors = field(default_factory=HttpErrors)


@dataclass(frozen=True, slots=True)
class GatewaySettings(ServiceSettings):
    timeout_s: float = _setting(2.0, lo=0.001, hi=600.0)
    retries: str = _setting("backoff", choices=("none", "naive", "backoff"))
    max_retries: int = _setting(2, lo=0, hi=20)
    circuit_breaker: bool = _setting(True)
    load_shedding: bool = _setting(False)
    max_inflight: int = _setting(256, lo=1, hi=1_000_000)
    coupon_mode: str = _setting("async", choices=("sync", "async"))
    parse_cost: int = _setting(100, lo=0, hi=10_000_000)


@dataclass(frozen=True, slots=True)
class InventorySettings(ServiceSettings):
    stock_per_item: int = _setting(1_000_000, lo=0, hi=10**12)


@dataclass(frozen=True, slots=True)
class LbsSettings(ServiceSettings):
    max_distance_km: float = _setting(10.0, lo=0.0, hi=10_000.0)


@dataclass(frozen=True, slots=True)
class EligibilitySettings(ServiceSettings):
    free_orders_per_user: int = _setting(1, lo=0, hi=1_000_000)
    referral_share: float = _setting(0.3, lo=0.0, hi=1.0)
    # The compensating design: the gateway gives a granted free order back when the order fails.
    release_on_failure: bool = _setting(False)


@dataclass(frozen=True, slots=True)
class OrdersSettings(ServiceSettings):
    pass


@dataclass(frozen=True, slots=True)
class StoreSettings(ServiceSettings):
    stores: int = _setting(20, lo=1, hi=10_000)
    capacity_per_s: float = _setting(50.0, lo=0.0, hi=1_000_000.0)
    queue: int = _setting(100, lo=0, hi=1_000_000)
    overload: str = _setting("shed", choices=("shed", "pause"))
    pause_s: float = _setting(5.0, lo=0.0, hi=86_400.0)
    paused: bool = _setting(False)


@dataclass(frozen=True, slots=True)
class RiderSettings(ServiceSettings):
    riders: int = _setting(200, lo=0, hi=1_000_000)
    delivery_minutes: float = _setting(25.0, lo=0.0, hi=10_000.0)
    time_compression: float = _setting(300.0, lo=0.001, hi=1_000_000.0)
    dispatch_wait_s: float = _setting(2.0, lo=0.0, hi=600.0)


@dataclass(frozen=True, slots=True)
class CouponSettings(ServiceSettings):
    pool_size: int = _setting(8, lo=1, hi=64)
    lag_ms: float = _setting(0.0, lo=0.0, hi=60_000.0)
    idempotent: bool = _setting(True)


SETTINGS_TYPES: dict[str, type[ServiceSettings]] = {
    "gateway": GatewaySettings,
    "inventory": InventorySettings,
    "lbs": LbsSettings,
    "eligibility": EligibilitySettings,
    "orders": OrdersSettings,
    "store": StoreSettings,
    "rider": RiderSettings,
    "coupon": CouponSettings,
}

S = TypeVar("S")


def settings_to_json(settings: object) -> dict[str, Any]:
    """The /admin form of a settings object."""
    return dataclasses.asdict(settings)  # type: ignore[call-overload, no-any-return]


def _show(value: object) -> str:
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


def _range(rule: _Rule) -> str:
    if rule.lo is None and rule.hi is None:
        return ""
    lo = "" if rule.lo is None else f"{rule.lo:g}"
    hi = "" if rule.hi is None else f"{rule.hi:g}"
    return f" {lo}..{hi}"


def _check(name: str, kind: object, rule: _Rule, value: object) -> object:
    got = f", got {_show(value)}"
    if kind is bool:
        if not isinstance(value, bool):
            raise SettingsError(f"{name}: expected true or false{got}")
        return value
    if kind is str:
        if not isinstance(value, str) or value not in rule.choices:
            allowed = ", ".join(f'"{c}"' for c in rule.choices)
            raise SettingsError(f"{name}: expected one of {allowed}{got}")
        return value
    if kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
        if not ok or not _in_range(float(value), rule):  # type: ignore[arg-type]
            raise SettingsError(f"{name}: expected an integer{_range(rule)}{got}")
        return value
    if kind is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if not ok or not _in_range(float(value), rule):  # type: ignore[arg-type]
            raise SettingsError(f"{name}: expected a number{_range(rule)}{got}")
        return float(value)  # type: ignore[arg-type]
    raise TypeError(f"{name}: unsupported setting type {kind!r}")


def _in_range(number: float, rule: _Rule) -> bool:
    if number != number:  # NaN
        return False
    if rule.lo is not None and number < rule.lo:
        return False
    return rule.hi is None or number <= rule.hi


def apply_patch(current: S, patch: object, *, prefix: str = "") -> S:
    """`current` with the partial `patch` applied, or SettingsError (and nothing applied)."""
    if not isinstance(patch, dict):
        where = prefix.rstrip(".") or "body"
        raise SettingsError(f"{where}: expected a JSON object, got {_show(patch)}")
    hints = typing.get_type_hints(type(current))
    fields = {f.name: f for f in dataclasses.fields(current)}  # type: ignore[arg-type]
    changes: dict[str, object] = {}
    for key, value in patch.items():
        name = f"{prefix}{key}"
        if key not in fields:
            known = ", ".join(sorted(fields))
            raise SettingsError(f"{name}: expected a setting ({known}), got an unknown key")
        kind = hints[key]
        if dataclasses.is_dataclass(kind):
            changes[key] = apply_patch(getattr(current, key), value, prefix=f"{name}.")
        else:
            rule = fields[key].metadata.get("rule", _Rule())
            changes[key] = _check(name, kind, rule, value)
    return dataclasses.replace(current, **changes)  # type: ignore[type-var]
