"""Alert channel: RFC 5424 syslog over UDP (RFC 5426), TCP (RFC 6587) or TLS (RFC 5425), CEF or JSON inside."""

from __future__ import annotations

import datetime as dt
import select
import socket
import ssl
from pathlib import Path
from typing import ClassVar

from monitor.alert.base import Alerter, AlertMessage, DeliveryError
from monitor.alert.cef import FORMATS, rfc5424, truncate_utf8
from monitor.alert.channels import SyslogChannel

# one datagram must hold one message (RFC 5426 §3.1); 65,000 leaves room under the 65,507-byte
# IPv4 UDP payload limit. Receivers on a real network may accept less (RFC 5426 asks only 480,
# SHOULD 2048): use tcp or tls for long alerts.
UDP_MAX = 65_000
# the connection is gone: worth one reconnect, since a receiver restart causes exactly this (over
# TLS a reset shows as an unexpected EOF, a receiver's orderly close as a zero return)
BROKEN = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, ssl.SSLEOFError, ssl.SSLZeroReturnError)
# TLS 1.3: how long a new connection waits for the receiver to accept our certificate (see _await_acceptance)
SETTLE_S = 0.25


class SyslogAlerter(Alerter):
    """Sends each alert as one RFC 5424 message.

    udp: one datagram per alert, on a connected socket so that an ICMP port unreachable from an
    earlier datagram is reported (ECONNREFUSED) by a later send. UDP confirms nothing: a receiver
    that is down is not detected unless that ICMP comes back, and the datagram it answers is lost.
    A record over UDP_MAX bytes has its MSG cut at a character boundary rather than fail: CEF
    keeps the fields before the cut, a cut JSON object no longer parses.
    tcp / tls: RFC 6587 octet counting (`MSG-LEN SP SYSLOG-MSG`) on one connection kept open across
    sends. Before each send the connection is checked for a close by the receiver (a syslog
    receiver never writes, so anything readable means EOF or reset) and reopened; a send that
    still finds it broken reconnects once more. Neither protocol acknowledges messages: one that
    goes out in the instant the receiver dies can be lost, and a resend after reconnecting can
    repeat one; the structured-data `key` (the idempotency key) lets the receiver drop repeats.
    """

    name: ClassVar[str] = "syslog"

    @classmethod
    def from_channel(cls, cfg: SyslogChannel, base_dir: Path) -> SyslogAlerter:
        return cls(cfg, base_dir)

    def __init__(self, cfg: SyslogChannel, base_dir: Path) -> None:
        self.cfg = cfg
        self.ca_file, self.cert_file, self.key_file = (
            _resolve(f, base_dir) for f in (cfg.ca_file, cfg.cert_file, cfg.key_file)
        )
        self.hostname = socket.gethostname()
        self.where = f"syslog channel {cfg.name!r} ({cfg.transport}://{cfg.host}:{cfg.effective_port})"
        self._sock: socket.socket | None = None
        self._tls: ssl.SSLContext | None = None

    def send(self, alert: AlertMessage) -> None:
        try:
            if self.cfg.transport == "udp":
                self._send_udp(self._record(alert, UDP_MAX))
            else:
                record = self._record(alert, None)
                self._send_stream(str(len(record)).encode("ascii") + b" " + record)
        except DeliveryError:
            raise
        except Exception as exc:  # a formatting or library surprise must still leave the alert in the outbox
            self.close()
            raise DeliveryError(f"{self.where}: {_reason(exc)}") from exc

    def close(self) -> None:
        if self._sock is not None:
            sock, self._sock = self._sock, None
            sock.close()

    # ------------------------------------------------------------------ message

    def _record(self, alert: AlertMessage, limit: int | None) -> bytes:
        """The RFC 5424 record; over `limit` bytes, the MSG is cut (at a character boundary) to fit."""
        msg = FORMATS[self.cfg.format](alert)
        now = dt.datetime.now(dt.UTC)
        record = self._build(alert, msg, now)
        if limit is not None and len(record) > limit:
            msg = _trim(truncate_utf8(msg, len(msg.encode("utf-8")) - (len(record) - limit)))
            record = self._build(alert, msg, now)
        return record

    def _build(self, alert: AlertMessage, msg: str, now: dt.datetime) -> bytes:
        cfg = self.cfg
        return rfc5424(alert, msg=msg, facility=cfg.facility, app_name=cfg.app_name, hostname=self.hostname, now=now)

    # ------------------------------------------------------------------ transports

    def _send_udp(self, record: bytes) -> None:
        try:
            if self._sock is None:
                self._sock = self._connect_udp()
            self._sock.send(record)
        except OSError as exc:
            # a new socket next time: the pending error is reported once, the address may change
            self.close()
            raise DeliveryError(f"{self.where}: {_reason(exc)}") from exc

    def _connect_udp(self) -> socket.socket:
        family, kind, proto, _, addr = socket.getaddrinfo(
            self.cfg.host, self.cfg.effective_port, type=socket.SOCK_DGRAM
        )[0]
        sock = socket.socket(family, kind, proto)
        try:
            sock.settimeout(self.cfg.timeout_s)
            sock.connect(addr)
        except OSError:
            sock.close()
            raise
        return sock

    def _send_stream(self, frame: bytes) -> None:
        if self._sock is not None and _peer_closed(self._sock, self.cfg.timeout_s):
            self.close()
        reconnected = self._sock is None
        try:
            self._sock = self._sock or self._connect_stream()
            self._sock.sendall(frame)
            return
        except BROKEN as exc:
            self.close()
            if reconnected:
                raise DeliveryError(f"{self.where}: {_reason(exc)}") from exc
        except OSError as exc:
            # a timeout can leave half a frame on the wire: only a new connection resynchronises
            self.close()
            raise DeliveryError(f"{self.where}: {_reason(exc)}") from exc
        self._retry(frame)

    def _retry(self, frame: bytes) -> None:
        try:
            self._sock = self._connect_stream()
            self._sock.sendall(frame)
        except OSError as exc:
            self.close()
            raise DeliveryError(f"{self.where}: after reconnecting: {_reason(exc)}") from exc

    def _connect_stream(self) -> socket.socket:
        ctx = self._context() if self.cfg.transport == "tls" else None
        raw = socket.create_connection((self.cfg.host, self.cfg.effective_port), timeout=self.cfg.timeout_s)
        if ctx is None:
            return raw
        try:
            # the handshake runs here, under the connect timeout set above
            tls = ctx.wrap_socket(raw, server_hostname=self.cfg.server_name or self.cfg.host)
        except BaseException:
            raw.close()
            raise
        try:
            _await_acceptance(tls, min(self.cfg.timeout_s, SETTLE_S), self.cfg.timeout_s)
        except BaseException:
            tls.close()  # wrap_socket took over the descriptor from `raw`
            raise
        return tls

    def _context(self) -> ssl.SSLContext:
        if self._tls is None:
            try:
                ctx = ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)
                ctx.minimum_version = ssl.TLSVersion.TLSv1_2  # RFC 5425 as updated by RFC 9662
                if self.cert_file:
                    ctx.load_cert_chain(self.cert_file, self.key_file)
            except OSError as exc:  # ssl.SSLError is one too: a PEM file that does not parse
                files = ", ".join(f"{k} {v}" for k, v in self._tls_files().items() if v)
                raise DeliveryError(f"{self.where}: loading TLS files ({files}): {_reason(exc)}") from exc
            self._tls = ctx
        return self._tls

    def _tls_files(self) -> dict[str, Path | None]:
        return {"ca_file": self.ca_file, "cert_file": self.cert_file, "key_file": self.key_file}


