"""`chaoskit run` and `chaoskit cleanup`: play an experiment, undo what a killed run left."""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Any

import typer

from chaoskit.cli._app import app, console, err_console
from chaoskit.errors import InputError
from chaoskit.events import EventHandler
from chaoskit.experiment.loader import load_experiment
from chaoskit.observe.exporter import check_port_free
from chaoskit.observe.prometheus import check_queries
from chaoskit.observe.team import team_observation
from chaoskit.plan import build_plan
from chaoskit.report import write_reports
from chaoskit.report.rundir import make_run_dir
from chaoskit.run.cleanup import cleanup as run_cleanup
from chaoskit.run.runner import Runner, RunSettings
from chaoskit.stack.backend import open_backend
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
        target_name = experiment.target
        if target_name not in ("local", "docker"):
            target_name = str((experiment_file.parent / target_name).resolve())
        stack_target = load_target(target_name)
    plan = build_plan(experiment)
    backend = open_backend(stack_target)
    team = team_observation(
        experiment, stack_target, allowed_hosts=tuple(backend.endpoints().allowed_hosts)
    )
    settings: dict[str, Any] = {}
    if stack_target.kind == "attach":
        from chaoskit.run.safety import preflight

        review = preflight(
            experiment=experiment, plan=plan, target=stack_target, endpoints=backend.endpoints()
        )
        review.render(console)
        if dry_run:
            console.print("dry run: nothing was touched")
            raise typer.Exit(0)
        if not yes:
            if not sys.stdin.isatty():
                raise InputError("attach runs need confirmation: pass --yes (no terminal to ask)")
            if not typer.confirm("Run this against the target?", default=False):
                console.print("not confirmed: nothing was touched")
                raise typer.Exit(2)
        settings = {"watchdog_ttl_s": review.watchdog_ttl_s, "caps": review.caps}
    elif dry_run:
        from chaoskit.cli.experiment import render_plan

        render_plan(plan, experiment, console, source=str(experiment_file))
        console.print("dry run: nothing was touched")
        raise typer.Exit(0)
    # Before any load: every PromQL query once (exit 2 refused, exit 4 unreachable).
    if team.prometheus is not None:
        check_queries(team.prometheus)
    if metrics_port is not None:
        check_port_free(metrics_port)
    settings.update(prometheus=team.prometheus, ledger=team.ledger, metrics_port=metrics_port)
    # The run folder first: a bad --reports-dir must not cost a stack start.
    run_dir = make_run_dir(reports_dir or Path(experiment.report.dir), experiment.name)
    started_here = False
    if not backend.is_up():
        console.print(f"[dim]no {stack_target.kind} stack is up: starting one for this run[/]")
        with RichStartupProgress(err_console) as progress:
            backend.up(progress=progress)
        started_here = True
    try:
        endpoints = backend.endpoints()
        handlers: list[EventHandler] = []
        live: Any = None
        if dashboard and console.is_terminal:
            from chaoskit.dashboard import Dashboard

            live = Dashboard(
                console=console,
                plan=plan.to_json(),
                name=experiment.name,
                hypotheses=[_plain(h) for h in experiment.hypothesis],
                guardrails=[_plain(g) for g in experiment.guardrails],
            )
            handlers.append(live)
        else:
            from chaoskit.dashboard import ProgressLine

            handlers.append(ProgressLine(console=console, plan=plan.to_json()))
        runner = Runner(
            experiment=experiment,
            plan=plan,
            endpoints=endpoints,
            settings=RunSettings(
                run_dir=run_dir,
                state_dir=chaoskit_home(),
                workers=expect_workers or workers,
                expect_workers=expect_workers > 0,
                master_port=master_port,
                stop_on_worker_loss=stop_on_worker_loss,
                master_bind=master_bind,
                **settings,
            ),
            handlers=handlers,
        )

        def on_signal(signum: int, frame: FrameType | None) -> None:
            runner.request_stop("interrupted")

        # SIGHUP too: a closed terminal must not leave faults behind.
        previous = {
            s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
        }
        try:
            if live is not None:
                live.start()
            try:
                outcome = runner.execute()
            finally:
                if live is not None:
                    live.stop()
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        written = write_reports(run_dir, list(experiment.report.formats))
    finally:
        if started_here and not keep_stack:
            backend.down()
    colour = {"held": "green", "violated": "red"}.get(outcome.verdict, "yellow")
    console.print(
        f"[bold {colour}]{outcome.verdict.upper()}[/] status={outcome.status} "
        f"run={runner.run_id} exit={outcome.exit_code}"
    )
    for check in outcome.summary.get("checks", []):
        if check.get("ok") is False:
            limit = " and ".join(
                f"{op} {check[key]:g}"
                for op, key in ((">=", "min"), ("<=", "max"))
                if check.get(key) is not None
            )
            value = check.get("value")
            shown = "-" if value is None else f"{value:.4g}"
            console.print(
                f"  [red]✗[/] {check['kind']} {check['metric']} ({check.get('phase') or '-'}): "
                f"{shown}, expected {limit}",
                highlight=False,
            )
    for error in outcome.summary.get("errors", []):
        err_console.print(f"[red]error:[/] {error}", highlight=False, soft_wrap=True)
    console.print(f"reports: {run_dir}")
    for path in written.paths.values():
        console.print(f"  {path}", highlight=False)
    for fmt, reason in written.errors.items():
        err_console.print(f"[red]error:[/] {fmt} report: {reason}", highlight=False)
    raise typer.Exit(outcome.exit_code)


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
