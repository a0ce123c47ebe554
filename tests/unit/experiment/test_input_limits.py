"""Input that could hurt the machine is refused in one line, exit 2, in bounded time and memory.

The resource-bound cases run the real CLI in a child with an address-space limit and a
timeout: on the code before these limits they grew to gigabytes, or gave tracebacks.
"""

from __future__ import annotations

import resource
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from chaoskit.errors import ExperimentError, TargetFileError
from chaoskit.exit_codes import exit_code_for_error
from chaoskit.experiment.loader import load_experiment, parse_experiment
from chaoskit.stack.target import load_target, parse_target

_MEMORY_LIMIT = 1024**3  # 1 GiB of address space for the whole CLI process
_TIME_LIMIT_S = 60.0  # generous on a busy 2-core machine; the real cost is about a second

GOOD_HEAD = "version: 1\nname: x\nload:\n  shape: {kind: constant, for: 10s, rate: 5}\n"


def _alias_bomb() -> str:
    lines = ["version: 1", "name: x", 'a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol"]']
    for level in range(1, 10):
        refs = ",".join([f"*a{level - 1}"] * 9)
        lines.append(f"a{level}: &a{level} [{refs}]")
    lines.append("load: {shape: {kind: constant, for: 10s, rate: *a9}}")
    return "\n".join(lines) + "\n"


def _deep(levels: int) -> str:
    return "version: 1\nname: x\nload: " + "[" * levels + "]" * levels + "\n"


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (_MEMORY_LIMIT, _MEMORY_LIMIT))


def _validate(path: Path) -> tuple[int, str, float]:
    started = time.monotonic()
    child = subprocess.run(
        [sys.executable, "-m", "chaoskit", "validate", str(path)],
        capture_output=True,
        text=True,
        timeout=_TIME_LIMIT_S,
        preexec_fn=_limit_memory,
        cwd=path.parent,
        check=False,
    )
    return child.returncode, child.stderr.strip(), time.monotonic() - started


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("alias-bomb", "aliases"),
        ("50mb", "the limit is 256 KiB"),
        ("step-1e8", "load.shape.steps: expected a number <= 10000"),
        ("deep-5000", "nested deeper than 32 levels"),
        ("list-key", "a mapping key must be text or a number"),
        ("binary-target", "got binary data"),
        ("rate-1e12", "load.shape.rate: the shape peaks at 1T arrivals/s; the limit is 100k"),
        ("eleven-years", "load.shape: the shape lasts 96360h; the limit is 24h"),
    ],
)
def test_hostile_input_is_one_line_and_exit_2(tmp_path: Path, case: str, expected: str) -> None:
    path = tmp_path / "exp.yaml"
    if case == "alias-bomb":
        path.write_text(_alias_bomb())
    elif case == "50mb":
        with path.open("w") as handle:
            handle.write(GOOD_HEAD)
            comment = "# " + "x" * 1022 + "\n"
            for _ in range(50 * 1024):
                handle.write(comment)
    elif case == "step-1e8":
        path.write_text(
            "version: 1\nname: x\nload:\n"
            "  shape: {kind: step, start: 1, step: 1, every: 1ms, steps: 100000000}\n"
        )
    elif case == "deep-5000":
        path.write_text(_deep(5000))
    elif case == "list-key":
        path.write_text(GOOD_HEAD + "? [a, b]\n: 1\n")
    elif case == "binary-target":
        (tmp_path / "bin.yaml").write_bytes(b"version: 1\n\x00\xff\xfe\x89PNG\r\n" * 10)
        path.write_text(GOOD_HEAD + "target: bin.yaml\n")
    elif case == "rate-1e12":
        path.write_text(
            "version: 1\nname: x\nload:\n  shape: {kind: constant, for: 10s, rate: 1e12}\n"
        )
    elif case == "eleven-years":
        path.write_text(
            "version: 1\nname: x\nload:\n  shape: {kind: constant, for: 96360h, rate: 5}\n"
        )
    code, stderr, took = _validate(path)
    assert code == 2, stderr
    assert len(stderr.splitlines()) == 1, stderr
    assert "Traceback" not in stderr
    assert expected in stderr, stderr
    assert str(path.name) in stderr or "bin.yaml" in stderr
    assert took < _TIME_LIMIT_S


