"""report.html: one self-contained page (plotly inlined, no CDN): the run on one time axis."""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from chaoskit.observe.metrics import METRICS
from chaoskit.report._format import audit_queue_note, describe, downsample, fmt, verdict_word
from chaoskit.report.rundir import FaultSpan, RunFolder, TimeSeries
from chaoskit.report.summary import Check, Summary

__all__ = ["build_figure", "render_html", "write_html"]

VERDICT_COLOURS = {
    "HELD": "#1a7f37",
    "VIOLATED": "#cf222e",
    "ABORTED": "#bc4c00",
    "ERROR": "#8250df",
}
_FAULT_COLOURS = ("#d62728", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#bcbd22")
_STEP_COLOURS = {
    "parse": "#7f7f7f",
    "gateway": "#393b79",
    "inventory": "#1f77b4",
    "lbs": "#17becf",
    "eligibility": "#2ca02c",
    "orders": "#bcbd22",
    "store": "#ff7f0e",
    "rider": "#d62728",
    "coupon": "#9467bd",
    "timeout": "#8c564b",
}
_STEP_ORDER = tuple(_STEP_COLOURS)
_ROW_HEIGHT = 230
_MAX_POINTS = 3600
_HEADLINE = (
    "fulfilment_rate",
    "orders",
    "intents",
    "fulfilment_time_p95_s",
    "latency_p95_ms",
    "error_rate",
    "retry_amplification",
    "coupon_delay_p95_s",
    "coupon_pending",
    "store_rejections",
)


@dataclass(frozen=True, slots=True)
class _Line:
    metric: str
    label: str
    colour: str
    dash: str = "solid"
    secondary: bool = False
    stack: bool = False


@dataclass(frozen=True, slots=True)
class _Row:
    title: str
    lines: tuple[_Line, ...]
    y_title: str = ""
    y2_title: str = ""


def _rows(series: TimeSeries) -> list[_Row]:
    steps = sorted(
        (name for name in series.columns if name.startswith("failures.")),
        key=lambda n: (
            _STEP_ORDER.index(n[9:]) if n[9:] in _STEP_ORDER else len(_STEP_ORDER),
            n,
        ),
    )
    failure_lines = tuple(
        _Line(name, name[9:], _STEP_COLOURS.get(name[9:], "#aaaaaa"), stack=True) for name in steps
    )
    # The team's own metrics (PromQL queries): every series no built-in metric names.
    palette = ("#e377c2", "#17becf", "#bcbd22", "#7f7f7f", "#8c564b", "#9467bd")
    team = sorted(n for n in series.columns if n not in METRICS and not n.startswith("failures."))
    team_rows = (
        [
            _Row(
                "The team's metrics (Prometheus)",
                tuple(_Line(n, n, palette[i % len(palette)]) for i, n in enumerate(team)),
                "value",
            )
        ]
        if team
        else []
    )
    return [
        _Row(
            "Load: planned shape, target and achieved",
            (
                _Line("target_load", "target", "#444444", dash="dash"),
                _Line("achieved_rate", "achieved rate", "#1f77b4"),
                _Line("users", "users / in flight", "#aec7e8", dash="dot", secondary=True),
            ),
            "per s",
            "users",
        ),
        _Row(
            "Fulfilment",
            (
                _Line("fulfilment_rate", "fulfilment rate", "#2ca02c"),
                _Line("orders_per_s", "orders/s", "#98df8a", dash="dot", secondary=True),
            ),
            "rate",
            "orders/s",
        ),
        _Row(
            "Latency percentiles",
            (
                _Line("latency_p50_ms", "p50", "#9ecae1"),
                _Line("latency_p95_ms", "p95", "#3182bd"),
                _Line("latency_p99_ms", "p99", "#08519c"),
                _Line("schedule_latency_p99_ms", "p99 from schedule", "#e6550d", dash="dot"),
            ),
            "ms",
        ),
        _Row(
            "Failures by chain step (stacked) and error rate",
            (
                *failure_lines,
                _Line("error_rate", "error rate", "#000000", secondary=True),
            ),
            "failures",
            "error rate",
        ),
        _Row(
            "Coupons: delay p95 and credits pending",
            (
                _Line("coupon_delay_p95_s", "delay p95", "#9467bd"),
                _Line("coupon_pending", "pending", "#c5b0d5", dash="dot", secondary=True),
            ),
            "s",
            "pending",
        ),
        _Row(
            "Store backpressure",
            (
                _Line("store_rejections", "rejections", "#ff7f0e"),
                _Line("store_queue_depth", "queue depth", "#ffbb78"),
                _Line("store_paused_s", "paused (store-s)", "#8c564b", dash="dot", secondary=True),
            ),
            "count",
            "paused s",
        ),
        _Row(
            "Riders",
            (
                _Line("riders_busy", "busy", "#d62728", stack=True),
                _Line("riders_free", "free", "#2ca02c", stack=True),
                _Line("rider_wait_p95_s", "wait p95 (s)", "#000000", dash="dot", secondary=True),
            ),
            "riders",
            "wait s",
        ),
        *team_rows,
    ]


def _planned_shape(summary: Summary) -> tuple[list[float | None], list[float | None]]:
    xs: list[float | None] = []
    ys: list[float | None] = []
    if summary.plan is None:
        return xs, ys
    for phase in summary.plan.load_phases:
        xs += [phase.start, phase.end]
        ys += [phase.from_, phase.to]
    return xs, ys


def _is_ratio(metric: str) -> bool:
    return describe(metric).unit in ("ratio", "fraction", "%")


def build_figure(run: RunFolder) -> go.Figure:
    """The run's charts: one row per concern, all on one shared time axis."""
    summary, series = run.summary, run.series
    rows = [
        row
        for index, row in enumerate(_rows(series))
        if index == 0 or any(series.has_data(line.metric) for line in row.lines)
    ]
    figure = make_subplots(
        rows=len(rows),
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.045 if len(rows) > 4 else 0.08,
        subplot_titles=[row.title for row in rows],
        specs=[[{"secondary_y": True}] for _ in rows],
    )
    for number, row in enumerate(rows, start=1):
        if number == 1:
            xs, ys = _planned_shape(summary)
            if xs:
                figure.add_trace(
                    go.Scatter(
                        x=xs,
                        y=ys,
                        name="planned shape",
                        mode="lines",
                        line={"color": "#bbbbbb", "width": 6},
                        opacity=0.6,
                    ),
                    row=1,
                    col=1,
                )
        for line in row.lines:
            column = series.get(line.metric)
            if column is None or not any(v is not None for v in column):
                continue
            x, y = downsample(series.t, column, _MAX_POINTS)
            trace_args: dict[str, Any] = {
                "x": x,
                "y": y,
                "name": line.label,
                "legendgroup": f"row{number}",
                "legendgrouptitle_text": row.title.split(":")[0].split(" (")[0]
                if line is row.lines[0]
                else None,
                "mode": "lines",
                "line": {"color": line.colour, "dash": line.dash, "width": 1.6},
                "hovertemplate": f"{line.metric}: %{{y}}<br>t=%{{x:.0f}} s<extra></extra>",
            }
            if line.stack:
                trace_args["stackgroup"] = f"stack{number}"
                trace_args["line"]["width"] = 0.5
            figure.add_trace(
                go.Scatter(**trace_args), row=number, col=1, secondary_y=line.secondary
            )
        primary = [ln.metric for ln in row.lines if not ln.secondary]
        secondary = [ln.metric for ln in row.lines if ln.secondary]
        y_axis: dict[str, Any] = {"title_text": row.y_title, "rangemode": "tozero"}
        if primary and all(_is_ratio(m) for m in primary):
            y_axis["tickformat"] = ".0%"
        figure.update_yaxes(row=number, col=1, secondary_y=False, **y_axis)
        y2_axis: dict[str, Any] = {
            "title_text": row.y2_title,
            "rangemode": "tozero",
            "showgrid": False,
            # Ticks of its own: synced ticks land on odd values like 136.4.
            "tickmode": "auto",
            "nticks": 5,
        }
        if secondary and all(_is_ratio(m) for m in secondary):
            y2_axis["tickformat"] = ".0%"
        figure.update_yaxes(row=number, col=1, secondary_y=True, **y2_axis)

    _shade_faults(figure, run.fault_spans())
    _mark_phases(figure, summary)
    end = summary.duration_s or (series.t[-1] if series.t else None)
    figure.update_xaxes(showgrid=True, ticksuffix=" s")
    if end:
        figure.update_xaxes(range=[0, end])
    figure.update_xaxes(title_text="seconds since start", row=len(rows), col=1)
    figure.update_layout(
        height=_ROW_HEIGHT * len(rows) + 120,
        margin={"l": 70, "r": 70, "t": 70, "b": 50},
        template="plotly_white",
        hovermode="x unified",
        legend={"groupclick": "toggleitem", "tracegroupgap": 12},
        font={"size": 12},
    )
    return figure


def _shade_faults(figure: go.Figure, spans: Sequence[FaultSpan]) -> None:
    for index, span in enumerate(spans):
        if span.end is None or span.end <= span.start:
            continue
        colour = _FAULT_COLOURS[index % len(_FAULT_COLOURS)]
        figure.add_vrect(
            x0=span.start,
            x1=span.end,
            row="all",
            col=1,
            fillcolor=colour,
            opacity=0.08 if span.planned_only else 0.14,
            line_width=0,
            layer="below",
        )
        label = f"{span.name} ({span.kind})" + (" planned" if span.planned_only else "")
        figure.add_annotation(
            x=span.start,
            xref="x",
            y=1.0 - 0.13 * (index % 4),
            yref="y domain",
            xanchor="left",
            yanchor="top",
            text=html.escape(label),
            showarrow=False,
            font={"size": 11, "color": colour},
            bgcolor="rgba(255,255,255,0.7)",
            row=1,
            col=1,
        )


def _mark_phases(figure: go.Figure, summary: Summary) -> None:
    if summary.plan is None:
        return
    phases = summary.plan.check_phases
    for name, window in (
        ("baseline", phases.baseline),
        ("during", phases.during),
        ("recovery", phases.recovery),
    ):
        if window is None:
            continue
        start, end = window
        figure.add_vline(x=start, line_width=1, line_dash="dot", line_color="#888888", row="all")
        figure.add_annotation(
            x=(start + end) / 2,
            xref="x",
            y=1.0,
            yref="paper",
            yanchor="bottom",
            yshift=22,  # above the first chart's title
            text=f"<i>{name}</i>",
            showarrow=False,
            font={"size": 11, "color": "#555555"},
        )


# ---- tables -------------------------------------------------------------------------------


def _e(value: object) -> str:
    return html.escape(str(value))


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], *, empty: str) -> str:
    if not rows:
        return f'<p class="empty">{_e(empty)}</p>'
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _ok(ok: bool | None) -> str:
    if ok is None:
        return '<span class="muted">– not judged</span>'
    return '<span class="ok">✔ held</span>' if ok else '<span class="bad">✘ violated</span>'


