"""orders: the order record, created idempotently by the client's order_id."""

from __future__ import annotations

import time
from typing import Any

from .common import Service, field_of, json_response, read_json
from .config import StackConfig
from .httpserver import Request, Response, Route, post

__all__ = ["OrdersService"]


class OrdersService(Service):
    name = "orders"

    def __init__(self, config: StackConfig) -> None:
        super().__init__(config)
        self.counters.update(created=0, cancelled=0, duplicates=0, reopened=0)
        self.orders: dict[str, dict[str, Any]] = {}

    def routes(self) -> list[Route]:
        return [
            post("/orders", self.create),
            post("/orders/{order_id}/cancel", self.cancel),
        ]

    async def create(self, request: Request) -> Response:
        body = await read_json(request)
        order_id = field_of(body, "order_id", str)
        order = self.orders.get(order_id)
        if order is not None:
            self.counters["duplicates"] += 1
            if order["status"] == "cancelled":
                # The client re-sent the same key after a failure: the order is wanted again.
                order["status"] = "created"
                self.counters["reopened"] += 1
            return json_response(order)
        order = {
            "order_id": order_id,
            "intent_id": field_of(body, "intent_id", str, order_id),
            "user_id": field_of(body, "user_id", str),
            "created_at": time.time(),
            "eligible": field_of(body, "eligible", bool, False),
            "status": "created",
        }
        self.orders[order_id] = order
        self.counters["created"] += 1
        return json_response(order)

    async def cancel(self, request: Request) -> Response:
        order = self.orders.get(request.match_info["order_id"])
        if order is None:
            return json_response({"error": "no such order"}, 404)
        if order["status"] != "cancelled":
            order["status"] = "cancelled"
            self.counters["cancelled"] += 1
        return json_response(order)

    def gauges(self) -> dict[str, float]:
        return {"orders": len(self.orders)}

    def ledger(self) -> dict[str, Any]:
        return {"orders": list(self.orders.values())}
