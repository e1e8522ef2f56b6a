"""The Squid parser never crashes: any bytes become rows, quarantine or blank lines, all accounted for."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.collect.base import Parsed
from monitor.collect.squid import SquidCollector

VALID = SquidCollector.sample.splitlines()

# Pieces a squid line is made of, so that generated lines get past the first checks often
# enough to exercise the URL, status and hierarchy paths, not only "too few fields".
TOKENS = st.sampled_from(
    [
        "1700000000.123", "0", "-5", "9e99", "abc", "10.0.0.1", "::1", "TCP_MISS/200", "NONE_NONE/000",
        "TCP_MISS/x", "/", "123", "-", "GET", "CONNECT", "http://a.example/", "https://[::1]:8443/p",
        "host:443", "[2001:db8::1]:443", "http://u:p@h.example:99999/", "error:invalid-request", "http:///",
        "HIER_DIRECT/1.2.3.4", "FIRST_PARENT_MISS/proxy.example", "HIER_NONE/-", "DIRECT/::1", "text/html",
        "é", "\u00a0", "\x00", "cache_object://localhost/", "//", "@", "[", "]",
    ]
)  # fmt: skip
SEPARATORS = st.sampled_from([" ", "  ", "\t", " \t ", "\r", "\x0b"])


@st.composite
def squid_like_line(draw: st.DrawFn) -> bytes:
    tokens = draw(st.lists(TOKENS, min_size=0, max_size=13))
    out = ""
    for token in tokens:
        out += token + draw(SEPARATORS)
    return out.encode("utf-8")


LINES = st.one_of(
    st.sampled_from(VALID),
    squid_like_line(),
    st.binary(max_size=80).map(lambda b: b.replace(b"\n", b" ")),
    st.text(max_size=60).map(lambda t: t.replace("\n", " ").encode("utf-8", "surrogatepass")),
)


def _check(parsed: Parsed, chunk: bytes, first_line: int, base_offset: int) -> None:
    total = chunk.count(b"\n") + (0 if chunk.endswith(b"\n") or not chunk else 1)
    assert parsed.lines_read == total
    assert parsed.lines_read == len(parsed.frame) + len(parsed.quarantined) + parsed.blank_lines
    last = first_line + total - 1
    lines = chunk.split(b"\n")
    for q in parsed.quarantined:
        assert q.line is not None and first_line <= q.line <= last
        assert q.offset is not None and q.reason
        assert q.raw == lines[q.line - first_line]
        assert chunk[q.offset - base_offset :].startswith(q.raw)
    for line, offset in zip(parsed.frame["line"], parsed.frame["offset"], strict=True):
        assert first_line <= line <= last
        assert chunk[offset - base_offset :].startswith(lines[line - first_line])
    seen = list(parsed.frame["line"]) + [q.line for q in parsed.quarantined]
    assert len(seen) == len(set(seen))


@settings(max_examples=300, deadline=None)
@given(
    lines=st.lists(LINES, max_size=12),
    terminated=st.booleans(),
    first_line=st.integers(1, 10**6),
    base_offset=st.integers(0, 10**9),
)
def test_lines_never_crash(lines: list[bytes], terminated: bool, first_line: int, base_offset: int) -> None:
    chunk = b"\n".join(lines) + (b"\n" if terminated and lines else b"")
    parsed = SquidCollector().parse_chunk(chunk, source="h", first_line=first_line, base_offset=base_offset)
    _check(parsed, chunk, first_line, base_offset)


@settings(max_examples=200, deadline=None)
@given(chunk=st.binary(max_size=400))
def test_arbitrary_bytes_never_crash(chunk: bytes) -> None:
    parsed = SquidCollector().parse_chunk(chunk, source="h", first_line=1, base_offset=0)
    _check(parsed, chunk, 1, 0)


@settings(max_examples=100, deadline=None)
@given(lines=st.lists(st.sampled_from(VALID), min_size=1, max_size=8))
def test_valid_lines_are_all_rows(lines: list[bytes]) -> None:
    chunk = b"\n".join(lines) + b"\n"
    parsed = SquidCollector().parse_chunk(chunk, source="h", first_line=1, base_offset=0)
    assert parsed.quarantined == []
    assert len(parsed.frame) == len(lines)


def test_invalid_utf8_lines_across_a_large_chunk() -> None:
    """Many bad lines spread over several 64 KiB decode windows: exactly those are quarantined."""
    lines = [VALID[i % len(VALID)] for i in range(3000)]
    bad = set(range(5, 3000, 7)) | {0, 2999}
    for i in bad:
        lines[i] = lines[i].replace(b"HIER_", b"\xc3\x28HIER_")
    chunk = b"\n".join(lines) + b"\n"
    parsed = SquidCollector().parse_chunk(chunk, source="h", first_line=1, base_offset=0)
    _check(parsed, chunk, 1, 0)
    assert {q.line for q in parsed.quarantined} == {i + 1 for i in bad}
    assert {q.reason for q in parsed.quarantined} == {"invalid UTF-8"}
    assert len(parsed.frame) == 3000 - len(bad)
