"""The dashboard rendered into a Console(file=StringIO) at 80 columns, and the progress line."""

from __future__ import annotations

import io
import re
import time
from typing import Any

from rich.console import Console

from chaoskit.dashboard import Dashboard, ProgressLine, sparkline
from chaoskit.events import (
    AuditDone,
    CheckJudged,
    FaultApplied,
    FaultRemoved,
    GuardrailTripped,
    PhaseChanged,
    RunEnded,
    Sample,
)
from chaoskit.observe.metrics import SERIES_METRICS

PLAN: dict[str, Any] = {
    "duration_s": 300,
    "load_phases": [
        {"start": 0, "end": 60, "label": "warm-up", "from": 10, "to": 10},
        {"start": 60, "end": 300, "label": "surge", "from": 10, "to": 200},
    ],
    "fault_windows": [
        {"name": "slow-coupon", "kind": "latency", "start": 60, "end": 120},
        {"name": "rider-shortage", "kind": "riders", "start": 150, "end": None},
    ],
    "check_phases": {"baseline": [0, 60], "during": [60, 150], "recovery": [150, 300]},
}
TITLES = (
    "Load",
    "Customers",
    "Latency",
    "Failures by step",
    "Coupons",
    "Stores",
    "Riders",
    "Faults",
    "Checks",
)


def metrics(**values: float | None) -> dict[str, float | None]:
    row: dict[str, float | None] = dict.fromkeys(SERIES_METRICS)
    row.update(values)
    return row


def fed_dashboard(console: Console) -> Dashboard:
    board = Dashboard(
        console=console,
        plan=PLAN,
        name="festival-surge",
        hypotheses=[{"metric": "fulfilment_rate", "min": 0.95, "phase": "during"}],
        guardrails=[{"metric": "error_rate", "max": 0.5}],
    )
    board.handle(PhaseChanged(t=60.0, phase="during", load_phase="surge"))
    board.handle(
        FaultApplied(
            t=61.0, name="slow-coupon", kind="latency", target="coupon", lag_ms=4, ends_at=None
        )
    )
    for t in range(62, 90):
        board.handle(
            Sample(
                t=float(t),
                metrics=metrics(
                    target_load=150.0,
                    achieved_rate=143.5,
                    users=37,
                    intents=4321,
                    orders=4012,
                    fulfilment_rate=0.931,
                    fulfilment_time_p95_s=2.4,
                    latency_p50_ms=41,
                    latency_p95_ms=230 + t,
                    latency_p99_ms=987,
                    error_rate=0.052,
                    retry_amplification=1.37,
                    coupon_pending=1234,
                    coupon_delay_p95_s=17.5,
                    store_rejections=12,
                    store_paused_s=3.0,
                    store_queue_depth=45,
                    riders_free=20,
                    riders_busy=180,
                    rider_wait_p95_s=1.5,
                    **{"failures.store": 7, "failures.coupon": 3},
                ),
            )
        )
    board.handle(
        CheckJudged(
            t=89.0,
            kind="hypothesis",
            phase="during",
            metric="fulfilment_rate",
            value=0.931,
            ok=False,
            min=0.95,
            max=None,
        )
    )
    return board


def render(board: Dashboard, console: Console) -> str:
    console.print(board.render())
    out = console.file.getvalue()  # type: ignore[attr-defined]
    assert isinstance(out, str)
    return out


def test_every_panel_with_live_numbers_fits_80_columns() -> None:
    console = Console(file=io.StringIO(), width=80)
    out = render(fed_dashboard(console), console)
    for title in TITLES:
        assert title in out, title
    for number in (
        "143.5/s",
        "4,321",
        "4,012",
        "93.1%",
        "41ms",
        "319ms",
        "987ms",
        "5.2%",
        "x1.37",
        "1,234",
        "17.5s",
        "rejected 12/s",
        "queue 45",
        "free 20",
        "busy 180",
    ):
        assert number in out, number
    assert "festival-surge" in out
    assert "01:29 / 05:00" in out  # elapsed / planned
    assert "load surge" in out
    assert "slow-coupon (latency) 00:31 left" in out
    assert "next: rider-shortage in 01:01" in out
    assert "✗ fulfilment_rate>=0.95 during 0.931" in out
    assert "… error_rate<=0.5 guard" in out
    assert re.search(r"store\s+7", out) and re.search(r"coupon\s+3", out)
    assert max(len(line) for line in out.splitlines()) <= 80


