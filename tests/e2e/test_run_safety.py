"""A verdict that never lies: runs own their stack, environment failures end the run as errors.

Real stacks, real kills: a second run on a busy stack, a stub service or Toxiproxy killed
mid-run, `down` during a run, a reports folder made read-only, too many workers, and a
SIGKILLed driver whose load workers must not outlive it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chaoskit.stack.local import LocalStack
from chaoskit.stack.state import process_start_time, read_state
from chaoskit.stack.target import load_target
from tests.e2e.runs import only_run_dir, summary

RunStack = Any  # the run_stack fixture (tests/e2e/conftest.py)
REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.e2e

SHIFT = int(os.environ.get("CHAOSKIT_TEST_PORT_SHIFT", "0"))
OWN_BASE_PORT = 19100 + SHIFT  # stacks these tests break on purpose (19100-19175)


def chaoskit_command() -> list[str]:
    """The installed console script (as tests/e2e/conftest.py runs it)."""
    return [str(REPO / ".venv" / "bin" / "chaoskit")]


def toxics_on(stack: RunStack) -> dict[str, list[str]]:
    with stack.toxiproxy() as client:
        return {
            name: [t.name for t in client.toxics(name)]
            for name in client.proxies()
            if client.toxics(name)
        }


def wait_for_fault(stack: RunStack, timeout: float = 25.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if toxics_on(stack):
            return
        time.sleep(0.1)
    raise AssertionError("the run never applied its fault")


def finish(proc: subprocess.Popen[str], timeout: float = 60.0) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"the run did not end in {timeout} s:\n{out}\n{err}") from None
    return proc.returncode, out, err


def junit_failures(run_dir: Path) -> int:
    root = ET.parse(run_dir / "junit.xml").getroot()
    return int(root.get("failures", "0"))


def children_of(pid: int) -> list[int]:
    """Every descendant pid of ``pid`` (from /proc), deepest last."""
    found: list[int] = []
    frontier = [pid]
    while frontier:
        parent = frontier.pop()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rfind(")") + 2 :].split()
            if len(fields) > 1 and int(fields[1]) == parent:
                found.append(int(entry.name))
                frontier.append(int(entry.name))
    return found


LONG = """
load:
  model: open
  shape: {kind: constant, for: 30s, rate: 10}
faults:
  - {name: slow-store, kind: latency, dependency: store, latency: 30ms, at: 1s}
  - {name: few-riders, kind: riders, available: 7, at: 1s}
hypothesis:
  - {metric: lost_orders, max: 0}
report: {formats: [json, junit]}
"""

SHORT = """
load:
  model: open
  shape: {kind: constant, for: 5s, rate: 10}
faults:
  - {name: slow-lbs, kind: latency, dependency: lbs, latency: 20ms, at: 1s, for: 2s}
hypothesis:
  - {metric: fulfilment_rate, min: 0.5}
report: {formats: [json, junit]}
"""


@pytest.fixture
def own_stack(run_stack: RunStack, tmp_path: Path) -> Iterator[RunStack]:
    """A stack of this test's own, to break: real services and Toxiproxy on their own ports."""
    home = tmp_path / "home"
    target_file = tmp_path / "own.yaml"
    target_file.write_text(f"version: 1\nkind: local\nname: own\nbase_port: {OWN_BASE_PORT}\n")
    env = dict(os.environ)
    env.update({"CHAOSKIT_HOME": str(home), "NO_COLOR": "1", "COLUMNS": "120"})
    stack = LocalStack(load_target(str(target_file)), state_dir=home / "stacks" / "own")
    stack.up()
    try:
        yield type(run_stack)(
            target_file=target_file, endpoints=stack.endpoints(), env=env, home=home
        )
    finally:
        stack.down()


def kill_part(stack: RunStack, name: str) -> None:
    state = read_state(stack.home / "stacks" / "own")
    assert state is not None
    record = state.process(name)
    assert record is not None and record.is_alive(), name
    os.kill(record.pid, signal.SIGKILL)


