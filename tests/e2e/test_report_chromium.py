"""report.html in a real headless Chromium: it loads offline, draws its charts, and is not blank."""

from __future__ import annotations

import importlib.util
import re
import shutil
import struct
import subprocess
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from chaoskit.report import write_reports

pytestmark = pytest.mark.e2e

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--virtual-time-budget=5000",
]


def _build_run_folder() -> Callable[..., Path]:
    # The realistic run-folder builder lives with the unit report tests; load it by path so
    # both suites share one fixture without making tests/ a package.
    path = Path(__file__).parents[1] / "unit" / "report" / "conftest.py"
    spec = importlib.util.spec_from_file_location("report_run_fixtures", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    builder: Callable[..., Path] = module.build_run_folder
    return builder


def _chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    if not Path(CHROMIUM).exists():
        pytest.fail("chromium is not installed: `make test` installs it (scripts/setup-tools.sh)")
    return subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _png_rows(data: bytes) -> tuple[int, int, list[bytes]]:
    """Width, height and the still-filtered scanlines of an 8-bit RGB/RGBA PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, b"", b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, colour = struct.unpack(">IIBB", header[:10])
    assert depth == 8 and colour in (2, 6), f"unexpected PNG format depth={depth} colour={colour}"
    channels = 3 if colour == 2 else 4
    raw = zlib.decompress(idat)
    stride = 1 + width * channels
    assert len(raw) == stride * height
    return width, height, [raw[i * stride : (i + 1) * stride] for i in range(height)]


def _content_rows(rows: list[bytes], channels: int) -> int:
    """Rows that are not one flat colour, judged on the filtered bytes (no unfiltering needed).

    A flat row filters to zeros after its first pixel (Sub/Up/Avg/Paeth) or to one repeated
    pixel (None); anything else has something drawn on it.
    """
    count = 0
    for row in rows:
        kind, body = row[0], row[1:]
        if kind == 0:
            flat = body == body[:channels] * (len(body) // channels)
        else:
            rest = body[channels:] if kind == 1 else body
            flat = rest.count(0) == len(rest)
        count += not flat
    return count


@pytest.fixture
def report_html(tmp_path: Path) -> Path:
    folder = _build_run_folder()(tmp_path / "run", seconds=120, outcomes=500)
    result = write_reports(folder, ["html"])
    assert result.ok, result.errors
    return result.paths["html"]


def test_report_renders_to_a_picture_that_is_not_blank(tmp_path: Path, report_html: Path) -> None:
    png = tmp_path / "report.png"
    done = _chromium(
        tmp_path, f"--screenshot={png}", "--window-size=1400,2400", report_html.as_uri()
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert png.is_file() and png.stat().st_size > 50_000
    data = png.read_bytes()
    width, height, rows = _png_rows(data)
    assert (width, height) == (1400, 2400)
    channels = (len(rows[0]) - 1) // width
    drawn = _content_rows(rows, channels)
    assert drawn > 0.5 * height, f"only {drawn} of {height} rows have anything drawn"


def test_report_dom_has_drawn_charts_and_no_script_errors(
    tmp_path: Path, report_html: Path
) -> None:
    done = _chromium(tmp_path, "--dump-dom", report_html.as_uri())
    assert done.returncode == 0, done.stderr[-2000:]
    dom = done.stdout
    assert dom.count('class="main-svg"') >= 1, "plotly drew no chart"
    assert dom.count('class="trace scatter') >= 20  # every series became an SVG trace
    titles: Any = re.findall(r'class="annotation-text"[^>]*>([^<]+)<', dom)
    for expected in ("Load", "Fulfilment", "Latency", "Failures", "Coupons", "Store", "Riders"):
        assert any(t.startswith(expected) for t in titles), (expected, titles)
    assert any("stores-slow" in t for t in titles)  # fault windows are labelled
    errors = re.search(r'<div id="js-errors">(.*?)</div>', dom, re.S)
    assert errors is not None and errors.group(1).strip() == "", errors and errors.group(1)
    visible = re.sub(r"<script.*?</script>", "", dom, flags=re.S)
    assert "Error" not in visible
