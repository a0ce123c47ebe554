"""LatencyHistogram (hdrh) and ServerHistogram (the services' /stats buckets)."""

from __future__ import annotations

import random

import pytest
from hdrh.histogram import HdrHistogram

from chaoskit.observe.histogram import HIGHEST_MS, LatencyHistogram, ServerHistogram


def test_percentiles_of_known_values() -> None:
    hist = LatencyHistogram()
    for ms in range(1, 1001):
        hist.add(ms)
    assert hist.count == 1000
    assert hist.percentile(50) == pytest.approx(500, rel=0.002)
    assert hist.percentile(95) == pytest.approx(950, rel=0.002)
    assert hist.percentiles([50, 99]) == {50: hist.percentile(50), 99: hist.percentile(99)}


def test_empty_histogram_has_no_percentile() -> None:
    hist = LatencyHistogram()
    assert hist.count == 0
    assert hist.percentile(95) is None
    assert hist.max is None
    assert hist.percentiles([50]) == {50: None}


def test_engine_encoding_round_trips_and_merges() -> None:
    # The engine encodes plain hdrh histograms; decode them as it does.
    engine_a = HdrHistogram(1, 3_600_000, 3)
    engine_b = HdrHistogram(1, 3_600_000, 3)
    for _ in range(90):
        engine_a.record_value(10)
    for _ in range(10):
        engine_b.record_value(2000)
    merged = LatencyHistogram.decode(engine_a.encode())
    merged.merge(LatencyHistogram.decode(engine_b.encode()))
    assert merged.count == 100
    assert merged.percentile(50) == 10
    assert merged.percentile(95) == pytest.approx(2000, rel=0.001)
    again = LatencyHistogram()
    again.merge_encoded(merged.encode())
    assert again.count == 100
    assert again.percentile(95) == merged.percentile(95)


def test_out_of_range_values_are_clamped_not_dropped() -> None:
    hist = LatencyHistogram()
    hist.add(-5)
    hist.add(10 * HIGHEST_MS)
    assert hist.count == 2
    assert hist.max == pytest.approx(HIGHEST_MS, rel=0.001)


BOUNDS = [1.0, 2.0, 4.0, 8.0]


def test_server_histogram_diff_gives_the_interval_counts() -> None:
    before = ServerHistogram(BOUNDS, [5, 0, 0, 0, 0])
    after = ServerHistogram(BOUNDS, [5, 0, 10, 0, 0])
    window = after.diff(before)
    assert window.counts == [0, 0, 10, 0, 0]
    assert window.count == 10
    # All ten values sit in (2, 4]: p50 interpolates to the bucket's middle.
    assert window.percentile(50) == pytest.approx(3.0)
    assert window.percentile(100) == pytest.approx(4.0)


def test_server_histogram_restart_counts_from_zero() -> None:
    before = ServerHistogram(BOUNDS, [50, 50, 0, 0, 0])
    after_restart = ServerHistogram(BOUNDS, [0, 3, 0, 0, 0])
    assert after_restart.diff(before).counts == [0, 3, 0, 0, 0]


def test_server_histogram_overflow_and_empty() -> None:
    assert ServerHistogram(BOUNDS, [0] * 5).percentile(95) is None
    assert ServerHistogram(BOUNDS, [0, 0, 0, 0, 4]).percentile(50) == 8.0


def test_server_histogram_merge_and_json() -> None:
    a = ServerHistogram.from_json(
        {"bounds_ms": BOUNDS, "counts": [1, 0, 0, 0, 0], "count": 1, "sum_ms": 1, "max_ms": 1}
    )
    b = ServerHistogram(BOUNDS, [0, 0, 0, 3, 0], max_ms=7.5)
    a.merge(b)
    assert a.counts == [1, 0, 0, 3, 0]
    assert a.max_ms == 7.5
    with pytest.raises(ValueError, match="counts"):
        ServerHistogram(BOUNDS, [1, 2])
    with pytest.raises(ValueError, match="bounds"):
        a.merge(ServerHistogram([1.0], [0, 0]))


def test_fast_percentiles_agree_with_hdrh() -> None:
    rng = random.Random(11)
    for _ in range(50):
        hist = LatencyHistogram()
        for _ in range(rng.randint(1, 200)):
            hist.add(
                rng.choice([rng.randint(0, 50), rng.randint(900, 5000), rng.randint(0, HIGHEST_MS)])
            )
        reference = LatencyHistogram.decode(hist.encode())._hdr
        for q in (0, 1, 50, 95, 99, 99.9, 100):
            assert hist.percentile(q) == reference.get_value_at_percentile(q)
