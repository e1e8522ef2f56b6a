"""Golden files for the Squid parser: tests/golden/squid/NAME.log -> NAME.expected.json.

A sidecar NAME.logformat holds a squid.conf `logformat` definition (or built-in name): that log
is read with SquidCollector(logformat=...); without one, in the native format.
Regenerate with `XBORDER_REGEN_GOLDEN=1 pytest tests/unit/test_squid_golden.py`, then read
the diff line by line: a golden is only worth something if a person has checked it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.collect.follow import read_batches
from monitor.collect.squid import SquidCollector
from monitor.collect.squidformat import BUILTIN, compile_logformat
from monitor.errors import UsageError
from tests.support.goldens import check_golden, check_same_in_batches, golden_dir, render

GOLDEN = golden_dir("squid")
CASES = sorted(GOLDEN.glob("*.log"))


def _collector(log: Path) -> SquidCollector:
    sidecar = log.with_suffix(".logformat")
    return SquidCollector(logformat=sidecar.read_text().strip() if sidecar.exists() else None)


@pytest.mark.parametrize("log", CASES, ids=[p.stem for p in CASES])
def test_golden(log: Path) -> None:
    parsed = _collector(log).parse_chunk(log.read_bytes(), source=f"squid:{log.name}", first_line=1, base_offset=0)
    check_golden(render(parsed), log.with_suffix(".expected.json"))


@pytest.mark.parametrize("log", CASES, ids=[p.stem for p in CASES])
def test_golden_same_in_small_batches(log: Path) -> None:
    """Read through follow.py in tiny batches: same rows, same origins as one big chunk."""
    whole = render(_collector(log).parse_chunk(log.read_bytes(), source="x", first_line=1, base_offset=0))
    batches = list(read_batches(_collector(log), log, None, max_bytes=200, final=True))
    check_same_in_batches(batches, whole)


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
