"""The dead-man's switch: a detached process that undoes a run whose driver stops heartbeating.

The driver touches a heartbeat file from its main loop (``Watchdog.beat``). The watchdog,
started in its own session so it outlives a SIGKILL of the driver, polls two files:

- the run record (``<state>/runs/<run_id>.json``) gone: the run ended and cleaned up; exit;
- the heartbeat older than the TTL while the record lists something to undo: undo it
  exactly as ``chaoskit cleanup --run <run_id>`` would, even if the driver is alive (hung).

After undoing for a driver that is still alive, it keeps watching: a driver that wakes up
may put faults in place again, and if it hangs again those are undone again. It exits when
the driver is gone (undoing what its record still lists) or when told to stop.

    python -m chaoskit.faults.watchdog --record R --heartbeat H --ttl SECONDS
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import IO

from chaoskit.run.cleanup import CleanupReport, cleanup
from chaoskit.run.registry import RunRecord
from chaoskit.stack.state import same_process_alive

__all__ = ["Watchdog", "main"]

_BEAT_EVERY_S = 0.5  # touching a file 20 times a second would cost more than it tells
_RETRY_EVERY_S = 1.0  # between undo attempts that failed (a Toxiproxy that did not answer)
_GIVE_UP_AFTER_S = 3600.0  # a target unreachable for an hour: leave it to `chaoskit cleanup`


class Watchdog:
    """The driver's side: start the detached watchdog, beat, stop it when the run is undone."""

    def __init__(
        self,
        *,
        record_path: Path,
        heartbeat_path: Path,
        ttl_s: float,
        python: str = sys.executable,
    ) -> None:
        if ttl_s <= 0:
            raise ValueError(f"ttl_s must be > 0, got {ttl_s}")
        self.record_path = Path(record_path).absolute()
        self.heartbeat_path = Path(heartbeat_path).absolute()
        self.ttl_s = ttl_s
        self._python = python
        self._popen: subprocess.Popen[bytes] | None = None
        self._last_beat = 0.0

    @property
    def pid(self) -> int | None:
        """The watchdog process's id once started."""
        return None if self._popen is None else self._popen.pid

    @property
    def log_path(self) -> Path:
        """Where the watchdog says what it did (next to the heartbeat, in the run folder)."""
        return self.heartbeat_path.parent / "watchdog.log"

    def start(self) -> None:
        """Beat once, then launch the watchdog in its own session (it survives our SIGKILL)."""
        self.heartbeat_path.parent.mkdir(parents=True, exist_ok=True)
        self._touch()
        with open(self.log_path, "ab") as log:
            self._popen = subprocess.Popen(
                [
                    self._python,
                    "-m",
                    "chaoskit.faults.watchdog",
                    "--record",
                    str(self.record_path),
                    "--heartbeat",
                    str(self.heartbeat_path),
                    "--ttl",
                    repr(self.ttl_s),
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
                close_fds=True,
            )

    def beat(self) -> None:
        """Tell the watchdog the driver is alive; cheap enough to call every few milliseconds."""
        now = time.monotonic()
        if now - self._last_beat >= _BEAT_EVERY_S:
            self._touch()

    def stop(self, timeout_s: float = 2.0) -> None:
        """Make the watchdog exit without undoing anything (the run has rolled back itself)."""
        popen = self._popen
        if popen is None:
            return
        self._popen = None
        if popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                popen.send_signal(signal.SIGTERM)
            try:
                popen.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                popen.kill()
                popen.wait(timeout=timeout_s)

    def _touch(self) -> None:
        self._last_beat = time.monotonic()
        try:
            os.utime(self.heartbeat_path)
        except FileNotFoundError:
            self.heartbeat_path.touch()


# --- the watchdog process -------------------------------------------------------------------


class _Watch:
    """The polling loop of the watchdog process."""

    def __init__(self, *, record_path: Path, heartbeat_path: Path, ttl_s: float, log: IO[str]):
        self.record_path = record_path
        self.heartbeat_path = heartbeat_path
        self.ttl_s = ttl_s
        self.poll_s = min(0.5, max(0.05, ttl_s / 10.0))
        self.log = log
        self.stopping = False
        # <state>/runs/<run_id>.json -> <state>
        self.state_dir = record_path.parent.parent
        self.run_id = record_path.stem

    def say(self, message: str) -> None:
        stamp = datetime.now(UTC).isoformat(timespec="milliseconds")
        self.log.write(f"{stamp} watchdog[{os.getpid()}] run {self.run_id}: {message}\n")
        self.log.flush()

    def run(self) -> int:
        """Poll until the run ends, the driver is gone, or we are told to stop."""
        self.say(f"watching (ttl {self.ttl_s:g}s)")
        # Set once we undid for a driver still alive (hung): from then on we stay until it dies.
        hung_driver: tuple[int, int | None] | None = None
        retry_at = 0.0
        failing_since: float | None = None
        while not self.stopping:
            exists = self.record_path.exists()
            record = self._record() if exists else None
            if not exists:
                if hung_driver is None:
                    self.say("run record gone: the run ended; exiting")
                    return 0
                if not same_process_alive(*hung_driver):
                    self.say("driver gone and nothing left to undo; exiting")
                    return 0
            if record is not None and time.monotonic() >= retry_at:
                dead = not record.alive()
                age = self._heartbeat_age()
                stale = age is None or age > self.ttl_s
                if dead or (stale and _has_work(record)):
                    why = "driver gone" if dead else f"no heartbeat for {age or 0.0:.1f}s"
                    report = self._undo(record, why)
                    now = time.monotonic()
                    if report.errors:
                        retry_at = now + _RETRY_EVERY_S
                        failing_since = failing_since or now
                        if now - failing_since > _GIVE_UP_AFTER_S:
                            self.say("giving up; run `chaoskit cleanup` once the target answers")
                            return 1
                    elif dead:
                        self.say("undone; exiting")
                        return 0
                    else:
                        failing_since = None
                        hung_driver = (record.pid, record.pid_start)
                        self.say("driver alive but silent: watching it until it exits")
            time.sleep(self.poll_s)
        self.say("told to stop; exiting without undoing anything")
        return 0

    def _record(self) -> RunRecord | None:
        try:
            return RunRecord.from_json(json.loads(self.record_path.read_text()))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError):
            return None  # caught mid-write; the writer replaces atomically, so retry next poll

    def _heartbeat_age(self) -> float | None:
        try:
            return time.time() - self.heartbeat_path.stat().st_mtime
        except FileNotFoundError:
            return None

    def _undo(self, record: RunRecord, why: str) -> CleanupReport:
        self.say(f"{why}: undoing what the run has in place")
        started = time.monotonic()
        report = cleanup(
            state_dir=self.state_dir,
            toxiproxy_urls=list(record.toxiproxy_urls),
            run_id=record.run_id,
            force=True,
        )
        took = (time.monotonic() - started) * 1000.0
        for label, items in (
            ("removed toxic", report.toxics_removed),
            ("re-enabled proxy", report.proxies_enabled),
            ("restored settings of", report.settings_restored),
            ("restored container", report.containers_restored),
        ):
            for item in items:
                self.say(f"{label} {item}")
        for error in report.errors:
            self.say(f"error: {error}")
        self.say(f"undo took {took:.0f} ms" + (" with errors" if report.errors else ""))
        return report


def _has_work(record: RunRecord) -> bool:
    return bool(record.toxics or record.disabled_proxies or record.restore or record.containers)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the detached watchdog process."""
    parser = argparse.ArgumentParser(prog="python -m chaoskit.faults.watchdog")
    parser.add_argument("--record", type=Path, required=True)
    parser.add_argument("--heartbeat", type=Path, required=True)
    parser.add_argument("--ttl", type=float, required=True)
    args = parser.parse_args(argv)
    watch = _Watch(
        record_path=args.record,
        heartbeat_path=args.heartbeat,
        ttl_s=args.ttl,
        log=sys.stdout,
    )

    def on_stop(signum: int, frame: FrameType | None) -> None:
        watch.stopping = True

    signal.signal(signal.SIGTERM, on_stop)
    # Detached from the terminal: a Ctrl-C or hang-up meant for the driver is not for us.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    return watch.run()


if __name__ == "__main__":
    sys.exit(main())
