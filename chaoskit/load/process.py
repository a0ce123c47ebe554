"""The runner's handle on a load engine process (no locust here: the driver stays un-patched)."""

from __future__ import annotations

import collections
import json
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from chaoskit.load.lifeline import child_env
from chaoskit.load.spec import LoadSpec, write_spec

__all__ = ["LoadProcess"]

_EOF = object()
_STDERR_LINES = 40


class LoadProcess:
    """A running ``python -m chaoskit.load SPEC.json``: its stdout lines as dicts, and stop."""

    def __init__(self, popen: subprocess.Popen[str], spec_path: Path) -> None:
        self._popen = popen
        self.spec_path = spec_path
        self._lines: queue.Queue[object] = queue.Queue()
        self._stderr: collections.deque[str] = collections.deque(maxlen=_STDERR_LINES)
        self._eof = False
        assert popen.stdout is not None and popen.stderr is not None
        self._readers = [
            threading.Thread(target=self._read_stdout, args=(popen.stdout,), daemon=True),
            threading.Thread(target=self._read_stderr, args=(popen.stderr,), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    @classmethod
    def start(cls, spec: LoadSpec, *, python: str = sys.executable) -> LoadProcess:
        """Write ``spec`` into its run folder and start the engine on it."""
        spec_path = write_spec(spec, Path(spec.run_dir) / "load-spec.json")
        popen = subprocess.Popen(
            [python, "-m", "chaoskit.load", str(spec_path)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
            # Its own session: a terminal's Ctrl-C reaches the driver, which stops us in order.
            start_new_session=True,
            # It dies with this driver, whatever kills the driver (chaoskit.load.lifeline).
            env=child_env({**os.environ, "PYTHONUNBUFFERED": "1"}),
        )
        return cls(popen, spec_path)

    @property
    def pid(self) -> int:
        """The engine's process id."""
        return self._popen.pid

    @property
    def returncode(self) -> int | None:
        """The exit code, or None while it runs."""
        return self._popen.poll()

    def _read_stdout(self, stream: IO[str]) -> None:
        for line in stream:
            text = line.strip()
            if not text:
                continue
            try:
                record = json.loads(text)
            except ValueError:
                record = {"type": "error", "message": f"unreadable engine line: {text[:200]}"}
            if not isinstance(record, dict):
                record = {"type": "error", "message": f"unexpected engine line: {text[:200]}"}
            self._lines.put(record)
        self._lines.put(_EOF)

    def _read_stderr(self, stream: IO[str]) -> None:
        for line in stream:
            self._stderr.append(line.rstrip("\n"))

    def poll_tick(self, timeout: float | None = None) -> dict[str, Any] | None:
        """The next stdout record (tick, worker_lost, error, done), or None on timeout or EOF."""
        if self._eof:
            return None
        try:
            item = self._lines.get(timeout=timeout)
        except queue.Empty:
            return None
        if item is _EOF:
            self._eof = True
            return None
        assert isinstance(item, dict)
        return item

    def ticks(self) -> Iterator[dict[str, Any]]:
        """Every stdout record until the engine closes stdout."""
        while True:
            record = self.poll_tick(timeout=None)
            if record is None:
                return
            yield record

    @property
    def finished_output(self) -> bool:
        """True once stdout ended and every record was read."""
        return self._eof

    def stop(self, grace_s: float = 3.0) -> int:
        """SIGTERM (the engine flushes a final tick, then ``done``); SIGKILL after ``grace_s``."""
        if self._popen.poll() is None:
            try:
                self._popen.send_signal(signal.SIGTERM)
                self._popen.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                self._kill()
            except ProcessLookupError:
                pass
        return self.wait()

    def _kill(self) -> None:
        # Its own session: the group holds the engine and any workers it started.
        try:
            os.killpg(self._popen.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            self._popen.kill()

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the exit (``subprocess.TimeoutExpired`` past ``timeout``); the exit code."""
        code = self._popen.wait(timeout=timeout)
        for reader in self._readers:
            reader.join(timeout=1.0)
        for stream in (self._popen.stdout, self._popen.stderr):
            if stream is not None and not any(r.is_alive() for r in self._readers):
                stream.close()
        return code

    def stderr_tail(self) -> str:
        """The engine's last stderr lines."""
        return "\n".join(self._stderr)

    def failure_reason(self) -> str:
        """Why the engine failed, never empty: its last stderr line, else how it ended."""
        lines = [line for line in self._stderr if line.strip()]
        code = self._popen.poll()
        if code is None:
            how = "still running"
        elif code < 0:
            name = _signal_name(-code)
            how = f"killed by {name}" + (" (out of memory?)" if -code == signal.SIGKILL else "")
        else:
            how = f"exit code {code}"
        if lines:
            return f"{lines[-1].strip()} ({how})"
        return f"{how}, with no message on stderr"


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"
