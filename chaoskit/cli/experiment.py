"""`chaoskit validate`, `plan` and `schema`: the experiment file, checked and laid out."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from chaoskit.cli._app import app, console
from chaoskit.experiment.durations import format_duration, format_duration_approx
from chaoskit.experiment.loader import load_experiment
from chaoskit.experiment.models import Experiment
from chaoskit.load.shapes import format_amount
from chaoskit.planning import Plan, build_plan

__all__ = ["plan", "render_plan", "schema", "validate"]

_MAX_WIDTH = 100
_LABEL_WIDTH = 18
_SPARKS = "▁▂▃▄▅▆▇█"
_FAMILY_STYLE = {"network": "magenta", "domain": "yellow", "container": "red"}
_PHASE_STYLE = {"baseline": "green", "during": "red", "recovery": "blue"}
_PHASE_CHAR = {"baseline": "─", "during": "━", "recovery": "═"}
# Fault settings that are durations (seconds in the model), shown the human way.
_DURATION_SETTINGS = frozenset({"latency", "jitter", "timeout", "delay", "lag"})
# Shown in other columns, or left at their defaults: noise in the settings column.
_HIDDEN_SETTINGS = {"dependency": None, "service": None, "direction": "downstream", "toxicity": 1.0}

ExperimentFile = Annotated[
    Path, typer.Argument(help="The experiment YAML file.", show_default=False)
]


def _summary(experiment: Experiment, plan: Plan) -> str:
    def count(n: int, word: str) -> str:
        return f"{n} {word}{'' if n == 1 else 's'}"

    peak = "?" if math.isnan(plan.peak) else format_amount(plan.peak)
    return (
        f"{plan.shape_kind} shape, {plan.model} model, {format_duration_approx(plan.duration_s)}, "
        f"peak {peak} {plan.unit}, {count(len(experiment.faults), 'fault')}, "
        f"{count(len(experiment.hypothesis), 'check')}, "
        f"{count(len(experiment.guardrails), 'guardrail')}"
    )


@app.command()
def validate(file: ExperimentFile) -> None:
    """Check an experiment file; exit 0 if it is valid, 2 with the first problem if not."""
    experiment = load_experiment(file)
    plan = build_plan(experiment)
    notes = f"; {len(plan.notes)} note(s): see `chaoskit plan`" if plan.notes else ""
    line = Text("✓ ", style="bold green")
    line.append(f"{file}: {experiment.name} is valid ({_summary(experiment, plan)}){notes}")
    console.print(line, soft_wrap=True, highlight=False)


@app.command()
def plan(file: ExperimentFile) -> None:
    """Print an experiment's timeline: load phases and fault windows on one time axis."""
    experiment = load_experiment(file)
    render_plan(build_plan(experiment), experiment, console, source=str(file))


@app.command()
def schema(
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write the schema to this file instead of stdout."),
    ] = None,
) -> None:
    """Print the JSON Schema of the experiment format (for editor completion)."""
    document = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "chaoskit experiment (version 1)",
        **Experiment.model_json_schema(by_alias=True),
    }
    text = json.dumps(document, indent=2) + "\n"
    if output is None:
        # Plain stdout: Rich would wrap long lines and break the JSON.
        typer.echo(text, nl=False)
        return
    output.write_text(text, encoding="utf-8")
    console.print(f"wrote the experiment schema to {output}", highlight=False)


def render_plan(plan: Plan, experiment: Experiment, out: Console, *, source: str = "") -> None:
    """Render ``plan`` on ``out``: header, load phases, fault windows, timeline (<= 100 cols)."""
    width = min(out.width, _MAX_WIDTH)
    out.print(Group(*_plan_renderables(plan, experiment, source, width)), width=width)


def _plan_renderables(
    plan: Plan, experiment: Experiment, source: str, width: int
) -> list[RenderableType]:
    header = Text()
    header.append(plan.name, style="bold")
    if experiment.description:
        header.append(f" — {experiment.description}")
    facts = [
        f"file {source}" if source else "",
        f"target {experiment.target}",
        f"seed {experiment.seed}",
        f"{plan.model} model ({plan.unit})",
    ]
    load_line = [
        f"duration {format_duration_approx(plan.duration_s)}",
        f"peak {format_amount(plan.peak)} {plan.unit}",
    ]
    if plan.model == "open" and not math.isnan(plan.total):
        load_line.append(f"≈{plan.total:,.0f} intents")
    load_line.append(f"recovery {format_duration(experiment.recovery)}")
    parts: list[RenderableType] = [
        header,
        Text(" · ".join(f for f in facts if f), style="dim"),
        Text(" · ".join(load_line)),
        _phase_table(plan),
    ]
    if plan.fault_windows:
        parts.append(_fault_table(plan))
    parts.append(_timeline(plan, width))
    for note in plan.notes:
        parts.append(Text(f"note: {note}", style="yellow"))
    return parts