def test_no_color_output_has_no_escape_codes() -> None:
    color = Console(file=io.StringIO(), width=80, force_terminal=True)
    assert "\x1b[" in render(fed_dashboard(color), color)  # the check below can fail
    plain = Console(file=io.StringIO(), width=80, force_terminal=True, no_color=True)
    out = render(fed_dashboard(plain), plain)
    assert "\x1b" not in out
    assert "Customers" in out


def test_empty_dashboard_renders_dashes() -> None:
    console = Console(file=io.StringIO(), width=80)
    out = render(Dashboard(console=console), console)
    assert "no fault active" in out
    assert "no hypothesis or guardrail" in out
    assert "--:--" in out


def test_guardrail_breach_and_run_end_show_in_the_header() -> None:
    console = Console(file=io.StringIO(), width=80)
    board = fed_dashboard(console)
    board.handle(GuardrailTripped(t=95.0, metric="error_rate", value=0.61, min=None, max=0.5))
    assert "guardrail breached: error_rate=0.61" in render(board, console)
    board.handle(
        FaultRemoved(t=96.0, name="slow-coupon", kind="latency", reason="run ended", lag_ms=1)
    )
    board.handle(RunEnded(t=97.0, status="aborted", verdict="aborted", exit_code=3))
    out = render(board, Console(file=io.StringIO(), width=80))
    assert "run aborted (aborted)" in out
    assert "done: slow-coupon" in out
    assert "✗ error_rate<=0.5 guard" in out


def test_render_is_cheap() -> None:
    console = Console(file=io.StringIO(), width=80)
    board = fed_dashboard(console)
    frames = 40
    started = time.perf_counter()
    for _ in range(frames):
        console.print(board.render())
    per_frame_ms = (time.perf_counter() - started) / frames * 1000
    print(f"\ndashboard render: {per_frame_ms:.1f} ms/frame")
    # 4 frames/s must stay a small share of one core even on a busy CI machine.
    assert per_frame_ms < 40


def test_live_start_stop_draws_to_the_console() -> None:
    console = Console(file=io.StringIO(), width=80, force_terminal=True, no_color=True)
    board = fed_dashboard(console)
    board.start()
    time.sleep(0.3)
    board.stop()
    assert "Customers" in console.file.getvalue()  # type: ignore[attr-defined]


def test_sparkline() -> None:
    assert sparkline([0, 1, 2, 3, 4, 5, 6, 7], 8) == "▁▂▃▄▅▆▇█"
    assert sparkline([None, 5.0], 4) == " █"  # unknown is a gap; scaled from 0
    assert sparkline([0, 0], 2) == "▁▁"
    assert sparkline([0.9, 0.9, 0.95], 3, floor=None) == "▁▁█"
    assert sparkline([1, 2, 3], 2) == sparkline([2, 3], 2)
    assert sparkline([], 5) == ""


def test_progress_line_prints_every_few_seconds_and_notable_events() -> None:
    console = Console(file=io.StringIO(), width=200, force_terminal=False)
    progress = ProgressLine(console=console, every_s=5)
    progress.handle(
        FaultApplied(
            t=1.0, name="slow-coupon", kind="latency", target="coupon", lag_ms=1, ends_at=None
        )
    )
    for t in range(2, 14):
        progress.handle(
            PhaseChanged(t=1.5, phase="during", load_phase="surge")
            if t == 2
            else Sample(
                t=float(t),
                metrics=metrics(
                    achieved_rate=99.5,
                    target_load=100,
                    fulfilment_rate=0.98,
                    latency_p95_ms=120,
                    error_rate=0.01,
                ),
            )
        )
    out = console.file.getvalue()  # type: ignore[attr-defined]
    lines = out.splitlines()
    progress_lines = [line for line in lines if "rate=" in line]
    assert len(progress_lines) == 3  # t=3, 8, 13
    assert progress_lines[0] == (
        "t=3s phase=during rate=99.5/100 fulfil=98.0% p95=120ms errors=1.0% faults=slow-coupon"
    )
    assert lines[0] == "t=1s fault slow-coupon applied (latency)"
    assert "\x1b" not in out


# ---------------------------------------------------------------- 80x24, and true things


def _judged(metric: str, *, phase: str = "all", ok: bool | None = True) -> CheckJudged:
    return CheckJudged(
        t=89.0, kind="hypothesis", phase=phase, metric=metric, min=None, max=0, value=0, ok=ok
    )


