"""The public surface: every name in ``chaoskit.__all__`` imports from the package root,
is documented, and importing the format does not drag in the runner's world."""

from __future__ import annotations

import inspect
import subprocess
import sys

import pytest

import chaoskit


@pytest.mark.parametrize("name", sorted(set(chaoskit.__all__) - {"__version__"}))
def test_every_public_name_imports_from_the_root_and_has_a_docstring(name: str) -> None:
    value = getattr(chaoskit, name)
    doc = inspect.getdoc(value)
    assert doc and doc.strip(), f"chaoskit.{name} has no docstring"
    module = getattr(value, "__module__", "")
    assert module.startswith("chaoskit"), module


def test_all_lists_exactly_the_lazy_names() -> None:
    assert set(chaoskit.__all__) - {"__version__"} == set(chaoskit._LAZY)
    assert isinstance(chaoskit.__version__, str)
    with pytest.raises(AttributeError):
        chaoskit.not_a_name  # noqa: B018


def test_the_three_stages_are_functions_with_typed_results() -> None:
    hints = {name: inspect.signature(getattr(chaoskit, name)) for name in ("plan", "rehearse")}
    assert hints["plan"].return_annotation in ("Plan", chaoskit.Plan)
    assert hints["rehearse"].return_annotation in ("RunResult", chaoskit.RunResult)
    options = hints["rehearse"].parameters
    # Everything but the experiment is keyword-only.
    assert all(p.kind is p.KEYWORD_ONLY for n, p in options.items() if n != "experiment")


def test_importing_the_experiment_format_stays_light() -> None:
    code = (
        "import sys, chaoskit, chaoskit.experiment.loader\n"
        "heavy = ['httpx', 'locust', 'gevent', 'chaoskit.stack.local', 'chaoskit.stack.backend',"
        " 'chaoskit.observe.sampler', 'chaoskit.run.runner']\n"
        "print([m for m in heavy if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_plan_takes_a_path_or_an_experiment(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "e.yaml"
    path.write_text(
        "version: 1\nname: tiny\ntarget: local\nload:\n"
        "  shape: {kind: constant, for: 10s, rate: 5}\n"
    )
    by_path = chaoskit.plan(path)
    by_model = chaoskit.plan(chaoskit.load_experiment(path))
    assert by_path.duration_s == by_model.duration_s == 10.0
    assert by_path.to_json() == by_model.to_json()


def test_bad_input_raises_the_input_error_not_a_traceback_type(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "bad.yaml"
    path.write_text("version: 1\nname: x\nload: {shape: {kind: constant, for: thirty, rate: 5}}\n")
    with pytest.raises(chaoskit.ExperimentError) as caught:
        chaoskit.plan(path)
    assert isinstance(caught.value, chaoskit.InputError)
    assert int(chaoskit.ExitCode.INPUT) == 2
