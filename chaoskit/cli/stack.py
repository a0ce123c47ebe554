"""`chaoskit up`, `down`, `status`: the stack's lifecycle."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Literal

import typer
from rich.table import Table

from chaoskit.cli._app import app, console, err_console
from chaoskit.errors import InputError
from chaoskit.exit_codes import ExitCode
from chaoskit.stack.backend import StackBackend, StackStatus
from chaoskit.stack.endpoints import StackEndpoints
from chaoskit.stack.factory import open_backend
from chaoskit.stack.progress import RichStartupProgress
from chaoskit.stack.state import RecordedStack, recorded_stacks
from chaoskit.stack.target import BUILTIN_TARGETS, AttachTarget, Target, load_target, with_kind


class Backend(StrEnum):
    """Where the stack runs."""

    local = "local"
    docker = "docker"


TARGET_OPTION = typer.Option(
    None,
    "--target",
    "-t",
    help="Built-in target (local, docker) or a target YAML file. Default: the backend's own.",
    show_default=False,
)
BACKEND_OPTION = typer.Option(
    None,
    "--backend",
    "-b",
    help="Run the target's stack as local processes or containers. Default: the target's kind.",
    show_default=False,
)


def resolve_target(target: str | None, backend: Backend | None) -> Target:
    """The target the flags name: --target, else the built-in named by --backend, else local."""
    resolved = load_target(target or (backend.value if backend else "local"))
    if backend is not None and resolved.kind != backend.value:
        if isinstance(resolved, AttachTarget):
            raise InputError("--backend does not apply to an attach target: nothing is started")
        resolved = with_kind(resolved, backend.value)
    return resolved


def _backend(target: str | None, backend: Backend | None) -> StackBackend:
    return open_backend(resolve_target(target, backend))


def find_target(target: str | None, backend: Backend | None) -> Target:
    """For commands on a stack that is up (status, down, logs): the flags' target, or with no
    flag the one stack recorded as up, whatever its backend.

    Several stacks up and no flag: refused, naming the flags that pick each one.
    """
    if target is not None or backend is not None:
        return resolve_target(target, backend)
    stacks = recorded_stacks()
    if not stacks:
        return resolve_target(None, None)  # the default: says there is no stack
    if len(stacks) > 1:
        choices = "; ".join(f"{s.kind} stack {s.name!r}: {_flags_for(s)}" for s in stacks)
        raise InputError(f"{len(stacks)} stacks are up, so say which one: {choices}")
    return _target_of(stacks[0])


def _flags_for(stack: RecordedStack) -> str:
    if stack.name in BUILTIN_TARGETS:
        return f"--target {stack.name} --backend {stack.kind}"
    return f"--target <the {stack.name} target file> --backend {stack.kind}"


def _target_of(stack: RecordedStack) -> Target:
    """The target a recorded stack was started from: its name, backend and ports.

    The built-in target of that name when there is one; otherwise the built-in of its kind
    renamed and moved to its ports, which is all status, down and logs need to find it.
    """
    kind: Literal["local", "docker"] = "docker" if stack.kind == "docker" else "local"
    base = load_target(stack.name if stack.name in BUILTIN_TARGETS else kind)
    if isinstance(base, AttachTarget):  # a built-in is never attach; keep mypy sure of it
        raise InputError(f"stack {stack.name!r}: an attach target has no stack to find")
    found = with_kind(base, kind)
    assert not isinstance(found, AttachTarget)
    if found.name != stack.name or found.base_port != stack.state.base_port:
        found = found.model_copy(update={"name": stack.name, "base_port": stack.state.base_port})
    return found


@app.command()
def up(
    target: str | None = TARGET_OPTION,
    backend: Backend | None = BACKEND_OPTION,
) -> None:
    """Start the stub order stack behind Toxiproxy and print its endpoints."""
    stack = _backend(target, backend)
    with RichStartupProgress(err_console) as progress:
        endpoints = stack.up(progress=progress)
    console.print(_endpoints_table(endpoints))
    console.print("Stop it with [bold]chaoskit down[/].", highlight=False)


@app.command()
def down(
    target: str | None = TARGET_OPTION,
    backend: Backend | None = BACKEND_OPTION,
    force: bool = typer.Option(
        False, "--force", help="Also while a run uses the stack: that run ends as an error."
    ),
) -> None:
    """Stop exactly what `chaoskit up` started and remove its proxies (safe to repeat)."""
    resolved = find_target(target, backend)
    from chaoskit.run.lock import end_run_for_down

    end_run_for_down(resolved.name, force=force, say=console.print)
    stack = open_backend(resolved)
    if stack.down():
        console.print("Stack stopped.")
    else:
        console.print("No stack was running; nothing to stop.")


@app.command()
def status(
    target: str | None = TARGET_OPTION,
    backend: Backend | None = BACKEND_OPTION,
    as_json: bool = typer.Option(False, "--json", help="Print the status as JSON for scripts."),
) -> None:
    """Show each service's port, health, pid, proxy and active toxics.

    Exits 0 when every part is up and healthy, 4 when the stack is down or unhealthy.
    """
    stack_status = open_backend(find_target(target, backend)).status()
    if as_json:
        typer.echo(json.dumps(stack_status.to_json(), indent=2))
    else:
        console.print(_status_table(stack_status))
        for problem in stack_status.problems:
            err_console.print(f"[yellow]warning:[/] {problem}", highlight=False)
    if not stack_status.healthy:
        raise typer.Exit(ExitCode.ERROR)


def _endpoints_table(endpoints: StackEndpoints) -> Table:
    table = Table(title=f"stack {endpoints.name} ({endpoints.kind})", title_justify="left")
    table.add_column("what")
    table.add_column("where")
    table.add_row("place orders", f"POST {endpoints.gateway_url}/orders")
    for url in endpoints.toxiproxy_urls:
        table.add_row("toxiproxy", url)
    for service, url in endpoints.services.items():
        table.add_row(service, url)
    return table


def _status_table(stack_status: StackStatus) -> Table:
    state = "[green]running[/]" if stack_status.running else "[red]not running[/]"
    table = Table(
        title=f"stack {stack_status.name} ({stack_status.kind}): {state}", title_justify="left"
    )
    # Docker rows also carry their container's name, state and restart count.
    containers = any(hasattr(row, "container") for row in stack_status.services)
    where = ("container", "state", "restarts") if containers else ("pid",)
    for column in ("service", "port", "health", *where, "proxy", "active toxics"):
        table.add_column(column)
    table.add_row(
        "toxiproxy",
        stack_status.toxiproxy_url.rsplit(":", 1)[-1],
        _health(stack_status.toxiproxy_health),
        *(["-"] * (len(where) - 1)),
        str(stack_status.toxiproxy_pid or "-") if not containers else "-",
        "-",
        "-",
    )
    for row in stack_status.services:
        proxy = row.proxy or "-"
        if row.proxy and row.proxy_enabled is False:
            proxy += " [red](disabled)[/]"
        if containers:
            place = [
                str(getattr(row, "container", "-")),
                str(getattr(row, "state", "-")),
                str(getattr(row, "restarts", "-")),
            ]
        else:
            place = [str(row.pid or "-")]
        table.add_row(
            row.service,
            str(row.port),
            _health(row.health),
            *place,
            proxy,
            ", ".join(row.active_toxics) or "-",
        )
    return table


def _health(health: str) -> str:
    colour = {"ok": "green", "unhealthy": "yellow", "down": "red"}.get(health, "white")
    return f"[{colour}]{health}[/]"
