"""A throwaway PostgreSQL server for the tests: ``initdb`` into a temp folder, a free port.

    with running_postgres(tmp_path / "pg") as dsn:
        psycopg.connect(dsn)

Debian's ``postgresql`` binaries; when the tests run as root the server runs as the
``postgres`` user (PostgreSQL refuses root). Trust auth on 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from tests.support.shop import free_port

_PG_BIN_DIRS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)


def _binary(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    for folder in _PG_BIN_DIRS:
        if (folder / name).exists():
            return str(folder / name)
    raise RuntimeError(f"{name} not found: install Debian's postgresql")


def _as_owner(argv: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return argv
    return ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", *argv]


@contextlib.contextmanager
def running_postgres(work: Path) -> Iterator[str]:
    """Start PostgreSQL with its data in ``work``; yields a DSN; stops and removes it on exit."""
    work.mkdir(parents=True, exist_ok=True)
    data = work / "data"
    if os.geteuid() == 0:
        owner = pwd.getpwnam("postgres")
        os.chown(work, owner.pw_uid, owner.pw_gid)
        # The server must reach its folder through every parent (pytest's tmp is 0700).
        for parent in work.parents:
            if parent == Path("/tmp") or parent == Path("/"):
                break
            os.chmod(parent, os.stat(parent).st_mode | 0o711)
    done = subprocess.run(
        _as_owner([_binary("initdb"), "-D", str(data), "-U", "postgres", "-A", "trust"]),
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(f"initdb failed ({done.returncode}): {done.stderr or done.stdout}")
    port = free_port()
    log = work / "postgres.log"
    with log.open("wb") as log_file:
        server = subprocess.Popen(
            _as_owner(
                [_binary("postgres"), "-D", str(data), "-h", "127.0.0.1", "-p", str(port)]
                + ["-k", str(work), "-c", "fsync=off"]
            ),
            stdout=subprocess.DEVNULL,
            stderr=log_file,
        )
    dsn = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    try:
        import psycopg

        deadline = time.monotonic() + 30
        while True:
            try:
                psycopg.connect(dsn, connect_timeout=2).close()
                break
            except psycopg.OperationalError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"postgres did not start: {log.read_text()[-2000:]}"
                    ) from None
                time.sleep(0.1)
        yield dsn
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=5)