def _limits(check: Check) -> str:
    parts = []
    if check.min is not None:
        parts.append(f"≥ {fmt(check.min, describe(check.metric).unit)}")
    if check.max is not None:
        parts.append(f"≤ {fmt(check.max, describe(check.metric).unit)}")
    return _e(" and ".join(parts) or "–")


def _check_rows(checks: Sequence[Check]) -> list[list[str]]:
    return [
        [
            f"<code>{_e(c.metric)}</code>",
            _e(c.phase or "–"),
            _limits(c),
            _e(fmt(c.value, describe(c.metric).unit)),
            _ok(c.ok),
            _e(fmt(c.t) if c.t is not None else "–"),
        ]
        for c in checks
    ]


def _phase_table(summary: Summary) -> str:
    names = list(summary.metrics)
    for values in summary.phases.values():
        names += [n for n in values if n not in names]
    order = ("baseline", "during", "recovery")
    present = [p for p in order if p in summary.phases]
    rows = []
    for name in names:
        unit = describe(name).unit
        cells = [f"<code>{_e(name)}</code>"]
        cells += [_e(fmt(summary.phases[p].get(name), unit)) for p in present]
        cells.append(_e(fmt(summary.metrics.get(name), unit)))
        rows.append(cells)
    return _table(["metric", *present, "overall"], rows, empty="No metrics recorded.")


