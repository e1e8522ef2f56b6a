"""Collect stage, Apache/nginx access logs: common, combined or any nginx log_format -> BATCH_SCHEMA rows."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from monitor.collect.arrowtext import ChunkLines, authority, per_unique, scheme, split
from monitor.collect.base import LineCollector, Parsed
from monitor.collect.logformat import NAMED, STR, TIME_VARS, LogFormat, explain, match_lines
from monitor.collect.pii import pii_kinds
from monitor.errors import UsageError
from monitor.records import COLUMNS, empty_frame, frame_from_table

# Without a log_format, each line is read as the first of these it fits (tried in this order):
# combined, combined + "$http_x_forwarded_for" (nginx's stock `main`), common. `$_client` is
# whatever stands before "ident user [": a client, "vhost[:port] client" (Apache's
# vhost_combined) or an X-Forwarded-For list, bare or quoted, before the client.
_HEAD = '$_client $_ident $remote_user [$time_local] "$request" $status $body_bytes_sent'
AUTO_FORMATS = (
    _HEAD + ' "$http_referer" "$http_user_agent"',
    _HEAD + ' "$http_referer" "$http_user_agent" "$http_x_forwarded_for"',
    _HEAD,
)
# The variables the mapping below reads; every other one is matched for shape only.
WANTED = frozenset(
    "_client remote_addr remote_user time_local time_iso8601 msec request request_method request_uri uri args "
    "status body_bytes_sent bytes_sent request_length upstream_addr host http_host".split()
)
MIN_TS, MAX_TS = 0, 7258118400 * 10**6  # 1970 .. 2200 in microseconds: outside is a corrupt time
_NULL = pa.scalar(None, STR)
_NULL_I32 = pa.scalar(None, pa.int32())
_RE_METHOD = r"^[A-Za-z][A-Za-z0-9!#$%&'*+.^_`|~-]*$"  # an HTTP token
_RE_PROTO = r"^[A-Za-z]+/[0-9]+(?:\.[0-9]+)?$"
# A client prefix: "xff, list" client | xff,list [client] | vhost[:port] client | client
_RE_CLIENT = (
    r'^(?:"(?P<xq>[^"]*)" (?P<c1>[^ ]+)|(?P<xl>[^ ,]+(?:, ?[^ ,]+)+)(?: (?P<c2>[^ ,]+))?'
    r"|(?P<vh>[^ ,\"]+) (?P<c3>[^ ,\"]+)|(?P<c4>[^ ,\"]+))$"
)
_RE_OFFSET = r"[+-](?:0[0-9]|1[0-4]):?[0-5][0-9]$"  # UTC-14:59 .. UTC+14:59 (Arrow takes +2500)
_ADDR = re.compile(r"^(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<v4>[0-9.]+)):(?P<port>[0-9]{1,5})$")


class AccessLogCollector(LineCollector):
    """Apache/nginx access logs; with `log_format`, exactly that nginx format (else auto-detected).

    `log_format` is an nginx log_format definition in nginx's own syntax (bare, or quoted as in
    nginx.conf: '...' '...'), or a name: combined, main. Where a row's data went:
    - a forward proxy's line (absolute URI, or CONNECT host:port): the URI's host and port, and
      dest_ip from $upstream_addr when logged (its "-" means the proxy connected nowhere);
    - a reverse proxy's line (origin-form target) with $upstream_addr: the first upstream's
      address, and $host (or $http_host) as dest_host;
    - otherwise (a plain web server) no destination and egress false; the line is still a row.
    source_ip is $remote_addr, or the first address of an X-Forwarded-For list standing in its
    place; a trailing "$http_x_forwarded_for" is not used (any hop could have written it).
    """

    name: ClassVar[str] = "accesslog"
    stateless: ClassVar[bool] = True  # no state from chunk to chunk: a file's chunks may be parsed at once
    description: ClassVar[str] = (
        "Apache/nginx access log: common/combined (+XFF, vhost prefix) auto-detected, or -o log_format='...'"
    )
    sample: ClassVar[bytes] = (
        b'10.0.0.5 - - [10/Oct/2023:13:55:36 +0200] "GET http://Example.com/a?x=1 HTTP/1.1" 200 2326 "-" "curl/8"\n'
        b'10.0.0.6 - alice [10/Oct/2023:13:55:37 +0200] "CONNECT api.example.org:443 HTTP/1.1" 200 5120\n'
        b'web.example:443 10.0.0.7 - - [10/Oct/2023:13:55:38 -0700] "GET /index.html HTTP/1.1" 304 0 "-" "UA"\n'
    )
    default_format: ClassVar[str | None] = None

    def __init__(self, log_format: str | None = None) -> None:
        if log_format is not None and not isinstance(log_format, str):
            raise UsageError(f"log_format: expected an nginx log_format string, got {log_format!r}")
        spec = log_format if log_format is not None else self.default_format
        specs = AUTO_FORMATS if spec is None else (spec,)
        self.formats = tuple(LogFormat(s, WANTED) for s in specs)

    def parse_chunk(self, chunk: bytes, *, source: str, first_line: int, base_offset: int) -> Parsed:
        lines = ChunkLines(chunk, source, first_line, base_offset)
        if lines.n == 0:
            return Parsed(table=empty_frame())
        # Unlike ChunkLines.trimmed, leading space stays (the format's regex judges it) and a
        # line of Unicode white space is blank too.
        text = pc.utf8_rtrim_whitespace(lines.text)
        blank = pc.fill_null(pc.equal(pc.utf8_trim_whitespace(text), ""), False).to_numpy(zero_copy_only=False)
        text = pc.if_else(pa.array(blank), _NULL, text)  # blank lines are no candidates
        idx, values = match_lines(self.formats, text)
        unmatched = np.ones(lines.n, dtype=bool)
        unmatched[idx] = False
        unmatched &= ~blank
        for i in np.flatnonzero(unmatched).tolist():
            if i not in lines.quarantined:
                field, reason = explain(self.formats, str(text[i].as_py()))
                lines.quarantine(i, reason, field)

        rows = _Rows(len(idx))
        if len(idx):
            _map(rows, values)
        for j, field, reason in rows.rejects():
            lines.quarantine(int(idx[j]), reason, field)
        good = idx[rows.ok]
        frame = empty_frame()
        if len(good):
            cols = rows.columns() | {
                "collector": pa.repeat(pa.scalar(self.name), len(good)),
                "sample_rate": pa.repeat(pa.scalar(1, pa.int32()), len(good)),
                **lines.origin(good),
            }
            frame = frame_from_table(pa.table({k: cols[k] for k in COLUMNS}))
        return lines.result(frame, blank_lines=int(np.count_nonzero(blank)))


class NginxCollector(AccessLogCollector):
    """nginx with its predefined `combined` format unless -o log_format says otherwise."""

    name: ClassVar[str] = "nginx"
    description: ClassVar[str] = "nginx access log in its 'combined' format, or -o log_format='...' (nginx syntax)"
    sample: ClassVar[bytes] = (
        b'10.0.0.5 - - [10/Oct/2023:13:55:36 +0200] "GET http://example.com/ HTTP/1.1" 200 612 "-" "curl/8"\n'
        b'10.0.0.6 - bob [10/Oct/2023:13:55:37 +0000] "CONNECT example.org:443 HTTP/1.1" 200 0 "-" "-"\n'
    )
    default_format: ClassVar[str | None] = NAMED["combined"]


class _Rows:
    """Matched lines: output columns, and checks that reject a line naming its first bad field."""

    def __init__(self, n: int) -> None:
        self.ok = np.ones(n, dtype=bool)
        self.cols: dict[str, pa.Array] = {}
        self._checks: list[tuple[str, np.ndarray[Any, Any], Callable[[int], str]]] = []

    def check(self, field: str, ok: pa.Array, why: Callable[[int], str]) -> None:
        mask = pc.fill_null(ok, False).to_numpy(zero_copy_only=False)
        self._checks.append((field, mask, why))
        self.ok &= mask

    def rejects(self) -> list[tuple[int, str, str]]:
        out = []
        for j in np.flatnonzero(~self.ok).tolist():
            field, _, why = next(c for c in self._checks if not c[1][j])
            out.append((j, field, why(j)))
        return out

    def columns(self) -> dict[str, pa.Array]:
        keep = pa.array(self.ok)
        return {k: v.filter(keep) for k, v in self.cols.items()}


def _map(r: _Rows, v: dict[str, pa.Array]) -> None:
    n = len(r.ok)

    def get(name: str) -> pa.Array:
        return v.get(name, pa.nulls(n, STR))

    _time(r, v)
    client = pc.coalesce(get("_client"), get("remote_addr"))
    cl = per_unique(client, _client)
    r.check(
        "remote_addr",
        pc.or_kleene(cl["ok"], pc.is_null(client)),
        lambda j: f"field 'remote_addr': no client address in {client[j].as_py()!r}",
    )
    r.cols["source_ip"] = cl["ip"]
    r.cols["source_user"] = _dash_null(get("remote_user"))
    status = get("status")
    r.cols["status"] = pc.coalesce(pc.cast(status, pa.int32()), pa.scalar(0, pa.int32()))
    r.cols["bytes_in"] = _count(pc.coalesce(get("body_bytes_sent"), get("bytes_sent")))
    r.cols["bytes_out"] = _count(get("request_length"))

    method, target = _request(get("request"))
    method = pc.coalesce(method, _dash_null(get("request_method")))
    uri = _dash_null(get("uri"))
    args = _dash_null(get("args"))
    uri = pc.if_else(pc.is_valid(args), pc.binary_join_element_wise(uri, args, pa.scalar("?", STR)), uri)
    target = pc.coalesce(target, _dash_null(get("request_uri")), uri)
    _destination(
        r, method, target, get("upstream_addr"), pc.coalesce(_dash_null(get("host")), _dash_null(get("http_host")))
    )
    r.cols["method"] = method


def _time(r: _Rows, v: dict[str, pa.Array]) -> None:
    """ts from the most precise time variable the line has, checked and converted to UTC."""
    parsers = {"msec": _msec, "time_iso8601": _iso8601, "time_local": _local}
    ts: pa.Array | None = None
    for name in TIME_VARS:
        if name not in v:
            continue
        raw = v[name]
        got = per_unique(raw, parsers[name])["ts"]
        r.check(name, pc.or_(pc.is_valid(got), pc.is_null(raw)), _bad_time(name, raw))
        ts = got if ts is None else pc.coalesce(ts, got)
    # LogFormat refuses a format without a time variable, so ts is set unless the chunk was empty
    r.cols["ts"] = ts if ts is not None else pa.nulls(len(r.ok), pa.timestamp("us", tz="UTC"))


def _bad_time(name: str, raw: pa.Array) -> Callable[[int], str]:
    return lambda j: f"field '{name}': not a valid time: {raw[j].as_py()!r}"


def _in_range(micros: pa.Array) -> pa.Array:
    ok = pc.and_(pc.greater_equal(micros, MIN_TS), pc.less(micros, MAX_TS))
    return pc.cast(pc.if_else(ok, micros, pa.scalar(None, pa.int64())), pa.timestamp("us", tz="UTC"))


def _local(values: pa.Array) -> dict[str, pa.Array]:
    """10/Oct/2000:13:55:36 -0700; Arrow rolls 31/Feb over into March, so the wall time must read back."""
    utc = pc.strptime(values, format="%d/%b/%Y:%H:%M:%S %z", unit="us", error_is_null=True)
    wall = pc.utf8_slice_codeunits(values, 0, 20)
    naive = pc.strptime(wall, format="%d/%b/%Y:%H:%M:%S", unit="s", error_is_null=True)
    same = pc.and_(
        pc.equal(pc.utf8_lower(pc.strftime(naive, format="%d/%b/%Y:%H:%M:%S")), pc.utf8_lower(wall)),
        pc.match_substring_regex(values, _RE_OFFSET),
    )
    return {"ts": _in_range(pc.if_else(pc.fill_null(same, False), pc.cast(utc, pa.int64()), None))}


def _iso8601(values: pa.Array) -> dict[str, pa.Array]:
    fixed = pc.replace_substring_regex(values, "Z$", "+00:00")
    utc = pc.strptime(fixed, format="%Y-%m-%dT%H:%M:%S%z", unit="us", error_is_null=True)
    wall = pc.utf8_slice_codeunits(values, 0, 19)
    naive = pc.strptime(wall, format="%Y-%m-%dT%H:%M:%S", unit="s", error_is_null=True)
    same = pc.and_(
        pc.equal(pc.strftime(naive, format="%Y-%m-%dT%H:%M:%S"), wall), pc.match_substring_regex(fixed, _RE_OFFSET)
    )
    return {"ts": _in_range(pc.if_else(pc.fill_null(same, False), pc.cast(utc, pa.int64()), None))}


def _msec(values: pa.Array) -> dict[str, pa.Array]:
    micros = pc.cast(pc.round(pc.multiply(pc.cast(values, pa.float64()), 1e6)), pa.int64())
    return {"ts": _in_range(micros)}


def _client(values: pa.Array) -> dict[str, pa.Array]:
    """The client: the first address of a leading X-Forwarded-For list, else the address after a vhost."""
    if not pc.any(pc.match_substring_regex(values, r'[ ,"\[]')).as_py():  # the usual case: one bare client
        return {"ok": pc.not_equal(values, ""), "ip": values}
    m = pc.extract_regex(values, _RE_CLIENT)
    xff = pc.coalesce(*(_empty_null(pc.struct_field(m, k)) for k in ("xq", "xl")))
    first = pc.utf8_trim_whitespace(pc.list_element(pc.split_pattern(pc.coalesce(xff, ""), ",", max_splits=1), 0))
    direct = pc.coalesce(*(_empty_null(pc.struct_field(m, k)) for k in ("c1", "c2", "c3", "c4")))
    ip = _empty_null(pc.utf8_trim(pc.if_else(pc.is_valid(xff), first, direct), "[]"))
    return {"ok": pc.is_valid(ip), "ip": ip}


def _request(req: pa.Array) -> tuple[pa.Array, pa.Array]:
    """Method and target of "METHOD target [PROTO]"; both null for "" or junk (a TLS hello on port 80)."""
    method, rest = split(req, " ", 1)
    padded = pc.binary_join_element_wise(pa.scalar(" ", STR), rest, pa.scalar("", STR))
    pre_last = pc.split_pattern(padded, " ", max_splits=1, reverse=True)
    pre, last = pc.list_element(pre_last, 0), pc.list_element(pre_last, 1)
    has_proto = pc.and_(pc.match_substring_regex(last, _RE_PROTO), pc.not_equal(pre, ""))
    target = pc.if_else(has_proto, pc.utf8_slice_codeunits(pre, 1), rest)
    ok = pc.fill_null(pc.match_substring_regex(method, _RE_METHOD), False)
    return pc.if_else(ok, method, _NULL), pc.if_else(pc.and_(ok, pc.not_equal(target, "")), target, _NULL)


def _destination(r: _Rows, method: pa.Array, target: pa.Array, upstream: pa.Array, host: pa.Array) -> None:
    """Forward proxy: the URI's host (CONNECT's host:port); reverse proxy: the upstream; else none."""
    connect = pc.fill_null(pc.equal(method, "CONNECT"), False)
    head, slash, uri_authority, _ = split(pc.coalesce(target, ""), "/", 3)
    sch = per_unique(head, scheme)
    is_uri = pc.fill_null(pc.and_(sch["ok"], pc.equal(slash, "")), False)
    host_port = pc.if_else(is_uri, uri_authority, pc.if_else(connect, target, _NULL))
    auth = per_unique(host_port, authority)
    # CONNECT names host:port; without the port nothing could have been opened
    needs_port = pc.and_(connect, pc.invert(is_uri))
    has_port = pc.or_(pc.invert(needs_port), pc.is_valid(auth["port"]))
    forward = pc.fill_null(pc.and_(pc.and_(auth["ok"], auth["port_ok"]), has_port), False)
    uri_port = pc.coalesce(auth["port"], pc.if_else(is_uri, sch["default_port"], _NULL_I32))

    up = per_unique(upstream, _upstream)
    up_ok = pc.is_valid(up["ip"])
    r.check(
        "upstream_addr",
        pc.invert(pc.fill_null(up["bad"], False)),
        lambda j: f"field 'upstream_addr': not an address: {upstream[j].as_py()!r}",
    )
    vhost = per_unique(host, authority)
    vhost_host = pc.if_else(pc.fill_null(vhost["ok"], False), vhost["host"], _NULL)

    r.cols["dest_host"] = pc.if_else(forward, auth["host"], pc.if_else(up_ok, vhost_host, _NULL))
    r.cols["dest_ip"] = up["ip"]
    r.cols["dest_port"] = pc.if_else(forward, uri_port, pc.if_else(up_ok, up["port"], _NULL_I32))
    # an upstream field that says "-" (or a unix socket) means the proxy connected nowhere
    went_nowhere = pc.and_(pc.is_valid(upstream), pc.invert(up_ok))
    r.cols["egress"] = pc.or_(pc.and_(forward, pc.invert(went_nowhere)), pc.and_(pc.invert(forward), up_ok))
    protocol = pc.if_else(is_uri, sch["scheme"], pa.scalar("http", STR))
    r.cols["protocol"] = pc.if_else(pc.and_(connect, forward), pa.scalar("tunnel", STR), protocol)
    # a CONNECT target is host:port only; paths and query strings are where personal data leaks
    r.cols["pii"] = pii_kinds(pc.if_else(connect, "", pc.coalesce(target, "")))


def _upstream(values: pa.Array) -> dict[str, pa.Array]:
    """IP and port of the first address in an upstream list; null for "-", unix sockets and group names.

    nginx logs the group's name when no server of it could be picked; an address-shaped entry
    that is no address (a port over 65535, 999.1.1.1) is a corrupt line and marked bad.
    """
    ips: list[str | None] = []
    ports: list[int | None] = []
    bad: list[bool] = []
    for value in values.to_pylist():
        m = _ADDR.match(re.split(r", | : ", value or "-", maxsplit=1)[0].strip())
        ip = m.group("v6") or m.group("v4") if m else None
        port = int(m.group("port")) if m else 0
        try:
            ok = ip is not None and ipaddress.ip_address(ip) is not None and 0 < port <= 65535
        except ValueError:
            ok = False
        ips.append(ip if ok else None)
        ports.append(port if ok else None)
        bad.append(m is not None and not ok)
    return {"ip": pa.array(ips, STR), "port": pa.array(ports, pa.int32()), "bad": pa.array(bad, pa.bool_())}


def _count(values: pa.Array) -> pa.Array:
    """A byte count; Apache's "-" means none were sent."""
    return pc.cast(pc.if_else(pc.equal(values, "-"), "0", values), pa.int64())


def _dash_null(arr: pa.Array) -> pa.Array:
    return pc.if_else(pc.is_in(arr, pa.array(["-", ""], STR)), _NULL, arr)


def _empty_null(arr: pa.Array) -> pa.Array:
    return pc.if_else(pc.equal(arr, ""), _NULL, arr)
