"""Collect stage: Arrow text kernels every line collector shares (split, decode, quarantine bad UTF-8, URL parts)."""

from __future__ import annotations

import codecs
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from monitor.collect.base import Parsed
from monitor.records import Quarantined, is_ip

STR = pa.large_string()  # lines are viewed in place over the chunk, which needs 64-bit offsets
NULL_STR = pa.scalar(None, STR)
_NULL_I32 = pa.scalar(None, pa.int32())
_UTF8_WINDOW = 1 << 16  # bytes of whole lines checked at once when a chunk has invalid UTF-8
_SCHEMES = pa.array(["http", "https", "ftp", "ws", "wss", "gopher"], STR)
_DEFAULT_PORTS = pa.array([80, 443, 21, 80, 443, 70], pa.int32())
_RE_SCHEME = r"^[A-Za-z][A-Za-z0-9+._\-]*:$"  # "_": squid's own cache_object:
# An authority: [userinfo@]host[:port], where host may be a bracketed IPv6 literal. Userinfo
# is skipped so credentials never become a host; a query straight after the host is allowed.
_RE_AUTHORITY = r"^(?:[^@?#]*@)?(?P<host>\[[0-9A-Fa-f:.]+\]|[^\[\]/?#:@]+)(?::(?P<port>\d*))?(?:[?#].*)?$"

Quarantine = Callable[[int, str, str | None], None]  # (line index in the chunk, reason, field)


# ------------------------------------------------------------------ a chunk cut into lines


class ChunkLines:
    """A chunk cut into lines and decoded; lines that are not UTF-8 are null and already quarantined.

    The preamble of every line collector's parse_chunk: where each line starts and ends, its
    text (zero-copy over the chunk, its "\\n" kept), and the quarantine keyed by line index.
    """

    def __init__(self, chunk: bytes, source: str, first_line: int, base_offset: int) -> None:
        self.chunk, self.source, self.first_line, self.base_offset = chunk, source, first_line, base_offset
        self.starts, self.ends = line_bounds(chunk)
        self.n = len(self.starts)
        self.quarantined: dict[int, Quarantined] = {}
        self.text, self.bad_utf8 = decode_lines(chunk, self.starts, self.ends)
        for i in self.bad_utf8:
            self.quarantine(i, "invalid UTF-8")

    def quarantine(self, i: int, reason: str, field: str | None = None) -> None:
        s, e = int(self.starts[i]), int(self.ends[i])
        self.quarantined[i] = Quarantined(
            self.source, self.first_line + i, self.base_offset + s, reason, self.chunk[s:e], field
        )

    def trimmed(self) -> tuple[pa.Array, np.ndarray[Any, Any]]:
        """Every line less leading and trailing ASCII white space, and its length (0: blank, -1: invalid UTF-8)."""
        # Arrow yields an empty token for leading/trailing whitespace (the kept "\n" included),
        # so trim first; a line that trims to nothing is blank (an invalid one is null: -1).
        text = pc.ascii_trim_whitespace(self.text)
        length = pc.fill_null(pc.binary_length(text), -1).to_numpy(zero_copy_only=False)
        return text, length

    def origin(self, idx: np.ndarray[Any, Any]) -> dict[str, pa.Array]:
        """The `line` and `offset` columns of lines `idx` (indices into the chunk)."""
        return {
            "line": pa.array(idx + self.first_line, pa.int64()),
            "offset": pa.array(self.starts[idx] + self.base_offset, pa.int64()),
        }

    def result(self, frame: pa.Table, blank_lines: int) -> Parsed:
        """What became of the chunk: the rows, the quarantine in line order, and the counts."""
        return Parsed(
            table=frame,
            quarantined=[self.quarantined[i] for i in sorted(self.quarantined)],
            lines_read=self.n,
            blank_lines=blank_lines,
        )


def line_bounds(chunk: bytes) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """Start and end (exclusive, before b"\\n") of every line; a final unterminated line counts."""
    buf = np.frombuffer(chunk, dtype=np.uint8)
    nl = np.flatnonzero(buf == 0x0A).astype(np.int64)
    ends = nl if chunk.endswith(b"\n") or not chunk else np.append(nl, len(chunk))
    starts = np.concatenate(([0], nl + 1))[: len(ends)].astype(np.int64)
    return starts, ends


