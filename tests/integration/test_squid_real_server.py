"""A real Squid proxies real requests and writes two access logs; SquidCollector reads both back.

Squid (Debian package `squid`, installed by .ci/sysdeps.sh) runs in the foreground from a temp
directory on 127.0.0.1 with no disk cache. It writes the native `squid` format and a custom
`logformat` (the built-in combined one plus %<a and %>st); the requests go through it with
urllib's ProxyHandler to a small Python HTTP server on another loopback port. A tiny DNS server
answering NXDOMAIN makes the unresolvable host fail at once instead of after a DNS timeout.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
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

from monitor.collect.follow import read_batches
from monitor.collect.squid import SquidCollector
from tests.support.servers import Upstream, free_port

CUSTOM = '%>a %[ui %[un [%tl] "%rm %ru HTTP/%rv" %>Hs %<st "%{Referer}>h" "%{User-Agent}>h" %Ss:%Sh %<a %>st'
BLOCKED = "www.blocked.example"
UNRESOLVABLE = "nosuchhost.invalid"  # RFC 6761: never resolves
POST_BODY = b"secret=" + b"x" * 1500


class _Origin(Upstream):
    HELLO = b"hello\n"


class _NxDomain:
    """Answers every DNS query with NXDOMAIN (squid's dns_nameservers take no port: it must be 53)."""

    def __init__(self) -> None:
        self.address: str | None = None
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for address in ("127.0.0.1", "127.83.0.53", "127.83.1.53"):
            try:
                self.sock.bind((address, 53))
            except OSError:  # not root, or a resolver already listens there
                continue
            self.address = address
            threading.Thread(target=self._serve, daemon=True).start()
            return
        self.sock.close()

    def _serve(self) -> None:
        while True:
            try:
                query, peer = self.sock.recvfrom(4096)
            except OSError:
                return  # closed
            end = 12
            while end < len(query) and query[end]:
                end += query[end] + 1
            if len(query) < end + 5:
                continue
            flags = 0x8000 | (int.from_bytes(query[2:4], "big") & 0x7900) | 0x0080 | 3  # response, NXDOMAIN
            header = query[:2] + flags.to_bytes(2, "big") + b"\x00\x01" + b"\x00" * 6
            with contextlib.suppress(OSError):
                self.sock.sendto(header + query[12 : end + 5], peer)

    def close(self) -> None:
        self.sock.close()


@dataclass
class Squid:
    binary: str
    root: Path
    conf: Path
    port: int
    origin_port: int
    proc: subprocess.Popen[bytes]

    @property
    def native_log(self) -> Path:
        return self.root / "access.log"

    @property
    def custom_log(self) -> Path:
        return self.root / "custom.log"

    def messages(self) -> str:
        text = "".join(
            p.read_text(errors="replace") for p in (self.root / "out.log", self.root / "cache.log") if p.exists()
        )
        return text[-3000:]

    def stop(self) -> None:
        """A clean shutdown, so squid flushes and closes its logs."""
        if self.proc.poll() is not None:
            return
        subprocess.run(
            [self.binary, "-k", "shutdown", "-f", str(self.conf)], capture_output=True, timeout=20, check=False
        )
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def _squid_binary() -> str:
    found = shutil.which("squid") or next((p for p in ("/usr/sbin/squid",) if os.access(p, os.X_OK)), None)
    if found is None:
        skip_or_fail("squid not found: install it with `apt-get install squid` (or run .ci/sysdeps.sh as root)")
    return found


def _root_dir() -> Path:
    """A temp dir squid's unprivileged user can reach and write (pytest's tmp_path is private to us)."""
    base = Path(tempfile.gettempdir()).resolve()
    if not all(os.stat(p).st_mode & 0o001 for p in (base, *base.parents)):
        base = Path("/tmp")
    root = Path(tempfile.mkdtemp(prefix="xborder-squid-", dir=base))
    os.chmod(root, 0o755)
    return root


def _config(root: Path, port: int, dns: str | None, user: str | None) -> str:
    return f"""# xborder integration test: a forward proxy without cache, logging twice
http_port 127.0.0.1:{port}
visible_hostname xborder-test
{f"cache_effective_user {user}" if user else ""}
pid_filename {root / "squid.pid"}
cache_log {root / "cache.log"}
coredump_dir {root}
netdb_filename none
pinger_enable off
cache deny all
cache_mem 8 MB
shutdown_lifetime 0 seconds
{f"dns_nameservers {dns}" if dns else ""}
dns_timeout 5 seconds
# the e-mail address in a query string is what the PII check looks for
strip_query_terms off
acl blocked dstdomain .blocked.example
http_access deny blocked
http_access allow localhost
http_access deny all
logformat xborder {CUSTOM}
access_log stdio:{root / "access.log"} squid
access_log stdio:{root / "custom.log"} xborder
"""


def _wait_listening(proc: subprocess.Popen[bytes], port: int, cache_log: Path) -> bool:
    """Squid says in cache.log that it accepts connections (a test connection would be logged)."""
    ready = "Accepting HTTP Socket connections at conn"
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        with contextlib.suppress(OSError):
            if any(ready in x and f"local=127.0.0.1:{port} " in x for x in cache_log.read_text().splitlines()):
                return True
        time.sleep(0.05)
    return False


@pytest.fixture
def squid() -> Iterator[Squid]:
    binary = _squid_binary()
    origin = ThreadingHTTPServer(("127.0.0.1", 0), _Origin)
    thread = threading.Thread(target=origin.serve_forever, daemon=True)
    thread.start()
    dns = _NxDomain()
    root = _root_dir()
    user = None
    if os.geteuid() == 0:  # squid drops root for this user: it must be able to write the logs
        with contextlib.suppress(KeyError):
            entry = pwd.getpwnam("proxy")
            os.chown(root, entry.pw_uid, entry.pw_gid)
            user = "proxy"
    server: Squid | None = None
    try:
        for _attempt in range(3):  # a port picked as free can be taken before squid binds it
            port = free_port()
            conf = root / "squid.conf"
            conf.write_text(_config(root, port, dns.address, user))
            with (root / "out.log").open("ab") as out:
                proc = subprocess.Popen(
                    [binary, "-N", "-f", str(conf)], stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
                )
            server = Squid(binary, root, conf, port, origin.server_address[1], proc)
            if _wait_listening(proc, port, root / "cache.log"):
                break
            server.stop()
        else:
            skip_or_fail(f"squid did not start on 127.0.0.1; its messages:\n{server.messages() if server else ''}")
        yield server
    finally:
        if server is not None:
            server.stop()
        dns.close()
        origin.shutdown()
        origin.server_close()
        thread.join(timeout=10)
        shutil.rmtree(root, ignore_errors=True)


def _request(proxy_port: int, url: str, data: bytes | None = None) -> int:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({"http": f"http://127.0.0.1:{proxy_port}"}))
    try:
        with opener.open(urllib.request.Request(url, data=data), timeout=15) as resp:
            resp.read()
            status: int = resp.status
            return status
    except urllib.error.HTTPError as err:  # squid's own error pages (403, 503) and the origin's 404
        err.read()
        return err.code


