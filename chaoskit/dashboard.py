"""The live view of a run: a Rich dashboard for terminals, a plain progress line for logs.

Both are event handlers: they keep the latest state from events and never talk to the
stack themselves. ``Dashboard.render`` builds one frame from that state (a few ms).
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from chaoskit.events import (
    AuditDone,
    CheckJudged,
    Event,
    FaultApplied,
    FaultFailed,
    FaultRemoved,
    GuardrailTripped,
    LogMessage,
    PhaseChanged,
    RunEnded,
    RunStarted,
    Sample,
)
from chaoskit.observe.metrics import FAILURE_STEPS

__all__ = ["Dashboard", "ProgressLine", "sparkline"]

# Failure-step labels that fit a 12-character cell (three cells in a half-width panel at 80).
_STEP_LABELS = {"inventory": "invent.", "eligibility": "elig."}
_FAILURE_CELL = 11

_BLOCKS = "▁▂▃▄▅▆▇█"
_SPARK_SERIES = (
    "achieved_rate",
    "target_load",
    "fulfilment_rate",
    "latency_p95_ms",
    "coupon_pending",
    "error_rate",
    "riders_free",
)


def sparkline(values: Sequence[float | None], width: int, *, floor: float | None = 0.0) -> str:
    """The last ``width`` values as unicode blocks (a gap for unknown values)."""
    tail = list(values)[-width:]
    known = [v for v in tail if v is not None and math.isfinite(v)]
    if not known:
        return " " * len(tail)
    low = min(known) if floor is None else min(floor, min(known))
    high = max(known)
    span = high - low
    out = []
    for v in tail:
        if v is None or not math.isfinite(v):
            out.append(" ")
        elif span <= 0:
            out.append(_BLOCKS[0] if high == 0 else _BLOCKS[len(_BLOCKS) // 2])
        else:
            out.append(_BLOCKS[min(int((v - low) / span * len(_BLOCKS)), len(_BLOCKS) - 1)])
    return "".join(out)


def _num(value: float | None, fmt: str = "{:,.0f}", unit: str = "") -> str:
    if value is None or not math.isfinite(value):
        return "-"
    return fmt.format(value) + unit


def _pct(value: float | None) -> str:
    return _num(None if value is None else value * 100, "{:.1f}", "%")


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return _num(value / 1000, "{:.2f}", "s") if value >= 10_000 else _num(value, "{:.0f}", "ms")


def _secs(value: float | None) -> str:
    if value is None:
        return "-"
    return _num(value, "{:.1f}", "s") if value < 100 else _clock(value)


def _retry(value: float | None) -> float | None:
    """Requests per intent; under 1 the window counted intents before their requests."""
    return value if value is not None and value >= 1.0 else None


def _clock(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "--:--"
    total = max(int(seconds), 0)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


@dataclass(slots=True)
class _Check:
    kind: str
    metric: str
    bound: str
    phase: str = ""
    ok: bool | None = None  # None: not checked yet
    value: float | None = None


@dataclass(slots=True)
class _State:
    name: str = ""
    t: float = 0.0
    phase: str = ""
    load_phase: str = ""
    metrics: dict[str, float | None] = field(default_factory=dict)
    history: dict[str, deque[float | None]] = field(default_factory=dict)
    active: dict[str, str] = field(default_factory=dict)  # fault name -> kind
    done_faults: dict[str, str] = field(default_factory=dict)  # fault name -> how it ended
    checks: dict[tuple[str, str, str], _Check] = field(default_factory=dict)
    breach: str = ""
    ended: str = ""
    message: str = ""
    audit: dict[str, Any] | None = None  # the audit's fields, once the ledgers are read


def _bound(spec: Mapping[str, Any]) -> str:
    parts = []
    if spec.get("min") is not None:
        parts.append(f">={spec['min']:g}")
    if spec.get("max") is not None:
        parts.append(f"<={spec['max']:g}")
    return ",".join(parts)


class _Tracker:
    """What both views share: the state kept from events."""

    def __init__(
        self,
        *,
        plan: Mapping[str, Any] | None,
        name: str,
        hypotheses: Sequence[Mapping[str, Any]],
        guardrails: Sequence[Mapping[str, Any]],
        history: int,
    ) -> None:
        self.plan: Mapping[str, Any] = plan or {}
        self._lock = threading.Lock()
        self._state = _State(name=name)
        for metric in _SPARK_SERIES:
            self._state.history[metric] = deque(maxlen=history)
        for spec in hypotheses:
            key = ("hypothesis", str(spec["metric"]), str(spec.get("phase", "all")))
            self._state.checks[key] = _Check("hypothesis", key[1], _bound(spec), key[2])
        for spec in guardrails:
            key = ("guardrail", str(spec["metric"]), "")
            self._state.checks[key] = _Check("guardrail", key[1], _bound(spec))

    def handle(self, event: Event) -> None:
        """Fold ``event`` into the state."""
        with self._lock:
            s = self._state
            s.t = max(s.t, event.t)
            match event:
                case RunStarted():
                    s.name = event.experiment or s.name
                case Sample():
                    s.metrics = dict(event.metrics)
                    for metric, series in s.history.items():
                        series.append(s.metrics.get(metric))
                case PhaseChanged():
                    s.phase = event.phase
                    s.load_phase = event.load_phase or s.load_phase
                case FaultApplied():
                    s.active[event.name] = event.kind
                case FaultRemoved() | FaultFailed():
                    s.active.pop(event.name, None)
                    failed = isinstance(event, FaultFailed)
                    s.done_faults[event.name] = "failed" if failed else "removed"
                case CheckJudged():
                    self._check(s, event)
                case GuardrailTripped():
                    bound = _bound({"min": event.min, "max": event.max}) or "-"
                    s.breach = f"{event.metric}={_num(event.value, '{:g}')} (limit {bound})"
                    key = ("guardrail", event.metric, "")
                    if key in s.checks:
                        s.checks[key].ok = False
                case RunEnded():
                    s.ended = event.status + (f" ({event.verdict})" if event.verdict else "")
                case AuditDone():
                    s.audit = dict(event.audit)
                case LogMessage() if event.level in ("warning", "error"):
                    s.message = event.message
                case _:
                    pass

    def _check(self, s: _State, event: CheckJudged) -> None:
        kind = event.kind
        phase = "" if kind == "guardrail" else event.phase
        key = (kind, event.metric, phase)
        if key not in s.checks and kind == "hypothesis":
            # A hypothesis for phase "all" is checked once per phase: show the latest.
            key = (kind, event.metric, "all")
        check = s.checks.get(key)
        if check is None:
            check = _Check(kind, key[1], _bound({"min": event.min, "max": event.max}), phase)
            s.checks[key] = check
        # Live checks carry the phase's value so far: the latest one is the one to show.
        check.ok = event.ok
        check.value = event.value
        if phase:
            check.phase = phase

    def snapshot(self) -> _State:
        """A copy safe to read while events keep arriving."""
        with self._lock:
            s = self._state
            return _State(
                name=s.name,
                t=s.t,
                phase=s.phase,
                load_phase=s.load_phase,
                metrics=dict(s.metrics),
                history={k: deque(v) for k, v in s.history.items()},
                active=dict(s.active),
                done_faults=dict(s.done_faults),
                checks={
                    k: _Check(c.kind, c.metric, c.bound, c.phase, c.ok, c.value)
                    for k, c in s.checks.items()
                },
                breach=s.breach,
                ended=s.ended,
                message=s.message,
                audit=s.audit,
            )

    def load_phase_at(self, t: float, fallback: str) -> str:
        for phase in self.plan.get("load_phases") or ():
            if phase.get("start", 0) <= t < phase.get("end", math.inf):
                return str(phase.get("label") or fallback)
        return fallback

    def fault_end(self, name: str) -> float | None:
        for window in self.plan.get("fault_windows") or ():
            if window.get("name") == name:
                end = window.get("end")
                return None if end is None else float(end)
        return None

    def next_fault(self, t: float, seen: set[str]) -> tuple[str, float] | None:
        upcoming = [
            (float(w["start"]), str(w["name"]))
            for w in self.plan.get("fault_windows") or ()
            if w.get("start") is not None and w.get("name") not in seen and w["start"] >= t
        ]
        if not upcoming:
            return None
        start, name = min(upcoming)
        return name, start - t


class Dashboard:
    """The Rich live dashboard; an EventHandler. ``render()`` is one frame."""

    def __init__(
        self,
        *,
        console: Console,
        plan: Mapping[str, Any] | None = None,
        name: str = "",
        hypotheses: Sequence[Mapping[str, Any]] = (),
        guardrails: Sequence[Mapping[str, Any]] = (),
        refresh_per_s: float = 4.0,
        history: int = 120,
    ) -> None:
        self.console = console
        self.refresh_per_s = refresh_per_s
        self._tracker = _Tracker(
            plan=plan, name=name, hypotheses=hypotheses, guardrails=guardrails, history=history
        )
        self._live: Live | None = None

    def handle(self, event: Event) -> None:
        """Take an event (called from the event bus, on any thread)."""
        self._tracker.handle(event)

    def start(self) -> None:
        """Show the dashboard; it redraws itself ``refresh_per_s`` times a second."""
        if self._live is not None:
            return
        self._live = Live(
            console=self.console,
            get_renderable=self.render,
            refresh_per_second=self.refresh_per_s,
            transient=False,
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self._live.start()

    def stop(self) -> None:
        """Draw a last frame and hand the terminal back."""
        if self._live is not None:
            self._live.refresh()
            self._live.stop()
            self._live = None

    def _style(self, style: str) -> str:
        # NO_COLOR: no styles at all (rich would still send bold and dim), so no escape codes.
        return "" if self.console.no_color else style

    def render(self) -> RenderableType:
        """One frame of the dashboard from the current state."""
        s = self._tracker.snapshot()
        m = s.metrics
        return Group(
            self._header(s),
            _row(self._load(s, m), self._customers(s, m)),
            _row(self._latency(s, m), self._failures(m)),
            _row(self._coupons(s, m), self._stores(m), self._riders(s, m)),
            _row(self._faults(s), self._checks(s)),
        )

    # ---- panels ------------------------------------------------------------------------

    def _panel(self, title: str, lines: Sequence[Text], height: int) -> Panel:
        body = Text("\n").join(lines)
        body.no_wrap = True
        body.overflow = "ellipsis"
        return Panel(
            body,
            title=title,
            title_align="left",
            height=height,
            padding=(0, 1),
            border_style=self._style("blue"),
        )

    def _header(self, s: _State) -> Text:
        planned = self._tracker.plan.get("duration_s")
        over = planned is not None and s.t > float(planned)
        load_phase = "done" if over else self._tracker.load_phase_at(s.t, s.load_phase)
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append("chaoskit ", self._style("bold"))
        text.append(s.name or "run", self._style("bold cyan"))
        if over:
            # The drain and the audit run after the load: say so, not "00:28 / 00:27".
            assert planned is not None
            text.append(f"  {_clock(planned)} / {_clock(planned)} +{s.t - float(planned):.0f}s")
        else:
            text.append(f"  {_clock(s.t)} / {_clock(planned)}")
        if planned:
            done = min(max(s.t / float(planned), 0.0), 1.0)
            filled = int(done * 16)
            text.append("  " + "█" * filled + "░" * (16 - filled), self._style("cyan"))
            text.append(f" {done * 100:3.0f}%")
        text.append("\n")
        text.append(f"phase {s.phase or '-'}", self._style("bold"))
        text.append(f"  load {load_phase or '-'}")
        if s.ended:
            text.append(f"  run {s.ended}", self._style("bold yellow"))
        elif s.breach:
            text.append(f"  guardrail breached: {s.breach}", self._style("bold red"))
        elif s.message:
            text.append(f"  {s.message}", self._style("yellow"))
        team = _team_metrics(s.metrics)
        if team:
            text.append("\nteam " + team, self._style("magenta"))
        return text

    def _spark(self, s: _State, metric: str, width: int = 34) -> Text:
        floor = None if metric == "fulfilment_rate" else 0.0
        return Text(sparkline(list(s.history[metric]), width, floor=floor), self._style("cyan"))

    def _load(self, s: _State, m: Mapping[str, float | None]) -> Panel:
        lines = [
            Text(f"target   {_num(m.get('target_load'), '{:,.1f}')}"),
            Text(
                f"achieved {_num(m.get('achieved_rate'), '{:,.1f}', '/s')}"
                f"   users {_num(m.get('users'))}"
            ),
            self._spark(s, "achieved_rate"),
        ]
        return self._panel("Load", lines, 5)

    def _customers(self, s: _State, m: Mapping[str, float | None]) -> Panel:
        rate = m.get("fulfilment_rate")
        style = "green" if rate is not None and rate >= 0.95 else "yellow"
        if rate is not None and rate < 0.8:
            style = "red"
        fulfilment = Text("fulfilment ")
        fulfilment.append(_pct(rate), self._style(style))
        fulfilment.append(f"  in {_secs(m.get('fulfilment_time_p95_s'))} p95")
        first_try = f"first try failed {_pct(m.get('first_try_failure_rate'))}"
        # The sparkline gives up what the first-try share needs, so 80 columns show both.
        trend = self._spark(s, "fulfilment_rate", max(8, self._half_width() - len(first_try) - 1))
        trend.append(" " + first_try, "")
        lines = [
            Text(f"intents {_num(m.get('intents'))}  orders {_num(m.get('orders'))}"),
            fulfilment,
            trend,
        ]
        return self._panel("Customers", lines, 5)

    def _latency(self, s: _State, m: Mapping[str, float | None]) -> Panel:
        errors = m.get("error_rate")
        error_text = Text("errors ")
        error_text.append(_pct(errors), self._style("red" if errors else ""))
        error_text.append(f"  retry x{_num(_retry(m.get('retry_amplification')), '{:.2f}')}")
        lines = [
            Text(
                f"p50 {_ms(m.get('latency_p50_ms'))}  p95 {_ms(m.get('latency_p95_ms'))}"
                f"  p99 {_ms(m.get('latency_p99_ms'))}"
            ),
            error_text,
            self._spark(s, "latency_p95_ms"),
            Text(f"orders/s {_num(m.get('orders_per_s'), '{:,.1f}')}"),
        ]
        return self._panel("Latency", lines, 6)

    def _failures(self, m: Mapping[str, float | None]) -> Panel:
        # The run's journey names the steps (the stub chain's by default); three cells a row,
        # read down the columns in chain order, at most four rows (80x24).
        steps = [k.removeprefix("failures.") for k in m if k.startswith("failures.")]
        steps = (steps or list(FAILURE_STEPS))[:12]
        rows = math.ceil(len(steps) / 3)
        lines = [Text() for _ in range(rows)]
        for index, step in enumerate(steps):
            value = m.get(f"failures.{step}")
            shown = _num(value, "{:,.0f}")
            label = _STEP_LABELS.get(step, step)[: _FAILURE_CELL - len(shown) - 1]
            cell = label + " " * max(1, _FAILURE_CELL - len(label) - len(shown)) + shown
            line = lines[index % rows]
            if line.plain:
                line.append(" ")
            line.append(cell, self._style("red") if value else "")
        return self._panel("Failures by step /s", lines, rows + 2)

    def _coupons(self, s: _State, m: Mapping[str, float | None]) -> Panel:
        lines = [
            Text(f"pending {_num(m.get('coupon_pending'))}"),
            Text(f"delay p95 {_secs(m.get('coupon_delay_p95_s'))}"),
        ]
        if s.audit is not None:
            # After the drain the ledgers say what the buyers got (80x24: it takes the place
            # of the live backlog, which the audit's queued credits now tell).
            lines = self._free_orders(s.audit, m)
        return self._panel("Coupons", lines, 4)

    def _free_orders(self, audit: Mapping[str, Any], m: Mapping[str, float | None]) -> list[Text]:
        overall = (audit.get("free_orders") or {}).get("overall") or {}
        entitled, honoured = overall.get("entitled"), overall.get("honoured")
        rate = honoured / entitled if entitled and honoured is not None else None
        lost = ((audit.get("invariants") or {}).get("lost_entitlements") or {}).get("count")
        delay = Text()
        if lost:  # its own line: a third of 80 columns holds one of the two, not both
            delay.append(f"lost {_num(lost)}  ", self._style("red"))
        delay.append(f"delay {_secs(m.get('coupon_delay_p95_s'))}")
        return [Text(f"free orders {_pct(rate)}"), delay]

    def _stores(self, m: Mapping[str, float | None]) -> Panel:
        lines = [
            Text(f"rejected {_num(m.get('store_rejections'))}/s"),
            Text(
                f"queue {_num(m.get('store_queue_depth'))}"
                f"  paused {_num(m.get('store_paused_s'), '{:.1f}', 's')}"
            ),
        ]
        return self._panel("Stores", lines, 4)

    def _riders(self, s: _State, m: Mapping[str, float | None]) -> Panel:
        free, busy = m.get("riders_free"), m.get("riders_busy")
        bar = Text()
        if free is not None and busy is not None and free + busy > 0:
            width = 6
            n_busy = round(busy / (free + busy) * width)
            bar.append("█" * n_busy, self._style("yellow"))
            bar.append("░" * (width - n_busy), self._style("green"))
            bar.append(" ")
        bar.append(f"wait p95 {_secs(m.get('rider_wait_p95_s'))}")
        lines = [Text(f"free {_num(free)}  busy {_num(busy)}"), bar]
        return self._panel("Riders", lines, 4)

    def _faults(self, s: _State) -> Panel:
        lines = []
        room = self._half_width()
        for name, kind in sorted(s.active.items()):
            end = self._tracker.fault_end(name)
            left = "to load end" if end is None else f"{_clock(end - s.t)} left"
            line = Text("● ", self._style("red"))
            text = f"{name} ({kind}) {left}"
            if len(text) + 2 > room:  # the name says more than the kind: drop the kind first
                text = f"{name} {left}"
            line.append(text)
            lines.append(line)
        if not lines:
            lines.append(Text("no fault active", self._style("green")))
        upcoming = self._tracker.next_fault(s.t, set(s.active) | set(s.done_faults))
        if upcoming is not None:
            lines.append(Text(f"next: {upcoming[0]} in {_clock(upcoming[1])}"))
        if s.done_faults:
            lines.append(Text(f"done: {', '.join(sorted(s.done_faults))}"))
        return self._panel("Faults", lines[:4], 6)

    def _half_width(self) -> int:
        """Characters inside a panel that shares its row with one other (borders, padding)."""
        return self.console.width // 2 - 4

    def _checks(self, s: _State) -> Panel:
        lines = []
        for check in s.checks.values():
            if check.ok is None:
                mark, style = "…", "dim"
            elif check.ok:
                mark, style = "✓", "green"
            else:
                mark, style = "✗", "bold red"
            line = Text(mark + " ", self._style(style))
            where = "guard" if check.kind == "guardrail" else check.phase
            line.append(f"{check.metric}{check.bound} {where} {_num(check.value, '{:.3g}')}")
            lines.append(line)
        if not lines:
            lines.append(Text("no hypothesis or guardrail"))
        if len(lines) > 4:
            failed = sum(1 for c in s.checks.values() if c.ok is False)
            lines = [*lines[:3], Text(f"... {len(lines) - 3} more, {failed} failed in all")]
        return self._panel("Checks", lines, 6)


def _team_metrics(metrics: Mapping[str, float | None]) -> str:
    """The team's own metrics (PromQL queries) in a sample: ``name=value`` pairs, or ''."""
    from chaoskit.observe.metrics import METRICS

    return " ".join(
        f"{name}={'no data' if value is None else format(value, '.4g')}"
        for name, value in metrics.items()
        if name not in METRICS and not name.startswith("failures.")
    )


