"""The run's own metrics out (``--metrics-port``): served for the team's Prometheus to scrape.

An event handler plus a tick consumer: it keeps a few counters and gauges under a lock and
turns them into Prometheus metric families at scrape time (``prometheus-client``'s custom
collector), so the team sees the fault windows beside its own service metrics.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from chaoskit.errors import InputError
from chaoskit.events import (
    Event,
    FaultApplied,
    FaultFailed,
    FaultRemoved,
    FaultRequested,
    PhaseChanged,
    Sample,
)
from chaoskit.observe.histogram import LatencyHistogram
from chaoskit.observe.metrics import FAILURE_STEPS

__all__ = ["LATENCY_BUCKETS_S", "MetricsExporter", "RunMetrics", "check_port_free"]

# Request latency buckets (seconds): a flash sale's interesting range is 5 ms .. 10 s.
LATENCY_BUCKETS_S: tuple[float, ...] = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
PHASES = ("baseline", "during", "recovery", "drain")
_GAUGES = {
    "fulfilment_rate": "chaoskit_fulfilment_rate",
    "target_load": "chaoskit_target_load",
    "achieved_rate": "chaoskit_achieved_rate",
    "users": "chaoskit_users",
    "error_rate": "chaoskit_error_rate",
}


class RunMetrics(Collector):
    """What the run has done so far, as Prometheus metric families (read at each scrape)."""

    def __init__(
        self,
        *,
        run_id: str,
        experiment: str,
        faults: Mapping[str, tuple[str, str]] | None = None,
    ) -> None:
        """``faults``: name -> (kind, dependency or target), served as 0 until applied."""
        self.run_id = run_id
        self.experiment = experiment
        self._lock = threading.Lock()
        self._intents = 0
        self._orders = 0
        self._requests = 0
        self._failures: dict[str, int] = dict.fromkeys(FAILURE_STEPS, 0)
        self._latency = LatencyHistogram()  # every request of the run, in ms
        self._gauges: dict[str, float] = {}
        self._phase = "baseline"
        self._faults: dict[str, tuple[str, str]] = dict(faults or {})
        self._active: dict[str, float] = dict.fromkeys(self._faults, 0.0)

    # ---- input ---------------------------------------------------------------------------
    def handle(self, event: Event) -> None:
        """The event handler side: samples, phases, fault windows."""
        with self._lock:
            if isinstance(event, Sample):
                for name in _GAUGES:
                    value = event.metrics.get(name)
                    if isinstance(value, int | float):
                        self._gauges[name] = float(value)
                    else:
                        self._gauges.pop(name, None)
            elif isinstance(event, PhaseChanged):
                self._phase = str(event.phase)
            elif isinstance(event, FaultRequested):
                self._faults[event.name] = (event.kind, event.target)
                self._active.setdefault(event.name, 0.0)
            elif isinstance(event, FaultApplied):
                self._faults.setdefault(event.name, (event.kind, event.target))
                self._active[event.name] = 1.0
            elif isinstance(event, FaultRemoved | FaultFailed):
                self._active[event.name] = 0.0

    def add_tick(self, tick: Mapping[str, Any]) -> None:
        """The load engine's tick: counts, and its latency histogram merged into the run's."""
        with self._lock:
            self._intents += int(tick.get("intents_started", 0))
            self._orders += int(tick.get("fulfilled", 0))
            self._requests += int(tick.get("requests", 0))
            for step, n in (tick.get("failed_steps") or {}).items():
                self._failures[str(step)] = self._failures.get(str(step), 0) + int(n)
            blob = tick.get("latency_hdr")
            if blob:
                # Merged here (~1 ms); the buckets are read from it only when scraped.
                with contextlib.suppress(Exception):  # hdrh raises assorted errors
                    self._latency.merge_encoded(str(blob))

    # ---- output --------------------------------------------------------------------------
    def collect(self) -> Iterator[Metric]:
        """The metric families, as of now."""
        with self._lock:
            run = GaugeMetricFamily(
                "chaoskit_run_info", "the run this driver plays", labels=["run_id", "experiment"]
            )
            run.add_metric([self.run_id, self.experiment], 1.0)
            yield run
            yield CounterMetricFamily(
                "chaoskit_intents", "order intents started by clients", value=self._intents
            )
            yield CounterMetricFamily(
                "chaoskit_orders", "orders confirmed to clients", value=self._orders
            )
            yield CounterMetricFamily(
                "chaoskit_requests", "HTTP requests sent", value=self._requests
            )
            failures = CounterMetricFamily(
                "chaoskit_failures",
                "intent attempts that failed, by the step they failed at",
                labels=["step"],
            )
            for step, n in self._failures.items():
                failures.add_metric([step], n)
            yield failures
            for metric, name in _GAUGES.items():
                gauge = GaugeMetricFamily(name, f"the run's {metric} (last second)")
                if metric in self._gauges:
                    gauge.add_metric([], self._gauges[metric])
                yield gauge
            at_or_below = self._latency.counts_at_or_below([b * 1000 for b in LATENCY_BUCKETS_S])
            buckets: list[tuple[str, float]] = [
                (repr(bound), float(n))
                for bound, n in zip(LATENCY_BUCKETS_S, at_or_below, strict=True)
            ]
            buckets.append(("+Inf", float(self._latency.count)))
            yield HistogramMetricFamily(
                "chaoskit_request_latency_seconds",
                "HTTP request latency seen by clients",
                buckets=buckets,
                sum_value=self._latency.sum_ms / 1000.0,
            )
            phase = GaugeMetricFamily(
                "chaoskit_phase", "1 for the run's current phase", labels=["phase"]
            )
            for name in PHASES:
                phase.add_metric([name], 1.0 if name == self._phase else 0.0)
            yield phase
            active = GaugeMetricFamily(
                "chaoskit_fault_active",
                "1 while a fault is applied",
                labels=["fault", "kind", "dependency"],
            )
            for name, value in self._active.items():
                kind, target = self._faults.get(name, ("", ""))
                active.add_metric([name, kind, target], value)
            yield active


def check_port_free(port: int, host: str = "127.0.0.1") -> None:
    """Refuse (exit 2) a --metrics-port something else already listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise InputError(
                f"--metrics-port {port}: cannot listen on {host}: {exc.strerror or exc}"
            ) from None


class MetricsExporter:
    """Serves a ``RunMetrics`` on ``host:port`` (loopback by default) while a run is on."""

    def __init__(self, metrics: RunMetrics, *, port: int, host: str = "127.0.0.1") -> None:
        self.metrics = metrics
        self.port = port
        self.host = host
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(metrics)
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Listen now; a port in use is bad input (exit 2)."""
        try:
            self._server, self._thread = start_http_server(
                self.port, addr=self.host, registry=self.registry
            )
        except OSError as exc:
            raise InputError(
                f"--metrics-port {self.port}: cannot listen on {self.host}: {exc.strerror or exc}"
            ) from None

    def stop(self) -> None:
        """Stop serving."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(2.0)
            self._thread = None
