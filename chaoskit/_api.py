"""chaoskit's public functions: load -> plan -> rehearse, each callable on its own.

``rehearse`` is the whole run the CLI's ``chaoskit run`` does, as a function: it brings a
stack up when none is, plays the experiment, writes the reports and returns a ``RunResult``.
It never calls ``sys.exit``, prints nothing unless given a handler that does, installs
signal handlers only when asked, and rolls every fault back before it returns or raises.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import replace
from pathlib import Path
from types import FrameType

from chaoskit.errors import InputError
from chaoskit.events import Event, EventHandler
from chaoskit.experiment.loader import load_experiment
from chaoskit.experiment.models import Experiment
from chaoskit.load.limits import check_load_limits
from chaoskit.load.spec import LOCAL_HOSTS
from chaoskit.observe.exporter import check_port_free
from chaoskit.observe.team import team_observation
from chaoskit.planning import Plan, build_plan
from chaoskit.report import write_reports
from chaoskit.report.rundir import make_run_dir
from chaoskit.run.ownership import hold_target
from chaoskit.run.result import RunResult
from chaoskit.run.runner import Runner, RunSettings, new_run_id
from chaoskit.run.safety import SafetyReview, preflight
from chaoskit.stack.backend import ProgressCallback, StackBackend
from chaoskit.stack.factory import open_backend
from chaoskit.stack.state import chaoskit_home
from chaoskit.stack.target import AttachTarget, DockerTarget, LocalTarget, Target, load_target

__all__ = ["load_experiment", "plan", "rehearse", "resolve_target", "review"]

ExperimentLike = Experiment | str | os.PathLike[str]
TargetLike = Target | str | os.PathLike[str] | None


def plan(experiment: ExperimentLike) -> Plan:
    """Lay an experiment (or the file it is in) out on its time axis; starts nothing."""
    return build_plan(_experiment(experiment))


def resolve_target(experiment: Experiment, target: TargetLike = None) -> Target:
    """The target a run uses: ``target`` when given, else the experiment's own.

    A relative target file named inside an experiment is found next to that experiment.
    """
    if isinstance(target, LocalTarget | DockerTarget | AttachTarget):
        return target
    if target is not None:
        return load_target(target)
    name = experiment.target
    source = getattr(experiment, "source_path", None)
    if name not in ("local", "docker") and source is not None:
        return load_target(Path(source).parent / name)
    return load_target(name)


def review(experiment: ExperimentLike, *, target: TargetLike = None) -> SafetyReview | None:
    """What an attach run would do (hosts, load, faults, caps), refused early when unsafe.

    None for the local and docker stacks, which chaoskit owns. Touches nothing.
    """
    loaded = _experiment(experiment, target)
    stack_target = resolve_target(loaded, target)
    if stack_target.kind != "attach":
        return None
    backend = open_backend(stack_target)
    return preflight(
        experiment=loaded,
        plan=build_plan(loaded),
        target=stack_target,
        endpoints=backend.endpoints(),
    )


def rehearse(
    experiment: ExperimentLike,
    *,
    target: TargetLike = None,
    workers: int = 0,
    expect_workers: int = 0,
    master_port: int = 5557,
    master_bind: str = "127.0.0.1",
    stop_on_worker_loss: bool = False,
    on_event: Callable[[Event], None] | None = None,
    handlers: list[EventHandler] | None = None,
    reports_dir: str | os.PathLike[str] | None = None,
    keep_stack: bool = False,
    confirm: bool | Callable[[SafetyReview], bool] = False,
    handle_signals: bool = False,
    stack_progress: AbstractContextManager[ProgressCallback] | None = None,
    metrics_port: int | None = None,
) -> RunResult:
    """Play ``experiment`` against its target and return what it found.

    ``target``: a Target, "local", "docker" or a target file (default: the experiment's).
    ``on_event``: called with every typed event as it happens; its exceptions are recorded
    and the handler detached, never stopping the run or its rollback.
    ``confirm``: attach targets only: True to go ahead, or a function shown the
    ``SafetyReview`` that returns whether to; False (the default) refuses an attach run.
    ``stack_progress``: entered only when a stack must be started, to show its start-up.
    ``handle_signals``: SIGINT, SIGTERM and SIGHUP end the run (rolled back, "interrupted")
    instead of killing the process. A KeyboardInterrupt is rolled back and re-raised.
    ``metrics_port``: serve the run's own metrics on 127.0.0.1:PORT/metrics while it runs.
    """
    loaded = _experiment(experiment, target)
    the_plan = build_plan(loaded)
    check_load_limits(
        workers=workers,
        expect_workers=expect_workers,
        model=the_plan.model,
        peak=the_plan.peak,
        unit=the_plan.unit,
    )
    stack_target = resolve_target(loaded, target)
    backend = open_backend(stack_target)
    extra: dict[str, object] = {}
    if stack_target.kind == "attach":
        safety = preflight(
            experiment=loaded, plan=the_plan, target=stack_target, endpoints=backend.endpoints()
        )
        allowed = confirm(safety) if callable(confirm) else confirm
        if not allowed:
            raise InputError("attach run not confirmed: nothing was touched")
        extra = {"watchdog_ttl_s": safety.watchdog_ttl_s, "caps": safety.caps}
    # The team's Prometheus and ledger: refused off the allow-list; before any load or fault
    # every query runs once and every ledger source is read once for this run's id (exit 2
    # refused, exit 4 unreachable or credentials refused); the metrics port must be free.
    run_id = new_run_id()
    team = team_observation(
        loaded, stack_target, allowed_hosts=_allowed_hosts(stack_target, backend)
    )
    team.check_before_load(run_id)
    if metrics_port is not None:
        check_port_free(metrics_port)
    extra.update(prometheus=team.prometheus, ledger=team.ledger, metrics_port=metrics_port)
    # One run owns the target from here to its end: a second is refused (RunBusy, exit 4).
    with hold_target(
        stack_target.name,
        run_id=run_id,
        toxiproxy_urls=lambda: (
            list(backend.endpoints().toxiproxy_urls) if backend.is_up() else None
        ),
    ) as lock:
        # The run folder first: a bad reports_dir must not cost a stack start.
        run_dir = make_run_dir(Path(reports_dir or loaded.report.dir), loaded.name, run_id=run_id)
        started_here = _ensure_up(backend, stack_progress)
        try:
            all_handlers = list(handlers or [])
            if on_event is not None:
                all_handlers.append(_Callback(on_event))
            runner = Runner(
                experiment=loaded,
                plan=the_plan,
                endpoints=backend.endpoints(),
                settings=RunSettings(
                    run_dir=run_dir,
                    state_dir=chaoskit_home(),
                    workers=expect_workers or workers,
                    expect_workers=expect_workers > 0,
                    master_port=master_port,
                    stop_on_worker_loss=stop_on_worker_loss,
                    master_bind=master_bind,
                    lock=lock,
                    **extra,  # type: ignore[arg-type]
                ),
                handlers=all_handlers,
                run_id=run_id,
            )
            with _signals_end(runner) if handle_signals else _nothing():
                result = runner.execute()
            written = write_reports(run_dir, list(loaded.report.formats))
            if written.errors and result.status != "error":
                # A report that could not be written is an error (exit 4), never a verdict.
                result = runner.as_error(
                    result, [f"{fmt} report: {why}" for fmt, why in written.errors.items()]
                )
            result = replace(
                result, reports=dict(written.paths), report_errors=dict(written.errors)
            )
        finally:
            if started_here and not keep_stack:
                backend.down()
    if runner.keyboard_interrupt:
        raise KeyboardInterrupt
    return result


class _Callback:
    """An ``on_event`` function as an event handler."""

    def __init__(self, function: Callable[[Event], None]) -> None:
        self._function = function

    def handle(self, event: Event) -> None:
        self._function(event)


def _experiment(experiment: ExperimentLike, target: TargetLike = None) -> Experiment:
    if isinstance(experiment, Experiment):
        return experiment
    # A target given apart from the experiment may add metric names (its PromQL queries).
    extra: tuple[str, ...] = ()
    if isinstance(target, LocalTarget | DockerTarget | AttachTarget):
        extra = target.metric_names()
    elif target is not None:
        extra = load_target(target).metric_names()
    return load_experiment(Path(experiment), extra_metrics=extra)


def _allowed_hosts(target: Target, backend: StackBackend) -> tuple[str, ...]:
    """Hosts the run may talk to: an attach target's allow-list, or this machine for a stub
    stack (which may not be up yet: the run starts it)."""
    if isinstance(target, AttachTarget) or backend.is_up():
        return tuple(backend.endpoints().allowed_hosts)
    return tuple(sorted(LOCAL_HOSTS))


def _ensure_up(
    backend: StackBackend, progress: AbstractContextManager[ProgressCallback] | None
) -> bool:
    """Start the stack unless it is up; True when this call started it."""
    if backend.is_up():
        return False
    with progress if progress is not None else nullcontext(None) as callback:
        backend.up(progress=callback)
    return True


@contextmanager
def _signals_end(runner: Runner) -> Iterator[None]:
    """While inside: SIGINT, SIGTERM and SIGHUP (a closed terminal) end the run, rolled back."""

    def on_signal(signum: int, frame: FrameType | None) -> None:
        runner.request_stop("interrupted")

    wanted = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {s: signal.signal(s, on_signal) for s in wanted}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@contextmanager
def _nothing() -> Iterator[None]:
    yield
