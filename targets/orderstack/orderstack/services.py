"""Service name -> implementation."""

from __future__ import annotations

from .common import Service
from .config import StackConfig
from .coupon import CouponService
from .eligibility import EligibilityService
from .gateway import GatewayService
from .inventory import InventoryService
from .lbs import LbsService
from .orders import OrdersService
from .rider import RiderService
from .store import StoreService

__all__ = ["SERVICE_TYPES", "create_service"]

SERVICE_TYPES: dict[str, type[Service]] = {
    cls.name: cls
    for cls in (
        GatewayService,
        InventoryService,
        LbsService,
        EligibilityService,
        OrdersService,
        StoreService,
        RiderService,
        CouponService,
    )
}


def create_service(name: str, config: StackConfig) -> Service:
    """The service called `name`, configured from `config`."""
    return SERVICE_TYPES[name](config)
