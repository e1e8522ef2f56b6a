"""The demo generator: deterministic, exact sizes, the story it tells, and a config that loads."""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
from pathlib import Path

import iptocc
import pytest

from monitor import demo
from monitor.settings import load_config

# Squid's native `squid` logformat: %ts.%03tu %6tr %>a %Ss/%03>Hs %<st %rm %ru %[un %Sh/%<a %mt
LINE = re.compile(
    rb"^(?P<ts>\d{10}\.\d{3}) +(?P<elapsed>\d+) (?P<client>[\d.]+)"
    rb" (?P<code>[A-Z_]+)/(?P<status>\d{3}) (?P<size>\d+) (?P<method>\S+) (?P<url>\S+)"
    rb" (?P<user>\S+) (?P<hier>[A-Z_]+)/(?P<peer>\S+)"
    rb" (?P<mime>\S+)$"
)
CET = dt.timezone(dt.timedelta(hours=1))


@pytest.fixture(scope="module")
def default_demo(tmp_path_factory: pytest.TempPathFactory) -> demo.DemoInputs:
    return demo.write_demo_inputs(tmp_path_factory.mktemp("demo"))


def _lines(inputs: demo.DemoInputs) -> list[bytes]:
    return inputs.log_path.read_bytes().split(b"\n")[:-1]


def test_two_runs_are_byte_identical(tmp_path: Path, default_demo: demo.DemoInputs) -> None:
    again = demo.write_demo_inputs(tmp_path / "again")
    assert again.log_path.read_bytes() == default_demo.log_path.read_bytes()
    assert again.config_path.read_bytes() == default_demo.config_path.read_bytes()
    other_seed = demo.write_demo_inputs(tmp_path / "seed", seed=7)
    assert other_seed.log_path.read_bytes() != default_demo.log_path.read_bytes()


def test_default_is_a_week_of_demo_size(default_demo: demo.DemoInputs) -> None:
    assert default_demo.week == "2026-W47"
    assert default_demo.start == dt.date(2026, 11, 16)
    assert default_demo.end == dt.date(2026, 11, 22)
    assert default_demo.start.isoweekday() == 1 and default_demo.end.isoweekday() == 7
    assert 60_000 <= default_demo.lines_written <= 120_000
    assert len(_lines(default_demo)) == default_demo.lines_written
    assert default_demo.log_path.read_bytes().endswith(b"\n")


@pytest.mark.parametrize("n", [0, 1, 99, 100, 101, 12_345, (1 << 18) + 17])
def test_exact_line_count(tmp_path: Path, n: int) -> None:
    inputs = demo.write_demo_inputs(tmp_path, lines=n)
    assert inputs.lines_written == n
    assert inputs.log_path.read_bytes().count(b"\n") == n
    assert len(inputs.garbage_at) == inputs.garbage_lines
    assert all(1 <= at <= n for at in inputs.garbage_at)


def test_negative_line_count_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        demo.write_demo_inputs(tmp_path, lines=-1)


@pytest.mark.parametrize("key", sorted(demo.DESTS))
def test_destination_address_is_registered_in_the_intended_country(key: str) -> None:
    d = demo.DESTS[key]
    assert ipaddress.ip_address(d.ip).is_global
    assert iptocc.country_code(d.ip) == d.country, f"{d.host} {d.ip}: iptocc data changed?"


def test_config_validates_and_tells_the_story(default_demo: demo.DemoInputs) -> None:
    config = load_config(str(default_demo.config_path))
    s = config.settings
    assert s.organisation.name == "Beispiel Shop GmbH" and s.organisation.country == "DE"
    assert s.geoip.databases == []
    assert config.store_url == "sqlite:///" + str(
        default_demo.config_path.parent.resolve() / "xborder.db"
    )
    assert {x.name for x in s.systems} == {
        "checkout",
        "support-chat",
        "recommendations",
        "pricing",
        "hr-portal",
        "build-farm",
    }
    vendors = {v.name: v for v in s.vendors}
    assert vendors["Stripe"].mechanisms[0].type == "dpf"
    assert vendors["OpenAI"].mechanisms[0].type == "scc"
    on_file = {d for v in s.vendors for d in v.domains}
    for unknown in ("anthropic", "deepseek", "fraud"):
        host = demo.DESTS[unknown].host
        assert not any(host == d or host.endswith("." + d) for d in on_file)


