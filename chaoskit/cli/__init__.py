"""chaoskit's command line: thin, it parses, calls the library and maps errors to exit codes.

Each command group lives in its own module and registers itself on ``app``.
"""

from __future__ import annotations


from chaoskit import __version__
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


