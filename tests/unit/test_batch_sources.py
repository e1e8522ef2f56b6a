"""batch._Sources: the sources of a (system, destination) group are those a scan of every row finds."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from monitor.batch import SAMPLE_SOURCES, _Sources

KEYS = [(f"10.0.0.{i}", None if i % 3 else f"user{i}") for i in range(12)] + [(None, "svc"), (None, None)]


@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 6), st.integers(0, len(KEYS) - 1)), max_size=80))
def test_sources_of_each_group_match_a_scan(rows: list[tuple[int, int, int]]) -> None:
    sys_, dest, src = (np.array([r[k] for r in rows], np.int64) for k in range(3))
    found = _Sources(sys_, dest, src, KEYS)
    for s in range(4):
        for d in range(7):
            pairs = [KEYS[c] for c in np.unique(src[(sys_ == s) & (dest == d)])]
            want = (
                sorted({ip for ip, _ in pairs if ip})[:SAMPLE_SOURCES],
                sorted({u for _, u in pairs if u})[:SAMPLE_SOURCES],
                len(pairs),
            )
            assert found.of(s, d) == want
