"""Hold a target for one run: take its lock, and undo first what a dead owner left behind."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from chaoskit.run.cleanup import cleanup
from chaoskit.run.lock import RunLock
from chaoskit.stack.state import chaoskit_home

__all__ = ["hold_target"]


@contextmanager
def hold_target(
    target: str, *, run_id: str, toxiproxy_urls: Callable[[], list[str] | None]
) -> Iterator[RunLock]:
    """Own ``target`` for ``run_id`` while inside; :class:`RunBusy` (exit 4) when a live run does.

    A lock left by a dead run (SIGKILL, a crashed host) is taken over: that run's recorded
    faults and settings are undone first (``toxiproxy_urls()`` None: no stack is up, so
    nothing of it is left there), so "the settings before this run" are never the dead run's.
    ``lock.took_over`` says what was undone, for the run to report.
    """
    lock = RunLock(target)
    lock.acquire(run_id)
    try:
        previous = lock.previous
        urls = None if previous is None or previous.alive() else toxiproxy_urls()
        if previous is not None and urls is not None:
            report = cleanup(
                state_dir=chaoskit_home(),
                toxiproxy_urls=urls,
                run_id=previous.run_id,
                target=target,
            )
            if not report.nothing_to_do:
                lock.took_over = (
                    f"took over the lock of dead {previous.describe()}: undid what it left"
                )
        yield lock
    finally:
        lock.release()
