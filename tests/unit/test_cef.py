"""Alert stage: the CEF, JSON and RFC 5424 renderings of an alert (monitor/alert/cef.py), checked by decoding them."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import socket
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import monitor
from monitor.alert.base import AlertMessage
from monitor.alert.cef import (
    BOM,
    cef_message,
    epoch_ms,
    escape_extension,
    escape_header,
    json_message,
    rfc5424,
    sd_escape,
    sd_name,
    truncate_utf8,
)
from tests.support.syslogd import parse_cef, parse_rfc5424

NOW = dt.datetime(2026, 12, 3, 10, 0, 0, 123456, tzinfo=dt.UTC)
# `date -u -d 2026-12-03T10:00:00Z +%s`, and 09:00 / 09:59 for first and last seen
CREATED_MS, FIRST_MS, LAST_MS = 1796292000000, 1796288400000, 1796291940000


def payload(**changes: Any) -> dict[str, Any]:
    p: dict[str, Any] = {
        "kind": "unauthorized_transfer",
        "system": "checkout",
        "data_categories": ["email", "payment"],
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
        "requests": 12,
        "first_seen": "2026-12-03T09:00:00+00:00",
        "last_seen": "2026-12-03T09:59:00",  # naive: the store's UTC
        "sample_origin": "squid/access.log:17",
    }
    p.update(changes)
    return p


def alert(
    severity: str = "high", summary: str = "UNAUTHORIZED transfer [high]: checkout -> api.example", **p: Any
) -> AlertMessage:
    return AlertMessage(
        id=1,
        dedup_key="unauthorized|checkout|api.example|2026-12-03",
        created_at="2026-12-03T10:00:00+00:00",
        severity=severity,
        summary=summary,
        payload=payload(**p),
    )


def cef(a: AlertMessage, **kw: Any) -> tuple[list[str], dict[str, str]]:
    return parse_cef(cef_message(a, **kw))


# --------------------------------------------------------------------------- CEF


def test_cef_header_and_standard_keys() -> None:
    a = alert()
    header, ext = cef(a)
    assert header == [
        "0", "xborder", "xborder", monitor.__version__, "gdpr.art44.unauthorized",
        "UNAUTHORIZED transfer [high]: checkout -> api.example", "8",
    ]  # fmt: skip
    assert ext["rt"] == str(CREATED_MS)
    assert (ext["start"], ext["end"]) == (str(FIRST_MS), str(LAST_MS))
    assert ext["externalId"] == a.idempotency_key
    assert ext["dhost"] == "api.example" and ext["dst"] == "203.0.113.7" and "c6a3" not in ext
    assert ext["cnt"] == "12" and ext["cat"] == "GDPR Art. 44" and ext["outcome"] == "unauthorized"
    assert ext["msg"] == a.summary
    labelled = {ext[f"cs{n}Label"]: ext[f"cs{n}"] for n in range(1, 7)}
    assert labelled == {
        "system": "checkout",
        "dataCategories": "email,payment",
        "rule": "gdpr.art44.unauthorized at rules/gdpr/chapter5.yaml:40",
        "country": "US",
        "legalBasis": "GDPR Art. 44",
        "evidence": "pack sha256:0f1e; sample squid/access.log:17",
    }


def test_epoch_ms() -> None:
    assert epoch_ms("2026-12-03T10:00:00.999999+00:00") == CREATED_MS + 999  # truncated, no float error
    assert epoch_ms("2026-12-03T12:00:00+02:00") == epoch_ms("2026-12-03T10:00:00") == CREATED_MS
    assert epoch_ms("yesterday") is None and epoch_ms(None) is None


def test_cef_keys_come_in_one_stable_order() -> None:
    keys = list(cef(alert())[1])
    assert keys[:7] == ["rt", "start", "end", "externalId", "cat", "outcome", "msg"]
    assert keys == list(cef(alert(requests=99, system="other"))[1])
    assert keys.index("dhost") < keys.index("cnt") < keys.index("cs1") < keys.index("cs6Label")


def test_cef_ipv6_destination_goes_to_c6a3_and_bad_addresses_nowhere() -> None:
    _, ext = cef(alert(dest_ip="2001:db8::7", source_ips=["10.1.2.3", "10.9.9.9"], source_users=["alice"]))
    assert "dst" not in ext and ext["c6a3"] == "2001:db8::7" and ext["c6a3Label"] == "Destination IPv6 Address"
    assert ext["src"] == "10.1.2.3" and ext["suser"] == "alice"
    _, ext = cef(alert(dest_ip="not-an-ip", dest_host=None, source_ips=["fe80::1"]))
    assert not {"dst", "c6a3", "dhost", "src"} & set(ext) and ext["c6a2"] == "fe80::1"


def test_cef_formats_optional_keys_and_ignores_unknown_ones() -> None:
    extra: dict[str, Any] = {
        "bytes_in": 10, "bytes_out": 2048, "provider": "AWS", "provider_seat": "us-east-1",
        "located_country": "IE", "explain": {"why": "no SCC"}, "runbook_url": "https://runbooks.example/x?a=1",
        "evidence": ["squid:17", "squid:18"], "some_future_key": object(), "basis": "scc",
    }  # fmt: skip
    _, ext = cef(alert(**extra))
    assert (ext["in"], ext["out"]) == ("10", "2048")
    assert ext["flexString1"] == "AWS / us-east-1" and ext["flexString1Label"] == "provider"
    assert ext["flexString2"] == "https://runbooks.example/x?a=1"
    assert ext["cs4"] == "US; located IE" and ext["cs5"] == "GDPR Art. 44; scc"
    assert ext["reason"] == '{"why":"no SCC"}'
    assert ext["cs6"].endswith("evidence squid:17,squid:18")
    assert not any("future" in v for v in ext.values())
    _, ext = cef(alert(evidence=[{"line": 17, "file": "squid"}]))
    assert ext["cs6"].endswith('evidence [{"file":"squid","line":17}]')


def test_cef_without_a_transfer_payload() -> None:
    a = AlertMessage(2, "lockout|x", "2026-12-03T10:00:00+00:00", "critical", "LOCKOUT", {"kind": "lockout_suspected"})
    header, ext = parse_cef(cef_message(a))
    assert header[4] == "lockout_suspected" and header[6] == "10"
    assert ext == {
        "rt": str(CREATED_MS),
        "externalId": a.idempotency_key,
        "cat": "lockout_suspected",
        "outcome": "lockout",
        "msg": "LOCKOUT",
    }


@pytest.mark.parametrize(
    ("severity", "level"), [("info", 1), ("low", 3), ("medium", 5), ("high", 8), ("critical", 10), ("bogus", 1)]
)
def test_cef_severity(severity: str, level: int) -> None:
    assert cef(alert(severity=severity))[0][6] == str(level)


def test_header_escaping() -> None:
    assert escape_header("a|b\\c") == "a\\|b\\\\c"
    assert escape_header("two\nlines\r\nand\rmore") == "two lines and more"
    header, _ = cef(alert(summary="x|y \\ z=1\nnext"), vendor="V|endor", product="P\\roduct")
    assert header[1:3] == ["V|endor", "P\\roduct"]
    assert header[5] == "x|y \\ z=1 next"  # "=" needs no escape in the header, newline may not stay


def test_extension_escaping() -> None:
    assert escape_extension("a=b\\c|d\r\ne") == "a\\=b\\\\c|d\\r\\ne"


def test_name_and_msg_are_truncated_to_the_cef_limits() -> None:
    header, ext = cef(alert(summary="é" * 5000))
    assert len(header[5]) == 512 and header[5].endswith("…")
    assert len(ext["msg"]) == 1023 and ext["msg"].startswith("é" * 1022)


TEXT = st.text(min_size=0, max_size=300)  # any code point Hypothesis makes: = \ | CR LF, unicode, controls


@settings(max_examples=300, deadline=None)
@given(summary=TEXT, system=TEXT, host=TEXT)
def test_extension_values_survive_a_round_trip(summary: str, system: str, host: str) -> None:
    _, ext = cef(alert(summary=summary, system=system, dest_host=host))
    assert ext["msg"] == summary
    assert ext.get("cs1", "") == system  # an empty value is left out
    assert ext.get("dhost", "") == host
    assert ext["externalId"].startswith("xborder-1-")  # the keys after them still parse


@settings(max_examples=200, deadline=None)
@given(vendor=TEXT, rule=TEXT)
def test_header_fields_survive_a_round_trip_but_for_newlines(vendor: str, rule: str) -> None:
    header, ext = cef(alert(rule_id=rule), vendor=vendor)
    assert header[1] == re.sub(r"\r\n|\r|\n", " ", vendor)
    assert header[4] == (re.sub(r"\r\n|\r|\n", " ", rule) or "unauthorized_transfer")
    assert ext["externalId"].startswith("xborder-1-")


def test_json_message_is_compact_sorted_unicode_and_round_trips() -> None:
    a = alert(summary="Übertragung → München", system="kasse")
    text = json_message(a)
    assert json.loads(text) == a.as_dict()
    assert "→" in text and ", " not in text.replace("Übertragung → München", "")
    assert list(json.loads(text)) == sorted(a.as_dict())


def test_json_message_writes_what_json_cannot_hold_as_text() -> None:
    text = json_message(alert(when=dt.date(2026, 12, 3)))
    assert json.loads(text)["when"] == "2026-12-03"


# --------------------------------------------------------------------------- RFC 5424

RFC5424_HEADER = re.compile(
    rb"^<(\d{1,3})>1 (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z) "
    rb"([!-~]{1,255}) ([!-~]{1,48}) ([!-~]{1,128}) ([!-~]{1,32}) \["
)


def record(a: AlertMessage, msg: str = "hello", **kw: Any) -> bytes:
    args: dict[str, Any] = {"facility": 13, "app_name": "xborder", "hostname": "mon-1", "procid": "4242", "now": NOW}
    return rfc5424(a, msg=msg, **{**args, **kw})


def test_rfc5424_header() -> None:
    m = RFC5424_HEADER.match(record(alert()))
    assert m is not None
    assert m.groups() == (
        b"107",
        b"2026-12-03T10:00:00.123456Z",
        b"mon-1",
        b"xborder",
        b"4242",
        b"unauthorized_transfer",
    )


@pytest.mark.parametrize(
    ("severity", "facility", "pri"),
    [("critical", 13, 106), ("high", 13, 107), ("medium", 4, 36), ("low", 0, 5), ("info", 23, 190), ("?", 1, 14)],
)
def test_pri_is_facility_times_8_plus_syslog_severity(severity: str, facility: int, pri: int) -> None:
    assert record(alert(severity=severity), facility=facility).startswith(f"<{pri}>1 ".encode())


def test_timestamp_is_utc() -> None:
    plus_two = NOW.astimezone(dt.timezone(dt.timedelta(hours=2)))
    assert b" 2026-12-03T10:00:00.123456Z " in record(alert(), now=plus_two)
    assert b".000000Z " in record(alert(), now=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))


def test_structured_data_bom_and_msg() -> None:
    a = alert()
    raw = record(a, msg="Grüße")
    assert raw.count(BOM) == 1 and raw.endswith(b"] " + BOM + "Grüße".encode())
    parsed = parse_rfc5424(raw)
    assert parsed["sd"] == {
        "xborder@32473": {
            "id": "1", "key": a.idempotency_key, "severity": "high", "system": "checkout", "dest": "api.example",
        }
    }  # fmt: skip
    assert parsed["bom"] and parsed["msg"] == "Grüße"


def test_header_fields_are_made_printable_ascii() -> None:
    raw = record(alert(kind="ünauthorized transfer of a very long kind name, longer than 32"), hostname="my host ü")
    m = RFC5424_HEADER.match(raw)
    assert m is not None
    assert m[3] == b"myhost" and m[6] == b"nauthorizedtransferofaverylongki"
    m = RFC5424_HEADER.match(record(alert(kind=None), hostname="", procid=" "))
    assert m is not None and m.groups()[2:6] == (b"-", b"xborder", b"-", b"alert")


def test_hostname_and_procid_default_to_this_machine_and_process() -> None:
    raw = rfc5424(alert(), msg="x", facility=13, app_name="xborder")
    parsed = parse_rfc5424(raw)
    assert parsed["procid"] == str(os.getpid())
    assert parsed["hostname"] == ("".join(c for c in socket.gethostname() if "!" <= c <= "~")[:255] or "-")


def test_sd_names_are_checked() -> None:
    assert sd_name("xborder@32473") == "xborder@32473"
    for bad in ("", "a b", "a=b", "a]", 'a"', "x" * 33, "é"):
        with pytest.raises(ValueError, match="SD-NAME"):
            sd_name(bad)


def test_sd_escape() -> None:
    assert sd_escape('a"b\\c]d[e') == 'a\\"b\\\\c\\]d[e'


@settings(max_examples=300, deadline=None)
@given(system=TEXT, dest=TEXT, msg=TEXT)
def test_structured_data_and_msg_survive_a_round_trip(system: str, dest: str, msg: str) -> None:
    parsed = parse_rfc5424(record(alert(system=system, dest_host=dest), msg=msg))
    params = parsed["sd"]["xborder@32473"]
    assert params.get("system", "") == system
    assert params.get("dest", "") == (dest or "203.0.113.7")  # no host: the address
    assert parsed["msg"] == msg and parsed["msgid"] == "unauthorized_transfer"


@given(text=st.text(max_size=50), limit=st.integers(min_value=-1, max_value=200))
def test_truncate_utf8_keeps_whole_characters(text: str, limit: int) -> None:
    cut = truncate_utf8(text, limit)
    assert text.startswith(cut) and len(cut.encode()) <= max(limit, 0)
    # the longest such prefix: one more character would not fit
    assert cut == text or len(text[: len(cut) + 1].encode()) > limit