def _audit_section(summary: Summary) -> str:
    audit = summary.audit
    if audit is None:
        return '<p class="empty">No audit was run.</p>'
    status_class = {"passed": "ok", "failed": "bad"}.get(audit.status, "muted")
    head = f'<p>Audit <span class="{status_class}">{_e(audit.status)}</span>'
    if audit.reason:
        head += f" — {_e(audit.reason)}"
    head += "</p>"
    queue = audit_queue_note(audit.queued_credits, audit.oldest_queued_age_s, audit.credit_slo_s)
    if queue is not None:
        head += f"<p>{_e(queue)}</p>"
    rows = []
    for name, inv in audit.invariants.items():
        if inv.skipped is not None:
            rows.append(
                [
                    f"<code>{_e(name)}</code>",
                    _e(describe(name).description),
                    "–",
                    '<span class="muted">skipped</span>',
                    _e(inv.skipped),
                ]
            )
            continue
        ids = ", ".join(f"<code>{_e(i)}</code>" for i in inv.order_ids)
        if inv.count > len(inv.order_ids):
            ids += f" … ({inv.count - len(inv.order_ids)} more)"
        rows.append(
            [
                f"<code>{_e(name)}</code>",
                _e(describe(name).description),
                _e(f"{inv.count:,}"),
                _ok(inv.count == 0),
                ids or "–",
            ]
        )
    return head + _table(
        ["invariant", "meaning", "violations", "", "order ids"], rows, empty="No invariants."
    )


