"""Alert stage: an alert rendered as an ArcSight CEF or JSON message inside an RFC 5424 syslog record."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import socket
from collections.abc import Callable, Iterator
from typing import Any

import monitor
from monitor.alert.base import AlertMessage
from monitor.alert.channels import OUTCOMES

CEF_SEVERITY = {"info": 1, "low": 3, "medium": 5, "high": 8, "critical": 10}
# syslog severities (RFC 5424 §6.2.1): 2 crit, 3 err, 4 warning, 5 notice, 6 info
SYSLOG_SEVERITY = {"critical": 2, "high": 3, "medium": 4, "low": 5, "info": 6}
# an unknown severity counts as info, as the channel routing does (monitor/alert/channels.py)
DEFAULT_SEVERITY = "info"
NAME_MAX = 512
# the limits of the CEF "Implementing ArcSight CEF" field table: custom strings 4000, most others 1023
CS_MAX = 4000
VALUE_MAX = 1023
# 32473 is the example Private Enterprise Number that RFC 5612 reserves for documentation; an
# operator with their own PEN can change it here. SD-IDs with "@" are private (RFC 5424 §6.3.2).
SD_ID = "xborder@32473"
BOM = b"\xef\xbb\xbf"
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _sev(alert: AlertMessage) -> str:
    return alert.severity if alert.severity in CEF_SEVERITY else DEFAULT_SEVERITY


def truncate(text: str, limit: int) -> str:
    """`text` cut to `limit` characters, the cut marked by an ellipsis."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def truncate_utf8(text: str, max_bytes: int) -> str:
    """The longest prefix of `text` whose UTF-8 encoding fits in `max_bytes` (no split characters)."""
    return text.encode("utf-8")[: max(max_bytes, 0)].decode("utf-8", "ignore")


def escape_header(value: str) -> str:
    """A CEF header field: backslash and pipe escaped; a header may not span lines, so CR/LF become spaces."""
    out = value.replace("\\", "\\\\").replace("|", "\\|")
    return out.replace("\r\n", " ").replace("\r", " ").replace("\n", " ")


def escape_extension(value: str) -> str:
    """A CEF extension value: backslash and equals escaped, CR/LF as the literal escapes \\r and \\n.
    Pipes need no escape after the header."""
    out = value.replace("\\", "\\\\").replace("=", "\\=")
    return out.replace("\r", "\\r").replace("\n", "\\n")


def epoch_ms(iso: Any) -> int | None:
    """Milliseconds since the epoch of an ISO 8601 time (naive counts as UTC, as the store writes it)."""
    if not isinstance(iso, str):
        return None
    try:
        t = dt.datetime.fromisoformat(iso)
    except ValueError:
        return None
    t = t if t.tzinfo else t.replace(tzinfo=dt.UTC)
    return (t - EPOCH) // dt.timedelta(milliseconds=1)  # integer arithmetic: no float rounding


def _text(value: Any) -> str | None:
    """A payload value as one string: flat lists joined by commas, anything nested as compact JSON; None if empty."""
    if value is None or value == "" or (isinstance(value, list | tuple | dict) and not value):
        return None
    if isinstance(value, list | tuple) and not any(isinstance(v, list | tuple | dict) for v in value):
        return ",".join(str(v) for v in value)
    if isinstance(value, list | tuple | dict):
        return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return str(value)


def _first(value: Any) -> str | None:
    return _text(value[0]) if isinstance(value, list | tuple) and value else _text(value)


def _ip(value: Any) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(str(value))
    except ValueError:
        return None


def outcome(payload: dict[str, Any]) -> str | None:
    """The verdict's outcome: the payload's own, else the first word of its kind ("unauthorized_transfer")."""
    if payload.get("outcome"):
        return str(payload["outcome"])
    head = str(payload.get("kind") or "").split("_")[0]
    return head if head in OUTCOMES else None


def _law(p: dict[str, Any]) -> str:
    """Which law the payload's article belongs to: NIS2 for rules under nis2., else GDPR."""
    return "NIS2" if str(p.get("rule_id") or "").startswith("nis2.") else "GDPR"


def _joined(*parts: str | None, sep: str = "; ") -> str | None:
    kept = [p for p in parts if p]
    return sep.join(kept) if kept else None


def _custom(p: dict[str, Any]) -> Iterator[tuple[str, str, str | None]]:
    """The six custom strings: (number, label, value)."""
    rule = _text(p.get("rule_id"))
    loc = _text(p.get("rule_location"))
    located = _text(p.get("located_country"))
    country = _text(p.get("country"))
    if located and located != country:
        country = _joined(country, f"located {located}")
    article = _text(p.get("article"))
    evidence = _joined(
        f"pack {p['pack_hash']}" if p.get("pack_hash") else None,
        f"sample {p['sample_origin']}" if p.get("sample_origin") else None,
        f"evidence {_text(p['evidence'])}" if p.get("evidence") else None,
    )
    yield "1", "system", _text(p.get("system"))
    yield "2", "dataCategories", _text(p.get("data_categories"))
    yield "3", "rule", _joined(rule, f"at {loc}" if loc else None, sep=" ")
    yield "4", "country", country
    yield "5", "legalBasis", _joined(f"{_law(p)} Art. {article}" if article else None, _text(p.get("basis")))
    yield "6", "evidence", evidence


