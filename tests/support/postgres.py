"""A throwaway PostgreSQL server for the tests: ``initdb`` into a temp folder, a free port.

    server = start_postgres()            # or the session fixture ``postgres`` (tests/conftest.py)
    psycopg.connect(server.dsn)
    server.stop()

Debian's ``postgresql`` binaries (``make setup-tools``). When the tests run as root the server
runs as the ``postgres`` user (PostgreSQL refuses root). It listens on 127.0.0.1 only, with a
password (scram-sha-256): the DSN carries a secret, so tests can check it leaks nowhere.
"""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.ports import free_port

__all__ = ["PostgresServer", "start_postgres"]


@dataclass
class PostgresServer:
    """A running PostgreSQL: ``dsn`` carries its password (a secret in the tests' eyes)."""

    port: int
    user: str
    password: str
    folder: Path
    bin_dir: Path
    run_as: list[str] = field(default_factory=list)

    @property
    def dsn(self) -> str:
        return f"postgresql://{self.user}:{self.password}@127.0.0.1:{self.port}/postgres"

    def stop(self) -> None:
        subprocess.run(
            [*self.run_as, str(self.bin_dir / "pg_ctl"), "stop", "-D", str(self.folder / "data")]
            + ["-m", "fast", "-w"],
            capture_output=True,
            check=False,
            timeout=60,
        )
        shutil.rmtree(self.folder, ignore_errors=True)


def _postgres_bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        raise RuntimeError("postgresql is not installed: run make setup-tools")
    return Path(found[-1]).parent


def start_postgres() -> PostgresServer:
    """``initdb`` into a temp folder and ``pg_ctl start`` on a free 127.0.0.1 port."""
    bin_dir = _postgres_bin()
    folder = Path(tempfile.mkdtemp(prefix="chaoskit-pg-"))
    run_as: list[str] = []
    if os.geteuid() == 0:  # postgres refuses to run as root
        shutil.chown(folder, "postgres", "postgres")
        run_as = ["runuser", "-u", "postgres", "--"]
    password = "pw-" + secrets.token_hex(8)
    pwfile = folder / "pw"
    pwfile.write_text(password + "\n")
    if run_as:
        shutil.chown(pwfile, "postgres", "postgres")
    port = free_port()
    user = "chaoskit"
    subprocess.run(
        [*run_as, str(bin_dir / "initdb"), "-D", str(folder / "data"), "-U", user]
        + [f"--pwfile={pwfile}", "--auth-host=scram-sha-256", "--auth-local=trust"]
        + ["--no-sync", "-E", "UTF8"],
        capture_output=True,
        check=True,
        timeout=120,
    )
    pwfile.unlink()
    server = PostgresServer(port, user, password, folder, bin_dir, run_as)
    started = subprocess.run(
        [*run_as, str(bin_dir / "pg_ctl"), "start", "-D", str(folder / "data"), "-w"]
        + ["-l", str(folder / "postgres.log")]
        + ["-o", f"-k {folder} -p {port} -c listen_addresses=127.0.0.1 -c fsync=off"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    if started.returncode != 0:
        log = (folder / "postgres.log").read_text(errors="replace")[-2000:]
        server.stop()
        raise RuntimeError(f"pg_ctl start failed: {started.stderr} {log}")
    return server
