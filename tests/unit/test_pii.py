"""Personal data in URLs: the kinds are found (percent-encoded too), the values never kept."""

from __future__ import annotations

import pyarrow as pa
import pytest

from monitor.collect.pii import pii_kinds


@pytest.mark.parametrize(("url", "kinds"), [
    ("https://t.example/collect?email=jane.doe%40example.com&v=1", "email"),
    ("https://t.example/u/jane@example.org/profile", "email"),
    ("http://x.example/p?phone=%2B4915123456789", "phone"),
    ("http://x.example/p?tel=004915123456789&a=b", "phone"),
    ("/pay?iban=DE89370400440532013000", "iban"),
    ("/c?card=4111111111111111", "card"),
    ("/c?card=4111-1111-1111-1111&mail=a%40b.de", "email,card"),
    ("/c?order=1234567890123456", None),  # card-shaped but fails Luhn
    ("http://plain.example/index.html?page=2", None),
    ("https://cdn.example/assets/app.7f3a9c.js", None),
    ("", None),
])  # fmt: skip
def test_kinds(url: str, kinds: str | None) -> None:
    assert pii_kinds(pa.array([url])).to_pylist() == [kinds]


def test_nulls_and_length_are_kept() -> None:
    out = pii_kinds(pa.chunked_array([["a", None], ["/x?e=a%40b.com"]]))
    assert out.to_pylist() == [None, None, "email"]
