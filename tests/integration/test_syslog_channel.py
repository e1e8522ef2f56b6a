"""Alert stage: SyslogAlerter against a real loopback syslog receiver (tests/support/syslogd.py), udp, tcp, tls."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from monitor.alert import syslog
from monitor.alert.base import AlertMessage, DeliveryError
from monitor.alert.cef import json_message
from monitor.alert.channels import SyslogChannel
from monitor.alert.syslog import UDP_MAX, SyslogAlerter
from tests.support.syslogd import Certs, Syslogd, make_certs, parse_cef

SD = "xborder@32473"


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("syslog-certs"))


def alert(n: int = 1, summary: str | None = None, **extra: Any) -> AlertMessage:
    payload: dict[str, Any] = {
        "kind": "unauthorized_transfer",
        "system": "checkout",
        "data_categories": ["email"],
        "dest_host": "api.example",
        "dest_ip": "203.0.113.7",
        "country": "US",
        "article": "44",
        "basis": None,
        "rule_id": "gdpr.art44.unauthorized",
        "rule_location": "rules/gdpr/chapter5.yaml:40",
        "pack_hash": "sha256:0f1e",
        "severity": "high",
        "day": "2026-12-03",
        "requests": 3 + n,
        "first_seen": "2026-12-03T09:00:00+00:00",
        "last_seen": "2026-12-03T09:59:00+00:00",
        "sample_origin": "squid/access.log:17",
        **extra,
    }
    return AlertMessage(
        id=n,
        dedup_key=f"unauthorized|checkout|api.example|2026-12-{n:02d}",
        created_at="2026-12-03T10:00:00+00:00",
        severity="high",
        summary=summary or f"UNAUTHORIZED transfer [high]: checkout (email) -> api.example [US] #{n} | a=b \\ c",
        payload=payload,
    )


def channel(d: Syslogd, **kw: Any) -> SyslogChannel:
    cfg: dict[str, Any] = {"type": "syslog", "name": "siem", "host": d.host, "port": d.port, "transport": d.transport}
    cfg["timeout_s"] = 2
    return SyslogChannel.model_validate({**cfg, **kw})


@pytest.fixture
def alerters() -> Iterator[list[SyslogAlerter]]:
    """Alerters made by a test, closed after it."""
    made: list[SyslogAlerter] = []
    yield made
    for a in made:
        a.close()


def make(alerters: list[SyslogAlerter], d: Syslogd, base_dir: Path = Path("/"), **kw: Any) -> SyslogAlerter:
    a = SyslogAlerter(channel(d, **kw), base_dir)
    alerters.append(a)
    return a


def tls_kw(certs: Certs) -> dict[str, Any]:
    return {"ca_file": str(certs.ca), "server_name": "localhost"}


def check_cef(received: Any, a: AlertMessage, app_name: str = "xborder") -> None:
    assert received.error is None, received.error
    p = received.parsed
    assert p["pri"] == 13 * 8 + 3 and p["version"] == "1" and p["app_name"] == app_name
    assert p["msgid"] == "unauthorized_transfer" and p["bom"]
    assert p["sd"][SD]["key"] == a.idempotency_key and p["sd"][SD]["id"] == str(a.id)
    header, ext = parse_cef(p["msg"])
    assert header[4:7] == ["gdpr.art44.unauthorized", a.summary, "8"]
    assert ext["externalId"] == a.idempotency_key
    assert ext["msg"] == a.summary and ext["cnt"] == str(a.payload["requests"]) and ext["dhost"] == "api.example"


# --------------------------------------------------------------------------- delivery


@pytest.mark.parametrize("transport", ["udp", "tcp", "tls"])
def test_cef_arrives_parsed(transport: str, certs: Certs, alerters: list[SyslogAlerter]) -> None:
    with Syslogd(transport, certs) as d:
        kw = tls_kw(certs) if transport == "tls" else {}
        sender = make(alerters, d, app_name="xb-test", **kw)
        sent = [alert(1), alert(2), alert(3)]
        for a in sent:
            sender.send(a)
        got = d.wait_for(3)
    for r, a in zip(got, sent, strict=True):
        check_cef(r, a, app_name="xb-test")
    if transport != "udp":
        assert {r.connection for r in got} == {1} and d.connections == 1  # one connection kept open


@pytest.mark.parametrize("transport", ["udp", "tcp", "tls"])
def test_json_round_trips(transport: str, certs: Certs, alerters: list[SyslogAlerter]) -> None:
    a = alert(7, summary='Übertragung → München ]"\\', system='kasse "eu" ]')
    with Syslogd(transport, certs) as d:
        make(alerters, d, format="json", facility=4, **(tls_kw(certs) if transport == "tls" else {})).send(a)
        (r,) = d.wait_for(1)
    assert r.error is None and r.parsed is not None
    assert json.loads(r.parsed["msg"]) == a.as_dict()
    assert r.parsed["pri"] == 4 * 8 + 3
    assert r.parsed["sd"][SD]["system"] == 'kasse "eu" ]' and r.parsed["sd"][SD]["key"] == a.idempotency_key


@pytest.mark.parametrize("transport", ["tcp", "tls"])
def test_frames_count_octets_not_characters(transport: str, certs: Certs, alerters: list[SyslogAlerter]) -> None:
    """MSG-LEN counts bytes: with multi-byte characters a character count would cut the first frame
    short and leave the listener misframing the second."""
    sent = [alert(1, summary="Übertragung → München " * 20), alert(2)]
    with Syslogd(transport, certs) as d:
        sender = make(alerters, d, **(tls_kw(certs) if transport == "tls" else {}))
        for a in sent:
            sender.send(a)
        got = d.wait_for(2)
    assert d.errors == []
    for r, a in zip(got, sent, strict=True):
        check_cef(r, a)
        assert r.raw.endswith(b"cs6Label=evidence")  # the whole record, nothing of the next frame


def test_tls_with_client_certificate_and_relative_paths(certs: Certs, alerters: list[SyslogAlerter]) -> None:
    base = certs.ca.parent
    with Syslogd("tls", certs, require_client_cert=True) as d:
        kw = {"ca_file": certs.ca.name, "cert_file": certs.client_cert.name, "key_file": certs.client_key.name}
        make(alerters, d, base_dir=base, **kw).send(alert())  # host 127.0.0.1: the IP SAN is checked
        (r,) = d.wait_for(1)
        check_cef(r, alert())
        # no client certificate: TLS 1.3 refuses it after the client's handshake is done, and the
        # alerter must notice before it sends (else the alert is lost without an error)
        with pytest.raises(DeliveryError, match="certificate"):
            make(alerters, d, ca_file=str(certs.ca)).send(alert(2))
        time.sleep(0.1)
        assert len(d.messages) == 1 and any("certificate" in e for e in d.errors)


# --------------------------------------------------------------------------- failures


def test_tls_with_the_wrong_ca_fails(certs: Certs, alerters: list[SyslogAlerter]) -> None:
    with Syslogd("tls", certs) as d:
        with pytest.raises(DeliveryError) as err:
            make(alerters, d, ca_file=str(certs.other_ca)).send(alert())
        text = str(err.value)
        assert "'siem'" in text and f"tls://127.0.0.1:{d.port}" in text and "certificate verify failed" in text
        time.sleep(0.1)
        assert d.messages == []


def test_tls_with_the_wrong_server_name_fails(certs: Certs, alerters: list[SyslogAlerter]) -> None:
    with Syslogd("tls", certs) as d, pytest.raises(DeliveryError, match="certificate verify failed"):
        make(alerters, d, ca_file=str(certs.ca), server_name="wrong.example").send(alert())


def test_tls_with_a_missing_ca_file_names_it(certs: Certs, alerters: list[SyslogAlerter], tmp_path: Path) -> None:
    with Syslogd("tls", certs) as d, pytest.raises(DeliveryError, match=r"ca_file .*nowhere\.pem"):
        make(alerters, d, base_dir=tmp_path, ca_file="nowhere.pem").send(alert())


@pytest.mark.parametrize("transport", ["tcp", "tls"])
def test_receiver_down_then_restarted(transport: str, certs: Certs, alerters: list[SyslogAlerter]) -> None:
    d = Syslogd(transport, certs).start()
    try:
        sender = make(alerters, d, **(tls_kw(certs) if transport == "tls" else {}))
        sender.send(alert(1))
        d.wait_for(1)
        d.stop()
        with pytest.raises(DeliveryError) as err:
            sender.send(alert(2))
        text = str(err.value)
        assert "'siem'" in text and f"{transport}://127.0.0.1:{d.port}" in text and "Connection refused" in text
        d.start()  # same port
        sender.send(alert(3))  # the broken connection is replaced
        got = d.wait_for(2)
        assert got[1].parsed is not None and got[1].parsed["sd"][SD]["key"] == alert(3).idempotency_key
        assert d.connections == 2
    finally:
        d.stop()


@pytest.mark.parametrize("transport", ["tcp", "tls"])
def test_receiver_restart_between_sends_loses_nothing(
    transport: str, certs: Certs, alerters: list[SyslogAlerter]
) -> None:
    """The old connection is dead but the receiver is back: the next send reconnects and succeeds."""
    d = Syslogd(transport, certs).start()
    try:
        sender = make(alerters, d, **(tls_kw(certs) if transport == "tls" else {}))
        sender.send(alert(1))
        d.wait_for(1)
        d.stop()
        d.start()
        for n in (2, 3):
            sender.send(alert(n))
        got = d.wait_for(3)
        assert [r.parsed["sd"][SD]["id"] for r in got if r.parsed] == ["1", "2", "3"]
    finally:
        d.stop()


@pytest.mark.parametrize("transport", ["tcp", "tls"])
def test_a_reset_found_by_the_send_itself_reconnects_once(
    transport: str, certs: Certs, alerters: list[SyslogAlerter], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The receiver reset the connection just after the alerter checked it: the send gets
    ECONNRESET or EPIPE, reconnects once and delivers; with the receiver still down it reports both."""
    monkeypatch.setattr(syslog, "_peer_closed", lambda sock, timeout: False)
    d = Syslogd(transport, certs).start()
    try:
        sender = make(alerters, d, **(tls_kw(certs) if transport == "tls" else {}))
        sender.send(alert(1))
        d.wait_for(1)
        d.stop(reset=True)
        d.start()
        time.sleep(0.05)  # the RST reaches the alerter's socket
        sender.send(alert(2))
        got = d.wait_for(2)
        assert got[1].parsed is not None and got[1].parsed["sd"][SD]["id"] == "2" and d.connections == 2
        d.stop(reset=True)
        time.sleep(0.05)
        with pytest.raises(DeliveryError, match="after reconnecting: .*Connection refused"):
            sender.send(alert(3))
    finally:
        d.stop()


