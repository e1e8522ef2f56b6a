"""Resolves unique (host, IP) destinations to Destination facts, once each, through a bounded cache."""

from __future__ import annotations

import ipaddress
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path

from monitor.records import Destination
from monitor.resolve import fallback
from monitor.resolve.geoip import GeoIP, is_ip

Key = tuple[str | None, str | None]  # (host, ip)
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _internal(ip: str, own: list[Network]) -> bool:
    addr = ipaddress.ip_address(ip)
    if addr.is_private or addr.is_loopback or addr.is_link_local or addr.is_unspecified:
        # documentation ranges (192.0.2.0/24, 2001:db8::/32) are "private" in ipaddress too
        return True
    return any(addr in n for n in own)


class Resolver:
    """GeoIP when databases are configured, else the RIR fallback; EEA membership from the rule pack."""

    def __init__(
        self,
        mmdb_paths: list[Path],
        in_eea: Callable[[str], bool | None],
        internal_networks: Iterable[str] = (),
        cache_size: int = 200_000,
    ) -> None:
        self.geoip = GeoIP(mmdb_paths) if mmdb_paths else None
        self.in_eea = in_eea
        self.own = [ipaddress.ip_network(n, strict=False) for n in internal_networks]
        self.cache_size = cache_size
        self._cache: OrderedDict[Key, Destination] = OrderedDict()
        self.fallback_version = None if self.geoip else fallback.data_version()

    @property
    def data_version(self) -> str:
        return (self.geoip.build if self.geoip else None) or self.fallback_version or "none"

    def close(self) -> None:
        if self.geoip:
            self.geoip.close()

    def resolve_many(self, keys: list[Key]) -> list[Destination]:
        """One Destination per key, in order; each key is looked up at most once while cached."""
        out: list[Destination | None] = [self._cache.get(k) for k in keys]
        todo = [i for i, d in enumerate(out) if d is None]
        if todo:
            fresh = self._resolve([keys[i] for i in todo])
            for i, d in zip(todo, fresh, strict=True):
                out[i] = d
                self._remember(keys[i], d)
        for k in keys:
            if k in self._cache:
                self._cache.move_to_end(k)
        return [d for d in out if d is not None]

    def _remember(self, key: Key, dest: Destination) -> None:
        self._cache[key] = dest
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)

    def _resolve(self, keys: list[Key]) -> list[Destination]:
        ips: list[str | None] = []
        for host, ip in keys:
            # a host that is itself an address literal is the address
            ips.append(ip if ip and is_ip(ip) else (host if host and is_ip(host) else None))
        rir: list[str | None] = []
        if self.geoip is None:
            rir = fallback.registered_countries([ip or "" for ip in ips])
        out = []
        for n, ((host, _), ip) in enumerate(zip(keys, ips, strict=True)):
            out.append(self._one(host, ip, rir[n] if rir else None))
        return out

    def _one(self, host: str | None, ip: str | None, rir_country: str | None) -> Destination:
        base = Destination(host=host, ip=ip, mmdb_build=self.data_version)
        if ip is None:
            return replace(base, sources=(("country", "unknown: no address"),))
        if _internal(ip, self.own):
            return replace(base, internal=True, confidence="high", sources=(("internal", "private/own network"),))
        if self.geoip is not None:
            facts, sources = self.geoip.lookup(ip)
            country = facts.located_country or facts.registered_country
            return replace(
                base,
                located_country=facts.located_country,
                registered_country=facts.registered_country,
                asn=facts.asn,
                as_org=facts.as_org,
                eea=self.in_eea(country) if country else None,
                confidence="medium" if facts.located_country else ("low" if country else "none"),
                sources=tuple(sources),
            )
        return replace(
            base,
            registered_country=rir_country,
            eea=self.in_eea(rir_country) if rir_country else None,
            # RIR registration says where the block's holder registered, not where the server is
            confidence="low" if rir_country else "none",
            sources=(("registered_country", f"fallback:{self.fallback_version}"),) if rir_country else (),
        )
