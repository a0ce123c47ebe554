"""eligibility: free-order quota from referrals, deterministic per user."""

from __future__ import annotations

import zlib

from aiohttp import web

from .common import Service, field_of, json_response, read_json
from .config import StackConfig
from .settings import EligibilitySettings

__all__ = ["EligibilityService", "has_referral"]


def has_referral(user_id: str, *, seed: int, share: float) -> bool:
    """Whether `user_id` came through a referral: a stable `share` of all users do."""
    return zlib.crc32(f"{seed}:{user_id}".encode()) / 4294967296.0 < share


class EligibilityService(Service):
    name = "eligibility"
    settings: EligibilitySettings

    def __init__(self, config: StackConfig) -> None:
        super().__init__(config)
        self.counters.update(checks=0, eligible=0)
        self.used: dict[str, int] = {}  # user -> free orders granted
        self.decided: dict[str, bool] = {}  # order_id -> answer (a retried check counts once)

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/check", self.check)]

    async def check(self, request: web.Request) -> web.Response:
        body = await read_json(request)
        order_id = field_of(body, "order_id", str)
        user_id = field_of(body, "user_id", str)
        self.counters["checks"] += 1
        eligible = self.decided.get(order_id)
        if eligible is None:
            s = self.settings
            eligible = False
            if has_referral(user_id, seed=self.config.seed, share=s.referral_share):
                used = self.used.get(user_id, 0)
                if used < s.free_orders_per_user:
                    self.used[user_id] = used + 1
                    eligible = True
            self.decided[order_id] = eligible
            if eligible:
                self.counters["eligible"] += 1
        return json_response({"eligible": eligible})

    def gauges(self) -> dict[str, float]:
        return {"users_with_free_orders": len(self.used)}
