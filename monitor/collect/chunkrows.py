"""Collect stage, Envoy/HAProxy: a chunk's non-blank lines -> the collector's `rows` -> BATCH_SCHEMA frame, checked."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from monitor.collect.arrowtext import STR, ChunkLines
from monitor.collect.base import Parsed
from monitor.records import COLUMNS, empty_frame, frame_from_table

YEARS = (1970, 2200)  # a time outside is a corrupt field

Reject = tuple[int, str | None, str]  # (position, field, reason)
RowsFn = Callable[[pa.Array], tuple[np.ndarray[Any, Any], dict[str, pa.Array], list[Reject]]]


def parse_lines(name: str, chunk: bytes, source: str, first_line: int, base_offset: int, rows: RowsFn) -> Parsed:
    """The chunk handling every line collector shares; `rows` turns trimmed non-blank lines into columns.

    `rows` returns the positions (into its input) of the lines that became rows, their columns
    (any of BATCH_SCHEMA but the constant and provenance ones) and (position, field, reason) of
    every line it rejected.
    """
    lines = ChunkLines(chunk, source, first_line, base_offset)
    if lines.n == 0:
        return Parsed(table=empty_frame())
    text, length = lines.trimmed()
    cand = np.flatnonzero(length > 0)
    idx, cols, rejects = rows(text.take(pa.array(cand)))
    for j, field, reason in rejects:
        lines.quarantine(int(cand[j]), reason, field)
    good = cand[idx]
    n = len(good)
    data = {
        "collector": pa.repeat(pa.scalar(name), n),
        "source_user": pa.nulls(n, STR),
        "bytes_out": pa.nulls(n, pa.int64()),
        "sample_rate": pa.repeat(pa.scalar(1, pa.int32()), n),
        **cols,
        **lines.origin(good),
    }
    frame = frame_from_table(pa.table({k: data[k] for k in COLUMNS}))
    return lines.result(frame, blank_lines=int(np.count_nonzero(length == 0)))


class Checks:
    """Validity tests in field order; a failing row is quarantined with the first test it failed."""

    def __init__(self, n: int) -> None:
        self.ok = np.ones(n, dtype=bool)
        self._tests: list[tuple[str, np.ndarray[Any, Any], Callable[[int], str]]] = []

    def add(self, field: str, ok: pa.Array, why: Callable[[int], str]) -> None:
        mask = pc.fill_null(ok, False).to_numpy(zero_copy_only=False)
        self._tests.append((field, mask, why))
        self.ok &= mask

    def rejects(self) -> list[Reject]:
        out: list[Reject] = []
        for j in np.flatnonzero(~self.ok).tolist():
            field, _, why = next(t for t in self._tests if not t[1][j])
            out.append((j, field, why(j)))
        return out


def in_years(micros: pa.Array) -> pa.Array:
    """Epoch microseconds as UTC timestamps, null outside YEARS."""
    lo, hi = ((np.datetime64(f"{y}-01-01", "us") - np.datetime64(0, "us")).astype(np.int64).item() for y in YEARS)
    inside = pc.and_(pc.greater_equal(micros, lo), pc.less(micros, hi))
    return pc.cast(pc.if_else(inside, micros, None), pa.timestamp("us", tz="UTC"))
