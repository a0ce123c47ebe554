"""`chaoskit report show | compare | render`: read a run, compare two, re-render the files."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from chaoskit.cli._app import app, console, err_console
from chaoskit.errors import InputError, ReportNotWritten
from chaoskit.report import FORMATS, RunFolder, write_reports
from chaoskit.report._format import audit_queue_note, better_of, describe, fmt, verdict_word
from chaoskit.report.summary import Check, Invariant, Summary

__all__ = ["report_app"]

report_app = typer.Typer(
    name="report",
    help="Read a run's results, compare two runs, or re-render a run's report files.",
    no_args_is_help=True,
)
app.add_typer(report_app, name="report")

_VERDICT_STYLE = {
    "HELD": "bold white on green",
    "VIOLATED": "bold white on red",
    "ABORTED": "bold black on yellow",
    "ERROR": "bold white on magenta",
}

RUN_DIR = typer.Argument(..., help="A run folder, e.g. reports/20260101-120000-festival-surge.")


def _verdict(summary: Summary) -> Text:
    word = verdict_word(summary.verdict, summary.status)
    return Text(f" {word} ", style=_VERDICT_STYLE.get(word, "bold"))


def _limit(check: Check) -> str:
    unit = describe(check.metric).unit
    parts = []
    if check.min is not None:
        parts.append(f">= {fmt(check.min, unit)}")
    if check.max is not None:
        parts.append(f"<= {fmt(check.max, unit)}")
    return " and ".join(parts) or "-"


def _ok(ok: bool | None) -> Text:
    if ok is None:
        return Text("not judged", style="dim")
    return Text("held", style="green") if ok else Text("violated", style="bold red")


def _header(run: RunFolder) -> Panel:
    s = run.summary
    title = Text.assemble(_verdict(s), "  ", (s.experiment.name, "bold"))
    lines = [
        f"run {s.run_id}  status {s.status}"
        f"  exit code {'-' if s.exit_code is None else s.exit_code}",
        f"target {s.experiment.target} ({s.environment.target_kind})  seed {s.experiment.seed}"
        f"  duration {'-' if s.duration_s is None else f'{s.duration_s:.0f} s'}",
        f"started {s.started_at or '-'}  chaoskit {s.environment.chaoskit_version}",
    ]
    if s.abort is not None:
        lines.append(f"[yellow]aborted:[/] {s.abort.reason}")
    lines += [f"[red]error:[/] {e}" for e in s.errors]
    return Panel(Group(title, *lines), title="chaoskit run", expand=False)


def _metrics_table(s: Summary, width: int) -> Table:
    phases = [p for p in ("baseline", "during", "recovery") if p in s.phases]
    table = Table(title="Metrics", title_justify="left")
    names = list(s.metrics)
    for values in s.phases.values():
        names += [n for n in values if n not in names]
    name_width = max(map(len, names), default=6)
    table.add_column("metric", style="cyan", no_wrap=True, min_width=name_width)
    for phase in phases:
        table.add_column(phase, justify="right", no_wrap=True)
    table.add_column("overall", justify="right", style="bold", no_wrap=True)
    # Descriptions are cut to what fits on one line rather than wrapping every row.
    room = width - name_width - 11 * (len(phases) + 1) - 7
    table.caption = None if room >= 16 else "definitions below"
    if room >= 16:
        table.add_column("what it is", style="dim", no_wrap=True)
    for name in names:
        text = describe(name)
        cells = [fmt(s.phases[p].get(name), text.unit) for p in phases]
        row = [name, *cells, fmt(s.metrics.get(name), text.unit)]
        if room >= 16:
            desc = text.description
            row.append(desc if len(desc) <= room else desc[: room - 1] + "…")
        table.add_row(*row)
    return table


def _definitions(s: Summary) -> Text:
    """One line per metric, for terminals too narrow to hold descriptions in the table."""
    lines = [f"{name}: {describe(name).description}" for name in s.metrics]
    return Text("\n".join(line for line in lines if not line.endswith(": ")))


def _checks_table(s: Summary) -> Table:
    table = Table(title="Checks", title_justify="left")
    for column in ("kind", "metric", "phase", "limit", "value", "result"):
        table.add_column(column)
    for c in s.checks:
        unit = describe(c.metric).unit
        table.add_row(c.kind, c.metric, c.phase or "-", _limit(c), fmt(c.value, unit), _ok(c.ok))
    return table


def _faults_table(s: Summary) -> Table:
    table = Table(title="Faults", title_justify="left")
    for column in ("fault", "kind", "target", "applied", "removed", "apply lag", "status"):
        table.add_column(column)
    for f in s.faults:
        table.add_row(
            f.name,
            f.kind,
            f.target or "-",
            "-" if f.applied_at is None else f"{f.applied_at:.1f} s",
            "-" if f.removed_at is None else f"{f.removed_at:.1f} s",
            "-" if f.apply_lag_ms is None else f"{f.apply_lag_ms:.0f} ms",
            Text(f.status, style="red" if f.status == "failed" else ""),
        )
    return table


def _audit(s: Summary) -> RenderableType:
    if s.audit is None:
        return Text("Audit: not run", style="dim")
    style = {"passed": "green", "failed": "bold red"}.get(s.audit.status, "yellow")
    head = Text.assemble("Audit: ", (s.audit.status, style))
    if s.audit.reason:
        head.append(f" ({s.audit.reason})")
    table = Table(show_header=True)
    table.add_column("invariant")
    table.add_column("violations", justify="right")
    table.add_column("order ids", overflow="fold")
    for name, inv in s.audit.invariants.items():
        if inv.skipped is not None:
            table.add_row(name, Text("skipped", style="yellow"), inv.skipped)
            continue
        ids = ", ".join(inv.order_ids[:8]) + (" ..." if inv.count > 8 else "")
        table.add_row(name, Text(str(inv.count), style="bold red" if inv.count else "green"), ids)
    queue = audit_queue_note(
        s.audit.queued_credits, s.audit.oldest_queued_age_s, s.audit.credit_slo_s
    )
    parts: list[RenderableType] = [head]
    if queue is not None:
        parts.append(Text(queue))
    if s.audit.invariants:
        parts.append(table)
    return Group(*parts) if len(parts) > 1 else head


@report_app.command()
def show(run_dir: Path = RUN_DIR) -> None:
    """Print a run's verdict, metrics, checks, faults and audit."""
    run = RunFolder(run_dir)
    s = run.summary
    console.print(_header(run))
    metrics = _metrics_table(s, console.width)
    console.print(metrics)
    if metrics.caption:
        console.print(_definitions(s), style="dim")
    if s.checks:
        console.print(_checks_table(s))
    if s.faults:
        console.print(_faults_table(s))
    console.print(_audit(s))


