"""Attach to a "staging" stack the test starts itself (LocalStack on base_port 19800), through an
attach target file, with `chaoskit run` as a subprocess: verdicts, refusals, dry run, secrets,
and the dead-man's switch (watchdog) and `chaoskit cleanup` after a killed driver."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from chaoskit.faults.toxiproxy import Toxic, ToxiproxyClient, is_chaoskit_toxic
from chaoskit.stack.local import LocalStack
from chaoskit.stack.target import LocalTarget, StackSettings

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
CHAOSKIT = str(REPO / ".venv" / "bin" / "chaoskit")
BASE_PORT = 19800 + int(os.environ.get("CHAOSKIT_TEST_PORT_SHIFT", "0"))
GATEWAY = f"http://127.0.0.1:{BASE_PORT + 10}"
TOXIPROXY = f"http://127.0.0.1:{BASE_PORT + 74}"
SECRET = "stg-secret-7f3c9a2d51e04b8c"
TOKEN_VAR = "CHAOSKIT_IT_STAGING_TOKEN"
DEPENDENCIES = ("inventory", "lbs", "eligibility", "orders", "store", "rider", "coupon")
FOREIGN = "team-b-latency"

LOCAL_TARGET = f"""\
version: 1
kind: local
name: itest-staging
base_port: {BASE_PORT}
"""

_PROXIES = ", ".join(f"{d}: {d}" for d in DEPENDENCIES)
_SERVICES = "".join(
    f"  {service}: http://127.0.0.1:{BASE_PORT + 10 + i}\n"
    for i, service in enumerate(("gateway", *DEPENDENCIES))
)
ATTACH_TARGET = f"""\
version: 1
kind: attach
name: itest-attach
gateway: {{url: "{GATEWAY}"}}
toxiproxy:
  - url: {TOXIPROXY}
    proxies: {{{_PROXIES}}}
services:
{_SERVICES}allowed_hosts: [127.0.0.1]
caps: {{max_rate: 20, max_fault_duration: 20s}}
headers: {{Authorization: "Bearer ${{{TOKEN_VAR}}}"}}
watchdog: {{ttl: 3s}}
"""

SHORT = """\
version: 1
name: attach-short
seed: 5
recovery: 3s
load:
  model: open
  behaviour: {reclick: 1, think_time: 200ms}
  shape: {kind: constant, for: 10s, rate: 15}
faults:
  - {name: slow-inventory, kind: latency, dependency: inventory, latency: 150ms, at: 3s, for: 4s}
hypothesis:
  - {metric: fulfilment_rate, min: 0.9}
  - {metric: lost_orders, max: 0}
"""

# Long enough to be killed in the middle of its faults.
LONG = """\
version: 1
name: attach-long
seed: 5
load:
  model: open
  shape: {kind: constant, for: 20s, rate: 5}
faults:
  - {name: slow-inventory, kind: latency, dependency: inventory, latency: 50ms, at: 0s, for: 18s}
  - {name: slow-coupon, kind: latency, dependency: coupon, latency: 50ms, direction: both,
     at: 0s, for: 18s}