def _fault_table(summary: Summary) -> str:
    def secs(value: float | None) -> str:
        return "–" if value is None else f"{value:.1f} s"

    def ms(value: float | None) -> str:
        return "–" if value is None else f"{value:.0f} ms"

    rows = []
    for f in summary.faults:
        params = json.dumps(f.params, separators=(", ", ": "), default=str)
        if len(params) > 120:
            params = params[:117] + "…"
        status_class = {"failed": "bad", "skipped": "muted"}.get(f.status, "")
        rows.append(
            [
                f"<code>{_e(f.name)}</code>",
                _e(f.kind),
                _e(f.target or "–"),
                f"<code>{_e(params)}</code>",
                _e(secs(f.scheduled_at)),
                _e(secs(f.applied_at)),
                _e(secs(f.removed_at)),
                _e(ms(f.apply_lag_ms)),
                _e(ms(f.remove_lag_ms)),
                f'<span class="{status_class}">{_e(f.status)}</span>'
                + (f"<br><small>{_e(f.error)}</small>" if f.error else ""),
            ]
        )
    return _table(
        [
            "fault",
            "kind",
            "target",
            "params",
            "scheduled",
            "applied",
            "removed",
            "apply lag",
            "remove lag",
            "status",
        ],
        rows,
        empty="No faults in this experiment.",
    )


def _outcome_section(run: RunFolder) -> str:
    tally = run.outcome_tally()
    if tally is None:
        return '<p class="empty">No outcomes/ records in this run folder.</p>'
    total = max(1, tally.attempts)
    told_rows = [[_e(k), _e(f"{v:,}"), _e(f"{v / total:.1%}")] for k, v in tally.told.most_common()]
    step_rows = [[_e(k), _e(f"{v:,}")] for k, v in tally.failed_steps.most_common()]
    note = (
        f"<p class='muted'>{tally.unreadable_lines:,} unreadable lines skipped.</p>"
        if tally.unreadable_lines
        else ""
    )
    return (
        f"<p>{tally.attempts:,} HTTP attempts recorded by the load engine.</p>"
        '<div class="pair">'
        + _table(["told", "attempts", "share"], told_rows, empty="none")
        + _table(["failed at step", "attempts"], step_rows, empty="No failed attempts.")
        + "</div>"
        + note
    )


