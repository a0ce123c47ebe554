"""The team's metrics in: PromQL queries sampled through Prometheus' HTTP API during a run.

Each query must answer one number (a scalar, or an instant vector of at most one series).
An empty vector is "no data" (None), never zero. Every query is checked once before the
load starts (``check_queries``): an unreachable Prometheus, or one that refuses the
credentials in ``headers`` (HTTP 401/403), is an environment problem (exit 4); a query
Prometheus refuses is bad input (exit 2, with Prometheus' own message). Header values stay
``${ENV_VAR}`` templates everywhere but in the request (``chaoskit._secrets``).
"""

from __future__ import annotations

import logging
import math
import os
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from chaoskit._secrets import expand_headers, header_problem
from chaoskit.errors import CredentialsRefused, InputError, TargetUnreachable
from chaoskit.experiment.durations import PositiveDuration
from chaoskit.observe.metrics import METRICS

if TYPE_CHECKING:  # httpx is imported where a query is sent: the settings models stay light
    import httpx


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


def problem(message: str, *loc: str | int) -> PydanticCustomError:
    """A validation problem at ``loc`` below the model that raises it."""
    return PydanticCustomError("experiment", "{message}", {"message": message, "loc": loc})


__all__ = [
    "Aggregation",
    "PromQuery",
    "PrometheusSampler",
    "PrometheusSource",
    "MetricsSettings",
    "PromQuerySpec",
    "PrometheusMetrics",
    "base_url_problem",
    "check_queries",
    "merge_sources",
    "query_value",
]

log = logging.getLogger(__name__)

Aggregation = Literal["mean", "min", "max", "last"]
OnValues = Callable[[float, dict[str, float | None]], None]


@dataclass(frozen=True, slots=True)
class PromQuery:
    """One named PromQL query and how a phase's samples of it become one number."""

    name: str
    query: str
    agg: Aggregation = "mean"


@dataclass(frozen=True, slots=True, kw_only=True)
class PrometheusSource:
    """Where the queries go and how often: the merged ``metrics.prometheus`` of a run."""

    url: str  # base URL, without /api/v1
    interval_s: float
    queries: tuple[PromQuery, ...]
    headers: Mapping[str, str] = field(default_factory=dict)
    """Sent with every query; values are ``${ENV_VAR}`` templates, expanded per client."""

    def request_headers(self, environ: Mapping[str, str] | None = None) -> dict[str, str]:
        """The headers with their secrets filled in from ``environ`` (default: os.environ)."""
        env = os.environ if environ is None else environ
        return expand_headers(self.headers, env, needed_by="metrics.prometheus.headers")

    @property
    def host(self) -> str:
        """The host the sampler talks to (for the allow-list)."""
        return (urlsplit(self.url).hostname or "").lower()

    @property
    def names(self) -> tuple[str, ...]:
        """The metric names the queries add."""
        return tuple(q.name for q in self.queries)

    def aggregations(self) -> dict[str, Aggregation]:
        """Metric name -> how a window of its samples is summed up."""
        return {q.name: q.agg for q in self.queries}


# ---------------------------------------------------------------- the YAML block

_QUERY_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


class PromQuerySpec(_Model):
    """A PromQL query and how a phase's samples of it become one number."""

    query: str = Field(min_length=1)
    agg: Literal["mean", "min", "max", "last"] = "mean"


class PrometheusMetrics(_Model):
    """`metrics.prometheus`: PromQL queries sampled into the run's time series."""

    url: str
    interval: PositiveDuration = 2.0
    queries: dict[str, str | PromQuerySpec] = Field(min_length=1)
    # Sent with every query (a bearer token, basic auth): values name ${ENV_VAR}s.
    headers: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _checked(self) -> PrometheusMetrics:
        message = base_url_problem(self.url)
        if message:
            raise problem(message, "url")
        for name, value in self.headers.items():
            message = header_problem(name, value)
            if message:
                raise problem(message, "headers", name)
        for name, spec in self.queries.items():
            if not _QUERY_NAME.match(name):
                raise problem(
                    f'"{name}": a query name is letters, digits and _ (a PromQL-style name)',
                    "queries",
                    name,
                )
            if name in METRICS:
                raise problem(
                    f'"{name}" is a built-in metric; give the query another name',
                    "queries",
                    name,
                )
            if isinstance(spec, str) and not spec.strip():
                raise problem("expected a PromQL query", "queries", name)
        return self

    def specs(self) -> dict[str, PromQuerySpec]:
        """Every query in its long form."""
        return {
            name: spec if isinstance(spec, PromQuerySpec) else PromQuerySpec(query=spec)
            for name, spec in self.queries.items()
        }


