"""A real syslog receiver on loopback for the alert-channel tests: RFC 5426 UDP, RFC 6587 TCP, RFC 5425 TLS.

`Syslogd(transport)` listens on 127.0.0.1 on an ephemeral port, takes octet-counted frames
(`MSG-LEN SP SYSLOG-MSG`) on tcp/tls and one message per datagram on udp, and records each
message raw and parsed as RFC 5424. `stop()` closes the listener and every connection (the
receiver is down); `start()` again listens on the same port. TLS certificates come from the
openssl binary (`make_certs`), as there is no `cryptography` package here. `parse_cef` decodes a
CEF message the way a SIEM would, to check what the channel sent.
"""

from __future__ import annotations

import re
import socket
import ssl
import struct
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OPENSSL = "/usr/bin/openssl"
BOM = b"\xef\xbb\xbf"
POLL_S = 0.05  # how often the server threads look at the stop flag


# --------------------------------------------------------------------------- certificates


@dataclass(frozen=True)
class Certs:
    ca: Path  # the CA that signed server and client
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path  # a CA that signed nothing here: trusting only it must fail


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run([OPENSSL, *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def _ca(name: str, cn: str, d: Path) -> None:
    _openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "7", "-subj", f"/CN={cn}",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        "-addext", "subjectKeyIdentifier=hash", cwd=d,
    )  # fmt: skip


def _leaf(name: str, cn: str, ext: str, d: Path) -> None:
    (d / f"{name}.ext").write_text(
        f"{ext}\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
        "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid,issuer\n"
    )
    _openssl(
        "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={cn}", cwd=d,
    )  # fmt: skip
    _openssl(
        "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", f"{name}.pem", "-days", "7", "-extfile", f"{name}.ext", cwd=d,
    )  # fmt: skip


def make_certs(d: Path) -> Certs:
    """A CA, a server certificate for localhost and 127.0.0.1, a client certificate, and an unrelated CA."""
    d.mkdir(parents=True, exist_ok=True)
    _ca("ca", "xborder test CA", d)
    _ca("other-ca", "some other CA", d)
    _leaf("server", "localhost", "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth", d)
    _leaf("client", "xborder-client", "extendedKeyUsage=clientAuth", d)
    names = ("ca.pem", "server.pem", "server.key", "client.pem", "client.key", "other-ca.pem")
    return Certs(*(d / n for n in names))


# --------------------------------------------------------------------------- parsing

HEADER = re.compile(
    rb"<(?P<pri>\d{1,3})>(?P<version>[1-9]\d{0,2}) (?P<timestamp>\S+) (?P<hostname>\S{1,255}) "
    rb"(?P<app_name>\S{1,48}) (?P<procid>\S{1,128}) (?P<msgid>\S{1,32}) "
)
SD_NAME = re.compile(rb"[!#-<>-\\^-~]{1,32}")  # printable US-ASCII but = ] " (space is outside !-~)


def _sd_name(raw: bytes, i: int) -> tuple[str, int]:
    m = SD_NAME.match(raw, i)
    if not m:
        raise ValueError(f"SD-NAME expected at {i}")
    return m.group().decode("ascii"), m.end()


def _param_value(raw: bytes, i: int) -> tuple[str, int]:
    """A quoted PARAM-VALUE from its opening quote; `\\"`, `\\\\` and `\\]` unescape, any other `\\` stays."""
    if raw[i : i + 1] != b'"':
        raise ValueError(f"opening quote expected at {i}")
    out, i = bytearray(), i + 1
    while i < len(raw):
        c = raw[i : i + 1]
        if c == b"\\" and raw[i + 1 : i + 2] in (b'"', b"\\", b"]"):
            out += raw[i + 1 : i + 2]
            i += 2
        elif c == b'"':
            return out.decode("utf-8"), i + 1
        else:
            out += c
            i += 1
    raise ValueError("unterminated PARAM-VALUE")


def _structured_data(raw: bytes, i: int) -> tuple[dict[str, dict[str, str]], int]:
    if raw[i : i + 1] == b"-":
        return {}, i + 1
    sd: dict[str, dict[str, str]] = {}
    while raw[i : i + 1] == b"[":
        sd_id, i = _sd_name(raw, i + 1)
        params = sd.setdefault(sd_id, {})
        while raw[i : i + 1] == b" ":
            name, i = _sd_name(raw, i + 1)
            if raw[i : i + 1] != b"=":
                raise ValueError(f"'=' expected at {i}")
            params[name], i = _param_value(raw, i + 1)
        if raw[i : i + 1] != b"]":
            raise ValueError(f"']' expected at {i}")
        i += 1
    if not sd:
        raise ValueError("STRUCTURED-DATA expected")
    return sd, i


def parse_rfc5424(raw: bytes) -> dict[str, Any]:
    """One RFC 5424 message as a dict; raises ValueError if it is not one."""
    m = HEADER.match(raw)
    if not m:
        raise ValueError(f"not an RFC 5424 header: {raw[:80]!r}")
    sd, i = _structured_data(raw, m.end())
    rest = raw[i:]
    if rest and not rest.startswith(b" "):
        raise ValueError("SP expected before MSG")
    body = rest[1:]
    pri = int(m["pri"])
    return {
        "pri": pri,
        "facility": pri // 8,
        "severity": pri % 8,
        **{k: v.decode("ascii") for k, v in m.groupdict().items() if k != "pri"},
        "sd": sd,
        "bom": body.startswith(BOM),
        "msg": body.removeprefix(BOM).decode("utf-8"),  # strict: a bad byte is a failure
    }


def _cef_unescape(value: str, escapes: dict[str, str]) -> str:
    out, i = [], 0
    while i < len(value):
        if value[i] == "\\":
            nxt = value[i + 1 : i + 2]
            if nxt not in escapes:
                raise ValueError(f"bad CEF escape \\{nxt} in {value!r}")
            out.append(escapes[nxt])
            i += 2
        else:
            out.append(value[i])
            i += 1
    return "".join(out)


def _cef_split(text: str, sep: str, limit: int) -> list[str]:
    """`text` split at unescaped `sep`, at most `limit` times; escapes are kept for the caller."""
    parts: list[str] = []
    start, i = 0, 0
    while i < len(text) and len(parts) < limit:
        if text[i] == "\\":
            i += 2
            continue
        if text[i] == sep:
            parts.append(text[start:i])
            start = i + 1
        i += 1
    return [*parts, text[start:]]


def parse_cef(line: str) -> tuple[list[str], dict[str, str]]:
    """A CEF message as its 7 header fields and its extension (key -> unescaped value), keys in order."""
    if not line.startswith("CEF:"):
        raise ValueError("not CEF")
    fields = _cef_split(line[4:], "|", 7)
    if len(fields) != 8:
        raise ValueError("CEF needs 7 header fields")
    header = [_cef_unescape(f, {"\\": "\\", "|": "|"}) for f in fields[:7]]
    # every unescaped "=" ends a key: the run of key characters before it, after a space or the start;
    # so piece n (n > 0) is "VALUE KEY" of the keys n-1 and n, the last piece a value alone
    pieces = _cef_split(fields[7], "=", len(fields[7]))
    values: dict[str, str] = {}
    key: str | None = None
    for n, piece in enumerate(pieces):
        m = re.search(r"(?:\A| )([A-Za-z0-9_]+)\Z", piece) if n < len(pieces) - 1 else None
        if n < len(pieces) - 1 and m is None:
            raise ValueError(f"no key before '=' #{n + 1} in {fields[7]!r}")
        value = piece[: m.start()] if m else piece
        if key is not None:
            values[key] = _cef_unescape(value, {"\\": "\\", "=": "=", "n": "\n", "r": "\r"})
        elif value:
            raise ValueError(f"text before the first key: {value!r}")
        key = m.group(1) if m else None
    return header, values


# --------------------------------------------------------------------------- the receiver


@dataclass
class Received:
    raw: bytes
    peer: tuple[Any, ...]
    connection: int  # which accepted connection (0 for udp): sends that reuse one share it
    parsed: dict[str, Any] | None = None
    error: str | None = None
    at: float = field(default_factory=time.monotonic)  # when it was received (bench/alert_latency.py)


@dataclass
class Syslogd:
    transport: str  # udp, tcp or tls
    certs: Certs | None = None  # tls: required
    require_client_cert: bool = False
    host: str = "127.0.0.1"
    port: int = 0  # 0: an ephemeral port, chosen by the first start() and kept for the next
    messages: list[Received] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # framing, TLS handshake: what a receiver would log
    connections: int = 0

    def __post_init__(self) -> None:
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._listener: socket.socket | None = None
        self._reset = False

    def __enter__(self) -> Syslogd:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> Syslogd:
        kind = socket.SOCK_DGRAM if self.transport == "udp" else socket.SOCK_STREAM
        sock = socket.socket(socket.AF_INET, kind)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # rebind while old connections linger
        sock.bind((self.host, self.port))
        self.port = sock.getsockname()[1]
        sock.settimeout(POLL_S)
        if kind == socket.SOCK_STREAM:
            sock.listen(16)
        self._listener, self._stop = sock, threading.Event()
        target = self._serve_udp if self.transport == "udp" else self._accept
        self._spawn(target, sock)
        return self

    def stop(self, reset: bool = False) -> None:
        """The receiver goes down: no listener, every connection closed (with `reset`, by a TCP RST, as
        a crashed host's would be, instead of a FIN), all threads ended."""
        self._reset = reset
        self._stop.set()
        for t in self._threads:
            t.join(timeout=5)
        self._threads = []
        if self._listener is not None:
            self._listener.close()
            self._listener = None

    def wait_for(self, n: int, timeout: float = 5.0) -> list[Received]:
        """The first `n` messages, waiting up to `timeout` seconds for them; AssertionError if fewer come."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.messages) >= n, timeout):
                raise AssertionError(f"{len(self.messages)} of {n} syslog messages after {timeout}s; {self.errors}")
            return list(self.messages[:n])

    def _spawn(self, target: Any, *args: Any) -> None:
        t = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(t)
        t.start()

    def _record(self, raw: bytes, peer: tuple[Any, ...], connection: int) -> None:
        r = Received(raw, peer, connection)
        try:
            r.parsed = parse_rfc5424(raw)
        except ValueError as exc:
            r.error = str(exc)
        with self._cond:
            self.messages.append(r)
            self._cond.notify_all()

    def _serve_udp(self, sock: socket.socket) -> None:
        while not self._stop.is_set():
            try:
                raw, peer = sock.recvfrom(65535)
            except TimeoutError:
                continue
            self._record(raw, peer, 0)

    def _accept(self, listener: socket.socket) -> None:
        while not self._stop.is_set():
            try:
                conn, peer = listener.accept()
            except TimeoutError:
                continue
            with self._cond:
                self.connections += 1
                number = self.connections
            # the thread list is only changed here while running, and read by stop() after the flag
            self._spawn(self._serve_stream, conn, peer, number)

    def _tls(self, conn: socket.socket) -> socket.socket:
        assert self.certs is not None, "tls needs certs"
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(self.certs.server_cert, self.certs.server_key)
        if self.require_client_cert:
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(self.certs.ca)
        conn.settimeout(5)
        tls = ctx.wrap_socket(conn, server_side=True)
        tls.settimeout(POLL_S)
        return tls

    def _serve_stream(self, conn: socket.socket, peer: tuple[Any, ...], number: int) -> None:
        try:
            if self.transport == "tls":
                conn = self._tls(conn)
            conn.settimeout(POLL_S)
            self._read_frames(conn, peer, number)
        except (OSError, ValueError) as exc:
            with self._cond:
                self.errors.append(f"connection {number}: {exc}")
        finally:
            if self._reset:  # linger on, timeout 0: close() sends RST
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()

    def _read_frames(self, conn: socket.socket, peer: tuple[Any, ...], number: int) -> None:
        """Octet-counted frames until EOF or stop; a frame that does not start with MSG-LEN SP ends the connection."""
        buf = b""
        while not self._stop.is_set():
            try:
                chunk = conn.recv(65536)
            except TimeoutError:
                continue
            if not chunk:
                return
            buf += chunk
            while (m := re.match(rb"([1-9]\d{0,8}) ", buf)) and len(buf) >= m.end() + int(m[1]):
                end = m.end() + int(m[1])
                self._record(buf[m.end() : end], peer, number)
                buf = buf[end:]
            if buf and not re.match(rb"[1-9]\d{0,8}( |$)", buf):
                raise ValueError(f"bad octet-counting frame: {buf[:40]!r}")
