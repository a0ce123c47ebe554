"""The Typer app and the one place where errors become exit codes."""

from __future__ import annotations

import os
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from typer._click.core import Context as TyperContext  # typer vendors click
from typer.core import TyperGroup

from chaoskit.errors import ChaoskitError
from chaoskit.exit_codes import exit_code_for_error

__all__ = ["app", "console", "err_console", "fail"]

console = Console(no_color="NO_COLOR" in os.environ)
err_console = Console(stderr=True, no_color="NO_COLOR" in os.environ)


def fail(error: ChaoskitError) -> typer.Exit:
    """Print one red line for ``error`` and return the Exit to raise."""
    err_console.print(f"[bold red]error:[/] {escape(str(error))}", highlight=False, soft_wrap=True)
    return typer.Exit(exit_code_for_error(error))


class _ChaoskitGroup(TyperGroup):
    """Catches ChaoskitError once for every command, including nested groups."""

    def invoke(self, ctx: TyperContext) -> Any:
        try:
            return super().invoke(ctx)
        except ChaoskitError as error:
            raise fail(error) from None


app = typer.Typer(
    cls=_ChaoskitGroup,
    name="chaoskit",
    help=(
        "Rehearse a flash-sale surge against an order stack: load, faults, and what customers feel."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    # --install-completion / --show-completion: the shell completion users of Typer CLIs expect.
    add_completion=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _print_version(value: bool) -> None:
    if value:
        from chaoskit import __version__

        console.print(f"chaoskit {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False,
        "--version",
        "-V",
        callback=_print_version,
        is_eager=True,
        help="Print chaoskit's version and exit.",
    ),
) -> None:
    """Rehearse a flash-sale surge against an order stack: load, faults, and what customers feel."""
