"""`python -m orderstack SERVICE --config stack.json`: run one service of the stub order stack."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import resource
import sqlite3
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from .config import SERVICES, ConfigError, load_config
from .server import serve
from .services import create_service


def _raise_fd_limit() -> None:
    # Thousands of keep-alive connections (clients in, proxies out) need more than a default 1024.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = 65536 if hard == resource.RLIM_INFINITY else hard
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def _run(coro: Coroutine[Any, Any, None]) -> None:
    """Run on uvloop when it is installed: the stack's throughput is what experiments push."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(coro)
        return
    uvloop.run(coro)


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, load the config, serve; one stderr line and non-zero exit on failure."""
    parser = argparse.ArgumentParser(prog="python -m orderstack", description=__doc__)
    parser.add_argument("service", choices=SERVICES, help="which service to run")
    parser.add_argument("--config", required=True, type=Path, help="path to stack.json")
    args = parser.parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    name: str = args.service
    try:
        config = load_config(args.config, service=name)
    except ConfigError as exc:
        print(f"orderstack {name}: bad config: {exc}", file=sys.stderr)
        return 2
    _raise_fd_limit()
    host, port = config.host, config.ports[name]
    try:
        _run(serve(create_service(name, config), host, port))
    except OSError as exc:
        reason = exc.strerror or exc
        print(f"orderstack {name}: cannot serve on {host}:{port}: {reason}", file=sys.stderr)
        return 3
    except sqlite3.Error as exc:
        print(f"orderstack {name}: database under {config.data_dir}: {exc}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
