"""An experiment's ``stack:`` section: the stub stack's settings, applied through /admin."""

from __future__ import annotations

from typing import Literal

from pydantic import (
    Field,
)

from chaoskit.experiment._common import (
    Amount,
    _Model,
)
from chaoskit.experiment.durations import Duration, PositiveDuration


class GatewaySettings(_Model):
    """Resilience switches on the gateway."""

    timeout: PositiveDuration | None = None
    retries: Literal["none", "naive", "backoff"] | None = None
    max_retries: int | None = Field(default=None, ge=0)
    circuit_breaker: bool | None = None
    load_shedding: bool | None = None
    max_inflight: int | None = Field(default=None, ge=1)


class StoreSettings(_Model):
    """Store intake: how many stores, how fast each accepts, how it handles overload."""

    count: int | None = Field(default=None, ge=1)
    capacity_per_s: Amount | None = None
    queue: int | None = Field(default=None, ge=0)
    overload: Literal["shed", "pause"] | None = None
    pause: Duration | None = None


class CouponSettings(_Model):
    """The coupon/subsidy ledger."""

    pool_size: int | None = Field(default=None, ge=1)
    lag: Duration | None = None
    idempotent: bool | None = None


class EligibilitySettings(_Model):
    """Free-order eligibility."""

    free_orders_per_user: int | None = Field(default=None, ge=0)
    referral_share: float | None = Field(default=None, ge=0, le=1)
    release_on_failure: bool | None = None
    """The compensating design: a failed order gives its free order back to the buyer."""


class StackSettings(_Model):
    """Stub-stack settings applied through /admin before the load, restored after."""

    coupon_mode: Literal["sync", "async"] | None = None
    riders: int | None = Field(default=None, ge=0)
    delivery_time: PositiveDuration | None = None
    dispatch_wait: Duration | None = None
    gateway: GatewaySettings | None = None
    stores: StoreSettings | None = None
    coupon: CouponSettings | None = None
    eligibility: EligibilitySettings | None = None
