"""chaoskit's pytest plugin: gate a release on a rehearsal from a test.

    @pytest.mark.chaoskit
    def test_checkout_survives_the_surge(chaoskit):
        result = chaoskit.rehearse("experiments/baseline.yaml")
        assert result.held

A violated hypothesis fails the test, and the assertion message names the failed checks
(``RunResult``'s repr is its explanation). ``--chaoskit-target`` picks the target for the
whole session (default: each experiment's own); ``--chaoskit-reports`` keeps the run
folders somewhere (default: the test's tmp_path). ``@pytest.mark.chaoskit(...)`` marks a
rehearsal (select with ``-m chaoskit``) and its keywords become ``rehearse()``'s defaults.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

__all__ = ["Rehearsals"]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("chaoskit", "chaoskit rehearsals")
    group.addoption(
        "--chaoskit-target",
        default=None,
        help="Target for every rehearsal: local, docker or a target file (default: the "
        "experiment's own).",
    )
    group.addoption(
        "--chaoskit-reports",
        default=None,
        help="Folder for the rehearsals' run folders (default: each test's tmp_path).",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "chaoskit(**options): a chaoskit rehearsal; options are defaults for rehearse() "
        "(target, workers, keep_stack, ...)",
    )


class Rehearsals:
    """The ``chaoskit`` fixture: ``rehearse()`` with the session's target and report folder."""

    def __init__(self, *, target: str | None, reports_dir: Path, defaults: dict[str, Any]):
        self.target = target
        self.reports_dir = reports_dir
        self._defaults = defaults

    def rehearse(self, experiment: Any, **options: Any) -> Any:
        """``chaoskit.rehearse(experiment, ...)``; returns its RunResult."""
        from chaoskit import rehearse

        settings: dict[str, Any] = {"reports_dir": self.reports_dir}
        if self.target is not None:
            settings["target"] = self.target
        settings.update(self._defaults)
        settings.update(options)
        return rehearse(experiment, **settings)


@pytest.fixture
def chaoskit(request: pytest.FixtureRequest, tmp_path: Path) -> Rehearsals:
    """Run chaoskit rehearsals from a test (see the module's docstring)."""
    marker = request.node.get_closest_marker("chaoskit")
    defaults = dict(marker.kwargs) if marker is not None else {}
    reports = request.config.getoption("--chaoskit-reports")
    return Rehearsals(
        target=request.config.getoption("--chaoskit-target"),
        reports_dir=Path(os.path.expanduser(reports)) if reports else tmp_path / "chaoskit",
        defaults=defaults,
    )
