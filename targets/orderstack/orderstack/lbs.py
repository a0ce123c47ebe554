"""lbs: delivery-range quote; distances are deterministic, beyond max_distance_km is refused."""

from __future__ import annotations

import zlib

from .common import Service, field_of, json_response, read_json
from .config import StackConfig
from .httpserver import Request, Response, Route, post
from .settings import LbsSettings

__all__ = ["LbsService", "distance_km"]

# Everyday places sit inside the default 10 km so a baseline run is not refused.
_KNOWN_PLACES: dict[str, float] = {
    "office": 2.4,
    "home": 3.1,
    "school": 4.2,
    "gym": 1.8,
    "station": 5.6,
    "airport": 28.0,
}


def distance_km(place: str) -> float:
    """Distance from the nearest store to `place` (unknown places: 0.5..9.5 km by hash)."""
    known = _KNOWN_PLACES.get(place.lower())
    if known is not None:
        return known
    return 0.5 + (zlib.crc32(place.lower().encode()) % 91) / 10.0


class LbsService(Service):
    name = "lbs"
    settings: LbsSettings

    def __init__(self, config: StackConfig) -> None:
        super().__init__(config)
        self.counters.update(quotes=0, out_of_range=0)

    def routes(self) -> list[Route]:
        return [post("/quote", self.quote)]

    async def quote(self, request: Request) -> Response:
        body = await read_json(request)
        order_id = field_of(body, "order_id", str)
        place = field_of(body, "place", str)
        km = distance_km(place)
        if km > self.settings.max_distance_km:
            self.counters["out_of_range"] += 1
            return json_response({"error": "out_of_range", "distance_km": km}, 422)
        self.counters["quotes"] += 1
        # The store hint spreads orders over stores; the store service maps it onto its count.
        hint = zlib.crc32(order_id.encode())
        return json_response({"store_hint": hint, "distance_km": km, "eta_min": round(5 + 3 * km)})
