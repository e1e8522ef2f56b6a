"""Collect stage, Zeek: names one log gives for the conn rows of another (DNS answers by address, ssl/http by uid)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from typing import TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from monitor.collect.genericvalues import as_text, hostname, ip_ok

DEFAULT_TTL = 300.0  # seconds an answer is trusted when the log has no TTLs
_NULL = pa.scalar(None, pa.string())


K = TypeVar("K")
V = TypeVar("V")


def _remember(cache: OrderedDict[K, V], items: Iterable[tuple[K, V]], size: int) -> None:
    """Put each (key, value) as the most recent, then forget the oldest beyond `size`."""
    for k, v in items:
        cache[k] = v
        cache.move_to_end(k)
    while len(cache) > size:
        cache.popitem(last=False)


class DnsNames:
    """Address -> (name, expiry in epoch us) from DNS answers; bounded, the most recently answered kept."""

    def __init__(self, size: int, grace_s: float) -> None:
        self.size, self.grace_us = size, int(grace_s * 1e6)
        self._map: OrderedDict[str, tuple[str, int]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._map)

    def learn(self, ts: pa.Array, query: pa.Array, answers: pa.Array | None, ttls: pa.Array | None) -> None:
        if not self.size or answers is None or not pa.types.is_list(answers.type) or not len(answers):
            return
        ip = as_text(pc.list_flatten(answers))
        row = pc.list_parent_indices(answers)
        ttl = pa.repeat(pa.scalar(DEFAULT_TTL), len(ip))
        if ttls is not None and pa.types.is_list(ttls.type):
            same = pc.equal(pc.fill_null(pc.list_value_length(ttls), 0), pc.fill_null(pc.list_value_length(answers), 0))
            if pc.all(same).as_py():  # TTLs line up with answers one for one
                t = as_text(pc.list_flatten(ttls))
                num = pc.fill_null(pc.match_substring_regex(t, r"^\d{1,10}(?:\.\d*)?$"), False)
                ttl = pc.coalesce(pc.cast(pc.if_else(num, t, None), pa.float64()), DEFAULT_TTL)
        expiry = pc.add(pc.cast(pc.take(ts, row), pa.int64()), pc.cast(pc.multiply(ttl, 1e6), pa.int64()))
        name = pc.take(hostname(query), row)
        keep = pc.fill_null(pc.and_(ip_ok(ip), pc.is_valid(name)), False)
        t = pa.table({"ip": ip, "name": name, "exp": expiry, "pos": pa.array(np.arange(len(ip)))}).filter(keep)
        last = t.group_by("ip").aggregate([("pos", "max")])["pos_max"]  # the latest answer per address wins
        t = t.filter(pc.is_in(t["pos"], last)).sort_by("pos")
        ips, values = t["ip"].to_pylist(), zip(t["name"].to_pylist(), t["exp"].to_pylist(), strict=True)
        _remember(self._map, zip(ips, values, strict=True), self.size)

    def names(self, ips: pa.Array, ts: pa.Array) -> pa.Array:
        """Per row: the name last answered for its address, if that answer is still fresh at `ts`."""
        if not self._map or not len(ips):
            return pa.nulls(len(ips), pa.string())
        enc = pc.dictionary_encode(ips)
        hits = [self._map.get(v) if v is not None else None for v in enc.dictionary.to_pylist()]
        name = pc.take(pa.array([h[0] if h else None for h in hits], pa.string()), enc.indices)
        exp = pc.take(pa.array([h[1] + self.grace_us if h else None for h in hits], pa.int64()), enc.indices)
        fresh = pc.fill_null(pc.less_equal(pc.cast(ts, pa.int64()), exp), False)
        return pc.if_else(fresh, name, _NULL)


class UidNames:
    """Connection uid -> destination name, from ssl/http rows; bounded, the most recent kept.

    A connection Zeek logged in ssl.log or http.log is logged again in conn.log when it ends.
    Counted twice it would double the requests; so its conn row, found here by uid, takes the
    name the other log gave and adds only its bytes (weight 0): the request is the other row's.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._map: OrderedDict[str, str | None] = OrderedDict()

    def __len__(self) -> int:
        return len(self._map)

    def learn(self, uids: pa.Array | None, names: pa.Array) -> None:
        if not self.size or uids is None or not len(uids):
            return
        pairs = zip(uids.to_pylist(), names.to_pylist(), strict=True)
        _remember(self._map, ((u, n) for u, n in pairs if u), self.size)

    def lookup(self, uids: pa.Array | None) -> tuple[pa.Array, pa.Array]:
        """Per row: whether its uid was seen in ssl/http, and the name that row had (null: none)."""
        n = 0 if uids is None else len(uids)
        if uids is None or not self._map:
            return pa.repeat(pa.scalar(False), n), pa.nulls(n, pa.string())
        vals = uids.to_pylist()
        return (pa.array([u in self._map for u in vals], pa.bool_()),
                pa.array([self._map.get(u) if u else None for u in vals], pa.string()))  # fmt: skip
