"""Resolves unique (host, IP) destinations to Destination facts, once each, through a bounded cache.

Order of evidence for the country a transfer is judged against: operator override → provider
catalog by hostname (documented processing region) → published cloud IP ranges (region) →
GeoIP located country (unless the address is a CDN edge) → registered country (GeoIP, or the
offline RIR fallback). Every fact keeps its own source.
"""

from __future__ import annotations

import ipaddress
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from monitor.records import Destination, is_ip
from monitor.resolve import fallback
from monitor.resolve.geoip import GeoIP
from monitor.resolve.overrides import Overrides

if TYPE_CHECKING:
    from monitor.resolve.catalog import Catalog
    from monitor.resolve.cloudranges import CloudRanges

Key = tuple[str | None, str | None]  # (host, ip)
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


# Special-purpose blocks that never leave the organisation or the internet's edge (IANA registries:
# private, loopback, link-local, CGNAT shared space, documentation, benchmarking, reserved, ULA).
NOT_PUBLIC = [
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
    "192.0.0.0/24", "192.0.2.0/24", "192.168.0.0/16", "198.18.0.0/15", "198.51.100.0/24",
    "203.0.113.0/24", "240.0.0.0/4", "::/127", "100::/64", "2001:db8::/32",
    "fc00::/7", "fe80::/10",
]  # fmt: skip


def _ranges(nets: Iterable[Network]) -> list[tuple[int, int, int]]:
    return [(n.version, int(n.network_address), int(n.broadcast_address)) for n in nets]


BUILTIN_RANGES = _ranges(ipaddress.ip_network(n) for n in NOT_PUBLIC)


def _private(ip: str, own: list[tuple[int, int, int]]) -> bool:
    # integer range checks: ipaddress.is_private walks a list of network objects per call
    addr = ipaddress.ip_address(ip)
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped  # ::ffff:a.b.c.d is the IPv4 address
    x, ver = int(addr), addr.version
    return any(v == ver and lo <= x <= hi for v, lo, hi in BUILTIN_RANGES) or any(
        v == ver and lo <= x <= hi for v, lo, hi in own
    )


@dataclass
class _Facts:
    """Mutable scratch for one destination; frozen into a Destination at the end."""

    values: dict[str, object] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)

    def set_all(self, source: str, **facts: object) -> None:
        for name, value in facts.items():
            self.set(name, value, source)

    def set(self, name: str, value: object, source: str, *, force: bool = False) -> None:
        if value is None or value == "":
            return
        if force or self.values.get(name) is None:
            self.values[name] = value
            self.sources[name] = source


