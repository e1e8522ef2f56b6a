"""Collect stage, Squid: access.log lines (native, or a custom `logformat`) -> BATCH_SCHEMA rows, vectorized."""

from __future__ import annotations

import codecs
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from monitor.collect.base import LineCollector, Parsed
from monitor.collect.pii import pii_kinds
from monitor.collect.squidformat import LogFormat, compile_logformat, parse_rows
from monitor.records import COLUMNS, Quarantined, empty_frame, frame_from_table, is_ip

# Default `squid` logformat:
#   %ts.%03tu %6tr %>a %Ss/%03>Hs %<st %rm %ru %[un %Sh/%<a %mt
#   time elapsed client code/status bytes method URL user hierarchy/peer type
MIN_FIELDS = 9  # `type` is the only field a truncated or hand-trimmed line may lack
MAX_TS = 7258118400.0  # 2200-01-01T00:00:00Z: anything later is a corrupt time field

_RE_TIME = r"^\d{1,12}(?:\.\d{1,9})?$"
_RE_ELAPSED = r"^-?\d{1,15}$"
_RE_CODE_STATUS = r"^[^/]+/\d{1,6}$"
_RE_BYTES = r"^\d{1,18}$"
_RE_SCHEME = r"^[A-Za-z][A-Za-z0-9+._\-]*:$"  # "_": squid's own cache_object:
# An authority: [userinfo@]host[:port], where host may be a bracketed IPv6 literal. Userinfo
# is skipped so credentials never become a host; a query straight after the host is allowed.
_RE_AUTHORITY = r"^(?:[^@?#]*@)?(?P<host>\[[0-9A-Fa-f:.]+\]|[^\[\]/?#:@]+)(?::(?P<port>\d*))?(?:[?#].*)?$"
# The peer of these hierarchy codes is a cache peer (parent/sibling proxy), not the origin:
# its address says nothing about where the data went, so it must not become dest_ip.
_RE_CACHE_PEER = r"PARENT|SIBLING|CARP|CACHE_DIGEST|STANDBY_POOL"
_NO_EGRESS = ("NONE", "HIER_NONE")  # hit, denied or proxy error: nothing left the proxy
_UTF8_WINDOW = 1 << 16  # bytes of whole lines checked at once when a chunk has invalid UTF-8
_STR = pa.large_string()  # lines are viewed in place over the chunk, which needs 64-bit offsets
_NULL_STR = pa.scalar(None, _STR)
_SCHEMES = pa.array(["http", "https", "ftp", "ws", "wss", "gopher"], _STR)
_DEFAULT_PORTS = pa.array([80, 443, 21, 80, 443, 70], pa.int32())


class SquidCollector(LineCollector):
    """Squid's access.log: the native `squid` logformat, or the one given as `logformat`.

    `logformat` takes a squid.conf `logformat` definition as written after the format's name
    (e.g. `%>a [%tl] "%rm %ru HTTP/%rv" %>Hs %<st %Ss:%Sh %<a %>st`) or a built-in name
    (squid, common, combined, referrer, useragent). The native format keeps its own fast path;
    any other is compiled into one regex (monitor/collect/squidformat.py).
    """

    name: ClassVar[str] = "squid"
    description: ClassVar[str] = "Squid access.log: native format, or any squid.conf logformat (option logformat)"
    sample: ClassVar[bytes] = (
        b"1677971734.079   1234 10.0.0.5 TCP_TUNNEL/200 39 CONNECT example.com:443 - "
        b"HIER_DIRECT/93.184.216.34 -\n"
        b"1677971735.123    567 10.0.0.6 TCP_MISS/200 5432 GET http://Example.org/i.html alice "
        b"HIER_DIRECT/93.184.216.35 text/html\n"
        b"1677971736.456      0 10.0.0.7 TCP_DENIED/403 256 POST http://blocked.example/api - "
        b"HIER_NONE/- text/html\n"
    )

    def __init__(self, logformat: str | None = None) -> None:
        self.logformat = logformat
        self._format: LogFormat | None = None if logformat is None else compile_logformat(logformat)

    def parse_chunk(self, chunk: bytes, *, source: str, first_line: int, base_offset: int) -> Parsed:
        starts, ends = _line_bounds(chunk)
        n = len(starts)
        if n == 0:
            return Parsed(frame=empty_frame())

        def where(i: int) -> tuple[int, int, bytes]:
            s, e = int(starts[i]), int(ends[i])
            return first_line + i, base_offset + s, chunk[s:e]

        quarantined: dict[int, Quarantined] = {}

        def quarantine(i: int, reason: str, field: str | None) -> None:
            line, offset, raw = where(i)
            quarantined[i] = Quarantined(source, line, offset, reason, raw, field)

        text, bad_utf8 = _decode_lines(chunk, starts, ends)
        for i in bad_utf8:
            quarantine(i, "invalid UTF-8", None)

        # Arrow yields an empty token for leading/trailing whitespace (the kept "\n" included),
        # so trim first; a line that trims to nothing is blank (an invalid one is null: -1).
        text = pc.ascii_trim_whitespace(text)
        length = pc.fill_null(pc.binary_length(text), -1).to_numpy()
        blank_lines = int(np.count_nonzero(length == 0))
        if self._format is None:
            cand, rows = _native_rows(text, length, quarantine)
        else:
            cand, rows = parse_rows(self._format, text, np.flatnonzero(length > 0), quarantine)
        for j, field, reason in rows.pop_rejects():
            quarantine(int(cand[j]), reason, field)

        good = cand[rows.ok]
        line_no = pa.array(good + first_line, pa.int64())
        offset = pa.array(starts[good] + base_offset, pa.int64())
        table = _table(rows.columns(), len(good), line=line_no, offset=offset)
        return Parsed(
            frame=frame_from_table(table),
            quarantined=[quarantined[i] for i in sorted(quarantined)],
            lines_read=n,
            blank_lines=blank_lines,
        )


def _native_rows(
    text: pa.Array, length: np.ndarray[Any, Any], quarantine: Callable[[int, str, str | None], None]
) -> tuple[np.ndarray[Any, Any], _Rows]:
    fields = pc.ascii_split_whitespace(text)
    nf = pc.fill_null(pc.list_value_length(fields), -1).to_numpy().copy()
    nf[length == 0] = 0
    for short in np.flatnonzero((nf > 0) & (nf < MIN_FIELDS)).tolist():
        quarantine(
            short,
            f"expected at least {MIN_FIELDS} whitespace-separated fields "
            f"(time elapsed client code/status bytes method URL user hierarchy/peer "
            f"[type]), got {nf[short]}",
            None,
        )
    cand = np.flatnonzero(nf >= MIN_FIELDS)
    return cand, _parse_fields(fields.take(pa.array(cand)))


def _line_bounds(chunk: bytes) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """Start and end (exclusive, before b"\\n") of every line; a final unterminated line counts."""
    buf = np.frombuffer(chunk, dtype=np.uint8)
    nl = np.flatnonzero(buf == 0x0A).astype(np.int64)
    ends = nl if chunk.endswith(b"\n") or not chunk else np.append(nl, len(chunk))
    starts = np.concatenate(([0], nl + 1))[: len(ends)].astype(np.int64)
    return starts, ends


def _decode_lines(chunk: bytes, starts: np.ndarray[Any, Any], ends: np.ndarray[Any, Any]) -> tuple[pa.Array, list[int]]:
    """Lines as an Arrow string array (zero-copy over `chunk`); lines with invalid UTF-8 are null."""
    n = len(starts)
    # Line i spans chunk[starts[i]:starts[i+1]]: its "\n" stays inside it, which whitespace
    # splitting ignores; that lets Arrow view the chunk without copying it.
    offsets = np.append(starts, len(chunk)).astype(np.int64)
    lines = pa.Array.from_buffers(pa.large_binary(), n, [None, pa.py_buffer(offsets), pa.py_buffer(chunk)])
    try:
        return lines.cast(_STR), []
    except pa.ArrowInvalid:
        pass
    bad = _bad_utf8_lines(chunk, starts, ends)
    try:
        return _null_out(lines, bad).cast(_STR), bad
    except pa.ArrowInvalid:
        # Arrow's validator and Python's disagree on some sequence: let Arrow judge each line.
        bad = [i for i in range(n) if not _arrow_utf8(lines[i].as_py())]
        return _null_out(lines, bad).cast(_STR), bad