def test_a_full_dashboard_fits_80_by_24_with_every_check_and_the_bottom_border() -> None:
    console = Console(file=io.StringIO(), width=80, height=24)
    board = fed_dashboard(console)
    for metric in ("lost_orders", "phantom_orders"):
        board.handle(_judged(metric))
    board.handle(
        FaultApplied(
            t=89.5,
            name="rider-shortage-peak",
            kind="riders",
            target="rider",
            lag_ms=3,
            ends_at=None,
        )
    )
    lines = render(board, console).splitlines()
    # A live view one line shorter than the terminal: the cursor line must not scroll it.
    assert len(lines) <= 23, len(lines)
    assert max(len(line) for line in lines) <= 80
    assert lines[-1].startswith("╰") and lines[-1].endswith("╯")  # the bottom border
    out = "\n".join(lines)
    for metric in ("fulfilment_rate>=0.95", "error_rate<=0.5", "lost_orders<=0", "phantom_orders"):
        assert metric in out, metric  # 4 check rows, none cut
    assert "● rider-shortage-peak to load end" in out  # the whole name, before its kind


def test_final_frames_do_not_show_more_time_than_planned() -> None:
    console = Console(file=io.StringIO(), width=80, height=24)
    board = fed_dashboard(console)
    board.handle(PhaseChanged(t=300.5, phase="drain"))
    board.handle(RunEnded(t=302.0, status="completed", verdict="held", exit_code=0))
    header = render(board, console).splitlines()[:2]
    assert "05:02 / 05:00" not in header[0]
    assert "05:00 / 05:00 +2s" in header[0]
    assert "phase drain" in header[1] and "load surge" not in header[1]


def test_a_window_without_requests_yet_shows_no_retry_factor() -> None:
    console = Console(file=io.StringIO(), width=80)
    board = Dashboard(console=console, plan=PLAN, name="x")
    board.handle(Sample(t=1.0, metrics=metrics(retry_amplification=0.0)))
    out = render(board, console)
    assert "x0.00" not in out and "retry x-" in out


def test_a_breached_guardrail_shows_its_real_limit() -> None:
    console = Console(file=io.StringIO(), width=80)
    board = fed_dashboard(console)
    board.handle(GuardrailTripped(t=95.0, metric="error_rate", value=1.0, min=None, max=0.99))
    assert "guardrail breached: error_rate=1 (limit <=0.99)" in render(board, console)


def test_progress_line_says_the_real_limit_and_no_none() -> None:
    console = Console(file=io.StringIO(), width=200, force_terminal=False)
    progress = ProgressLine(console=console, every_s=5)
    progress.handle(GuardrailTripped(t=9.0, metric="error_rate", value=1.0, min=None, max=0.99))
    progress.handle(PhaseChanged(t=10.0, phase="drain"))
    out = console.file.getvalue()  # type: ignore[attr-defined]
    assert "t=9s GUARDRAIL error_rate=1 (limit 0.99)" in out
    assert "None" not in out
    assert "t=10s phase drain\n" in out


def test_first_try_failures_live_and_free_orders_after_the_audit() -> None:
    console = Console(file=io.StringIO(), width=120, color_system=None)
    board = fed_dashboard(console)
    board.handle(Sample(t=90.0, metrics=metrics(first_try_failure_rate=0.5)))
    assert "first try failed 50.0%" in render(board, console)
    audit = {
        "status": "failed",
        "invariants": {"lost_entitlements": {"count": 37, "order_ids": ["a"]}},
        "free_orders": {"overall": {"entitled": 200, "honoured": 163, "in_slo": None}},
    }
    board.handle(AuditDone(t=95.0, audit=audit))
    console.file = io.StringIO()
    out = render(board, console)
    assert "free orders 81.5%" in out and "lost 37" in out


def test_first_try_and_free_orders_fit_80_columns() -> None:
    console = Console(file=io.StringIO(), width=80, height=24, color_system=None)
    board = fed_dashboard(console)
    board.handle(Sample(t=90.0, metrics=metrics(first_try_failure_rate=0.5)))
    audit = {
        "status": "failed",
        "invariants": {"lost_entitlements": {"count": 37, "order_ids": ["a"]}},
        "free_orders": {"overall": {"entitled": 200, "honoured": 163, "in_slo": None}},
    }
    board.handle(AuditDone(t=95.0, audit=audit))
    lines = render(board, console).splitlines()
    out = "\n".join(lines)
    assert "first try failed 50.0%" in out and "free orders 81.5%" in out and "lost 37" in out
    assert len(lines) <= 23 and max(len(line) for line in lines) <= 80
    assert "…" not in out.replace("… error_rate", "")  # nothing cut but a pending check's mark
