"""What a running stack left on disk so `status` and `down` find it: pids, start times, ports.

A pid alone is not an identity: after a reboot or a long uptime the number may belong to
someone else. Each process is recorded with its start time (``/proc/<pid>/stat`` field 22,
clock ticks since boot), and chaoskit only signals a pid whose start time still matches.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "STATE_FILE",
    "ProcessRecord",
    "RecordedStack",
    "StackState",
    "chaoskit_home",
    "default_state_dir",
    "process_start_time",
    "read_state",
    "recorded_stacks",
    "remove_state",
    "stop_process",
    "stop_processes",
    "write_state",
]

STATE_FILE = "state.json"
_SCHEMA = 1


def chaoskit_home() -> Path:
    """Where chaoskit keeps its state: ``$CHAOSKIT_HOME`` or ``./.chaoskit``."""
    home = os.environ.get("CHAOSKIT_HOME")
    return Path(home) if home else Path.cwd() / ".chaoskit"


def default_state_dir(stack_name: str) -> Path:
    """The state folder of the stack called ``stack_name``."""
    return chaoskit_home() / "stacks" / stack_name


def process_start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot, or None when it is gone or a zombie."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    except OSError:
        return None
    # The command name (field 2) sits in parentheses and may itself contain spaces or ')'.
    fields = raw[raw.rfind(")") + 2 :].split()
    # fields[0] is field 3 (state); field 22 (starttime) is fields[19].
    if len(fields) < 20 or fields[0] in ("Z", "X"):
        return None
    try:
        return int(fields[19])
    except ValueError:
        return None


def same_process_alive(pid: int, start_time: int | None) -> bool:
    """Whether the very process ``pid`` started at ``start_time`` runs (not a reused pid)."""
    current = process_start_time(pid)
    return current is not None and (start_time is None or current == start_time)


@dataclass(slots=True, kw_only=True)
class ProcessRecord:
    """One process the stack started."""

    name: str  # "toxiproxy" or a service name
    pid: int
    start_time: int | None  # clock ticks since boot; None where /proc is unavailable
    port: int
    log: str  # path of its log file
    # The process group it leads (the stack starts each process in its own session).
    pgid: int | None = None

    def is_alive(self) -> bool:
        """True when this very process (same pid and start time) is still running."""
        return same_process_alive(self.pid, self.start_time)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ProcessRecord:
        """A record from state.json."""
        start = data.get("start_time")
        pgid = data.get("pgid")
        return cls(
            name=str(data["name"]),
            pid=int(data["pid"]),
            start_time=None if start is None else int(start),
            port=int(data["port"]),
            log=str(data["log"]),
            pgid=None if pgid is None else int(pgid),
        )


@dataclass(slots=True, kw_only=True)
class StackState:
    """state.json: what a backend needs to find, check and stop a stack it started."""

    name: str
    kind: str
    base_port: int
    toxiproxy_url: str
    gateway_url: str
    services: dict[str, str]  # service -> base URL
    proxies: dict[str, dict[str, str]]  # dependency -> {"listen", "upstream"}
    processes: list[ProcessRecord] = field(default_factory=list)
    created_at: float = field(default_factory=time.time)
    extra: dict[str, Any] = field(default_factory=dict)  # backend-specific (docker ids, ...)

    def process(self, name: str) -> ProcessRecord | None:
        """The record of one started process, by name."""
        return next((p for p in self.processes if p.name == name), None)

    def to_json(self) -> dict[str, Any]:
        """The state as written to state.json."""
        data = asdict(self)
        data["schema"] = _SCHEMA
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StackState:
        """State from state.json's contents."""
        return cls(
            name=str(data["name"]),
            kind=str(data["kind"]),
            base_port=int(data["base_port"]),
            toxiproxy_url=str(data["toxiproxy_url"]),
            gateway_url=str(data["gateway_url"]),
            services={str(k): str(v) for k, v in data["services"].items()},
            proxies={str(k): dict(v) for k, v in data["proxies"].items()},
            processes=[ProcessRecord.from_json(p) for p in data.get("processes", [])],
            created_at=float(data.get("created_at", 0.0)),
            extra=dict(data.get("extra", {})),
        )