def _bad_utf8_lines(chunk: bytes, starts: np.ndarray[Any, Any], ends: np.ndarray[Any, Any]) -> list[int]:
    """Indices of the lines that are not valid UTF-8 (Python's judgement)."""
    # Decode windows of whole lines and look line by line only inside a window that fails:
    # a UnicodeDecodeError keeps a copy of its whole input, so decoding the rest of the chunk
    # after each error would be quadratic in a chunk with many bad lines.
    view = memoryview(chunk)
    bad: list[int] = []
    i, n = 0, len(starts)
    while i < n:
        j = max(int(np.searchsorted(starts, starts[i] + _UTF8_WINDOW)), i + 1)
        try:
            codecs.utf_8_decode(view[starts[i] : ends[j - 1]], "strict", True)
        except UnicodeDecodeError:
            for k in range(i, j):
                try:
                    codecs.utf_8_decode(view[starts[k] : ends[k]], "strict", True)
                except UnicodeDecodeError:
                    bad.append(k)
        i = j
    return bad


def _null_out(lines: pa.Array, rows: list[int]) -> pa.Array:
    mask = np.zeros(len(lines), dtype=bool)
    mask[rows] = True
    return pc.if_else(pa.array(mask), pa.scalar(None, lines.type), lines)


def _arrow_utf8(raw: bytes) -> bool:
    try:
        pa.array([raw], pa.binary()).cast(pa.string())
    except pa.ArrowInvalid:
        return False
    return True


class _Rows:
    """Per-field arrays for candidate lines, validity masks in field order, and final columns."""

    def __init__(self, n: int, f: list[pa.Array] | None = None) -> None:
        self.f = f or []
        self.ok = np.ones(n, dtype=bool)
        self._checks: list[tuple[str, np.ndarray[Any, Any], Callable[[int], str]]] = []
        self.cols: dict[str, pa.Array] = {}

    def check(self, field: str, ok: pa.Array, why: Callable[[int], str]) -> None:
        """Record one validity test; `why(j)` words the reason for a row that fails it."""
        mask = pc.fill_null(ok, False).to_numpy(zero_copy_only=False)
        self._checks.append((field, mask, why))
        self.ok &= mask

    def value(self, k: int, j: int) -> str:
        return str(self.f[k][j].as_py())

    def pop_rejects(self) -> list[tuple[int, str, str]]:
        """(candidate index, field, reason) of each rejected row, naming its first bad field."""
        out = []
        for j in np.flatnonzero(~self.ok):
            for field, mask, why in self._checks:
                if not mask[j]:
                    out.append((int(j), field, why(int(j))))
                    break
        return out

    def columns(self) -> dict[str, pa.Array]:
        keep = pa.array(self.ok)
        return {k: v.filter(keep) for k, v in self.cols.items()}


def _parse_fields(fields: pa.ListArray) -> _Rows:
    r = _Rows(len(fields), [pc.list_element(fields, k) for k in range(MIN_FIELDS)])
    f = r.f

    t_ok = pc.match_substring_regex(f[0], _RE_TIME)
    r.check("time", t_ok, lambda j: f"field 'time': expected epoch seconds, got {r.value(0, j)!r}")
    secs = pc.cast(pc.if_else(t_ok, f[0], "0"), pa.float64())
    r.check(
        "time", pc.less(secs, MAX_TS), lambda j: f"field 'time': epoch seconds {r.value(0, j)} are after the year 2200"
    )
    micros = pc.cast(pc.round(pc.multiply(secs, 1e6)), pa.int64())
    r.cols["ts"] = pc.cast(micros, pa.timestamp("us", tz="UTC"))

    r.check(
        "elapsed",
        pc.match_substring_regex(f[1], _RE_ELAPSED),
        lambda j: f"field 'elapsed': expected milliseconds, got {r.value(1, j)!r}",
    )
    r.cols["source_ip"] = f[2]

    cs = _per_unique(f[3], _code_status)
    r.check(
        "code/status",
        cs["ok"],
        lambda j: f"field 'code/status': expected CODE/STATUS with an integer status, got {r.value(3, j)!r}",
    )
    r.cols["status"] = cs["status"]

    b_ok = pc.match_substring_regex(f[4], _RE_BYTES)
    r.check("bytes", b_ok, lambda j: f"field 'bytes': expected a byte count, got {r.value(4, j)!r}")
    r.cols["bytes_in"] = pc.cast(pc.if_else(b_ok, f[4], "0"), pa.int64())

    r.cols["method"] = _dash_null(f[5])
    _parse_target(r, f[5], f[6])
    r.cols["source_user"] = _dash_null(f[7])
    hp = _per_unique(f[8], _hierarchy)
    r.cols["egress"], r.cols["dest_ip"] = hp["egress"], hp["dest_ip"]
    return r


