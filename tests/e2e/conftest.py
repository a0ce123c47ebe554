"""A live stack for end-to-end runs of `chaoskit run`, shared by the e2e run tests.

The stack is a real LocalStack (real toxiproxy-server, real services on 127.0.0.1) on its
own ports, with its state in a temporary CHAOSKIT_HOME so nothing touches a user's stack.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from chaoskit.faults.toxiproxy import ToxiproxyClient
from chaoskit.stack.endpoints import StackEndpoints
from chaoskit.stack.local import LocalStack
from chaoskit.stack.target import load_target

REPO = Path(__file__).resolve().parents[2]
RUN_BASE_PORT = 19900 + int(os.environ.get("CHAOSKIT_TEST_PORT_SHIFT", "0"))


def chaoskit_command() -> list[str]:
    """The installed console script, or the module as a fallback."""
    script = REPO / ".venv" / "bin" / "chaoskit"
    return [str(script)] if script.exists() else [sys.executable, "-m", "chaoskit"]


@dataclass(frozen=True)
class RunStack:
    """The e2e stack: its target file, endpoints and the environment to run chaoskit in."""

    target_file: Path
    endpoints: StackEndpoints
    env: dict[str, str]
    home: Path

    def toxiproxy(self) -> ToxiproxyClient:
        return ToxiproxyClient(self.endpoints.toxiproxy_urls[0])

    def toxics(self) -> dict[str, list[str]]:
        """Every toxic in place now, by proxy (empty: nothing is faulted)."""
        with self.toxiproxy() as client:
            return {
                name: [t.name for t in client.toxics(name)]
                for name in client.proxies()
                if client.toxics(name)
            }

    def admin(self, service: str) -> dict[str, object]:
        response = httpx.get(f"{self.endpoints.services[service]}/admin", trust_env=False)
        response.raise_for_status()
        settings: dict[str, object] = response.json()
        return settings

    def experiment(self, folder: Path, name: str, body: str) -> Path:
        """Write an experiment aimed at this stack; ``body`` is YAML after the header."""
        path = folder / f"{name}.yaml"
        path.write_text(f"version: 1\nname: {name}\ntarget: {self.target_file}\nseed: 3\n" + body)
        return path

    def play(
        self, experiment: Path, reports: Path, *flags: str
    ) -> subprocess.CompletedProcess[str]:
        """`chaoskit run EXPERIMENT` to its end (progress lines, reports under ``reports``)."""
        return self.run(
            "run", str(experiment), "--no-dashboard", "--reports-dir", str(reports), *flags
        )

    def start(self, experiment: Path, reports: Path, *flags: str) -> subprocess.Popen[str]:
        """`chaoskit run EXPERIMENT` in the background (for signals and kills)."""
        return self.popen(
            "run", str(experiment), "--no-dashboard", "--reports-dir", str(reports), *flags
        )

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [*chaoskit_command(), *args],
            env=self.env,
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def run(self, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*chaoskit_command(), *args],
            env=self.env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=timeout,
        )


@pytest.fixture(scope="session")
def run_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunStack]:
    """A live local stack for `chaoskit run` tests (session-wide)."""
    folder = tmp_path_factory.mktemp("run-stack")
    home = folder / "home"
    target_file = folder / "e2e-run.yaml"
    target_file.write_text(f"version: 1\nkind: local\nname: e2e-run\nbase_port: {RUN_BASE_PORT}\n")
    env = dict(os.environ)
    env.update({"CHAOSKIT_HOME": str(home), "NO_COLOR": "1", "COLUMNS": "120"})
    stack = LocalStack(load_target(str(target_file)), state_dir=home / "stacks" / "e2e-run")
    stack.up()
    try:
        yield RunStack(target_file=target_file, endpoints=stack.endpoints(), env=env, home=home)
    finally:
        stack.down()


@pytest.fixture
def clean_stack(run_stack: RunStack) -> Iterator[RunStack]:
    """The run stack, checked free of toxics before and reset after the test."""
    with run_stack.toxiproxy() as client:
        client.reset()
    yield run_stack
    with run_stack.toxiproxy() as client:
        client.reset()