def _definitions(run: RunFolder) -> str:
    names = sorted(set(run.summary.metrics) | set(run.series.columns))
    rows = []
    for name in names:
        text = describe(name)
        rows.append(
            [
                f"<code>{_e(name)}</code>",
                _e(text.description or "–"),
                _e(text.unit or "–"),
                _e(text.better or "–"),
            ]
        )
    return _table(["metric", "definition", "unit", "better"], rows, empty="No metrics.")


def _headline(summary: Summary) -> str:
    cards = []
    for name in _HEADLINE:
        if name not in summary.metrics:
            continue
        value = fmt(summary.metrics[name], describe(name).unit)
        cards.append(
            f'<div class="card"><div class="num">{_e(value)}</div>'
            f'<div class="lbl">{_e(name)}</div></div>'
        )
    return f'<div class="cards">{"".join(cards)}</div>' if cards else ""


def _header(run: RunFolder) -> str:
    s = run.summary
    word = verdict_word(s.verdict, s.status)
    colour = VERDICT_COLOURS.get(word, "#57606a")
    env = s.environment
    facts = [
        ("run", s.run_id),
        ("status", s.status),
        ("exit code", "–" if s.exit_code is None else str(s.exit_code)),
        ("started", s.started_at or "–"),
        ("ended", s.ended_at or "–"),
        ("duration", "–" if s.duration_s is None else f"{s.duration_s:.0f} s"),
        ("target", f"{s.experiment.target} ({env.target_kind})"),
        ("seed", str(s.experiment.seed)),
        ("experiment file", s.experiment.file or "–"),
        ("chaoskit", env.chaoskit_version),
        ("python", env.python),
        ("platform", env.platform),
        ("load workers", str(env.workers)),
    ]
    dl = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in facts)
    parts = [
        f'<header><div class="verdict" style="background:{colour}">{_e(word)}</div>',
        f"<div><h1>{_e(s.experiment.name)}</h1>",
        f'<p class="desc">{_e(s.experiment.description)}</p>' if s.experiment.description else "",
        f"<dl>{dl}</dl></div></header>",
    ]
    if s.abort is not None:
        a = s.abort
        detail = f"{a.metric} = {fmt(a.value)} (limit {fmt(a.limit)})" if a.metric else ""
        at = f" at {a.t:.0f} s" if a.t is not None else ""
        parts.append(f'<p class="banner">Aborted{_e(at)}: {_e(a.reason)} {_e(detail)}</p>')
    if s.errors:
        items = "".join(f"<li>{_e(err)}</li>" for err in s.errors)
        parts.append(f'<div class="banner"><b>Errors</b><ul>{items}</ul></div>')
    if s.load_workers:
        items = "".join(
            f"<li>{c.t:.1f} s: worker {_e(c.worker or '')} lost, running "
            f"{fmt(c.share)} of the load; {c.workers} left</li>"
            if c.change == "lost"
            else f"<li>{c.t:.1f} s: load re-shared from {fmt(c.from_t)} s over {c.workers}"
            f" workers (lost {_e(', '.join(c.lost) or '-')}, joined"
            f" {_e(', '.join(c.joined) or '-')})</li>"
            for c in s.load_workers
        )
        parts.append(f'<div class="banner"><b>Load workers</b><ul>{items}</ul></div>')
    if run.unreadable_lines:
        parts.append(
            f'<p class="muted">{run.unreadable_lines} unreadable journal lines skipped '
            "(an interrupted run can leave half a line).</p>"
        )
    return "".join(parts)


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0 auto;max-width:1360px;
 padding:16px 24px;color:#1f2328;background:#fff}
