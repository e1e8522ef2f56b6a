"""The parse's shortcuts give what the plain kernels give: digit checks, regex fast paths, per-distinct work."""

from __future__ import annotations

import gc
import re

import pyarrow as pa
import pyarrow.compute as pc
from hypothesis import given
from hypothesis import strategies as st

from monitor.collect.arrowtext import STR, decimal, matches, unique_rows
from monitor.collect.squidrows import Rows, _target, parse_target

# digits of other scripts, signs, dots, spaces, NUL: what a corrupt numeric field holds
NUMERIC_ISH = st.text(alphabet="0123456789-+. e\u0663\u00b2\x00x", max_size=22)


@given(st.lists(NUMERIC_ISH, max_size=30), st.integers(1, 20))
def test_decimal_is_the_digits_regex(values: list[str], n: int) -> None:
    got = decimal(pa.array(values, STR), n).to_pylist()
    assert got == [re.fullmatch(rf"[0-9]{{1,{n}}}", v) is not None for v in values]


@given(st.lists(st.one_of(st.none(), NUMERIC_ISH), max_size=30))
def test_matches_with_a_fast_path_is_the_regex(values: list[str | None]) -> None:
    arr = pa.array(values, STR)
    regex = r"^-?\d{1,15}$"
    plain = pc.fill_null(pc.match_substring_regex(arr, regex), False).to_pylist()
    assert pc.fill_null(matches(arr, regex, decimal(arr, 15)), False).to_pylist() == plain


VALUES = st.one_of(st.none(), st.sampled_from(["", "a", "b", "CONNECT", "é"]))


@given(st.lists(st.tuples(VALUES, VALUES, VALUES), max_size=40), st.integers(1, 3))
def test_unique_rows_groups_like_python(rows: list[tuple[str | None, ...]], width: int) -> None:
    cols = [pa.array([r[k] for r in rows], STR) for k in range(width)]
    inv, first = unique_rows(cols)
    seen: dict[tuple[str | None, ...], int] = {}
    want = [seen.setdefault(r[:width], len(seen)) for r in rows]
    assert inv.tolist() == want
    assert first.tolist() == [want.index(k) for k in range(len(seen))]


METHODS = st.sampled_from(["GET", "POST", "CONNECT", "-", "PUT"])
URLS = st.sampled_from(
    [
        "http://a.example/x?email=jane%40shop.example", "https://b.example:8443/", "a.example:443",
        "b.example:99999", "error:invalid-request", "-", "/relative", "http://u:p@c.example/",
        "https://[2001:db8::1]/", "ftp://d.example/f?card=4111111111111111", "cache_object://localhost/",
    ]
)  # fmt: skip


@given(st.lists(st.tuples(METHODS, URLS), min_size=1, max_size=20))
def test_parse_target_per_distinct_target_is_parse_target_per_row(base: list[tuple[str, str]]) -> None:
    rows = base * 3  # at most a third distinct: the per-distinct path is taken
    method = pa.array([r[0] for r in rows], STR)
    url = pa.array([r[1] for r in rows], STR)
    once, each = Rows(len(rows)), Rows(len(rows))
    parse_target(once, method, url)
    _target(each, method, url, None, None)
    assert once.ok.tolist() == each.ok.tolist()
    assert once.pop_rejects() == each.pop_rejects()  # the same rows, fields and reasons
    assert {k: v.to_pylist() for k, v in once.cols.items()} == {k: v.to_pylist() for k, v in each.cols.items()}


def test_a_parsed_chunk_leaves_no_reference_cycles_behind() -> None:
    """Its arrays are freed when the chunk is done, whatever the garbage collector's setting."""
    from monitor.collect.squid import SquidCollector

    chunk = SquidCollector.sample + b"not a squid line\n"  # a rejected row too: its reason is worded
    parser = SquidCollector()
    gc.collect()
    gc.disable()
    try:
        parsed = parser.parse_chunk(chunk, source="x", first_line=1, base_offset=0)
        assert len(parsed.quarantined) == 1
        del parsed
        assert gc.collect() == 0
    finally:
        gc.enable()
