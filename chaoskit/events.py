"""The run's event stream: the engine emits typed events, handlers (journal, dashboard,
summary, ``rehearse(on_event=...)``) listen.

One frozen dataclass per kind of event; ``t`` is seconds since the load started (negative
before it), ``wall`` the Unix time it happened. ``to_json()`` is the event's line in
``events.jsonl``: ``{"type": <kind>, "t", "wall", <fields>}``.

A handler's own failure never stops the run or skips a rollback: ``EventBus.emit``
catches it, reports it, detaches that handler and goes on.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Protocol

__all__ = [
    "AuditDone",
    "CheckJudged",
    "Event",
    "EventBus",
    "EventHandler",
    "FaultApplied",
    "FaultFailed",
    "FaultRemoved",
    "FaultRequested",
    "FaultUpdated",
    "GuardrailTripped",
    "LoadReshared",
    "LogMessage",
    "Phase",
    "PhaseChanged",
    "RunEnded",
    "RunStarted",
    "Sample",
    "StackConfigured",
    "WorkerLost",
]

Phase = Literal["baseline", "during", "recovery", "drain"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """Something that happened during a run, ``t`` seconds after the load started."""

    type: ClassVar[str] = "event"
    t: float
    wall: float = field(default_factory=time.time)

    def fields(self) -> dict[str, Any]:
        """The event's own fields (without ``t`` and ``wall``)."""
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name not in ("t", "wall")
        }

    def to_json(self) -> dict[str, Any]:
        """The event as one ``events.jsonl`` record."""
        return {"type": self.type, "t": round(self.t, 3), "wall": self.wall, **self.fields()}


@dataclass(frozen=True, slots=True, kw_only=True)
class RunStarted(Event):
    """The run began; ``t`` is minus the engine's start-up delay."""

    type: ClassVar[str] = "run_started"
    run_id: str
    experiment: str
    target: str
    duration_s: float
    plan: Mapping[str, Any]  # Plan.to_json(): the timeline the dashboard draws


@dataclass(frozen=True, slots=True, kw_only=True)
class PhaseChanged(Event):
    """The run moved into a check phase (baseline, during faults, recovery, drain)."""

    type: ClassVar[str] = "phase_changed"
    phase: Phase
    load_phase: str = ""  # the label of the load shape's stage at that moment


@dataclass(frozen=True, slots=True, kw_only=True)
class StackConfigured(Event):
    """The experiment's stack settings were applied to one service."""

    type: ClassVar[str] = "stack_configured"
    service: str
    settings: Mapping[str, Any]
    previous: Mapping[str, Any]  # what the rollback puts back


@dataclass(frozen=True, slots=True, kw_only=True)
class FaultRequested(Event):
    """A fault's window opened; the actuator was asked to apply it."""

    type: ClassVar[str] = "fault_requested"
    name: str
    kind: str
    target: str
    params: Mapping[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class FaultApplied(Event):
    """The fault is in place (the server confirmed it) ``lag_ms`` after its planned time."""

    type: ClassVar[str] = "fault_applied"
    name: str
    kind: str
    target: str
    lag_ms: float
    ends_at: float | None  # run time it is planned to end; None: when the load ends


@dataclass(frozen=True, slots=True, kw_only=True)
class FaultUpdated(Event):
    """A ramping fault moved to ``level`` (0..1 of its full strength)."""

    type: ClassVar[str] = "fault_updated"
    name: str
    level: float


@dataclass(frozen=True, slots=True, kw_only=True)
class FaultRemoved(Event):
    """The fault was rolled back, ``lag_ms`` after its planned end."""

    type: ClassVar[str] = "fault_removed"
    name: str
    kind: str
    reason: str
    lag_ms: float


@dataclass(frozen=True, slots=True, kw_only=True)
class FaultFailed(Event):
    """A fault could not be applied or removed: an environment failure."""

    type: ClassVar[str] = "fault_failed"
    name: str
    kind: str
    error: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Sample(Event):
    """One second's metrics, by the names of ``chaoskit.observe.metrics``."""

    type: ClassVar[str] = "sample"
    metrics: Mapping[str, float | None]


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckJudged(Event):
    """A hypothesis, guardrail or audit check was judged (``live``: the phase so far)."""

    type: ClassVar[str] = "check"
    kind: str  # hypothesis | guardrail | audit
    phase: str
    metric: str
    min: float | None
    max: float | None
    value: float | None
    ok: bool | None  # None: could not be judged (no data): never a pass
    window: tuple[float, float] | None = None
    live: bool = False
    note: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class GuardrailTripped(Event):
    """A guardrail's metric stayed out of bounds for its whole ``for``: the run aborts."""

    type: ClassVar[str] = "guardrail_breached"
    metric: str
    value: float | None
    min: float | None
    max: float | None

    @property
    def limit(self) -> float | None:
        """The bound that was crossed."""
        return self.max if self.max is not None else self.min


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerLost(Event):
    """A distributed load worker stopped answering; its share moves to the workers left."""

    type: ClassVar[str] = "worker_lost"
    worker: str
    share: float | None = None  # fraction of the load it was running
    workers_left: int | None = None  # workers running load after it


@dataclass(frozen=True, slots=True, kw_only=True)
class LoadReshared(Event):
    """The load was split anew over the workers there are, from shape time ``from_t``."""

    type: ClassVar[str] = "load_reshared"
    from_t: float
    workers: int
    epoch: int
    lost: tuple[str, ...] = ()
    joined: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditDone(Event):
    """The ledger was reconciled against what clients were told (``AuditResult.to_json()``)."""

    type: ClassVar[str] = "audit"
    audit: Mapping[str, Any]

    def to_json(self) -> dict[str, Any]:
        """The audit's fields at the top level of the record, as the journal has them."""
        return {"type": self.type, "t": round(self.t, 3), "wall": self.wall, **self.audit}


@dataclass(frozen=True, slots=True, kw_only=True)
class LogMessage(Event):
    """A line worth showing: a warning, an error, a note."""

    type: ClassVar[str] = "log"
    level: Literal["info", "warning", "error"]
    message: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RunEnded(Event):
    """The run is over: its status, verdict and exit code are final."""

    type: ClassVar[str] = "run_ended"
    status: str  # completed | aborted | interrupted | error
    verdict: str  # held | violated | aborted | error
    exit_code: int


class EventHandler(Protocol):
    """Anything that wants to hear about a run."""

    def handle(self, event: Event) -> None: ...


class EventBus:
    """Delivers events to handlers in order; a failing handler is reported and detached."""

    def __init__(self, *, on_handler_error: Callable[[object, BaseException], None] | None = None):
        self._handlers: list[EventHandler] = []
        self._lock = threading.Lock()
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
            except Exception as exc:  # a handler must never break the run: detach it
                with self._lock:
                    if handler not in self._handlers:
                        continue  # another thread already detached it
                    self._handlers.remove(handler)
                if self._on_handler_error is not None:
                    self._on_handler_error(handler, exc)
