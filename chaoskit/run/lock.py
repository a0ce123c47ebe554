"""One run owns a stack (or attach target) for its whole life: a lock under the stack's state.

The lock is ``<state>/stacks/<target>/run.lock``, held with ``flock`` by the running
driver and carrying its run id, pid and process start time. The kernel drops a ``flock``
when its process dies, however it died, so a lock of a SIGKILLed run is never "held":
the next run takes it over (after undoing what the dead run left behind, see the CLI) and
a reader can still name the dead run from the file's contents.

``chaoskit down`` asks the running run to end first: it writes ``run.stop`` next to the
lock; the run's environment watcher sees it within a second and ends the run as an error.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from chaoskit.errors import EnvironmentProblem
from chaoskit.stack.state import default_state_dir, process_start_time, same_process_alive

__all__ = [
    "LockHolder",
    "RunBusy",
    "RunLock",
    "end_run_for_down",
    "force_stop_request",
    "held_by",
    "lock_path",
]

_LOCK_FILE = "run.lock"
_STOP_FILE = "run.stop"


class RunBusy(EnvironmentProblem):
    """Another run owns this stack or target (exit 4)."""


@dataclass(frozen=True, slots=True)
class LockHolder:
    """The run a lock file names."""

    run_id: str
    pid: int
    pid_start: int | None
    started_at: float
    target: str

    def alive(self) -> bool:
        """Whether that very process (same pid and start time) still runs."""
        return same_process_alive(self.pid, self.pid_start)

    def describe(self) -> str:
        """``run <id> (pid <pid>)``: how messages name it."""
        return f"run {self.run_id} (pid {self.pid})"

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LockHolder:
        """A holder from the lock file's contents."""
        start = data.get("pid_start")
        return cls(
            run_id=str(data["run_id"]),
            pid=int(data["pid"]),
            pid_start=None if start is None else int(start),
            started_at=float(data.get("started_at", 0.0)),
            target=str(data.get("target", "")),
        )


def lock_path(target: str, state_dir: Path | None = None) -> Path:
    """Where the run lock of the stack or target called ``target`` lives."""
    folder = state_dir if state_dir is not None else default_state_dir(target)
    return folder / _LOCK_FILE


def _read(path: Path) -> LockHolder | None:
    try:
        return LockHolder.from_json(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def held_by(target: str, state_dir: Path | None = None) -> LockHolder | None:
    """The live run that owns ``target`` now, or None (no lock, or its run is dead)."""
    path = lock_path(target, state_dir)
    if not path.exists():
        return None
    try:
        with path.open("a+", encoding="utf-8") as handle:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read(path)
                # Held but unreadable (being written this instant): still a run.
                return holder or LockHolder("?", 0, None, 0.0, target)
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    except OSError:
        return None
    return None


def force_stop_request(target: str, *, by: str, state_dir: Path | None = None) -> Path:
    """Ask the run on ``target`` to end as an error (``chaoskit down --force``)."""
    path = lock_path(target, state_dir).with_name(_STOP_FILE)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"by": by, "at": time.time()}), encoding="utf-8")
    return path


class RunLock:
    """The lock a run holds on its target from before its first change until its end."""

    def __init__(self, target: str, *, state_dir: Path | None = None) -> None:
        self.target = target
        self.path = lock_path(target, state_dir)
        self.stop_path = self.path.with_name(_STOP_FILE)
        self._handle: IO[str] | None = None
        self.previous: LockHolder | None = None  # a dead run whose lock this one took over
        self.took_over: str | None = None  # what undoing that dead run did, said once

    def acquire(self, run_id: str) -> None:
        """Take the lock for ``run_id``; :class:`RunBusy` naming the owner when it is taken."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.path.open("a+", encoding="utf-8")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            holder = _read(self.path)
            who = holder.describe() if holder is not None else "another run"
            raise RunBusy(
                f"{self.target} is in use by {who}: one run at a time owns a stack; "
                "wait for it to end or stop it first"
            ) from None
        handle.seek(0)
        stale = _read(self.path)
        if stale is not None and stale.run_id != run_id:
            self.previous = stale
        pid = os.getpid()
        record = {
            "run_id": run_id,
            "pid": pid,
            "pid_start": process_start_time(pid),
            "started_at": time.time(),
            "target": self.target,
        }
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps(record))
        handle.flush()
        # A stop request left over from before this run is not meant for it.
        with contextlib.suppress(FileNotFoundError):
            self.stop_path.unlink()
        self._handle = handle

    def stop_requested(self) -> str | None:
        """Who asked this run to end (``chaoskit down --force``), or None."""
        try:
            data = json.loads(self.stop_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return "a stop request"
        return str(data.get("by", "a stop request")) if isinstance(data, dict) else "a request"

    def release(self) -> None:
        """Let the target go (the file stays: the kernel lock is what counts)."""
        if self._handle is None:
            return
        with contextlib.suppress(OSError):
            self._handle.seek(0)
            self._handle.truncate()
            self._handle.flush()
        with contextlib.suppress(FileNotFoundError):
            self.stop_path.unlink()
        with contextlib.suppress(OSError):
            fcntl.flock(self._handle.fileno(), fcntl.LOCK_UN)
        self._handle.close()
        self._handle = None

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def end_run_for_down(
    target: str,
    *,
    force: bool,
    say: Callable[[str], object],
    wait_s: float = 30.0,
    state_dir: Path | None = None,
) -> None:
    """Before a stack stops: refuse while a run owns it, or (``force``) end that run first.

    The forced run sees the request within a second, rolls back, and ends as an error; the
    stack stops once it let go (or after ``wait_s``, when its driver is SIGTERMed).
    """
    holder = held_by(target, state_dir)
    if holder is None:
        return
    if not force:
        raise RunBusy(
            f"{target} is in use by {holder.describe()}: `chaoskit down --force` ends that run "
            "(as an error) and then stops the stack"
        )
    force_stop_request(
        target, by=f"`chaoskit down --force` (pid {os.getpid()})", state_dir=state_dir
    )
    say(f"ending {holder.describe()} first (it rolls back and ends as an error)")
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if held_by(target, state_dir) is None:
            return
        time.sleep(0.2)
    if holder.alive() and holder.pid != os.getpid():
        with contextlib.suppress(OSError):
            os.kill(holder.pid, signal.SIGTERM)
