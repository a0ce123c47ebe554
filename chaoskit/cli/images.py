"""`chaoskit images build`: the docker backend's images, online or without a registry."""

from __future__ import annotations

import typer
from rich.table import Table

from chaoskit.cli._app import app, console, err_console
from chaoskit.stack.images import ImageBuilder, image_names

images_app = typer.Typer(
    help="Build the docker backend's images (cached by the content of their inputs).",
    no_args_is_help=True,
)
app.add_typer(images_app, name="images")


@images_app.command("build")
def build(
    offline: bool = typer.Option(
        False,
        "--offline",
        help="No registry: Debian base from debootstrap, deps from host-downloaded wheels, "
        "Toxiproxy FROM scratch around the local static toxiproxy-server.",
    ),
    base: str | None = typer.Option(
        None, "--base", help="BASE_IMAGE for the orderstack image (default: per mode)."
    ),
    force: bool = typer.Option(False, "--force", help="Rebuild even when inputs are unchanged."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only what was built."),
) -> None:
    """Build the orderstack and Toxiproxy images; skipped while their inputs are unchanged."""
    names = image_names(offline=offline, base=base)
    builder = ImageBuilder(console=None if quiet else err_console)
    outcomes = builder.build(names, force=force)
    if quiet:
        for outcome in outcomes:
            if outcome.action != "cached":
                console.print(f"{outcome.action} {outcome.image} in {outcome.seconds:.1f} s")
        return
    table = Table(title=f"images ({'offline' if offline else 'online'})", title_justify="left")
    for column in ("image", "action", "seconds"):
        table.add_column(column)
    for outcome in outcomes:
        table.add_row(outcome.image, outcome.action, f"{outcome.seconds:.1f}")
    console.print(table)
