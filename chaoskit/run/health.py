"""The environment watch: notice within seconds when what a run stands on goes away.

A stub service or Toxiproxy that stops mid-run turns every later number into a lie (100%
errors that are not the system's answer to the fault but the lack of a system). The
runner's main loop calls :meth:`EnvironmentWatch.check` each turn; the first failure it
returns ends the run with status ``error`` (exit 4), after the usual rollback.

- services: the /stats sampler already polls each about once a second; a service whose
  connections are *refused* two rounds in a row is gone (a merely slow one times out,
  and slowness is what experiments measure, so it is never called gone);
- Toxiproxy: probed here (GET /version every half second, refused twice = gone);
- a stop request from ``chaoskit down --force`` (see :mod:`chaoskit.run.lock`).

Services a container fault stops on purpose are excused while that fault is active.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Protocol

import httpx

__all__ = ["EnvironmentWatch"]

_PROBE_EVERY_S = 0.5
_REFUSED_ROUNDS = 2


class _Unreachable(Protocol):
    def unreachable(self, rounds: int = ...) -> dict[str, float]: ...


class EnvironmentWatch:
    """Answers "is the run's environment still there?" cheaply, from the run's main loop."""

    def __init__(
        self,
        *,
        toxiproxy_urls: Iterable[str],
        sampler: _Unreachable | None,
        clock: Callable[[], float],
        stop_requested: Callable[[], str | None] | None = None,
        excused: Callable[[], set[str]] | None = None,
        probe_every_s: float = _PROBE_EVERY_S,
    ) -> None:
        self.toxiproxy_urls = [u.rstrip("/") for u in toxiproxy_urls]
        self._sampler = sampler
        self._clock = clock
        self._stop_requested = stop_requested
        self._excused = excused or (lambda: set())
        self._probe_every_s = probe_every_s
        self._refused: dict[str, int] = {}
        self._refused_since: dict[str, float] = {}
        self._halt = threading.Event()
        self._thread: threading.Thread | None = None
        self.failure: str | None = None

    def start(self) -> None:
        """Begin probing Toxiproxy on a daemon thread."""
        if self._thread is not None or not self.toxiproxy_urls:
            return
        self._thread = threading.Thread(target=self._run, name="chaoskit-env", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop probing."""
        self._halt.set()
        if self._thread is not None:
            self._thread.join(2.0)
            self._thread = None

    def check(self) -> str | None:
        """The first environment failure seen (and kept), or None while all is well."""
        if self.failure is not None:
            return self.failure
        found = self._find()
        if found is not None:
            self.failure = found
        return self.failure

    def _find(self) -> str | None:
        if self._stop_requested is not None:
            by = self._stop_requested()
            if by is not None:
                return f"the run was ended by {by} at t={self._clock():.1f}s"
        for url, since in list(self._refused_since.items()):
            if self._refused.get(url, 0) >= _REFUSED_ROUNDS:
                return (
                    f"Toxiproxy at {url} stopped answering at t={since:.1f}s (connection refused)"
                )
        if self._sampler is not None:
            excused = self._excused()
            for service, since in self._sampler.unreachable(_REFUSED_ROUNDS).items():
                if service not in excused:
                    return (
                        f"service {service} stopped answering at t={since:.1f}s "
                        "(connection refused)"
                    )
        return None

    def _run(self) -> None:
        with httpx.Client(timeout=httpx.Timeout(2.0), trust_env=False) as client:
            while not self._halt.is_set():
                for url in self.toxiproxy_urls:
                    self._probe(client, url)
                self._halt.wait(self._probe_every_s)

    def _probe(self, client: httpx.Client, url: str) -> None:
        t = self._clock()
        try:
            client.get(f"{url}/version")
        except httpx.ConnectError:
            self._refused_since.setdefault(url, t)
            self._refused[url] = self._refused.get(url, 0) + 1
            return
        except httpx.HTTPError:
            return  # slow or odd, but there: not "gone"
        self._refused.pop(url, None)
        self._refused_since.pop(url, None)
