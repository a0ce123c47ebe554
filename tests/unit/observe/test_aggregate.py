"""MetricsAggregator on synthetic ticks and /stats snapshots with answers worked out by hand."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from hdrh.histogram import HdrHistogram

from chaoskit.observe.aggregate import MetricsAggregator
from chaoskit.observe.metrics import METRICS, SERIES_METRICS

BOUNDS = [1000.0, 2000.0, 4000.0, 8000.0]


def hdr(*values: tuple[int, int]) -> str:
    """An engine-style encoded histogram with (ms, count) pairs."""
    hist = HdrHistogram(1, 3_600_000, 3)
    for ms, count in values:
        hist.record_value(ms, count)
    blob = hist.encode()
    return blob.decode() if isinstance(blob, bytes) else str(blob)


def tick(t: float, **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "type": "tick",
        "t": t,
        "target": 10,
        "users": 4,
        "intents_started": 10,
        "fulfilled": 8,
        "failed": 1,
        "abandoned": 1,
        "failed_steps": {},
        "requests": 12,
        "request_errors": 3,
        "dropped": 0,
        "latency_hdr": hdr((50, 12)),
        "fulfilment_hdr": hdr((200, 8)),
    }
    base.update(fields)
    return base


def stats(
    *, rejected: float = 0, paused: float = 0, coupon: list[int] | None = None, **gauges: float
) -> dict[str, dict[str, Any]]:
    coupon_counts = coupon if coupon is not None else [0] * 5
    return {
        "gateway": {"counters": {}, "gauges": {"outbox_pending": gauges.get("pending", 0)}},
        "store": {
            "counters": {"rejected": rejected, "paused_seconds": paused, "accepted": 0},
            "gauges": {"queue_depth": gauges.get("queue", 0), "paused_stores": 0},
        },
        "rider": {
            "counters": {},
            "gauges": {"riders_free": gauges.get("free", 10), "riders_busy": gauges.get("busy", 0)},
            "histograms": {"rider_wait_ms": {"bounds_ms": BOUNDS, "counts": [0] * 5, "count": 0}},
        },
        "coupon": {
            "counters": {},
            "gauges": {},
            "histograms": {
                "coupon_delay_ms": {
                    "bounds_ms": BOUNDS,
                    "counts": coupon_counts,
                    "count": sum(coupon_counts),
                }
            },
        },
    }


def test_rows_carry_every_series_metric_and_none_without_server_stats() -> None:
    agg = MetricsAggregator()
    agg.add_tick(tick(1.0))
    row = agg.sample(1.0)
    assert set(row) == set(SERIES_METRICS)
    assert all(METRICS[name].source != "audit" for name in row)
    # An attach target gives no /stats: every server metric is unknown, not zero.
    for name in SERIES_METRICS:
        if METRICS[name].source == "server":
            assert row[name] is None, name
    assert row["intents"] == 10
    assert row["orders"] == 8
    assert row["orders_per_s"] == pytest.approx(8.0)
    assert row["fulfilment_rate"] == pytest.approx(0.8)
    assert row["error_rate"] == pytest.approx(0.25)
    assert row["retry_amplification"] == pytest.approx(1.2)
    assert row["latency_p50_ms"] == 50
    assert row["fulfilment_time_p95_s"] == pytest.approx(0.2)
    assert row["target_load"] == 10
    assert row["users"] == 4


def test_before_any_data_everything_is_unknown() -> None:
    row = MetricsAggregator().sample(5.0)
    assert all(value is None for value in row.values())


def test_fulfilment_window_is_over_finished_intents_overall_over_started() -> None:
    agg = MetricsAggregator()
    agg.add_tick(tick(1.0, intents_started=10, fulfilled=6, failed=2, abandoned=0))
    agg.add_tick(tick(2.0, intents_started=10, fulfilled=4, failed=0, abandoned=2))
    agg.add_tick(tick(3.0, intents_started=10, fulfilled=0, failed=0, abandoned=0))
    assert agg.window("fulfilment_rate", 0.0, 3.0) == pytest.approx(10 / 14)
    assert agg.window("fulfilment_rate", 2.0, 3.0) is None  # nothing finished in (2, 3]
    assert agg.window("intents", 1.0, 3.0) == 20
    assert agg.window("orders_per_s", 0.0, 2.0) == pytest.approx(5.0)
    overall = agg.overall()
    assert overall["fulfilment_rate"] == pytest.approx(10 / 30)
    assert overall["intents"] == 30
    assert overall["orders"] == 10
    assert agg.sample(3.0)["intents"] == 30  # rows: cumulative


def test_window_percentiles_come_from_merged_histograms_not_averages() -> None:
    agg = MetricsAggregator()
    agg.add_tick(tick(1.0, requests=100, latency_hdr=hdr((10, 100))))
    agg.add_tick(tick(2.0, requests=100, latency_hdr=hdr((1000, 100))))
    # Averaging the two per-second p95s would say 505 ms; the merged histogram says 1000.
    assert agg.window("latency_p95_ms", 0.0, 2.0) == pytest.approx(1000, rel=0.001)
    assert agg.window("latency_p50_ms", 0.0, 2.0) == 10
    assert agg.window("latency_p95_ms", 0.0, 1.0) == 10
    assert agg.overall()["latency_p99_ms"] == pytest.approx(1000, rel=0.001)
    rows = MetricsAggregator(window_s=2.0)
    rows.add_tick(tick(1.0, latency_hdr=hdr((10, 100))))
    rows.add_tick(tick(2.0, latency_hdr=hdr((1000, 100))))
    assert rows.sample(2.0)["latency_p95_ms"] == pytest.approx(1000, rel=0.001)


def test_server_counters_are_diffed_first_snapshot_is_the_baseline() -> None:
    agg = MetricsAggregator()
    agg.add_stats(1.0, stats(rejected=100, paused=50.0, queue=3))
    assert agg.sample(1.0)["store_rejections"] == 0
    agg.add_stats(2.0, stats(rejected=130, paused=52.5, queue=7, pending=4, free=6, busy=4))
    row = agg.sample(2.0)
    assert row["store_rejections"] == 30
    assert row["store_paused_s"] == pytest.approx(2.5)
    assert row["store_queue_depth"] == 7
    assert row["coupon_pending"] == 4
    assert (row["riders_free"], row["riders_busy"]) == (6, 4)
    agg.add_stats(3.0, stats(rejected=130, paused=52.5, queue=1))
    assert agg.sample(3.0)["store_rejections"] == 0
    assert agg.window("store_rejections", 0.0, 3.0) == 30
    assert agg.window("store_queue_depth", 0.0, 3.0) == pytest.approx((3 + 7 + 1) / 3)
    # No ticks at all: client metrics stay unknown.
    assert agg.sample(3.0)["orders_per_s"] is None


def test_server_counter_reset_counts_the_new_value() -> None:
    agg = MetricsAggregator()
    agg.add_stats(1.0, stats(rejected=500))
    agg.add_stats(2.0, stats(rejected=7))  # the store restarted
    assert agg.sample(2.0)["store_rejections"] == 7


def test_server_histograms_are_windowed_by_diff() -> None:
    agg = MetricsAggregator()
    agg.add_stats(1.0, stats(coupon=[5, 0, 0, 0, 0]))
    agg.add_stats(2.0, stats(coupon=[5, 0, 10, 0, 0]))
    # Ten delays in (2 s, 4 s]: p95 interpolates to 2 + 2 * 9.5/10 = 3.9 s.
    assert agg.sample(2.0)["coupon_delay_p95_s"] == pytest.approx(3.9)
    agg.add_stats(3.0, stats(coupon=[5, 0, 10, 0, 0]))
    assert agg.sample(3.0)["coupon_delay_p95_s"] is None  # no credits in this second
    assert agg.window("coupon_delay_p95_s", 0.0, 3.0) == pytest.approx(3.9)
    assert agg.overall()["coupon_delay_p95_s"] == pytest.approx(3.9)


def test_a_dead_service_makes_its_metrics_unknown() -> None:
    agg = MetricsAggregator()
    agg.add_stats(1.0, stats(rejected=1))
    partial = stats(rejected=4, free=3)
    del partial["store"]
    agg.add_stats(2.0, partial)
    row = agg.sample(2.0)
    assert row["store_rejections"] is None
    assert row["store_queue_depth"] is None
    assert row["riders_free"] == 3
    agg.add_stats(3.0, stats(rejected=4))  # back: the delta spans the gap
    assert agg.sample(3.0)["store_rejections"] == 3


def test_failures_per_step_and_row_scaling() -> None:
    agg = MetricsAggregator()
    agg.add_tick(tick(1.0, failed_steps={"store": 4, "coupon": 1, "bogus": 9}))
    agg.add_tick(tick(1.5, failed_steps={"store": 2}))
    row = agg.sample(1.5)
    # (1.0, 1.5] covers half a second, so the row reaches back to the tick before: 6 in 1.5 s.
    assert row["failures.store"] == pytest.approx(6 / 1.5)
    assert row["failures.coupon"] == pytest.approx(1 / 1.5)
    assert row["failures.rider"] == 0
    assert agg.window("failures.store", 0.0, 2.0) == 6


def test_stale_engine_gives_unknown_rates_but_keeps_totals() -> None:
    agg = MetricsAggregator()
    agg.add_tick(tick(1.0))
    row = agg.sample(30.0)
    assert row["orders_per_s"] is None
    assert row["latency_p95_ms"] is None
    assert row["intents"] == 10


def test_late_tick_is_placed_in_time_order() -> None:
    agg = MetricsAggregator()
    agg.add_tick(tick(1.0, intents_started=1))
    agg.add_tick(tick(3.0, intents_started=3))
    agg.add_tick(tick(2.0, intents_started=2))
    assert agg.sample(2.0)["intents"] == 3
    assert agg.sample(3.0)["intents"] == 6
    assert agg.sample(3.0)["achieved_rate"] == pytest.approx(3.0)


def test_old_ranges_use_phase_histograms_else_weighted_per_second_values() -> None:
    agg = MetricsAggregator(ring_s=5.0)
    agg.mark_phase("baseline", 0.0)
    agg.mark_phase("during", 10.0)
    for t in range(1, 11):  # baseline: 9 s at 10 ms and 1 s at 1000 ms, 100 requests each
        ms = 1000 if t == 5 else 10
        agg.add_tick(tick(float(t), latency_hdr=hdr((ms, 100))))
    for t in range(11, 31):
        agg.add_tick(tick(float(t), latency_hdr=hdr((20, 100))))
    # (0, 10] fell out of the ring; it is the baseline phase, so its histogram answers
    # exactly: 10% of requests took 1000 ms (the mean of per-second p95s would say 109).
    assert agg.window("latency_p95_ms", 0.0, 10.0) == pytest.approx(1000, rel=0.001)
    assert agg.window("latency_p50_ms", 0.0, 10.0) == 10
    # (0, 4] is no phase and out of the ring: the weighted mean of per-second p99s.
    assert agg.window("latency_p99_ms", 0.0, 4.0) == 10
    assert agg.window("latency_p99_ms", 0.0, 5.0) == pytest.approx((4 * 10 + 1000) / 5, rel=0.01)
    # Recent ranges merge the ring.
    assert agg.window("latency_p95_ms", 27.0, 30.0) == 20
    assert agg.window("latency_p95_ms", 10.0, 30.0) == 20  # the open "during" phase


def test_series_keeps_every_sampled_row() -> None:
    agg = MetricsAggregator()
    agg.add_tick(tick(1.0))
    agg.sample(1.0)
    agg.sample(2.0)
    rows = agg.series()
    assert [r["t"] for r in rows] == [1.0, 2.0]
    assert rows[0]["orders"] == 8
    assert rows[0]["store_rejections"] is None


def test_ticks_and_stats_from_threads_add_up() -> None:
    agg = MetricsAggregator()

    def feed_ticks() -> None:
        for i in range(1, 201):
            agg.add_tick(tick(i * 0.1, intents_started=1, latency_hdr=""))

    def feed_stats() -> None:
        for i in range(1, 201):
            agg.add_stats(i * 0.1, stats(rejected=i))
            agg.sample(i * 0.1)

    threads = [threading.Thread(target=feed_ticks), threading.Thread(target=feed_stats)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    overall = agg.overall()
    assert overall["intents"] == 200
    assert overall["store_rejections"] == 199


def test_first_try_failure_rate_live_by_window_start_and_overall() -> None:
    agg = MetricsAggregator()
    # Second 0: 4 first tries, 3 failed (the re-clicks may still fulfil them: not counted).
    agg.add_tick(
        tick(1.0, first_tries=4, first_try_failed=3, by_start={"0:t": 4, "0:1": 3, "0:f": 4})
    )
    # Second 1: 6 first tries, 0 failed; a late answer for second 0's intents arrives here too.
    agg.add_tick(tick(2.0, first_tries=6, first_try_failed=0, by_start={"1:t": 6, "0:f": 0}))
    assert agg.sample(1.0)["first_try_failure_rate"] == pytest.approx(0.75)
    assert agg.sample(2.0)["first_try_failure_rate"] == 0.0
    # A window is judged by the intents that started in it, however late they ended.
    assert agg.window("first_try_failure_rate", 0.0, 1.0) == pytest.approx(0.75)
    assert agg.window("first_try_failure_rate", 1.0, 2.0) == 0.0
    assert agg.overall()["first_try_failure_rate"] == pytest.approx(0.3)
    # The first-try keys do not count as finished intents in fulfilment by start.
    assert agg.window("fulfilment_rate", 0.0, 1.0) == 1.0