def _delta(name: str, a: float | None, b: float | None) -> Text:
    if a is None or b is None:
        return Text("-", style="dim")
    diff = b - a
    if diff == 0:
        return Text("=", style="dim")
    unit = describe(name).unit
    if unit == "ratio":
        text = f"{diff * 100:+.1f} pp"
    else:
        text = ("+" if diff > 0 else "") + fmt(diff, unit)
        if a:
            text += f" ({diff / abs(a):+.0%})"
    direction = better_of(name, a, b)
    style = {1: "green", -1: "red"}.get(direction, "")
    label = {1: "  better", -1: "  worse"}.get(direction, "")
    return Text(text + label, style=style)


def _values(summary: Summary, phase: str | None) -> dict[str, float | None]:
    if phase is None:
        return summary.metrics
    if phase not in ("baseline", "during", "recovery"):
        raise InputError(f"--phase: expected baseline, during or recovery, got {phase!r}")
    return {str(k): v for k, v in summary.phases.items()}.get(phase, {})


def _check_key(c: Check) -> tuple[str, str, str]:
    return (c.kind, c.phase or "-", c.metric)


@report_app.command()
def compare(
    run_a: Path = typer.Argument(..., help="The baseline run folder (A)."),
    run_b: Path = typer.Argument(..., help="The run to compare with it (B)."),
    phase: str | None = typer.Option(
        None,
        "--phase",
        help="Compare one check phase (baseline, during, recovery) instead of the whole run.",
    ),
) -> None:
    """Metric by metric deltas between two runs, and the verdicts that changed."""
    a, b = RunFolder(run_a).summary, RunFolder(run_b).summary
    values_a, values_b = _values(a, phase), _values(b, phase)
    console.print(
        Text.assemble(
            ("A ", "bold"),
            _verdict(a),
            f" {a.experiment.name} ({a.run_id})\n",
            ("B ", "bold"),
            _verdict(b),
            f" {b.experiment.name} ({b.run_id})",
        )
    )
    table = Table(title=f"Metrics ({phase or 'overall'})", title_justify="left")
    table.add_column("metric", style="cyan", no_wrap=True)
    table.add_column("A", justify="right")
    table.add_column("B", justify="right")
    table.add_column("delta (B - A)", justify="right")
    names = list(values_a) + [n for n in values_b if n not in values_a]
    for name in names:
        unit = describe(name).unit
        va, vb = values_a.get(name), values_b.get(name)
        table.add_row(name, fmt(va, unit), fmt(vb, unit), _delta(name, va, vb))
    console.print(table)

    changed = Table(title="Verdicts that changed", title_justify="left")
    for column in ("check", "phase", "metric", "A", "B"):
        changed.add_column(column)
    if a.verdict != b.verdict:
        changed.add_row(
            "verdict",
            "-",
            "-",
            verdict_word(a.verdict, a.status),
            verdict_word(b.verdict, b.status),
        )
    checks_a = {_check_key(c): c for c in a.checks}
    checks_b = {_check_key(c): c for c in b.checks}
    for key in list(checks_a) + [k for k in checks_b if k not in checks_a]:
        ca, cb = checks_a.get(key), checks_b.get(key)
        if ca is not None and cb is not None and ca.ok == cb.ok:
            continue
        changed.add_row(
            key[0],
            key[1],
            key[2],
            _ok(ca.ok) if ca else Text("absent", style="dim"),
            _ok(cb.ok) if cb else Text("absent", style="dim"),
        )
    inv_a = a.audit.invariants if a.audit else {}
    inv_b = b.audit.invariants if b.audit else {}
    if (a.audit and a.audit.status) != (b.audit and b.audit.status):
        changed.add_row(
            "audit",
            "-",
            "status",
            a.audit.status if a.audit else "not run",
            b.audit.status if b.audit else "not run",
        )
    audit_table = Table(title="Audit invariants", title_justify="left")
    for column in ("invariant", "A", "B"):
        audit_table.add_column(column, justify="left" if column == "invariant" else "right")
    for name in list(inv_a) + [n for n in inv_b if n not in inv_a]:
        audit_table.add_row(
            name, _invariant_cell(inv_a.get(name)), _invariant_cell(inv_b.get(name))
        )
    if a.audit is not None or b.audit is not None:
        audit_table.add_row(
            "credits still queued",
            _queued_cell(a.audit.queued_credits if a.audit else None),
            _queued_cell(b.audit.queued_credits if b.audit else None),
        )
    if audit_table.row_count:
        console.print(audit_table)
    for name in list(inv_a) + [n for n in inv_b if n not in inv_a]:
        count_a = inv_a[name].count if name in inv_a and inv_a[name].skipped is None else None
        count_b = inv_b[name].count if name in inv_b and inv_b[name].skipped is None else None
        if count_a != count_b:
            changed.add_row(
                "audit",
                "-",
                name,
                Text("-" if count_a is None else str(count_a), style="red" if count_a else "green"),
                Text("-" if count_b is None else str(count_b), style="red" if count_b else "green"),
            )
    if changed.row_count:
        console.print(changed)
    else:
        console.print("No verdict changed.")


def _invariant_cell(inv: Invariant | None) -> Text:
    if inv is None:
        return Text("-", style="dim")
    if inv.skipped is not None:
        return Text("skipped", style="yellow")
    return Text(f"{inv.count:,}", style="red" if inv.count else "green")


def _queued_cell(queued: int | None) -> Text:
    return Text("-" if queued is None else f"{queued:,}", style="dim" if queued is None else "")


@report_app.command()
def render(
    run_dir: Path = RUN_DIR,
    formats: list[str] | None = typer.Option(
        None,
        "--formats",
        "-f",
        help=f"Comma-separated formats to write (default all): {', '.join(FORMATS)}.",
        show_default=False,
    ),
) -> None:
    """Write a run's report files again from its summary.json and events.jsonl."""
    wanted = [f.strip() for item in (formats or [",".join(FORMATS)]) for f in item.split(",")]
    result = write_reports(run_dir, [f for f in wanted if f])
    for name, path in result.paths.items():
        console.print(f"[green]wrote[/] {name:5} {path}")
    for name, error in result.errors.items():
        err_console.print(f"[bold red]error:[/] {name}: {error}", highlight=False)
    if result.errors:
        raise ReportNotWritten(f"{len(result.errors)} report format(s) could not be written")
