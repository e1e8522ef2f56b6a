"""Collect stage helper: which kinds of personal data a request URL carries (never the values themselves)."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

# Kinds and how they look in a URL path or query string (percent-encoded forms included). The
# patterns look for shapes, so they err on the side of flagging; card numbers are Luhn-checked
# to keep order ids and timestamps out.
PATTERNS: dict[str, str] = {
    "email": r"[A-Za-z0-9._%+-]+(?:@|%40|%2540)[A-Za-z0-9.-]+\.[A-Za-z]{2,}",
    "phone": r"(?:^|[=/&?:,;]|%3[aA]|%2[bB])(?:\+|%2[bB]|00)[1-9]\d{6,14}(?:$|[&/#;,])",
    "iban": r"(?:^|[=/&?:])[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]){11,30}(?:$|[&/#;])",
    "card": r"(?:^|[=/&?:])(?:\d[ -]?|\d(?:%20|%2[dD])?){12,18}\d(?:$|[&/#;])",
}
KINDS = tuple(PATTERNS)


def _luhn(digits: str) -> bool:
    total, alt = 0, False
    for ch in reversed(digits):
        d = ord(ch) - 48
        if alt:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
        alt = not alt
    return total % 10 == 0


def _cards(urls: pa.Array, candidates: pa.Array) -> pa.Array:
    """Luhn-check the few card-shaped candidates in Python; everything else stays columnar."""
    out = candidates.to_pylist()
    idx = [i for i, hit in enumerate(out) if hit]
    if not idx:
        return candidates
    import re

    rx = re.compile(PATTERNS["card"])
    values = urls.take(pa.array(idx)).to_pylist()
    for i, url in zip(idx, values, strict=True):
        ok = False
        for m in rx.finditer(url or ""):
            digits = "".join(ch for ch in m.group(0) if ch.isdigit())
            if 13 <= len(digits) <= 19 and _luhn(digits):
                ok = True
                break
        out[i] = ok
    return pa.array(out, pa.bool_())


# every pattern needs one of these; most URLs (no query, no @, no long digit run) skip the rest
_MAYBE = r"[?@=&;]|%40|\d{7}"


def pii_kinds(urls: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Per URL: the comma-separated kinds of personal data it carries, or null when none."""
    if isinstance(urls, pa.ChunkedArray):
        urls = urls.combine_chunks()
    urls = pc.fill_null(urls.cast(pa.string()), "")
    maybe = pc.match_substring_regex(urls, _MAYBE)
    if not pc.any(maybe).as_py():
        return pa.nulls(len(urls), pa.string())
    kinds = _kinds(urls.filter(maybe))
    return pc.replace_with_mask(pa.nulls(len(urls), pa.string()), maybe, kinds)


def _kinds(urls: pa.Array) -> pa.Array:
    parts: list[pa.Array] = []
    for kind, pattern in PATTERNS.items():
        hit = pc.match_substring_regex(urls, pattern)
        if kind == "card":
            hit = _cards(urls, hit)
        parts.append(pc.if_else(hit, kind, None))
    # null_handling="skip" drops rows that are null in every part (pyarrow 26), so join with
    # empty strings and tidy the separators instead
    joined = pc.binary_join_element_wise(*parts, ",", null_handling="replace", null_replacement="")
    joined = pc.utf8_trim(pc.replace_substring_regex(joined, ",,+", ","), ",")
    return pc.if_else(pc.equal(joined, ""), pa.scalar(None, pa.string()), joined)