"""


@dataclass(frozen=True)
class Staging:
    home: Path
    work: Path
    local_file: Path
    attach_file: Path
    short: Path
    long: Path

    def env(self, **extra: str) -> dict[str, str]:
        env = {**os.environ, "CHAOSKIT_HOME": str(self.home), TOKEN_VAR: SECRET, "COLUMNS": "200"}
        env.update(extra)
        return env

    def target_file(self, name: str, text: str) -> Path:
        path = self.work / name
        path.write_text(text)
        return path


@pytest.fixture(scope="module")
def staging(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Staging]:
    """A stack started separately from chaoskit run, and the files that attach to it."""
    work = tmp_path_factory.mktemp("attach")
    home = work / "home"
    staging = Staging(
        home=home,
        work=work,
        local_file=work / "local.yaml",
        attach_file=work / "attach.yaml",
        short=work / "short.yaml",
        long=work / "long.yaml",
    )
    staging.local_file.write_text(LOCAL_TARGET)
    staging.attach_file.write_text(ATTACH_TARGET)
    staging.short.write_text(SHORT)
    staging.long.write_text(LONG)
    target = LocalTarget(
        version=1,
        kind="local",
        name="itest-staging",
        base_port=BASE_PORT,
        settings=StackSettings(),
    )
    # The state folder `chaoskit run --target local.yaml` looks in under this CHAOSKIT_HOME.
    stack = LocalStack(target, state_dir=home / "stacks" / "itest-staging")
    stack.up()
    try:
        yield staging
    finally:
        stack.down()


@pytest.fixture
def toxiproxy(staging: Staging) -> Iterator[ToxiproxyClient]:
    client = ToxiproxyClient(TOXIPROXY)
    try:
        yield client
    finally:
        client.reset()
        client.close()


def chaoskit(staging: Staging, *args: str, env: dict[str, str] | None = None, timeout: float = 60):
    return subprocess.run(
        [CHAOSKIT, *args],
        cwd=staging.work,
        env=env or staging.env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def all_toxics(client: ToxiproxyClient) -> dict[str, list[Toxic]]:
    return {name: list(proxy.toxics) for name, proxy in client.proxies().items() if proxy.toxics}


def chaoskit_toxics(client: ToxiproxyClient) -> list[str]:
    return [t.name for ts in all_toxics(client).values() for t in ts if is_chaoskit_toxic(t.name)]


def run_records(staging: Staging) -> list[str]:
    folder = staging.home / "runs"
    return sorted(p.name for p in folder.glob("*.json")) if folder.is_dir() else []


def intents_received() -> float:
    stats = httpx.get(f"{GATEWAY}/stats", timeout=5.0, trust_env=False).json()
    return float(stats["counters"].get("intents_received", 0))


def new_run_dir(reports: Path, before: set[Path]) -> Path:
    created = set(reports.iterdir()) - before
    assert len(created) == 1, created
    return created.pop()


def children_of(pid: int) -> dict[int, str]:
    """Processes whose parent is ``pid``: pid -> command line."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if int(stat[stat.rfind(")") + 2 :].split()[1]) == pid:
            found[int(entry.name)] = cmdline
    return found


