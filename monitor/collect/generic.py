"""Collect stage, secure web gateway exports: JSON lines and CSV, mapped by field name onto BATCH_SCHEMA rows."""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import gzip
import json
import re
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, BinaryIO, ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from monitor.collect.base import LineCollector, Parsed
from monitor.collect.pii import pii_kinds
from monitor.collect.squid import _authority, _decode_lines, _line_bounds, _per_unique
from monitor.errors import UsageError
from monitor.records import BATCH_SCHEMA, COLUMNS, Quarantined, empty_frame, frame_from_table, is_ip

# BATCH_SCHEMA fields an export can fill, in the order of xborder's own CSV layout (the default).
FIELDS = ("ts", "source_ip", "source_user", "dest_host", "dest_ip", "dest_port", "method", "status", "bytes_out",
          "bytes_in", "url")  # fmt: skip
DESTINATION = ("dest_host", "dest_ip", "url")  # a row needs one of these
TS_FORMATS = ("auto", "epoch", "epoch_ms", "epoch_us", "iso8601")
BLOCKED = ("block", "blocked", "deny", "denied", "drop", "dropped", "reject", "rejected")
MAX_TS_US = 7258118400 * 10**6  # 2200-01-01T00:00:00Z: anything later is a corrupt time field
JSON_BLOCK = 2048  # lines per pyarrow.json retry when a whole chunk does not parse
_NUM = r"^\s*\d{1,16}(?:\.\d{0,9})?\s*$"
_ISO = (r"^\s*(?P<d>\d{4}-\d{2}-\d{2})[T ](?P<t>\d{2}:\d{2}:\d{2})(?:[.,](?P<f>\d{1,9}))?\s*"
        r"(?P<z>[Zz]|UTC|[+-]\d{2}(?::?\d{2})?)?\s*$")  # fmt: skip
_HOST = r"^[^\s/\\@<>\"']+$"  # lenient: anything that could name a host, nothing that is clearly not one
_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_IPV4 = rf"^{_OCTET}(?:\.{_OCTET}){{3}}$"
_STR = pa.string()
_NULL = pa.scalar(None, _STR)
_SPACE = np.array([0x20, 0x09, 0x0D, 0x0B, 0x0C], dtype=np.uint8)  # what counts as blank at a line's start
Part = tuple[dict[str, pa.Array], np.ndarray]  # BATCH_SCHEMA columns (a subset) and the chunk lines they came from


class Lines:
    """One chunk cut into lines with the bookkeeping every collector needs: origins, quarantine, blanks."""

    def __init__(self, chunk: bytes, source: str, first_line: int, base_offset: int) -> None:
        self.chunk, self.source, self.first_line, self.base_offset = chunk, source, first_line, base_offset
        self.starts, self.ends = _line_bounds(chunk)
        self.n = len(self.starts)
        self.quarantined: dict[int, Quarantined] = {}
        self.blank = np.zeros(self.n, dtype=bool)
        self.first = np.zeros(self.n, dtype=np.uint8)  # each line's first byte that is not blank (0: none)
        self.text = pa.array([], _STR)
        if self.n:
            text, bad = _decode_lines(chunk, self.starts, self.ends)
            self.text = pc.utf8_rtrim(text, characters="\r\n").cast(_STR)
            for i in bad:
                self.quarantine(i, "invalid UTF-8")
            buf = np.frombuffer(chunk, dtype=np.uint8)
            empty = self.starts == self.ends
            self.first[~empty] = buf[self.starts[~empty]]
            # only lines that start with white space are looked at one by one (rare in logs)
            for i in np.flatnonzero(np.isin(self.first, _SPACE)).tolist():
                rest = chunk[int(self.starts[i]) : int(self.ends[i])].lstrip(bytes(_SPACE))
                self.first[i] = rest[0] if rest else 0
            self.blank = self.first == 0
            self.blank[bad] = False

    def quarantine(self, i: int, reason: str, field: str | None = None) -> None:
        s, e = int(self.starts[i]), int(self.ends[i])
        q = Quarantined(self.source, self.first_line + i, self.base_offset + s, reason, self.chunk[s:e], field)
        self.quarantined.setdefault(i, q)

    def take(self, idx: np.ndarray) -> pa.Array:
        """The text of lines `idx` (a slice when they are consecutive, as most runs of log lines are)."""
        if len(idx) and int(idx[-1]) - int(idx[0]) + 1 == len(idx):
            return self.text.slice(int(idx[0]), len(idx))
        return self.text.take(pa.array(idx, pa.int64()))

    def live(self) -> np.ndarray:
        """Indices of the lines that are neither blank nor already quarantined."""
        keep = ~self.blank
        keep[list(self.quarantined)] = False
        return np.flatnonzero(keep)

    def starting_with(self, idx: np.ndarray, chars: str) -> np.ndarray:
        """The lines of `idx` whose first non-blank character is one of `chars` (ASCII)."""
        found: np.ndarray = idx[np.isin(self.first[idx], np.frombuffer(chars.encode(), dtype=np.uint8))]
        return found

    def parsed(self, parts: list[Part], collector: str) -> Parsed:
        tables = [_table(cols, idx, self, collector) for cols, idx in parts if len(idx)]
        table = pa.concat_tables(tables).sort_by("line") if tables else None
        blank = int(np.count_nonzero(self.blank))
        return Parsed(
            frame=empty_frame() if table is None else frame_from_table(table),
            quarantined=[self.quarantined[i] for i in sorted(self.quarantined)],
            lines_read=self.n,
            blank_lines=blank,
        )


