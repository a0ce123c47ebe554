"""timeseries.csv: every sample as a row, ``t`` then one column per metric (empty cell = none)."""

from __future__ import annotations

import csv
from pathlib import Path

from chaoskit.report.rundir import RunFolder

__all__ = ["write_csv"]


def _cell(value: float | None) -> str:
    if value is None:
        return ""
    return repr(value) if value != int(value) else str(int(value))


def write_csv(run: RunFolder, path: Path | None = None) -> Path:
    """Write timeseries.csv into the run folder (or ``path``)."""
    target = path or run.path / "timeseries.csv"
    series = run.series
    names = sorted(series.columns)
    columns = [series.columns[name] for name in names]
    with target.open("w", encoding="utf-8", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["t", *names])
        for i, t in enumerate(series.t):
            writer.writerow([_cell(t), *(_cell(column[i]) for column in columns)])
    return target