def _address_fields(p: dict[str, Any]) -> Iterator[tuple[str, str | None]]:
    # CEF dst/src take IPv4 only; IPv6 goes to the custom IPv6 slots (c6a2 source, c6a3 destination)
    dst, src = _ip(p.get("dest_ip")), _ip(_first(p.get("source_ips")))
    yield "dhost", _text(p.get("dest_host"))
    yield "dst", str(dst) if dst and dst.version == 4 else None
    yield "c6a3", str(dst) if dst and dst.version == 6 else None
    yield "c6a3Label", "Destination IPv6 Address" if dst and dst.version == 6 else None
    yield "src", str(src) if src and src.version == 4 else None
    yield "c6a2", str(src) if src and src.version == 6 else None
    yield "c6a2Label", "Source IPv6 Address" if src and src.version == 6 else None
    yield "suser", _first(p.get("source_users"))


def _extension_fields(alert: AlertMessage) -> Iterator[tuple[str, str | None]]:
    """(key, value) in the one stable order; None values are left out."""
    p = alert.payload
    article = _text(p.get("article"))
    yield "rt", _text(epoch_ms(alert.created_at))
    yield "start", _text(epoch_ms(p.get("first_seen")))
    yield "end", _text(epoch_ms(p.get("last_seen")))
    yield "externalId", alert.idempotency_key
    yield "cat", f"{_law(p)} Art. {article}" if article else _text(p.get("kind"))
    yield "outcome", outcome(p)
    yield "msg", alert.summary
    yield from _address_fields(p)
    yield "cnt", _text(p.get("requests"))
    yield "in", _text(p.get("bytes_in"))
    yield "out", _text(p.get("bytes_out"))
    yield "reason", _text(p.get("explain"))
    for n, label, value in _custom(p):
        yield f"cs{n}", value
        yield f"cs{n}Label", label if value is not None else None
    yield "flexString1", _joined(_text(p.get("provider")), _text(p.get("provider_seat")), sep=" / ")
    yield "flexString1Label", "provider" if p.get("provider") or p.get("provider_seat") else None
    yield "flexString2", _text(p.get("runbook_url"))
    yield "flexString2Label", "runbook" if p.get("runbook_url") else None


def signature_id(alert: AlertMessage) -> str:
    """What a SIEM groups by: the rule that fired, else the kind of alert."""
    return _text(alert.payload.get("rule_id")) or _text(alert.payload.get("kind")) or "alert"


def cef_message(
    alert: AlertMessage, *, vendor: str = "xborder", product: str = "xborder", version: str = monitor.__version__
) -> str:
    """`CEF:0|Vendor|Product|Version|SignatureID|Name|Severity|Extension` for one alert."""
    header = [vendor, product, version, signature_id(alert), truncate(alert.summary, NAME_MAX)]
    fields = [escape_header(h) for h in header] + [str(CEF_SEVERITY[_sev(alert)])]
    ext = " ".join(
        f"{key}={escape_extension(truncate(value, CS_MAX if key.startswith('cs') else VALUE_MAX))}"
        for key, value in _extension_fields(alert)
        if value is not None
    )
    return "CEF:0|" + "|".join(fields) + "|" + ext


def json_message(alert: AlertMessage) -> str:
    """The alert as one compact JSON object; anything JSON cannot hold is written as its str()."""
    return json.dumps(alert.as_dict(), sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)


def _printable(value: str, limit: int) -> str:
    """An RFC 5424 header field: printable US-ASCII only (%d33-126), at most `limit`, "-" if nothing is left."""
    kept = "".join(c for c in value if "!" <= c <= "~")[:limit]
    return kept or "-"


def sd_name(name: str) -> str:
    """An SD-ID or PARAM-NAME, checked: 1-32 printable ASCII characters, none of `= ] "` or space."""
    if not (1 <= len(name) <= 32) or any(not ("!" <= c <= "~") or c in '=]"' for c in name):
        raise ValueError(f"not an RFC 5424 SD-NAME: {name!r}")
    return name


def sd_escape(value: str) -> str:
    """A PARAM-VALUE (RFC 5424 §6.3.3): `"`, `\\` and `]` are the characters that must be escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def structured_data(alert: AlertMessage) -> str:
    p = alert.payload
    params: list[tuple[str, str | None]] = [
        ("id", str(alert.id)),
        ("key", alert.idempotency_key),
        ("severity", alert.severity),
        ("system", _text(p.get("system"))),
        ("dest", _text(p.get("dest_host")) or _text(p.get("dest_ip"))),
    ]
    body = "".join(f' {sd_name(k)}="{sd_escape(v)}"' for k, v in params if v is not None)
    return f"[{sd_name(SD_ID)}{body}]"


def timestamp(now: dt.datetime | None = None) -> str:
    """RFC 3339 in UTC with microseconds: 2026-12-03T10:00:00.123456Z (fixed width)."""
    t = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def rfc5424(
    alert: AlertMessage,
    *,
    msg: str,
    facility: int,
    app_name: str,
    hostname: str | None = None,
    procid: str | None = None,
    now: dt.datetime | None = None,
) -> bytes:
    """`<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [SD] BOM MSG`, the MSG in UTF-8."""
    pri = facility * 8 + SYSLOG_SEVERITY[_sev(alert)]
    head = " ".join(
        [
            f"<{pri}>1",
            timestamp(now),
            _printable(socket.gethostname() if hostname is None else hostname, 255),
            _printable(app_name, 48),
            _printable(str(os.getpid()) if procid is None else procid, 128),
            _msgid(alert),
            structured_data(alert),
        ]
    )
    # the BOM tells the receiver the MSG is UTF-8 (RFC 5424 §6.4)
    return head.encode("utf-8") + b" " + BOM + msg.encode("utf-8")


def _msgid(alert: AlertMessage) -> str:
    kind = alert.payload.get("kind")
    msgid = _printable(str(kind), 32) if kind else "-"
    return "alert" if msgid == "-" else msgid


# the two message formats a syslog channel can carry, by the `format` config value
FORMATS: dict[str, Callable[[AlertMessage], str]] = {"cef": cef_message, "json": json_message}