def _per_unique(arr: pa.Array, fn: Callable[[pa.Array], dict[str, pa.Array]]) -> dict[str, pa.Array]:
    """`fn` run once per distinct value, its answers spread back over the rows.

    A log repeats the same few status codes, hierarchy/peer pairs and hosts on millions of
    lines, so the costly work (regexes, IP validation) scales with distinct values only.
    """
    enc = pc.dictionary_encode(arr)
    return {k: pc.take(v, enc.indices) for k, v in fn(enc.dictionary).items()}


def _code_status(values: pa.Array) -> dict[str, pa.Array]:
    ok = pc.match_substring_regex(values, _RE_CODE_STATUS)
    halves = pc.split_pattern(pc.if_else(ok, values, "-/0"), "/", max_splits=1, reverse=True)
    return {"ok": ok, "status": pc.cast(pc.list_element(halves, 1), pa.int32())}


def _parse_target(
    r: _Rows,
    method: pa.Array,
    url: pa.Array,
    *,
    pii_url: pa.Array | None = None,
    fallback: tuple[pa.Array, pa.Array] | None = None,
) -> None:
    """dest_host, dest_port and protocol from the request target (CONNECT or absolute URI).

    `fallback` (authority, scheme) stands in for a target that is neither, e.g. an origin-form
    "/path" beside a logged Host header; `pii_url` is the URL searched for personal data.
    """
    connect = pc.fill_null(pc.equal(method, "CONNECT"), False)
    # Squid logs requests that never became a transaction (client closed early, garbage on
    # the wire) with a pseudo-URL "error:..." and no method; they are rows without a host.
    error_line = pc.or_kleene(pc.starts_with(url, "error:"), pc.equal(url, "-"))
    # Splitting at the first three "/" is several times faster than one capturing regex over
    # whole URLs, and leaves the short scheme and authority parts to parse per distinct value.
    head, slash, uri_authority, _ = _split(url, "/", 3)
    sch = _per_unique(head, _scheme)
    is_uri = pc.fill_null(pc.and_kleene(sch["ok"], pc.equal(slash, "")), False)
    # CONNECT carries host:port (the whole target); every other method must carry scheme://host.
    other = _NULL_STR if fallback is None else fallback[0]
    authority = pc.if_else(is_uri, uri_authority, pc.if_else(connect, url, other))
    auth = _per_unique(authority, _authority)
    usable = pc.fill_null(auth["ok"], False)
    r.check(
        "URL",
        pc.or_kleene(usable, error_line),
        lambda j: f"field 'URL': no destination host in {url[j].as_py()!r} (method {method[j].as_py()!r})",
    )
    r.check(
        "URL",
        pc.invert(pc.and_kleene(usable, pc.invert(auth["port_ok"]))),
        lambda j: f"field 'URL': port out of range in {url[j].as_py()!r}",
    )

    default_port = pc.if_else(is_uri, sch["default_port"], pa.scalar(None, pa.int32()))
    scheme = sch["scheme"]
    if fallback is not None:
        use = pc.invert(pc.or_kleene(is_uri, connect))
        scheme = pc.if_else(use, fallback[1], scheme)
        default_port = pc.if_else(use, pc.take(_DEFAULT_PORTS, pc.index_in(scheme, _SCHEMES)), default_port)
    port = pc.coalesce(auth["port"], default_port)
    r.cols["dest_host"] = pc.if_else(usable, auth["host"], _NULL_STR)
    r.cols["dest_port"] = pc.if_else(usable, port, pa.scalar(None, pa.int32()))
    r.cols["protocol"] = pc.if_else(usable, pc.if_else(connect, "tunnel", scheme), _NULL_STR)
    # a CONNECT target is host:port only; paths and query strings are where personal data leaks
    r.cols["pii"] = pii_kinds(pc.if_else(connect, "", url if pii_url is None else pii_url))


