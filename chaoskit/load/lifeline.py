"""A load process never outlives the process that started it.

``prctl(PR_SET_PDEATHSIG, SIGKILL)`` asks Linux to kill this process the moment its parent
dies, whatever killed the parent (SIGKILL included). The parent's pid is handed down in
``CHAOSKIT_PARENT_PID``: a parent that died before the ``prctl`` call is caught by
comparing it with ``getppid()``, and a thread that watches ``getppid()`` twice a second
is the fallback where ``prctl`` is unavailable.
"""

from __future__ import annotations

import ctypes
import os
import signal
import threading
import time

__all__ = ["PARENT_ENV", "child_env", "die_with_parent"]

PARENT_ENV = "CHAOSKIT_PARENT_PID"
_PR_SET_PDEATHSIG = 1
_WATCH_EVERY_S = 0.5


def child_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for a load child of this process: names this process as its parent."""
    return {**(os.environ if env is None else env), PARENT_ENV: str(os.getpid())}


def die_with_parent() -> None:
    """Arrange to die with the parent named in ``CHAOSKIT_PARENT_PID`` (no-op without it)."""
    raw = os.environ.get(PARENT_ENV)
    if not raw or not raw.isdigit():
        return
    parent = int(raw)
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass  # not Linux: the watch below does the work
    if os.getppid() != parent:
        os._exit(70)  # the parent died before we could ask: go now
    watch = threading.Thread(target=_watch, args=(parent,), name="chaoskit-lifeline", daemon=True)
    watch.start()


def _watch(parent: int) -> None:
    while True:
        time.sleep(_WATCH_EVERY_S)
        if os.getppid() != parent:
            os._exit(70)