def _error(text: str, tmp_path: Path) -> ExperimentError:
    path = tmp_path / "exp.yaml"
    path.write_text(text)
    with pytest.raises(ExperimentError) as caught:
        load_experiment(path)
    return caught.value


def test_limits_point_at_the_line(tmp_path: Path) -> None:
    error = _error(GOOD_HEAD + "faults:\n  - ? [a]\n    : 1\n", tmp_path)
    assert (error.line, error.col) == (6, 7), str(error)
    error = _error("version: 1\nname: x\nload: " + "[" * 40 + "]" * 40 + "\n", tmp_path)
    assert error.line == 3 and "nested deeper than 32" in str(error)
    error = _error(_alias_bomb(), tmp_path)
    assert error.line is not None and "alias" in str(error)


def test_a_bad_utf8_byte_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "exp.yaml"
    path.write_bytes(GOOD_HEAD.encode() + b"description: caf\xe9\n")
    with pytest.raises(ExperimentError) as caught:
        load_experiment(path)
    assert (caught.value.line, caught.value.col) == (5, 17)
    assert "expected a UTF-8 text file, got byte 0xe9" in str(caught.value)


def test_target_files_get_the_same_limits(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    with pytest.raises(TargetFileError, match="got binary data"):
        load_target(path)
    path.write_text("version: 1\nkind: local\nname: t\nsettings: " + "[" * 50 + "]" * 50 + "\n")
    with pytest.raises(TargetFileError, match="nested deeper than 32"):
        load_target(path)
    path.write_text("version: 1\nkind: local\nname: t\n" + "#" * (300 * 1024) + "\n")
    with pytest.raises(TargetFileError, match="the limit is 256 KiB"):
        load_target(path)
    with pytest.raises(TargetFileError, match="aliases"):
        parse_target(_alias_bomb().replace("name: x", "kind: local\nname: t"), path="t.yaml")


@pytest.mark.parametrize(
    ("settings", "line", "expected"),
    [
        (
            "  rider: {riders: -5}\n",
            5,
            "settings.rider.riders: expected an integer 0..1e+06, got -5",
        ),
        ("  rider:\n    ridrs: 5\n", 6, "settings.rider.ridrs: expected a setting"),
        (
            "  store: {overload: drop}\n",
            5,
            'settings.store.overload: expected one of "shed", "pause"',
        ),
        ("  coupon: {http_errors: {rate: 2}}\n", 5, "settings.coupon.http_errors.rate"),
    ],
)
def test_target_settings_are_checked_before_anything_starts(
    settings: str, line: int, expected: str
) -> None:
    text = "version: 1\nkind: local\nname: t\nsettings:\n" + settings
    with pytest.raises(TargetFileError) as caught:
        parse_target(text, path="t.yaml")
    assert caught.value.line == line, str(caught.value)
    assert expected in str(caught.value), str(caught.value)
    assert exit_code_for_error(caught.value) == 2


def test_unknown_target_key_suggests_the_close_one() -> None:
    with pytest.raises(TargetFileError, match='did you mean "base_port"'):
        parse_target("version: 1\nkind: local\nname: t\nbase_prot: 1\n", path="t.yaml")


# ---------------------------------------------------------------- timings that can never be


def _timing_error(body: str) -> ExperimentError:
    text = "version: 1\nname: x\nload:\n  shape: {kind: constant, for: 60s, rate: 5}\n" + body
    with pytest.raises(ExperimentError) as caught:
        parse_experiment(textwrap.dedent(text), path="e.yaml")
    return caught.value


def test_a_fault_after_the_load_is_refused() -> None:
    error = _timing_error("faults:\n  - {name: late, kind: store_pause, at: 70s, for: 5s}\n")
    assert error.line == 6
    assert "faults[0].at: the fault starts at 1m10s, when the load (1m) is over" in str(error)


def test_a_guardrail_longer_than_the_run_is_refused() -> None:
    error = _timing_error("guardrails:\n  - {metric: error_rate, max: 0.5, for: 2m}\n")
    assert error.line == 6 and "guardrails[0].for: the guardrail waits 2m" in str(error)


def test_a_trigger_longer_than_the_run_is_refused() -> None:
    error = _timing_error(
        "faults:\n  - name: t\n    kind: store_pause\n"
        "    when: {metric: error_rate, above: 0.1, for: 5m}\n"
    )
    assert error.line == 8 and "faults[0].when.for" in str(error)


def test_a_triggered_fault_may_not_overlap_one_of_its_kind() -> None:
    error = _timing_error(
        "faults:\n"
        "  - {name: timed, kind: riders, available: 5, at: 10s, for: 30s}\n"
        "  - name: inner\n"
        "    kind: riders\n"
        "    available: 1\n"
        "    when: {metric: error_rate, above: 0.1}\n"
    )
    assert error.line == 10, str(error)
    assert 'faults[1].when: may overlap fault "timed"' in str(error)


def test_a_missing_target_file_is_refused_at_its_line(tmp_path: Path) -> None:
    error = _error(GOOD_HEAD + "target: staging.yaml\n", tmp_path)
    assert error.line == 5 and "target: no such target file" in str(error)


def test_a_bad_target_file_points_into_itself(tmp_path: Path) -> None:
    (tmp_path / "t.yaml").write_text(
        "version: 1\nkind: local\nname: t\nsettings:\n  rider: {riders: -5}\n"
    )
    path = tmp_path / "exp.yaml"
    path.write_text(GOOD_HEAD + "target: t.yaml\n")
    with pytest.raises(TargetFileError) as caught:
        load_experiment(path)
    assert caught.value.path == tmp_path / "t.yaml" and caught.value.line == 5


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"time_s,rate\n0,5\n\x00\x01\x02", "got binary data"),
        (b"time_s,rate\n0,5\n10,\xff\n", "expected a UTF-8 text file, got byte 0xff"),
        (
            b"time_s,rate\n" + b"".join(b"%d,5\n" % i for i in range(10_005)),
            "more than 10,000 rows",
        ),
        (b"time_s,rate\n0,5\n" + b'"' + b"x" * 200_000 + b'"\n', "not a CSV file"),
    ],
)
def test_a_replay_csv_is_bounded_and_never_a_traceback(
    tmp_path: Path, content: bytes, expected: str
) -> None:
    (tmp_path / "surge.csv").write_bytes(content)
    path = tmp_path / "exp.yaml"
    path.write_text("version: 1\nname: r\nload:\n  shape: {kind: replay, file: surge.csv}\n")
    with pytest.raises(ExperimentError) as caught:
        load_experiment(path)
    assert expected in str(caught.value)
    assert caught.value.path == tmp_path / "surge.csv"


def test_no_recovery_note_names_the_fault_and_why() -> None:
    from chaoskit.planning import build_plan

    text = (
        "version: 1\nname: n\nload:\n  shape: {kind: constant, for: 60s, rate: 5}\n"
        "faults:\n  - name: trig\n    kind: store_pause\n    for: 5s\n"
        "    when: {metric: error_rate, above: 0.5}\n"
    )
    notes = build_plan(parse_experiment(text, path="n.yaml")).notes
    assert any(
        'no recovery period: fault "trig" starts when a metric says' in note for note in notes
    ), notes
    assert not any("a fault lasts until the load ends" in note for note in notes), notes


def test_up_refuses_bad_settings_before_starting_anything(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from chaoskit.cli import app

    target = tmp_path / "t.yaml"
    target.write_text(
        "version: 1\nkind: local\nname: t\nbase_port: 40400\nsettings:\n  rider: {riders: -5}\n"
    )
    result = CliRunner(env={"CHAOSKIT_HOME": str(tmp_path / "home")}).invoke(
        app, ["up", "--target", str(target)]
    )
    assert result.exit_code == 2, result.output
    assert f"{target}:6:19: settings.rider.riders" in result.output
    assert not (tmp_path / "home").exists()  # no state, no process, no log
