"""A real HAProxy writes httplog and tcplog lines; the haproxy collector reads them.

HAProxy (Debian package haproxy, installed by .ci/sysdeps.sh) runs in the foreground on
127.0.0.1 with `log stdout format raw`, in front of a small Python HTTP server: a reverse-proxy
frontend capturing Host, a forward-proxy frontend (absolute URI, CONNECT), a TCP frontend whose
server is named by its address, and a backend whose server refuses connections. HAProxy logs
local time, so it runs with TZ=Europe/Berlin and the collector is told the same zone.
"""

from __future__ import annotations

import datetime as dt
import http.client
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from conftest import skip_or_fail

from monitor.collect.haproxy import HaproxyCollector
from tests.support.servers import free_port, wait_listening

ZONE = "Europe/Berlin"


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # HAProxy closing a proxied TCP session may reset it: not this test's business


class _Upstream(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        body = b"hello from upstream\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass


@dataclass
class Haproxy:
    ports: dict[str, int]
    upstream_port: int
    log: Path
    proc: subprocess.Popen[bytes]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGUSR1)  # soft stop: finishes open sessions, logs them
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def _config(ports: dict[str, int], upstream: int, refused: int) -> str:
    return f"""global
    log stdout format raw local0
defaults
    log global
    option dontlognull
    timeout connect 2s
    timeout client 10s
    timeout server 10s
frontend web
    mode http
    option httplog
    bind 127.0.0.1:{ports["web"]}
    capture request header Host len 64
    default_backend app
frontend fwd
    mode http
    option httplog
    bind 127.0.0.1:{ports["fwd"]}
    default_backend app
frontend tcpin
    mode tcp
    option tcplog
    bind 127.0.0.1:{ports["tcp"]}
    default_backend tapp
frontend down
    mode http
    option httplog
    bind 127.0.0.1:{ports["down"]}
    default_backend refusing
backend app
    mode http
    server app1 127.0.0.1:{upstream}
backend tapp
    mode tcp
    server 127.0.0.1:{upstream} 127.0.0.1:{upstream}
backend refusing
    mode http
    retries 0
    server nobody 127.0.0.1:{refused}
"""


@pytest.fixture
def haproxy(tmp_path: Path) -> Iterator[Haproxy]:
    binary = shutil.which("haproxy") or next((p for p in ("/usr/sbin/haproxy",) if os.access(p, os.X_OK)), None)
    if binary is None:
        skip_or_fail("haproxy not found: install it with `apt-get install haproxy` (or run .ci/sysdeps.sh as root)")
    upstream = _QuietServer(("127.0.0.1", 0), _Upstream)
    thread = threading.Thread(target=upstream.serve_forever, daemon=True)
    thread.start()
    server: Haproxy | None = None
    try:
        for _attempt in range(3):  # a port picked as free can be taken before HAProxy binds it
            ports = {name: free_port() for name in ("web", "fwd", "tcp", "down")}
            cfg = tmp_path / "haproxy.cfg"
            cfg.write_text(_config(ports, upstream.server_address[1], free_port()))
            log = tmp_path / "haproxy.log"
            with log.open("wb") as out, (tmp_path / "stderr.log").open("ab") as err:
                proc = subprocess.Popen(
                    [binary, "-db", "-f", str(cfg)],
                    stdin=subprocess.DEVNULL, stdout=out, stderr=err, env={**os.environ, "TZ": ZONE},
                )  # fmt: skip
            server = Haproxy(ports, upstream.server_address[1], log, proc)
            if wait_listening(proc, list(ports.values())):
                break
            server.stop()
            server = None
        if server is None:
            pytest.fail(f"haproxy did not start; its messages:\n{(tmp_path / 'stderr.log').read_text()[-3000:]}")
        yield server
    finally:
        if server is not None:
            server.stop()
        upstream.shutdown()
        upstream.server_close()
        thread.join(timeout=10)


def _http(port: int, method: str, target: str, host: str | None = None) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.putrequest(method, target, skip_host=True)
        if host is not None:
            conn.putheader("Host", host)
        conn.endheaders()
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


def _wait_lines(log: Path, want: int) -> bytes:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and log.read_bytes().count(b"\n") < want:
        time.sleep(0.05)
    return log.read_bytes()


def test_real_haproxy_http_and_tcp_logs(haproxy: Haproxy) -> None:
    started = dt.datetime.now(dt.UTC).replace(microsecond=0)
    p = haproxy.ports
    statuses = [
        _http(p["web"], "GET", "/users?email=jane.doe%40example.com&page=2", host="App.Example.COM"),
        _http(p["fwd"], "GET", "http://example.org/abs"),
        _http(p["fwd"], "CONNECT", "api.example.eu:443", host="api.example.eu:443"),
        _http(p["tcp"], "GET", "/via-tcp", host="tcp.example"),
        _http(p["down"], "GET", "/nobody-home", host="down.example"),
    ]
    assert statuses[:2] == [200, 200] and statuses[3:] == [200, 503]
    _wait_lines(haproxy.log, len(statuses))
    haproxy.stop()
    data = haproxy.log.read_bytes()

    collector = HaproxyCollector(timezone=ZONE, host_capture_index=0)
    parsed = collector.parse_chunk(data, source="haproxy", first_line=1, base_offset=0)
    # `log stdout` also carries HAProxy's own messages ("Proxy web stopped ..."): quarantined, not rows
    own = [q.raw for q in parsed.quarantined if not q.raw.startswith(b"127.0.0.1:")]
    assert len(own) == len(parsed.quarantined), [q.reason for q in parsed.quarantined]
    assert all(b"Proxy " in raw for raw in own)
    assert len(parsed.frame) == len(statuses), data.decode(errors="replace")
    frame = parsed.frame
    now = dt.datetime.now(dt.UTC)
    for _, row in frame.iterrows():
        assert started - dt.timedelta(seconds=2) <= row["ts"] <= now + dt.timedelta(seconds=2)  # local time, zoned
        assert row["source_ip"] == "127.0.0.1" and row["collector"] == "haproxy"
        assert row["bytes_in"] > 0

    # a TCP session is logged when both sides have closed, so the order of the lines may vary
    def one(mask: pd.Series) -> pd.Series:
        mask = mask.fillna(False).astype(bool)
        assert int(mask.sum()) == 1, frame.to_string()
        return frame[mask].iloc[0]

    web, fwd = one(frame["pii"] == "email"), one(frame["dest_host"] == "example.org")
    connect, tcp, down = one(frame["method"] == "CONNECT"), one(frame["protocol"] == "tcp"), one(frame["status"] == 503)
    assert sorted(frame["status"]) == sorted([*statuses[:3], 0, 503])

    assert (web["method"], web["protocol"], web["dest_host"], web["pii"]) == ("GET", "http", "app.example.com", "email")
    assert web["egress"] and web["dest_ip"] is pd.NA  # reverse proxy to a server named "app1": no address logged
    assert (fwd["dest_host"], fwd["dest_port"], fwd["protocol"], fwd["egress"]) == ("example.org", 80, "http", True)
    assert (connect["method"], connect["protocol"]) == ("CONNECT", "tunnel")
    assert (connect["dest_host"], connect["dest_port"]) == ("api.example.eu", 443)
    assert (tcp["protocol"], tcp["method"], tcp["egress"]) == ("tcp", pd.NA, True)
    assert (tcp["dest_ip"], tcp["dest_port"]) == ("127.0.0.1", haproxy.upstream_port)
    assert (down["method"], down["egress"]) == ("GET", False)  # SC--: the server refused, Tc = -1