def read_state(state_dir: Path) -> StackState | None:
    """The state in ``state_dir``, or None when there is none (or it is unreadable)."""
    path = state_dir / STATE_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return StackState.from_json(data)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError):
        # A torn or foreign file names no process we could safely signal.
        return None


def write_state(state_dir: Path, state: StackState) -> None:
    """Write state.json atomically (a reader never sees half a file)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / STATE_FILE
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(state.to_json(), indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def remove_state(state_dir: Path) -> None:
    """Forget the stack (its logs stay for a post-mortem)."""
    with contextlib.suppress(FileNotFoundError):
        (state_dir / STATE_FILE).unlink()


def _reap(pid: int) -> None:
    """Collect our own child's exit status so it does not linger as a zombie."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def stop_process(record: ProcessRecord, *, grace_s: float = 5.0) -> bool:
    """SIGTERM the recorded process, SIGKILL it after ``grace_s``; False if it was not ours."""
    return bool(stop_processes([record], grace_s=grace_s))


def stop_processes(records: Sequence[ProcessRecord], *, grace_s: float = 5.0) -> list[str]:
    """Stop the recorded processes together (SIGTERM, then SIGKILL after ``grace_s``).

    Only a pid whose start time still matches its record is signalled; returns the names
    of the processes that were ours and alive.
    """
    ours = [r for r in records if r.is_alive()]
    for record in records:
        if record not in ours:
            _reap(record.pid)
    for record in ours:
        _signal(record, signal.SIGTERM)
    pending = _wait_gone(ours, grace_s)
    for record in pending:
        # Re-check identity right before the hard kill: the pid may have turned over.
        if record.is_alive():
            _signal(record, signal.SIGKILL)
    _wait_gone(pending, 2.0)
    return [r.name for r in ours]


def _wait_gone(records: Sequence[ProcessRecord], timeout_s: float) -> list[ProcessRecord]:
    """Wait until every record is gone; returns the ones still alive at the timeout."""
    pending = list(records)
    deadline = time.monotonic() + timeout_s
    while pending:
        for record in pending:
            _reap(record.pid)
        pending = [r for r in pending if r.is_alive()]
        if not pending or time.monotonic() >= deadline:
            break
        time.sleep(0.05)
    return pending


def _signal(record: ProcessRecord, signum: signal.Signals) -> None:
    """Signal the process; its whole group when it leads one we made (setsid at spawn)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if record.pgid is not None and record.pgid == record.pid:
            os.killpg(record.pid, signum)
        else:
            os.kill(record.pid, signum)


@dataclass(frozen=True, slots=True)
class RecordedStack:
    """A stack some `chaoskit up` recorded under the chaoskit home, and where."""

    state_dir: Path
    state: StackState

    @property
    def kind(self) -> str:
        """local or docker."""
        return self.state.kind

    @property
    def name(self) -> str:
        """The target's name (the stack's folder under ``stacks/``)."""
        return self.state.name


def recorded_stacks(home: Path | None = None) -> list[RecordedStack]:
    """Every stack with a state file under ``<home>/stacks``, whatever its backend.

    Local stacks keep ``stacks/<name>/state.json``, docker stacks ``stacks/<name>/docker/
    state.json``. A local record whose processes are all gone is not a stack that is up
    (it is left for `down` to tidy); a docker record counts until `down` removes it, since
    telling needs the engine.
    """
    root = (home or chaoskit_home()) / "stacks"
    found: list[RecordedStack] = []
    try:
        folders = sorted(p for p in root.iterdir() if p.is_dir())
    except OSError:
        return found
    for folder in folders:
        for state_dir in (folder, folder / "docker"):
            state = read_state(state_dir)
            if state is None:
                continue
            if state.kind == "local" and not any(p.is_alive() for p in state.processes):
                continue
            found.append(RecordedStack(state_dir=state_dir, state=state))
    return found
