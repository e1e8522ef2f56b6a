"""Helpers for the tests that run a real proxy on loopback: free ports, a tiny upstream, waiting to listen."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from http.server import BaseHTTPRequestHandler
from typing import Any


def free_port() -> int:
    """A loopback port that is free now (it can be taken before the server binds it: retry on failure)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_listening(proc: subprocess.Popen[bytes], ports: list[int], timeout: float = 15) -> bool:
    """Whether every port accepts a TCP connection before `proc` exits or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    pending = list(ports)
    while pending and time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", pending[0]), timeout=0.5):
            pending.pop(0)
            continue
        time.sleep(0.05)
    return not pending


class Upstream(BaseHTTPRequestHandler):
    """GET answers HELLO (404 under /missing), POST reads the body and answers 201; logs nothing."""

    HELLO = b"hello from upstream\n"

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self._answer(404 if self.path.startswith("/missing") else 200, self.HELLO)

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self._answer(201, b"stored\n")

    def _answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass
