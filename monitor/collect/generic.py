"""Collect stage, secure web gateway exports: JSON lines and CSV, mapped by field name onto BATCH_SCHEMA rows."""

from __future__ import annotations

import contextlib
import csv
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

from monitor.collect.arrowtext import authority, per_unique
from monitor.collect.base import LineCollector, Parsed
from monitor.collect.genericlines import Checks, Lines, Part
from monitor.collect.genericmapping import BLOCKED, DESTINATION, FIELDS, mapping_options, name_list
from monitor.collect.genericvalues import as_int, as_text, hostname, ip_ok, parse_ts
from monitor.collect.pii import pii_kinds
from monitor.errors import UsageError

JSON_BLOCK = 2048  # lines per pyarrow.json retry when a whole chunk does not parse
_STR = pa.string()
_NULL = pa.scalar(None, _STR)


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


class _Mapped(LineCollector):
    """What the JSON-lines and CSV collectors share: the mapping, the time format and the row rules."""

    def __init__(self, mapping: Mapping[str, str] | str | None, ts_format: str, action_field: str | None,
                 blocked_actions: Sequence[str] | str | None) -> None:  # fmt: skip
        self.mapping, self.ts_format = mapping_options(mapping, ts_format)
        self.default_mapping = mapping is None
        self.action_field = action_field or None
        self.blocked = tuple(a.lower() for a in (name_list(blocked_actions, "blocked_actions") or BLOCKED))

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
    auth = per_unique(pc.struct_field(m, "auth"), authority)
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
        if len(delimiter) != 1 or delimiter in '"\r\n':
            raise UsageError(f"option 'delimiter': expected one character other than a quote, got {delimiter!r}")
        if isinstance(header, str):
            if header.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise UsageError(f"option 'header': expected true or false, got {header!r}")
            header = header.lower() in ("true", "1", "yes")
        self.delimiter, self.header = delimiter, bool(header)
        self.columns = name_list(columns, "columns")
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
