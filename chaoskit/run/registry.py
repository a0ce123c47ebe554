"""What a run has put in place, on disk before it is put in place, so nothing outlives a kill.

Each run keeps ``<state>/runs/<run_id>.json``. Every fault is written here *before* it
is applied and struck off after it is removed, so ``chaoskit cleanup`` can undo what a
SIGKILLed run left behind — and, because toxics carry the run id in their name, only that.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chaoskit.stack.state import process_start_time, same_process_alive

__all__ = ["LiveRecord", "RunRecord", "RunRegistry"]


@dataclass
class RunRecord:
    """The faults and settings one run has in place on its target."""

    run_id: str
    pid: int
    pid_start: int | None
    target: str
    toxiproxy_urls: list[str] = field(default_factory=list)
    toxics: list[dict[str, str]] = field(default_factory=list)  # {api_url, proxy, name}
    disabled_proxies: list[dict[str, str]] = field(default_factory=list)  # {api_url, proxy}
    # service -> {"url": base url, "settings": values to put back}
    restore: dict[str, dict[str, Any]] = field(default_factory=dict)
    containers: list[dict[str, Any]] = field(default_factory=list)  # {kind, container, undo}

    def to_json(self) -> dict[str, Any]:
        """The record as stored."""
        return {
            "run_id": self.run_id,
            "pid": self.pid,
            "pid_start": self.pid_start,
            "target": self.target,
            "toxiproxy_urls": self.toxiproxy_urls,
            "toxics": self.toxics,
            "disabled_proxies": self.disabled_proxies,
            "restore": self.restore,
            "containers": self.containers,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunRecord:
        """Read a stored record back."""
        return cls(
            run_id=str(data["run_id"]),
            pid=int(data["pid"]),
            pid_start=data.get("pid_start"),
            target=str(data.get("target", "")),
            toxiproxy_urls=list(data.get("toxiproxy_urls", [])),
            toxics=list(data.get("toxics", [])),
            disabled_proxies=list(data.get("disabled_proxies", [])),
            restore=dict(data.get("restore", {})),
            containers=list(data.get("containers", [])),
        )

    def alive(self) -> bool:
        """Whether the run that owns this record is still running."""
        return same_process_alive(self.pid, self.pid_start)


class RunRegistry:
    """The folder of run records; writes are atomic so a kill never leaves half a file."""

    def __init__(self, state_dir: Path) -> None:
        self.folder = state_dir / "runs"

    def path(self, run_id: str) -> Path:
        """Where ``run_id``'s record lives."""
        return self.folder / f"{run_id}.json"

    def open(self, *, run_id: str, target: str, toxiproxy_urls: list[str]) -> LiveRecord:
        """Start the record of a run owned by this process."""
        pid = os.getpid()
        record = RunRecord(
            run_id=run_id,
            pid=pid,
            pid_start=process_start_time(pid),
            target=target,
            toxiproxy_urls=list(toxiproxy_urls),
        )
        live = LiveRecord(self, record)
        live.save()
        return live

    def records(self) -> list[RunRecord]:
        """Every stored record (unreadable ones are skipped)."""
        if not self.folder.is_dir():
            return []
        found = []
        for path in sorted(self.folder.glob("*.json")):
            try:
                found.append(RunRecord.from_json(json.loads(path.read_text())))
            except (OSError, ValueError, KeyError):
                continue
        return found

    def forget(self, run_id: str) -> None:
        """Drop ``run_id``'s record once everything it lists is undone."""
        with contextlib.suppress(FileNotFoundError):
            self.path(run_id).unlink()

    def write(self, record: RunRecord) -> None:
        """Store ``record`` atomically."""
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.path(record.run_id)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(record.to_json(), indent=1))
        os.replace(tmp, path)


class LiveRecord:
    """The running process's own record, updated as faults come and go (thread-safe)."""

    def __init__(self, registry: RunRegistry, record: RunRecord) -> None:
        self.registry = registry
        self.record = record
        self._lock = threading.Lock()

    def save(self) -> None:
        """Write the record now."""
        with self._lock:
            self.registry.write(self.record)

    def add_toxic(self, api_url: str, proxy: str, name: str) -> None:
        """Note a toxic about to be added."""
        with self._lock:
            self.record.toxics.append({"api_url": api_url, "proxy": proxy, "name": name})
            self.registry.write(self.record)

    def drop_toxic(self, api_url: str, proxy: str, name: str) -> None:
        """Strike off a toxic that is gone."""
        entry = {"api_url": api_url, "proxy": proxy, "name": name}
        with self._lock:
            if entry in self.record.toxics:
                self.record.toxics.remove(entry)
                self.registry.write(self.record)

    def add_disabled(self, api_url: str, proxy: str) -> None:
        """Note a proxy about to be disabled."""
        with self._lock:
            self.record.disabled_proxies.append({"api_url": api_url, "proxy": proxy})
            self.registry.write(self.record)

    def drop_disabled(self, api_url: str, proxy: str) -> None:
        """Strike off a proxy that is enabled again."""
        entry = {"api_url": api_url, "proxy": proxy}
        with self._lock:
            if entry in self.record.disabled_proxies:
                self.record.disabled_proxies.remove(entry)
                self.registry.write(self.record)

    def remember_setting(self, service: str, url: str, key: str, value: Any) -> None:
        """Keep the first value seen for a setting, the one to put back."""
        with self._lock:
            entry = self.record.restore.setdefault(service, {"url": url, "settings": {}})
            entry["settings"].setdefault(key, value)
            self.registry.write(self.record)

    def settings_restored(self, service: str) -> None:
        """Strike off a service whose settings are back to what they were."""
        with self._lock:
            self.record.restore.pop(service, None)
            self.registry.write(self.record)

    def add_container(self, entry: dict[str, Any]) -> None:
        """Note a container fault about to be applied."""
        with self._lock:
            self.record.containers.append(entry)
            self.registry.write(self.record)

    def drop_container(self, entry: dict[str, Any]) -> None:
        """Strike off a container fault that is undone."""
        with self._lock:
            if entry in self.record.containers:
                self.record.containers.remove(entry)
                self.registry.write(self.record)

    def close(self) -> None:
        """The run is over and everything it applied is undone: forget it."""
        self.registry.forget(self.record.run_id)
