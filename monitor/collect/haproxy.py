"""Collect stage, HAProxy: `option httplog` / `option tcplog` lines (syslog prefix or raw) -> BATCH_SCHEMA rows."""

from __future__ import annotations

import zoneinfo
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from monitor.collect.arrowtext import elements, endpoint, per_unique, rsplit1, split_n
from monitor.collect.base import LineCollector, Parsed
from monitor.collect.chunkrows import Checks, Reject, in_years, parse_lines
from monitor.collect.pii import pii_kinds
from monitor.errors import UsageError
from monitor.records import is_ip

# HAProxy configuration manual, 8.2.2 (TCP) and 8.2.3 (HTTP log format), the default formats:
#   tcplog:  %ci:%cp [%t] %ft %b/%s %Tw/%Tc/%Tt %B %ts %ac/%fc/%bc/%sc/%rc %sq/%bq
#   httplog: %ci:%cp [%tr] %ft %b/%s %TR/%Tw/%Tc/%Tr/%Ta %ST %B %CC %CS %tsc %ac/%fc/%bc/%sc/%rc %sq/%bq
#            %hr %hs %{+Q}r
# after whatever syslog header the log went through ("Feb  6 12:14:14 localhost haproxy[14389]: ",
# or nothing with `log stdout format raw`). The captured headers %hr/%hs ("{a|b} {c}") appear only
# when captures are configured and may hold spaces; the quoted request line is always last (8.2.3)
# and the only field with a '"' in it (8.6). So: cut at the first '"', then take the fixed fields
# from the right of what precedes the first '{', whatever the syslog header looked like.
HTTP_FIELDS = ("client", "date", "frontend", "route", "timers", "status", "bytes", "cookie_req", "cookie_resp",
               "termination", "conns", "queues")  # fmt: skip
TCP_FIELDS = ("client", "date", "frontend", "route", "timers", "bytes", "termination", "conns", "queues")
_MONTHS = "Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec"
_RE_DATE = rf"^\[\d{{2}}/(?:{_MONTHS})/\d{{4}}:(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d(?:\.\d{{1,6}})?\]$"
_CHECKS = {  # field: (pattern in httplog, in tcplog, what it should be)
    "route": (r"^[^/]+/.+$", r"^[^/]+/.+$", "BACKEND/SERVER"),
    "timers": (r"^-?\d+/-?\d+/-?\d+/-?\d+/\+?-?\d+$", r"^-?\d+/-?\d+/\+?-?\d+$", "TR/Tw/Tc/Tr/Ta (tcplog: Tw/Tc/Tt)"),
    "status": (r"^-?\d{1,3}$", r"^$", "an HTTP status"),
    "bytes": (r"^\+?\d{1,18}$", r"^\+?\d{1,18}$", "a byte count"),
    "termination": (r"^[A-Za-z-]{4}$", r"^[A-Za-z-]{2}$", "a termination state like '----' (tcplog: '--')"),
    "conns": (r"^\d+/\d+/\d+/\d+/\+?\d+$",) * 2 + ("actconn/feconn/beconn/srv_conn/retries",),
    "queues": (r"^\d+/\d+$", r"^\d+/\d+$", "srv_queue/backend_queue"),
}
_SCHEMES = pa.array(["http", "https", "ws", "wss", "ftp"], pa.large_string())
_DEFAULT_PORTS = pa.array([80, 443, 80, 443, 21], pa.int32())
_STR = pa.large_string()
_NULL = pa.scalar(None, _STR)
_I32 = pa.int32()


def _s(value: str) -> pa.Scalar:
    return pa.scalar(value, _STR)


