"""`chaoskit run` and `chaoskit cleanup`: play an experiment, undo what a killed run left."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer

from chaoskit import Experiment, RunResult, load_experiment, plan, rehearse, resolve_target, review
from chaoskit.cli._app import app, console, err_console
from chaoskit.cli.experiment import render_plan
from chaoskit.errors import InputError
from chaoskit.events import Event
from chaoskit.run.cleanup import cleanup as run_cleanup
from chaoskit.stack.factory import open_backend
from chaoskit.stack.progress import RichStartupProgress
from chaoskit.stack.state import chaoskit_home
from chaoskit.stack.target import load_target


@app.command()
def run(
    experiment_file: Path = typer.Argument(..., help="The experiment YAML file."),
    target: str | None = typer.Option(
        None, "--target", "-t", help="Override the experiment's target: local, docker or a file."
    ),
    workers: int = typer.Option(
        0, "--workers", min=0, help="Run the load as a Locust master with N local worker processes."
    ),
    expect_workers: int = typer.Option(
        0,
        "--expect-workers",
        min=0,
        help="Wait for N workers started elsewhere (`chaoskit worker --master HOST:PORT`).",
    ),
    master_port: int = typer.Option(
        5557, "--master-port", min=1, max=65535, help="Port the Locust master listens on."
    ),
    master_bind: str = typer.Option(
        "127.0.0.1",
        "--master-bind",
        help="Address the Locust master listens on; e.g. 0.0.0.0 so other machines' workers "
        "(--expect-workers) can join. Loopback by default.",
    ),
    stop_on_worker_loss: bool = typer.Option(
        False,
        "--stop-on-worker-loss",
        help="End the run (status error) when a load worker is lost; default: go on, reported.",
    ),
    dashboard: bool = typer.Option(
        True, "--dashboard/--no-dashboard", help="Live dashboard (off: a plain progress line)."
    ),
    keep_stack: bool = typer.Option(
        False, "--keep-stack", help="Leave a stack this run started running afterwards."
    ),
    reports_dir: Path | None = typer.Option(
        None, "--reports-dir", help="Where run folders go (default: the experiment's report.dir)."
    ),
    yes: bool = typer.Option(
        False, "--yes", "-y", help="Attach targets: do not ask for confirmation before load."
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Show what the run would do (hosts, load, faults); touch nothing."
    ),
    metrics_port: int | None = typer.Option(
        None,
        "--metrics-port",
        min=1,
        max=65535,
        help="While the run is on, serve its own metrics (Prometheus format) on "
        "127.0.0.1:PORT/metrics for the team's Prometheus to scrape.",
    ),
) -> None:
    """Play an experiment: surge, faults, checks; always roll back; exit 0/1/2/3/4."""
    if target is not None:
        # The target first: the metrics its PromQL queries add are names the experiment may use.
        stack_target = load_target(target)
        experiment = load_experiment(experiment_file, extra_metrics=stack_target.metric_names())
    else:
        experiment = load_experiment(experiment_file)
        stack_target = resolve_target(experiment, None)
    safety = review(experiment, target=stack_target)
    if safety is not None:
        safety.render(console)
    elif dry_run:
        render_plan(plan(experiment), experiment, console, source=str(experiment_file))
    if dry_run:
        console.print("dry run: nothing was touched")
        raise typer.Exit(0)
    if safety is not None and not yes:
        if not sys.stdin.isatty():
            raise InputError("attach runs need confirmation: pass --yes (no terminal to ask)")
        if not typer.confirm("Run this against the target?", default=False):
            console.print("not confirmed: nothing was touched")
            raise typer.Exit(2)
    view = _view(experiment, dashboard=dashboard)
    try:
        result = rehearse(
            experiment,
            target=stack_target,
            workers=workers,
            expect_workers=expect_workers,
            master_port=master_port,
            master_bind=master_bind,
            stop_on_worker_loss=stop_on_worker_loss,
            handlers=[view],
            reports_dir=reports_dir,
            keep_stack=keep_stack,
            confirm=True,
            handle_signals=True,
            stack_progress=RichStartupProgress(err_console),
            metrics_port=metrics_port,
        )
    finally:
        view.stop()
    _print_result(result)
    raise typer.Exit(result.exit_code)


class _View:
    """The live dashboard (a terminal) or progress lines, started by the run's first event."""

    def __init__(self, handler: Any, live: bool) -> None:
        self._handler = handler
        self._live = live
        self._started = False

    def handle(self, event: Event) -> None:
        if self._live and not self._started:
            self._started = True
            self._handler.start()
        self._handler.handle(event)

    def stop(self) -> None:
        if self._started:
            self._handler.stop()


