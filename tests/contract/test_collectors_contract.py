"""One contract for every registered line collector: schema, counts, origins, never raising."""

from __future__ import annotations

import random

import pyarrow as pa
import pytest

from monitor.collect import COLLECTORS
from monitor.collect.base import LineCollector, Parsed
from monitor.records import BATCH_SCHEMA

NAMES = sorted(COLLECTORS)

GARBAGE = [
    b"",
    b"   \t ",
    b"this is not a log line",
    b"\xff\xfe\xfd invalid utf-8 \xc3\x28",
    b"\x00\x01\x02\x03",
    b"1 2 3 4 5 6 7 8 9 10 11 12 13 14 15",
    b'{"json": "object", "n": 1}',
    b"- - - - - - - - - - - -",
    "ünïcödé ☃ lines \u2028 with separators".encode(),
]


@pytest.fixture(params=NAMES)
def collector(request: pytest.FixtureRequest) -> LineCollector:
    return COLLECTORS[request.param]()


def _sample_lines(collector: LineCollector) -> list[bytes]:
    lines = collector.sample.splitlines()
    assert lines, f"{collector.name}: `sample` must hold a few valid lines"
    return lines


def _schema_of(parsed: Parsed) -> pa.Schema:
    return pa.Table.from_pandas(parsed.frame, preserve_index=False).schema


def _assert_counts(parsed: Parsed) -> None:
    assert parsed.lines_read == len(parsed.frame) + len(parsed.quarantined) + parsed.blank_lines


def test_registry_entry(collector: LineCollector) -> None:
    name = type(collector).name
    assert COLLECTORS[name] is type(collector)
    assert name and name == name.strip().lower()
    assert type(collector).description.strip()
    assert isinstance(type(collector).sample, bytes)


def test_sample_parses_to_batch_schema(collector: LineCollector) -> None:
    lines = _sample_lines(collector)
    parsed = collector.parse_chunk(b"\n".join(lines) + b"\n", source="contract", first_line=1, base_offset=0)
    assert parsed.quarantined == [], [q.reason for q in parsed.quarantined]
    assert parsed.lines_read == len(lines) == len(parsed.frame)
    schema = _schema_of(parsed)
    assert schema.names == BATCH_SCHEMA.names
    assert [f.type for f in schema] == [f.type for f in BATCH_SCHEMA]
    assert set(parsed.frame["collector"]) == {collector.name}
    assert list(parsed.frame["line"]) == list(range(1, len(lines) + 1))


def test_empty_chunk(collector: LineCollector) -> None:
    parsed = collector.parse_chunk(b"", source="contract", first_line=1, base_offset=0)
    assert parsed.lines_read == 0 and len(parsed.frame) == 0 and parsed.quarantined == []
    assert _schema_of(parsed).names == BATCH_SCHEMA.names


def test_mixed_garbage_counts_and_origins(collector: LineCollector) -> None:
    """Valid lines interleaved with garbage: every line accounted for, at its own line/offset."""
    valid = _sample_lines(collector)
    lines = [x for pair in zip(GARBAGE, valid * len(GARBAGE), strict=False) for x in pair]
    chunk = b"\n".join(lines) + b"\n"
    first_line, base_offset = 1000, 50_000
    parsed = collector.parse_chunk(chunk, source="contract", first_line=first_line, base_offset=base_offset)
    _assert_counts(parsed)
    assert parsed.lines_read == len(lines)
    assert [f.type for f in _schema_of(parsed)] == [f.type for f in BATCH_SCHEMA]

    starts = [0]
    for raw in lines:
        starts.append(starts[-1] + len(raw) + 1)
    for n, off in zip(parsed.frame["line"], parsed.frame["offset"], strict=True):
        i = n - first_line
        assert lines[i] in valid, f"row from a garbage line {lines[i]!r}"
        assert off == base_offset + starts[i]
    for q in parsed.quarantined:
        assert q.line is not None and q.offset is not None
        i = q.line - first_line
        assert q.raw == lines[i] and q.offset == base_offset + starts[i]
        assert q.reason and q.source == "contract"
    # every sample line became a row
    assert len(parsed.frame) == sum(1 for x in lines if x in valid)


def test_random_bytes_quarantine_instead_of_raising(collector: LineCollector) -> None:
    rng = random.Random(20240601)
    for _ in range(200):
        chunk = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 300)))
        parsed = collector.parse_chunk(chunk, source="contract", first_line=1, base_offset=0)
        _assert_counts(parsed)
        expected_lines = chunk.count(b"\n") + (0 if chunk.endswith(b"\n") or not chunk else 1)
        assert parsed.lines_read == expected_lines
        for q in parsed.quarantined:
            assert q.line is not None and 1 <= q.line <= expected_lines