class MetricsSettings(_Model):
    """`metrics`: where the team's own metrics come from."""

    prometheus: PrometheusMetrics | None = None

    def names(self) -> tuple[str, ...]:
        """The metric names this block adds."""
        return tuple(self.prometheus.queries) if self.prometheus is not None else ()


def base_url_problem(value: str) -> str:
    """Why ``value`` is not an http(s) base URL without credentials ('' when it is one)."""
    if "${" in value:
        return "${...} is expanded in secrets only; give the URL itself"
    try:
        parts = urlsplit(value)
        _ = parts.port
    except ValueError:
        return "expected an http(s) URL like http://host:port"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "expected an http(s) URL like http://host:port"
    if parts.username is not None or parts.password is not None:
        return "a URL must not carry credentials"
    return ""


class _QueryRefused(Exception):
    """Prometheus answered, but refused the query (bad PromQL, too many series)."""


class _CredentialsRefused(Exception):
    """Prometheus (or a proxy in front of it) answered 401/403: the headers were not enough."""


def query_value(client: httpx.Client, url: str, query: str) -> float | None:
    """The query's current value: None when it has no data.

    Raises ``httpx.HTTPError`` when Prometheus cannot be reached, ``_CredentialsRefused`` on
    HTTP 401/403, and ``_QueryRefused`` with Prometheus' message when it answers with an error
    or an answer that is not one number.
    """
    response = client.get(f"{url}/api/v1/query", params={"query": query})
    if response.status_code in (401, 403):
        # Before the body: an auth proxy's JSON error is not Prometheus refusing the query.
        raise _CredentialsRefused(f"HTTP {response.status_code}")
    try:
        body = response.json()
    except ValueError:
        response.raise_for_status()
        raise _QueryRefused(f"HTTP {response.status_code}: the answer is not JSON") from None
    if not isinstance(body, dict):
        raise _QueryRefused("the answer is not a Prometheus API response")
    if body.get("status") != "success":
        raise _QueryRefused(str(body.get("error") or f"HTTP {response.status_code}"))
    data = body.get("data") or {}
    kind = data.get("resultType")
    result = data.get("result")
    if kind == "scalar":
        return _number(result)
    if kind == "vector" and isinstance(result, list):
        if not result:
            return None
        if len(result) > 1:
            raise _QueryRefused(
                f"it returns {len(result)} series; a metric is one number: aggregate them "
                "(for example sum(...) or max(...))"
            )
        return _number(result[0].get("value"))
    raise _QueryRefused(f"it returns a {kind}; expected a scalar or a one-series vector")


def _number(pair: Any) -> float | None:
    if not isinstance(pair, list) or len(pair) != 2:
        return None
    try:
        value = float(pair[1])
    except (TypeError, ValueError):
        return None
    return None if math.isnan(value) else value


