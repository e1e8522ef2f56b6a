"""The Envoy collector: golden files, real Envoy logs against facts computed elsewhere, never crashing.

Goldens: tests/golden/envoy/NAME.log -> NAME.expected.json (NAME.options.json: collector
options). Regenerate with `XBORDER_REGEN_GOLDEN=1 pytest tests/unit/test_envoy.py` and read the
diff line by line. Sources of the golden inputs: tests/golden/envoy/SOURCES.md.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.collect.base import Parsed
from monitor.collect.envoy import EnvoyCollector
from monitor.collect.follow import read_batches
from monitor.errors import UsageError
from tests.support.goldens import check_accounting, check_same_in_batches, golden_dir, load_options, render, rows
from tests.support.goldens import check_golden as check_rendered

GOLDEN = golden_dir("envoy")
CASES = sorted(GOLDEN.glob("*.log"))


def check_golden(parsed: Parsed, log: Path) -> None:
    check_rendered(render(parsed), log.with_suffix(".expected.json"))


@pytest.mark.parametrize("log", CASES, ids=[p.stem for p in CASES])
def test_golden(log: Path) -> None:
    collector = EnvoyCollector(**load_options(log))
    check_golden(collector.parse_chunk(log.read_bytes(), source=f"envoy:{log.name}", first_line=1, base_offset=0), log)


@pytest.mark.parametrize("log", CASES, ids=[p.stem for p in CASES])
def test_golden_same_in_small_batches(log: Path) -> None:
    """Through follow.py in tiny batches: the same rows and origins as one big chunk."""
    collector = EnvoyCollector(**load_options(log))
    whole = render(collector.parse_chunk(log.read_bytes(), source="x", first_line=1, base_offset=0))
    check_same_in_batches(list(read_batches(collector, log, None, max_bytes=300, final=True)), whole)


# --------------------------------------------------------------------------- real logs


def _oracle(fixtures_real: Path) -> dict[str, Any]:
    facts: dict[str, Any] = json.loads((fixtures_real / "oracle.json").read_text())["accesslog"]
    return {k: v for k, v in facts.items() if k.startswith("accesslog/elastic-envoy/") and k.endswith(".log")}


def test_real_envoy_logs_match_the_oracle(fixtures_real: Path) -> None:
    """Every record the oracle parsed (its own regex, not ours) is a row with the same facts."""
    facts = _oracle(fixtures_real)
    assert len(facts) == 3
    for rel, fact in sorted(facts.items()):
        data = (fixtures_real / rel).read_bytes()
        parsed = EnvoyCollector().parse_chunk(data, source=rel, first_line=1, base_offset=0)
        assert parsed.quarantined == [], (rel, [q.reason for q in parsed.quarantined])
        assert parsed.lines_read == fact["lines"] == len(parsed.frame)
        for record, row in zip(fact["records"], rows(parsed.frame), strict=True):
            assert record["parsed"]
            where = (rel, row["line"])
            assert row["ts"] == pd.Timestamp(record["start"]).isoformat(), where
            assert row["method"] == (None if record["method"] == "-" else record["method"]), where
            assert row["status"] == int(record["code"]), where
            flags = set(record["flags"].split(","))
            assert row["egress"] == (not flags & {"UF", "URX", "NR"} and record["upstream"] != "-"), where
            if record["upstream"] == "-":
                assert row["dest_ip"] is None and row["dest_port"] is None, where
            else:
                ip, port = record["upstream"].rsplit(":", 1)
                assert (row["dest_ip"], row["dest_port"]) == (ip, int(port)), where
            authority = record["authority"].rsplit(":", 1)[0]
            named = record["authority"] != "-" and not authority.replace(".", "").isdigit()
            assert row["dest_host"] == (authority.lower() if named else None), where
            assert row["protocol"] == ("tcp" if record["method"] == "-" else "http"), where


def test_real_tcp_proxy_line_without_upstream(fixtures_real: Path) -> None:
    """`"- - -" 0 UF,URX`: a TCP proxy that never reached 127.0.0.1:9200 sent nothing."""
    rel = "accesslog/elastic-envoy/beats-envoy.log"
    frame = EnvoyCollector().parse_chunk((fixtures_real / rel).read_bytes(), source=rel, first_line=1, base_offset=0)
    tcp = rows(frame.frame)[0]
    assert (tcp["method"], tcp["status"], tcp["egress"], tcp["protocol"]) == (None, 0, False, "tcp")
    assert (tcp["bytes_out"], tcp["bytes_in"], tcp["pii"]) == (0, 0, None)


# --------------------------------------------------------------------------- options


@pytest.mark.parametrize(
    "given",
    [
        {"start_time": "@timestamp", "upstream_host": "up.host"},
        '{"start_time": "@timestamp", "upstream_host": "up.host"}',
        "start_time=@timestamp, upstream_host=up.host",
    ],
)
def test_json_keys_option_forms(given: Any) -> None:
    keys = EnvoyCollector(json_keys=given).json_keys
    assert (keys["start_time"], keys["upstream_host"], keys["method"]) == ("@timestamp", "up.host", "method")


@pytest.mark.parametrize("bad", [{"starttime": "x"}, {"method": ""}, {"method": 3}, "[1]", "no-equals", '{"a"'])
def test_json_keys_option_errors_name_the_option(bad: Any) -> None:
    with pytest.raises(UsageError, match="json_keys"):
        EnvoyCollector(json_keys=bad)


def test_json_bad_lines_spread_over_a_large_chunk_are_found_by_halving() -> None:
    good = EnvoyCollector.sample.splitlines()[2]
    lines = [good] * 5000
    bad = set(range(7, 5000, 501)) | {0, 4999}
    for i in bad:
        lines[i] = good[:-1]  # the closing brace cut off
    chunk = b"\n".join(lines) + b"\n"
    parsed = EnvoyCollector().parse_chunk(chunk, source="h", first_line=1, base_offset=0)
    assert {q.line for q in parsed.quarantined} == {i + 1 for i in bad}
    assert all(q.reason.startswith("invalid JSON") for q in parsed.quarantined)
    assert len(parsed.frame) == 5000 - len(bad)


def test_typed_and_string_json_values_in_one_chunk() -> None:
    """json_format logs numbers as strings, typed_json_format as numbers: both read, even mixed."""
    typed = b'{"start_time":"2024-03-01T10:00:00Z","response_code":503,"bytes_sent":7,"upstream_host":"1.2.3.4:80"}'
    text = b'{"start_time":"2024-03-01T10:00:01Z","response_code":"200","bytes_sent":"9","upstream_host":"1.2.3.4:80"}'
    parsed = EnvoyCollector().parse_chunk(typed + b"\n" + text + b"\n", source="h", first_line=1, base_offset=0)
    assert parsed.quarantined == []
    assert list(parsed.frame["status"]) == [503, 200] and list(parsed.frame["bytes_in"]) == [7, 9]


# --------------------------------------------------------------------------- never crash

VALID = EnvoyCollector.sample.splitlines()
TOKENS = st.sampled_from(
    [
        "[2019-02-12T18:37:42.921Z]", "[2019-02-30T00:00:00Z]", "[x]", '"GET / HTTP/1.1"', '"- - -"',
        '"CONNECT - HTTP/2"',
        "200", "0", "-", "UF,URX", "NR", "via_upstream", "12", "-5", '"-"', '"10.0.0.1, 10.0.0.2"', '"curl/8 \\"x\\""',
        '"httpbin.org"', '"[::1]:443"', '"tcp://1.2.3.4:80"', '"a b:1"', '"1.2.3.4:99999"', "ACCESS", "{", "}",
        '{"start_time":"2024-01-01T00:00:00Z"}', '{"log":"x"}', '{"start_time":{"a":1}}', '{"log":"[2019-02-12T1',
        "é", "\u00a0", "\x00", '"', "[", "]",
    ]
)  # fmt: skip


@st.composite
def envoy_like_line(draw: st.DrawFn) -> bytes:
    tokens = draw(st.lists(TOKENS, min_size=0, max_size=16))
    return draw(st.sampled_from([" ", "  ", "\t"])).join(tokens).encode("utf-8")


LINES = st.one_of(
    st.sampled_from(VALID),
    envoy_like_line(),
    st.binary(max_size=80).map(lambda b: b.replace(b"\n", b" ")),
    st.text(max_size=60).map(lambda t: t.replace("\n", " ").encode("utf-8", "surrogatepass")),
)


@settings(max_examples=300, deadline=None)
@given(lines=st.lists(LINES, max_size=12), terminated=st.booleans(), first_line=st.integers(1, 10**6))
def test_lines_never_crash(lines: list[bytes], terminated: bool, first_line: int) -> None:
    chunk = b"\n".join(lines) + (b"\n" if terminated and lines else b"")
    parsed = EnvoyCollector().parse_chunk(chunk, source="h", first_line=first_line, base_offset=77)
    check_accounting(parsed, chunk, first_line, 77)


@settings(max_examples=150, deadline=None)
@given(chunk=st.binary(max_size=400))
def test_arbitrary_bytes_never_crash(chunk: bytes) -> None:
    check_accounting(EnvoyCollector().parse_chunk(chunk, source="h", first_line=1, base_offset=0), chunk, 1, 0)


@settings(max_examples=100, deadline=None)
@given(picked=st.lists(st.sampled_from(VALID), min_size=1, max_size=8), docker=st.booleans())
def test_valid_lines_are_all_rows(picked: list[bytes], docker: bool) -> None:
    if docker:  # the same lines as a Docker json-file log
        picked = [json.dumps({"log": p.decode() + "\n", "stream": "stdout"}).encode() for p in picked]
    parsed = EnvoyCollector().parse_chunk(b"\n".join(picked) + b"\n", source="h", first_line=1, base_offset=0)
    assert parsed.quarantined == []
    assert len(parsed.frame) == len(picked)
