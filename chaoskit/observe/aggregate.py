"""One time series per metric, merged from the load engine's ticks and the services' /stats.

Client data (engine ticks) and server data (/stats snapshots) arrive on different
threads at about one per second each. Every tick and snapshot covers the time since
the one before it, so rates are counts / covered seconds, however the two clocks beat.

Memory stays bounded for long runs: per tick and per snapshot a few numbers are kept
(including that second's percentiles); the histograms themselves are kept per second
only for the last ``ring_s`` seconds (as hdrh strings / bucket counts), and merged into
one histogram per phase (``mark_phase``) and one for the whole run.
"""

from __future__ import annotations

import bisect
import math
import threading
from array import array
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from chaoskit.observe.histogram import LatencyHistogram, ServerHistogram
from chaoskit.observe.metrics import FAILURE_STEPS, SERIES_METRICS

__all__ = ["MetricsAggregator"]

Row = dict[str, float | None]

_BASE_SERIES = tuple(m for m in SERIES_METRICS if not m.startswith("failures."))
_PERCENTILE_METRICS = {
    "latency_p50_ms": ("latency", 50.0),
    "latency_p95_ms": ("latency", 95.0),
    "latency_p99_ms": ("latency", 99.0),
    "schedule_latency_p50_ms": ("schedule", 50.0),
    "schedule_latency_p95_ms": ("schedule", 95.0),
    "schedule_latency_p99_ms": ("schedule", 99.0),
    "fulfilment_time_p95_s": ("fulfilment", 95.0),
    "coupon_delay_p95_s": ("coupon", 95.0),
    "rider_wait_p95_s": ("rider", 95.0),
}
# Server histograms the metrics read: key -> (service, histogram name in its /stats).
_SERVER_HISTS = {"coupon": ("coupon", "coupon_delay_ms"), "rider": ("rider", "rider_wait_ms")}
_CLIENT_HISTS = ("latency", "schedule", "fulfilment")


@dataclass(slots=True)
class _Tick:
    """What one engine tick contributes (counts are deltas for the tick's interval)."""

    t: float
    dt: float
    target: float | None
    users: float | None
    started: int
    fulfilled: int
    failed: int
    abandoned: int
    requests: int
    request_errors: int
    first_tries: int
    first_try_failed: int
    steps: array[int]  # failures per the aggregator's failure_steps
    pcts: dict[str, tuple[float | None, int]]  # "latency_p95_ms" -> (value, observations)
    cum_started: int = 0
    cum_fulfilled: int = 0


@dataclass(slots=True)
class _Snap:
    """What one /stats round contributes: counter deltas, gauges, this interval's p95s."""

    t: float
    dt: float
    rejected: float | None
    paused_s: float | None
    queue_depth: float | None
    outbox_pending: float | None
    riders_free: float | None
    riders_busy: float | None
    pcts: dict[str, tuple[float | None, int]]


@dataclass(slots=True)
class _Phase:
    name: str
    start: float
    client: dict[str, LatencyHistogram] = field(default_factory=dict)
    server: dict[str, ServerHistogram] = field(default_factory=dict)


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _ratio(num: float, den: float) -> float | None:
    return num / den if den > 0 else None


