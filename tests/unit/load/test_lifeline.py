"""A load process dies with its parent, whatever killed the parent (real processes)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from chaoskit.stack.state import process_start_time

# A parent that starts one child under the lifeline, prints the child's pid, then waits.
PARENT = textwrap.dedent(
    """
    import subprocess, sys, time
    from chaoskit.load.lifeline import child_env
    child = subprocess.Popen(
        [sys.executable, "-c",
         "from chaoskit.load.lifeline import die_with_parent; import time; "
         "die_with_parent(); print('ready', flush=True); time.sleep(60)"],
        env=child_env(), stdout=subprocess.PIPE, text=True,
    )
    assert child.stdout is not None and child.stdout.readline().strip() == "ready"
    print(child.pid, flush=True)
    time.sleep(60)
    """
)


def test_a_child_dies_when_its_parent_is_sigkilled(tmp_path: Path) -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        start = process_start_time(child)
        assert start is not None
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(timeout=5)
        deadline = time.monotonic() + 5
        while process_start_time(child) == start and time.monotonic() < deadline:
            time.sleep(0.05)
        assert process_start_time(child) != start, "the child outlived its SIGKILLed parent"
    finally:
        if parent.poll() is None:
            parent.kill()
        parent.communicate()
