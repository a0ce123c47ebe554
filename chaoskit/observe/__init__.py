"""Metrics (client ticks + server /stats, merged per second), and the post-run audit."""

from chaoskit.observe.aggregate import MetricsAggregator
from chaoskit.observe.audit import AuditResult, DrainResult, InvariantResult, drain, run_audit
from chaoskit.observe.histogram import LatencyHistogram, ServerHistogram
from chaoskit.observe.metrics import (
    AUDIT_METRICS,
    FAILURE_STEPS,
    METRICS,
    SERIES_METRICS,
    MetricInfo,
    is_known_metric,
)
from chaoskit.observe.sampler import StatsSampler

__all__ = [
    "AUDIT_METRICS",
    "FAILURE_STEPS",
    "METRICS",
    "SERIES_METRICS",
    "AuditResult",
    "DrainResult",
    "InvariantResult",
    "LatencyHistogram",
    "MetricInfo",
    "MetricsAggregator",
    "ServerHistogram",
    "StatsSampler",
    "drain",
    "is_known_metric",
    "run_audit",
]