class HaproxyCollector(LineCollector):
    """HAProxy's default HTTP (`option httplog`) and TCP (`option tcplog`) log lines.

    Options: `timezone` — the zone HAProxy's local-time dates are in (a zoneinfo name, default
    UTC); `host_capture_index` — position of the Host header among the captured request headers
    (`capture request header Host ...`), so an origin-form request gets its destination host.

    bytes_in is bytes_read (%B, server to client, headers included); the default formats do not
    log request bytes (%U), so bytes_out is null. Tc = -1 (no connection to a server) and the
    pseudo-servers <NOSRV>, <STATS>, <CACHE> mean nothing left: egress is false.
    """

    name: ClassVar[str] = "haproxy"
    stateless: ClassVar[bool] = True  # no state from chunk to chunk: a file's chunks may be parsed at once
    description: ClassVar[str] = "HAProxy httplog/tcplog lines, with or without a syslog header"
    sample: ClassVar[bytes] = (
        # the HTTP and TCP examples of the HAProxy configuration manual (8.2.3, 8.2.2)
        b"Feb  6 12:14:14 localhost haproxy[14389]: 10.0.1.2:33317 [06/Feb/2009:12:14:14.655] http-in "
        b'static/srv1 10/0/30/69/109 200 2750 - - ---- 1/1/1/1/0 0/0 {1wt.eu} {} "GET /index.html HTTP/1.1"\n'
        b"Feb  6 12:12:56 localhost haproxy[14387]: 10.0.1.2:33313 [06/Feb/2009:12:12:51.443] fnt "
        b"bck/srv1 0/0/5007 212 -- 0/0/0/0/3 0/0\n"
        b"10.0.0.9:51000 [01/Mar/2024:10:00:00.000] fwd fwd/out 0/0/12/80/95 200 5120 - - ---- 3/3/1/1/0 0/0 "
        b'"CONNECT api.example.eu:443 HTTP/1.1"\n'
    )

    def __init__(self, timezone: str = "UTC", host_capture_index: int | str | None = None) -> None:
        self.timezone = _timezone(timezone)
        self.host_capture_index = _capture_index(host_capture_index)

    def parse_chunk(self, chunk: bytes, *, source: str, first_line: int, base_offset: int) -> Parsed:
        return parse_lines(self.name, chunk, source, first_line, base_offset, self._rows)

    def _rows(self, lines: pa.Array) -> tuple[np.ndarray[Any, Any], dict[str, pa.Array], list[Reject]]:
        if pc.any(pc.match_substring(lines, '\\"')).as_py():
            lines = pc.replace_substring(lines, '\\"', '"')  # syslog-ng escapes quotes; 8.6 says undo it
        http = pc.match_substring(lines, '"').to_numpy(zero_copy_only=False)
        idx_parts: list[np.ndarray[Any, Any]] = []
        raws: list[dict[str, pa.Array]] = []
        rejects: list[Reject] = []
        for mask, names in ((http, HTTP_FIELDS), (~http, TCP_FIELDS)):
            where = np.flatnonzero(mask)
            ok, raw = _fields(lines.take(pa.array(where, pa.int64())), names)
            why = f"not an HAProxy {'httplog' if names is HTTP_FIELDS else 'tcplog'} line: expected " + (
                " ".join(names) + (' [{headers}] "request"' if names is HTTP_FIELDS else "")
            )
            rejects += [(int(j), None, why) for j in where[~ok]]
            idx_parts.append(where[ok])
            raws.append(raw)
        idx = np.concatenate(idx_parts)
        keys = set(HTTP_FIELDS) | {"request", "captures"}
        raw = {k: pa.concat_arrays([r.get(k, pa.nulls(len(r["client"]), _STR)) for r in raws]) for k in keys}
        if len(idx_parts[0]) and len(idx_parts[1]):
            order = np.argsort(idx, kind="stable")
            idx, raw = idx[order], {k: v.take(pa.array(order)) for k, v in raw.items()}
        cols, checks = self._interpret(raw)
        rejects += [(int(idx[j]), field, reason) for j, field, reason in checks.rejects()]
        keep = pa.array(checks.ok)
        return idx[checks.ok], {k: v.filter(keep) for k, v in cols.items()}, rejects

    def _interpret(self, raw: dict[str, pa.Array]) -> tuple[dict[str, pa.Array], Checks]:
        checks = Checks(len(raw["client"]))
        is_http = pc.is_valid(raw["request"])

        def why(field: str, expected: str) -> Callable[[int], str]:
            return lambda j: f"field '{field}': expected {expected}, got {raw[field][j].as_py()!r}"

        client_ip, client_port = rsplit1(raw["client"], ":")
        known = per_unique(client_ip, lambda v: {"ok": _is_ip_or_unix(v)})["ok"]
        checks.add("client", pc.and_(known, pc.match_substring_regex(client_port, r"^\d{1,5}$")),
                   why("client", "CLIENT_IP:PORT"))  # fmt: skip
        cols: dict[str, pa.Array] = {"source_ip": client_ip, "ts": self._timestamps(raw["date"])}
        checks.add("date", pc.is_valid(cols["ts"]), why("date", "[dd/Mon/yyyy:HH:MM:SS.mmm] in 1970-2200"))
        layouts = set(pc.unique(is_http).to_pylist())
        for field, (http_pattern, tcp_pattern, expected) in _CHECKS.items():
            value = pc.fill_null(raw[field], "")  # tcplog has no status
            if layouts == {True} or layouts == {False}:  # one layout: one regex pass
                value_ok = pc.match_substring_regex(value, http_pattern if True in layouts else tcp_pattern)
            else:
                value_ok = pc.if_else(is_http, pc.match_substring_regex(value, http_pattern),
                                      pc.match_substring_regex(value, tcp_pattern))  # fmt: skip
            checks.add(field, value_ok, why(field, expected))
        timers = pc.split_pattern(pc.binary_join_element_wise(raw["timers"], _s("/x/x/x"), _s("")), "/")
        tc_tcp, tc_http = elements(timers, [1, 2])
        connected = pc.not_equal(pc.if_else(is_http, tc_http, tc_tcp), "-1")
        code = pc.fill_null(pc.if_else(pc.match_substring_regex(raw["status"], r"^\d{1,3}$"), raw["status"], "0"), "0")
        cols["status"] = pc.cast(code, _I32)
        byte_ok = pc.fill_null(pc.match_substring_regex(raw["bytes"], r"^\+?\d{1,18}$"), False)
        cols["bytes_in"] = pc.cast(pc.if_else(byte_ok, pc.utf8_ltrim(raw["bytes"], "+"), _NULL), pa.int64())

        method, rest = split_n(raw["request"], " ", 1)
        target, version = rsplit1(rest, " ")
        versioned = pc.match_substring_regex(version, r"^HTTP/\d")
        target = pc.if_else(versioned, target, rest)  # HTTP/0.9-style and truncated lines have no version
        method = pc.if_else(pc.is_in(method, pa.array(["", "<BADREQ>"], _STR)), _NULL, method)
        cols["method"] = pc.if_else(is_http, method, _NULL)
        connect = pc.fill_null(pc.equal(method, "CONNECT"), False)
        scheme_part, slash, uri_authority, _ = split_n(target, "/", 3)
        scheme = per_unique(scheme_part, _scheme)
        is_uri = pc.and_(pc.fill_null(scheme["ok"], False), pc.equal(slash, ""))
        dest = per_unique(pc.if_else(is_uri, uri_authority, pc.if_else(connect, target, _NULL)), endpoint)
        host = self._captured_host(raw["captures"])
        server_name = split_n(raw["route"], "/", 1)[1]
        server = per_unique(server_name, endpoint)
        pseudo = pc.fill_null(pc.starts_with(server_name, "<"), False)  # <NOSRV>, <STATS>, <CACHE>

        # An absolute URI or CONNECT in HTTP/1 is a forward-proxy request: its host is where the
        # data goes and a server named by address is the next hop (like a Squid cache peer). HTTP/2
        # and /3 lines show an absolute URI rebuilt from :authority, which is the Host header.
        proxy_form = pc.and_(pc.or_(connect, is_uri), pc.invert(pc.match_substring_regex(version, r"^HTTP/[23]")))
        target_ip = pc.if_else(proxy_form, dest["ip"], _NULL)
        server_ip = pc.if_else(pc.or_(proxy_form, pseudo), _NULL, server["ip"])
        cols["dest_host"] = pc.coalesce(dest["name"], host["name"])
        cols["dest_ip"] = pc.coalesce(server_ip, target_ip)
        default_port = pc.if_else(is_uri, pc.take(_DEFAULT_PORTS, pc.index_in(scheme["scheme"], _SCHEMES)), None)
        target_port = pc.if_else(pc.is_valid(pc.coalesce(dest["name"], target_ip)), pc.coalesce(dest["port"],
                                 default_port), None)  # fmt: skip
        server_port = pc.if_else(pc.is_valid(server_ip), server["port"], None)
        host_port = pc.if_else(pc.is_valid(host["name"]), host["port"], None)
        cols["dest_port"] = pc.cast(pc.coalesce(server_port, target_port, host_port), _I32)
        proto = pc.if_else(connect, "tunnel", pc.if_else(is_uri, scheme["scheme"], "http"))
        cols["protocol"] = pc.if_else(is_http, proto, "tcp").cast(_STR)
        cols["pii"] = pii_kinds(pc.if_else(pc.or_(connect, pc.invert(is_http)), _NULL, target))
        cols["egress"] = pc.and_(pc.invert(pseudo), pc.fill_null(connected, False))
        return cols, checks

    def _timestamps(self, values: pa.Array) -> pa.Array:
        """UTC from [06/Feb/2009:12:14:14.655] in the configured zone (HAProxy logs local time)."""
        shaped = pc.fill_null(pc.match_substring_regex(values, _RE_DATE), False)
        # the day repeats on every line of a log: parse it once per value, the time by arithmetic
        days = per_unique(pc.utf8_slice_codeunits(values, 1, 12), _day)["days"]
        hms = [
            pc.cast(pc.if_else(shaped, pc.utf8_slice_codeunits(values, a, a + 2), "0"), pa.int64())
            for a in (13, 16, 19)
        ]
        secs = pc.add(
            pc.multiply(days, 86400), pc.add(pc.add(pc.multiply(hms[0], 3600), pc.multiply(hms[1], 60)), hms[2])
        )
        frac = per_unique(pc.utf8_slice_codeunits(values, 21, -1), _millis)["micros"]
        micros = pc.if_else(shaped, pc.add(pc.multiply(secs, 1_000_000), frac), None)
        local = pc.cast(micros, pa.timestamp("us"))
        if self.timezone != "UTC":
            local = pc.assume_timezone(local, self.timezone, ambiguous="earliest", nonexistent="latest")
        return in_years(pc.cast(local, pa.int64()))

    def _captured_host(self, captures: pa.Array) -> dict[str, pa.Array]:
        """Host and port from the captured request headers, when the operator said where Host is."""
        if self.host_capture_index is None:
            return {"name": pa.nulls(len(captures), _STR), "port": pa.nulls(len(captures), _I32)}
        k = self.host_capture_index
        padded = pc.binary_join_element_wise(pc.fill_null(captures, _s("")), _s("|" * (k + 1)), _s(""))
        (value,) = elements(pc.split_pattern(padded, "|", max_splits=k + 1), [k])
        return per_unique(pc.if_else(pc.equal(value, ""), _NULL, value), endpoint)


