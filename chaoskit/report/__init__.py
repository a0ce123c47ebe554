"""Reports in the run folder: summary.json, report.html, report.md, junit.xml, timeseries.csv.

``write_reports`` renders them from what the run left on disk, so a report can be rebuilt
later from the same folder (``chaoskit report render``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from chaoskit.errors import InputError
from chaoskit.report.rundir import RunFolder, TimeSeries, make_run_dir
from chaoskit.report.summary import (
    JournalWriter,
    Summary,
    SummaryWriter,
    summary_json_schema,
)

__all__ = [
    "FORMATS",
    "JournalWriter",
    "RunFolder",
    "Summary",
    "SummaryWriter",
    "TimeSeries",
    "WrittenReports",
    "make_run_dir",
    "summary_json_schema",
    "write_reports",
]

FORMATS: tuple[str, ...] = ("html", "md", "json", "junit", "csv")


@dataclass(frozen=True)
class WrittenReports:
    """What ``write_reports`` produced: files by format, and formats that failed with why."""

    paths: dict[str, Path] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors


def _writers() -> dict[str, Callable[[RunFolder], Path]]:
    # Imported here so that a broken optional writer (plotly, say) cannot break the others' import.
    def html(run: RunFolder) -> Path:
        from chaoskit.report.html import write_html

        return write_html(run)

    def md(run: RunFolder) -> Path:
        from chaoskit.report.markdown import write_markdown

        return write_markdown(run)

    def junit(run: RunFolder) -> Path:
        from chaoskit.report.junit import write_junit

        return write_junit(run)

    def csv(run: RunFolder) -> Path:
        from chaoskit.report.csv import write_csv

        return write_csv(run)

    def json(run: RunFolder) -> Path:
        return run.path / "summary.json"  # always there: RunFolder refuses a folder without it

    return {"html": html, "md": md, "json": json, "junit": junit, "csv": csv}


def write_reports(run_dir: Path, formats: Iterable[str] = FORMATS) -> WrittenReports:
    """Render the given report formats into ``run_dir``; one failing writer never stops the others.

    Raises InputError when ``run_dir`` is not a run folder or a format is unknown.
    """
    wanted = list(dict.fromkeys(formats))
    unknown = [f for f in wanted if f not in FORMATS]
    if unknown:
        raise InputError(
            f"report formats: expected some of {', '.join(FORMATS)}, got {', '.join(unknown)}"
        )
    run = RunFolder(run_dir)
    writers = _writers()
    result = WrittenReports()
    for name in wanted:
        try:
            result.paths[name] = writers[name](run)
        except Exception as exc:  # a report is a by-product: keep going, say what broke
            result.errors[name] = f"{type(exc).__name__}: {exc}"
    return result
