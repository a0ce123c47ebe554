"""`python -m orderstack` as a real process: bad config exits with one line; SIGTERM stops it."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from .conftest import free_ports


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orderstack", *args], capture_output=True, text=True, timeout=30
    )


def test_bad_config_exits_non_zero_with_one_line(tmp_path: Path) -> None:
    config = tmp_path / "stack.json"
    config.write_text(json.dumps({"ports": {"store": 1}, "settings": {"store": {"queue": -1}}}))
    result = _run("store", "--config", str(config))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "orderstack store: bad config: settings.store.queue: expected an integer 0..1e+06, got -1"
    ]
    config.write_text(json.dumps({"ports": {"store": 1}}))
    result = _run("gateway", "--config", str(config))
    assert result.returncode == 2 and "ports.gateway" in result.stderr


def test_service_serves_until_sigterm(tmp_path: Path) -> None:
    (port,) = free_ports(1)
    config = tmp_path / "stack.json"
    config.write_text(json.dumps({"ports": {"orders": port}, "data_dir": str(tmp_path)}))
    proc = subprocess.Popen(
        [sys.executable, "-m", "orderstack", "orders", "--config", str(config)],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
                    assert json.load(r) == {"status": "ok", "service": "orders"}
                    break
            except OSError:
                assert time.monotonic() < deadline, "orders did not come up"
                time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        assert proc.stderr is not None
        proc.stderr.close()


def test_port_in_use_is_one_line(tmp_path: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        config = tmp_path / "stack.json"
        config.write_text(json.dumps({"ports": {"lbs": port}}))
        result = _run("lbs", "--config", str(config))
    assert result.returncode == 3
    assert f"cannot serve on 127.0.0.1:{port}" in result.stderr.strip().splitlines()[-1]
