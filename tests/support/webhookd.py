"""A real HTTP receiver for webhook alerts: verifies HMAC, timestamp and idempotency key, records what came."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class WebhookReceiver:
    """Listens on 127.0.0.1; `status` is what it answers; `down()` / `up()` stop and restart it on
    the same port. Each accepted POST is kept with its verdict on the signature."""

    def __init__(self, secret: bytes | None, port: int = 0, status: int = 200, max_skew_s: int = 300) -> None:
        self.secret, self.status, self.max_skew_s = secret, status, max_skew_s
        self.received: list[dict[str, Any]] = []  # {"body", "key", "signature_ok", "headers"}
        self.delay_s = 0.0
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self.port = port
        self.up()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if receiver.delay_s:
                    time.sleep(receiver.delay_s)
                entry = {
                    "body": json.loads(body),
                    "key": self.headers.get("Idempotency-Key"),
                    "signature_ok": receiver.verify(self.headers, body),
                    "headers": dict(self.headers),
                }
                with receiver._lock:
                    if receiver.status < 300:
                        receiver.received.append(entry)
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        return Handler

    def verify(self, headers: Any, body: bytes) -> bool:
        if self.secret is None:
            return "X-Xborder-Signature" not in headers
        ts, sig = headers.get("X-Xborder-Timestamp", ""), headers.get("X-Xborder-Signature", "")
        if not ts.isdigit() or abs(time.time() - int(ts)) > self.max_skew_s:
            return False
        want = "sha256=" + hmac.new(self.secret, ts.encode() + b"." + body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(want, sig)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def up(self) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def down(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def keys(self) -> list[str]:
        with self._lock:
            return [str(e["key"]) for e in self.received]

    def close(self) -> None:
        self.down()