def decode_lines(chunk: bytes, starts: np.ndarray[Any, Any], ends: np.ndarray[Any, Any]) -> tuple[pa.Array, list[int]]:
    """Lines as an Arrow string array (zero-copy over `chunk`); lines with invalid UTF-8 are null."""
    n = len(starts)
    # Line i spans chunk[starts[i]:starts[i+1]]: its "\n" stays inside it, which whitespace
    # splitting ignores; that lets Arrow view the chunk without copying it.
    offsets = np.append(starts, len(chunk)).astype(np.int64)
    lines = pa.Array.from_buffers(pa.large_binary(), n, [None, pa.py_buffer(offsets), pa.py_buffer(chunk)])
    try:
        return lines.cast(STR), []
    except pa.ArrowInvalid:
        pass
    bad = _bad_utf8_lines(chunk, starts, ends)
    try:
        return _null_out(lines, bad).cast(STR), bad
    except pa.ArrowInvalid:
        # Arrow's validator and Python's disagree on some sequence: let Arrow judge each line.
        bad = [i for i in range(n) if not _arrow_utf8(lines[i].as_py())]
        return _null_out(lines, bad).cast(STR), bad


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


# ------------------------------------------------------------------ work per distinct value, splitting


def per_unique(arr: pa.Array, fn: Callable[[pa.Array], dict[str, pa.Array]]) -> dict[str, pa.Array]:
    """`fn` run once per distinct value, its answers spread back over the rows.

    A log repeats the same few status codes, hierarchy/peer pairs and hosts on millions of
    lines, so the costly work (regexes, IP validation) scales with distinct values only.
    """
    enc = pc.dictionary_encode(arr)
    return {k: pc.take(v, enc.indices) for k, v in fn(enc.dictionary).items()}


def unique_rows(cols: list[pa.Array] | list[pa.ChunkedArray]) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """(each row's index into the distinct rows of `cols`, the first row of each), in order of first appearance.

    Null is a value of its own. Each column is dictionary-encoded and the codes are combined two
    at a time and encoded again, so the combined code never outgrows the number of rows (much
    cheaper than joining the values per row and encoding the joined text).
    """
    code: np.ndarray[Any, Any] | None = None
    for col in cols:
        enc = pc.dictionary_encode(col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col)
        c = np.asarray(pc.fill_null(enc.indices, -1).to_numpy(zero_copy_only=False), dtype=np.int64) + 1
        if code is not None:
            both = pc.dictionary_encode(pa.array(code * (len(enc.dictionary) + 1) + c)).indices
            c = np.asarray(both.to_numpy(), dtype=np.int64)
        code = c
    if code is None or len(code) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    if len(cols) == 1:  # dictionary order follows first appearance, but null (0 here) may come late
        code = np.asarray(pc.dictionary_encode(pa.array(code)).indices.to_numpy(), dtype=np.int64)
    # codes appear in order 0, 1, 2, ...: row i is the first of its kind where the running maximum grows
    top = np.maximum.accumulate(code)
    first = np.flatnonzero(np.concatenate(([True], top[1:] > top[:-1])))
    return code, first


def matches(values: pa.Array, regex: str, fast: pa.Array) -> pa.Array:
    """match_substring_regex(values, regex), run only where `fast` (cheap, and implying a match) is not true."""
    fast = pc.fill_null(fast, False)
    rest = pc.invert(fast)
    if not pc.any(rest).as_py():
        return fast
    return pc.replace_with_mask(fast, rest, pc.match_substring_regex(values.filter(rest), regex))


def decimal(values: pa.Array, max_digits: int) -> pa.Array:
    """Whether each string is 1 to `max_digits` ASCII digits (a regex's ^\\d{1,n}$ at a fifth of its cost)."""
    return pc.and_(pc.ascii_is_decimal(values), pc.less_equal(pc.binary_length(values), max_digits))


def split(arr: pa.Array, sep: str, n: int) -> list[pa.Array]:
    """The n parts of each string before its first n `sep`, then the rest ("" where missing); null stays null."""
    return _parts(arr, sep, n, keep_null=True)


def split_n(arr: pa.Array, sep: str, n: int) -> list[pa.Array]:
    """The n parts before the first n `sep`, then the rest ("" where missing). Null counts as ""."""
    return _parts(arr, sep, n, keep_null=False)


