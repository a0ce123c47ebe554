"""/admin validation, /healthz, /stats shape and http_errors injection on real services."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from orderstack.histogram import BOUNDS_MS

from .conftest import make_config, running


@pytest.mark.parametrize(
    ("service", "patch", "message"),
    [
        (
            "gateway",
            {"retries": "sometimes"},
            'retries: expected one of "none", "naive", "backoff", got "sometimes"',
        ),
        ("gateway", {"timeout_s": -1}, "timeout_s: expected a number 0.001..600, got -1"),
        ("store", {"queue": 2.5}, "queue: expected an integer 0..1e+06, got 2.5"),
        ("store", {"paused": "yes"}, 'paused: expected true or false, got "yes"'),
        ("rider", {"bikes": 3}, "bikes: expected a setting"),
        (
            "coupon",
            {"http_errors": {"status": 200}},
            "http_errors.status: expected an integer 400..599, got 200",
        ),
        ("coupon", [1, 2], "body: expected a JSON object, got [1, 2]"),
    ],
)
def test_admin_refuses_bad_values_and_applies_nothing(
    tmp_path: Path, service: str, patch: object, message: str
) -> None:
    async def scenario() -> None:
        async with running(make_config(tmp_path), [service]) as stack:
            before = await stack.get(service, "/admin")
            # A valid key next to the bad one must not be applied either.
            body = {"http_errors": {"rate": 0.5}, **patch} if isinstance(patch, dict) else patch
            status, answer, _ = await stack.post(service, "/admin", body)
            assert status == 400
            assert answer["error"].startswith(message)
            assert "\n" not in answer["error"]
            assert await stack.get(service, "/admin") == before

    asyncio.run(scenario())


def test_admin_applies_partial_patches(tmp_path: Path) -> None:
    async def scenario() -> None:
        config = make_config(tmp_path, settings={"gateway": {"max_retries": 5}})
        async with running(config, ["gateway"]) as stack:
            settings = await stack.get("gateway", "/admin")
            assert settings["max_retries"] == 5 and settings["retries"] == "backoff"
            status, settings, _ = await stack.post(
                "gateway", "/admin", {"timeout_s": 1, "http_errors": {"rate": 0.25}}
            )
            assert status == 200
            assert settings["timeout_s"] == 1.0
            assert settings["http_errors"] == {"rate": 0.25, "status": 500}
            assert settings["max_retries"] == 5

    asyncio.run(scenario())


def test_every_service_serves_health_stats_and_ledger(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running(make_config(tmp_path)) as stack:
            for name in stack.services:
                assert await stack.get(name, "/healthz") == {"status": "ok", "service": name}
                stats = await stack.get(name, "/stats")
                assert stats["service"] == name
                assert set(stats) == {"service", "time", "counters", "gauges", "histograms"}
                for hist in stats["histograms"].values():
                    assert hist["bounds_ms"] == list(BOUNDS_MS)
                    assert len(hist["counts"]) == len(BOUNDS_MS) + 1
                assert isinstance(await stack.get(name, "/ledger"), dict)
            assert (await stack.get("coupon", "/ledger")) == {"credits": []}
            assert "order_latency_ms" in (await stack.get("gateway", "/stats"))["histograms"]

    asyncio.run(scenario())


def test_http_errors_inject_the_configured_status_on_business_endpoints_only(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        async with running(make_config(tmp_path), ["inventory"]) as stack:
            patch = {"http_errors": {"rate": 1.0, "status": 418}}
            assert (await stack.post("inventory", "/admin", patch))[0] == 200
            status, body, _ = await stack.post(
                "inventory", "/reserve", {"order_id": "o", "item": "t"}
            )
            assert (status, body["error"]) == (418, "injected http error")
            assert (await stack.get("inventory", "/healthz"))["status"] == "ok"
            stats = await stack.get("inventory", "/stats")
            assert stats["counters"]["http_errors_injected"] == 1
            assert stats["counters"]["reserved"] == 0

            await stack.post("inventory", "/admin", {"http_errors": {"rate": 0.5, "status": 503}})
            statuses = [
                (await stack.post("inventory", "/reserve", {"order_id": f"o{i}", "item": "t"}))[0]
                for i in range(200)
            ]
            failed = statuses.count(503)
            assert statuses.count(200) + failed == 200
            assert 60 <= failed <= 140  # rate 0.5 over 200 calls

    asyncio.run(scenario())