def _view(experiment: Experiment, *, dashboard: bool) -> _View:
    from chaoskit.dashboard import Dashboard, ProgressLine

    the_plan = plan(experiment).to_json()
    if dashboard and console.is_terminal:
        board = Dashboard(
            console=console,
            plan=the_plan,
            name=experiment.name,
            hypotheses=[_plain(h) for h in experiment.hypothesis],
            guardrails=[_plain(g) for g in experiment.guardrails],
        )
        return _View(board, live=True)
    return _View(ProgressLine(console=console, plan=the_plan), live=False)


def _print_result(result: RunResult) -> None:
    colour = {"held": "green", "violated": "red"}.get(result.verdict, "yellow")
    console.print(
        f"[bold {colour}]{result.verdict.upper()}[/] status={result.status} "
        f"run={result.run_id} exit={int(result.exit_code)}"
    )
    for check in result.failed_checks:
        console.print(f"  [red]✗[/] {check.describe()}", highlight=False)
    for error in result.errors:
        err_console.print(f"[red]error:[/] {error}", highlight=False, soft_wrap=True)
    console.print(f"reports: {result.run_dir}")
    for path in result.reports.values():
        console.print(f"  {path}", highlight=False)
    for fmt, reason in result.report_errors.items():
        err_console.print(f"[red]error:[/] {fmt} report: {reason}", highlight=False)


def _plain(model: Any) -> dict[str, Any]:
    dumped: dict[str, Any] = model.model_dump(mode="json", by_alias=True)
    return dumped


@app.command()
def cleanup(
    target: str = typer.Option("local", "--target", "-t", help="local, docker or a target file."),
    run_id: str | None = typer.Option(None, "--run", help="Only this run's leftovers."),
) -> None:
    """Remove faults and settings that killed runs left behind, and nothing else."""
    stack_target = load_target(target)
    backend = open_backend(stack_target)
    urls: list[str] = []
    if stack_target.kind == "attach":
        # Someone else runs it: its Toxiproxy may answer while its gateway does not.
        urls = list(backend.endpoints().toxiproxy_urls)
    elif backend.is_up():
        urls = list(backend.endpoints().toxiproxy_urls)
    report = run_cleanup(
        state_dir=chaoskit_home(), toxiproxy_urls=urls, run_id=run_id, target=stack_target.name
    )
    for label, items in (
        ("removed toxic", report.toxics_removed),
        ("re-enabled proxy", report.proxies_enabled),
        ("restored settings of", report.settings_restored),
        ("restored container", report.containers_restored),
        ("forgot run", report.runs_forgotten),
        ("left alone (still running)", report.live_runs),
    ):
        for item in items:
            console.print(f"{label}: {item}", highlight=False)
    for error in report.errors:
        err_console.print(f"[red]error:[/] {error}", highlight=False, soft_wrap=True)
    if report.nothing_to_do:
        console.print("nothing to clean up")
    if report.errors:
        raise typer.Exit(4)
    sys.stdout.flush()


@app.command()
def worker(
    master: str = typer.Option(..., "--master", help="HOST:PORT of a `chaoskit run` master."),
) -> None:
    """Join a distributed run as a Locust worker (the master sends the experiment's load)."""
    import subprocess

    code = subprocess.call([sys.executable, "-m", "chaoskit.load", "--worker", "--master", master])
    raise typer.Exit(code)