def _table(cols: dict[str, pa.Array], idx: np.ndarray, lines: Lines, collector: str) -> pa.Table:
    n = len(idx)
    fixed = {
        "collector": pa.repeat(pa.scalar(collector), n),
        "sample_rate": pa.repeat(pa.scalar(1, pa.int32()), n),
        "egress": pa.repeat(pa.scalar(True), n),
        "line": pa.array(idx + lines.first_line, pa.int64()),
        "offset": pa.array(lines.starts[idx] + lines.base_offset, pa.int64()),
    }
    data = {**fixed, **cols}
    out = [data[k].cast(BATCH_SCHEMA.field(k).type) if k in data else pa.nulls(n, BATCH_SCHEMA.field(k).type)
           for k in COLUMNS]  # fmt: skip
    return pa.Table.from_arrays(out, schema=BATCH_SCHEMA)


class Checks:
    """Validity tests in field order; a rejected row is quarantined with its first failing field."""

    def __init__(self, n: int) -> None:
        self.ok = np.ones(n, dtype=bool)
        self._tests: list[tuple[str, np.ndarray, str, pa.Array | None]] = []

    def check(self, field: str, ok: Any, expected: str, values: pa.Array | None = None) -> None:
        mask = np.asarray(ok) if isinstance(ok, np.ndarray) else pc.fill_null(ok, False).to_numpy(zero_copy_only=False)
        self._tests.append((field, mask, expected, values))
        self.ok &= mask

    def quarantine(self, lines: Lines, idx: np.ndarray) -> np.ndarray:
        """Quarantine the rejected rows; the kept rows' chunk line indices."""
        for j in np.flatnonzero(~self.ok).tolist():
            for field, mask, expected, values in self._tests:
                if not mask[j]:
                    got = "" if values is None else f", got {_show(values[j].as_py())}"
                    lines.quarantine(int(idx[j]), f"field '{field}': {expected}{got}", field)
                    break
        return idx[self.ok]

    def keep(self, cols: dict[str, pa.Array]) -> dict[str, pa.Array]:
        mask = pa.array(self.ok)
        return {k: v.filter(mask) for k, v in cols.items()}


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


# ------------------------------------------------------------------ value coercion (string or typed input)


def as_text(arr: pa.Array | None, n: int = 0) -> pa.Array:
    """Strings; JSON numbers/bools as their text; lists and objects as null; "" and "-" as null."""
    if arr is None:
        return pa.nulls(n, _STR)
    t = arr.type
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        out = arr.cast(_STR)
    elif pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t) or pa.types.is_temporal(t):
        out = arr.cast(_STR)
    else:
        return pa.nulls(len(arr), _STR)
    out = pc.utf8_trim_whitespace(out)
    return pc.if_else(pc.is_in(out, pa.array(["", "-"])), _NULL, out)


def as_int(arr: pa.Array | None, n: int, hi: int = 2**62) -> tuple[pa.Array, pa.Array]:
    """Non-negative integers (null stays null) and where the input was usable (null or a number <= hi)."""
    if arr is None:
        return pa.nulls(n, pa.int64()), pa.repeat(pa.scalar(True), n)
    if pa.types.is_integer(arr.type):
        given = pc.is_valid(arr)
        ok = pc.and_(pc.greater_equal(arr, 0), pc.less_equal(arr, hi))
        val = pc.cast(pc.if_else(pc.fill_null(ok, False), arr, 0), pa.int64())
    elif pa.types.is_floating(arr.type):
        given = pc.is_valid(arr)
        f = pc.cast(arr, pa.float64())
        ok = pc.and_(pc.equal(pc.floor(f), f), pc.and_(pc.greater_equal(f, 0), pc.less_equal(f, float(hi))))
        val = pc.cast(pc.if_else(pc.fill_null(ok, False), f, 0.0), pa.int64())
    else:
        s = as_text(arr)
        given = pc.is_valid(s)
        ok = pc.match_substring_regex(s, r"^\d{1,18}$")
        val = pc.cast(pc.if_else(pc.fill_null(ok, False), s, "0"), pa.int64())
        ok = pc.and_(ok, pc.less_equal(val, hi))
    ok = pc.fill_null(ok, False)
    return pc.if_else(ok, val, pa.scalar(None, pa.int64())), pc.or_(ok, pc.invert(given))


