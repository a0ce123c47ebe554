"""A gateway double as its own process (for tests that put it in a network namespace).

    python gateway_double.py HOST PORT RECORD.jsonl

Answers POST /orders with 200 and an ok order, and appends each body to RECORD.jsonl.
"""

from __future__ import annotations

import contextlib
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import IO


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 512
    record: IO[str]
    lock: threading.Lock


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib name
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        raw = self.rfile.read(length) or b"{}"
        body = json.loads(raw)
        with self.server.lock:
            self.server.record.write(json.dumps(body) + "\n")
            self.server.record.flush()
        payload = json.dumps(
            {"outcome": "ok", "order_id": body.get("order_id"), "eligible": False}
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # engine stopped
            self.wfile.write(payload)


def main(argv: list[str]) -> int:
    host, port, record = argv[0], int(argv[1]), argv[2]
    server = _Server((host, port), _Handler)
    server.lock = threading.Lock()
    with open(record, "a", encoding="utf-8") as out:
        server.record = out
        print("ready", flush=True)
        server.serve_forever(poll_interval=0.1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
