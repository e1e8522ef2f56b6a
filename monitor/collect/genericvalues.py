"""Collect stage, JSON/CSV/Zeek: export values (text or typed JSON) coerced to BATCH_SCHEMA types, times to UTC."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pyarrow.compute as pc

from monitor.collect.arrowtext import per_unique
from monitor.records import is_ip

MAX_TS_US = 7258118400 * 10**6  # 2200-01-01T00:00:00Z: anything later is a corrupt time field
_NUM = r"^\s*\d{1,16}(?:\.\d{0,9})?\s*$"
_ISO = (r"^\s*(?P<d>\d{4}-\d{2}-\d{2})[T ](?P<t>\d{2}:\d{2}:\d{2})(?:[.,](?P<f>\d{1,9}))?\s*"
        r"(?P<z>[Zz]|UTC|[+-]\d{2}(?::?\d{2})?)?\s*$")  # fmt: skip
_HOST = r"^[^\s/\\@<>\"']+$"  # lenient: anything that could name a host, nothing that is clearly not one
_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_IPV4 = rf"^{_OCTET}(?:\.{_OCTET}){{3}}$"
_STR = pa.string()
_NULL = pa.scalar(None, _STR)


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

    return pc.replace_with_mask(v4, maybe6, per_unique(arr.filter(maybe6), check)["ok"])


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