def hostname(arr: pa.Array) -> pa.Array:
    """Lower-case host: port, IPv6 brackets and the root dot removed; null when it cannot be a host name."""
    h = pc.utf8_lower(arr)
    h = pc.replace_substring_regex(h, r"^\[([0-9a-f:.]+)\](?::\d*)?$|^([^:\[\]]*):\d*$", r"\1\2")
    h = pc.utf8_rtrim(h, ".")
    ok = pc.and_(pc.match_substring_regex(h, _HOST), pc.not_equal(h, ""))
    return pc.if_else(pc.fill_null(ok, False), h, _NULL)


def ip_ok(arr: pa.Array) -> pa.Array:
    """Per value: an IPv4/IPv6 literal (null: not valid). IPv4 by one regex (as strict as the
    ipaddress module: no leading zeros); anything with a colon by is_ip, once per distinct value."""
    v4 = pc.match_substring_regex(arr, _IPV4)
    maybe6 = pc.fill_null(pc.and_(pc.invert(v4), pc.match_substring(arr, ":")), False)
    if not pc.any(maybe6).as_py():
        return v4

    def check(u: pa.Array) -> dict[str, pa.Array]:
        return {"ok": pa.array([v is not None and is_ip(v) for v in u.to_pylist()], pa.bool_())}

    return pc.replace_with_mask(v4, maybe6, _per_unique(arr.filter(maybe6), check)["ok"])


def parse_ts(arr: pa.Array | None, fmt: str, n: int = 0) -> pa.Array:
    """UTC timestamps (us); null where the value is missing or not a time in `fmt`.

    "auto": numbers (or numeric strings) are epoch seconds, milliseconds from 1e11 and
    microseconds from 1e14; other strings ISO 8601 (no zone: UTC). "epoch*", "iso8601", or a
    strptime format (e.g. "%d/%b/%Y:%H:%M:%S %z"; no zone: UTC; Arrow's strptime has no %f).
    """
    if arr is None:
        return pa.nulls(n, pa.timestamp("us", tz="UTC"))
    if pa.types.is_timestamp(arr.type):  # pyarrow.json reads ISO 8601 strings as timestamps (no zone: UTC)
        return _us(pc.cast(pc.cast(arr, pa.timestamp("us", tz=arr.type.tz)), pa.int64()))
    if pa.types.is_integer(arr.type) or pa.types.is_floating(arr.type):
        if fmt == "iso8601" or "%" in fmt:
            return _us(pa.nulls(len(arr), pa.int64()))
        return _epoch(pc.cast(arr, pa.float64(), safe=False), fmt)  # out-of-range values fail the range check
    text = as_text(arr)
    if "%" in fmt:
        t = pc.strptime(text, format=fmt, unit="us", error_is_null=True)
        return _us(pc.cast(t, pa.int64()))
    out = _us(pa.nulls(len(text), pa.int64()))
    if fmt != "iso8601":
        num = pc.fill_null(pc.match_substring_regex(text, _NUM), False)
        out = _epoch(pc.cast(pc.if_else(num, pc.utf8_trim_whitespace(text), None), pa.float64()), fmt)
    if fmt in ("auto", "iso8601"):
        todo = pc.fill_null(pc.and_(pc.is_null(out), pc.is_valid(text)), False)  # what epoch did not take
        if pc.any(todo).as_py():
            out = pc.replace_with_mask(out, todo, _iso(text.filter(todo)))
    return out


def _epoch(secs: pa.Array, fmt: str) -> pa.Array:
    if fmt == "auto":
        scale = pc.if_else(pc.greater_equal(secs, 1e14), 1.0, pc.if_else(pc.greater_equal(secs, 1e11), 1e3, 1e6))
    else:
        scale = {"epoch": 1e6, "epoch_ms": 1e3, "epoch_us": 1.0}.get(fmt, 1e6)
    us = pc.round(pc.multiply(secs, scale))
    ok = pc.and_(pc.greater_equal(us, 0), pc.less(us, float(MAX_TS_US)))
    return _us(pc.cast(pc.if_else(pc.fill_null(ok, False), us, None), pa.int64()))


