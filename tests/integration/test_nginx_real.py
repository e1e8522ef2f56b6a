"""A real nginx reverse proxy writes an access log; the accesslog collector reads it with the same log_format.

nginx (Debian package nginx-light, installed by .ci/sysdeps.sh) runs from a temp prefix on
127.0.0.1 and proxies `location /` to a small Python HTTP server on another loopback port.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import signal
import subprocess
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from pathlib import Path

import pandas as pd
import pytest
from conftest import skip_or_fail

from monitor.collect.accesslog import AccessLogCollector, NginxCollector
from tests.support.servers import Upstream, free_port, wait_listening

LOG_FORMAT = (
    '$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" '
    '"$http_user_agent" $host $upstream_addr $request_time'
)


def _nginx_binary() -> str:
    found = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.access(p, os.X_OK)), None)
    if found is None:
        skip_or_fail("nginx not found: install it with `apt-get install nginx-light` (or run .ci/sysdeps.sh as root)")
    return found


@dataclass
class Nginx:
    port: int
    upstream_port: int
    access_log: Path
    proc: subprocess.Popen[bytes]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)  # graceful: workers finish and the log is complete
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def _config(root: Path, port: int, upstream_port: int) -> str:
    user = "user root root;\n" if os.geteuid() == 0 else ""  # workers write into our temp dir
    temp = "".join(f"    {k}_temp_path {root / k};\n" for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    return f"""{user}worker_processes 1;
pid {root / "nginx.pid"};
error_log {root / "error.log"} info;
events {{ worker_connections 64; }}
http {{
    log_format xborder '{LOG_FORMAT}';
    access_log {root / "access.log"} xborder;
{temp}    server {{
        listen 127.0.0.1:{port};
        server_name _;
        location = /local {{ return 204; }}
        location / {{
            proxy_pass http://127.0.0.1:{upstream_port};
            proxy_set_header Host $host;
        }}
    }}
}}
"""


@pytest.fixture
def nginx(tmp_path: Path) -> Iterator[Nginx]:
    binary = _nginx_binary()
    upstream = ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
    thread = threading.Thread(target=upstream.serve_forever, daemon=True)
    thread.start()
    root = tmp_path / "nginx"
    root.mkdir()
    server: Nginx | None = None
    try:
        for _attempt in range(3):  # a port picked as free can be taken before nginx binds it
            port = free_port()
            (root / "nginx.conf").write_text(_config(root, port, upstream.server_address[1]))
            with (root / "stderr.log").open("ab") as out:  # nginx's own messages before error_log applies
                proc = subprocess.Popen(
                    [binary, "-p", str(root), "-c", str(root / "nginx.conf"), "-g", "daemon off;"],
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            server = Nginx(port, upstream.server_address[1], root / "access.log", proc)
            if wait_listening(proc, [port]):
                break
            server.stop()
            server = None
        if server is None:
            logs = "".join(
                p.read_text(errors="replace") for p in (root / "stderr.log", root / "error.log") if p.exists()
            )
            pytest.fail(f"nginx did not start on 127.0.0.1; its messages:\n{logs[-3000:]}")
        yield server
    finally:
        if server is not None:
            server.stop()
        upstream.shutdown()
        upstream.server_close()
        thread.join(timeout=10)


def _request(port: int, path: str, host: str, data: bytes | None = None) -> int:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, headers={"Host": host})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            resp.read()
            status: int = resp.status
            return status
    except urllib.error.HTTPError as err:
        err.read()
        return err.code


@pytest.mark.parametrize("kind", [AccessLogCollector, NginxCollector])
def test_real_nginx_reverse_proxy_log(nginx: Nginx, kind: type[AccessLogCollector]) -> None:
    started = dt.datetime.now(dt.UTC)
    query = urllib.parse.urlencode({"email": "jane.doe@example.com", "page": "2"})
    requests = [  # (path, Host header, body)
        ("/", "App.Example.COM", None),
        (f"/api/users?{query}", "api.example.org", None),
        ("/missing", "app.example.com", None),
        ("/upload", "upload.example.net", b"x" * 1000),
        ("/local", "app.example.com", None),  # answered by nginx itself: nothing goes upstream
    ]
    statuses = [_request(nginx.port, path, host, body) for path, host, body in requests]
    assert statuses == [200, 200, 404, 201, 204]
    nginx.stop()
    data = nginx.access_log.read_bytes()

    parsed = kind(log_format=LOG_FORMAT).parse_chunk(data, source="nginx", first_line=1, base_offset=0)
    assert [q.reason for q in parsed.quarantined] == []
    frame = parsed.frame
    assert len(frame) == len(requests) == parsed.lines_read
    assert list(frame["status"]) == statuses
    assert list(frame["method"]) == ["GET", "GET", "GET", "POST", "GET"]
    assert set(frame["source_ip"]) == {"127.0.0.1"}
    assert frame["source_user"].isna().all()
    assert list(frame["line"]) == [1, 2, 3, 4, 5]
    for ts in frame["ts"]:
        assert started - dt.timedelta(seconds=5) <= ts <= dt.datetime.now(dt.UTC) + dt.timedelta(seconds=5)

    proxied = frame.iloc[:4]
    assert list(proxied["dest_host"]) == ["app.example.com", "api.example.org", "app.example.com", "upload.example.net"]
    assert set(proxied["dest_ip"]) == {"127.0.0.1"}
    assert set(proxied["dest_port"]) == {nginx.upstream_port}
    assert proxied["egress"].all()
    assert set(proxied["protocol"]) == {"http"}

    local = frame.iloc[4]
    assert local["dest_host"] is pd.NA and local["dest_ip"] is pd.NA and local["dest_port"] is pd.NA
    assert not local["egress"]

    pii = [None if v is pd.NA else v for v in frame["pii"]]
    assert pii == [None, "email", None, None, None]
    assert frame["bytes_in"].iloc[0] == len(b"hello from upstream\n")
