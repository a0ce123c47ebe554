"""The run's event stream: the engine emits, handlers (journal, dashboard, report) listen.

A handler's own failure never stops the run or skips a rollback: ``EventBus.emit``
catches it, records it once per handler, and goes on.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

__all__ = ["Event", "EventBus", "EventHandler", "EventType"]

EventType = Literal[
    "run_started",  # data: experiment name, run_id, target, plan summary
    "phase_changed",  # data: {"phase": "baseline"|"fault"|"recovery"|"drain", "load_phase": str}
    "stack_configured",  # data: {"service": str, "settings": {...}, "previous": {...}}
    "fault_requested",  # data: {"name", "kind", "target", "params"}
    "fault_applied",  # data: {"name", "kind", "lag_ms"}  (server confirmed)
    "fault_updated",  # data: {"name", "params"}  (ramps)
    "fault_removed",  # data: {"name", "kind", "lag_ms", "reason"}
    "fault_failed",  # data: {"name", "kind", "error"}
    "sample",  # data: {"metrics": {name: value}}  one per second
    "check",  # data: {"kind": "hypothesis"|"guardrail", "phase", "metric", "value", "ok", ...}
    "guardrail_breached",  # data: {"metric", "value", "limit", "for_s"}
    "worker_lost",  # data: {"worker": str, "share": fraction of the load it ran, "workers_left"}
    "load_reshared",  # data: {"from_t", "workers", "epoch", "lost": [ids], "joined": [ids]}
    "audit",  # data: the audit result
    "log",  # data: {"level": "info"|"warning"|"error", "message": str}
    "run_ended",  # data: {"status": "completed"|"aborted"|"interrupted"|"error", "verdict": ...}
]


@dataclass(frozen=True, slots=True)
class Event:
    """One thing that happened during a run, ``t`` seconds after it started."""

    type: EventType
    t: float
    data: dict[str, Any] = field(default_factory=dict)
    wall: float = field(default_factory=time.time)

    def to_json(self) -> dict[str, Any]:
        """The event as one ``events.jsonl`` record."""
        return {"type": self.type, "t": round(self.t, 3), "wall": self.wall, **self.data}


class EventHandler(Protocol):
    """Anything that wants to hear about a run."""

    def handle(self, event: Event) -> None: ...


class EventBus:
    """Delivers events to handlers in order; a failing handler is reported, never fatal."""

    def __init__(self, *, on_handler_error: Callable[[object, BaseException], None] | None = None):
        self._handlers: list[EventHandler] = []
        self._lock = threading.Lock()
        self._failed: set[int] = set()
        self._on_handler_error = on_handler_error

    def subscribe(self, handler: EventHandler) -> None:
        """Add ``handler``; it sees every event emitted from now on."""
        with self._lock:
            self._handlers.append(handler)

    def emit(self, event: Event) -> None:
        """Give ``event`` to every handler; exceptions from handlers are contained."""
        with self._lock:
            handlers = list(self._handlers)
        for handler in handlers:
            try:
                handler.handle(event)
            except Exception as exc:  # a handler must never break the run
                if id(handler) not in self._failed:
                    self._failed.add(id(handler))
                    if self._on_handler_error is not None:
                        self._on_handler_error(handler, exc)