def gone(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat[stat.rfind(")") + 2] in "ZX"


def wait_for(condition, timeout: float, step: float = 0.05) -> float | None:  # type: ignore[no-untyped-def]
    """Seconds until ``condition()`` held, or None on timeout."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if condition():
            return time.monotonic() - started
        time.sleep(step)
    return None


@dataclass
class KilledRun:
    driver: subprocess.Popen[str]
    watchdog: int
    engine: int
    run_dir: Path


def start_long_run(staging: Staging, client: ToxiproxyClient) -> KilledRun:
    """Start the long experiment and return once its three toxics are in place."""
    reports = staging.work / "reports-long"
    driver = subprocess.Popen(
        [
            CHAOSKIT,
            "run",
            str(staging.long),
            "--target",
            str(staging.attach_file),
            "--yes",
            "--no-dashboard",
            "--reports-dir",
            str(reports),
        ],
        cwd=staging.work,
        env=staging.env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert wait_for(lambda: len(chaoskit_toxics(client)) == 3, timeout=20), all_toxics(client)
        children = children_of(driver.pid)
        watchdog = [p for p, cmd in children.items() if "chaoskit.faults.watchdog" in cmd]
        engine = [p for p, cmd in children.items() if "chaoskit.load" in cmd]
        assert len(watchdog) == 1 and len(engine) == 1, children
        run_dir = max(reports.iterdir())
    except BaseException:
        driver.kill()
        driver.wait()
        raise
    return KilledRun(driver, watchdog[0], engine[0], run_dir)


def stop_engine(pid: int) -> None:
    # The engine outlives a SIGKILLed driver (its own session) until its load ends: end it here.
    if not gone(pid):
        os.kill(pid, signal.SIGTERM)
        wait_for(lambda: gone(pid), timeout=5)


def add_foreign_toxic(client: ToxiproxyClient) -> Toxic:
    return client.add_toxic(
        "inventory", Toxic(name=FOREIGN, type="latency", attributes={"latency": 7})
    )


def assert_only_foreign_left(client: ToxiproxyClient, foreign: Toxic) -> None:
    assert all_toxics(client) == {"inventory": [foreign]}


# --- runs --------------------------------------------------------------------------------------


def test_attached_run_gives_the_same_verdict_as_the_local_target_and_no_secret(
    staging: Staging, toxiproxy: ToxiproxyClient
) -> None:
    verdicts = {}
    reports = staging.work / "reports"
    reports.mkdir()
    for target in (staging.local_file, staging.attach_file):
        before = set(reports.iterdir())
        result = chaoskit(
            staging,
            "run",
            str(staging.short),
            "--target",
            str(target),
            "--yes",
            "--no-dashboard",
            "--reports-dir",
            str(reports),
        )
        assert result.returncode == 0, result.stdout + result.stderr
        run_dir = new_run_dir(reports, before)
        summary = json.loads((run_dir / "summary.json").read_text())
        verdicts[summary["environment"]["target_kind"]] = (
            summary["verdict"],
            [(c["kind"], c["metric"], c["phase"], c["ok"]) for c in summary["checks"]],
            summary["audit"]["status"],
            [f["status"] for f in summary["faults"]],
        )
    assert verdicts["attach"] == verdicts["local"]
    assert verdicts["attach"][0] == "held" and verdicts["attach"][2] == "passed"
    assert chaoskit_toxics(toxiproxy) == [] and run_records(staging) == []

    # The attach run: the review was shown, the token went out only as a template.
    assert "Attach run on itest-attach" in result.stdout
    files = [p for p in run_dir.rglob("*") if p.is_file()]
    assert {"events.jsonl", "summary.json", "report.html", "load-spec.json"} <= {
        p.name for p in files
    }
    for path in files:
        assert SECRET.encode() not in path.read_bytes(), path
    assert SECRET not in result.stdout + result.stderr
    spec = json.loads((run_dir / "load-spec.json").read_text())
    assert spec["headers"] == {
        "Authorization": f"Bearer ${{{TOKEN_VAR}}}",
        "X-Chaoskit-Run": "chaoskit",
    }


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("host", "services.store host '127.0.0.2' is not in allowed_hosts"),
        ("caps", "the load peaks at 15 arrivals/s, above caps.max_rate = 10"),
        ("env", f"needs environment variable {TOKEN_VAR}, which is not set"),
        ("proxy", "has no proxy named 'stores' (for store)"),
        ("fault", "lasts until the load ends; target 'itest-attach' caps faults at 20s"),
    ],
)
def test_refusals_exit_2_with_one_line_and_touch_nothing(
    staging: Staging, toxiproxy: ToxiproxyClient, case: str, expected: str
) -> None:
    foreign = add_foreign_toxic(toxiproxy)
    attach, experiment, env = ATTACH_TARGET, SHORT, staging.env()
    if case == "host":
        attach = attach.replace(f"127.0.0.1:{BASE_PORT + 15}", f"127.0.0.2:{BASE_PORT + 15}")
    elif case == "caps":
        attach = attach.replace("max_rate: 20", "max_rate: 10")
    elif case == "env":
        env.pop(TOKEN_VAR)
    elif case == "proxy":
        attach = attach.replace("store: store", "store: stores")
    elif case == "fault":
        experiment = SHORT.replace("at: 3s, for: 4s", "at: 3s")
    target = staging.target_file(f"attach-{case}.yaml", attach)
    exp = staging.target_file(f"exp-{case}.yaml", experiment)
    before = intents_received()
    reports = staging.work / f"reports-{case}"
    result = chaoskit(
        staging,
        "run",
        str(exp),
        "--target",
        str(target),
        "--yes",
        "--no-dashboard",
        "--reports-dir",
        str(reports),
        env=env,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert expected in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert_only_foreign_left(toxiproxy, foreign)
    assert run_records(staging) == [] and not reports.exists()
    assert intents_received() == before


def test_a_dead_toxiproxy_server_is_exit_4(staging: Staging) -> None:
    dead = ATTACH_TARGET.replace(TOXIPROXY, f"http://127.0.0.1:{BASE_PORT + 99}")
    target = staging.target_file("attach-dead.yaml", dead)
    result = chaoskit(
        staging, "run", str(staging.short), "--target", str(target), "--yes", "--no-dashboard"
    )
    assert result.returncode == 4, result.stdout + result.stderr
    assert f"Toxiproxy at http://127.0.0.1:{BASE_PORT + 99} does not answer" in result.stderr


def test_dry_run_shows_the_plan_and_touches_nothing(
    staging: Staging, toxiproxy: ToxiproxyClient
) -> None:
    foreign = add_foreign_toxic(toxiproxy)
    before = intents_received()
    reports = staging.work / "reports-dry"
    result = chaoskit(
        staging,
        "run",
        str(staging.short),
        "--target",
        str(staging.attach_file),
        "--dry-run",
        "--reports-dir",
        str(reports),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for expected in (
        "Attach run on itest-attach",
        "peak 15 arrivals/s (cap 20",
        "slow-inventory",
        "3s .. 7s",
        "dry run: nothing was touched",
    ):
        assert expected in result.stdout
    assert SECRET not in result.stdout + result.stderr
    assert_only_foreign_left(toxiproxy, foreign)
    assert run_records(staging) == [] and not reports.exists()
    assert intents_received() == before


# --- killed drivers ----------------------------------------------------------------------------


def test_watchdog_undoes_a_sigkilled_run_and_leaves_foreign_toxics(
    staging: Staging, toxiproxy: ToxiproxyClient
) -> None:
    foreign = add_foreign_toxic(toxiproxy)
    run = start_long_run(staging, toxiproxy)
    try:
        run.driver.send_signal(signal.SIGKILL)
        run.driver.wait()
        reaction = wait_for(lambda: chaoskit_toxics(toxiproxy) == [], timeout=10)
        print(f"watchdog reaction after SIGKILL: {reaction}")
        assert reaction is not None, all_toxics(toxiproxy)
        assert reaction < 3.0 + 1.5  # the TTL (3 s) bounds it; a dead driver is seen sooner
        assert_only_foreign_left(toxiproxy, foreign)
        assert wait_for(lambda: gone(run.watchdog), timeout=5) is not None
        assert run_records(staging) == []
        log = (run.run_dir / "watchdog.log").read_text()
        assert "driver gone: undoing" in log and "undone; exiting" in log
    finally:
        stop_engine(run.engine)


def test_watchdog_undoes_a_hung_run_after_its_ttl(
    staging: Staging, toxiproxy: ToxiproxyClient
) -> None:
    foreign = add_foreign_toxic(toxiproxy)
    run = start_long_run(staging, toxiproxy)
    try:
        run.driver.send_signal(signal.SIGSTOP)  # hung: alive, but its main loop does not beat
        reaction = wait_for(lambda: chaoskit_toxics(toxiproxy) == [], timeout=10)
        print(f"watchdog reaction after SIGSTOP: {reaction}")
        assert reaction is not None, all_toxics(toxiproxy)
        # Not before the TTL less one beat interval (0.5 s), and soon after it.
        assert 2.4 <= reaction <= 3.0 + 1.5
        assert_only_foreign_left(toxiproxy, foreign)
        log = run.run_dir / "watchdog.log"
        assert wait_for(lambda: "watching it until it exits" in log.read_text(), timeout=5)
        assert "no heartbeat for" in log.read_text()
        assert not gone(run.watchdog)  # it stays until the hung driver is gone
        run.driver.send_signal(signal.SIGKILL)
        run.driver.wait()
        assert wait_for(lambda: gone(run.watchdog), timeout=5) is not None
        assert_only_foreign_left(toxiproxy, foreign)
        assert run_records(staging) == []
    finally:
        if run.driver.poll() is None:
            run.driver.kill()
            run.driver.wait()
        stop_engine(run.engine)


def test_cleanup_with_the_target_file_undoes_a_killed_run_only(
    staging: Staging, toxiproxy: ToxiproxyClient
) -> None:
    foreign = add_foreign_toxic(toxiproxy)
    run = start_long_run(staging, toxiproxy)
    try:
        # Everything gone at once (a host reboot): no watchdog left to help.
        os.kill(run.watchdog, signal.SIGKILL)
        run.driver.send_signal(signal.SIGKILL)
        run.driver.wait()
        assert wait_for(lambda: gone(run.watchdog), timeout=5) is not None
        stop_engine(run.engine)
        time.sleep(0.5)
        assert len(chaoskit_toxics(toxiproxy)) == 3 and len(run_records(staging)) == 1
        result = chaoskit(staging, "cleanup", "--target", str(staging.attach_file))
        assert result.returncode == 0, result.stdout + result.stderr
        assert result.stdout.count("removed toxic") == 3
        assert_only_foreign_left(toxiproxy, foreign)
        assert run_records(staging) == []
        again = chaoskit(staging, "cleanup", "--target", str(staging.attach_file))
        assert again.returncode == 0 and "nothing to clean up" in again.stdout
    finally:
        stop_engine(run.engine)