class Resolver:
    """Keeps each fact apart with where it came from; resolves each key once while cached."""

    def __init__(
        self,
        *,
        in_eea: Callable[[str], bool | None],
        geoip: GeoIP | None = None,
        catalog: Catalog | None = None,
        ranges: CloudRanges | None = None,
        overrides: Overrides | None = None,
        internal_networks: Iterable[str] = (),
        cache_size: int = 200_000,
    ) -> None:
        self.geoip = geoip
        self.catalog = catalog
        self.ranges = ranges
        self.overrides = overrides or Overrides([])
        self.in_eea = in_eea
        self.own = _ranges(ipaddress.ip_network(n, strict=False) for n in internal_networks)
        self.cache_size = cache_size
        self._cache: OrderedDict[Key, Destination] = OrderedDict()
        self.fallback_version = None if geoip else fallback.data_version()

    @property
    def data_version(self) -> str:
        return (self.geoip.build if self.geoip else None) or self.fallback_version or "none"

    @property
    def catalog_version(self) -> str | None:
        return self.catalog.version if self.catalog else None

    def close(self) -> None:
        if self.geoip:
            self.geoip.close()

    def resolve_many(self, keys: list[Key]) -> list[Destination]:
        """One Destination per key, in order; each key is looked up at most once while cached."""
        if self.geoip is not None and self.geoip.reload_changed():
            self._cache.clear()  # answers from the old database must not outlive it
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

    def resolve(self, host: str | None, ip: str | None) -> Destination:
        return self.resolve_many([(host, ip)])[0]

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
        return [
            self._one(host.lower().rstrip(".") if host else None, ip, rir[n] if rir else None)
            for n, ((host, _), ip) in enumerate(zip(keys, ips, strict=True))
        ]

    def _one(self, host: str | None, ip: str | None, rir_country: str | None) -> Destination:
        f = _Facts()
        ov = self.overrides.for_host(host) or self.overrides.for_ip(ip)
        if ov is not None:
            s = ov.spec
            f.set_all(f"override:{ov.where}", judged_country=s.country, provider=s.provider,
                      legal_entity=s.legal_entity, provider_seat=s.seat, region=s.region,
                      internal=s.internal or None)  # fmt: skip
        if ip is not None and not f.values.get("internal") and _private(ip, self.own):
            f.set("internal", True, "internal:private or configured internal_networks")
        if host and self.catalog is not None:
            self._from_catalog(f, self.catalog, host)
        if ip is not None and not f.values.get("internal"):
            self._from_ip(f, ip, rir_country)
        return self._freeze(f, host, ip)

    @staticmethod
    def _from_catalog(f: _Facts, catalog: Catalog, host: str) -> None:
        m = catalog.match(host)
        if m is None:
            return
        f.set_all(f"catalog:{m.location}" + (" (uncertain)" if m.uncertain else ""), provider=m.provider,
                  legal_entity=m.legal_entity, provider_seat=m.seat, region=m.region,
                  region_country=m.region_country, edge=m.edge or None)  # fmt: skip

    def _from_ip(self, f: _Facts, ip: str, rir_country: str | None) -> None:
        hit = self.ranges.lookup(ip) if self.ranges is not None else None
        if hit is not None:
            src = f"cloud-ranges:{hit.source} {hit.prefix}"
            f.set(
                "provider",
                {"aws": "Amazon Web Services", "gcp": "Google Cloud", "azure": "Microsoft Azure"}.get(
                    hit.provider, hit.provider
                ),
                src,
            )
            f.set("region", hit.region, src)
            country = self.catalog.region_country(hit.provider, hit.region) if self.catalog and hit.region else None
            f.set("region_country", country, src)
            if hit.service and any(cdn in hit.service.upper() for cdn in ("CLOUDFRONT", "FRONTDOOR")):
                f.set("edge", True, src)
        if self.geoip is not None:
            facts, sources = self.geoip.lookup(ip)
            srcs = dict(sources)
            f.set("located_country", facts.located_country, srcs.get("located_country", "geoip"))
            f.set("located_subdivision", facts.subdivision, srcs.get("located_country", "geoip"))
            f.set("located_city", facts.city, srcs.get("located_country", "geoip"))
            f.set("registered_country", facts.registered_country, srcs.get("registered_country", "geoip"))
            f.set("represented_country", facts.represented_country, srcs.get("represented_country", "geoip"))
            f.set("asn", facts.asn, srcs.get("asn", "geoip"))
            f.set("as_org", facts.as_org, srcs.get("asn", "geoip"))
            if facts.anycast:
                f.set("edge", True, f"anycast per {srcs.get('anycast', 'geoip')}")
            if facts.asn is not None and self.catalog is not None:
                cdn = self.catalog.provider_for_asn(facts.asn)
                if cdn is not None and cdn.edge:
                    f.set("edge", True, f"catalog: AS{facts.asn} is {cdn.name}, an edge network")
        else:
            f.set("registered_country", rir_country, f"fallback:{self.fallback_version} (RIR registration)")

    def _freeze(self, f: _Facts, host: str | None, ip: str | None) -> Destination:
        v = dict(f.values)
        sources = dict(f.sources)
        sources.pop("judged_country", None)
        if v.get("internal"):
            v.update(judged_country=None, confidence="high")
        else:
            country, why, confidence = judge(v, f.sources)
            if country is not None:
                sources["country"] = why
            elif ip is None:
                sources["country"] = "unknown: no address and no catalog entry for the host"
            elif v.get("edge"):
                sources["country"] = "unknown: the address is a CDN edge and the host is not in the catalog"
            v.update(judged_country=country, eea=self.in_eea(country) if country else None, confidence=confidence)
        return Destination(
            host=host,
            ip=ip,
            mmdb_build=self.data_version,
            catalog_version=self.catalog_version,
            sources=tuple(sorted(sources.items())),
            **v,  # type: ignore[arg-type]
        )


def judge(v: dict[str, object], sources: dict[str, str]) -> tuple[str | None, str, str]:
    """(country, reason, confidence) in the order of evidence."""
    if v.get("judged_country"):
        return str(v["judged_country"]), sources["judged_country"], "high"
    if v.get("region_country"):
        src = sources["region_country"]
        what = f"region {v['region']}" if v.get("region") else "processing location"
        # a catalog fact its authors could not confirm is evidence, but not strong evidence
        return str(v["region_country"]), f"{what} via {src}", "medium" if "(uncertain)" in src else "high"
    if v.get("edge"):
        return None, "", "none"
    if v.get("located_country"):
        return str(v["located_country"]), f"located via {sources['located_country']}", "medium"
    if v.get("registered_country"):
        return str(v["registered_country"]), f"registered via {sources['registered_country']}", "low"
    if v.get("provider_seat"):
        # nothing says where the servers are, but the importer is the legal entity: its seat
        # decides whether the data goes to a third country (EDPB Guidelines 05/2021)
        return str(v["provider_seat"]), f"provider's legal seat via {sources['provider_seat']}", "low"
    return None, "", "none"
