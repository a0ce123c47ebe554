"""The pytest plugin, in a pytest of its own (pytester): a held rehearsal passes, a violated
one fails and names the failed check; --chaoskit-target picks the stack for the session."""

from __future__ import annotations

from typing import Any

import pytest

RunStack = Any  # the run_stack fixture (tests/e2e/conftest.py)

pytestmark = pytest.mark.e2e

EXPERIMENT = """version: 1
name: {name}
target: local
seed: 5
load:
  model: open
  shape: {{kind: constant, for: 5s, rate: 10}}
hypothesis:
  - {{metric: fulfilment_rate, min: 0.9}}
  - {{metric: {metric}, max: {bound}, phase: overall}}
report: {{formats: [json]}}
"""

TESTS = """
import pytest


@pytest.mark.chaoskit
def test_holds(chaoskit):
    result = chaoskit.rehearse("holds.yaml")
    assert result.held


def test_violated(chaoskit):
    result = chaoskit.rehearse("violated.yaml")
    assert result.held
"""


def test_the_fixture_passes_a_held_rehearsal_and_fails_a_violated_one_naming_the_check(
    clean_stack: RunStack, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHAOSKIT_HOME", str(clean_stack.home))
    # The experiments say `target: local`; the session option points them at the e2e stack.
    pytester.makefile(
        ".yaml",
        holds=EXPERIMENT.format(name="holds", metric="error_rate", bound=0.05),
        violated=EXPERIMENT.format(name="violated", metric="latency_p50_ms", bound=0.001),
    )
    pytester.makepyfile(test_rehearsals=TESTS)
    result = pytester.runpytest_subprocess(
        f"--chaoskit-target={clean_stack.target_file}", "-p", "no:cacheprovider", timeout=240
    )
    result.assert_outcomes(passed=1, failed=1)
    output = result.stdout.str()
    assert "test_violated" in output
    assert "RunResult(violated: hypothesis latency_p50_ms (overall)" in output
    assert "expected <= 0.001" in output
    assert clean_stack.toxics() == {}