def _resolve(name: str | None, base_dir: Path) -> Path | None:
    """A configured file, relative to the config file's directory."""
    if not name:
        return None
    path = Path(name).expanduser()
    return path if path.is_absolute() else base_dir / path


def _peer_closed(sock: socket.socket, timeout: float) -> bool:
    """Whether the receiver has closed or reset the connection (it never sends data, RFC 6587)."""
    sock.setblocking(False)
    try:
        data = sock.recv(1)
    except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
        return False  # nothing to read: still open
    except OSError:
        return True
    finally:
        sock.settimeout(timeout)
    return data == b""


def _await_acceptance(sock: ssl.SSLSocket, wait: float, timeout: float) -> None:
    """In TLS 1.3 the client's handshake ends before the server has checked the client certificate;
    a refusal comes as an alert afterwards, and whatever was sent meanwhile is lost without an
    error. So wait (briefly) for the server's first post-handshake message: session tickets mean
    accepted, an alert raises here. A server that sends no tickets costs `wait` once per connection."""
    if sock.version() != "TLSv1.3":
        return  # TLS 1.2 checks the client certificate inside the handshake
    if not select.select([sock], [], [], wait)[0]:
        return
    sock.setblocking(False)
    try:
        if sock.recv(1) == b"":
            raise ConnectionResetError("the receiver closed the connection after the TLS handshake")
    except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
        pass  # a session ticket, no application data: accepted
    finally:
        sock.settimeout(timeout)


def _trim(msg: str) -> str:
    """A cut CEF extension must not end in half of a `\\x` escape."""
    tail = len(msg) - len(msg.rstrip("\\"))
    return msg[:-1] if tail % 2 else msg


def _reason(exc: BaseException) -> str:
    """The OS error in words, e.g. "[Errno 111] Connection refused" or the TLS verify failure."""
    if isinstance(exc, ssl.SSLCertVerificationError) and exc.verify_message:
        return f"TLS certificate verify failed: {exc.verify_message}"
    return str(exc) or type(exc).__name__
