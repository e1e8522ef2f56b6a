"""The HAProxy collector: golden files from the HAProxy manual's own examples, options, never crashing.

Goldens: tests/golden/haproxy/NAME.log -> NAME.expected.json (NAME.options.json: collector
options); sources in tests/golden/haproxy/SOURCES.md. Regenerate with
`XBORDER_REGEN_GOLDEN=1 pytest tests/unit/test_haproxy.py` and read the diff line by line.
A real HAProxy writes the log in tests/integration/test_haproxy_real.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.collect.follow import read_batches
from monitor.collect.haproxy import HaproxyCollector
from monitor.errors import UsageError
from tests.support.goldens import (
    check_accounting,
    check_golden,
    check_same_in_batches,
    golden_dir,
    load_options,
    render,
    rows,
)

GOLDEN = golden_dir("haproxy")
CASES = sorted(GOLDEN.glob("*.log"))


def collector_for(log: Path) -> HaproxyCollector:
    return HaproxyCollector(**load_options(log))


@pytest.mark.parametrize("log", CASES, ids=[p.stem for p in CASES])
def test_golden(log: Path) -> None:
    got = render(collector_for(log).parse_chunk(log.read_bytes(), source=f"haproxy:{log.name}", first_line=1,
                                                base_offset=0))  # fmt: skip
    check_golden(got, log.with_suffix(".expected.json"))


@pytest.mark.parametrize("log", CASES, ids=[p.stem for p in CASES])
def test_golden_same_in_small_batches(log: Path) -> None:
    collector = collector_for(log)
    whole = render(collector.parse_chunk(log.read_bytes(), source="x", first_line=1, base_offset=0))
    batches = list(read_batches(collector, log, None, max_bytes=250, final=True))
    check_same_in_batches(batches, whole, lines_read=False)


def test_manual_examples_facts() -> None:
    """What the HAProxy manual says about its own examples (8.2.2, 8.2.3, 8.9), checked on our rows."""
    frame = HaproxyCollector().parse_chunk((GOLDEN / "manual.log").read_bytes(), source="m", first_line=1,
                                           base_offset=0).frame  # fmt: skip
    by_line = {r["line"]: r for r in rows(frame)}
    assert len(by_line) == 13
    tcp = by_line[1]  # 8.2.2: "Tw/Tc/Tt 0/0/5007", 212 bytes, no status in TCP logs
    assert (tcp["protocol"], tcp["method"], tcp["status"], tcp["bytes_in"]) == ("tcp", None, 0, 212)
    assert tcp["ts"] == "2009-02-06T12:12:51.443000+00:00" and tcp["source_ip"] == "10.0.1.2"
    http = by_line[2]  # 8.2.3
    assert (http["method"], http["status"], http["bytes_in"], http["egress"]) == ("GET", 200, 2750, True)
    # "the client never completed its request ... Nothing was sent to any server" (<NOSRV>)
    assert not by_line[10]["egress"] and not by_line[11]["egress"]
    assert (by_line[10]["status"], by_line[11]["status"]) == (0, 408)
    # "the connection to the server failed ('SC--')": Tc = -1, nothing left
    assert not by_line[13]["egress"] and by_line[13]["status"] == 503
    # 8.8: outgoing proxy, absolute URIs: the URL's host is the destination
    assert [by_line[i]["dest_host"] for i in (3, 4, 5)] == [
        "fr.adserver.yahoo.com", "trafic.1wt.eu", "www.sytadin.equipement.gouv.fr",
    ]  # fmt: skip
    assert by_line[8]["bytes_in"] == 243  # "+243" under option logasap


def test_host_capture_gives_origin_form_requests_a_host() -> None:
    line = (b'10.0.1.2:33317 [06/Feb/2009:12:14:14.655] http-in static/srv1 10/0/30/69/109 200 2750 - - ---- '
            b'1/1/1/1/0 0/0 {Mozilla/5.0 (X11)|Shop.Example.com:8443} "GET /index.html HTTP/1.1"\n')  # fmt: skip
    assert HaproxyCollector().parse_chunk(line, source="x", first_line=1, base_offset=0).frame["dest_host"].isna().all()
    frame = HaproxyCollector(host_capture_index="1").parse_chunk(line, source="x", first_line=1, base_offset=0).frame
    assert (frame["dest_host"].iloc[0], frame["dest_port"].iloc[0]) == ("shop.example.com", 8443)
    frame = HaproxyCollector(host_capture_index=5).parse_chunk(line, source="x", first_line=1, base_offset=0).frame
    assert frame["dest_host"].isna().all()  # fewer captures than that: no host, not an error


@pytest.mark.parametrize(
    ("date", "zone", "utc"),
    [
        ("15/Jan/2024:12:00:00.250", "Europe/Berlin", "2024-01-15T11:00:00.250000+00:00"),
        ("15/Jul/2024:12:00:00.250", "Europe/Berlin", "2024-07-15T10:00:00.250000+00:00"),
        ("31/Mar/2024:02:30:00", "Europe/Berlin", "2024-03-31T01:00:00+00:00"),  # no 02:30 then: the gap's end
        ("27/Oct/2024:02:30:00", "Europe/Berlin", "2024-10-27T00:30:00+00:00"),  # ambiguous: the first
        ("15/Jan/2024:12:00:00", "America/New_York", "2024-01-15T17:00:00+00:00"),
        ("15/Jan/2024:12:00:00", "UTC", "2024-01-15T12:00:00+00:00"),
    ],
)
def test_local_dates_in_the_configured_zone(date: str, zone: str, utc: str) -> None:
    line = f"10.0.0.1:1 [{date}] fe be/s 0/0/5 10 -- 0/0/0/0/0 0/0\n".encode()
    got = HaproxyCollector(timezone=zone).parse_chunk(line, source="x", first_line=1, base_offset=0).frame["ts"]
    assert got.iloc[0].isoformat() == utc


@pytest.mark.parametrize(("kwargs", "option"), [
    ({"timezone": "Mars/Olympus"}, "timezone"), ({"timezone": "../etc"}, "timezone"),
    ({"host_capture_index": "first"}, "host_capture_index"), ({"host_capture_index": -1}, "host_capture_index"),
])  # fmt: skip
def test_bad_options_are_usage_errors(kwargs: dict[str, Any], option: str) -> None:
    with pytest.raises(UsageError, match=option):
        HaproxyCollector(**kwargs)


# --------------------------------------------------------------------------- never crash

VALID = HaproxyCollector.sample.splitlines()
TOKENS = st.sampled_from(
    [
        "Feb", " 6", "12:14:14", "localhost", "haproxy[1]:", "10.0.1.2:33317", "::1:80", "unix:1", "1.2.3.4",
        "[06/Feb/2009:12:14:14.655]", "[31/Feb/2009:12:14:14]", "[x]", "fe", "be/srv1", "be/<NOSRV>", "be/1.2.3.4:80",
        "10/0/30/69/109", "0/-1/5", "-1/-1/-1/-1/+8", "200", "-1", "+2750", "-", "----", "cD", "1/1/1/1/+0", "0/0",
        "{1wt.eu}", "{}", "{a|b c}", '"GET /index.html HTTP/1.1"', '"CONNECT h:443 HTTP/1.1"', '""', '"<BADREQ>"',
        '"GET http://[::1]:99999/ HTTP/1.1"', '\\"', '"', "{", "}", "é", "\u00a0", "\x00",
    ]
)  # fmt: skip


@st.composite
def haproxy_like_line(draw: st.DrawFn) -> bytes:
    tokens = draw(st.lists(TOKENS, min_size=0, max_size=18))
    return draw(st.sampled_from([" ", "  ", "\t"])).join(tokens).encode("utf-8")


LINES = st.one_of(
    st.sampled_from(VALID),
    haproxy_like_line(),
    st.binary(max_size=80).map(lambda b: b.replace(b"\n", b" ")),
    st.text(max_size=60).map(lambda t: t.replace("\n", " ").encode("utf-8", "surrogatepass")),
)


@settings(max_examples=300, deadline=None)
@given(lines=st.lists(LINES, max_size=12), terminated=st.booleans(), first_line=st.integers(1, 10**6),
       zone=st.sampled_from(["UTC", "Europe/Berlin"]), capture=st.sampled_from([None, 0, 3]))  # fmt: skip
def test_lines_never_crash(
    lines: list[bytes], terminated: bool, first_line: int, zone: str, capture: int | None
) -> None:
    chunk = b"\n".join(lines) + (b"\n" if terminated and lines else b"")
    parsed = HaproxyCollector(timezone=zone, host_capture_index=capture).parse_chunk(
        chunk, source="h", first_line=first_line, base_offset=5
    )
    check_accounting(parsed, chunk, first_line, 5)


@settings(max_examples=150, deadline=None)
@given(chunk=st.binary(max_size=400))
def test_arbitrary_bytes_never_crash(chunk: bytes) -> None:
    check_accounting(HaproxyCollector().parse_chunk(chunk, source="h", first_line=1, base_offset=0), chunk, 1, 0)


@settings(max_examples=100, deadline=None)
@given(picked=st.lists(st.sampled_from(VALID), min_size=1, max_size=8))
def test_valid_lines_are_all_rows(picked: list[bytes]) -> None:
    parsed = HaproxyCollector().parse_chunk(b"\n".join(picked) + b"\n", source="h", first_line=1, base_offset=0)
    assert parsed.quarantined == []
    assert len(parsed.frame) == len(picked)
