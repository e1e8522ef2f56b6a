"""Collect stage, JSON/CSV/Zeek: a chunk's lines (blank marks, first bytes, quarantine) and the checks making rows."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from monitor.collect.arrowtext import ChunkLines
from monitor.collect.base import Parsed
from monitor.records import BATCH_SCHEMA, COLUMNS, empty_frame, frame_from_table

_STR = pa.string()
_SPACE = np.array([0x20, 0x09, 0x0D, 0x0B, 0x0C], dtype=np.uint8)  # what counts as blank at a line's start
Part = tuple[dict[str, pa.Array], np.ndarray]  # BATCH_SCHEMA columns (a subset) and the chunk lines they came from


class Lines(ChunkLines):
    """One chunk cut into lines with the bookkeeping every collector needs: origins, quarantine, blanks."""

    def __init__(self, chunk: bytes, source: str, first_line: int, base_offset: int) -> None:
        super().__init__(chunk, source, first_line, base_offset)  # split, decode, quarantine invalid UTF-8
        self.text = pc.utf8_rtrim(self.text, characters="\r\n").cast(_STR)
        self.first = np.zeros(self.n, dtype=np.uint8)  # each line's first byte that is not blank (0: none)
        if self.n:
            buf = np.frombuffer(chunk, dtype=np.uint8)
            empty = self.starts == self.ends
            self.first[~empty] = buf[self.starts[~empty]]
            # only lines that start with white space are looked at one by one (rare in logs)
            for i in np.flatnonzero(np.isin(self.first, _SPACE)).tolist():
                rest = chunk[int(self.starts[i]) : int(self.ends[i])].lstrip(bytes(_SPACE))
                self.first[i] = rest[0] if rest else 0
        self.blank = self.first == 0
        self.blank[self.bad_utf8] = False

    def quarantine(self, i: int, reason: str, field: str | None = None) -> None:
        if i not in self.quarantined:  # a line keeps the first reason found for it
            super().quarantine(i, reason, field)

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
        frame = empty_frame() if table is None else frame_from_table(table)
        return self.result(frame, blank_lines=int(np.count_nonzero(self.blank)))


def _table(cols: dict[str, pa.Array], idx: np.ndarray, lines: Lines, collector: str) -> pa.Table:
    n = len(idx)
    fixed = {
        "collector": pa.repeat(pa.scalar(collector), n),
        "sample_rate": pa.repeat(pa.scalar(1, pa.int32()), n),
        "egress": pa.repeat(pa.scalar(True), n),
        **lines.origin(idx),
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
