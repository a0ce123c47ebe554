"""eligibility: free-order quota from referrals, deterministic per user, with a grants ledger."""

from __future__ import annotations

import time
import zlib
from typing import Any

from .common import Service, field_of, json_response, read_json
from .config import StackConfig
from .httpserver import Request, Response, Route, post
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
        self.counters.update(checks=0, eligible=0, releases=0)
        self.used: dict[str, int] = {}  # user -> free orders granted and not given back
        self.decided: dict[str, bool] = {}  # order_id -> answer (a retried check counts once)
        # order_id -> the grant: who, when, and when it was given back (the audit's ledger).
        self.grants: dict[str, dict[str, Any]] = {}

    def routes(self) -> list[Route]:
        return [post("/check", self.check), post("/release", self.release)]

    async def check(self, request: Request) -> Response:
        body = await read_json(request)
        order_id = field_of(body, "order_id", str)
        user_id = field_of(body, "user_id", str)
        self.counters["checks"] += 1
        s = self.settings
        eligible = self.decided.get(order_id)
        if eligible is None:
            eligible = False
            if has_referral(user_id, seed=self.config.seed, share=s.referral_share):
                used = self.used.get(user_id, 0)
                if used < s.free_orders_per_user:
                    self.used[user_id] = used + 1
                    eligible = True
                    self.grants[order_id] = {
                        "order_id": order_id,
                        "user_id": user_id,
                        "granted_at": time.time(),
                        "released_at": None,
                    }
            self.decided[order_id] = eligible
            if eligible:
                self.counters["eligible"] += 1
        # The gateway reads the policy from the answer: it releases only when told it may.
        return json_response({"eligible": eligible, "release_on_failure": s.release_on_failure})

    async def release(self, request: Request) -> Response:
        """Give a failed order's free order back to its buyer (idempotent by order)."""
        body = await read_json(request)
        order_id = field_of(body, "order_id", str)
        grant = self.grants.get(order_id)
        if grant is None or grant["released_at"] is not None:
            return json_response({"released": False, "order_id": order_id})
        grant["released_at"] = time.time()
        user_id = grant["user_id"]
        self.used[user_id] = max(0, self.used.get(user_id, 0) - 1)
        # A re-click with the same key must be decided afresh: the quota is back.
        self.decided.pop(order_id, None)
        self.counters["releases"] += 1
        return json_response({"released": True, "order_id": order_id})

    def gauges(self) -> dict[str, float]:
        return {"users_with_free_orders": sum(1 for n in self.used.values() if n)}

    def ledger(self) -> dict[str, Any]:
        return {"grants": list(self.grants.values())}