def test_garbage_is_where_declared(default_demo: demo.DemoInputs) -> None:
    lines = _lines(default_demo)
    assert default_demo.garbage_lines == len(demo.GARBAGE) == 7
    bad = [i for i, line in enumerate(lines, 1) if not LINE.match(line)]
    assert tuple(bad) == default_demo.garbage_at
    for at in default_demo.garbage_at:
        assert lines[at - 1].strip(), "garbage must not be blank"
        fields = lines[at - 1].split()
        assert len(fields) < 10 or not re.fullmatch(rb"\d+\.\d+", fields[0]) or b"2O0" in fields[3]


def test_good_lines_are_squid_lines_inside_the_week(default_demo: demo.DemoInputs) -> None:
    start = dt.datetime.combine(default_demo.start, dt.time(), dt.UTC).timestamp()
    end = start + 7 * 86400
    garbage = set(default_demo.garbage_at)
    prev = start
    config = load_config(str(default_demo.config_path))
    nets = [ipaddress.ip_network(n) for x in config.settings.systems for n in x.sources]
    for i, line in enumerate(_lines(default_demo), 1):
        if i in garbage:
            continue
        assert len(line.split()) >= 10
        m = LINE.match(line)
        assert m, line
        ts = float(m["ts"])
        assert start <= ts < end and ts >= prev, line
        prev = ts
        client = ipaddress.ip_address(m["client"].decode())
        assert any(client in n for n in nets) or str(client) == "10.99.0.7"
        if m["hier"] == b"HIER_DIRECT":
            assert m["peer"].decode() in {d.ip for d in demo.DESTS.values()}
        else:
            assert m["peer"] == b"-"


def test_story_timeline(default_demo: demo.DemoInputs) -> None:
    seen: dict[str, list[dt.datetime]] = {}
    hosts = {d.host.encode(): k for k, d in demo.DESTS.items()}
    codes: set[bytes] = set()
    for line in _lines(default_demo):
        m = LINE.match(line)
        if not m:
            continue
        codes.add(m["code"] + b"/" + m["status"])
        url = m["url"]
        if m["method"] == b"-":  # proxy error line: no destination
            continue
        host = url.split(b":")[0] if m["method"] == b"CONNECT" else url.split(b"/")[2]
        key = hosts.get(host)
        when = dt.datetime.fromtimestamp(float(m["ts"]), CET)
        if m["client"] == b"10.99.0.7":
            key = "unattributed"
        if key:
            seen.setdefault(key, []).append(when)
    thursday_plugin = dt.datetime(2026, 11, 19, 10, 42, tzinfo=CET)
    cutover = dt.datetime(2026, 11, 18, 12, 0, tzinfo=CET)
    assert min(seen["fraud"]) >= thursday_plugin
    assert max(seen["anthropic"]) < cutover <= min(seen["mistral"])
    assert len(seen["deepseek"]) > 100 and len(seen["openai"]) > 1000
    assert 5 <= len(seen["unattributed"]) <= 100
    assert {"adyen", "klarna", "stripe", "hrsaas", "payroll", "elearning", "pypi", "github"} <= set(
        seen
    )
    assert {b"TCP_TUNNEL/200", b"TCP_MISS/200", b"TCP_DENIED/403", b"TCP_MEM_HIT/200"} <= codes
    assert b"NONE_NONE/000" in codes
    # business hours are busier than the night, weekdays busier than the weekend
    stripe = seen["stripe"]
    assert sum(10 <= t.hour < 12 for t in stripe) > 3 * sum(3 <= t.hour < 5 for t in stripe)
    assert sum(t.weekday() == 1 for t in stripe) > sum(t.weekday() == 6 for t in stripe)
