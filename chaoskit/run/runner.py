"""The run stage: drive the load, play the fault timeline, watch the guardrails, always roll back.

A run never ends by an exception escaping: it ends with a status from a fixed set
(completed / aborted / interrupted / error), recorded in summary.json, and the CLI maps
that and the verdict to an exit code.
"""

from __future__ import annotations

import contextlib
import json
import math
import platform
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from chaoskit import __version__
from chaoskit.errors import ChaoskitError, EnvironmentProblem
from chaoskit.events import Event, EventBus, EventHandler
from chaoskit.experiment.models import Experiment
from chaoskit.faults.actuators import FaultSpec, make_actuator
from chaoskit.faults.domain import AdminClient
from chaoskit.faults.timeline import FaultTimeline, FaultWindowSpec, Trigger
from chaoskit.faults.toxiproxy import ToxiproxyClient
from chaoskit.load.process import LoadProcess
from chaoskit.load.spec import Behaviour as SpecBehaviour
from chaoskit.load.spec import Caps, LoadSpec
from chaoskit.observe.aggregate import MetricsAggregator
from chaoskit.observe.audit import AuditResult, drain, run_audit
from chaoskit.observe.metrics import AUDIT_METRICS
from chaoskit.observe.sampler import StatsSampler
from chaoskit.plan import Plan
from chaoskit.report.summary import JournalWriter, Summary, SummaryWriter
from chaoskit.run.checks import CheckResult, GuardrailWatch, Threshold, judge
from chaoskit.run.registry import LiveRecord, RunRegistry
from chaoskit.run.settings import stack_settings
from chaoskit.stack.endpoints import StackEndpoints

__all__ = ["RunOutcome", "RunSettings", "Runner", "Status", "Verdict"]

Status = Literal["completed", "aborted", "interrupted", "error"]
Verdict = Literal["held", "violated", "aborted", "error"]

# The load engine's start-up, so t=0 is when arrivals begin: importing locust takes ~1 s,
# and distributed workers must start and join the master first.
_START_DELAY_S = 1.5
_START_DELAY_WORKERS_S = 7.0
_END_GRACE_S = 3.0
_SUMMARY_EVERY_S = 5.0
_LIVE_CHECK_EVERY_S = 5.0


@dataclass(frozen=True, kw_only=True)
class RunSettings:
    """How to run, beyond what the experiment says."""

    run_dir: Path
    state_dir: Path
    workers: int = 0
    expect_workers: bool = False
    master_port: int = 5557
    stop_on_worker_loss: bool = False
    master_bind: str = "127.0.0.1"
    drain_timeout_s: float = 20.0
    caps: dict[str, float] = field(default_factory=dict)
    # Seconds without a heartbeat after which a detached watchdog removes this run's faults
    # (attach targets: a killed or hung driver must not leave staging faulted). None: off.
    watchdog_ttl_s: float | None = None


@dataclass(frozen=True, slots=True)
class RunOutcome:
    """How a run ended."""

    status: Status
    verdict: Verdict
    exit_code: int
    run_dir: Path
    summary: dict[str, Any]


def new_run_id() -> str:
    """A short id that names this run's toxics and records."""
    return datetime.now(UTC).strftime("%Y%m%d%H%M%S") + "-" + secrets.token_hex(3)