def test_udp_receiver_down_is_reported_by_a_later_send(alerters: list[SyslogAlerter]) -> None:
    d = Syslogd("udp").start()
    try:
        sender = make(alerters, d)
        sender.send(alert(1))
        d.wait_for(1)
        d.stop()
        # the first datagram is lost silently; the ICMP port unreachable it draws fails a later send
        with pytest.raises(DeliveryError, match=r"'siem' \(udp://127\.0\.0\.1:\d+\).*Connection refused"):
            for n in range(2, 50):
                sender.send(alert(n))
                time.sleep(0.02)
        d.start()
        sender.send(alert(99))
        got = d.wait_for(2)
        assert got[1].parsed is not None and got[1].parsed["sd"][SD]["id"] == "99"
    finally:
        d.stop()


def test_tcp_receiver_never_up(alerters: list[SyslogAlerter]) -> None:
    d = Syslogd("tcp").start()
    d.stop()
    with pytest.raises(DeliveryError, match=r"tcp://127\.0\.0\.1:\d+\): .*Connection refused"):
        make(alerters, d).send(alert())


def test_udp_long_message_is_truncated_to_valid_utf8(alerters: list[SyslogAlerter]) -> None:
    a = alert(summary="Übertragung €" * 8000)  # ~120 kB as JSON
    full = json_message(a)
    with Syslogd("udp") as d:
        make(alerters, d, format="json").send(a)
        (r,) = d.wait_for(1)
    assert len(full.encode()) > UDP_MAX >= len(r.raw) > UDP_MAX - 4  # cut where a character ends
    assert r.error is None and r.parsed is not None  # the listener decodes the MSG as strict UTF-8
    assert full.startswith(r.parsed["msg"]) and len(r.parsed["msg"]) > 30_000
    assert r.parsed["sd"][SD]["key"] == a.idempotency_key  # the header and SD are whole


def test_close_then_send_reconnects(alerters: list[SyslogAlerter]) -> None:
    with Syslogd("tcp") as d:
        sender = make(alerters, d)
        sender.send(alert(1))
        sender.close()
        sender.close()  # twice is harmless
        sender.send(alert(2))
        d.wait_for(2)
        assert d.connections == 2
