"""Apache/nginx access logs: golden files, real logs made by others, random input, bad log_format options.

Goldens: tests/golden/accesslog/NAME.log -> NAME.expected.json, with the collector's options (and
another registered name, "collector") in NAME.options.json when there is one. Regenerate with
`XBORDER_REGEN_GOLDEN=1 pytest tests/unit/test_accesslog.py`, then read the diff line by line.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.collect.accesslog import AccessLogCollector, NginxCollector
from monitor.collect.base import Parsed
from monitor.collect.follow import read_batches
from monitor.errors import UsageError
from tests.support.goldens import (
    check_golden,
    check_lines_accounted,
    check_same_in_batches,
    golden_dir,
    load_options,
    render,
    rows,
)

GOLDEN = golden_dir("accesslog")
CASES = sorted(GOLDEN.glob("*.log"))
KINDS = {"accesslog": AccessLogCollector, "nginx": NginxCollector}
REVERSE_FORMAT = (
    '$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" '
    '"$http_user_agent" $host $upstream_addr $request_time'
)


def _collector(log: Path) -> AccessLogCollector:
    opts = load_options(log)
    return KINDS[opts.pop("collector", "accesslog")](**opts)


def _parse(collector: AccessLogCollector, data: bytes, first_line: int = 1, base_offset: int = 0) -> Parsed:
    return collector.parse_chunk(data, source="t", first_line=first_line, base_offset=base_offset)


@pytest.mark.parametrize("log", CASES, ids=[p.stem for p in CASES])
def test_golden(log: Path) -> None:
    check_golden(render(_parse(_collector(log), log.read_bytes())), log.with_suffix(".expected.json"))


@pytest.mark.parametrize("log", CASES, ids=[p.stem for p in CASES])
def test_golden_same_in_small_batches(log: Path) -> None:
    """Read through follow.py in tiny batches: same rows, same origins as one big chunk."""
    whole = render(_parse(_collector(log), log.read_bytes()))
    batches = list(read_batches(_collector(log), log, None, max_bytes=200, final=True))
    check_same_in_batches(batches, whole)


# --------------------------------------------------------------------------- meaning


def _one(line: str, **opts: Any) -> dict[str, Any]:
    parsed = _parse(AccessLogCollector(**opts), line.encode() + b"\n")
    assert parsed.quarantined == [], [q.reason for q in parsed.quarantined]
    (row,) = rows(parsed.frame)
    return row


def test_forward_proxy_absolute_uri_and_connect() -> None:
    row = _one('10.0.0.5 - - [10/Oct/2000:13:55:36 -0700] "GET https://Files.Example.net:8443/a HTTP/1.1" 200 5')
    assert (row["dest_host"], row["dest_port"], row["protocol"], row["egress"]) == (
        "files.example.net",
        8443,
        "https",
        True,
    )
    assert row["ts"] == "2000-10-10T20:55:36+00:00"
    row = _one('10.0.0.5 - - [10/Oct/2000:13:55:36 +0000] "CONNECT api.example.org:443 HTTP/1.1" 200 0')
    assert (row["dest_host"], row["dest_port"], row["protocol"], row["method"]) == (
        "api.example.org",
        443,
        "tunnel",
        "CONNECT",
    )


def test_reverse_proxy_takes_the_first_upstream_and_the_host() -> None:
    line = (
        '10.0.0.5 - - [10/Oct/2000:13:55:36 +0000] "GET /p?mail=a%40b.example HTTP/1.1" 502 0 "-" "-" '
        "API.example.com 10.0.0.1:8080, 10.0.0.2:8080 : 10.0.0.3:80 0.100"
    )
    row = _one(line, log_format=REVERSE_FORMAT)
    assert (row["dest_host"], row["dest_ip"], row["dest_port"], row["egress"]) == (
        "api.example.com",
        "10.0.0.1",
        8080,
        True,
    )
    assert row["pii"] == "email"


def test_plain_web_server_line_has_no_destination() -> None:
    row = _one('192.0.2.1 - - [10/Oct/2000:13:55:36 +0000] "GET /index.html HTTP/1.1" 200 10 "-" "-"')
    assert (row["dest_host"], row["dest_ip"], row["dest_port"], row["egress"]) == (None, None, None, False)
    assert row["source_ip"] == "192.0.2.1" and row["protocol"] == "http"


def test_upstream_dash_means_nothing_left() -> None:
    line = '10.0.0.5 - - [10/Oct/2000:13:55:36 +0000] "GET http://x.example/ HTTP/1.1" 403 0 "-" "-" x.example - 0.000'
    row = _one(line, log_format=REVERSE_FORMAT)
    assert (row["dest_host"], row["dest_ip"], row["egress"]) == ("x.example", None, False)


def test_named_and_nginx_conf_quoted_formats() -> None:
    combined = AccessLogCollector(log_format="combined").formats[0]
    quoted = AccessLogCollector(
        log_format="'$remote_addr - $remote_user [$time_local] \"$request\" ' \n"
        ' \'$status $body_bytes_sent "$http_referer" "$http_user_agent"\''
    ).formats[0]
    assert combined.regex == quoted.regex == NginxCollector().formats[0].regex


def test_nginx_collector_is_accesslog_with_combined() -> None:
    data = (GOLDEN / "combined.log").read_bytes()
    a = _parse(AccessLogCollector(log_format="combined"), data)
    b = _parse(NginxCollector(), data)
    assert rows(a.frame.drop(columns="collector")) == rows(b.frame.drop(columns="collector"))
    assert set(b.frame["collector"]) == {"nginx"}


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ('$remote_addr "$request" $status', "no time variable"),
        ('%h %l %u %t "%r" %>s %b', "no time variable"),
        ('$remote_addr [$time_local] "$request $status', "unbalanced quotes"),
        ("'$remote_addr [$time_local] $status", "unbalanced quotes"),
        ("'$remote_addr [$time_local]' $status", "text outside quotes"),
        ("", "no time variable"),
    ],
)
def test_unusable_log_format_is_a_usage_error(spec: str, words: str) -> None:
    with pytest.raises(UsageError, match=words) as info:
        AccessLogCollector(log_format=spec)
    assert "log_format" in str(info.value)


def test_format_without_client_or_captures_between_quotes() -> None:
    row = _one(
        '[10/Oct/2000:13:55:36 +0000] "GET http://a.example/ HTTP/1.1" 0.001 "ua" 200',
        log_format='[$time_local] "$request" $request_time "$http_user_agent" $status',
    )
    assert (row["source_ip"], row["dest_host"], row["status"]) == (None, "a.example", 200)


def test_uri_and_args_braced_variables_and_msec() -> None:
    row = _one(
        "1700000000.250 10.0.0.5 PUT /v1/u?mail=x%40y.example 10.9.0.1:80 api.example.com:8443",
        log_format="${msec} $remote_addr $request_method $uri?$args $upstream_addr $http_host",
    )
    assert row["ts"] == "2023-11-14T22:13:20.250000+00:00"
    assert (row["method"], row["dest_host"], row["dest_ip"], row["dest_port"]) == (
        "PUT",
        "api.example.com",
        "10.9.0.1",
        80,
    )
    assert row["pii"] == "email"


def test_main_is_combined_with_forwarded_for() -> None:
    line = '10.0.0.5 - - [10/Oct/2000:13:55:36 +0000] "GET / HTTP/1.1" 200 5 "-" "ua" "203.0.113.1"'
    assert _one(line, log_format="main")["source_ip"] == "10.0.0.5"


def test_log_format_must_be_a_string() -> None:
    with pytest.raises(UsageError, match="log_format"):
        AccessLogCollector(log_format=42)  # type: ignore[arg-type]


def test_unknown_variables_match_a_token_and_are_ignored() -> None:
    row = _one(
        '[10/Oct/2000:13:55:36 +0000] 10.0.0.5 TLSv1.3 "GET / HTTP/1.1" 200 x',
        log_format='[$time_local] $remote_addr $ssl_protocol "$request" $status $whatever',
    )
    assert (row["source_ip"], row["status"], row["method"]) == ("10.0.0.5", 200, "GET")


# --------------------------------------------------------------------------- real logs

ACCESSLOG_FILES = [
    "accesslog/elastic-beats-nginx/access.log",
    "accesslog/elastic-beats-nginx/test.log",
    "accesslog/lnav/logfile_access_log.0",
    "accesslog/lnav/logfile_shop_access_log.0",
    "accesslog/plaso/apache_access.log",
]
# Lines we quarantine on purpose, with the reason (the oracle's lenient regex takes them).
EXPECTED_QUARANTINE = {
    "accesslog/plaso/apache_access.log": {8: "field 'http_user_agent': unterminated quote"},
}


@pytest.mark.parametrize("rel", ACCESSLOG_FILES)
def test_real_logs_match_oracle(fixtures_real: Path, rel: str) -> None:
    facts = json.loads((fixtures_real / "oracle.json").read_text())["accesslog"][rel]
    parsed = _parse(AccessLogCollector(), (fixtures_real / rel).read_bytes())
    frame = parsed.frame
    assert parsed.lines_read == facts["lines"]
    assert parsed.lines_read == len(frame) + len(parsed.quarantined) + parsed.blank_lines
    assert {q.line: q.reason for q in parsed.quarantined} == EXPECTED_QUARANTINE.get(rel, {})
    # every line is a row or quarantined, and together their statuses are the oracle's
    statuses = Counter(str(s) for s in frame["status"])
    per_line = {p["line"]: p for p in facts.get("per_line", [])}
    for q in parsed.quarantined:
        statuses[str(per_line[q.line]["status"])] += 1
    assert dict(statuses) == facts["lenient_status_counts"]
    for p in per_line.values():
        if p["line"] in EXPECTED_QUARANTINE.get(rel, {}):
            continue
        row = frame[frame["line"] == p["line"]].iloc[0]
        assert row["status"] == p["status"]
        assert row["bytes_in"] == (p["bytes"] or 0)
        first = p["prefix"].split(" ")[-1] if "," not in p["prefix"] else p["prefix"].strip('"').split(",")[0]
        assert row["source_ip"] == first
        assert (None if row["source_user"] is pd.NA else row["source_user"]) == (
            None if p["user"] == "-" else p["user"]
        )
    # web-server logs: nothing in them names where data went
    assert not frame["egress"].any() and frame["dest_host"].isna().all()
    if not facts["unparsed_line_numbers"]:  # the oracle counts clients over the lines its strict regex took
        assert frame["source_ip"].nunique() == facts["unique_clients"]


def test_real_shop_log_times_are_utc(fixtures_real: Path) -> None:
    parsed = _parse(AccessLogCollector(), (fixtures_real / "accesslog/lnav/logfile_shop_access_log.0").read_bytes())
    first = parsed.frame["ts"].iloc[0]
    assert first.isoformat() == "2019-01-22T00:26:14+00:00"  # 03:56:14 +0330
    assert parsed.frame["ts"].is_monotonic_increasing


# --------------------------------------------------------------------------- never crashes

VALID = AccessLogCollector.sample.splitlines() + [
    b'10.0.0.1 - - [10/Oct/2000:13:55:36 -0700] "GET /a"b" HTTP/1.0" 404 5',
    b'"1.1.1.1, 2.2.2.2" 10.0.0.1 - - [10/Oct/2000:13:55:36 -0700] "" 400 0 "-" "-" "-"',
]
TOKENS = st.sampled_from(
    [
        "10.0.0.1", "-", "[10/Oct/2000:13:55:36", "-0700]", "[31/Feb/2000:00:00:00 +0000]", '"GET', "/", '"',
        'HTTP/1.1"', "200", "99999999999999999999", '"-"', '""', "CONNECT", "h:443", "http://[::1]:99999/",
        "a,", "b", "é", "\u00a0", "\x00", "\\", '\\"', "[", "]", "10.0.0.1:80,", ":", "unix:/s",
    ]
)  # fmt: skip


@st.composite
def access_like_line(draw: st.DrawFn) -> bytes:
    return " ".join(draw(st.lists(TOKENS, max_size=14))).encode("utf-8")


LINES = st.one_of(
    st.sampled_from(VALID),
    access_like_line(),
    st.binary(max_size=80).map(lambda b: b.replace(b"\n", b" ")),
)


def _check(parsed: Parsed, chunk: bytes) -> None:
    check_lines_accounted(parsed, chunk)
    lines = chunk.split(b"\n")
    for q in parsed.quarantined:
        assert q.line is not None and q.reason and q.raw == lines[q.line - 1]


@settings(max_examples=300, deadline=None)
@given(lines=st.lists(LINES, max_size=12), terminated=st.booleans(), custom=st.booleans())
def test_lines_never_crash(lines: list[bytes], terminated: bool, custom: bool) -> None:
    chunk = b"\n".join(lines) + (b"\n" if terminated and lines else b"")
    collector = AccessLogCollector(log_format=REVERSE_FORMAT) if custom else AccessLogCollector()
    _check(_parse(collector, chunk), chunk)


@settings(max_examples=200, deadline=None)
@given(chunk=st.binary(max_size=400))
def test_arbitrary_bytes_never_crash(chunk: bytes) -> None:
    _check(_parse(AccessLogCollector(), chunk), chunk)


def test_quote_storm_is_linear() -> None:
    """Explaining a rejected line must not backtrack: a long line of quotes is quick to quarantine."""
    line = b'1.1.1.1 - - [10/Oct/2000:13:55:36 -0700] "' + b'" "' * 20000 + b" 200"
    parsed = _parse(AccessLogCollector(), line)
    assert len(parsed.quarantined) == 1