def _mean(values: Iterable[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) / len(known) if known else None


def _weighted_pct(items: Iterable[tuple[float | None, int]]) -> float | None:
    """Observation-weighted mean of per-second percentiles: the fallback past the ring."""
    total = 0
    acc = 0.0
    for value, n in items:
        if value is not None and n:
            acc += value * n
            total += n
    return acc / total if total else None


class MetricsAggregator:
    """Merges engine ticks and /stats snapshots into per-second rows and window values.

    Rows (``sample``) carry every metric in ``series_metrics`` (SERIES_METRICS, with the
    run's own failure steps); counts there are per
    ``window_s`` seconds, cumulative metrics (intents, orders) are totals so far, gauges
    are the latest value. ``window`` and ``overall`` recompute rates and percentiles
    from merged counts and histograms; there, counts are totals in the window and
    gauges are means over it. None means unknown (no data, or no server stats).
    """

    def __init__(
        self,
        *,
        window_s: float = 1.0,
        ring_s: float = 900.0,
        stale_s: float | None = None,
        failure_steps: Sequence[str] = FAILURE_STEPS,
    ) -> None:
        # The run's journey names its steps (the stub stack's chain by default): each one is
        # a failures.<step> metric in the rows, the phases and the summary.
        self.failure_steps = tuple(dict.fromkeys(failure_steps))
        self._step_index = {step: i for i, step in enumerate(self.failure_steps)}
        self.series_metrics = (*_BASE_SERIES, *(f"failures.{s}" for s in self.failure_steps))
        self.window_s = window_s
        self.ring_s = ring_s
        self.stale_s = stale_s if stale_s is not None else max(3.0, 3 * window_s)
        self._lock = threading.RLock()
        self._ticks: list[_Tick] = []
        self._tick_ts: list[float] = []
        self._snaps: list[_Snap] = []
        self._snap_ts: list[float] = []
        # Last ``ring_s`` seconds of histograms: (t, {name: encoded hdrh}) and (t, {name: hist}).
        self._client_ring: deque[tuple[float, dict[str, str]]] = deque()
        self._server_ring: deque[tuple[float, dict[str, ServerHistogram]]] = deque()
        self._overall = _Phase("overall", -math.inf)
        self._phases: list[_Phase] = []
        self._prev_stats: dict[str, Mapping[str, Any]] = {}
        self._prev_hists: dict[str, ServerHistogram] = {}
        self._last_snap_t: float | None = None
        self._rows_t: list[float] = []
        self._rows: list[array[float]] = []
        # Ring entries older than this were dropped: ranges starting before it are not exact.
        self._ring_floor = {"client": -math.inf, "server": -math.inf}
        self._merge_cache: tuple[tuple[float, float, str], dict[str, float | None]] | None = None
        # The team's own metrics (PromQL queries): name -> how a window sums up its samples,
        # and every sample as (t, value); a value of None is "no data" at that time.
        self._ext_aggs: dict[str, str] = {}
        self._ext: dict[str, tuple[list[float], list[float | None]]] = {}
        self._ext_stale_s = self.stale_s
        self._ext_rows: list[tuple[float | None, ...]] = []
        # Intent outcomes by the whole second the intent started: [fulfilled, finished].
        # A phase is judged by what became of the intents that started in it, however late
        # they finished (a re-clicking buyer's failure lands seconds after the fault).
        self._by_start: dict[int, list[int]] = {}
        # First attempts by the second their intent started: [first tries, first-try failures].
        self._first_by_start: dict[int, list[int]] = {}

    # ---- input ---------------------------------------------------------------------------

    def mark_phase(self, name: str, t: float) -> None:
        """From ``t`` on, data also goes into phase ``name``'s merged histograms."""
        with self._lock:
            self._phases.append(_Phase(name, t))
            self._phases.sort(key=lambda p: p.start)

    def _phase_at(self, t: float) -> _Phase | None:
        """The phase whose (start, next start] holds ``t``: the same ends as ``window``."""
        found = None
        for phase in self._phases:
            if phase.start < t:
                found = phase
        return found

    def declare_external(self, aggregations: Mapping[str, str], *, interval_s: float) -> None:
        """Metrics sampled elsewhere (PromQL): name -> mean | min | max | last over a window."""
        with self._lock:
            self._ext_aggs = dict(aggregations)
            self._ext = {name: ([], []) for name in aggregations}
            # A value is current for a little over one sampling interval.
            self._ext_stale_s = max(self.stale_s, 2.5 * interval_s)

    @property
    def external_metrics(self) -> tuple[str, ...]:
        """The names ``declare_external`` added."""
        return tuple(self._ext_aggs)

    def add_external(self, t: float, values: Mapping[str, float | None]) -> None:
        """One round of external samples at run time ``t``."""
        with self._lock:
            for name, value in values.items():
                if name not in self._ext:
                    continue
                ts, vs = self._ext[name]
                i = bisect.bisect_right(ts, t)
                ts.insert(i, t)
                vs.insert(i, value)

    def _ext_latest(self, name: str, t: float) -> float | None:
        ts, vs = self._ext[name]
        i = bisect.bisect_right(ts, t) - 1
        if i < 0 or ts[i] < t - self._ext_stale_s:
            return None
        return vs[i]

    def _ext_window(self, name: str, t0: float, t1: float) -> float | None:
        ts, vs = self._ext[name]
        known = [
            v
            for v in vs[bisect.bisect_right(ts, t0) : bisect.bisect_right(ts, t1)]
            if v is not None
        ]
        if not known:
            return None
        agg = self._ext_aggs[name]
        if agg == "min":
            return min(known)
        if agg == "max":
            return max(known)
        if agg == "last":
            return known[-1]
        return sum(known) / len(known)

    def add_tick(self, tick: Mapping[str, Any]) -> None:
        """Take one engine ``tick`` line (see the load engine protocol)."""
        t = float(tick["t"])
        steps = array("q", [0] * len(self._step_index))
        for step, n in (tick.get("failed_steps") or {}).items():
            if step in self._step_index:
                steps[self._step_index[step]] += int(n)
        hists: dict[str, LatencyHistogram] = {}
        encoded: dict[str, str] = {}
        for name, key in (
            ("latency", "latency_hdr"),
            ("schedule", "schedule_latency_hdr"),
            ("fulfilment", "fulfilment_hdr"),
        ):
            blob = tick.get(key)
            if blob:
                try:
                    hist = LatencyHistogram.decode(blob)
                except (
                    Exception
                ):  # hdrh raises assorted errors; a bad blob must not cost the counts
                    continue
                if hist.count:
                    hists[name] = hist
                    encoded[name] = blob
        pcts: dict[str, tuple[float | None, int]] = {}
        for name in _CLIENT_HISTS:
            wanted = {m: q for m, (n, q) in _PERCENTILE_METRICS.items() if n == name}
            hist_or_none = hists.get(name)
            values = hist_or_none.percentiles(list(wanted.values())) if hist_or_none else {}
            count = hist_or_none.count if hist_or_none else 0
            for metric, q in wanted.items():
                pcts[metric] = (values.get(q), count)
        record = _Tick(
            t=t,
            dt=0.0,
            target=_num(tick.get("target")),
            users=_num(tick.get("users")),
            started=int(tick.get("intents_started", 0)),
            fulfilled=int(tick.get("fulfilled", 0)),
            failed=int(tick.get("failed", 0)),
            abandoned=int(tick.get("abandoned", 0)),
            requests=int(tick.get("requests", 0)),
            request_errors=int(tick.get("request_errors", 0)),
            first_tries=int(tick.get("first_tries", 0)),
            first_try_failed=int(tick.get("first_try_failed", 0)),
            steps=steps,
            pcts=pcts,
        )
        with self._lock:
            for key, n in (tick.get("by_start") or {}).items():
                second, _, kind = str(key).partition(":")
                try:
                    start = int(second)
                except ValueError:
                    continue
                if kind in ("t", "1"):
                    first = self._first_by_start.setdefault(start, [0, 0])
                    first[0 if kind == "t" else 1] += int(n)
                    continue
                slot = self._by_start.setdefault(start, [0, 0])
                slot[1] += int(n)
                if kind == "f":
                    slot[0] += int(n)
            i = bisect.bisect_right(self._tick_ts, t)
            self._tick_ts.insert(i, t)
            self._ticks.insert(i, record)
            self._relink_ticks(i)
            for name, hist in hists.items():
                for phase in (self._overall, self._phase_at(t)):
                    if phase is not None:
                        phase.client.setdefault(name, LatencyHistogram()).merge(hist)
            if encoded:
                self._client_ring.append((t, encoded))
                self._trim_ring("client")

    def _relink_ticks(self, i: int) -> None:
        """Fix coverage and running totals from tick ``i`` on (a late tick can land mid-list)."""
        for j in range(i, len(self._ticks)):
            tick = self._ticks[j]
            if j == 0:
                tick.dt = min(tick.t, self.window_s) if tick.t > 0 else self.window_s
                tick.cum_started, tick.cum_fulfilled = tick.started, tick.fulfilled
            else:
                prev = self._ticks[j - 1]
                tick.dt = tick.t - prev.t
                tick.cum_started = prev.cum_started + tick.started
                tick.cum_fulfilled = prev.cum_fulfilled + tick.fulfilled

    def _trim_ring(self, side: str) -> None:
        ring: deque[tuple[float, Any]] = (
            self._client_ring if side == "client" else self._server_ring
        )
        newest = ring[-1][0]
        while ring and ring[0][0] < newest - self.ring_s:
            self._ring_floor[side] = max(self._ring_floor[side], ring.popleft()[0])

    def add_stats(self, t: float, stats: Mapping[str, Mapping[str, Any]]) -> None:
        """Take one /stats round: service name -> its /stats JSON (dead services left out)."""
        with self._lock:
            dt = t - self._last_snap_t if self._last_snap_t is not None else self.window_s
            self._last_snap_t = t
            store = stats.get("store")
            gateway = stats.get("gateway")
            rider = stats.get("rider")
            rejected = self._counter_delta("store", store, "rejected")
            paused = self._counter_delta("store", store, "paused_seconds")
            hist_deltas: dict[str, ServerHistogram] = {}
            pcts: dict[str, tuple[float | None, int]] = {}
            for key, (service, hist_name) in _SERVER_HISTS.items():
                metric = "coupon_delay_p95_s" if key == "coupon" else "rider_wait_p95_s"
                pcts[metric] = (None, 0)
                raw = (stats.get(service) or {}).get("histograms", {}).get(hist_name)
                if raw is None:
                    continue
                current = ServerHistogram.from_json(raw)
                prev = self._prev_hists.get(key)
                self._prev_hists[key] = current
                if prev is None:
                    # The first snapshot is the baseline, as for counters.
                    continue
                delta = current.diff(prev)
                hist_deltas[key] = delta
                pcts[metric] = (delta.percentile(95.0), delta.count)
            for service, data in stats.items():
                self._prev_stats[service] = data
            snap = _Snap(
                t=t,
                dt=max(dt, 0.0),
                rejected=rejected,
                paused_s=paused,
                queue_depth=_gauge(store, "queue_depth"),
                outbox_pending=_gauge(gateway, "outbox_pending"),
                riders_free=_gauge(rider, "riders_free"),
                riders_busy=_gauge(rider, "riders_busy"),
                pcts=pcts,
            )
            i = bisect.bisect_right(self._snap_ts, t)
            self._snap_ts.insert(i, t)
            self._snaps.insert(i, snap)
            for key, delta in hist_deltas.items():
                for phase in (self._overall, self._phase_at(t)):
                    if phase is None:
                        continue
                    if key in phase.server:
                        phase.server[key].merge(delta)
                    else:
                        phase.server[key] = ServerHistogram(delta.bounds_ms, delta.counts)
            if hist_deltas:
                self._server_ring.append((t, hist_deltas))
                self._trim_ring("server")

    def _counter_delta(
        self, service: str, data: Mapping[str, Any] | None, name: str
    ) -> float | None:
        if data is None:
            return None
        now = _num((data.get("counters") or {}).get(name))
        if now is None:
            return None
        prev_data = self._prev_stats.get(service)
        prev = None if prev_data is None else _num((prev_data.get("counters") or {}).get(name))
        if prev is None:
            # The first snapshot is the baseline: what happened before the run is not its own.
            return 0.0
        return now - prev if now >= prev else now  # smaller: the service restarted

    # ---- output --------------------------------------------------------------------------

    def sample(self, t: float) -> Row:
        """The row for time ``t`` (seconds since t0): every series metric, None where unknown."""
        with self._lock:
            row = self._row(t)
            self._rows_t.append(t)
            self._rows.append(array("d", (_nan_if_none(row[m]) for m in self.series_metrics)))
            for name in self._ext:
                row[name] = self._ext_latest(name, t)
            self._ext_rows.append(tuple(row[name] for name in self._ext))
            return row

    def series(self) -> list[dict[str, float | None]]:
        """Every row ``sample`` produced, as {"t": ..., metric: value}."""
        with self._lock:
            out: list[dict[str, float | None]] = []
            for t, values, ext in zip(self._rows_t, self._rows, self._ext_rows, strict=True):
                row: dict[str, float | None] = {"t": t}
                for name, v in zip(self.series_metrics, values, strict=True):
                    row[name] = None if math.isnan(v) else v
                row.update(zip(self._ext, ext, strict=True))
                out.append(row)
            return out

    def window(self, metric: str, t0: float, t1: float) -> float | None:
        """``metric`` over (t0, t1]: rates and percentiles from merged counts and histograms.

        Percentiles need the histograms of the range: exact within the last ``ring_s``
        seconds or when (t0, t1] is a marked phase; for older arbitrary ranges they are
        the observation-weighted mean of the per-second percentiles.
        """
        with self._lock:
            if metric in self._ext:
                return self._ext_window(metric, t0, t1)
            return self._compute(t0, t1, only=metric).get(metric)

    def windows(self, t0: float, t1: float) -> Row:
        """Every series metric over (t0, t1] (see ``window``)."""
        with self._lock:
            return self._compute(t0, t1)

    def overall(self) -> Row:
        """Every series metric over the whole run; fulfilment_rate is fulfilled / started."""
        with self._lock:
            return self._compute(-math.inf, math.inf, overall=True)

    # ---- computing -----------------------------------------------------------------------

    def _row(self, t: float) -> Row:
        row: Row = dict.fromkeys(self.series_metrics)
        ti = bisect.bisect_right(self._tick_ts, t) - 1
        if ti >= 0:
            last_tick = self._ticks[ti]
            if last_tick.t >= t - self.stale_s:
                j, covered = self._cover(self._ticks, ti)
                ticks = self._ticks[j : ti + 1]
                pcts = self._pcts("client", ticks[0].t - ticks[0].dt, last_tick.t, ticks)
                row.update(self._client_values(ticks, pcts, scale=self.window_s / covered))
                row["target_load"] = last_tick.target
                row["users"] = last_tick.users
            # Cumulative, so known even when the engine has gone quiet.
            row["intents"] = float(last_tick.cum_started)
            row["orders"] = float(last_tick.cum_fulfilled)
        si = bisect.bisect_right(self._snap_ts, t) - 1
        if si >= 0 and self._snap_ts[si] >= t - self.stale_s:
            j, covered = self._cover(self._snaps, si)
            snaps = self._snaps[j : si + 1]
            pcts = self._pcts("server", snaps[0].t - snaps[0].dt, snaps[-1].t, snaps)
            row.update(self._server_values(snaps, pcts, scale=self.window_s / covered))
            last = self._snaps[si]
            row["store_queue_depth"] = last.queue_depth
            row["coupon_pending"] = last.outbox_pending
            row["riders_free"] = last.riders_free
            row["riders_busy"] = last.riders_busy
        return row

    def _cover(self, records: list[_Tick] | list[_Snap], i: int) -> tuple[int, float]:
        """Walk back from record ``i`` until ``window_s`` seconds are covered."""
        j = i
        covered = records[i].dt
        while covered < self.window_s * 0.99 and j > 0:
            j -= 1
            covered += records[j].dt
        return j, covered if covered > 0 else self.window_s

    def _compute(
        self, t0: float, t1: float, *, only: str | None = None, overall: bool = False
    ) -> Row:
        row: Row = dict.fromkeys(self.series_metrics)
        want_pct = only is None or only in _PERCENTILE_METRICS
        ticks = self._ticks[
            bisect.bisect_right(self._tick_ts, t0) : bisect.bisect_right(self._tick_ts, t1)
        ]
        if ticks:
            pcts = self._pcts("client", t0, t1, ticks, overall=overall) if want_pct else {}
            row.update(self._client_values(ticks, pcts, scale=1.0))
            row["target_load"] = _mean(k.target for k in ticks)
            row["users"] = _mean(k.users for k in ticks)
            if overall:
                started = sum(k.started for k in ticks)
                row["fulfilment_rate"] = _ratio(sum(k.fulfilled for k in ticks), started)
            elif self._by_start:
                row["fulfilment_rate"] = self._fulfilment_by_start(t0, t1)
            if self._first_by_start:
                # Judged by the intents that started in the window, as fulfilment is.
                lo, hi = (-math.inf, math.inf) if overall else (t0, t1)
                row["first_try_failure_rate"] = self._first_try_by_start(lo, hi)
        snaps = self._snaps[
            bisect.bisect_right(self._snap_ts, t0) : bisect.bisect_right(self._snap_ts, t1)
        ]
        if snaps:
            pcts = self._pcts("server", t0, t1, snaps, overall=overall) if want_pct else {}
            row.update(self._server_values(snaps, pcts, scale=1.0))
            row["store_queue_depth"] = _mean(s.queue_depth for s in snaps)
            row["coupon_pending"] = _mean(s.outbox_pending for s in snaps)
            row["riders_free"] = _mean(s.riders_free for s in snaps)
            row["riders_busy"] = _mean(s.riders_busy for s in snaps)
        if only is None:
            for name in self._ext:
                row[name] = self._ext_window(name, t0, t1)
        return row

    def _fulfilment_by_start(self, t0: float, t1: float) -> float | None:
        """Fulfilled / finished among intents that started in [t0, t1)."""
        fulfilled = finished = 0
        for second, (f, n) in self._by_start.items():
            if t0 <= second < t1:
                fulfilled += f
                finished += n
        return _ratio(fulfilled, finished)

    def _first_try_by_start(self, t0: float, t1: float) -> float | None:
        """First-try failures / first tries among intents that started in [t0, t1)."""
        tries = failed = 0
        for second, (n, f) in self._first_by_start.items():
            if t0 <= second < t1:
                tries += n
                failed += f
        return _ratio(failed, tries)

    def _client_values(self, ticks: list[_Tick], pcts: Row, *, scale: float) -> Row:
        started = sum(k.started for k in ticks)
        fulfilled = sum(k.fulfilled for k in ticks)
        finished = fulfilled + sum(k.failed + k.abandoned for k in ticks)
        requests = sum(k.requests for k in ticks)
        errors = sum(k.request_errors for k in ticks)
        covered = sum(k.dt for k in ticks)
        row: Row = {
            "intents": float(started),
            "orders": float(fulfilled),
            "orders_per_s": _ratio(fulfilled, covered),
            "achieved_rate": _ratio(started, covered),
            "fulfilment_rate": _ratio(fulfilled, finished),
            "retry_amplification": _ratio(requests, started),
            "error_rate": _ratio(errors, requests),
            "first_try_failure_rate": _ratio(
                sum(k.first_try_failed for k in ticks), sum(k.first_tries for k in ticks)
            ),
        }
        for step, idx in self._step_index.items():
            row[f"failures.{step}"] = sum(k.steps[idx] for k in ticks) * scale
        row.update(pcts)
        return row

    def _server_values(self, snaps: list[_Snap], pcts: Row, *, scale: float) -> Row:
        rejected = [s.rejected for s in snaps if s.rejected is not None]
        paused = [s.paused_s for s in snaps if s.paused_s is not None]
        row: Row = {
            "store_rejections": sum(rejected) * scale if rejected else None,
            "store_paused_s": sum(paused) * scale if paused else None,
        }
        row.update(pcts)
        return row

    def _pcts(
        self,
        side: str,
        t0: float,
        t1: float,
        records: list[_Tick] | list[_Snap],
        *,
        overall: bool = False,
    ) -> Row:
        """Percentile metrics of one side over (t0, t1], from the cheapest exact source.

        Sources in order: one record's own percentiles; the run's or a phase's merged
        histograms; the ring merged; past the ring, the weighted mean of per-second values.
        """
        metrics = {
            m: spec
            for m, spec in _PERCENTILE_METRICS.items()
            if (spec[0] in _CLIENT_HISTS) == (side == "client")
        }
        if len(records) == 1 and not overall:
            return {m: _to_unit(m, records[0].pcts.get(m, (None, 0))[0]) for m in metrics}
        phase = self._overall if overall else self._matching_phase(t0, t1)
        if phase is not None:
            hists: Mapping[str, LatencyHistogram | ServerHistogram]
            hists = phase.client if side == "client" else phase.server
            return {m: _hist_pct(m, hists.get(name), q) for m, (name, q) in metrics.items()}
        if self._ring_floor[side] <= t0:
            return self._merge_ring(side, t0, t1, metrics)
        return {
            m: _to_unit(m, _weighted_pct(r.pcts.get(m, (None, 0)) for r in records))
            for m in metrics
        }

    def _matching_phase(self, t0: float, t1: float) -> _Phase | None:
        tolerance = max(1.0, self.window_s)
        for i, phase in enumerate(self._phases):
            end = self._phases[i + 1].start if i + 1 < len(self._phases) else math.inf
            end_ok = abs(end - t1) <= tolerance or (math.isinf(end) and t1 >= self._latest())
            if abs(phase.start - t0) <= tolerance and end_ok:
                return phase
        return None

    def _latest(self) -> float:
        ticks = self._tick_ts[-1] if self._tick_ts else -math.inf
        snaps = self._snap_ts[-1] if self._snap_ts else -math.inf
        return max(ticks, snaps)

    def _merge_ring(
        self, side: str, t0: float, t1: float, metrics: Mapping[str, tuple[str, float]]
    ) -> Row:
        key = (t0, t1, side)
        if self._merge_cache is not None and self._merge_cache[0] == key:
            return dict(self._merge_cache[1])
        merged: dict[str, Any] = {}
        if side == "client":
            for t, encoded in self._client_ring:
                if t0 < t <= t1:
                    for name, blob in encoded.items():
                        merged.setdefault(name, LatencyHistogram()).merge_encoded(blob)
        else:
            for t, server_hists in self._server_ring:
                if t0 < t <= t1:
                    for name, hist in server_hists.items():
                        if name in merged:
                            merged[name].merge(hist)
                        else:
                            merged[name] = ServerHistogram(hist.bounds_ms, hist.counts)
        out = {m: _hist_pct(m, merged.get(name), q) for m, (name, q) in metrics.items()}
        self._merge_cache = (key, out)
        return dict(out)


def _hist_pct(
    metric: str, hist: LatencyHistogram | ServerHistogram | None, q: float
) -> float | None:
    return None if hist is None else _to_unit(metric, hist.percentile(q))


def _gauge(data: Mapping[str, Any] | None, name: str) -> float | None:
    if data is None:
        return None
    return _num((data.get("gauges") or {}).get(name))


def _nan_if_none(value: float | None) -> float:
    return math.nan if value is None else value


def _to_unit(metric: str, ms: float | None) -> float | None:
    if ms is None:
        return None
    return ms / 1000.0 if metric.endswith("_s") else ms
