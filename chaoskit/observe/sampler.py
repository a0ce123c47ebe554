"""Reads every service's /stats about once a second, in parallel, on its own thread."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

__all__ = ["StatsSampler"]

log = logging.getLogger(__name__)

_REFUSED = object()  # nothing listens: the service is gone, not merely slow

OnSample = Callable[[float, dict[str, dict[str, Any]]], None]


class StatsSampler:
    """Polls ``/stats`` of each service and hands every round to ``on_sample(t, stats)``.

    A service that does not answer in ``timeout_s`` (or answers badly) is left out of
    that round's dict; nothing the services do raises into the run.
    """

    def __init__(
        self,
        services: Mapping[str, str],
        *,
        on_sample: OnSample,
        interval_s: float = 1.0,
        timeout_s: float = 0.8,
        clock: Callable[[], float] = time.monotonic,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.services = {name: url.rstrip("/") for name, url in services.items()}
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self._on_sample = on_sample
        self._clock = clock
        self._headers = dict(headers or {})
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.rounds = 0
        self.failures: dict[str, int] = {}
        # service -> clock time of the first of its current run of refused connections
        # (a stopped process refuses; a busy one times out, and that is not "gone").
        self.refused_since: dict[str, float] = {}
        self.refused_rounds: dict[str, int] = {}

    def start(self) -> None:
        """Begin sampling on a daemon thread (a no-op without services)."""
        if self._thread is not None or not self.services:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="chaoskit-stats", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 3.0) -> None:
        """Stop sampling and wait for the thread (at most ``timeout_s``)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    def sample_once(self, client: httpx.Client, pool: ThreadPoolExecutor) -> None:
        """One round: GET every /stats in parallel, then call ``on_sample``."""
        t = self._clock()
        futures = {name: pool.submit(self._get, client, url) for name, url in self.services.items()}
        stats: dict[str, dict[str, Any]] = {}
        for name, future in futures.items():
            result = future.result()  # _get never raises and is bounded by the client timeout
            if result is _REFUSED:
                self.refused_since.setdefault(name, t)
                self.refused_rounds[name] = self.refused_rounds.get(name, 0) + 1
            else:
                self.refused_since.pop(name, None)
                self.refused_rounds.pop(name, None)
            if isinstance(result, dict):
                stats[name] = result
            else:
                self.failures[name] = self.failures.get(name, 0) + 1
        self.rounds += 1
        try:
            self._on_sample(t, stats)
        except Exception:  # the consumer's bug must not stop sampling
            log.exception("stats consumer failed")

    def unreachable(self, rounds: int = 2) -> dict[str, float]:
        """Services that refused connections ``rounds`` rounds in a row -> since when."""
        return {
            name: since
            for name, since in list(self.refused_since.items())
            if self.refused_rounds.get(name, 0) >= rounds
        }

    def _get(self, client: httpx.Client, url: str) -> dict[str, Any] | object | None:
        try:
            response = client.get(f"{url}/stats")
            response.raise_for_status()
            data = response.json()
        except httpx.ConnectError:
            return _REFUSED
        except (httpx.HTTPError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def _run(self) -> None:
        timeout = httpx.Timeout(self.timeout_s)
        with (
            httpx.Client(timeout=timeout, headers=self._headers, trust_env=False) as client,
            ThreadPoolExecutor(max_workers=len(self.services)) as pool,
        ):
            next_at = time.monotonic()
            while not self._stop.is_set():
                self.sample_once(client, pool)
                # Keep to the schedule without bunching up after a slow round.
                next_at += self.interval_s
                now = time.monotonic()
                if next_at < now:
                    next_at = now
                self._stop.wait(next_at - now)