def _fields(lines: pa.Array, names: tuple[str, ...]) -> tuple[np.ndarray[Any, Any], dict[str, pa.Array]]:
    """The fixed fields (taken from the right, past any syslog header), the request line and the captures."""
    raw: dict[str, pa.Array] = {}
    head = lines
    if names is HTTP_FIELDS:
        head, rest = split_n(lines, '"', 1)
        request, closing = rsplit1(rest, '"')
        # a request line cut by the syslog length limit has no closing quote: keep what there is
        raw["request"] = pc.if_else(pc.match_substring(rest, '"'), request, rest)
        head, captures = split_n(head, "{", 1)
        raw["captures"] = split_n(captures, "}", 1)[0]  # the first block: request headers
    n = len(names)
    marked = pc.binary_join_element_wise(_s("^"), pc.utf8_rtrim_whitespace(head), _s(" "))
    tokens = pc.ascii_split_whitespace(marked, max_splits=n, reverse=True)
    ok = pc.equal(pc.list_value_length(tokens), n + 1)
    raw = {k: v.filter(ok) for k, v in raw.items()}
    tokens = tokens.filter(ok)  # exactly n + 1 items from here on, the first being the syslog header
    raw |= dict(zip(names, elements(tokens, range(1, n + 1)), strict=True))
    return ok.to_numpy(zero_copy_only=False), raw