def _phase_table(plan: Plan) -> Table:
    table = Table(title="Load phases", title_justify="left", show_edge=False, pad_edge=False)
    table.add_column("phase", overflow="fold")
    for name in ("start", "end", "from", "to"):
        table.add_column(name, justify="right")
    for phase in plan.load_phases:
        table.add_row(
            phase.label,
            format_duration_approx(phase.start),
            format_duration_approx(phase.end),
            format_amount(phase.start_value),
            format_amount(phase.end_value),
        )
    return table


def _fault_table(plan: Plan) -> Table:
    table = Table(title="Fault windows", title_justify="left", show_edge=False, pad_edge=False)
    for name in ("fault", "kind", "target", "start", "end", "settings"):
        table.add_column(
            name, overflow="fold", justify="right" if name in ("start", "end") else "left"
        )
    for window in plan.fault_windows:
        if window.trigger is not None:
            trigger = window.trigger
            sign, bound = (
                (">", trigger.above) if trigger.above is not None else ("<", trigger.below)
            )
            start = f"when {trigger.metric} {sign} {bound:g}"
            if trigger.for_:
                start += f" for {format_duration(trigger.for_)}"
        else:
            start = format_duration(window.start or 0.0)
        if window.length is None:
            end = "load end"
        elif window.end is not None:
            end = format_duration(window.end)
        else:
            end = f"+{format_duration(window.length)}"
        settings = ", ".join(
            f"{key}={format_duration(value) if key in _DURATION_SETTINGS else _setting(value)}"
            for key, value in window.params.items()
            if key not in _HIDDEN_SETTINGS
            or (_HIDDEN_SETTINGS[key] is not None and value != _HIDDEN_SETTINGS[key])
        )
        if window.ramp is not None:
            settings += f"{', ' if settings else ''}ramp={format_duration(window.ramp)}"
        table.add_row(
            Text(window.name, style=_FAMILY_STYLE.get(window.family, "")),
            window.kind,
            window.target,
            start,
            end,
            settings,
        )
    return table


def _setting(value: object) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _timeline(plan: Plan, width: int) -> Text:
    """The load sparkline, one bar per fault window and the check periods on one axis."""
    cols = max(width - _LABEL_WIDTH - 1, 10)
    duration = plan.duration_s
    step = duration / cols
    text = Text()
    text.append("Timeline\n", style="bold")

    def label(name: str) -> None:
        clipped = name if len(name) < _LABEL_WIDTH else name[: _LABEL_WIDTH - 2] + "…"
        text.append(clipped.ljust(_LABEL_WIDTH))

    label(f"load {format_amount(plan.peak)}")
    sparks = []
    for col in range(cols):
        value = plan.curve.value_at((col + 0.5) * step)
        if math.isnan(value):
            sparks.append("?")
        elif value <= 0 or plan.peak <= 0:
            sparks.append(" ")
        else:
            level = min(int(value / plan.peak * len(_SPARKS)), len(_SPARKS) - 1)
            sparks.append(_SPARKS[level])
    text.append("".join(sparks) + "\n", style="cyan")

    for window in plan.fault_windows:
        label(window.name)
        style = _FAMILY_STYLE.get(window.family, "")
        if window.start is None:
            text.append("┄" * cols + "\n", style=style)
            continue
        start, end = window.span(duration)
        ramp_end = start + (window.ramp or 0.0)
        bar = []
        for col in range(cols):
            left, right = col * step, (col + 1) * step
            if right <= start or left >= end:
                bar.append("·")
            else:
                bar.append("▒" if left < ramp_end and window.ramp else "█")
        for char in bar:
            text.append(char, style="dim" if char == "·" else style)
        text.append("\n")

    label("checked")
    for col in range(cols):
        middle = (col + 0.5) * step
        name = next(
            (
                n
                for n, span in plan.check_phases.items()
                if span is not None and span[0] <= middle < span[1]
            ),
            None,
        )
        text.append(_PHASE_CHAR.get(name or "", " "), style=_PHASE_STYLE.get(name or "", ""))
    text.append("\n")
    text.append(" " * _LABEL_WIDTH)
    text.append(_axis(duration, cols) + "\n", style="dim")
    legend = Text(" " * _LABEL_WIDTH)
    for name, style in _PHASE_STYLE.items():
        if plan.check_phases.get(name) is not None:
            legend.append(f"{_PHASE_CHAR[name]} ", style=style)
            legend.append(f"{name}  ")
    legend.append("▒ ramp  ┄ when a metric says", style="dim")
    text.append_text(legend)
    return text


_NICE_STEPS = (1, 2, 5, 10, 15, 20, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400)


def _axis(duration: float, cols: int) -> str:
    """Tick labels at round times about 12 columns apart, and the end time at the right."""
    line = [" "] * cols
    end_mark = format_duration_approx(duration) + "|"
    end_col = max(cols - len(end_mark), 0)
    if duration > 0:
        step = next((s for s in _NICE_STEPS if s / duration * cols >= 12), _NICE_STEPS[-1])
        free_from = 0
        t = 0.0
        while t < duration:
            col = round(t / duration * cols)
            mark = "|" + format_duration(t)
            if col >= free_from and col + len(mark) < end_col:
                line[col : col + len(mark)] = mark
                free_from = col + len(mark) + 1
            t += step
    line[end_col:] = end_mark
    return "".join(line)