def _us(micros: pa.Array) -> pa.Array:
    ok = pc.and_(pc.greater_equal(micros, 0), pc.less(micros, MAX_TS_US))
    return pc.cast(pc.if_else(ok, micros, None), pa.timestamp("us", tz="UTC"))


def _iso(text: pa.Array) -> pa.Array:
    parts = pc.extract_regex(text, _ISO)
    ok = pc.fill_null(pc.is_valid(parts), False)
    frac = pc.utf8_slice_codeunits(pc.utf8_rpad(pc.fill_null(pc.struct_field(parts, "f"), ""), 6, "0"), 0, 6)
    naive = pc.binary_join_element_wise(pc.struct_field(parts, "d"), "T", pc.struct_field(parts, "t"), ".", frac, "")
    naive = pc.if_else(ok, naive, "1970-01-01T00:00:00.000000")
    try:
        micros = pc.cast(pc.cast(naive, pa.timestamp("us")), pa.int64())
    except pa.ArrowInvalid:  # shaped right but impossible (Feb 30): judge each value in Python
        vals = [_iso_py(v) for v in naive.to_pylist()]
        micros = pa.array(vals, pa.int64())
    zone = pc.fill_null(pc.struct_field(parts, "z"), "Z")
    digits = pc.utf8_rpad(pc.replace_substring(pc.utf8_slice_codeunits(zone, 1), ":", ""), 4, "0")
    signed = pc.match_substring_regex(zone, "^[+-]")
    hh = pc.cast(pc.if_else(signed, pc.utf8_slice_codeunits(digits, 0, 2), "0"), pa.int64())
    mm = pc.cast(pc.if_else(signed, pc.utf8_slice_codeunits(digits, 2, 4), "0"), pa.int64())
    sign = pc.if_else(pc.starts_with(zone, "-"), -1, 1)
    offset = pc.multiply(pc.multiply(sign, pc.add(pc.multiply(hh, 3600), pc.multiply(mm, 60))), 10**6)
    return _us(pc.if_else(ok, pc.subtract(micros, offset), None))


