"""Collect stage, Squid: access.log lines (native, or a custom `logformat`) -> BATCH_SCHEMA rows, vectorized."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from monitor.collect.arrowtext import ChunkLines, Quarantine, decimal, elements, matches, per_unique
from monitor.collect.base import LineCollector, Parsed
from monitor.collect.squidformat import LogFormat, compile_logformat, parse_rows
from monitor.collect.squidrows import Rows, dash_null, hierarchy, parse_target
from monitor.records import COLUMNS, empty_frame, frame_from_table

# Default `squid` logformat:
#   %ts.%03tu %6tr %>a %Ss/%03>Hs %<st %rm %ru %[un %Sh/%<a %mt
#   time elapsed client code/status bytes method URL user hierarchy/peer type
MIN_FIELDS = 9  # `type` is the only field a truncated or hand-trimmed line may lack
MAX_TS = 7258118400.0  # 2200-01-01T00:00:00Z: anything later is a corrupt time field

_RE_TIME = r"^\d{1,12}(?:\.\d{1,9})?$"
_RE_ELAPSED = r"^-?\d{1,15}$"
_RE_CODE_STATUS = r"^[^/]+/\d{1,6}$"


class SquidCollector(LineCollector):
    """Squid's access.log: the native `squid` logformat, or the one given as `logformat`.

    `logformat` takes a squid.conf `logformat` definition as written after the format's name
    (e.g. `%>a [%tl] "%rm %ru HTTP/%rv" %>Hs %<st %Ss:%Sh %<a %>st`) or a built-in name
    (squid, common, combined, referrer, useragent). The native format keeps its own fast path;
    any other is compiled into one regex (monitor/collect/squidformat.py).
    """

    name: ClassVar[str] = "squid"
    stateless: ClassVar[bool] = True  # no state from chunk to chunk: a file's chunks may be parsed at once
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
        lines = ChunkLines(chunk, source, first_line, base_offset)
        if lines.n == 0:
            return Parsed(table=empty_frame())
        text, length = lines.trimmed()
        if self._format is None:
            cand, rows = _native_rows(text, length, lines.quarantine)
        else:
            cand, rows = parse_rows(self._format, text, np.flatnonzero(length > 0), lines.quarantine)
        for j, field, reason in rows.pop_rejects():
            lines.quarantine(int(cand[j]), reason, field)

        good = cand[rows.ok]
        table = _table(rows.columns(), len(good), **lines.origin(good))
        return lines.result(frame_from_table(table), blank_lines=int(np.count_nonzero(length == 0)))


def _native_rows(
    text: pa.Array, length: np.ndarray[Any, Any], quarantine: Quarantine
) -> tuple[np.ndarray[Any, Any], Rows]:
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
    # nearly always every line is a candidate: then the take would only copy
    return cand, _parse_fields(fields if len(cand) == len(fields) else fields.take(pa.array(cand)))


def _parse_fields(fields: pa.ListArray) -> Rows:
    r = Rows(len(fields), elements(fields, range(MIN_FIELDS)))  # every candidate has them all
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
        matches(f[1], _RE_ELAPSED, decimal(f[1], 15)),
        lambda j: f"field 'elapsed': expected milliseconds, got {r.value(1, j)!r}",
    )
    r.cols["source_ip"] = f[2]

    cs = per_unique(f[3], _code_status)
    r.check(
        "code/status",
        cs["ok"],
        lambda j: f"field 'code/status': expected CODE/STATUS with an integer status, got {r.value(3, j)!r}",
    )
    r.cols["status"] = cs["status"]

    b_ok = decimal(f[4], 18)
    r.check("bytes", b_ok, lambda j: f"field 'bytes': expected a byte count, got {r.value(4, j)!r}")
    r.cols["bytes_in"] = pc.cast(pc.if_else(b_ok, f[4], "0"), pa.int64())

    r.cols["method"] = dash_null(f[5])
    parse_target(r, f[5], f[6])
    r.cols["source_user"] = dash_null(f[7])
    hp = per_unique(f[8], hierarchy)
    r.cols["egress"], r.cols["dest_ip"] = hp["egress"], hp["dest_ip"]
    return r


def _code_status(values: pa.Array) -> dict[str, pa.Array]:
    ok = pc.match_substring_regex(values, _RE_CODE_STATUS)
    halves = pc.split_pattern(pc.if_else(ok, values, "-/0"), "/", max_splits=1, reverse=True)
    return {"ok": ok, "status": pc.cast(pc.list_element(halves, 1), pa.int32())}


def _table(cols: dict[str, pa.Array], n: int, **extra: pa.Array) -> pa.Table:
    """Columns in BATCH_SCHEMA; the ones the default logformat never carries are constant."""
    const: dict[str, pa.Array] = {
        "collector": pa.repeat(pa.scalar(SquidCollector.name), n),
        "bytes_out": pa.nulls(n, pa.int64()),  # the native format has no request size (%>st)
        "sample_rate": pa.repeat(pa.scalar(1, pa.int32()), n),
    }
    data = {**const, **cols, **extra}
    return pa.table({k: data[k] for k in COLUMNS})