header{display:flex;gap:24px;align-items:flex-start;border-bottom:1px solid #d0d7de;
 padding-bottom:12px}
.verdict{color:#fff;font-weight:700;font-size:28px;padding:18px 26px;border-radius:8px;
 min-width:150px;text-align:center;letter-spacing:1px}
h1{margin:0 0 4px;font-size:24px}
h2{margin-top:28px;border-bottom:1px solid #eaeef2;padding-bottom:4px}
.desc{margin:0 0 8px;color:#57606a}
dl{display:grid;grid-template-columns:repeat(4,auto 1fr);gap:2px 10px;margin:0;font-size:13px}
dt{color:#57606a} dd{margin:0;font-family:ui-monospace,monospace;overflow-wrap:anywhere}
.cards{display:flex;flex-wrap:wrap;gap:10px;margin:14px 0}
.card{border:1px solid #d0d7de;border-radius:6px;padding:8px 14px;min-width:120px}
.num{font-size:20px;font-weight:600}
.lbl{font-size:12px;color:#57606a;font-family:ui-monospace,monospace}
table{border-collapse:collapse;margin:8px 0;font-size:13px}
th,td{border:1px solid #d0d7de;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f6f8fa} tr:nth-child(even) td{background:#fbfcfd}
.ok{color:#1a7f37;font-weight:600} .bad{color:#cf222e;font-weight:600} .muted,.empty{color:#57606a}
.banner{background:#fff8c5;border:1px solid #d4a72c;padding:8px 12px;border-radius:6px}
.pair{display:flex;gap:24px;flex-wrap:wrap} code{font-size:12px}
#js-errors:empty{display:none} #js-errors{color:#cf222e}
"""

# Any script error (a chart that failed to draw) lands here, visibly, and a test reads it.
_ERROR_HOOK = (
    "<script>window.addEventListener('error',function(e){var d=document.getElementById("
    "'js-errors');if(d){d.textContent+=' '+e.message;}});</script>"
)


def render_html(run: RunFolder) -> str:
    """The whole report page as text."""
    s = run.summary
    figure = build_figure(run)
    chart = figure.to_html(
        full_html=False,
        include_plotlyjs=True,
        div_id="timeline",
        config={"displaylogo": False, "responsive": True},
    )
    checks = [c for c in s.checks if c.kind == "hypothesis"]
    guards = [c for c in s.checks if c.kind == "guardrail"]
    check_headers = ["metric", "phase", "limit", "value", "result", "at"]
    sections = [
        _header(run),
        _headline(s),
        '<div id="js-errors"></div>',
        "<h2>Timeline</h2>",
        "<p class='muted'>Shaded bands are fault windows; dotted lines split the check phases.</p>",
        chart,
        "<h2>Hypothesis checks per phase</h2>",
        _table(check_headers, _check_rows(checks), empty="No hypothesis checks."),
        "<h2>Metrics per phase</h2>",
        _phase_table(s),
        "<h2>Guardrails</h2>",
        _table(check_headers, _check_rows(guards), empty="No guardrail checks."),
        "<h2>Audit</h2>",
        _audit_section(s),
        "<h2>Faults and actuation lag</h2>",
        _fault_table(s),
        "<h2>What clients were told</h2>",
        _outcome_section(run),
        "<h2>Metric definitions</h2>",
        _definitions(run),
    ]
    title = f"chaoskit · {s.experiment.name} · {verdict_word(s.verdict, s.status)}"
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<meta name='viewport' content='width=device-width'><title>{_e(title)}</title>"
        f"<style>{_CSS}</style>{_ERROR_HOOK}</head><body>"
        + "\n".join(sections)
        + "</body></html>\n"
    )


def write_html(run: RunFolder, path: Path | None = None) -> Path:
    """Write report.html into the run folder (or ``path``)."""
    target = path or run.path / "report.html"
    target.write_text(render_html(run), encoding="utf-8")
    return target
