"""A Rich display of a stack coming up, fed by a backend's ``StartupUpdate``s."""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn

from chaoskit.stack.backend import StartupUpdate

__all__ = ["RichStartupProgress"]

_LOOK = {
    "starting": "[yellow]starting[/]",
    "ready": "[green]✓ ready[/]",
    "failed": "[bold red]✗ failed[/]",
}


class RichStartupProgress:
    """One line per component with a spinner until it is ready; use as a context manager."""

    def __init__(self, console: Console) -> None:
        self._progress = Progress(
            SpinnerColumn(finished_text=" "),
            TextColumn("{task.fields[component]:<10}"),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )
        self._tasks: dict[str, TaskID] = {}

    def __enter__(self) -> RichStartupProgress:
        self._progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._progress.stop()

    def __call__(self, update: StartupUpdate) -> None:
        text = _LOOK[update.state]
        if update.detail:
            text += f" [dim]{update.detail}[/]"
        task = self._tasks.get(update.component)
        if task is None:
            task = self._progress.add_task(text, total=1, component=update.component)
            self._tasks[update.component] = task
        else:
            self._progress.update(task, description=text)
        if update.state != "starting":
            self._progress.update(task, completed=1)
