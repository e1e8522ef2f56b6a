"""Collect stage, Squid: row checks and destination kernels (request target, hierarchy/peer) both parsers share."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from monitor.collect.arrowtext import NULL_STR, STR, authority, default_port, per_unique, scheme, split, unique_rows
from monitor.collect.pii import pii_kinds
from monitor.records import is_ip

# The peer of these hierarchy codes is a cache peer (parent/sibling proxy), not the origin:
# its address says nothing about where the data went, so it must not become dest_ip.
RE_CACHE_PEER = r"PARENT|SIBLING|CARP|CACHE_DIGEST|STANDBY_POOL"
_NO_EGRESS = ("NONE", "HIER_NONE")  # hit, denied or proxy error: nothing left the proxy


class Rows:
    """Per-field arrays for candidate lines, validity masks in field order, and final columns."""

    def __init__(self, n: int, f: list[pa.Array] | None = None) -> None:
        self.f = f or []
        self.ok = np.ones(n, dtype=bool)
        self._checks: list[tuple[str, np.ndarray[Any, Any], Callable[[int], str]]] = []
        self.cols: dict[str, pa.Array] = {}

    def check(self, field: str, ok: pa.Array, why: Callable[[int], str]) -> None:
        """Record one validity test; `why(j)` words the reason for a row that fails it."""
        mask = pc.fill_null(ok, False).to_numpy(zero_copy_only=False)
        self._checks.append((field, mask, why))
        self.ok &= mask

    def value(self, k: int, j: int) -> str:
        return str(self.f[k][j].as_py())

    def pop_rejects(self) -> list[tuple[int, str, str]]:
        """(candidate index, field, reason) of each rejected row, naming its first bad field; the checks are let go."""
        out = []
        for j in np.flatnonzero(~self.ok):
            for field, mask, why in self._checks:
                if not mask[j]:
                    out.append((int(j), field, why(int(j))))
                    break
        # the reasons' closures refer back to these Rows: dropping them breaks that cycle, so a
        # chunk's arrays are freed when it is done, not at the garbage collector's next pass
        self._checks = []
        return out

    def spread(self, u: Rows, inv: np.ndarray[Any, Any]) -> None:
        """Take on the checks and columns of `u`, made for distinct rows: row j of mine is row inv[j] of u."""
        def at(why: Callable[[int], str]) -> Callable[[int], str]:
            return lambda j: why(int(inv[j]))

        for field, mask, why in u._checks:
            m = mask[inv]
            self._checks.append((field, m, at(why)))
            self.ok &= m
        idx = pa.array(inv)
        for k, v in u.cols.items():
            self.cols[k] = v.take(idx)

    def columns(self) -> dict[str, pa.Array]:
        keep = pa.array(self.ok)
        return {k: v.filter(keep) for k, v in self.cols.items()}


def parse_target(
    r: Rows,
    method: pa.Array,
    url: pa.Array,
    *,
    pii_url: pa.Array | None = None,
    fallback: tuple[pa.Array, pa.Array] | None = None,
) -> None:
    """dest_host, dest_port and protocol from the request target (CONNECT or absolute URI).

    `fallback` (authority, scheme) stands in for a target that is neither, e.g. an origin-form
    "/path" beside a logged Host header; `pii_url` is the URL searched for personal data.

    A proxy log repeats the same few targets (a CONNECT host:443 above all) on most of its lines,
    so the work runs once per distinct (CONNECT or not, URL, ...) and is spread back over the rows
    (1M-line bench: ~35 distinct per 69k lines; a quarter of the parse before).
    """
    # the method is part of the key (not just "CONNECT or not"): a quarantine reason names it
    keys = [method, url, *(() if pii_url is None else (pii_url,)), *(fallback or ())]
    inv, first = unique_rows(keys)
    if len(first) > len(inv) // 2:  # mostly distinct: spreading back would only cost
        _target(r, method, url, pii_url, fallback)
        return
    u, pick = Rows(len(first)), pa.array(first)
    _target(
        u,
        method.take(pick),
        url.take(pick),
        None if pii_url is None else pii_url.take(pick),
        None if fallback is None else (fallback[0].take(pick), fallback[1].take(pick)),
    )
    r.spread(u, inv)


def _target(
    r: Rows, method: pa.Array, url: pa.Array, pii_url: pa.Array | None, fallback: tuple[pa.Array, pa.Array] | None
) -> None:
    connect = pc.fill_null(pc.equal(method, "CONNECT"), False)
    # Squid logs requests that never became a transaction (client closed early, garbage on
    # the wire) with a pseudo-URL "error:..." and no method; they are rows without a host.
    error_line = pc.or_kleene(pc.starts_with(url, "error:"), pc.equal(url, "-"))
    # Splitting at the first three "/" is several times faster than one capturing regex over
    # whole URLs, and leaves the short scheme and authority parts to parse per distinct value.
    head, slash, uri_authority, _ = split(url, "/", 3)
    sch = per_unique(head, scheme)
    is_uri = pc.fill_null(pc.and_kleene(sch["ok"], pc.equal(slash, "")), False)
    # CONNECT carries host:port (the whole target); every other method must carry scheme://host.
    other = NULL_STR if fallback is None else fallback[0]
    host_port = pc.if_else(is_uri, uri_authority, pc.if_else(connect, url, other))
    auth = per_unique(host_port, authority)
    usable = pc.fill_null(auth["ok"], False)
    r.check(
        "URL",
        pc.or_kleene(usable, error_line),
        lambda j: f"field 'URL': no destination host in {url[j].as_py()!r} (method {method[j].as_py()!r})",
    )
    r.check(
        "URL",
        pc.invert(pc.and_kleene(usable, pc.invert(auth["port_ok"]))),
        lambda j: f"field 'URL': port out of range in {url[j].as_py()!r}",
    )

    port_of_scheme = pc.if_else(is_uri, sch["default_port"], pa.scalar(None, pa.int32()))
    protocol = sch["scheme"]
    if fallback is not None:
        use = pc.invert(pc.or_kleene(is_uri, connect))
        protocol = pc.if_else(use, fallback[1], protocol)
        port_of_scheme = pc.if_else(use, default_port(protocol), port_of_scheme)
    port = pc.coalesce(auth["port"], port_of_scheme)
    r.cols["dest_host"] = pc.if_else(usable, auth["host"], NULL_STR)
    r.cols["dest_port"] = pc.if_else(usable, port, pa.scalar(None, pa.int32()))
    r.cols["protocol"] = pc.if_else(usable, pc.if_else(connect, "tunnel", protocol), NULL_STR)
    # a CONNECT target is host:port only; paths and query strings are where personal data leaks
    r.cols["pii"] = pii_kinds(pc.if_else(connect, "", url if pii_url is None else pii_url))


def hierarchy(values: pa.Array) -> dict[str, pa.Array]:
    """egress from the hierarchy code; dest_ip from the peer when it is the origin's address."""
    hier, peer = split(values, "/", 1)
    peer = pc.utf8_trim(peer, "[]")
    ips = pa.array([p for p in peer.to_pylist() if p is not None and is_ip(p)], STR)
    origin = pc.invert(pc.match_substring_regex(hier, RE_CACHE_PEER))
    return {
        "egress": pc.invert(pc.is_in(hier, pa.array(_NO_EGRESS, STR))),
        "dest_ip": pc.if_else(pc.and_(pc.is_in(peer, ips), origin), peer, NULL_STR),
    }


def dash_null(arr: pa.Array) -> pa.Array:
    return pc.if_else(pc.equal(arr, "-"), NULL_STR, arr)
