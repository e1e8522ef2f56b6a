"""Collect stage, Envoy: access-log lines (text, Istio text, JSON, Docker-wrapped) -> BATCH_SCHEMA rows."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from monitor.collect.arrowtext import elements, endpoint, per_unique, rsplit1, split_n, tokens_at_least
from monitor.collect.base import LineCollector, Parsed
from monitor.collect.chunkrows import YEARS, Checks, Reject, in_years, parse_lines
from monitor.collect.pii import pii_kinds
from monitor.errors import UsageError

# Envoy's default format (unchanged from v1.7 to the current docs):
#   [%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" %RESPONSE_CODE%
#   %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%
#   "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" "%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%"
# Istio's (1.8+) adds %RESPONSE_CODE_DETAILS% %CONNECTION_TERMINATION_DETAILS% "%UPSTREAM_TRANSPORT_FAILURE_REASON%"
# after the flags and %UPSTREAM_CLUSTER% %UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS%
# %DOWNSTREAM_REMOTE_ADDRESS% %REQUESTED_SERVER_NAME% %ROUTE_NAME% at the end. Ambassador prefixes "ACCESS ".
FIELDS = (
    "start_time", "method", "path", "protocol", "response_code", "response_flags", "response_code_details",
    "bytes_received", "bytes_sent", "x_forwarded_for", "downstream_remote_address", "authority",
    "upstream_host", "requested_server_name",
)  # fmt: skip
DEFAULT_JSON_KEYS: dict[str, str] = {f: f for f in FIELDS}  # the key names of Istio's JSON encoding
WRAPPER_KEYS = ("log", "message")  # Docker json-file records; Filebeat keeps the line in "message"
# A line split at '"' has 13 parts in the default format and 15 in Istio's. Per layout: the parts
# holding space-separated values (names in order, None: not used), the quoted fields we keep, the
# parts between quoted fields (only whitespace), and Istio's unquoted tail.
_LAYOUTS: dict[int, dict[str, Any]] = {
    13: {"mid": [(2, ("response_code", "response_flags", "bytes_received", "bytes_sent", None, None))],
         "quoted": {"x_forwarded_for": 3, "authority": 9, "upstream_host": 11}, "seps": (4, 6, 8, 10), "tail": None},
    15: {"mid": [(2, ("response_code", "response_flags", "response_code_details", None)),
                 (4, ("bytes_received", "bytes_sent", None, None))],
         "quoted": {"x_forwarded_for": 5, "authority": 11, "upstream_host": 13}, "seps": (6, 8, 10, 12), "tail": 14},
}  # fmt: skip
# Any other shape (a '"' inside the user agent, say) goes through this slower regex.
_RE_TEXT = (
    r'^(?P<head>[^"]*?)\[(?P<start_time>[^\]"]+)\]\s+"(?P<method>\S+) (?P<path>.*?) (?P<protocol>\S+)"\s+'
    r"(?P<response_code>\S+)\s+(?P<response_flags>\S+)\s+"
    r'(?:(?P<response_code_details>\S+)\s+\S+\s+"[^"]*"\s+)?'
    r'(?P<bytes_received>\S+)\s+(?P<bytes_sent>\S+)\s+\S+\s+\S+\s+"(?P<x_forwarded_for>[^"]*)"\s+".*"\s+"[^"]*"\s+'
    r'"(?P<authority>[^"]*)"\s+"(?P<upstream_host>[^"]*)"'
    r"(?:\s+\S+\s+\S+\s+\S+\s+(?P<downstream_remote_address>\S+)(?:\s+(?P<requested_server_name>\S+))?)?(?:\s.*)?$"
)
_TEXT_SHAPE = (
    'not an Envoy access-log line: expected [START_TIME] "METHOD PATH PROTOCOL" RESPONSE_CODE RESPONSE_FLAGS '
    'BYTES_RECEIVED BYTES_SENT DURATION UPSTREAM_TIME "X-FORWARDED-FOR" "USER-AGENT" "REQUEST-ID" "AUTHORITY" '
    '"UPSTREAM_HOST" (Envoy default or Istio text format)'
)
_RE_HEAD = r"^(?:.*\bACCESS\s*)?$"  # nothing, or an Ambassador "ACCESS " / "[time] ACCESS " prefix
_RE_ISO = (
    r"^\d{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])[T ](?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d"
    r"(?:\.\d{1,9})?(?:Z|[+-]\d{2}:?\d{2})?$"
)
_RE_EPOCH = r"^\d{1,11}(?:\.\d{1,9})?$"  # %START_TIME(%s.%3f)% and typed JSON numbers
# Response flags after which nothing reached an upstream: no healthy host, connect failure,
# overflow, no route, retry/connect limit, no cluster, DNS failure, local rate limit, external
# authz denial, rate-limit service error, invalid header, fault-injected abort, failed local check.
NO_UPSTREAM_FLAGS = ("UH", "UF", "UO", "NR", "URX", "NC", "DF", "RL", "UAEX", "RLSE", "IH", "FI", "LH")
_STR = pa.large_string()
_NULL = pa.scalar(None, _STR)
_I32 = pa.int32()

Raw = dict[str, pa.Array]  # our field name -> values as logged (large_string, "-" kept)
Extracted = tuple[np.ndarray[Any, Any], Raw, list[Reject]]


def _s(value: str) -> pa.Scalar:
    return pa.scalar(value, _STR)


class EnvoyCollector(LineCollector):
    """Envoy access logs: default or Istio text format, json_format lines, either inside Docker json-file records.

    bytes_out is %BYTES_RECEIVED% (body bytes received from the client, which Envoy forwards
    upstream: from the organisation's view what went toward the destination); bytes_in is
    %BYTES_SENT% (body bytes sent back to the client). Headers are counted in neither.
    """

    name: ClassVar[str] = "envoy"
    stateless: ClassVar[bool] = True  # no state from chunk to chunk: a file's chunks may be parsed at once
    description: ClassVar[str] = "Envoy access log (default/Istio text format or json_format, Docker-wrapped too)"
    sample: ClassVar[bytes] = (
        b'[2019-02-12T18:37:42.921Z] "GET /httpbin/ip HTTP/1.1" 200 - 0 43 217 216 "172.17.0.5" "curl/7.59.0" '
        b'"c62ec130-6dee-4f3b-a52b-4f0d1312d89d" "httpbin.org" "52.87.35.92:80"\n'
        b'[2019-04-06T06:20:05.972Z] "- - -" 0 UF,URX 0 0 0 - "-" "-" "-" "-" "127.0.0.1:9200"\n'
        b'{"start_time":"2024-03-01T10:00:00.000Z","method":"POST","path":"/v1/upload","protocol":"HTTP/2",'
        b'"response_code":201,"response_flags":"-","bytes_received":5120,"bytes_sent":17,'
        b'"downstream_remote_address":"10.1.2.3:50412","authority":"api.example.eu",'
        b'"upstream_host":"198.51.100.7:443"}\n'
    )

    def __init__(self, json_keys: Mapping[str, str] | str | None = None) -> None:
        self.json_keys = _json_keys(json_keys)

    def parse_chunk(self, chunk: bytes, *, source: str, first_line: int, base_offset: int) -> Parsed:
        return parse_lines(self.name, chunk, source, first_line, base_offset, self._rows)

    def _rows(self, lines: pa.Array) -> tuple[np.ndarray[Any, Any], dict[str, pa.Array], list[Reject]]:
        idx, raw, rejects = self._extract(lines, nested=False)
        cols, checks = _interpret(raw)
        rejects += [(int(idx[j]), field, reason) for j, field, reason in checks.rejects()]
        keep = pa.array(checks.ok)
        return idx[checks.ok], {k: v.filter(keep) for k, v in cols.items()}, rejects

    def _extract(self, lines: pa.Array, nested: bool) -> Extracted:
        """Raw fields of the lines that have the shape of a text or JSON line, in line order."""
        is_json = pc.starts_with(lines, "{").to_numpy(zero_copy_only=False)
        pieces, rejects = [], []
        for mask, fn in ((~is_json, _text_fields), (is_json, self._json_fields)):
            where = np.flatnonzero(mask)
            if len(where):
                sub_idx, sub_raw, sub_rejects = fn(lines.take(pa.array(where)), nested)
                pieces.append((where[sub_idx], sub_raw))
                rejects += [(int(where[j]), f, r) for j, f, r in sub_rejects]
        return (*_merge(pieces), rejects)

    def _json_fields(self, lines: pa.Array, nested: bool) -> Extracted:
        tables, rejects = _read_json(lines)
        pieces = []
        for where, table in tables:
            raw: Raw = {}
            bad = np.zeros(len(where), dtype=bool)
            for field, key in self.json_keys.items():
                raw[field], nested_value = _json_column(table, key)
                why = f"JSON key '{key}' ({field}): expected a string or number, got an object or array"
                rejects += [(int(where[j]), field, why) for j in np.flatnonzero(nested_value & ~bad)]
                bad |= nested_value
            timed = pc.is_valid(raw["start_time"]).to_numpy(zero_copy_only=False) & ~bad
            wrapped = np.zeros(len(where), dtype=bool)
            if not nested:  # a Docker json-file record: its "log" is one line of either format
                inner = pc.coalesce(*(_json_column(table, k)[0] for k in WRAPPER_KEYS))
                wrapped = ~timed & ~bad & pc.is_valid(inner).to_numpy(zero_copy_only=False)
                w = np.flatnonzero(wrapped)
                if len(w):
                    in_idx, in_raw, in_rejects = self._extract(pc.utf8_trim_whitespace(inner.take(pa.array(w))), True)
                    pieces.append((where[w[in_idx]], in_raw))
                    rejects += [(int(where[w[j]]), f, f"in the Docker log record: {r}") for j, f, r in in_rejects]
            why = f"JSON line without '{self.json_keys['start_time']}' (start_time; see the json_keys option)"
            rejects += [(int(where[j]), "start_time", why) for j in np.flatnonzero(~timed & ~wrapped & ~bad)]
            ok = pa.array(np.flatnonzero(timed))
            pieces.append((where[timed], {k: v.take(ok) for k, v in raw.items()}))
        return (*_merge(pieces), rejects)


def _json_keys(option: Mapping[str, str] | str | None) -> dict[str, str]:
    """Our field -> its key in the JSON line, from a mapping, a JSON object or "field=key,field=key" (CLI -o)."""
    given: Any = option or {}
    if isinstance(option, str):
        try:
            text = option.strip()
            given = json.loads(text) if text.startswith("{") else dict(p.split("=", 1) for p in text.split(","))
        except ValueError as exc:
            raise UsageError(f"option json_keys: expected a JSON object or field=key,... got {option!r}") from exc
    if not isinstance(given, Mapping):
        raise UsageError(f"option json_keys: expected a mapping of field to JSON key, got {type(given).__name__}")
    keys = dict(DEFAULT_JSON_KEYS)
    for field, key in given.items():
        if str(field).strip() not in keys:
            raise UsageError(f"option json_keys: unknown field {field!r}; known: {', '.join(FIELDS)}")
        if not isinstance(key, str) or not key.strip():
            raise UsageError(f"option json_keys: the key for {field!r} must be a non-empty string, got {key!r}")
        keys[str(field).strip()] = key.strip()
    return keys


def _merge(pieces: list[tuple[np.ndarray[Any, Any], Raw]]) -> tuple[np.ndarray[Any, Any], Raw]:
    """One set of raw columns, in line order, from what each path produced."""
    pieces = [p for p in pieces if len(p[0])]
    if not pieces:
        return np.zeros(0, dtype=np.int64), {f: pa.nulls(0, _STR) for f in FIELDS}
    idx = np.concatenate([p[0] for p in pieces]).astype(np.int64)
    raw = {f: pa.concat_arrays([p[1].get(f, pa.nulls(len(p[0]), _STR)).cast(_STR) for p in pieces]) for f in FIELDS}
    if len(pieces) > 1:
        order = np.argsort(idx, kind="stable")
        idx, raw = idx[order], {f: v.take(pa.array(order)) for f, v in raw.items()}
    return idx, raw


def _text_fields(lines: pa.Array, nested: bool) -> Extracted:
    """Text-format lines: split at '"' for the two known layouts, the regex for every other line."""
    parts = pc.split_pattern(lines, '"')
    nparts = pc.list_value_length(parts).to_numpy(zero_copy_only=False)
    pieces = []
    left = np.ones(len(lines), dtype=bool)
    for count, layout in _LAYOUTS.items():
        where = np.flatnonzero(nparts == count)
        if len(where):
            raw, ok = _layout_fields(parts.take(pa.array(where)), layout)
            pieces.append((where[ok], {k: v.filter(pa.array(ok)) for k, v in raw.items()}))
            left[where[ok]] = False
    rest = np.flatnonzero(left)
    rejects: list[Reject] = []
    if len(rest):
        m = pc.extract_regex(lines.take(pa.array(rest)), _RE_TEXT)
        ok = pc.fill_null(pc.match_substring_regex(pc.struct_field(m, "head"), _RE_HEAD), False)
        istio = pc.not_equal(pc.struct_field(m, "response_code_details"), "")  # an unmatched group gives ""
        raw = {f: pc.filter(pc.struct_field(m, f), ok) for f in FIELDS}
        for f in ("downstream_remote_address", "requested_server_name"):  # only Istio's layout has these
            raw[f] = pc.if_else(pc.filter(istio, ok), raw[f], _NULL)
        ok_np = ok.to_numpy(zero_copy_only=False)
        pieces.append((rest[ok_np], raw))
        rejects = [(int(j), None, _TEXT_SHAPE) for j in rest[~ok_np]]
    return (*_merge(pieces), rejects)


def _layout_fields(parts: pa.ListArray, layout: dict[str, Any]) -> tuple[Raw, np.ndarray[Any, Any]]:
    """Raw fields of lines split at '"' into a known number of parts, and which lines really have the layout."""
    ok = np.ones(len(parts), dtype=bool)
    quoted, seps, mids = layout["quoted"], layout["seps"], [k for k, _ in layout["mid"]]
    wanted = sorted({0, 1, *mids, *seps, *quoted.values()} | ({layout["tail"]} if layout["tail"] else set()))
    part = dict(zip(wanted, elements(parts, wanted), strict=True))  # every line here has them all

    def need(mask: pa.Array) -> None:
        ok[:] &= pc.fill_null(mask, False).to_numpy(zero_copy_only=False)

    head = pc.utf8_rtrim_whitespace(part[0])
    need(pc.and_(pc.ends_with(head, "]"), pc.match_substring(head, "[")))
    prefix, stamp = rsplit1(pc.utf8_slice_codeunits(head, 0, -1), "[")
    need(pc.match_substring_regex(prefix, _RE_HEAD))
    method, rest = split_n(part[1], " ", 1)
    path, protocol = rsplit1(rest, " ")
    need(pc.and_(pc.not_equal(method, ""), pc.not_equal(protocol, "")))
    raw: Raw = {"start_time": stamp, "method": method, "path": path, "protocol": protocol}
    for k, names in layout["mid"]:
        need(pc.equal(pc.list_value_length(pc.ascii_split_whitespace(pc.ascii_trim_whitespace(part[k]))), len(names)))
        used = [i for i, name in enumerate(names) if name]
        raw |= dict(zip([names[i] for i in used], elements(tokens_at_least(part[k], len(names)), used), strict=True))
    for k in seps:
        need(pc.equal(pc.ascii_trim_whitespace(part[k]), ""))
    raw |= {name: part[k] for name, k in quoted.items()}
    if layout["tail"] is not None:  # cluster, upstream local, downstream local, downstream remote, SNI, ...
        remote, sni = elements(tokens_at_least(part[layout["tail"]], 5), [3, 4])
        raw |= {"downstream_remote_address": remote, "requested_server_name": sni}
    return raw, ok


def _read_json(lines: pa.Array) -> tuple[list[tuple[np.ndarray[Any, Any], pa.Table]], list[Reject]]:
    """JSON lines parsed by Arrow; a block that fails is halved until each bad line stands alone.

    A log keeps one JSON shape, so this is one read; each bad line costs about log2(n) more reads.
    """
    out: list[tuple[np.ndarray[Any, Any], pa.Table]] = []
    rejects: list[Reject] = []
    stack = [(0, len(lines))]
    while stack:
        lo, hi = stack.pop()
        try:
            table = _json_table(lines.slice(lo, hi - lo))
            error = None if table.num_rows == hi - lo else "expected one JSON object per line"
        except (pa.ArrowException, ValueError) as exc:
            error = f"invalid JSON: {str(exc).splitlines()[0][:200]}"
        if error is None:
            out.append((np.arange(lo, hi), table))
        elif hi - lo == 1:
            rejects.append((lo, None, error))
        else:
            stack += [((lo + hi) // 2, hi), (lo, (lo + hi) // 2)]
    return out, rejects


def _json_table(lines: pa.Array) -> pa.Table:
    joined = pc.binary_join_element_wise(lines, _s("\n"), _s("")).cast(_STR)
    offsets = np.frombuffer(joined.buffers()[1], dtype=np.int64)[joined.offset : joined.offset + len(joined) + 1]
    data = joined.buffers()[2][int(offsets[0]) : int(offsets[-1])]
    block = max(1 << 20, 2 * int(np.max(np.diff(offsets))))  # a line longer than a block is not read at all
    table: pa.Table = pj.read_json(pa.BufferReader(data), read_options=pj.ReadOptions(block_size=block))
    return table


def _json_column(table: pa.Table, key: str) -> tuple[pa.Array, np.ndarray[Any, Any]]:
    """The values under `key` (dotted for nested objects) as strings, and which rows hold an object/array."""
    n = table.num_rows
    col: Any = None
    for i, part in enumerate(key.split(".") if key not in table.column_names else [key]):
        if i == 0:
            col = table.column(part).combine_chunks() if part in table.column_names else None
        elif pa.types.is_struct(col.type) and col.type.get_field_index(part) >= 0:
            col = pc.struct_field(col, part)
        else:
            col = None
        if col is None:
            break
    plain = np.zeros(n, dtype=bool)
    if col is None or pa.types.is_null(col.type):
        return pa.nulls(n, _STR), plain
    if pa.types.is_timestamp(col.type):  # Arrow reads some ISO strings as (UTC) times
        return pc.binary_join_element_wise(pc.strftime(col, "%Y-%m-%dT%H:%M:%S"), "Z", "").cast(_STR), plain
    if pa.types.is_nested(col.type):
        return pa.nulls(n, _STR), pc.is_valid(col).to_numpy(zero_copy_only=False)
    return pc.cast(col, _STR), plain


def _interpret(raw: Raw) -> tuple[dict[str, pa.Array], Checks]:
    """BATCH_SCHEMA columns from raw fields, checking every field that can be malformed."""
    checks = Checks(len(raw["start_time"]))
    val = {f: pc.if_else(pc.is_in(v, pa.array(["-", ""], _STR)), _NULL, v) for f, v in raw.items()}  # "-": unset

    def why(field: str, expected: str) -> Callable[[int], str]:
        return lambda j: f"field '{field}': expected {expected}, got {raw[field][j].as_py()!r}"

    cols: dict[str, pa.Array] = {"ts": _timestamps(val["start_time"])}
    checks.add("start_time", pc.is_valid(cols["ts"]), why("start_time", f"an ISO 8601 time in {YEARS[0]}-{YEARS[1]}"))
    code = val["response_code"]
    code_ok = pc.fill_null(pc.match_substring_regex(code, r"^\d{1,3}$"), False)
    checks.add("response_code", pc.or_(pc.is_null(code), code_ok), why("response_code", "an HTTP status"))
    cols["status"] = pc.cast(pc.if_else(code_ok, code, "0"), _I32)
    for field, col in (("bytes_received", "bytes_out"), ("bytes_sent", "bytes_in")):
        count_ok = pc.fill_null(pc.match_substring_regex(val[field], r"^\d{1,18}$"), False)
        checks.add(field, pc.or_(pc.is_null(val[field]), count_ok), why(field, "a byte count"))
        cols[col] = pc.cast(pc.if_else(count_ok, val[field], _NULL), pa.int64())

    method = val["method"]
    connect = pc.fill_null(pc.equal(method, "CONNECT"), False)
    tcp = pc.and_(pc.is_null(method), pc.is_null(val["protocol"]))  # the TCP proxy logs "- - -"
    cols["method"] = method
    cols["protocol"] = pc.if_else(connect, "tunnel", pc.if_else(tcp, "tcp", "http")).cast(_STR)
    cols["pii"] = pii_kinds(pc.if_else(connect, _NULL, val["path"]))

    up = per_unique(val["upstream_host"], endpoint)
    checks.add(
        "upstream_host", pc.or_kleene(pc.is_null(val["upstream_host"]), up["ok"]), why("upstream_host", "HOST:PORT")
    )
    auth = per_unique(val["authority"], endpoint)
    # TLS SNI names the destination of a TCP (passthrough) line; an HTTP line has its authority
    sni = pc.if_else(tcp, pc.utf8_lower(val["requested_server_name"]), _NULL)
    cols["dest_host"] = pc.coalesce(auth["name"], up["name"], sni)
    cols["dest_ip"] = up["ip"]
    # a port only beside the host it belongs to: an IP authority with no upstream names no destination
    cols["dest_port"] = pc.coalesce(up["port"], pc.if_else(pc.is_valid(auth["name"]), auth["port"], None))
    xff = per_unique(val["x_forwarded_for"], lambda v: {"ip": _address(pc.list_element(pc.split_pattern(v, ","), 0))})
    remote = per_unique(val["downstream_remote_address"], lambda v: {"ip": _address(v)})
    cols["source_ip"] = pc.coalesce(xff["ip"], remote["ip"])

    no_upstream = pc.fill_null(per_unique(val["response_flags"], _no_upstream)["hit"], False)
    picked_none = pc.fill_null(pc.equal(raw["upstream_host"], "-"), False)  # direct response, redirect, no route
    via_upstream = pc.fill_null(pc.equal(val["response_code_details"], "via_upstream"), False)  # Istio says so
    cols["egress"] = pc.or_(via_upstream, pc.invert(pc.or_(no_upstream, picked_none)))
    return cols, checks


def _timestamps(values: pa.Array) -> pa.Array:
    """UTC from ISO 8601 (no zone: UTC, as Envoy logs it) or epoch seconds; null where unusable."""
    iso = pc.fill_null(pc.match_substring_regex(values, _RE_ISO), False)
    main = pc.replace_substring(pc.utf8_slice_codeunits(values, 0, 19), " ", "T")
    secs = pc.strptime(pc.if_else(iso, main, _NULL), format="%Y-%m-%dT%H:%M:%S", unit="s", error_is_null=True)
    # strptime rolls 30 February over into March: a day that changed is a bad date
    same_day = pc.equal(pc.day(secs), pc.cast(pc.if_else(iso, pc.utf8_slice_codeunits(main, 8, 10), "0"), pa.int64()))
    suffix = per_unique(pc.utf8_slice_codeunits(values, 19, 64), _fraction_zone)["micros"]
    micros = pc.add(pc.multiply(pc.cast(secs, pa.int64()), 1_000_000), suffix)
    micros = pc.if_else(pc.fill_null(same_day, False), micros, None)
    epoch = pc.fill_null(pc.match_substring_regex(values, _RE_EPOCH), False)
    as_epoch = pc.cast(pc.round(pc.multiply(pc.cast(pc.if_else(epoch, values, "0"), pa.float64()), 1e6)), pa.int64())
    return in_years(pc.if_else(iso, micros, pc.if_else(epoch, as_epoch, None)))


def _fraction_zone(values: pa.Array) -> dict[str, pa.Array]:
    """Microseconds to add for a ".972Z" / ".123456789+02:00" suffix; null when it is neither."""
    m = pc.extract_regex(values, r"^(?:\.(?P<frac>\d{1,9}))?(?:Z|(?P<sign>[+-])(?P<hh>\d{2}):?(?P<mm>\d{2}))?$")
    g = {k: pc.fill_null(pc.struct_field(m, k), "") for k in ("frac", "sign", "hh", "mm")}
    micros = pc.cast(pc.utf8_slice_codeunits(pc.binary_join_element_wise(g["frac"], _s("000000"), _s("")), 0, 6),
                     pa.int64())  # fmt: skip
    hh, mm = (pc.cast(pc.if_else(pc.equal(g[k], ""), "0", g[k]), pa.int64()) for k in ("hh", "mm"))
    offset = pc.multiply(pc.add(pc.multiply(hh, 3600), pc.multiply(mm, 60)), 1_000_000)
    micros = pc.if_else(pc.equal(g["sign"], "+"), pc.subtract(micros, offset), pc.add(micros, offset))
    return {"micros": pc.if_else(pc.is_valid(m), micros, None)}


def _address(values: pa.Array) -> pa.Array:
    """An address as logged, less its port ("10.0.0.1:5000", "[::1]:5000" -> the address); null if empty."""
    v = pc.utf8_trim_whitespace(values)
    m = pc.extract_regex(v, r"^\[(?P<a>[0-9A-Fa-f:.]+)\](?::\d+)?$|^(?P<b>[0-9.]+):\d+$")
    joined = pc.binary_join_element_wise(pc.struct_field(m, "a"), pc.struct_field(m, "b"), _s(""))
    bare = pc.if_else(pc.is_valid(m), joined, v)
    return pc.if_else(pc.equal(bare, ""), _NULL, bare)


def _no_upstream(values: pa.Array) -> dict[str, pa.Array]:
    flags = pc.split_pattern(values, ",")
    hit = pc.is_in(pc.list_flatten(flags), pa.array(NO_UPSTREAM_FLAGS, _STR)).to_numpy(zero_copy_only=False)
    rows = np.zeros(len(values), dtype=bool)
    rows[pc.list_parent_indices(flags).to_numpy()[hit]] = True
    return {"hit": pa.array(rows)}
