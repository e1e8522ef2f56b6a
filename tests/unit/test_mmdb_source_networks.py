"""Every network documented in MaxMind's test-data source JSON resolves through geoip2 as documented (IPv4 and IPv6)."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path
from typing import Any

import pytest

from monitor.resolve.geoip import GeoIP

Net = ipaddress.IPv4Network | ipaddress.IPv6Network


def _networks(source: Path) -> list[tuple[Net, dict[str, Any]]]:
    out = []
    for rec in json.loads(source.read_text(encoding="utf-8")):
        for net, data in rec.items():
            out.append((ipaddress.ip_network(net, strict=False), data))
    return out


def _expected(
    nets: list[tuple[Net, dict[str, Any]]], addr: ipaddress.IPv4Address | ipaddress.IPv6Address
) -> dict[str, Any]:
    # the most specific documented network holding the address is the record the DB returns
    best: tuple[int, dict[str, Any]] | None = None
    for net, data in nets:
        if net.version == addr.version and addr in net and (best is None or net.prefixlen > best[0]):
            best = (net.prefixlen, data)
    return best[1] if best else {}


V4_IN_V6 = ipaddress.ip_network("::/96")


def _query(addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    """IPv4 networks are written as ::a.b.c.d/N in the source; look them up as plain IPv4."""
    if addr.version == 6 and addr in V4_IN_V6 and int(addr) > 0xFFFF:
        return str(ipaddress.IPv4Address(int(addr)))
    return str(addr)


def _iso(data: dict[str, Any], key: str) -> str | None:
    v = data.get(key) or {}
    return v.get("iso_code") if isinstance(v, dict) else None


@pytest.mark.parametrize(
    "db", ["GeoLite2-City-Test", "GeoLite2-Country-Test", "GeoIP2-City-Test", "GeoIP2-Country-Test"]
)
def test_country_networks(fixtures_real: Path, db: str) -> None:
    nets = _networks(fixtures_real / "mmdb" / "source-data" / f"{db}.json")
    g = GeoIP([fixtures_real / "mmdb" / f"{db}.mmdb"])
    checked = {4: 0, 6: 0}
    wrong = []
    try:
        for net, _ in nets:
            addr = net[0] if net.num_addresses == 1 else net[1]
            want = _expected(nets, addr)
            q = _query(addr)
            got, _ = g.lookup(q)
            exp = (_iso(want, "country"), _iso(want, "registered_country"), _iso(want, "represented_country"))
            if (got.located_country, got.registered_country, got.represented_country) != exp:
                wrong.append((q, got, exp))
            checked[ipaddress.ip_address(q).version] += 1
    finally:
        g.close()
    assert wrong == []
    assert checked[4] >= 10 and checked[6] >= 100, checked


@pytest.mark.parametrize("db", ["GeoLite2-ASN-Test", "GeoIP2-ISP-Test"])
def test_asn_networks(fixtures_real: Path, db: str) -> None:
    nets = _networks(fixtures_real / "mmdb" / "source-data" / f"{db}.json")
    g = GeoIP([fixtures_real / "mmdb" / f"{db}.mmdb"])
    wrong, checked = [], 0
    try:
        for net, _ in nets:
            addr = net[0] if net.num_addresses == 1 else net[1]
            want = _expected(nets, addr)
            got, _ = g.lookup(_query(addr))
            exp = (want.get("autonomous_system_number"), want.get("autonomous_system_organization"))
            if (got.asn, got.as_org) != exp:
                wrong.append((_query(addr), got, exp))
            checked += 1
    finally:
        g.close()
    assert wrong == [] and checked > 50
