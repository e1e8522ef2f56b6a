"""Golden files and never-crash invariants shared by the collector tests.

A golden is tests/golden/KIND/NAME.log (or another input) -> NAME.expected.json, optionally with
NAME.options.json holding collector options. Regenerate with `XBORDER_REGEN_GOLDEN=1 pytest ...`,
then read the diff line by line: a golden is only worth something if a person has checked it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pandas as pd

from monitor.collect.base import Parsed
from monitor.records import ObservationBatch

GOLDEN_ROOT = Path(__file__).resolve().parents[1] / "golden"
REGEN = os.environ.get("XBORDER_REGEN_GOLDEN") == "1"


def golden_dir(kind: str) -> Path:
    return GOLDEN_ROOT / kind


def load_options(path: Path) -> dict[str, Any]:
    """The collector options in the NAME.options.json beside a golden input, or none."""
    opts_path = path.with_suffix(".options.json")
    opts: dict[str, Any] = json.loads(opts_path.read_text()) if opts_path.exists() else {}
    return opts


def rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """A frame as JSON-ready dicts: NA/None -> None, timestamps as ISO text, numpy scalars as Python."""
    out = []
    for rec in frame.to_dict("records"):
        row: dict[str, Any] = {}
        for name, value in rec.items():
            key = str(name)
            if value is pd.NA or value is None:
                row[key] = None
            elif isinstance(value, pd.Timestamp):
                row[key] = value.isoformat()
            elif hasattr(value, "item"):  # numpy scalar
                row[key] = value.item()
            else:
                row[key] = value
        out.append(row)
    return out


def render(parsed: Parsed) -> dict[str, Any]:
    return {
        "lines_read": parsed.lines_read,
        "blank_lines": parsed.blank_lines,
        "rows": rows(parsed.frame),
        "quarantined": [
            {
                "line": q.line,
                "offset": q.offset,
                "field": q.field,
                "reason": q.reason,
                # raw bytes shown readably; invalid UTF-8 appears as \xNN
                "raw": q.raw.decode("utf-8", "backslashreplace"),
            }
            for q in parsed.quarantined
        ],
    }


def check_golden(got: dict[str, Any], expected_path: Path) -> None:
    """Compare a rendered parse with its golden (rewriting it first under XBORDER_REGEN_GOLDEN=1)."""
    if REGEN:
        expected_path.write_text(json.dumps(got, indent=1, ensure_ascii=False) + "\n")
    assert expected_path.exists(), f"no golden {expected_path.name}: run with XBORDER_REGEN_GOLDEN=1"
    expected = json.loads(expected_path.read_text())
    assert (got["lines_read"], got["blank_lines"]) == (expected["lines_read"], expected["blank_lines"])
    assert got["quarantined"] == expected["quarantined"]
    assert len(got["rows"]) == len(expected["rows"])
    for g, e in zip(got["rows"], expected["rows"], strict=True):
        assert g == e, f"line {e['line']}"
    assert got["lines_read"] == len(got["rows"]) + len(got["quarantined"]) + got["blank_lines"]


def check_same_in_batches(batches: list[ObservationBatch], whole: dict[str, Any], *, lines_read: bool = True) -> None:
    """Tiny batches through follow.py give the rows and quarantine origins of one big chunk."""
    assert len(batches) > 1
    assert [r for b in batches for r in rows(b.frame)] == whole["rows"]
    got_q = [(q.line, q.offset, q.reason) for b in batches for q in b.quarantined]
    assert got_q == [(q["line"], q["offset"], q["reason"]) for q in whole["quarantined"]]
    if lines_read:
        assert sum(b.lines_read for b in batches) == whole["lines_read"]


def check_lines_accounted(parsed: Parsed, chunk: bytes) -> list[int]:
    """Every line of the chunk is a row, a quarantine entry or blank, once; returns the lines seen."""
    total = chunk.count(b"\n") + (0 if chunk.endswith(b"\n") or not chunk else 1)
    assert parsed.lines_read == total == len(parsed.frame) + len(parsed.quarantined) + parsed.blank_lines
    seen = list(parsed.frame["line"]) + [q.line for q in parsed.quarantined]
    assert len(seen) == len(set(seen))
    return seen


def check_accounting(parsed: Parsed, chunk: bytes, first_line: int, base_offset: int) -> None:
    """Every line is a row, a quarantine entry or blank, once, at its own line and offset."""
    check_lines_accounted(parsed, chunk)
    lines = chunk.split(b"\n")
    for q in parsed.quarantined:
        assert q.line is not None and q.offset is not None and q.reason
        assert q.raw == lines[q.line - first_line]
        assert chunk[q.offset - base_offset :].startswith(q.raw)
    for line, offset in zip(parsed.frame["line"], parsed.frame["offset"], strict=True):
        assert chunk[offset - base_offset :].startswith(lines[line - first_line])
