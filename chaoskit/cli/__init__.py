"""chaoskit's command line: thin, it parses, calls the library and maps errors to exit codes.

Each command group lives in its own module and registers itself on ``app``.
"""

from __future__ import annotations

import sys

from rich.markup import escape

# typer vendors click; its exceptions are the ones a Typer app raises.
from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError
from typer.exceptions import Abort

from chaoskit._version import __version__
from chaoskit.cli import docker as _docker  # noqa: F401
from chaoskit.cli import experiment as _experiment  # noqa: F401
from chaoskit.cli import images as _images  # noqa: F401
from chaoskit.cli import report as _report  # noqa: F401
from chaoskit.cli import run as _run  # noqa: F401  (registers commands)
from chaoskit.cli import stack as _stack  # noqa: F401  (registers commands)
from chaoskit.cli._app import app, console, err_console

__all__ = ["app", "main"]


@app.command()
def version() -> None:
    """Print chaoskit's version."""
    console.print(f"chaoskit {__version__}")


def main() -> None:
    """Console-script entry point: usage errors are one line and exit 2, never a box."""
    try:
        code = app(standalone_mode=False)
    except NoArgsIsHelpError as error:
        if error.ctx is not None:
            console.print(error.ctx.get_help(), highlight=False)
        sys.exit(0 if error.ctx is None else 2)
    except UsageError as error:
        where = error.ctx.command_path if error.ctx is not None else "chaoskit"
        err_console.print(
            f"[bold red]error:[/] {escape(error.format_message())} (see '{where} --help')",
            highlight=False,
            soft_wrap=True,
        )
        sys.exit(2)
    except ClickException as error:
        err_console.print(f"[bold red]error:[/] {escape(error.format_message())}", highlight=False)
        sys.exit(error.exit_code)
    except Abort:
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)
