"""Zeek collector: golden files (tests/golden/zeek/NAME.log -> NAME.expected.json), DNS naming, headers, restarts.

The TSV goldens follow the layouts of Zeek's own test baselines (zeek/zeek,
testing/btest/Baseline/: core.tunnels.teredo/conn.log, scripts.base.protocols.ssl.basic/ssl.log,
scripts.base.protocols.dns.multiple-txt-strings/dns.log) and the http.log field list of Zeek 3+
(as quoted in the JarryShaw/zlogging README); escaping follows src/threading/formatters/Ascii.cc
(unset "-", "(empty)", sets joined by #set_separator, "\\xNN" escapes). The JSON golden has the
shapes Zeek writes with LogAscii::use_json (flat "id.orig_h" keys, epoch ts), with
json_timestamps ISO 8601 / millis, and with a "_path" key; addresses are documentation ranges.

Regenerate with `XBORDER_REGEN_GOLDEN=1 pytest tests/unit/test_zeek.py`, then read the diff line
by line: a golden is only worth something if a person has checked it.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.collect.base import Parsed
from monitor.collect.follow import read_batches
from monitor.collect.zeek import ZeekCollector
from monitor.errors import UsageError
from tests.support.goldens import check_golden, check_lines_accounted, check_same_in_batches, golden_dir, render
from tests.support.goldens import rows as _rows

GOLDEN = golden_dir("zeek")
CASES = sorted(GOLDEN.glob("*.log"))


def _parse(data: bytes, collector: ZeekCollector | None = None, source: str = "zeek:test") -> Parsed:
    return (collector or ZeekCollector()).parse_chunk(data, source=source, first_line=1, base_offset=0)


@pytest.mark.parametrize("log", CASES, ids=[p.stem for p in CASES])
def test_golden(log: Path) -> None:
    got = render(_parse(log.read_bytes(), source=f"zeek:{log.name}"))
    check_golden(got, log.with_suffix(".expected.json"))


@pytest.mark.parametrize("log", CASES, ids=[p.stem for p in CASES])
def test_golden_same_in_small_batches(log: Path) -> None:
    """Through follow.py in tiny batches: headers carry over between chunks; same rows, same origins."""
    whole = render(_parse(log.read_bytes()))
    batches = list(read_batches(ZeekCollector(), log, None, max_bytes=150, final=True))
    check_same_in_batches(batches, whole)


# ------------------------------------------------------------------ DNS answers name conn rows

DNS = (GOLDEN / "dns.log").read_bytes()
CONN_HEAD = b"".join(line + b"\n" for line in (GOLDEN / "conn.log").read_bytes().split(b"\n")[:8])


def _conn(ts: float, dest: str) -> bytes:
    fields = [f"{ts:.6f}", "Cx", "10.1.0.5", "50000", dest, "443", "tcp", "-", "1.0", "10", "20", "SF", "T", "F",
              "0", "ShADadFf", "1", "50", "1", "60", "(empty)"]  # fmt: skip
    return CONN_HEAD + "\t".join(fields).encode() + b"\n"


def test_dns_answers_name_later_conn_rows_across_files(tmp_path: Path) -> None:
    dns, conn = tmp_path / "dns.log", tmp_path / "conn.log"
    dns.write_bytes(DNS)
    conn.write_bytes(_conn(1709287510.0, "192.0.2.206") + _conn(1709287510.0, "2001:db8:cafe::206")[len(CONN_HEAD) :])
    c = ZeekCollector()
    for path in (dns, conn):  # as `xborder ingest zeek dns.log conn.log` does, with one collector
        batches = list(read_batches(c, path, None, final=True))
    frame = batches[-1].frame
    # the A answer came through a CNAME: the row is named by what the client asked for
    assert list(frame["dest_host"]) == ["www.shop.example", "www.shop.example"]


def test_conn_before_dns_is_not_named() -> None:
    c = ZeekCollector()
    first = _parse(_conn(1709287510.0, "192.0.2.206"), c, "zeek:conn")
    _parse(DNS, c, "zeek:dns")
    assert first.frame["dest_host"].isna().all()


def test_answers_expire_after_ttl_and_grace() -> None:
    c = ZeekCollector(dns_ttl_grace=10)
    _parse(DNS, c, "zeek:dns")  # 192.0.2.1 answered at ...504 with TTL 60
    fresh = _parse(_conn(1709287504.0 + 60 + 10, "192.0.2.1"), c, "zeek:c1")
    stale = _parse(_conn(1709287504.0 + 60 + 11, "192.0.2.1"), c, "zeek:c2")
    assert list(fresh.frame["dest_host"]) == ["multi.example.com"]
    assert stale.frame["dest_host"].isna().all()


def test_cache_is_bounded_and_keeps_the_latest_answers() -> None:
    c = ZeekCollector(dns_cache_size="2")  # options arrive as strings from `-o KEY=VALUE`
    _parse(DNS, c, "zeek:dns")
    assert len(c.dns) == 2
    names = [_parse(_conn(1709287505.0, ip), c, f"zeek:{ip}").frame["dest_host"].iloc[0] for ip in
             ("192.0.2.1", "192.0.2.2", "192.0.2.3")]  # fmt: skip
    assert names[0] is pd.NA and names[1:] == ["multi.example.com", "multi.example.com"]
    off = ZeekCollector(dns_cache_size=0)
    _parse(DNS, off, "zeek:dns")
    assert len(off.dns) == 0


def test_sni_and_host_beat_dns_names() -> None:
    c = ZeekCollector()
    _parse(DNS, c, "zeek:dns")
    line = (b'{"ts":1709287510,"id.orig_h":"10.1.0.5","id.resp_h":"192.0.2.206","id.resp_p":443,'
            b'"server_name":"other.example"}\n{"ts":1709287510,"id.orig_h":"10.1.0.5","id.resp_h":"192.0.2.206",'
            b'"id.resp_p":443,"cipher":"TLS_AES_128_GCM_SHA256"}\n')  # fmt: skip
    assert list(_parse(line, c).frame["dest_host"]) == ["other.example", "www.shop.example"]


# ------------------------------------------------------------------ headers and restarts


def test_header_mid_file_changes_the_layout() -> None:
    got = _parse((GOLDEN / "midfile.log").read_bytes())
    # the second block adds community_id: a line still in the old layout no longer fits
    assert [q.reason for q in got.quarantined] == ["expected 22 fields as in #fields at line 19, got 21"]
    conn = got.frame[got.frame["protocol"] != "dns"]
    # named while fresh; the 5 s TTL has run out (with the 300 s grace) for the second row
    assert list(conn["dest_host"].fillna("-")) == ["api.vendor.example", "-", "cname.example", "-"]
    assert got.blank_lines == 8 + 1 + 8 + 1  # two header blocks and two #close lines


def test_restart_mid_file_reads_the_header_back(tmp_path: Path) -> None:
    log = tmp_path / "conn.log"
    log.write_bytes((GOLDEN / "conn.log").read_bytes())
    whole = list(read_batches(ZeekCollector(), log, None, max_bytes=1 << 20, final=True))
    first = next(iter(read_batches(ZeekCollector(), log, None, max_bytes=700, final=True)))
    assert first.checkpoint is not None and first.checkpoint.line > 9  # past the header
    resumed = list(read_batches(ZeekCollector(), log, first.checkpoint, max_bytes=1 << 20, final=True))
    rows = _rows(first.frame) + [r for b in resumed for r in _rows(b.frame)]
    assert rows == _rows(whole[0].frame)
    assert not any(b.quarantined for b in resumed)


@pytest.mark.parametrize("compressed", [False, True], ids=["plain", "gzip"])
def test_restart_after_a_mid_file_header_uses_that_header(tmp_path: Path, compressed: bool) -> None:
    """Resuming past the second header block: the fields in force there (22 columns), not the first."""
    data = (GOLDEN / "midfile.log").read_bytes()
    path = tmp_path / ("midfile.log.gz" if compressed else "midfile.log")
    path.write_bytes(gzip.compress(data) if compressed else data)
    lines = data.split(b"\n")
    offset = sum(len(x) + 1 for x in lines[:20])  # line 21: the first conn row (offsets are decompressed)
    got = ZeekCollector().parse_chunk(data[offset:], source=f"zeek:{path}", first_line=21, base_offset=offset)
    assert list(got.frame["line"]) == [21, 22, 23, 24]
    assert [q.line for q in got.quarantined] == [25]  # the one row still in the 21-column layout
    assert got.blank_lines == 1  # #close


def test_restart_without_the_file_quarantines_with_a_reason() -> None:
    row = _conn(1709287510.0, "192.0.2.9").split(b"\n")[-2] + b"\n"
    got = ZeekCollector().parse_chunk(row, source="zeek:/nonexistent/conn.log", first_line=50, base_offset=9000)
    assert [q.reason for q in got.quarantined] == [
        "no #fields header before this line (a Zeek TSV log starts with one)"
    ]


def test_log_type_option_types_headerless_json() -> None:
    line = b'{"ts":1709287510.5,"id.orig_h":"10.1.0.5","id.resp_h":"192.0.2.9","id.resp_p":443}\n'
    assert len(_parse(line).quarantined) == 1
    got = _parse(line, ZeekCollector(log_type="ssl"))
    assert got.quarantined == [] and list(got.frame["protocol"]) == ["tls"]


@pytest.mark.parametrize(
    "options, word",
    [({"log_type": "x509"}, "log_type"), ({"dns_cache_size": -1}, "dns_cache_size"),
     ({"dns_cache_size": "many"}, "dns_cache_size"), ({"dns_ttl_grace": "soon"}, "dns_ttl_grace")],
)  # fmt: skip
def test_bad_options_are_usage_errors(options: dict[str, Any], word: str) -> None:
    with pytest.raises(UsageError, match=word):
        ZeekCollector(**options)


# ------------------------------------------------------------------ never crash

PIECES = st.sampled_from(
    ["1709287200.5", "2024-03-01T10:00:00Z", "-", "(empty)", "10.0.0.1", "2001:db8::1", "443", "70000", "tcp",
     "S0", "SF", "REJ", "ssl,http", "a.example", "192.0.2.1,192.0.2.2", "60.0,x", "\\x09", "\\x", "é", "", "{", "}",
     '"', "#fields", "#path", "conn", "dns"]
)  # fmt: skip
HEADERS = st.sampled_from(
    [b"#separator \\x09", b"#path\tconn", b"#path\tdns", b"#path\thttp", b"#path\tssl", b"#path\tfiles",
     b"#fields\tts\tid.orig_h\tid.resp_h\tid.resp_p\tconn_state\torig_bytes",
     b"#fields\tts\tid.orig_h\tid.resp_h\tid.resp_p\tquery\tanswers\tTTLs",
     b"#fields\tts\tid.orig_h\tid.resp_h\thost\turi\tstatus_code", b"#set_separator\t;", b"#unset_field\tNULL"]
)  # fmt: skip


@st.composite
def zeek_line(draw: st.DrawFn) -> bytes:
    kind = draw(st.integers(0, 3))
    if kind == 0:
        return draw(HEADERS)
    if kind == 1:
        return "\t".join(draw(st.lists(PIECES, max_size=8))).encode()
    if kind == 2:
        keys = ["ts", "id.orig_h", "id.resp_h", "id.resp_p", "query", "answers", "_path", "server_name", "uri"]
        values = st.one_of(PIECES, st.integers(-5, 2**40), st.floats(allow_nan=False), st.lists(PIECES, max_size=3))
        obj = draw(st.dictionaries(st.sampled_from(keys), values, max_size=6))
        return json.dumps(obj).encode()
    return draw(st.binary(max_size=60)).replace(b"\n", b" ")


def _check(parsed: Parsed, chunk: bytes, first_line: int) -> None:
    seen = check_lines_accounted(parsed, chunk)
    assert all(first_line <= s < first_line + parsed.lines_read for s in seen)


@settings(max_examples=300, deadline=None)
@given(lines=st.lists(zeek_line(), max_size=14), terminated=st.booleans(), first_line=st.integers(1, 10**6))
def test_never_crashes(lines: list[bytes], terminated: bool, first_line: int) -> None:
    chunk = b"\n".join(lines) + (b"\n" if terminated and lines else b"")
    parsed = ZeekCollector().parse_chunk(chunk, source="zeek:h", first_line=first_line, base_offset=0)
    _check(parsed, chunk, first_line)


@settings(max_examples=150, deadline=None)
@given(chunk=st.binary(max_size=300))
def test_arbitrary_bytes_never_crash(chunk: bytes) -> None:
    _check(ZeekCollector().parse_chunk(chunk, source="zeek:h", first_line=1, base_offset=0), chunk, 1)


# ------------------------------------------------------------------ one connection in two logs

SSL = (GOLDEN / "ssl.log").read_bytes()


def _conn_uid(uid: str, dest: str, ts: float = 1709287400.0, orig: int = 700, resp: int = 5120) -> bytes:
    fields = [f"{ts:.6f}", uid, "10.1.0.101", "49816", dest, "443", "tcp", "ssl", "1.0", str(orig), str(resp), "SF",
              "T", "F", "0", "ShADadFf", "1", "50", "1", "60", "(empty)"]  # fmt: skip
    return "\t".join(fields).encode() + b"\n"


def test_conn_row_of_a_connection_in_ssl_log_adds_bytes_not_a_request(tmp_path: Path) -> None:
    """ssl.log then conn.log (one collector): the conn row takes the SNI name and weight 0."""
    ssl, conn = tmp_path / "ssl.log", tmp_path / "conn.log"
    ssl.write_bytes(SSL)
    conn.write_bytes(CONN_HEAD + _conn_uid("CRUIstLprtERqs8c8", "192.0.2.186") + _conn_uid("Cnot-in-ssl", "192.0.2.9"))
    c = ZeekCollector()
    first = list(read_batches(c, ssl, None, final=True))[-1].frame
    frame = list(read_batches(c, conn, None, final=True))[-1].frame
    assert list(first["sample_rate"]) == [1] * len(first)  # the ssl rows count the connections
    assert frame["dest_host"][0] == "login.example.com" and pd.isna(frame["dest_host"][1])
    assert list(frame["sample_rate"]) == [0, 1]  # counted by its ssl row / not seen there: counts
    assert list(frame["bytes_out"]) == [700, 700]


def test_within_one_json_chunk_ssl_is_taken_before_an_earlier_conn_row() -> None:
    c = ZeekCollector()
    frame = _parse(ZeekCollector.sample, c).frame  # its conn row (line 2) comes before its ssl row (line 3)
    by_line = dict(zip(frame["line"], zip(frame["dest_host"], frame["sample_rate"], strict=True), strict=True))
    assert by_line[2] == ("api.example.com", 0) and by_line[3] == ("api.example.com", 1)
    assert list(frame["line"]) == sorted(frame["line"])  # rows still in line order


def test_uid_cache_is_bounded_and_can_be_off() -> None:
    head = SSL
    c = ZeekCollector(uid_cache_size=2)
    _parse(head, c)
    assert len(c.uids) == 2
    off = ZeekCollector(uid_cache_size=0)
    _parse(head, off)
    frame = _parse(CONN_HEAD + _conn_uid("CRUIstLprtERqs8c8", "192.0.2.186"), off).frame
    assert list(frame["sample_rate"]) == [1]


def test_through_the_pipeline_one_connection_is_one_request_with_its_bytes(tmp_path: Path) -> None:
    import sqlite3

    from monitor.cli.main import run

    (tmp_path / "ssl.log").write_bytes(SSL)
    (tmp_path / "conn.log").write_bytes(CONN_HEAD + _conn_uid("CRUIstLprtERqs8c8", "192.0.2.186", ts=1709287300.2))
    cfg = tmp_path / "xborder.yaml"
    cfg.write_text(
        "store: {url: 'sqlite:///x.db'}\nalerts: {jsonl: null, stderr: false}\n"
        "systems: [{name: lan, sources: [10.0.0.0/8], data_categories: [none]}]\n",
        encoding="utf-8",
    )
    logs = [str(tmp_path / "ssl.log"), str(tmp_path / "conn.log")]
    assert run(["-c", str(cfg), "ingest", "zeek", *logs, "--final"]) == 0
    con = sqlite3.connect(tmp_path / "x.db")
    got = con.execute("select sum(requests), sum(bytes_out), sum(bytes_in) from evidence "
                      "where dest_host = 'login.example.com'").fetchone()  # fmt: skip
    con.close()
    assert got == (1, 700, 5120)
