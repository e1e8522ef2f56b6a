"""JSON-lines and CSV gateway exports: goldens (tests/golden/generic/NAME.{jsonl,csv} -> NAME.expected.json,
options from NAME.options.json), mapping validation, the vectorised/fallback split, restarts.

The exports are shaped like secure web gateway logs (nested JSON records, quoted CSV with a
header, a semicolon export with CRLF lines and an action column); names and addresses are made
up (documentation ranges). Regenerate with `XBORDER_REGEN_GOLDEN=1 pytest tests/unit/test_generic.py`
and read the diff line by line.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.collect.base import Parsed
from monitor.collect.follow import read_batches
from monitor.collect.generic import JSON_BLOCK, CsvCollector, JsonLinesCollector, _Mapped, parse_ts
from monitor.errors import UsageError
from tests.support.goldens import check_golden, check_lines_accounted, golden_dir, load_options, render, rows

GOLDEN = golden_dir("generic")
CASES = sorted([*GOLDEN.glob("*.jsonl"), *GOLDEN.glob("*.csv")])


def _collector(path: Path) -> _Mapped:
    return (JsonLinesCollector if path.suffix == ".jsonl" else CsvCollector)(**load_options(path))


def _parse(collector: _Mapped, data: bytes, first_line: int = 1) -> Parsed:
    return collector.parse_chunk(data, source=f"{collector.name}:test", first_line=first_line, base_offset=0)


@pytest.mark.parametrize("path", CASES, ids=[p.name for p in CASES])
def test_golden(path: Path) -> None:
    got = render(_collector(path).parse_chunk(path.read_bytes(), source=path.name, first_line=1, base_offset=0))
    check_golden(got, path.with_suffix(".expected.json"))


@pytest.mark.parametrize("path", CASES, ids=[p.name for p in CASES])
def test_golden_same_in_small_batches(path: Path) -> None:
    """Tiny batches through follow.py: a CSV header read in one batch names the columns of the next."""
    whole = render(_parse(_collector(path), path.read_bytes()))
    batches = list(read_batches(_collector(path), path, None, max_bytes=120, final=True))
    assert len(batches) > 1
    assert [r for b in batches for r in rows(b.frame)] == whole["rows"]
    assert [(q.line, q.reason) for b in batches for q in b.quarantined] == [
        (q["line"], q["reason"]) for q in whole["quarantined"]
    ]


# ------------------------------------------------------------------ options


@pytest.mark.parametrize(
    "options, words",
    [
        ({"mapping": {"ts": "t", "dest": "host"}}, ["unknown field 'dest'", "dest_host"]),
        ({"mapping": {"dest_host": "host"}}, ["must map 'ts'"]),
        ({"mapping": {"ts": "time", "source_ip": "ip"}}, ["dest_host, dest_ip, url"]),
        ({"mapping": {"ts": "", "url": "u"}}, ["'ts' maps to an empty name"]),
        ({"mapping": "ts=time,url"}, ["option 'mapping'"]),
        ({"ts_format": "unix"}, ["ts_format", "strptime"]),
        ({"blocked_actions": ""}, ["blocked_actions"]),
    ],
)
def test_bad_mapping_options(options: dict[str, Any], words: list[str]) -> None:
    for cls in (JsonLinesCollector, CsvCollector):
        with pytest.raises(UsageError) as err:
            cls(**options)
        for word in words:
            assert word in str(err.value)


@pytest.mark.parametrize(
    "options, word",
    [
        ({"delimiter": ";;"}, "delimiter"),
        ({"delimiter": '"'}, "delimiter"),
        ({"header": "maybe"}, "header"),
        ({"columns": "a,,b"}, "columns"),
        ({"mapping": {"ts": "t", "url": "u"}, "columns": ["t", "x"]}, "lacks the mapped column(s) u"),
        ({"mapping": {"ts": "t", "url": "u"}, "header": False}, "'columns' is needed"),
        ({"columns": "ts,source_ip"}, "must name 'ts' and one of"),
    ],
)
def test_bad_csv_options(options: dict[str, Any], word: str) -> None:
    with pytest.raises(UsageError, match=word.replace("(", r"\(").replace(")", r"\)")):
        CsvCollector(**options)


def test_default_mapping_with_some_canonical_columns() -> None:
    got = _parse(CsvCollector(columns="ts,url", header="false"), b"1709287200,https://z.example/a\n")
    assert got.quarantined == [] and list(got.frame["dest_host"]) == ["z.example"]


def test_mapping_from_cli_strings() -> None:
    line = b'{"time": "2024-03-01T10:00:00Z", "u": "https://x.example/"}\n'
    for mapping in ("ts=time,url=u", '{"ts": "time", "url": "u"}'):
        got = _parse(JsonLinesCollector(mapping=mapping), line)
        assert list(got.frame["dest_host"]) == ["x.example"]
    csv = CsvCollector(mapping="ts=time,url=u", columns="time,u", header="false", delimiter="\\t")
    assert list(_parse(csv, b"2024-03-01T10:00:00Z\thttps://y.example/\n").frame["dest_host"]) == ["y.example"]


# ------------------------------------------------------------------ JSON: vectorised, with a narrow fallback


def _jsonl(n: int) -> list[bytes]:
    return [json.dumps({"ts": 1709287200 + i, "source_ip": "10.0.0.1", "url": f"https://h{i % 7}.example/p"}).encode()
            for i in range(n)]  # fmt: skip


def test_one_broken_line_among_many_is_the_only_one_quarantined() -> None:
    lines = _jsonl(3 * JSON_BLOCK)
    lines[JSON_BLOCK + 5] = b'{"ts": 1709287200, "url": "https://broken.example/'
    got = _parse(JsonLinesCollector(), b"\n".join(lines) + b"\n")
    assert [q.line for q in got.quarantined] == [JSON_BLOCK + 6]
    assert len(got.frame) == 3 * JSON_BLOCK - 1
    assert list(got.frame["line"]) == [i + 1 for i in range(3 * JSON_BLOCK) if i != JSON_BLOCK + 5]


def test_json_types_changing_between_lines_still_parse() -> None:
    lines = [b'{"ts": 1709287200, "dest_host": "a.example", "status": 200}',
             b'{"ts": "2024-03-01T10:00:01Z", "dest_host": "b.example", "status": "204"}',
             b'{"ts": 1709287202.5, "dest_host": {"x": true}, "dest_ip": "192.0.2.1", "status": null}']  # fmt: skip
    got = _parse(JsonLinesCollector(), b"\n".join(lines) + b"\n")
    assert got.quarantined == []
    assert list(got.frame["dest_host"].fillna("-")) == ["a.example", "b.example", "-"]
    assert list(got.frame["status"].fillna(-1)) == [200, 204, -1]


# ------------------------------------------------------------------ CSV: header found again after a restart


def test_csv_restart_reads_the_header_from_the_file(tmp_path: Path) -> None:
    log = tmp_path / "export.csv"
    rows = [f"{1709287200 + i},10.0.0.{i},h{i}.example" for i in range(40)]
    log.write_text("when,who,where\n" + "\n".join(rows) + "\n")
    opts = {"mapping": {"ts": "when", "source_ip": "who", "dest_host": "where"}}
    first = next(iter(read_batches(CsvCollector(**opts), log, None, max_bytes=200, final=True)))
    assert first.checkpoint is not None
    rest = list(read_batches(CsvCollector(**opts), log, first.checkpoint, final=True))
    assert not any(b.quarantined for b in rest)
    assert len(first.frame) + sum(len(b.frame) for b in rest) == 40


def test_csv_restart_reads_the_header_of_a_compressed_export(tmp_path: Path) -> None:
    data = b"host,when\nh1.example,1709287200\nh2.example,1709287201\n"
    (tmp_path / "x.csv.gz").write_bytes(gzip.compress(data))
    c = CsvCollector(mapping={"ts": "when", "dest_host": "host"})
    at = data.index(b"h2")
    got = c.parse_chunk(data[at:], source=f"csv:{tmp_path / 'x.csv.gz'}", first_line=3, base_offset=at)
    assert got.quarantined == [] and list(got.frame["dest_host"]) == ["h2.example"]


def test_csv_without_header_or_columns_says_so() -> None:
    got = CsvCollector(mapping={"ts": "when", "dest_host": "where"}).parse_chunk(
        b"1709287200,a.example\n", source="csv:/nonexistent", first_line=7, base_offset=100
    )
    assert [q.reason for q in got.quarantined] == [
        "no header line before this line, and no 'columns' option to name the columns"
    ]


# ------------------------------------------------------------------ time formats


@pytest.mark.parametrize(
    "value, fmt, expected",
    [
        (1709287200, "auto", "2024-03-01T10:00:00+00:00"),
        (1709287200123, "auto", "2024-03-01T10:00:00.123000+00:00"),
        (1709287200123456, "auto", "2024-03-01T10:00:00.123456+00:00"),
        ("1709287200.5", "auto", "2024-03-01T10:00:00.500000+00:00"),
        ("2024-03-01T11:00:00.1234567+01:00", "auto", "2024-03-01T10:00:00.123456+00:00"),
        ("2024-03-01 10:00:00", "iso8601", "2024-03-01T10:00:00+00:00"),
        ("2024-03-01T05:30:00-0430", "auto", "2024-03-01T10:00:00+00:00"),
        ("1709287200", "iso8601", None),
        (1709287200000, "epoch_ms", "2024-03-01T10:00:00+00:00"),
        ("01/Mar/2024:11:00:00 +0100", "%d/%b/%Y:%H:%M:%S %z", "2024-03-01T10:00:00+00:00"),
        ("2024-02-30T10:00:00Z", "auto", None),
        ("-5", "auto", None),
        (99999999999999999, "auto", None),
        ("tomorrow", "auto", None),
    ],
)
def test_parse_ts(value: Any, fmt: str, expected: str | None) -> None:
    got = parse_ts(pa.array([value]), fmt)[0].as_py()
    assert (None if got is None else pd.Timestamp(got).isoformat()) == expected


# ------------------------------------------------------------------ never crash

PIECES = st.sampled_from(
    ["2024-03-01T10:00:00Z", "1709287200", "-", "", "10.0.0.1", "a.example", "https://x.example/?e=a@b.example",
     "443", "99999", "GET", "200", '"', '""', ",", ";", "\t", "ts", "dest_host", "url", "é", "\\", "{", "["]
)  # fmt: skip


@st.composite
def csv_line(draw: st.DrawFn) -> bytes:
    return ",".join(draw(st.lists(PIECES, max_size=12))).encode()


@st.composite
def json_line(draw: st.DrawFn) -> bytes:
    keys = st.sampled_from(["ts", "source_ip", "dest_host", "dest_ip", "dest_port", "status", "url", "bytes_in", "x"])
    values = st.one_of(PIECES, st.integers(-5, 2**64), st.floats(), st.booleans(), st.none(),
                       st.lists(PIECES, max_size=2))  # fmt: skip
    return json.dumps(draw(st.dictionaries(keys, values, max_size=7))).encode()


def _check(parsed: Parsed, chunk: bytes) -> None:
    check_lines_accounted(parsed, chunk)


NOISE = st.binary(max_size=40).map(lambda b: b.replace(b"\n", b" "))


@settings(max_examples=250, deadline=None)
@given(lines=st.lists(st.one_of(json_line(), csv_line(), NOISE), max_size=12), terminated=st.booleans())
def test_never_crashes(lines: list[bytes], terminated: bool) -> None:
    chunk = b"\n".join(lines) + (b"\n" if terminated and lines else b"")
    for collector in (JsonLinesCollector(), CsvCollector(), CsvCollector(mapping={"ts": "ts", "url": "url"})):
        _check(collector.parse_chunk(chunk, source="h", first_line=1, base_offset=0), chunk)
