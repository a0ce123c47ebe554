"""The run stage: drive the load, play the fault timeline, watch the guardrails, always roll back.

A run never ends by an exception escaping: it ends with a status from a fixed set
(completed / aborted / interrupted / error), recorded in summary.json, and the CLI maps
that and the verdict to an exit code.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import secrets
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from chaoskit.errors import ChaoskitError, EnvironmentProblem
from chaoskit.events import (
    AuditDone,
    CheckJudged,
    Event,
    EventBus,
    EventHandler,
    GuardrailTripped,
    LoadReshared,
    LogMessage,
    Phase,
    PhaseChanged,
    RunEnded,
    RunStarted,
    Sample,
    StackConfigured,
    WorkerLost,
)
from chaoskit.exit_codes import exit_code_for_verdict
from chaoskit.experiment.models import Check, Experiment
from chaoskit.faults.actuators import make_actuator
from chaoskit.faults.domain import AdminClient
from chaoskit.faults.timeline import FaultTimeline
from chaoskit.faults.toxiproxy import ToxiproxyClient
from chaoskit.journey import JourneyConfig, resolve_journey
from chaoskit.load.process import LoadProcess
from chaoskit.load.spec import Caps, LoadSpec
from chaoskit.observe.aggregate import MetricsAggregator
from chaoskit.observe.audit import AuditResult, drain, run_audit
from chaoskit.observe.exporter import MetricsExporter, RunMetrics
from chaoskit.observe.metrics import is_after_run
from chaoskit.observe.prometheus import PrometheusSampler, PrometheusSource
from chaoskit.observe.sampler import StatsSampler
from chaoskit.observe.team_ledger import TeamLedgerReader
from chaoskit.planning import Plan
from chaoskit.report.summary import (
    JournalWriter,
    SummaryWriter,
    WorkerChange,
)
from chaoskit.run.checks import CheckResult, GuardrailWatch
from chaoskit.run.health import EnvironmentWatch
from chaoskit.run.judging import check_phases, final_checks, unjudged, verdict_of
from chaoskit.run.lock import RunLock
from chaoskit.run.registry import LiveRecord, RunRegistry
from chaoskit.run.result import Abort, RunResult, Status
from chaoskit.run.settings import stack_settings
from chaoskit.run.summary import SummaryContext, final_summary, running_summary
from chaoskit.stack.endpoints import StackEndpoints

__all__ = ["RunSettings", "Runner"]

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
    # The team's Prometheus, sampled into the time series (checked before the run). None: off.
    prometheus: PrometheusSource | None = None
    # Serve the run's own metrics on 127.0.0.1:PORT for the team's Prometheus. None: off.
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"
    # The team's ledger (audit.ledger): the audit reads it instead of the stub's /ledger.
    ledger: TeamLedgerReader | None = None

    # The lock that makes this run the target's only one (taken by the caller before it
    # touched anything); the run watches it for a `chaoskit down --force` stop request.
    lock: RunLock | None = None


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
        self.aggregator = MetricsAggregator(failure_steps=self._journey_config().failure_steps())
        # Hook: the team's PromQL metrics are series like the built-in ones.
        if settings.prometheus is not None:
            self.aggregator.declare_external(
                settings.prometheus.aggregations(), interval_s=settings.prometheus.interval_s
            )
        # Hook: the run's own metrics for the team's Prometheus (--metrics-port).
        self.run_metrics: RunMetrics | None = None
        if settings.metrics_port is not None:
            self.run_metrics = RunMetrics(
                run_id=self.run_id,
                experiment=experiment.name,
                faults={f.name: (f.kind, f.target) for f in experiment.faults},
            )
            self.bus.subscribe(self.run_metrics)
        self._t0 = 0.0
        self._phase: Phase = "baseline"

    # --- control -----------------------------------------------------------------------------
    def request_stop(self, reason: Status = "interrupted") -> None:
        """Ask the run to end now (Ctrl-C, SIGTERM); faults are rolled back first."""
        if self._stop_reason is None:
            self._stop_reason = reason
        self._stop.set()

    def clock(self) -> float:
        """Run time: seconds since the load started."""
        return time.time() - self._t0

    def _emit(self, event: Event) -> None:
        self.bus.emit(event)

    def _handler_failed(self, handler: object, exc: BaseException) -> None:
        message = f"{type(handler).__name__} failed and was detached from the run: {exc}"
        if handler is self.journal:
            self._report_failed = True  # the run's record is incomplete: never a clean verdict
        self._errors.append(message)
        # The journal itself failing must not stop the run either.
        with contextlib.suppress(Exception):
            self.journal.handle(LogMessage(t=self.clock(), level="error", message=message))

    # --- the run ----------------------------------------------------------------------------
    def execute(self) -> RunResult:
        """Run the experiment to its end; never raises (a KeyboardInterrupt is rolled back,
        recorded as "interrupted" and flagged in ``keyboard_interrupt`` for the caller)."""
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
            windows=self.plan.fault_windows,
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
        prom_sampler: PrometheusSampler | None = None
        exporter: MetricsExporter | None = None
        restored_settings: dict[str, dict[str, Any]] = {}
        audit: AuditResult | None = None
        try:
            if self.run_metrics is not None and self.settings.metrics_port is not None:
                exporter = MetricsExporter(
                    self.run_metrics,
                    port=self.settings.metrics_port,
                    host=self.settings.metrics_host,
                )
                exporter.start()
            self._emit(
                RunStarted(
                    t=-delay,
                    run_id=self.run_id,
                    experiment=self.experiment.name,
                    target=self.endpoints.name,
                    duration_s=self.plan.duration_s,
                    plan=self.plan.to_json(),
                )
            )
            if self.settings.lock is not None and self.settings.lock.took_over:
                self._emit(
                    LogMessage(
                        t=self.clock(), level="warning", message=self.settings.lock.took_over
                    )
                )
            self._write_summary(started_at, timeline)
            restored_settings = self._configure_stack(admin, record)
            if self.endpoints.services:
                sampler = StatsSampler(
                    self.endpoints.services,
                    on_sample=self.aggregator.add_stats,
                    clock=self.clock,
                )
                sampler.start()
            if self.settings.prometheus is not None:
                prom_sampler = PrometheusSampler(
                    self.settings.prometheus,
                    on_values=self.aggregator.add_external,
                    clock=self.clock,
                )
                prom_sampler.start()
            self._env = self._environment_watch(sampler, timeline)
            self.aggregator.mark_phase("baseline", 0.0)
            # Every view starts in the baseline (the progress line said "phase=-" until then).
            self._emit(PhaseChanged(t=0.0, phase="baseline", load_phase=self._load_phase_at(0.0)))
            load = LoadProcess.start(self._load_spec())
            self._await_ready(load)
            timeline.start()
            status = self._watch(load, timeline, started_at)
        except ChaoskitError as exc:
            status = "error"
            self._errors.append(str(exc))
        except OSError as exc:  # the reports folder (or the state folder) cannot be written
            status = "error"
            self._errors.append(_os_error(exc))
        except Exception as exc:  # an unexpected failure still ends in rollback and a summary
            status = "error"
            self._errors.append(f"{type(exc).__name__}: {exc}")
        except KeyboardInterrupt:  # rolled back and recorded here; the caller re-raises it
            status = "interrupted"
            self._stop_reason = "interrupted"
            self.keyboard_interrupt = True
        finally:
            # Faults first: they are what can hurt a shared environment.
            rollback_errors = timeline.stop(reason=status if status != "completed" else "run ended")
            self._errors.extend(rollback_errors)
            if self._env is not None:
                self._env.stop()
            if rollback_errors:
                # What the run left applied is unknown: never a verdict on that.
                status = "error"
            if load is not None:
                load.stop()
                self._drain_ticks(load)
                if load.returncode not in (0, None) and (status == "completed" or not self._errors):
                    status = "error"
                    self._errors.append(f"load engine failed: {load.failure_reason()}")
            if sampler is not None:
                sampler.stop()
            if prom_sampler is not None:
                prom_sampler.stop()
                if prom_sampler.rounds and prom_sampler.failures:
                    self._emit(
                        LogMessage(
                            t=self.clock(),
                            level="warning",
                            message=f"Prometheus: {sum(prom_sampler.failures.values())} "
                            f"queries gave no answer; last: {prom_sampler.last_error}",
                        )
                    )
        try:
            status, audit = self._drain_and_audit(status, timeline)
        except KeyboardInterrupt:  # rolled back below and recorded; the caller re-raises it
            status = "interrupted"
            self.keyboard_interrupt = True
        finally:
            # The experiment's stack settings stay until the drain is over, so in-flight
            # orders finish under the design the run rehearsed (restoring first turned the
            # drain's failures into lost entitlements of a design the run never had).
            self._restore_stack(admin, record, restored_settings)
            if self._restore_failed:
                status = "error"
            if not rollback_errors and not self._restore_failed:
                record.close()
            if watchdog is not None:
                watchdog.stop()
        if audit is not None:
            self._emit(AuditDone(t=self.clock(), audit=audit.to_json()))
        admin.close()
        for client in clients.values():
            client.close()
        checks = self._final_checks(timeline, audit)
        status = self._unjudged(status, checks)
        if self._report_failed:
            status = "error"
        verdict = verdict_of(status, checks, self.plan.hypothesis)
        result = RunResult(
            run_id=self.run_id,
            status=status,
            verdict=verdict,
            exit_code=exit_code_for_verdict(verdict),
            checks=tuple(checks),
            metrics={**self.aggregator.overall(), **(audit.kpis() if audit else {})},
            phases=self._phase_metrics(timeline, audit),
            audit=audit,
            faults=timeline.records(),
            abort=self._abort_record(status),
            errors=tuple(self._errors),
            run_dir=self.run_dir,
            duration_s=round(max(0.0, self.clock()), 3),
        )
        self._started_at = started_at
        if not self._write_summary(started_at, timeline, result) and result.status != "error":
            # A run whose record could not be written is an error, whatever it measured.
            result = self.as_error(result, [])
        for check in checks:
            self._emit(check.event(self.clock()))
        self._emit(
            RunEnded(
                t=self.clock(),
                status=result.status,
                verdict=result.verdict,
                exit_code=int(result.exit_code),
            )
        )
        if exporter is not None:
            exporter.stop()
        with contextlib.suppress(Exception):
            self.journal.close()
        return result

    def as_error(self, result: RunResult, errors: list[str]) -> RunResult:
        """``result`` turned into an error (a report of it could not be written): summary.json
        says so too, so the file and the exit code never disagree."""
        self._errors.extend(errors)
        result = dataclasses.replace(
            result,
            status="error",
            verdict="error",
            exit_code=exit_code_for_verdict("error"),
            errors=tuple(self._errors),
        )
        self._write_summary(self._started_at, None, result)
        return result

    _started_at = datetime.now(UTC)
    _restore_failed = False
    _report_failed = False
    _env: EnvironmentWatch | None = None

    def _environment_watch(
        self, sampler: StatsSampler | None, timeline: FaultTimeline
    ) -> EnvironmentWatch:
        """Start watching Toxiproxy, the services and the lock's stop request."""

        def excused() -> set[str]:
            # A container fault stops its service on purpose.
            return {s.window.target for s in timeline.active if s.window.family == "container"}

        lock = self.settings.lock
        watch = EnvironmentWatch(
            toxiproxy_urls=self.endpoints.toxiproxy_urls,
            sampler=sampler,
            clock=self.clock,
            stop_requested=None if lock is None else lock.stop_requested,
            excused=excused,
        )
        watch.start()
        return watch

    def _unjudged(self, status: Status, checks: list[CheckResult]) -> Status:
        """A check that could not be judged is never a pass: named in the errors, and the
        run is an error unless another check was violated (that is a finding either way)."""
        if status != "completed":
            return status
        gaps = unjudged(checks, self.plan.hypothesis)
        for check in gaps:
            phase = f" [{check.phase}]" if check.phase else ""
            self._errors.append(
                f"{check.kind} {check.metric}{phase} could not be judged: {check.note or 'no data'}"
            )
        if gaps and verdict_of(status, checks, self.plan.hypothesis) != "violated":
            return "error"
        return status

    keyboard_interrupt = False
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
                message = str(record.get("message"))
                self._emit(
                    LogMessage(
                        t=self.clock(),
                        level="error" if record.get("level") == "error" else "warning",
                        message=message,
                    )
                )

    def _on_worker_lost(self, record: dict[str, Any]) -> None:
        """A worker is gone: when, which, and how much of the load it ran (for the report)."""
        at = float(record.get("t", self.clock()))
        share = record.get("share")
        left = record.get("workers_left")
        worker = str(record.get("worker"))
        self._emit(
            WorkerLost(
                t=at,
                worker=worker,
                share=None if share is None else float(share),
                workers_left=None if left is None else int(left),
            )
        )
        self._worker_changes.append(
            {"t": at, "change": "lost", "worker": worker, "share": share, "workers": left or 0}
        )

    def _on_reshare(self, record: dict[str, Any]) -> None:
        """The load was split anew over the workers there are (a loss, a join, a return)."""
        at = float(record.get("t", self.clock()))
        event = LoadReshared(
            t=at,
            from_t=float(record["from_t"]),
            workers=int(record["workers"]),
            epoch=int(record.get("epoch", 0)),
            lost=tuple(str(w) for w in record.get("lost", [])),
            joined=tuple(str(w) for w in record.get("joined", [])),
        )
        self._emit(event)
        self._worker_changes.append(
            {
                "t": at,
                "change": "reshared",
                "from_t": event.from_t,
                "workers": event.workers,
                "lost": list(event.lost),
                "joined": list(event.joined),
            }
        )

    def _watch(self, load: LoadProcess, timeline: FaultTimeline, started_at: datetime) -> Status:
        """The main loop: ticks in, samples out, guardrails and triggers checked each second."""
        self._worker_changes = []
        guardrails = GuardrailWatch(self.plan.guardrails)
        live_checks = [h for h in self.plan.hypothesis if not is_after_run(h.metric)]
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
                    if self.run_metrics is not None:
                        self.run_metrics.add_tick(tick)
                elif kind == "reshare":
                    self._on_reshare(tick)
                elif kind == "worker_lost":
                    self._on_worker_lost(tick)
                    if self.settings.stop_on_worker_loss:
                        self._errors.append(f"load worker {tick.get('worker')} was lost")
                        return "error"
                elif kind == "log":
                    message = str(tick.get("message"))
                    self._emit(
                        LogMessage(
                            t=self.clock(),
                            level="error" if tick.get("level") == "error" else "warning",
                            message=message,
                        )
                    )
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
                self._emit(Sample(t=next_sample, metrics=metrics))
                timeline.on_sample(next_sample, metrics)
                self._update_phase(timeline, next_sample)
                tripped = guardrails.observe(next_sample, metrics)
                if tripped is not None:
                    self._abort = tripped
                    self._emit(
                        GuardrailTripped(
                            t=next_sample,
                            metric=tripped.metric,
                            value=tripped.value,
                            min=tripped.min,
                            max=tripped.max,
                        )
                    )
                    return "aborted"
                next_sample += 1.0
                if next_sample - 1.0 >= next_check:
                    next_check += _LIVE_CHECK_EVERY_S
                    self._live_checks(live_checks, next_sample - 1.0)
            if timeline.failures:
                self._errors.extend(timeline.failures)
                return "error"
            if self._env is not None:
                failure = self._env.check()
                if failure is not None:
                    self._errors.append(f"environment: {failure}")
                    self._emit(
                        LogMessage(t=self.clock(), level="error", message=f"environment: {failure}")
                    )
                    return "error"
            if now - last_summary >= _SUMMARY_EVERY_S:
                last_summary = now
                if not self._write_summary(started_at, timeline):
                    return "error"  # nothing of this run can be recorded: end it, roll back
            if now > end + _END_GRACE_S + 5.0:
                return "completed"  # the engine overran its own end; do not wait for it
            if load.returncode is not None and tick is None:
                return "completed" if load.returncode == 0 else "error"

    def _live_checks(self, thresholds: Sequence[Check], t: float) -> None:
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
                CheckJudged(
                    t=t,
                    kind="hypothesis",
                    phase=phase,
                    metric=threshold.metric,
                    min=threshold.min,
                    max=threshold.max,
                    value=value,
                    ok=threshold.ok(value),
                    window=(round(start, 3), round(t, 3)),
                    live=True,
                )
            )

    def _drain_ticks(self, load: LoadProcess) -> None:
        """Take in the ticks the engine flushed while stopping."""
        while True:
            tick = load.poll_tick(timeout=0.2)
            if tick is None:
                return
            if tick.get("type") == "tick":
                self.aggregator.add_tick(tick)
                if self.run_metrics is not None:
                    self.run_metrics.add_tick(tick)

    def _update_phase(self, timeline: FaultTimeline, t: float) -> None:
        active = timeline.active
        applied = [s for s in timeline.states if s.applied_at is not None]
        phase: Phase
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
            self._emit(PhaseChanged(t=t, phase=phase, load_phase=self._load_phase_at(t)))

    def _load_phase_at(self, t: float) -> str:
        for phase in self.plan.load_phases:
            if phase.start <= t < phase.end:
                return str(phase.label)
        return ""

    # --- parts -------------------------------------------------------------------------------
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
            behaviour=behaviour,
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
            journey=self._journey(),
        )

    def _journey_config(self) -> JourneyConfig:
        """The journey this run drives (the built-in agent-buyer unless one is named)."""
        return resolve_journey(
            self._journey(),
            orders_path=str(getattr(self.endpoints, "orders_path", "/orders")),
            intent_format="fields"
            if getattr(self.endpoints, "intent_format", "text") == "fields"
            else "text",
        )

    def _journey(self) -> JourneyConfig | None:
        """The experiment's journey, else the target's; None: the built-in agent-buyer."""
        own = self.experiment.load.journey
        if own is not None:
            return own.resolved(self._base_dir())
        journey = getattr(self.endpoints, "journey", None)
        return journey if isinstance(journey, JourneyConfig) else None

    def _base_dir(self) -> Path:
        source = getattr(self.experiment, "source_path", None)
        return Path(source).parent if source else Path.cwd()

    def _configure_stack(self, admin: AdminClient, record: LiveRecord) -> dict[str, dict[str, Any]]:
        """Apply the experiment's stack settings; returns what to put back."""
        wanted = stack_settings(self.experiment.stack.model_dump(mode="python", exclude_none=True))
        previous: dict[str, dict[str, Any]] = {}
        for service, values in wanted.items():
            if not admin.has(service):
                message = f"stack settings for {service} skipped: no admin"
                self._emit(LogMessage(t=self.clock(), level="warning", message=message))
                continue
            current = admin.get(service)
            previous[service] = {k: current.get(k) for k in values}
            for key, value in previous[service].items():
                record.remember_setting(service, self.endpoints.services[service], key, value)
            admin.set(service, values)
            self._emit(
                StackConfigured(
                    t=self.clock(), service=service, settings=values, previous=previous[service]
                )
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

    def _phases(self, timeline: FaultTimeline) -> dict[str, tuple[float, float] | None]:
        return check_phases(timeline.observed_windows(), min(self.clock(), self.plan.duration_s))

    def _final_checks(
        self, timeline: FaultTimeline, audit: AuditResult | None
    ) -> list[CheckResult]:
        return final_checks(
            hypothesis=self.plan.hypothesis,
            guardrails=self.plan.guardrails,
            phases=self._phases(timeline),
            window=self.aggregator.window,
            overall=self.aggregator.overall(),
            audit=audit,
            tripped=self._abort,
        )

    def _drain_and_audit(
        self, status: Status, timeline: FaultTimeline
    ) -> tuple[Status, AuditResult | None]:
        """Wait for in-flight work, then reconcile the ledger (an unreadable one: error)."""
        audit: AuditResult | None = None
        if status != "error" and self.settings.ledger is not None:
            # Hook: the team's own ledger is the audit's source of truth.
            self._emit(PhaseChanged(t=self.clock(), phase="drain"))
            try:
                if "gateway" in self.endpoints.services:
                    drain(self.endpoints.services, timeout_s=self.settings.drain_timeout_s)
                else:
                    time.sleep(min(_END_GRACE_S, self.settings.drain_timeout_s))
                audit = self.settings.ledger.audit(
                    self.run_id,
                    self.run_dir / "outcomes",
                    credit_slo_s=self.experiment.audit.credit_slo,
                    started_at=self._t0,
                )
            except ChaoskitError as exc:
                # The team's ledger could not be read: nothing was judged, an error.
                status = "error"
                self._errors.append(f"audit: {exc}")
        elif status != "error" and self.endpoints.services:
            self._emit(PhaseChanged(t=self.clock(), phase="drain"))
            try:
                drain(self.endpoints.services, timeout_s=self.settings.drain_timeout_s)
                audit = run_audit(
                    self.endpoints.services,
                    self.run_dir / "outcomes",
                    credit_slo_s=self.experiment.audit.credit_slo,
                    phases=self._wall_phases(timeline),
                )
            except ChaoskitError as exc:
                # An audit that could not read the ledger judged nothing: an error, not a pass.
                status = "error"
                self._errors.append(f"audit: {exc}")
        elif not self.endpoints.services:
            audit = run_audit({}, self.run_dir / "outcomes")
        return status, audit

    def _phase_metrics(
        self, timeline: FaultTimeline, audit: AuditResult | None
    ) -> dict[str, dict[str, float | None]]:
        """Each check phase's metrics, computed once: the values the checks judged."""
        return {
            phase: {
                **self.aggregator.windows(span[0], span[1]),
                **(audit.kpis(phase) if audit is not None else {}),
            }
            for phase, span in self._phases(timeline).items()
            if span is not None
        }

    def _wall_phases(self, timeline: FaultTimeline) -> dict[str, tuple[float, float]]:
        """The check phases as epoch-second spans, for the audit's per-phase ledger KPIs."""
        spans = {n: s for n, s in self._phases(timeline).items() if s is not None}
        # The last phase runs on to the drain: late answers of its intents belong to it.
        last = max(spans, key=lambda n: spans[n][0], default=None)
        return {
            name: (self._t0 + start, math.inf if name == last else self._t0 + end)
            for name, (start, end) in spans.items()
        }

    def _abort_record(self, status: Status) -> Abort | None:
        if status == "interrupted":
            return Abort(reason="signal", t=round(self.clock(), 3))
        if self._abort is None:
            return None
        return Abort(
            reason="guardrail",
            t=self._abort.t if self._abort.t is not None else round(self.clock(), 3),
            metric=self._abort.metric,
            value=self._abort.value,
            limit=self._abort.max if self._abort.max is not None else self._abort.min,
        )

    def _write_summary(
        self,
        started_at: datetime,
        timeline: FaultTimeline | None,
        result: RunResult | None = None,
    ) -> bool:
        """summary.json: while running (``result`` None) from live values, then from the result."""
        context = SummaryContext(
            run_id=self.run_id,
            experiment=self.experiment,
            plan=self.plan,
            target_name=self.endpoints.name,
            target_kind=self.endpoints.kind,
            workers=self.settings.workers,
            started_at=started_at,
        )
        if result is not None:
            summary = final_summary(context, result)
        elif timeline is not None:
            summary = running_summary(
                context,
                duration_s=self.clock(),
                metrics=self.aggregator.overall(),
                faults=timeline.records(),
                errors=self._errors,
            )
        else:
            raise ValueError("a running summary needs the timeline")
        if self._worker_changes:  # when, which worker, how much load moved
            changes = [WorkerChange.model_validate(c) for c in self._worker_changes]
            summary = summary.model_copy(update={"load_workers": changes})
        try:
            self.summary.write(summary)
        except OSError as exc:
            self._report_failed = True
            message = _os_error(exc)
            if message not in self._errors:
                self._errors.append(message)
            # A folder that takes no new file may still let summary.json be rewritten.
            with (
                contextlib.suppress(OSError),
                (self.run_dir / "summary.json").open("r+", encoding="utf-8") as handle,
            ):
                handle.truncate(0)
                handle.write(summary.to_json_text())
            return False
        return True


def _os_error(exc: OSError) -> str:
    """One line for a file that could not be written: which file and why."""
    where = f" {exc.filename}" if exc.filename else ""
    return f"reports: cannot write{where}: {exc.strerror or exc}"
