"""`chaoskit logs SERVICE`: a stack component's output, from its container or its log file."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import typer

from chaoskit.cli._app import app
from chaoskit.cli.stack import BACKEND_OPTION, TARGET_OPTION, Backend, find_target
from chaoskit.errors import InputError, StackNotRunning
from chaoskit.stack.endpoints import SERVICES
from chaoskit.stack.state import default_state_dir
from chaoskit.stack.target import DockerTarget, LocalTarget

COMPONENTS = ("toxiproxy", *SERVICES)


@app.command()
def logs(
    service: str = typer.Argument(..., help=f"One of: {', '.join(COMPONENTS)}."),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing new lines."),
    tail: int = typer.Option(100, "--tail", "-n", help="Lines of history to print first."),
    target: str | None = TARGET_OPTION,
    backend: Backend | None = BACKEND_OPTION,
) -> None:
    """Print a service's log (its container's output on the docker backend)."""
    if service not in COMPONENTS:
        raise InputError(f"service: expected one of {', '.join(COMPONENTS)}, got {service!r}")
    if tail < 0:
        raise InputError(f"--tail: expected a number >= 0, got {tail}")
    resolved = find_target(target, backend)
    if isinstance(resolved, DockerTarget):
        from chaoskit.stack.docker import DockerStack  # the docker SDK only when needed

        lines = DockerStack(resolved).logs(service, tail=tail, follow=follow)
    elif isinstance(resolved, LocalTarget):
        log = default_state_dir(resolved.name) / "logs" / f"{service}.log"
        lines = _file_lines(log, tail=tail, follow=follow)
    else:
        raise InputError("an attach target's logs are not chaoskit's to read")
    try:
        for line in lines:
            typer.echo(line)
    except KeyboardInterrupt:
        # Ctrl-C is how --follow ends.
        raise typer.Exit(0) from None


def _file_lines(path: Path, *, tail: int, follow: bool) -> Iterator[str]:
    """The last ``tail`` lines of a local log file, then new ones as they come when following."""
    try:
        handle = path.open("r", encoding="utf-8", errors="replace")
    except FileNotFoundError:
        raise StackNotRunning(f"no log at {path}: is the local stack up?") from None
    with handle:
        history = handle.read().splitlines()
        yield from history[-tail:] if tail else []
        while follow:
            line = handle.readline()
            if line:
                yield line.rstrip("\n")
            else:
                time.sleep(0.2)