def _row(*panels: Panel) -> Table:
    grid = Table.grid(expand=True)
    for _ in panels:
        grid.add_column(ratio=1)
    grid.add_row(*panels)
    return grid


class ProgressLine:
    """For --no-dashboard and non-TTY output: one plain line every ``every_s`` seconds."""

    def __init__(
        self,
        *,
        console: Console,
        every_s: float = 5.0,
        plan: Mapping[str, Any] | None = None,
    ) -> None:
        self.console = console
        self.every_s = every_s
        self._tracker = _Tracker(plan=plan, name="", hypotheses=(), guardrails=(), history=1)
        self._last_print: float | None = None
        self._lock = threading.Lock()

    def handle(self, event: Event) -> None:
        """Print a progress line when one is due, and one line for notable events."""
        self._tracker.handle(event)
        line = None
        t = f"t={event.t:.0f}s"
        match event:
            case Sample():
                with self._lock:
                    due = self._last_print is None or event.t - self._last_print >= self.every_s
                    if due:
                        self._last_print = event.t
                if due:
                    line = self.line()
            case PhaseChanged():
                load = f" (load {event.load_phase})" if event.load_phase else ""
                line = f"{t} phase {event.phase}{load}"
            case FaultApplied():
                line = f"{t} fault {event.name} applied ({event.kind})"
            case FaultRemoved():
                line = f"{t} fault {event.name} removed"
            case FaultFailed():
                line = f"{t} fault {event.name} FAILED: {event.error}"
            case GuardrailTripped():
                limit = "" if event.limit is None else f" (limit {event.limit:g})"
                line = f"{t} GUARDRAIL {event.metric}={_num(event.value, '{:g}')}{limit}"
            case RunEnded():
                line = f"{t} run {event.status} verdict {event.verdict}"
            case _:
                pass
        if line is not None:
            self.console.print(line, markup=False, highlight=False, soft_wrap=True)

    def line(self) -> str:
        """The progress line for the current state."""
        s = self._tracker.snapshot()
        m = s.metrics
        faults = ",".join(sorted(s.active)) or "none"
        return (
            f"t={s.t:.0f}s phase={s.phase or '-'}"
            f" rate={_num(m.get('achieved_rate'), '{:.1f}')}/{_num(m.get('target_load'), '{:g}')}"
            f" fulfil={_pct(m.get('fulfilment_rate'))}"
            f" p95={_ms(m.get('latency_p95_ms'))}"
            f" errors={_pct(m.get('error_rate'))}"
            f" faults={faults}"
            + (f" team: {_team_metrics(m)}" if _team_metrics(m) else "")
        )