def _iso_py(value: str) -> int | None:
    try:
        t = dt.datetime.fromisoformat(value).replace(tzinfo=dt.UTC)
    except ValueError:
        return None
    return (t - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(microseconds=1)


# ------------------------------------------------------------------ JSON lines, vectorised with a per-line fallback


def read_json(lines: Lines, idx: np.ndarray, fields: Sequence[str]) -> list[tuple[dict[str, pa.Array], np.ndarray]]:
    """The `fields` (dotted paths) of JSON-object lines `idx`; lines that are not one are quarantined.

    The whole run of lines goes through pyarrow.json at once; when that fails (a broken line, or
    a field whose JSON type changes between lines), blocks of lines are retried, and only a
    block that still fails is read line by line with Python's json module.
    """
    if not len(idx):
        return []
    buf = _only(lines, idx)
    longest = int((lines.ends[idx] - lines.starts[idx]).max()) + 2
    opts = pj.ReadOptions(block_size=max(1 << 20, longest))
    whole = _try_json(buf, 0, len(buf), len(idx), opts)
    if whole is not None:
        return [(_pick(whole, fields), idx)]
    good: list[tuple[pa.Table, np.ndarray]] = []
    slow: list[np.ndarray] = []
    for a in range(0, len(idx), JSON_BLOCK):
        sub = idx[a : a + JSON_BLOCK]
        t = _try_json(buf, int(lines.starts[sub[0]]), int(lines.ends[sub[-1]]), len(sub), opts)
        if t is None:
            slow.append(sub)
        else:
            good.append((t, sub))
    try:  # blocks usually infer the same types: one table, one pass of the columnar code
        table = pa.concat_tables([t for t, _ in good], promote_options="permissive")
        merged = [(table, np.concatenate([s for _, s in good]))]
    except (pa.ArrowInvalid, pa.ArrowTypeError, ValueError):
        merged = good
    out = [(_pick(t, fields), s) for t, s in merged]
    if slow:
        out.append(_python_json(lines, np.concatenate(slow), fields))
    return out


def _only(lines: Lines, idx: np.ndarray) -> pa.Buffer:
    """The chunk with every line not in `idx` overwritten by spaces (pyarrow.json skips them)."""
    if len(idx) == lines.n:
        return pa.py_buffer(lines.chunk)
    other = np.setdiff1d(np.arange(lines.n), idx)
    delta = np.zeros(len(lines.chunk) + 1, dtype=np.int64)
    np.add.at(delta, lines.starts[other], 1)
    np.add.at(delta, lines.ends[other], -1)
    buf = np.frombuffer(lines.chunk, dtype=np.uint8).copy()
    buf[np.cumsum(delta)[:-1] > 0] = 0x20
    return pa.py_buffer(buf)


def _try_json(buf: pa.Buffer, start: int, end: int, expect: int, opts: pj.ReadOptions) -> pa.Table | None:
    try:
        t = pj.read_json(pa.BufferReader(buf.slice(start, end - start)), read_options=opts)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return None
    # one row per line, or some line held two objects: then the rows no longer line up
    return t if t.num_rows == expect else None


def _pick(table: pa.Table, fields: Sequence[str]) -> dict[str, pa.Array]:
    while any(pa.types.is_struct(f.type) for f in table.schema):
        table = table.flatten()
    names = set(table.column_names)
    return {f: table[f].combine_chunks() for f in fields if f in names}


def _python_json(lines: Lines, idx: np.ndarray, fields: Sequence[str]) -> tuple[dict[str, pa.Array], np.ndarray]:
    rows: list[dict[str, Any]] = []
    kept: list[int] = []
    for i in idx.tolist():
        raw = lines.chunk[int(lines.starts[i]) : int(lines.ends[i])]
        try:
            obj = json.loads(raw)
        except ValueError as err:
            lines.quarantine(i, f"invalid JSON ({getattr(err, 'msg', err)}, column {getattr(err, 'colno', '?')})")
            continue
        if not isinstance(obj, dict):
            lines.quarantine(i, f"expected a JSON object, got {type(obj).__name__}")
            continue
        rows.append(obj)
        kept.append(i)
    return {f: _column([_dig(r, f) for r in rows]) for f in fields}, np.array(kept, dtype=np.int64)


def _dig(obj: dict[str, Any], path: str) -> Any:
    if path in obj:
        return obj[path]
    head, dot, rest = path.partition(".")
    while dot:  # "a.b.c" may be {"a": {"b.c": ..}}, {"a.b": {"c": ..}} or {"a": {"b": {"c": ..}}}
        inner = obj.get(head)
        if isinstance(inner, dict):
            found = _dig(inner, rest)
            if found is not None:
                return found
        step, dot, rest = rest.partition(".")
        head = f"{head}.{step}"
    return None


def _column(values: list[Any]) -> pa.Array:
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):  # mixed JSON types: keep them as text
        return pa.array([v if v is None or isinstance(v, str) else json.dumps(v) for v in values], _STR)


@contextlib.contextmanager
def open_log(source: str) -> Iterator[BinaryIO | gzip.GzipFile]:
    """The file a read_batches source ("name:PATH") names; gzip-decompressed when it is compressed."""
    with open(source.partition(":")[2], "rb") as fh:
        if fh.read(2) != b"\x1f\x8b":
            fh.seek(0)
            yield fh
            return
        fh.seek(0)
        with gzip.GzipFile(fileobj=fh, mode="rb") as z:
            yield z


# ------------------------------------------------------------------ the mapped collectors


def _options(mapping: Mapping[str, str] | str | None, ts_format: str) -> tuple[dict[str, str], str]:
    ts_format = str(ts_format)
    if isinstance(mapping, str):  # from `-o mapping=...`: JSON object or "ts=time,dest_host=host"
        try:
            mapping = json.loads(mapping) if mapping.strip().startswith("{") else dict(
                p.split("=", 1) for p in mapping.split(",") if p.strip())  # fmt: skip
        except (ValueError, TypeError) as err:
            raise UsageError(f"option 'mapping': expected a JSON object or FIELD=NAME,..., got {mapping!r}") from err
    if mapping is not None and not isinstance(mapping, Mapping):
        raise UsageError(f"option 'mapping': expected FIELD: NAME pairs, got {mapping!r}")
    m = {str(k).strip(): str(v).strip() for k, v in (mapping or {f: f for f in FIELDS}).items()}
    for key, value in m.items():
        if key not in FIELDS:
            raise UsageError(f"option 'mapping': unknown field '{key}'; known: {', '.join(FIELDS)}")
        if not value:
            raise UsageError(f"option 'mapping': field '{key}' maps to an empty name")
    if "ts" not in m or not any(f in m for f in DESTINATION):
        raise UsageError("option 'mapping' must map 'ts' and at least one of dest_host, dest_ip, url")
    if ts_format not in TS_FORMATS and "%" not in ts_format:
        known = ", ".join(TS_FORMATS)
        raise UsageError(f"option 'ts_format': expected one of {known} or a strptime format, got {ts_format!r}")
    return m, ts_format