def _garbage(proxy_port: int) -> bytes:
    """Not HTTP at all: squid answers with an error page and logs an `error:invalid-request` line."""
    with socket.create_connection(("127.0.0.1", proxy_port), timeout=15) as conn:
        conn.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        reply = b""
        while chunk := conn.recv(65536):
            reply += chunk
    return reply.split(b"\r\n", 1)[0]


def _parse(path: Path, logformat: str | None) -> pd.DataFrame:
    batches = list(read_batches(SquidCollector(logformat=logformat), path, None, final=True))
    assert [q.reason for b in batches for q in b.quarantined] == []
    assert sum(b.blank_lines for b in batches) == 0
    return pd.concat([b.frame for b in batches], ignore_index=True)


def test_real_squid_native_and_custom_logformat(squid: Squid, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("no_proxy", "NO_PROXY"):  # urllib would go around the proxy for loopback addresses
        monkeypatch.delenv(var, raising=False)
    origin = f"http://127.0.0.1:{squid.origin_port}"
    email_query = urllib.parse.urlencode({"email": "jane.doe@example.com", "q": "1"})
    requests = [  # (url, body, expected status)
        (f"{origin}/index.html", None, 200),
        (f"{origin}/upload", POST_BODY, 201),
        (f"{origin}/search?{email_query}", None, 200),
        (f"{origin}/missing", None, 404),
        (f"http://{UNRESOLVABLE}/", None, 502),  # squid 5's ERR_DNS_FAIL (503 in older squids)
        (f"http://{BLOCKED}/secret", None, 403),
    ]
    started = pd.Timestamp(dt.datetime.now(dt.UTC)).floor("s")
    statuses = [_request(squid.port, url, body) for url, body, _ in requests]
    assert _garbage(squid.port).startswith(b"HTTP/1.1 400 ")
    ended = pd.Timestamp(dt.datetime.now(dt.UTC)).ceil("s")
    assert statuses[:4] + statuses[5:] == [200, 201, 200, 404, 403], squid.messages()
    assert statuses[4] in (502, 503), squid.messages()
    squid.stop()

    native = _parse(squid.native_log, None)
    custom = _parse(squid.custom_log, CUSTOM)
    for frame in (native, custom):
        # every request exactly once, in the order sent (one after the other), then the garbage
        assert len(frame) == len(requests) + 1
        assert list(frame["status"]) == [*statuses, 400]
        assert frame["method"].tolist()[:6] == ["GET", "POST", "GET", "GET", "GET", "GET"]
        assert list(frame["dest_host"].fillna("")) == ["127.0.0.1"] * 4 + [UNRESOLVABLE, BLOCKED, ""]
        assert list(frame["dest_port"].fillna(0)) == [squid.origin_port] * 4 + [80, 80, 0]
        assert set(frame["protocol"].dropna()) == {"http"} and set(frame["source_ip"]) == {"127.0.0.1"}
        assert frame["dest_ip"].iloc[:4].tolist() == ["127.0.0.1"] * 4  # the origin squid connected to
        assert frame["dest_ip"].iloc[4:].isna().all()  # nothing was connected to
        assert frame["egress"].tolist() == [True] * 4 + [False] * 3
        assert frame["pii"].fillna("").tolist() == ["", "", "email", "", "", "", ""]
        assert ((frame["ts"] >= started) & (frame["ts"] <= ended)).all()
        assert (frame["bytes_in"] > 0).all()
        assert frame["source_user"].isna().all()
    assert native["bytes_out"].isna().all()  # the native format has no request size
    assert (custom["bytes_out"] > 0).all()  # %>st: request line, headers and body
    assert custom["bytes_out"].iloc[1] > len(POST_BODY) > custom["bytes_out"].iloc[0]
    assert custom["bytes_in"].tolist() == native["bytes_in"].tolist()
    # %tl has whole seconds; the native time has milliseconds
    assert (custom["ts"] == native["ts"].dt.floor("s")).all()
