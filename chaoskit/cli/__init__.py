"""chaoskit's command line: thin, it parses, calls the library and maps errors to exit codes.

Each command group lives in its own module and registers itself on ``app``.
"""

from __future__ import annotations

from chaoskit import __version__
from chaoskit.cli import docker as _docker  # noqa: F401
from chaoskit.cli import experiment as _experiment  # noqa: F401
from chaoskit.cli import images as _images  # noqa: F401
from chaoskit.cli import report as _report  # noqa: F401
from chaoskit.cli import run as _run  # noqa: F401  (registers commands)
from chaoskit.cli import stack as _stack  # noqa: F401  (registers commands)
from chaoskit.cli._app import app, console

__all__ = ["app", "main"]


@app.command()
def version() -> None:
    """Print chaoskit's version."""
    console.print(f"chaoskit {__version__}")


def main() -> None:
    """Console-script entry point."""
    app()