def test_a_second_run_on_a_busy_stack_is_refused_naming_the_first(
    clean_stack: RunStack, tmp_path: Path
) -> None:
    riders_before = clean_stack.admin("rider")["riders"]
    first = clean_stack.start(clean_stack.experiment(tmp_path, "first", LONG), tmp_path / "r1")
    try:
        wait_for_fault(clean_stack)
        second = clean_stack.run(
            "run",
            str(clean_stack.experiment(tmp_path, "second", SHORT)),
            "--no-dashboard",
            "--reports-dir",
            str(tmp_path / "r2"),
            timeout=30,
        )
        assert second.returncode == 4, second.stdout + second.stderr
        lines = [line for line in second.stderr.splitlines() if line.strip()]
        assert len(lines) == 1, second.stderr
        assert f"(pid {first.pid})" in lines[0] and "in use by run " in lines[0]
        assert not (tmp_path / "r2").exists()  # refused before anything was made
        run_id = summary(only_run_dir(tmp_path / "r1"))["run_id"]
        assert run_id in lines[0]
        assert only_run_dir(tmp_path / "r1").name.startswith(f"{run_id}-")  # one source
        assert clean_stack.admin("rider")["riders"] == 7  # the first run's fault is untouched
    finally:
        first.send_signal(signal.SIGINT)
        code, out, err = finish(first)
    assert code == 3, out + err
    assert toxics_on(clean_stack) == {}
    assert clean_stack.admin("rider")["riders"] == riders_before


def test_a_dead_runs_lock_is_taken_over_and_its_leftovers_undone_first(
    clean_stack: RunStack, tmp_path: Path
) -> None:
    riders_before = clean_stack.admin("rider")["riders"]
    killed = clean_stack.start(clean_stack.experiment(tmp_path, "killed", LONG), tmp_path / "r1")
    try:
        wait_for_fault(clean_stack)
        deadline = time.monotonic() + 10
        while clean_stack.admin("rider")["riders"] != 7 and time.monotonic() < deadline:
            time.sleep(0.1)
        killed.kill()
        killed.wait(timeout=10)
    finally:
        if killed.poll() is None:
            killed.kill()
        killed.communicate()
    assert clean_stack.admin("rider")["riders"] == 7  # left behind by the SIGKILLed run
    result = clean_stack.play(clean_stack.experiment(tmp_path, "next", SHORT), tmp_path / "r2")
    assert result.returncode == 0, result.stdout + result.stderr
    journal = (only_run_dir(tmp_path / "r2") / "events.jsonl").read_text()
    assert "took over the lock of dead run" in journal
    # The next run saw the settings from before the dead run, and put those back.
    assert clean_stack.admin("rider")["riders"] == riders_before
    assert toxics_on(clean_stack) == {}