def _scheme(values: pa.Array) -> dict[str, pa.Array]:
    scheme = pc.utf8_lower(pc.utf8_rtrim(values, ":"))
    return {
        "ok": pc.match_substring_regex(values, _RE_SCHEME),
        "scheme": scheme,
        "default_port": pc.take(_DEFAULT_PORTS, pc.index_in(scheme, _SCHEMES)),
    }


def _authority(values: pa.Array) -> dict[str, pa.Array]:
    hp = pc.extract_regex(values, _RE_AUTHORITY)
    host = pc.utf8_lower(pc.utf8_trim(pc.struct_field(hp, "host"), "[]"))
    host = pc.utf8_rtrim(host, ".")  # "example.com." and "example.com" are one destination
    port_s = pc.struct_field(hp, "port")
    has_port = pc.fill_null(pc.match_substring_regex(port_s, r"^\d{1,5}$"), False)
    port = pc.cast(pc.if_else(has_port, port_s, "0"), pa.int32())
    return {
        "ok": pc.and_(pc.is_valid(hp), pc.not_equal(host, "")),
        "host": host,
        "port": pc.if_else(has_port, port, pa.scalar(None, pa.int32())),
        "port_ok": pc.fill_null(pc.less_equal(port, 65535), True),
    }


def _hierarchy(values: pa.Array) -> dict[str, pa.Array]:
    """egress from the hierarchy code; dest_ip from the peer when it is the origin's address."""
    hier, peer = _split(values, "/", 1)
    peer = pc.utf8_trim(peer, "[]")
    ips = pa.array([p for p in peer.to_pylist() if p is not None and is_ip(p)], _STR)
    origin = pc.invert(pc.match_substring_regex(hier, _RE_CACHE_PEER))
    return {
        "egress": pc.invert(pc.is_in(hier, pa.array(_NO_EGRESS, _STR))),
        "dest_ip": pc.if_else(pc.and_(pc.is_in(peer, ips), origin), peer, _NULL_STR),
    }


def _split(arr: pa.Array, sep: str, n: int) -> list[pa.Array]:
    """The n parts of each string before its first n `sep`, then the rest ("" where missing)."""
    # Padding with n separators gives every row n+1 parts, so list_element never runs past
    # a short list; the rest then ends with exactly one stray separator only when n == 1.
    padded = pc.binary_join_element_wise(arr, pa.scalar(sep * n, _STR), pa.scalar("", _STR))
    parts = pc.split_pattern(padded, sep, max_splits=n)
    out = [pc.list_element(parts, k) for k in range(n + 1)]
    if n == 1:
        out[1] = pc.utf8_slice_codeunits(out[1], 0, -1)
    return out


def _dash_null(arr: pa.Array) -> pa.Array:
    return pc.if_else(pc.equal(arr, "-"), _NULL_STR, arr)


def _table(cols: dict[str, pa.Array], n: int, **extra: pa.Array) -> pa.Table:
    """Columns in BATCH_SCHEMA; the ones the default logformat never carries are constant."""
    const: dict[str, pa.Array] = {
        "collector": pa.repeat(pa.scalar(SquidCollector.name), n),
        "bytes_out": pa.nulls(n, pa.int64()),  # the native format has no request size (%>st)
        "sample_rate": pa.repeat(pa.scalar(1, pa.int32()), n),
    }
    data = {**const, **cols, **extra}
    return pa.table({k: data[k] for k in COLUMNS})
