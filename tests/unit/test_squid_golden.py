"""Golden files for the Squid parser: tests/golden/squid/NAME.log -> NAME.expected.json.

A sidecar NAME.logformat holds a squid.conf `logformat` definition (or built-in name): that log
is read with SquidCollector(logformat=...); without one, in the native format.
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
from monitor.collect.squidformat import BUILTIN, compile_logformat
from monitor.errors import UsageError

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "squid"
CASES = sorted(GOLDEN.glob("*.log"))
REGEN = os.environ.get("XBORDER_REGEN_GOLDEN") == "1"


def _collector(log: Path) -> SquidCollector:
    sidecar = log.with_suffix(".logformat")
    return SquidCollector(logformat=sidecar.read_text().strip() if sidecar.exists() else None)


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
    parsed = _collector(log).parse_chunk(log.read_bytes(), source=f"squid:{log.name}", first_line=1, base_offset=0)
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
    whole = _render(_collector(log).parse_chunk(log.read_bytes(), source="x", first_line=1, base_offset=0))
    batches = list(read_batches(_collector(log), log, None, max_bytes=200, final=True))
    assert len(batches) > 1
    rows = [r for b in batches for r in _rows(b.frame)]
    quarantined = [(q.line, q.offset, q.reason) for b in batches for q in b.quarantined]
    assert rows == whole["rows"]
    assert quarantined == [(q["line"], q["offset"], q["reason"]) for q in whole["quarantined"]]
    assert sum(b.lines_read for b in batches) == whole["lines_read"]


def test_custom_goldens_exist() -> None:
    assert len([p for p in CASES if p.with_suffix(".logformat").exists()]) >= 2


def test_native_format_keeps_the_fast_path() -> None:
    """The built-in `squid` format, by name or written out (any spacing), is the native parser."""
    for spec in (None, "squid", BUILTIN["squid"], "  " + BUILTIN["squid"].replace(" ", "   ") + " "):
        assert SquidCollector(logformat=spec)._format is None
    by_name, written = compile_logformat("combined"), compile_logformat(BUILTIN["combined"])
    assert by_name is not None and written is not None and by_name.regex == written.regex


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "expected a Squid logformat definition"),
        ("%>a %zz %ru %ts", "unknown format code '%zz' at position 5"),
        ("%ts %>a %Ss", "names no destination"),
        ("useragent", "names no destination"),
        ("%>a %ru", "has no time code"),
        ("%{%H:%M:%S}tl %ru", "does not give a full date and time"),
        ("%{%Y-%m-%d %Q}tl %ru", "strftime directive %Q"),
    ],
)
def test_bad_logformat_is_a_usage_error_naming_the_option(spec: str, message: str) -> None:
    with pytest.raises(UsageError, match="option 'logformat'") as err:
        SquidCollector(logformat=spec)
    assert message in str(err.value)


def test_custom_format_codes_map_to_the_schema() -> None:
    """Widths, quoting, %{Host}>h for origin-form targets, %>st, %tg and namespaced codes."""
    spec = '%tg %-8>a %ssl::>sni "%rm %ru" %03>Hs %<st %>st %Ss %Sh %<a %{Host}>h %"{User-Agent}>h'
    line = (
        b'24/Nov/2026:23:15:06 10.0.0.1 - "GET /p?mail=a%40b.example" 201 10 2048 TCP_MISS HIER_DIRECT '
        b'192.0.2.9 Up.Example:8080 agent "x" y\n'
    )
    parsed = SquidCollector(logformat=spec).parse_chunk(line, source="t", first_line=1, base_offset=0)
    assert parsed.quarantined == []
    row = parsed.frame.iloc[0]
    assert str(row["ts"]) == "2026-11-24 23:15:06+00:00"
    assert (row["source_ip"], row["method"], row["status"], row["bytes_in"], row["bytes_out"]) == (
        "10.0.0.1", "GET", 201, 10, 2048
    )  # fmt: skip
    assert (row["dest_host"], row["dest_port"], row["protocol"], row["dest_ip"]) == (
        "up.example", 8080, "http", "192.0.2.9"
    )  # fmt: skip
    assert row["egress"] and row["pii"] == "email"
