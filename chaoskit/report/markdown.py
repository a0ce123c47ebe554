"""report.md: the run's story in text, good in a pull request."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from chaoskit.report._format import (
    KEY_SERIES,
    audit_queue_note,
    describe,
    fmt,
    sparkline,
    verdict_word,
)
from chaoskit.report.rundir import RunFolder
from chaoskit.report.summary import Check

__all__ = ["render_markdown", "write_markdown"]

_ICONS = {"HELD": "✅", "VIOLATED": "❌", "ABORTED": "⚠️", "ERROR": "💥"}


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    lines = [
        "| " + " | ".join(_cell(h) for h in headers) + " |",
        "|" + "|".join("---" for _ in headers) + "|",
    ]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return lines


def _limit(check: Check) -> str:
    unit = describe(check.metric).unit
    parts = []
    if check.min is not None:
        parts.append(f"≥ {fmt(check.min, unit)}")
    if check.max is not None:
        parts.append(f"≤ {fmt(check.max, unit)}")
    return " and ".join(parts) or "–"


def _check_rows(checks: Sequence[Check]) -> list[list[object]]:
    return [
        [
            f"`{c.metric}`",
            c.phase or "–",
            _limit(c),
            fmt(c.value, describe(c.metric).unit),
            "– not judged" if c.ok is None else "✅ held" if c.ok else "❌ violated",
        ]
        for c in checks
    ]


def render_markdown(run: RunFolder) -> str:
    """The report as Markdown text."""
    s = run.summary
    word = verdict_word(s.verdict, s.status)
    out = [
        f"# {_ICONS.get(word, '⏳')} {word}: {s.experiment.name}",
        "",
        f"**Verdict: {word}** · status `{s.status}` · exit code "
        f"`{'–' if s.exit_code is None else s.exit_code}` · run `{s.run_id}`",
        "",
    ]
    if s.experiment.description:
        out += [f"> {s.experiment.description}", ""]
    env = s.environment
    duration = "–" if s.duration_s is None else f"{s.duration_s:.0f} s"
    out += [
        f"Target `{s.experiment.target}` ({env.target_kind}), seed {s.experiment.seed}, "
        f"{duration}, started {s.started_at or '–'}; chaoskit {env.chaoskit_version}, "
        f"Python {env.python}, {env.platform}, {env.workers} load workers.",
        "",
    ]
    if s.abort is not None:
        a = s.abort
        detail = f" ({a.metric} = {fmt(a.value)}, limit {fmt(a.limit)})" if a.metric else ""
        out += [f"**Aborted**: {a.reason}{detail}", ""]
    if s.errors:
        out += ["**Errors**", "", *[f"- {e}" for e in s.errors], ""]

    if s.load_workers:
        out += ["## Load workers", ""]
        rows = []
        for c in s.load_workers:
            if c.change == "lost":
                what = f"worker `{c.worker}` lost, running {fmt(c.share)} of the load"
            else:
                moved = ", ".join([*(f"-`{w}`" for w in c.lost), *(f"+`{w}`" for w in c.joined)])
                what = f"load re-shared from {fmt(c.from_t)} s ({moved})"
            rows.append([f"{c.t:.1f} s", what, str(c.workers)])
        out += [*_table(["at", "change", "workers running load"], rows), ""]

    hypotheses = [c for c in s.checks if c.kind == "hypothesis"]
    guardrails = [c for c in s.checks if c.kind == "guardrail"]
    headers = ["metric", "phase", "limit", "value", "result"]
    out += ["## Hypothesis checks", ""]
    out += _table(headers, _check_rows(hypotheses)) if hypotheses else ["No hypothesis checks."]
    out += ["", "## Guardrails", ""]
    out += _table(headers, _check_rows(guardrails)) if guardrails else ["No guardrail checks."]

    out += ["", "## Audit", ""]
    if s.audit is None:
        out.append("No audit was run.")
    else:
        out.append(
            f"Audit **{s.audit.status}**" + (f": {s.audit.reason}" if s.audit.reason else "")
        )
        queue = audit_queue_note(
            s.audit.queued_credits, s.audit.oldest_queued_age_s, s.audit.credit_slo_s
        )
        if queue is not None:
            out += ["", queue]
        if s.audit.invariants:
            rows = []
            for name, inv in s.audit.invariants.items():
                if inv.skipped is not None:
                    rows.append([f"`{name}`", "–", "– skipped", inv.skipped])
                    continue
                ids = ", ".join(f"`{i}`" for i in inv.order_ids[:10])
                if inv.count > min(10, len(inv.order_ids)):
                    ids += f" … ({inv.count - min(10, len(inv.order_ids))} more)"
                rows.append([f"`{name}`", f"{inv.count:,}", "✅" if inv.count == 0 else "❌", ids])
            out += ["", *_table(["invariant", "violations", "", "order ids"], rows)]

    out += ["", "## Metrics", ""]
    order = [p for p in ("baseline", "during", "recovery") if p in s.phases]
    names = list(s.metrics)
    for values in s.phases.values():
        names += [n for n in values if n not in names]
    rows = []
    for name in names:
        unit = describe(name).unit
        rows.append(
            [f"`{name}`"]
            + [fmt(s.phases[p].get(name), unit) for p in order]
            + [fmt(s.metrics.get(name), unit)]
        )
    out += _table(["metric", *order, "overall"], rows) if rows else ["No metrics recorded."]

    series = run.series
    spark_rows = []
    for name in KEY_SERIES:
        column = series.get(name)
        if column is None or not series.has_data(name):
            continue
        present = [v for v in column if v is not None]
        unit = describe(name).unit
        spark_rows.append(
            [
                f"`{name}`",
                f"`{sparkline(column, 40)}`",
                fmt(min(present), unit),
                fmt(max(present), unit),
            ]
        )
    if spark_rows:
        span = f"0–{series.t[-1]:.0f} s" if series.t else ""
        out += ["", f"## Over time ({span})", ""]
        out += _table(["series", "shape", "min", "max"], spark_rows)

    out += ["", "## Faults", ""]
    if s.faults:
        rows = [
            [
                f"`{f.name}`",
                f.kind,
                f.target or "–",
                "–" if f.applied_at is None else f"{f.applied_at:.1f} s",
                "–" if f.removed_at is None else f"{f.removed_at:.1f} s",
                "–" if f.apply_lag_ms is None else f"{f.apply_lag_ms:.0f} ms",
                "–" if f.remove_lag_ms is None else f"{f.remove_lag_ms:.0f} ms",
                f.status + (f" ({f.error})" if f.error else ""),
            ]
            for f in s.faults
        ]
        out += _table(
            ["fault", "kind", "target", "applied", "removed", "apply lag", "remove lag", "status"],
            rows,
        )
    else:
        out.append("No faults in this experiment.")
    return "\n".join(out) + "\n"


def write_markdown(run: RunFolder, path: Path | None = None) -> Path:
    """Write report.md into the run folder (or ``path``)."""
    target = path or run.path / "report.md"
    target.write_text(render_markdown(run), encoding="utf-8")
    return target
