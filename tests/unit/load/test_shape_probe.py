"""`validate` imports and tries a custom LoadTestShape in a child process and names the cause.

Before: shape files that raised on import, called sys.exit, lacked the class or answered
tick() with strings all validated, and `run` started the stack before finding out.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from chaoskit.errors import ExperimentError
from chaoskit.exit_codes import exit_code_for_error
from chaoskit.experiment.loader import load_experiment
from chaoskit.load.shape_probe import ShapeProbeFailed, probe_custom_shape

EXPERIMENT = (
    "version: 1\nname: c\nload:\n  model: closed\n"
    "  shape: {{kind: custom, class: '{cls}', for: 20s}}\n"
)


def _validate(tmp_path: Path, source: str, cls: str = "shape.py:MyShape") -> ExperimentError:
    (tmp_path / "shape.py").write_text(source)
    path = tmp_path / "c.yaml"
    path.write_text(EXPERIMENT.format(cls=cls))
    with pytest.raises(ExperimentError) as caught:
        load_experiment(path)
    assert caught.value.line == 5 and exit_code_for_error(caught.value) == 2, str(caught.value)
    assert "load.shape.class: " in str(caught.value)
    return caught.value


@pytest.mark.parametrize(
    ("source", "cls", "expected"),
    [
        ("raise RuntimeError('no config')\n", "shape.py:MyShape", "raises RuntimeError: no config"),
        ("import sys\nsys.exit(3)\n", "shape.py:MyShape", "calls sys.exit(3)"),
        ("class Other: ...\n", "shape.py:MyShape", "has no class 'MyShape'"),
        ("class MyShape: ...\n", "shape.py:MyShape", "has no tick() method"),
        (
            "class MyShape:\n    def tick(self):\n        return ('10', '5')\n",
            "shape.py:MyShape",
            "tick() at 0s returned ('10', '5'): expected (users, spawn_rate) as numbers",
        ),
        (
            "class MyShape:\n    def tick(self):\n"
            "        return None if self.get_run_time() > 5 else 1 / 0\n",
            "shape.py:MyShape",
            "tick() at 0s raises ZeroDivisionError",
        ),
        (
            "class MyShape:\n    def tick(self):\n        return (10 ** 9, 1)\n",
            "shape.py:MyShape",
            "tick() asks for 1G users; the limit is 100k",
        ),
    ],
)
def test_a_broken_shape_is_refused_with_its_cause(
    tmp_path: Path, source: str, cls: str, expected: str
) -> None:
    assert expected in str(_validate(tmp_path, source, cls))


def test_a_shape_that_never_answers_is_stopped_in_time(tmp_path: Path) -> None:
    (tmp_path / "shape.py").write_text("while True:\n    pass\n")
    started = time.monotonic()
    with pytest.raises(ShapeProbeFailed, match="did not import and answer tick\\(\\) within 2s"):
        probe_custom_shape("shape.py:MyShape", base_dir=tmp_path, duration_s=10, timeout_s=2)
    assert time.monotonic() - started < 10


def test_a_shape_that_eats_memory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "shape.py").write_text("hog = bytearray(8 * 1024 ** 3)\n")
    with pytest.raises(ShapeProbeFailed, match="MemoryError|out of memory"):
        probe_custom_shape("shape.py:MyShape", base_dir=tmp_path, duration_s=10, timeout_s=30)


def test_a_good_shape_reports_its_peak_and_end(tmp_path: Path) -> None:
    (tmp_path / "shape.py").write_text(
        "from locust import LoadTestShape\n\n"
        "class MyShape(LoadTestShape):\n"
        "    def tick(self):\n"
        "        t = self.get_run_time()\n"
        "        return None if t >= 6 else (4 if t < 3 else 12, 2)\n"
    )
    probe = probe_custom_shape("shape.py:MyShape", base_dir=tmp_path, duration_s=20, timeout_s=60)
    assert probe.peak_users == 12 and probe.ended_at == 6