def check_queries(
    source: PrometheusSource,
    *,
    environ: Mapping[str, str] | None = None,
    timeout_s: float = 5.0,
) -> dict[str, float | None]:
    """Run every query once, before any load: the values now, or a clear error.

    ``environ``: where the headers' ``${ENV_VAR}``s are read (default: os.environ).
    """
    import httpx

    values: dict[str, float | None] = {}
    headers = source.request_headers(environ)
    with httpx.Client(timeout=httpx.Timeout(timeout_s), trust_env=False, headers=headers) as client:
        for query in source.queries:
            try:
                values[query.name] = query_value(client, source.url, query.query)
            except httpx.HTTPError as exc:
                raise TargetUnreachable(
                    f"Prometheus at {source.url} cannot be reached: {exc}"
                ) from exc
            except _CredentialsRefused as exc:
                given = ", ".join(source.headers) or "none"
                raise CredentialsRefused(
                    f"Prometheus at {source.url} refused the credentials ({exc}; headers sent: "
                    f"{given}): check metrics.prometheus.headers and the variables they name"
                ) from None
            except _QueryRefused as exc:
                raise InputError(
                    f"metrics.prometheus.queries.{query.name}: Prometheus refused "
                    f"{query.query!r}: {exc}"
                ) from None
    return values


class PrometheusSampler:
    """Samples every query each ``interval_s`` on its own thread; hands ``on_values(t, ...)``.

    Nothing Prometheus does raises into the run: a round that fails gives None (no data)
    for the queries it could not read, and the failures are counted.
    """

    def __init__(
        self,
        source: PrometheusSource,
        *,
        on_values: OnValues,
        clock: Callable[[], float] = time.monotonic,
        timeout_s: float | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.source = source
        self._environ = environ
        self._on_values = on_values
        self._clock = clock
        self._timeout_s = timeout_s if timeout_s is not None else min(2.0, source.interval_s)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.rounds = 0
        self.failures: dict[str, int] = {}
        self.last_error: str = ""

    def start(self) -> None:
        """Begin sampling on a daemon thread."""
        if self._thread is not None or not self.source.queries:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="chaoskit-prom", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 3.0) -> None:
        """Stop sampling and wait for the thread (at most ``timeout_s``)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    def sample_once(self, client: httpx.Client) -> dict[str, float | None]:
        """One round: every query once, then ``on_values``."""
        import httpx

        t = self._clock()
        values: dict[str, float | None] = {}
        for query in self.source.queries:
            try:
                values[query.name] = query_value(client, self.source.url, query.query)
            except (httpx.HTTPError, _QueryRefused, _CredentialsRefused) as exc:
                values[query.name] = None
                self.failures[query.name] = self.failures.get(query.name, 0) + 1
                self.last_error = f"{query.name}: {exc}"
        self.rounds += 1
        try:
            self._on_values(t, values)
        except Exception:  # the consumer's bug must not stop sampling
            log.exception("prometheus consumer failed")
        return values

    def _run(self) -> None:
        import httpx

        try:
            headers = self.source.request_headers(self._environ)
        except InputError as exc:  # checked before the run; gone since: no data, never a crash
            self.last_error = str(exc)
            headers = {}
        timeout = httpx.Timeout(self._timeout_s)
        with httpx.Client(timeout=timeout, trust_env=False, headers=headers) as client:
            next_at = time.monotonic()
            while not self._stop.is_set():
                self.sample_once(client)
                next_at += self.source.interval_s
                now = time.monotonic()
                if next_at < now:
                    next_at = now
                self._stop.wait(next_at - now)


def merge_sources(*blocks: MetricsSettings | None) -> PrometheusSource | None:
    """The run's Prometheus source: the target's block, then the experiment's (later wins).

    url and interval come from the last block that has them; queries are merged by name;
    headers by name too, but only from the blocks naming that same url: a token meant for
    one Prometheus is never sent to another.
    """
    url: str | None = None
    interval = 2.0
    queries: dict[str, PromQuery] = {}
    present = [b.prometheus for b in blocks if b is not None and b.prometheus is not None]
    for prometheus in present:
        url = prometheus.url.rstrip("/")
        interval = prometheus.interval
        for name, spec in prometheus.specs().items():
            queries[name] = PromQuery(name=name, query=spec.query, agg=spec.agg)
    if url is None or not queries:
        return None
    headers: dict[str, str] = {}
    for prometheus in present:
        if prometheus.url.rstrip("/") == url:
            headers.update(prometheus.headers)
    return PrometheusSource(
        url=url, interval_s=interval, queries=tuple(queries.values()), headers=headers
    )