class Runner:
    """Plays one experiment against one stack; ``request_stop`` may come from a signal handler."""

    def __init__(
        self,
        *,
        experiment: Experiment,
        plan: Plan,
        endpoints: StackEndpoints,
        settings: RunSettings,
        handlers: list[EventHandler] | None = None,
        run_id: str | None = None,
    ) -> None:
        self.experiment = experiment
        self.plan = plan
        self.endpoints = endpoints
        self.settings = settings
        self.run_id = run_id or new_run_id()
        self.run_dir = settings.run_dir
        self._stop = threading.Event()
        self._stop_reason: Status | None = None
        self._abort: CheckResult | None = None
        self._errors: list[str] = []
        self.bus = EventBus(on_handler_error=self._handler_failed)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.journal = JournalWriter(self.run_dir)
        self.bus.subscribe(self.journal)
        for handler in handlers or []:
            self.bus.subscribe(handler)
        self.summary = SummaryWriter(self.run_dir)
        self.aggregator = MetricsAggregator()
        self._t0 = 0.0
        self._phase = "baseline"

    # --- control -----------------------------------------------------------------------------
    def request_stop(self, reason: Status = "interrupted") -> None:
        """Ask the run to end now (Ctrl-C, SIGTERM); faults are rolled back first."""
        if self._stop_reason is None:
            self._stop_reason = reason
        self._stop.set()

    def clock(self) -> float:
        """Run time: seconds since the load started."""
        return time.time() - self._t0

    def _emit(self, type_: Any, data: dict[str, Any] | None = None, t: float | None = None) -> None:
        self.bus.emit(Event(type_, self.clock() if t is None else t, data or {}))

    def _handler_failed(self, handler: object, exc: BaseException) -> None:
        message = f"{type(handler).__name__} failed and was detached from the run: {exc}"
        self._errors.append(message)
        # The journal itself failing must not stop the run either.
        with contextlib.suppress(Exception):
            self.journal.handle(Event("log", self.clock(), {"level": "error", "message": message}))

    # --- the run ----------------------------------------------------------------------------
    def execute(self) -> RunOutcome:
        """Run the experiment to its end; never raises."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        registry = RunRegistry(self.settings.state_dir)
        record = registry.open(
            run_id=self.run_id,
            target=self.endpoints.name,
            toxiproxy_urls=list(self.endpoints.toxiproxy_urls),
        )
        admin = AdminClient(self.endpoints.services)
        clients: dict[str, ToxiproxyClient] = {}

        def client_for(url: str) -> ToxiproxyClient:
            if url not in clients:
                clients[url] = ToxiproxyClient(url)
            return clients[url]

        started_at = datetime.now(UTC)
        watchdog = self._start_watchdog(registry)
        delay = (
            _START_DELAY_WORKERS_S
            if self.settings.workers or self.settings.expect_workers
            else _START_DELAY_S
        )
        self._t0 = time.time() + delay
        timeline = FaultTimeline(
            windows=self._fault_windows(),
            make_actuator=lambda spec: make_actuator(
                spec,
                run_id=self.run_id,
                endpoints=self.endpoints,
                admin=admin,
                record=record,
                client_for=client_for,
            ),
            emit=self.bus.emit,
            clock=self.clock,
        )
        status: Status = "completed"
        load: LoadProcess | None = None
        sampler: StatsSampler | None = None
        restored_settings: dict[str, dict[str, Any]] = {}
        audit: AuditResult | None = None
        try:
            self._emit(
                "run_started",
                {
                    "run_id": self.run_id,
                    "experiment": self.experiment.name,
                    "target": self.endpoints.name,
                    "duration_s": self.plan.duration_s,
                    "plan": self.plan.to_json(),
                },
                t=-delay,
            )
            self._write_summary(started_at, "running", None, timeline, [], None)
            restored_settings = self._configure_stack(admin, record)
            if self.endpoints.services:
                sampler = StatsSampler(
                    self.endpoints.services,
                    on_sample=self.aggregator.add_stats,
                    clock=self.clock,
                )
                sampler.start()
            self.aggregator.mark_phase("baseline", 0.0)
            load = LoadProcess.start(self._load_spec())
            self._await_ready(load)
            timeline.start()
            status = self._watch(load, timeline, started_at)
        except ChaoskitError as exc:
            status = "error"
            self._errors.append(str(exc))
        except Exception as exc:  # an unexpected failure still ends in rollback and a summary
            status = "error"
            self._errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            # Faults first: they are what can hurt a shared environment.
            rollback_errors = timeline.stop(reason=status if status != "completed" else "run ended")
            self._errors.extend(rollback_errors)
            self._restore_stack(admin, record, restored_settings)
            if load is not None:
                load.stop()
                self._drain_ticks(load)
                if load.returncode not in (0, None) and status == "completed":
                    status = "error"
                    self._errors.append(f"load engine failed: {load.stderr_tail()}")
            if sampler is not None:
                sampler.stop()
            if not rollback_errors and not self._restore_failed:
                record.close()
            if watchdog is not None:
                watchdog.stop()
        if status != "error" and self.endpoints.services:
            self._emit("phase_changed", {"phase": "drain"})
            try:
                drain(self.endpoints.services, timeout_s=self.settings.drain_timeout_s)
                audit = run_audit(self.endpoints.services, self.run_dir / "outcomes")
            except ChaoskitError as exc:
                self._errors.append(f"audit: {exc}")
        elif not self.endpoints.services:
            audit = run_audit({}, self.run_dir / "outcomes")
        if audit is not None:
            self._emit("audit", audit.to_json())
        admin.close()
        for client in clients.values():
            client.close()
        checks = self._final_checks(timeline, audit)
        verdict, exit_code = self._verdict(status, checks, audit)
        summary = self._write_summary(
            started_at, status, verdict, timeline, checks, audit, exit_code=exit_code
        )
        self._emit("run_ended", {"status": status, "verdict": verdict, "exit_code": exit_code})
        self.journal.close()
        return RunOutcome(status, verdict, exit_code, self.run_dir, summary)

    _restore_failed = False
    _phase_started = 0.0
    _worker_changes: list[dict[str, Any]] = []  # replaced per run in _watch
    _watchdog: Any = None

    def _start_watchdog(self, registry: RunRegistry) -> Any:
        """The dead-man's switch: a detached process that undoes this run if it stops beating."""
        if self.settings.watchdog_ttl_s is None:
            return None
        from chaoskit.faults.watchdog import Watchdog

        self._watchdog = Watchdog(
            record_path=registry.path(self.run_id),
            heartbeat_path=self.run_dir / "heartbeat",
            ttl_s=self.settings.watchdog_ttl_s,
        )
        self._watchdog.start()
        return self._watchdog

    def _await_ready(self, load: LoadProcess) -> None:
        """The load handshake: run time starts at the t0 the engine fixed once it (and its
        workers) could run, so a slow start never eats the shape's first seconds."""
        while not self._stop.is_set():
            record = load.poll_tick(timeout=0.2)
            if record is None:
                if load.finished_output:
                    raise EnvironmentProblem(f"load engine ended: {load.stderr_tail()}")
                continue
            kind = record.get("type")
            if kind == "ready":
                self._t0 = float(record["t0"])
                return
            if kind == "error":
                raise EnvironmentProblem(f"load engine: {record.get('message')}")
            if kind == "log":
                self._emit("log", {"level": record.get("level"), "message": record.get("message")})

    def _watch(self, load: LoadProcess, timeline: FaultTimeline, started_at: datetime) -> Status:
        """The main loop: ticks in, samples out, guardrails and triggers checked each second."""
        self._worker_changes = []
        guardrails = GuardrailWatch([self._threshold(g) for g in self.experiment.guardrails])
        live_checks = [
            t
            for t in (self._threshold(h) for h in self.experiment.hypothesis)
            if t.metric not in AUDIT_METRICS
        ]
        next_check = _LIVE_CHECK_EVERY_S
        end = self.plan.duration_s
        next_sample = 1.0
        last_summary = 0.0
        while True:
            if self._stop.is_set():
                return self._stop_reason or "interrupted"
            if self._watchdog is not None:
                self._watchdog.beat()
            tick = load.poll_tick(timeout=0.05)
            if tick is not None:
                kind = tick.get("type")
                if kind == "tick":
                    self.aggregator.add_tick(tick)
                elif kind in ("worker_lost", "reshare"):
                    # when, whose and how much load moved: the journal and report show it
                    data = {k: v for k, v in tick.items() if k not in ("type", "t")}
                    at = float(tick.get("t", self.clock()))
                    event = "worker_lost" if kind == "worker_lost" else "load_reshared"
                    self._emit(event, data, t=at)
                    self._worker_changes.append(
                        {
                            "t": at,
                            "change": "lost" if kind == "worker_lost" else "reshared",
                            "worker": data.get("worker"),
                            "share": data.get("share"),
                            "from_t": data.get("from_t"),
                            "workers": data.get("workers_left", data.get("workers", 0)),
                            "lost": data.get("lost", []),
                            "joined": data.get("joined", []),
                        }
                    )
                    if self.settings.stop_on_worker_loss:
                        self._errors.append(f"load worker {tick.get('worker')} was lost")
                        return "error"
                elif kind == "log":
                    self._emit("log", {"level": tick.get("level"), "message": tick.get("message")})
                    self._errors.append(str(tick.get("message")))
                elif kind == "error":
                    raise EnvironmentProblem(f"load engine: {tick.get('message')}")
                elif kind == "done":
                    return (
                        self._stop_reason
                        if self._stop.is_set() and self._stop_reason
                        else ("completed")
                    )
            now = self.clock()
            while now >= next_sample:
                metrics = self.aggregator.sample(next_sample)
                self._emit("sample", {"metrics": metrics}, t=next_sample)
                timeline.on_sample(next_sample, metrics)
                self._update_phase(timeline, next_sample)
                tripped = guardrails.observe(next_sample, metrics)
                if tripped is not None:
                    self._abort = tripped
                    self._emit(
                        "guardrail_breached",
                        {
                            "metric": tripped.metric,
                            "value": tripped.value,
                            "min": tripped.min,
                            "max": tripped.max,
                        },
                    )
                    return "aborted"
                next_sample += 1.0
                if next_sample - 1.0 >= next_check:
                    next_check += _LIVE_CHECK_EVERY_S
                    self._live_checks(live_checks, next_sample - 1.0)
            if timeline.failures:
                self._errors.extend(timeline.failures)
                return "error"
            if now - last_summary >= _SUMMARY_EVERY_S:
                last_summary = now
                self._write_summary(started_at, "running", None, timeline, [], None)
            if now > end + _END_GRACE_S + 5.0:
                return "completed"  # the engine overran its own end; do not wait for it
            if load.returncode is not None and tick is None:
                return "completed" if load.returncode == 0 else "error"

    def _live_checks(self, thresholds: list[Threshold], t: float) -> None:
        """Each hypothesis on the current phase so far: what the verdict would be now.

        The open-ended window (start, inf) matches the current phase's merged histograms and
        the whole run matches ``overall()``: both cheap however long the run has gone on,
        where an arbitrary (start, t] would merge every second's histogram again each time.
        """
        overall = self.aggregator.overall() if thresholds else {}
        for threshold in thresholds:
            if threshold.phase not in ("all", "overall", self._phase):
                continue
            phase = "overall" if threshold.phase == "overall" else self._phase
            start = 0.0 if phase == "overall" else self._phase_started
            if t - start < 1.0:
                continue
            value = (
                overall.get(threshold.metric)
                if phase == "overall"
                else self.aggregator.window(threshold.metric, start, math.inf)
            )
            self._emit(
                "check",
                {
                    "kind": "hypothesis",
                    "phase": phase,
                    "metric": threshold.metric,
                    "min": threshold.min,
                    "max": threshold.max,
                    "value": value,
                    "ok": threshold.ok(value),
                    "window": [round(start, 3), round(t, 3)],
                    "live": True,
                },
                t=t,
            )

    def _drain_ticks(self, load: LoadProcess) -> None:
        """Take in the ticks the engine flushed while stopping."""
        while True:
            tick = load.poll_tick(timeout=0.2)
            if tick is None:
                return
            if tick.get("type") == "tick":
                self.aggregator.add_tick(tick)

    def _update_phase(self, timeline: FaultTimeline, t: float) -> None:
        active = timeline.active
        applied = [s for s in timeline.states if s.applied_at is not None]
        if active:
            phase = "during"
        elif applied:
            phase = "recovery"
        else:
            phase = "baseline"
        if phase != self._phase:
            self._phase = phase
            self._phase_started = t
            self.aggregator.mark_phase(phase, t)
            self._emit("phase_changed", {"phase": phase, "load_phase": self._load_phase_at(t)}, t=t)

    def _load_phase_at(self, t: float) -> str:
        for phase in self.plan.load_phases:
            if phase.start <= t < phase.end:
                return str(phase.label)
        return ""

    # --- parts -------------------------------------------------------------------------------
    def _fault_windows(self) -> list[FaultWindowSpec]:
        windows = []
        for fault in self.experiment.faults:
            trigger = None
            if fault.when is not None:
                trigger = Trigger(
                    metric=fault.when.metric,
                    above=fault.when.above,
                    below=fault.when.below,
                    for_s=fault.when.for_,
                )
            windows.append(
                FaultWindowSpec(
                    spec=FaultSpec(
                        name=fault.name,
                        kind=fault.kind,
                        target=fault.target,
                        params=fault.params(),
                    ),
                    start=None if trigger is not None else float(fault.at),
                    duration=fault.for_,
                    ramp=fault.ramp,
                    trigger=trigger,
                )
            )
        return windows

    def _load_spec(self) -> LoadSpec:
        load = self.experiment.load
        behaviour = load.behaviour
        return LoadSpec(
            run_id=self.run_id,
            run_dir=str(self.run_dir),
            gateway_url=self.endpoints.gateway_url,
            headers=dict(self.endpoints.headers),
            allowed_hosts=list(self.endpoints.allowed_hosts),
            t0=self._t0,
            duration_s=self.plan.duration_s,
            seed=self.experiment.seed,
            model=load.model,
            shape=load.shape.model_dump(mode="json", by_alias=True),
            base_dir=str(self._base_dir()),
            behaviour=SpecBehaviour(
                reclick=behaviour.reclick,
                think_time_s=behaviour.think_time,
                reuse_idempotency_key=behaviour.reuse_idempotency_key,
                request_timeout_s=behaviour.request_timeout,
            ),
            workers=self.settings.workers,
            expect_workers=self.settings.expect_workers,
            master_port=self.settings.master_port,
            stop_on_worker_loss=self.settings.stop_on_worker_loss,
            master_bind=self.settings.master_bind,
            max_inflight=load.max_inflight,
            orders_path=str(getattr(self.endpoints, "orders_path", "/orders")),
            intent_format="fields"
            if getattr(self.endpoints, "intent_format", "text") == "fields"
            else "text",
            caps=Caps.model_validate(self.settings.caps),
        )

    def _base_dir(self) -> Path:
        source = getattr(self.experiment, "source_path", None)
        return Path(source).parent if source else Path.cwd()

    def _configure_stack(self, admin: AdminClient, record: LiveRecord) -> dict[str, dict[str, Any]]:
        """Apply the experiment's stack settings; returns what to put back."""
        wanted = stack_settings(self.experiment.stack.model_dump(mode="python", exclude_none=True))
        previous: dict[str, dict[str, Any]] = {}
        for service, values in wanted.items():
            if not admin.has(service):
                self._emit(
                    "log",
                    {
                        "level": "warning",
                        "message": f"stack settings for {service} skipped: no admin",
                    },
                )
                continue
            current = admin.get(service)
            previous[service] = {k: current.get(k) for k in values}
            for key, value in previous[service].items():
                record.remember_setting(service, self.endpoints.services[service], key, value)
            admin.set(service, values)
            self._emit(
                "stack_configured",
                {"service": service, "settings": values, "previous": previous[service]},
            )
        return previous

    def _restore_stack(
        self, admin: AdminClient, record: LiveRecord, previous: dict[str, dict[str, Any]]
    ) -> None:
        """Put the stack's settings back to what they were before the run (faults included)."""
        pending = dict(record.record.restore)
        for service, entry in pending.items():
            values = dict(entry.get("settings", {}))
            values.update(previous.get(service, {}))
            try:
                admin.set(service, values)
                record.settings_restored(service)
            except ChaoskitError as exc:
                self._restore_failed = True
                self._errors.append(f"could not restore {service} settings: {exc}")

    def _threshold(self, check: Any) -> Threshold:
        return Threshold(
            metric=check.metric,
            min=check.min,
            max=check.max,
            phase=getattr(check, "phase", "all"),
            for_s=float(getattr(check, "for_", 0.0) or 0.0),
        )

    def _phases(self, timeline: FaultTimeline) -> dict[str, tuple[float, float] | None]:
        end = min(self.clock(), self.plan.duration_s)
        spans = timeline.observed_windows()
        if not spans:
            return {"baseline": (0.0, end), "during": None, "recovery": None}
        first = min(s for s, _ in spans)
        last = max(e for _, e in spans)
        return {
            "baseline": (0.0, first) if first >= 1.0 else None,
            "during": (first, min(last, end)),
            "recovery": (last, end) if end - last >= 1.0 else None,
        }

    def _final_checks(
        self, timeline: FaultTimeline, audit: AuditResult | None
    ) -> list[CheckResult]:
        overall = self.aggregator.overall()
        thresholds = [self._threshold(h) for h in self.experiment.hypothesis]
        checks = judge(
            [t for t in thresholds if t.metric not in AUDIT_METRICS],
            phases=self._phases(timeline),
            window=self.aggregator.window,
            overall=overall,
        )
        # Audit metrics exist once, after the drain: judged on the whole run.
        for threshold in (t for t in thresholds if t.metric in AUDIT_METRICS):
            invariant = None if audit is None else audit.invariants.get(threshold.metric)
            if audit is None or audit.status == "skipped" or invariant is None:
                reason = "audit skipped" if audit is None else (audit.reason or "audit skipped")
                checks.append(
                    CheckResult(
                        "hypothesis",
                        "overall",
                        threshold.metric,
                        threshold.min,
                        threshold.max,
                        None,
                        None,
                        note=reason,
                    )
                )
            else:
                value = float(invariant.count)
                checks.append(
                    CheckResult(
                        "hypothesis",
                        "overall",
                        threshold.metric,
                        threshold.min,
                        threshold.max,
                        value,
                        threshold.ok(value),
                        note="audit after drain",
                    )
                )
        guardrails = GuardrailWatch([self._threshold(g) for g in self.experiment.guardrails])
        checks.extend(guardrails.final(self._abort))
        if audit is not None and audit.status != "skipped":
            for name, invariant in audit.invariants.items():
                checks.append(
                    CheckResult(
                        "audit",
                        "overall",
                        name,
                        None,
                        0.0,
                        float(invariant.count),
                        invariant.count == 0,
                    )
                )
        return checks

    def _verdict(
        self, status: Status, checks: list[CheckResult], audit: AuditResult | None
    ) -> tuple[Verdict, int]:
        if status == "error":
            return "error", 4
        if status in ("aborted", "interrupted"):
            return "aborted", 3
        failed = [c for c in checks if c.ok is False and c.kind in ("hypothesis", "audit")]
        return ("violated", 1) if failed else ("held", 0)

    def _write_summary(
        self,
        started_at: datetime,
        status: str,
        verdict: str | None,
        timeline: FaultTimeline,
        checks: list[CheckResult],
        audit: AuditResult | None,
        *,
        exit_code: int | None = None,
    ) -> dict[str, Any]:
        per_phase: dict[str, dict[str, float | None]] = {}
        if status != "running":  # per-phase figures are computed once, at the end
            for phase, span in self._phases(timeline).items():
                if span is not None:
                    row = self.aggregator.windows(span[0], span[1])
                    per_phase[phase] = dict(row)
        experiment = self.experiment
        summary: dict[str, Any] = {
            "schema": 1,
            "run_id": self.run_id,
            "experiment": {
                "name": experiment.name,
                "description": experiment.description,
                "file": str(getattr(experiment, "source_path", "") or ""),
                "seed": experiment.seed,
                "target": self.endpoints.name,
            },
            "started_at": started_at.isoformat(),
            "ended_at": datetime.now(UTC).isoformat() if status != "running" else None,
            "duration_s": round(max(0.0, self.clock()), 3),
            "status": status,
            "verdict": verdict,
            "exit_code": exit_code,
            "environment": {
                "chaoskit_version": __version__,
                "python": platform.python_version(),
                "platform": platform.platform(),
                "target_kind": self.endpoints.kind,
                "workers": self.settings.workers,
            },
            "metrics": self.aggregator.overall(),
            "phases": per_phase,
            "checks": [c.to_json() for c in checks],
            "faults": timeline.to_json(),
            "audit": audit.to_json()
            if audit is not None
            else {"status": "skipped", "reason": "run did not reach the audit", "invariants": {}},
            "abort": None
            if self._abort is None
            else {
                "reason": "guardrail",
                "metric": self._abort.metric,
                "value": self._abort.value,
                "limit": self._abort.max if self._abort.max is not None else self._abort.min,
                "t": self._abort.t,
            },
            "plan": self.plan.to_json(),
            "load_workers": list(self._worker_changes),
            "errors": list(self._errors),
        }
        if status == "interrupted":
            summary["abort"] = {"reason": "signal", "t": round(self.clock(), 3)}
        try:
            self.summary.write(Summary.model_validate(summary))
        except Exception as exc:  # a summary that does not fit its schema is still written
            summary["errors"] = [*summary["errors"], f"summary did not validate: {exc}"]
            (self.run_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
        return summary
