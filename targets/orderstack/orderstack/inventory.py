"""inventory: per-item stock; a reservation is keyed by order so a retried reserve counts once."""

from __future__ import annotations

from typing import Any

from .common import Service, field_of, json_response, read_json
from .config import StackConfig
from .httpserver import Request, Response, Route, post
from .settings import InventorySettings

__all__ = ["InventoryService"]


class InventoryService(Service):
    name = "inventory"
    settings: InventorySettings

    def __init__(self, config: StackConfig) -> None:
        super().__init__(config)
        self.counters.update(reserved=0, out_of_stock=0, duplicates=0)
        self.reserved: dict[str, int] = {}
        self.reservations: dict[str, str] = {}  # order_id -> item

    def routes(self) -> list[Route]:
        return [post("/reserve", self.reserve)]

    async def reserve(self, request: Request) -> Response:
        body = await read_json(request)
        order_id = field_of(body, "order_id", str)
        item = field_of(body, "item", str)
        if order_id in self.reservations:
            self.counters["duplicates"] += 1
            return json_response({"item": self.reservations[order_id], "reserved": True})
        taken = self.reserved.get(item, 0)
        if taken >= self.settings.stock_per_item:
            self.counters["out_of_stock"] += 1
            return json_response({"error": "out_of_stock", "item": item}, 409)
        self.reserved[item] = taken + 1
        self.reservations[order_id] = item
        self.counters["reserved"] += 1
        return json_response({"item": item, "reserved": True})

    def gauges(self) -> dict[str, float]:
        return {"items": len(self.reserved)}

    def ledger(self) -> dict[str, Any]:
        stock = self.settings.stock_per_item
        return {
            "items": [
                {"item": item, "stock": stock, "reserved": n} for item, n in self.reserved.items()
            ]
        }