def test_a_stub_service_killed_mid_run_is_an_error_with_exit_4(
    own_stack: RunStack, tmp_path: Path
) -> None:
    proc = own_stack.start(own_stack.experiment(tmp_path, "svc", LONG), tmp_path / "reports")
    try:
        wait_for_fault(own_stack)
        killed_at = time.monotonic()
        kill_part(own_stack, "store")
        code, out, err = finish(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert time.monotonic() - killed_at < 20  # detected within seconds, not at the end
    assert code == 4, out + err
    assert "HELD" not in out and "Traceback" not in err
    run_dir = only_run_dir(tmp_path / "reports")
    data = summary(run_dir)
    assert data["status"] == "error" and data["verdict"] == "error" and data["exit_code"] == 4
    assert any("service store stopped answering at t=" in e for e in data["errors"]), data["errors"]
    assert junit_failures(run_dir) >= 1
    assert toxics_on(own_stack) == {}  # Toxiproxy is alive: nothing of the run is left there
    assert own_stack.admin("rider")["riders"] != 7  # and the riders setting was put back


def test_toxiproxy_killed_mid_run_is_an_error_with_exit_4(
    own_stack: RunStack, tmp_path: Path
) -> None:
    riders_before = own_stack.admin("rider")["riders"]
    proc = own_stack.start(own_stack.experiment(tmp_path, "tp", LONG), tmp_path / "reports")
    try:
        wait_for_fault(own_stack)
        killed_at = time.monotonic()
        kill_part(own_stack, "toxiproxy")
        code, out, err = finish(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert time.monotonic() - killed_at < 20
    assert code == 4, out + err
    run_dir = only_run_dir(tmp_path / "reports")
    data = summary(run_dir)
    assert data["status"] == "error" and data["verdict"] == "error"
    assert any("Toxiproxy at " in e and "stopped answering" in e for e in data["errors"])
    assert data["abort"] is None  # not a guardrail's doing: the environment's
    assert junit_failures(run_dir) >= 1
    assert own_stack.admin("rider")["riders"] == riders_before  # domain faults rolled back


def test_down_refuses_during_a_run_and_force_ends_it_as_an_error(
    own_stack: RunStack, tmp_path: Path
) -> None:
    proc = own_stack.start(own_stack.experiment(tmp_path, "down", LONG), tmp_path / "reports")
    try:
        wait_for_fault(own_stack)
        refused = own_stack.run("down", "--target", str(own_stack.target_file))
        assert refused.returncode == 4, refused.stdout + refused.stderr
        assert f"(pid {proc.pid})" in refused.stderr and "--force" in refused.stderr
        assert toxics_on(own_stack)  # the run and its stack go on
        forced = own_stack.run("down", "--force", "--target", str(own_stack.target_file))
        assert forced.returncode == 0, forced.stdout + forced.stderr
        assert "Stack stopped." in forced.stdout
        code, out, err = finish(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert code == 4, out + err
    data = summary(only_run_dir(tmp_path / "reports"))
    assert data["status"] == "error"
    assert any("down --force" in e for e in data["errors"]), data["errors"]
    assert all(f["status"] == "removed" for f in data["faults"]), data["faults"]


def test_a_reports_folder_made_read_only_mid_run_is_an_error_after_rollback(
    clean_stack: RunStack, tmp_path: Path
) -> None:
    riders_before = clean_stack.admin("rider")["riders"]
    experiment = clean_stack.experiment(tmp_path, "ro", LONG)
    reports = tmp_path / "reports"
    # root ignores file modes; without CAP_DAC_OVERRIDE it obeys them like any user.
    proc = subprocess.Popen(
        [
            "setpriv",
            "--inh-caps=-dac_override,-dac_read_search",
            "--bounding-set=-dac_override,-dac_read_search",
            *chaoskit_command(),
            "run",
            str(experiment),
            "--no-dashboard",
            "--reports-dir",
            str(reports),
        ],
        env=clean_stack.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_fault(clean_stack)
        run_dir = only_run_dir(reports)
        run_dir.chmod(0o555)
        code, out, err = finish(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
        for folder in reports.iterdir():
            folder.chmod(0o755)
    assert code == 4, out + err
    assert "Traceback" not in err and "Traceback" not in out
    assert "status=error" in out
    assert toxics_on(clean_stack) == {}
    assert clean_stack.admin("rider")["riders"] == riders_before
    data = summary(run_dir)
    assert data["status"] == "error" and data["exit_code"] == 4
    assert any("reports: cannot write" in e for e in data["errors"]), data["errors"]


def test_workers_over_the_machine_limit_are_refused_before_anything_starts(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    experiment = tmp_path / "w.yaml"
    target = tmp_path / "t.yaml"
    # A target nobody runs, on this test file's own ports: any start would show under home.
    target.write_text(f"version: 1\nkind: local\nname: w\nbase_port: {OWN_BASE_PORT + 100}\n")
    experiment.write_text(
        f"version: 1\nname: w\ntarget: {target}\nseed: 1\n"
        "load: {model: open, shape: {kind: constant, for: 5s, rate: 5}}\n"
    )
    env = {**os.environ, "CHAOSKIT_HOME": str(home), "NO_COLOR": "1"}
    result = subprocess.run(
        [*chaoskit_command(), "run", str(experiment), "--workers", "1000", "--no-dashboard"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "--workers: at most" in lines[0] and "got 1000" in lines[0]
    assert not home.exists() and not (tmp_path / "reports").exists()


def test_load_workers_die_with_a_sigkilled_driver(clean_stack: RunStack, tmp_path: Path) -> None:
    # The OOM killer's way: the driver and the engine (master) SIGKILLed at once. Workers
    # must not wait for a master heartbeat that never comes: they go with their parent.
    proc = clean_stack.start(
        clean_stack.experiment(tmp_path, "orphans", LONG), tmp_path / "reports", "--workers", "2"
    )
    try:
        wait_for_fault(clean_stack, timeout=40)
        engine = children_of(proc.pid)
        load = [
            pid for pid in engine if b"chaoskit.load" in Path(f"/proc/{pid}/cmdline").read_bytes()
        ]
        assert len(load) >= 3, load  # the engine (master) and its two workers
        starts = {pid: process_start_time(pid) for pid in load}
        engine_pids = [p for p in load if _is_master(p)]
        assert len(engine_pids) == 1, engine_pids
        proc.kill()
        for pid in engine_pids:
            os.kill(pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    deadline = time.monotonic() + 3
    alive = list(load)
    while alive and time.monotonic() < deadline:
        alive = [pid for pid in alive if process_start_time(pid) == starts[pid]]
        time.sleep(0.2)
    assert alive == [], f"load processes outlived their driver: {alive}"
    cleaned = clean_stack.run("cleanup", "--target", str(clean_stack.target_file))
    assert cleaned.returncode == 0, cleaned.stdout + cleaned.stderr


def _is_master(pid: int) -> bool:
    """The engine itself (``python -m chaoskit.load SPEC.json``), not one of its workers."""
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"chaoskit.load" in args and b"--worker" not in args


def test_cleanup_on_a_fresh_stack_reports_nothing_it_did_not_do(
    own_stack: RunStack, tmp_path: Path
) -> None:
    # A record of a dead run whose stack has since been replaced by a fresh one.
    runs = own_stack.home / "runs"
    runs.mkdir(parents=True)
    toxiproxy = own_stack.endpoints.toxiproxy_urls[0]
    (runs / "20260101000000-abcdef.json").write_text(
        json.dumps(
            {
                "run_id": "20260101000000-abcdef",
                "pid": 999999,
                "pid_start": 1,
                "target": "own",
                "toxiproxy_urls": [toxiproxy],
                "toxics": [
                    {
                        "api_url": toxiproxy,
                        "proxy": "lbs",
                        "name": "chaoskit.20260101000000-abcdef.slow.latency",
                    }
                ],
                "disabled_proxies": [{"api_url": toxiproxy, "proxy": "store"}],
                "restore": {
                    "rider": {
                        "url": own_stack.endpoints.services["rider"],
                        "settings": {"riders": own_stack.admin("rider")["riders"]},
                    }
                },
                "containers": [],
            }
        )
    )
    result = own_stack.run("cleanup", "--target", str(own_stack.target_file))
    assert result.returncode == 0, result.stdout + result.stderr
    for claim in ("removed toxic", "re-enabled proxy", "restored settings"):
        assert claim not in result.stdout, result.stdout
    fresh = own_stack.run("cleanup", "--target", str(own_stack.target_file))
    assert fresh.returncode == 0 and "nothing to clean up" in fresh.stdout, fresh.stdout


PHASED = """
load:
  model: open
  shape: {kind: constant, for: 9s, rate: 15}
faults:
  - {name: slow-lbs, kind: latency, dependency: lbs, latency: 40ms, at: 3s, for: 3s}
hypothesis:
  - {metric: fulfilment_rate, min: 0.5, phase: baseline}
  - {metric: fulfilment_rate, min: 0.5, phase: during}
  - {metric: fulfilment_rate, min: 0.5, phase: recovery}
report: {formats: [json]}
"""


def test_every_number_shown_is_the_one_the_verdict_judged(
    clean_stack: RunStack, tmp_path: Path
) -> None:
    result = clean_stack.play(clean_stack.experiment(tmp_path, "numbers", PHASED), tmp_path / "r")
    assert result.returncode == 0, result.stdout + result.stderr
    run_dir = only_run_dir(tmp_path / "r")
    data = summary(run_dir)
    assert run_dir.name.startswith(f"{data['run_id']}-")  # one source for id and folder
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    ended = next(i for i, e in enumerate(events) if e["type"] == "run_ended")
    # The last frame a dashboard draws: every check's final (not live) event, before the end.
    final = {
        (e["kind"], e["phase"], e["metric"]): e["value"]
        for e in events[:ended]
        if e["type"] == "check" and not e.get("live")
    }
    for check in data["checks"]:
        key = (check["kind"], check["phase"], check["metric"])
        assert key in final, f"{key} never left 'pending' before the run ended"
        assert final[key] == pytest.approx(check["value"]), key
        if check["kind"] == "hypothesis" and check["phase"] in data["phases"]:
            figure = data["phases"][check["phase"]][check["metric"]]
            assert figure == pytest.approx(check["value"]), (check["phase"], figure)