def _parts(arr: pa.Array, sep: str, n: int, keep_null: bool) -> list[pa.Array]:
    # One split, then part k of every row by a take at (start of its list + k), masked where the
    # list is shorter: about half the time of padding each string with n separators so that
    # list_element never runs past a short list.
    lists = pc.split_pattern(arr, sep, max_splits=n)
    if isinstance(lists, pa.ChunkedArray):
        lists = lists.combine_chunks()
    count = np.asarray(pc.fill_null(pc.list_value_length(lists), 0).to_numpy(zero_copy_only=False))
    starts = np.asarray(lists.offsets)[:-1].astype(np.int64)
    starts -= starts[0] if len(starts) else 0
    flat = lists.flatten()
    blank = _s("")
    out = []
    for k in range(n + 1):
        part = pc.fill_null(flat.take(pa.array(starts + k, mask=count <= k)), blank)
        out.append(pc.if_else(pc.is_valid(arr), part, NULL_STR) if keep_null and arr.null_count else part)
    return out


def rsplit1(arr: pa.Array, sep: str) -> tuple[pa.Array, pa.Array]:
    """(before, after) the last `sep`; ("", value) when there is none. Null counts as ""."""
    padded = pc.binary_join_element_wise(_s(sep), pc.fill_null(arr, _s("")), _s(""))
    before, after = elements(pc.split_pattern(padded, sep, max_splits=1, reverse=True), [0, 1])
    return pc.utf8_slice_codeunits(before, 1), after


def tokens_at_least(arr: pa.Array, n: int) -> pa.Array:
    """Whitespace-separated tokens, padded with "-" (unset) to at least n so any of the first n can be taken."""
    padded = pc.binary_join_element_wise(pc.ascii_trim_whitespace(arr), _s(" -" * n), _s(""))
    return pc.ascii_split_whitespace(padded)


def elements(lists: pa.Array, positions: Iterable[int]) -> list[pa.Array]:
    """The items at `positions` of every list, which must all be that long (a take each: list_element is slower)."""
    starts = np.asarray(lists.offsets)[:-1].astype(np.int64)
    starts -= starts[0] if len(starts) else 0
    flat = lists.flatten()
    return [flat.take(pa.array(starts + k)) for k in positions]


def _s(value: str) -> pa.Scalar:
    return pa.scalar(value, STR)


# ------------------------------------------------------------------ URL parts (run per distinct value)


def scheme(values: pa.Array) -> dict[str, pa.Array]:
    """A URL's "scheme:" part: whether it is one, the scheme in lower case and its default port."""
    name = pc.utf8_lower(pc.utf8_rtrim(values, ":"))
    return {"ok": pc.match_substring_regex(values, _RE_SCHEME), "scheme": name, "default_port": default_port(name)}


def default_port(schemes: pa.Array) -> pa.Array:
    """The port a URL of each (lower-case) scheme goes to when it names none; null for other schemes."""
    return pc.take(_DEFAULT_PORTS, pc.index_in(schemes, _SCHEMES))


def authority(values: pa.Array) -> dict[str, pa.Array]:
    """[userinfo@]host[:port]: whether a host is there, the host (lower case, no root dot) and the port."""
    hp = pc.extract_regex(values, _RE_AUTHORITY)
    host = pc.utf8_lower(pc.utf8_trim(pc.struct_field(hp, "host"), "[]"))
    host = pc.utf8_rtrim(host, ".")  # "example.com." and "example.com" are one destination
    port_s = pc.struct_field(hp, "port")
    has_port = pc.fill_null(pc.match_substring_regex(port_s, r"^\d{1,5}$"), False)
    port = pc.cast(pc.if_else(has_port, port_s, "0"), pa.int32())
    return {
        "ok": pc.and_(pc.is_valid(hp), pc.not_equal(host, "")),
        "host": host,
        "port": pc.if_else(has_port, port, _NULL_I32),
        "port_ok": pc.fill_null(pc.less_equal(port, 65535), True),
    }


def endpoint(values: pa.Array) -> dict[str, pa.Array]:
    """host[:port] or scheme://host:port (Envoy's UPSTREAM_HOST tcp://): a name or an IP, and the port."""
    a = authority(pc.replace_substring_regex(values, r"^[A-Za-z][A-Za-z0-9+.\-]*://", ""))
    plausible = pc.match_substring_regex(a["host"], r"^[a-z0-9._\-:%~]+$")  # no spaces, quotes, slashes
    ok = pc.fill_null(pc.and_(pc.and_(a["ok"], plausible), pc.fill_null(a["port_ok"], True)), False)
    host = pc.if_else(ok, a["host"], NULL_STR)
    ip = pc.fill_null(pc.is_in(host, pa.array([h for h in host.to_pylist() if h and is_ip(h)], STR)), False)
    port = pc.if_else(ok, a["port"], _NULL_I32)
    return {"ok": ok, "name": pc.if_else(ip, NULL_STR, host), "ip": pc.if_else(ip, host, NULL_STR), "port": port}