def _names(value: Sequence[str] | str | None, option: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    names = tuple(v.strip() for v in (value.split(",") if isinstance(value, str) else value))
    if not names or not all(names):
        raise UsageError(f"option '{option}': expected a list of names, got {value!r}")
    return names


class _Mapped(LineCollector):
    """What the JSON-lines and CSV collectors share: the mapping, the time format and the row rules."""

    def __init__(self, mapping: Mapping[str, str] | str | None, ts_format: str, action_field: str | None,
                 blocked_actions: Sequence[str] | str | None) -> None:  # fmt: skip
        self.mapping, self.ts_format = _options(mapping, ts_format)
        self.default_mapping = mapping is None
        self.action_field = action_field or None
        self.blocked = tuple(a.lower() for a in (_names(blocked_actions, "blocked_actions") or BLOCKED))

    def wanted(self) -> list[str]:
        return list(dict.fromkeys([*self.mapping.values(), *([self.action_field] if self.action_field else [])]))

    def rows(self, lines: Lines, idx: np.ndarray, get: Callable[[str], pa.Array | None]) -> Part:
        """BATCH_SCHEMA columns from export fields (`get` by export name); bad rows are quarantined."""
        n, m = len(idx), self.mapping
        raw = {f: get(m[f]) if f in m else None for f in FIELDS}
        c = Checks(n)
        ts = parse_ts(raw["ts"], self.ts_format, n)
        c.check("ts", pc.is_valid(ts), f"expected a time ({self.ts_format}) in '{m['ts']}'", raw["ts"])
        cols: dict[str, pa.Array] = {"ts": ts}
        for f in ("source_ip", "source_user", "method"):
            cols[f] = as_text(raw[f], n)
        for f, hi in (("dest_port", 65535), ("status", 999), ("bytes_out", 2**62), ("bytes_in", 2**62)):
            cols[f], ok = as_int(raw[f], n, hi)
            c.check(f, ok, f"expected a number up to {hi} in '{m.get(f)}'", raw[f])
        dest_ip = as_text(raw["dest_ip"], n)
        cols["dest_ip"] = pc.if_else(pc.fill_null(ip_ok(dest_ip), False), dest_ip, _NULL)  # "unknown", "-": not known
        host = hostname(as_text(raw["dest_host"], n))
        if raw["url"] is not None:
            url = as_text(raw["url"], n)
            u = url_parts(url)
            host = pc.coalesce(host, u["host"])
            cols["dest_port"] = pc.coalesce(cols["dest_port"], u["port"])
            cols["protocol"] = u["scheme"]
            cols["pii"] = pii_kinds(url)
        cols["dest_host"] = host
        named = [f for f in DESTINATION if f in m]
        c.check(named[0], pc.or_(pc.is_valid(host), pc.is_valid(cols["dest_ip"])),
                "no destination: " + ", ".join(f"{f} ('{m[f]}')" for f in named) + " all empty")  # fmt: skip
        if self.action_field:
            action = pc.utf8_lower(as_text(get(self.action_field), n))
            cols["egress"] = pc.invert(pc.fill_null(pc.is_in(action, pa.array(self.blocked)), False))
        return c.keep(cols), c.quarantine(lines, idx)


def url_parts(url: pa.Array) -> dict[str, pa.Array]:
    """host, port (explicit or the scheme's default) and scheme of absolute URLs, host/path or host:port."""
    m = pc.extract_regex(pc.fill_null(url, ""), r"^(?:(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*)://)?(?P<auth>[^/?#]*)")
    scheme = pc.utf8_lower(pc.struct_field(m, "scheme"))
    scheme = pc.if_else(pc.equal(scheme, ""), _NULL, scheme)
    auth = _per_unique(pc.struct_field(m, "auth"), _authority)
    known = pc.index_in(scheme, pa.array(["http", "https", "ftp", "ws", "wss"]))
    default = pc.take(pa.array([80, 443, 21, 80, 443], pa.int32()), known)
    ok = pc.fill_null(pc.and_(auth["ok"], auth["port_ok"]), False)
    return {
        "host": pc.if_else(ok, hostname(auth["host"]), _NULL),
        "port": pc.if_else(ok, pc.cast(pc.coalesce(auth["port"], default), pa.int64()), pa.scalar(None, pa.int64())),
        "scheme": scheme,
    }


class JsonLinesCollector(_Mapped):
    """One JSON object per line, fields picked by `mapping` (dotted paths reach into nested objects)."""

    name: ClassVar[str] = "jsonl"
    description: ClassVar[str] = "JSON lines export of a secure web gateway, fields chosen by -o mapping=..."
    sample: ClassVar[bytes] = (
        b'{"ts": "2024-03-01T10:00:00.250Z", "source_ip": "10.0.0.5", "source_user": "alice", '
        b'"url": "https://api.example.com/v1/items?id=7", "method": "GET", "status": 200, "bytes_in": 5120}\n'
        b'{"ts": 1709287201.5, "source_ip": "10.0.0.6", "dest_host": "files.example.org", "dest_port": 443, '
        b'"dest_ip": "93.184.216.34", "method": "CONNECT", "status": 200, "bytes_out": 700, "bytes_in": 39}\n'
    )

    def __init__(self, mapping: Mapping[str, str] | str | None = None, ts_format: str = "auto",
                 action_field: str | None = None,
                 blocked_actions: Sequence[str] | str | None = None) -> None:  # fmt: skip
        super().__init__(mapping, ts_format, action_field, blocked_actions)

    def parse_chunk(self, chunk: bytes, *, source: str, first_line: int, base_offset: int) -> Parsed:
        lines = Lines(chunk, source, first_line, base_offset)
        parts = [self.rows(lines, idx, cols.get) for cols, idx in read_json(lines, lines.live(), self.wanted())]
        return lines.parsed(parts, self.name)


class CsvCollector(_Mapped):
    """Delimited export, one record per line (quoted values must not hold line breaks).

    With `header` (the default) a line naming the mapped `ts` column and a destination column is
    a header: it sets the column order for the lines after it, so concatenated exports with
    repeated headers read right. Lines before any header use `columns`; without `columns` and
    with the default mapping, xborder's own layout (the FIELDS order). After a restart mid-file,
    the header is read again from the first line of the file named by the source.
    """

    name: ClassVar[str] = "csv"
    description: ClassVar[str] = "CSV export of a secure web gateway, columns chosen by -o mapping=..."
    sample: ClassVar[bytes] = (
        b"2024-03-01T10:00:00Z,10.0.0.5,alice,,,,GET,200,,5120,https://api.example.com/v1/items?id=7\n"
        b'1709287201,10.0.0.6,-,files.example.org,93.184.216.34,443,CONNECT,200,700,39,""\n'
    )

    def __init__(self, mapping: Mapping[str, str] | str | None = None, ts_format: str = "auto", delimiter: str = ",",
                 header: bool | str = True, columns: Sequence[str] | str | None = None, action_field: str | None = None,
                 blocked_actions: Sequence[str] | str | None = None) -> None:  # fmt: skip
        super().__init__(mapping, ts_format, action_field, blocked_actions)
        delimiter = {"\\t": "\t", "tab": "\t"}.get(str(delimiter), str(delimiter))
        if len(delimiter) != 1 or delimiter in "\"\r\n":
            raise UsageError(f"option 'delimiter': expected one character other than a quote, got {delimiter!r}")
        if isinstance(header, str):
            if header.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise UsageError(f"option 'header': expected true or false, got {header!r}")
            header = header.lower() in ("true", "1", "yes")
        self.delimiter, self.header = delimiter, bool(header)
        self.columns = _names(columns, "columns")
        if self.default_mapping:  # xborder's own layout: the canonical names, all or some of them
            self.columns = self.columns or FIELDS
            if "ts" not in self.columns or not any(f in self.columns for f in DESTINATION):
                raise UsageError("option 'columns' must name 'ts' and one of dest_host, dest_ip, url")
        else:
            missing = [v for v in self.mapping.values() if self.columns is not None and v not in self.columns]
            if missing:
                raise UsageError(f"option 'columns' lacks the mapped column(s) {', '.join(missing)}")
        if self.columns is None and not self.header:
            raise UsageError("option 'columns' is needed when the export has no header (header=false)")
        self._seen: dict[str, tuple[str, ...]] = {}  # source -> columns of the last header read
        self._tried: set[str] = set()

    def parse_chunk(self, chunk: bytes, *, source: str, first_line: int, base_offset: int) -> Parsed:
        lines = Lines(chunk, source, first_line, base_offset)
        idx = lines.live()
        cells, idx = split_csv(lines, idx, self.delimiter)
        heads = self._headers(cells) if self.header else np.zeros(len(idx), dtype=bool)
        columns = self._seen.get(source) or self._recover(source, first_line) or self.columns
        parts: list[Part] = []
        for k, piece in enumerate(np.split(np.arange(len(idx)), np.flatnonzero(heads))):
            if k:  # this piece starts at a header line
                columns = tuple(c.strip() for c in cells[int(piece[0])].as_py())
                lines.blank[idx[piece[0]]] = True
                self._seen[source] = columns
                piece = piece[1:]
            if len(piece):
                parts.append(self._piece(lines, idx[piece], cells.take(pa.array(piece, pa.int64())), columns))
        return lines.parsed(parts, self.name)

    def _headers(self, cells: pa.Array) -> np.ndarray:
        flat = pc.utf8_trim_whitespace(pc.list_flatten(cells))
        parent = pc.list_parent_indices(cells)
        has = np.zeros((2, len(cells)), dtype=bool)
        dest = [self.mapping[f] for f in DESTINATION if f in self.mapping]
        for row, names in enumerate(([self.mapping["ts"]], dest)):
            hit = pc.filter(parent, pc.is_in(flat, pa.array(names)))
            has[row, np.asarray(hit, dtype=np.int64)] = True
        return np.asarray(has[0] & has[1])

    def _recover(self, source: str, first_line: int) -> tuple[str, ...] | None:
        """The header on the file's first line, when reading resumes after it (once per source)."""
        if first_line == 1 or not self.header or source in self._tried:
            return None
        self._tried.add(source)
        try:
            with open_log(source) as fh:
                head = fh.readline(1 << 16)
        except (OSError, EOFError, zlib.error):
            return None
        lines = Lines(head.rstrip(b"\r\n") + b"\n", source, 1, 0)
        cells, _ = split_csv(lines, lines.live(), self.delimiter)
        if len(cells) == 1 and self._headers(cells)[0]:
            self._seen[source] = tuple(c.strip() for c in cells[0].as_py())
            return self._seen[source]
        return None

    def _piece(self, lines: Lines, idx: np.ndarray, cells: pa.Array, columns: tuple[str, ...] | None) -> Part:
        if columns is None:
            for i in idx.tolist():
                lines.quarantine(i, "no header line before this line, and no 'columns' option to name the columns")
            return {}, idx[:0]
        count = pc.list_value_length(cells).to_numpy(zero_copy_only=False)
        bad = count != len(columns)
        for j in np.flatnonzero(bad).tolist():
            reason = f"expected {len(columns)} {self.delimiter!r}-separated fields, got {count[j]}"
            lines.quarantine(int(idx[j]), reason)
        keep = pa.array(~bad)
        idx, cells = idx[~bad], cells.filter(keep)
        pos = {name: k for k, name in enumerate(columns)}
        return self.rows(lines, idx, lambda name: pc.list_element(cells, pos[name]) if name in pos else None)


def split_csv(lines: Lines, idx: np.ndarray, delim: str) -> tuple[pa.Array, np.ndarray]:
    """Cells of lines `idx` as list<string>; lines with broken quoting are quarantined.

    Lines without quotes are split by Arrow; lines quoted throughout ("a","b") without doubled
    quotes too; only the rest goes through Python's csv module, one line at a time.
    """
    text = lines.take(idx)
    q = re.escape(delim)
    plain = pc.invert(pc.fill_null(pc.match_substring(text, '"'), True))
    quoted = pc.fill_null(pc.match_substring_regex(text, f'^"[^"]*"(?:{q}"[^"]*")*$'), False)
    plain_np, quoted_np = plain.to_numpy(zero_copy_only=False), quoted.to_numpy(zero_copy_only=False)
    lists = [pc.split_pattern(text.filter(plain), delim),
             pc.split_pattern(pc.utf8_slice_codeunits(text.filter(quoted), 1, -1), f'"{delim}"')]  # fmt: skip
    order = [idx[plain_np], idx[quoted_np]]
    rest: list[list[str]] = []
    rest_idx: list[int] = []
    for i in idx[~(plain_np | quoted_np)].tolist():
        try:
            rest.append(next(csv.reader([lines.text[i].as_py()], delimiter=delim, strict=True)))
            rest_idx.append(i)
        except (csv.Error, StopIteration) as err:
            lines.quarantine(i, f"bad CSV quoting: {err}")
    lists.append(pa.array(rest, pa.list_(_STR)))
    order.append(np.array(rest_idx, dtype=np.int64))
    all_idx = np.concatenate(order)
    perm = np.argsort(all_idx, kind="stable")
    cells = pa.concat_arrays([a.cast(pa.list_(_STR)) for a in lists]).take(pa.array(perm, pa.int64()))
    return cells, all_idx[perm]
