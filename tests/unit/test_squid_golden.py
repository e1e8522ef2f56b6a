"""Golden files for the Squid parser: tests/golden/squid/NAME.log -> NAME.expected.json.

Regenerate with `XBORDER_REGEN_GOLDEN=1 pytest tests/unit/test_squid_golden.py`, then read
the diff line by line: a golden is only worth something if a person has checked it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from monitor.collect.base import Parsed
from monitor.collect.follow import read_batches
from monitor.collect.squid import SquidCollector

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "squid"
CASES = sorted(GOLDEN.glob("*.log"))
REGEN = os.environ.get("XBORDER_REGEN_GOLDEN") == "1"


def _rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    out = []
    for rec in frame.to_dict("records"):
        row: dict[str, Any] = {}
        for key, value in rec.items():
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


def _render(parsed: Parsed) -> dict[str, Any]:
    return {
        "lines_read": parsed.lines_read,
        "blank_lines": parsed.blank_lines,
        "rows": _rows(parsed.frame),
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


@pytest.mark.parametrize("log", CASES, ids=[p.stem for p in CASES])
def test_golden(log: Path) -> None:
    parsed = SquidCollector().parse_chunk(log.read_bytes(), source=f"squid:{log.name}", first_line=1, base_offset=0)
    got = _render(parsed)
    expected_path = log.with_suffix(".expected.json")
    if REGEN:
        expected_path.write_text(json.dumps(got, indent=1, ensure_ascii=False) + "\n")
    assert expected_path.exists(), f"no golden for {log.name}: run with XBORDER_REGEN_GOLDEN=1"
    expected = json.loads(expected_path.read_text())
    assert got["lines_read"] == expected["lines_read"]
    assert got["blank_lines"] == expected["blank_lines"]
    assert got["quarantined"] == expected["quarantined"]
    assert len(got["rows"]) == len(expected["rows"])
    for g, e in zip(got["rows"], expected["rows"], strict=True):
        assert g == e, f"line {e['line']}"
    assert got["lines_read"] == len(got["rows"]) + len(got["quarantined"]) + got["blank_lines"]


@pytest.mark.parametrize("log", CASES, ids=[p.stem for p in CASES])
def test_golden_same_in_small_batches(log: Path) -> None:
    """Read through follow.py in tiny batches: same rows, same origins as one big chunk."""
    whole = _render(SquidCollector().parse_chunk(log.read_bytes(), source="x", first_line=1, base_offset=0))
    batches = list(read_batches(SquidCollector(), log, None, max_bytes=200, final=True))
    assert len(batches) > 1
    rows = [r for b in batches for r in _rows(b.frame)]
    quarantined = [(q.line, q.offset, q.reason) for b in batches for q in b.quarantined]
    assert rows == whole["rows"]
    assert quarantined == [(q["line"], q["offset"], q["reason"]) for q in whole["quarantined"]]
    assert sum(b.lines_read for b in batches) == whole["lines_read"]
