"""The startup display: one line per component, its final state shown."""

from __future__ import annotations

import io

from rich.console import Console

from chaoskit.stack.backend import StartupUpdate
from chaoskit.stack.progress import RichStartupProgress


def test_each_component_ends_on_its_state() -> None:
    out = io.StringIO()
    console = Console(file=out, width=100)
    with RichStartupProgress(console) as progress:
        progress(StartupUpdate("toxiproxy", "starting"))
        progress(StartupUpdate("toxiproxy", "ready", "7 proxies"))
        progress(StartupUpdate("store", "starting"))
        progress(StartupUpdate("store", "failed", "exited"))
    lines = [line for line in out.getvalue().splitlines() if line.strip()]
    assert any("toxiproxy" in line and "ready" in line and "7 proxies" in line for line in lines)
    assert any("store" in line and "failed" in line and "exited" in line for line in lines)