def _timezone(value: str) -> str:
    name = str(value).strip() or "UTC"
    try:
        zoneinfo.ZoneInfo(name)
        pc.assume_timezone(pa.array([0], pa.timestamp("s")), name)  # Arrow must know it too
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, pa.ArrowException) as exc:
        raise UsageError(f"option timezone: unknown time zone {value!r} (expected a name like Europe/Berlin)") from exc
    return name


def _capture_index(value: int | str | None) -> int | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        index = int(value)
    except (TypeError, ValueError):
        index = -1
    if index < 0 or isinstance(value, bool):
        raise UsageError(
            f"option host_capture_index: expected a position >= 0 among the captured headers, got {value!r}"
        )
    return index


def _is_ip_or_unix(values: pa.Array) -> pa.Array:
    return pa.array([v is not None and (v == "unix" or is_ip(v)) for v in values.to_pylist()], pa.bool_())


def _scheme(values: pa.Array) -> dict[str, pa.Array]:
    return {"ok": pc.match_substring_regex(values, r"^[A-Za-z][A-Za-z0-9+.\-]*:$"),
            "scheme": pc.utf8_lower(pc.utf8_rtrim(values, ":"))}  # fmt: skip


def _day(values: pa.Array) -> dict[str, pa.Array]:
    """Days since 1970 for "06/Feb/2009"; null for a date that does not exist (strptime would roll 31 Feb over)."""
    shaped = pc.fill_null(pc.match_substring_regex(values, rf"^\d{{2}}/(?:{_MONTHS})/\d{{4}}$"), False)
    parsed = pc.strptime(pc.if_else(shaped, values, _NULL), format="%d/%b/%Y", unit="s", error_is_null=True)
    day_of_month = pc.cast(pc.if_else(shaped, pc.utf8_slice_codeunits(values, 0, 2), "0"), pa.int64())
    exists = pc.equal(pc.day(parsed), day_of_month)
    days = pc.divide(pc.cast(parsed, pa.int64()), 86400)
    return {"days": pc.if_else(pc.fill_null(exists, False), days, None)}


def _millis(values: pa.Array) -> dict[str, pa.Array]:
    """Microseconds from the ".655" after the seconds ("" when the date has none, as in HAProxy 1.x)."""
    digits = pc.utf8_ltrim(values, ".")
    padded = pc.utf8_slice_codeunits(pc.binary_join_element_wise(digits, _s("000000"), _s("")), 0, 6)
    good = pc.match_substring_regex(values, r"^(?:\.\d{1,6})?$")
    return {"micros": pc.if_else(good, pc.cast(pc.if_else(good, padded, "0"), pa.int64()), None)}
