"""The evidence row hash is byte for byte the canonical JSON every stored row was hashed with."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.store.chain import EVIDENCE_FIELDS, _canon, row_hash


def reference(values: dict[str, Any], fields: list[str]) -> str:
    """The definition (as first written, and as rows already in stores were hashed)."""
    doc = {f: _canon(v) for f in fields if (v := values.get(f)) is not None}
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


scalars = st.one_of(
    st.none(),
    st.text(),  # any code point, lone surrogates and control characters included
    st.integers(min_value=-(2**70), max_value=2**70),
    st.booleans(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.datetimes(timezones=st.one_of(st.none(), st.timezones())),
    st.binary(max_size=40),
    st.dates(),  # not a column type: falls back to default=str, like any other unusual value
)
values = st.one_of(scalars, st.lists(st.one_of(st.text(), st.integers()), max_size=4),
                   st.dictionaries(st.text(max_size=5), st.integers(), max_size=3))  # fmt: skip
FIELDS = ["b", "a", "ä", "zz", "A", "_x", "window_start", "sample_origins"]


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.sampled_from(FIELDS), values))
def test_row_hash_equals_the_reference(row: dict[str, Any]) -> None:
    assert row_hash(row, FIELDS) == reference(row, FIELDS)


def test_an_evidence_row_hashes_as_before() -> None:
    t = dt.datetime(2026, 11, 16, 9, 0, tzinfo=dt.UTC)
    row = {f: None for f in EVIDENCE_FIELDS} | {
        "window_start": t, "window_end": t.replace(tzinfo=None), "system": "checkout", "dest_host": "api.openai.com",
        "eea": False, "requests": 12, "bytes_out": None, "sample_origins": ["squid:/x:1", "squid:/x:9"],
        "basis": "GDPR Art. 46(2)(c) — SCC \"module 2\"", "batch_seq": 3,
    }  # fmt: skip
    assert row_hash(row, EVIDENCE_FIELDS) == reference(row, EVIDENCE_FIELDS)
    # a change of any one value changes the hash; NULL and absent are the same
    assert row_hash(row | {"requests": 13}, EVIDENCE_FIELDS) != row_hash(row, EVIDENCE_FIELDS)
    assert row_hash({k: v for k, v in row.items() if v is not None}, EVIDENCE_FIELDS) == row_hash(row, EVIDENCE_FIELDS)
