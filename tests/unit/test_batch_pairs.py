"""batch._pairs: each row's distinct (a, b) pair, "" folded into null, in order of first appearance."""

from __future__ import annotations

import pyarrow as pa
from hypothesis import given
from hypothesis import strategies as st

from monitor.batch import _pairs

VALUES = st.one_of(st.none(), st.sampled_from(["", "a", "b", "a\x00b", "é"]))


def test_pairs_fold_empty_into_null_and_keep_first_appearance() -> None:
    a = pa.chunked_array([["x", None, "", "x", "y", None]])
    b = pa.chunked_array([["1", None, None, "1", "", ""]])
    idx, keys = _pairs(a, b)
    assert keys == [("x", "1"), (None, None), ("y", None)]
    assert idx.tolist() == [0, 1, 1, 0, 2, 1]


@given(st.lists(st.tuples(VALUES, VALUES), min_size=1, max_size=40))
def test_pairs_match_a_plain_python_grouping(rows: list[tuple[str | None, str | None]]) -> None:
    idx, keys = _pairs(pa.chunked_array([[r[0] for r in rows]]), pa.chunked_array([[r[1] for r in rows]]))
    expected: dict[tuple[str | None, str | None], int] = {}
    want = [expected.setdefault((x or None, y or None), len(expected)) for x, y in rows]
    assert keys == list(expected)
    assert idx.tolist() == want
