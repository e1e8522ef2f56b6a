"""GeoIP and the resolve stage against MaxMind's own test databases (oracle: shared/fixtures/real)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import geoip2.database
import maxminddb
import pytest

from monitor.errors import DataSourceError
from monitor.policy.rulepack import RulePack, load_pack
from monitor.resolve import fallback
from monitor.resolve.geoip import GeoFacts, GeoIP
from monitor.resolve.jurisdiction import Resolver
from monitor.settings import default_rules_dir

BUILD_EPOCH = 1770245369  # every test database's metadata.build_epoch (MANIFEST.md)
BUILT = dt.datetime.fromtimestamp(BUILD_EPOCH, dt.UTC)

COUNTRY_DBS = ["GeoLite2-City-Test", "GeoIP2-City-Test", "GeoLite2-Country-Test", "GeoIP2-Country-Test"]
ASN_DBS = ["GeoLite2-ASN-Test", "GeoIP2-ISP-Test"]

# Upstream says readers should reject all of these; the Python reader opens the last two.
MUST_FAIL = [
    "GeoIP2-City-Test-Invalid-Node-Count.mmdb",
    "libmaxminddb-metadata-marker-only.mmdb",
    "metadata-is-an-uint128.mmdb",
    "bad-unicode-in-map-key.mmdb",
    "invalid-data-record-offset.mmdb",
]
OPEN_IN_PYTHON_READER = [
    "libmaxminddb-corrupt-search-tree.mmdb",
    "MaxMind-DB-test-broken-search-tree-24.mmdb",
]


@pytest.fixture(scope="module")
def mmdb(fixtures_real: Path) -> Path:
    return fixtures_real / "mmdb"


@pytest.fixture(scope="module")
def oracle(fixtures_real: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((fixtures_real / "oracle.json").read_text(encoding="utf-8"))["mmdb"]
    return data


@pytest.fixture(scope="module")
def pack() -> RulePack:
    return load_pack(default_rules_dir())


@pytest.fixture
def city_asn(mmdb: Path) -> Iterator[GeoIP]:
    g = GeoIP([mmdb / "GeoLite2-City-Test.mmdb", mmdb / "GeoLite2-ASN-Test.mmdb"])
    yield g
    g.close()


def _expected(oracle: dict[str, Any], country_db: str, asn_db: str, ip: str) -> GeoFacts:
    c = oracle[f"mmdb/{country_db}.mmdb"]["lookups"].get(ip) or {}
    a = oracle[f"mmdb/{asn_db}.mmdb"]["lookups"].get(ip) or {}
    return GeoFacts(
        located_country=c.get("country"),
        registered_country=c.get("registered_country"),
        represented_country=c.get("represented_country"),
        city=c.get("city_en") or None,
        asn=a.get("autonomous_system_number"),
        as_org=a.get("autonomous_system_organization") if "autonomous_system_number" in a else None,
    )


# --------------------------------------------------------------------------- lookups


@pytest.mark.parametrize("asn_db", ASN_DBS)
@pytest.mark.parametrize("country_db", COUNTRY_DBS)
def test_every_oracle_ip_matches(mmdb: Path, oracle: dict[str, Any], country_db: str, asn_db: str) -> None:
    ips = sorted(set(oracle[f"mmdb/{country_db}.mmdb"]["lookups"]) | set(oracle[f"mmdb/{asn_db}.mmdb"]["lookups"]))
    assert len(ips) >= 15
    g = GeoIP([mmdb / f"{country_db}.mmdb", mmdb / f"{asn_db}.mmdb"])
    try:
        wrong = []
        for ip in ips:
            got, _ = g.lookup(ip)
            # the oracle has no subdivisions; Country databases have no cities
            got = dataclasses.replace(got, subdivision=None)
            want = _expected(oracle, country_db, asn_db, ip)
            if got != want:
                wrong.append((ip, got, want))
    finally:
        g.close()
    assert wrong == []


@pytest.mark.parametrize(
    ("ip", "located", "registered", "asn"),
    [
        ("81.2.69.142", "GB", "US", None),  # located in GB, block registered in the US
        ("2.125.160.216", "GB", "FR", None),
        ("216.160.83.56", "US", "GB", 209),
        ("89.160.20.112", "SE", "DE", 29518),
        ("67.43.156.1", "BT", "RO", 35908),
        ("2001:218::1", "JP", "JP", None),
        ("2a02:cf40::1", "NO", "NO", None),
    ],
)
def test_manifest_rows_city_asn(city_asn: GeoIP, ip: str, located: str, registered: str, asn: int | None) -> None:
    facts, sources = city_asn.lookup(ip)
    assert (facts.located_country, facts.registered_country, facts.asn) == (located, registered, asn)
    assert ("located_country", "geoip:GeoLite2-City-Test.mmdb@1770245369") in sources
    assert ("registered_country", "geoip:GeoLite2-City-Test.mmdb@1770245369") in sources


@pytest.mark.parametrize(
    ("ip", "located", "registered", "asn", "org"),
    [
        ("81.2.69.142", "GB", "US", None, None),
        ("2001:218::1", "JP", "JP", None, None),
        ("2a02:cf40::1", "NO", "NO", None, None),
        ("1.128.0.1", None, None, 1221, "Telstra Pty Ltd"),
        ("149.101.100.1", "US", "GB", 6167, "CELLCO-PART"),
        ("12.81.92.1", None, None, 7018, None),  # ISP record has an ASN but no AS organisation
    ],
)
def test_manifest_rows_country_isp(
    mmdb: Path, ip: str, located: str | None, registered: str | None, asn: int | None, org: str | None
) -> None:
    g = GeoIP([mmdb / "GeoIP2-Country-Test.mmdb", mmdb / "GeoIP2-ISP-Test.mmdb"])
    try:
        facts, _ = g.lookup(ip)
    finally:
        g.close()
    assert (facts.located_country, facts.registered_country, facts.asn, facts.as_org) == (
        located,
        registered,
        asn,
        org,
    )


def test_asn_source_is_recorded(city_asn: GeoIP) -> None:
    facts, sources = city_asn.lookup("89.160.20.112")
    assert facts.as_org == "Bredband2 AB"
    assert ("asn", "geoip:GeoLite2-ASN-Test.mmdb@1770245369") in sources


@pytest.mark.parametrize("ip", ["8.8.8.8", "127.0.0.1", "10.0.0.1", "::1", "50.114.0.1", "not-an-ip", ""])
def test_not_found_gives_empty_facts(city_asn: GeoIP, ip: str) -> None:
    facts, sources = city_asn.lookup(ip)
    assert facts == GeoFacts()
    assert sources == []


def test_database_order_decides_who_answers_first(mmdb: Path) -> None:
    # the ASN database first changes nothing: it has no country facts to contribute
    g = GeoIP([mmdb / "GeoLite2-ASN-Test.mmdb", mmdb / "GeoLite2-Country-Test.mmdb"])
    try:
        facts, _ = g.lookup("89.160.20.112")
    finally:
        g.close()
    assert (facts.located_country, facts.registered_country, facts.asn) == ("SE", "DE", 29518)


# --------------------------------------------------------------------------- bad data


def test_bad_data_list_is_complete(mmdb: Path) -> None:
    assert sorted(p.name for p in (mmdb / "bad-data").glob("*.mmdb")) == sorted(MUST_FAIL + OPEN_IN_PYTHON_READER)


@pytest.mark.parametrize("name", MUST_FAIL)
def test_corrupt_database_is_rejected_at_construction(mmdb: Path, name: str) -> None:
    path = mmdb / "bad-data" / name
    with pytest.raises(DataSourceError) as err:
        GeoIP([path])
    assert err.value.path == str(path)
    assert name in str(err.value)


@pytest.mark.parametrize("name", OPEN_IN_PYTHON_READER)
def test_databases_the_reader_opens_are_rejected_by_type(mmdb: Path, name: str) -> None:
    # maxminddb opens and iterates these without error; their database_type is "Test", which
    # is neither a country nor an ASN database, so GeoIP refuses them before any lookup.
    path = mmdb / "bad-data" / name
    reader = maxminddb.open_database(str(path))
    try:
        assert reader.metadata().database_type == "Test"
    finally:
        reader.close()
    with pytest.raises(DataSourceError) as err:
        GeoIP([path])
    assert err.value.path == str(path)
    assert "database type 'Test' is neither a City/Country nor an ASN/ISP database" in str(err.value)


def test_corruption_found_only_on_lookup_fails_at_startup(mmdb: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def corrupt(self: geoip2.database.Reader, ip: str) -> object:
        raise maxminddb.InvalidDatabaseError("The MaxMind DB file's search tree is corrupt")

    monkeypatch.setattr(geoip2.database.Reader, "city", corrupt)
    path = mmdb / "GeoLite2-City-Test.mmdb"
    with pytest.raises(DataSourceError) as err:
        GeoIP([path])
    assert err.value.path == str(path)
    assert "search tree is corrupt" in str(err.value)


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.mmdb"
    with pytest.raises(DataSourceError) as err:
        GeoIP([path])
    assert err.value.path == str(path)
    assert "not found" in str(err.value)


def test_missing_file_after_a_good_one(mmdb: Path, tmp_path: Path) -> None:
    path = tmp_path / "nope.mmdb"
    with pytest.raises(DataSourceError) as err:
        GeoIP([mmdb / "GeoLite2-City-Test.mmdb", path])
    assert err.value.path == str(path)


def test_not_a_database_at_all(mmdb: Path) -> None:
    path = mmdb / "LICENSE-MIT"
    with pytest.raises(DataSourceError) as err:
        GeoIP([path])
    assert err.value.path == str(path)


# --------------------------------------------------------------------------- build and age


def test_build_names_type_and_epoch(mmdb: Path) -> None:
    g = GeoIP([mmdb / "GeoIP2-Country-Test.mmdb", mmdb / "GeoIP2-ISP-Test.mmdb"])
    try:
        assert g.build == f"GeoIP2-Country@{BUILD_EPOCH},GeoIP2-ISP@{BUILD_EPOCH}"
    finally:
        g.close()


def test_no_databases_no_build() -> None:
    assert GeoIP([]).build is None


def test_stale_far_after_build(city_asn: GeoIP) -> None:
    stale = city_asn.stale(45, BUILT + dt.timedelta(days=400))
    assert len(stale) == 2
    assert "GeoLite2-City-Test.mmdb" in stale[0]
    assert "GeoLite2-ASN-Test.mmdb" in stale[1]
    assert all("2026-02-04" in s and "400 days old" in s for s in stale)


@pytest.mark.parametrize("days", [0, 1, 30, 45])
def test_not_stale_within_limit(city_asn: GeoIP, days: int) -> None:
    assert city_asn.stale(45, BUILT + dt.timedelta(days=days)) == []


def test_stale_from_the_day_after_the_limit(city_asn: GeoIP) -> None:
    assert len(city_asn.stale(45, BUILT + dt.timedelta(days=46))) == 2


# --------------------------------------------------------------------------- resolver


@pytest.fixture
def resolver(mmdb: Path, pack: RulePack) -> Iterator[Resolver]:
    r = Resolver(in_eea=pack.in_eea, geoip=GeoIP([mmdb / "GeoLite2-City-Test.mmdb", mmdb / "GeoLite2-ASN-Test.mmdb"]))
    yield r
    r.close()


@pytest.mark.parametrize(
    "ip", ["10.1.2.3", "172.16.0.9", "192.168.1.1", "127.0.0.1", "::1", "192.0.2.10", "2001:db8::1", "fe80::1"]
)
def test_private_loopback_documentation_are_internal(resolver: Resolver, ip: str) -> None:
    (d,) = resolver.resolve_many([("h.example", ip)])
    assert d.internal is True
    assert d.located_country is None


def test_public_address_is_not_internal(resolver: Resolver) -> None:
    (d,) = resolver.resolve_many([("h.example", "81.2.69.142")])
    assert d.internal is False
    assert (d.located_country, d.registered_country, d.eea, d.confidence) == ("GB", "US", False, "medium")
    assert d.mmdb_build == f"GeoLite2-City@{BUILD_EPOCH},GeoLite2-ASN@{BUILD_EPOCH}"


def test_own_networks_are_internal(mmdb: Path, pack: RulePack) -> None:
    r = Resolver(
        in_eea=pack.in_eea, geoip=GeoIP([mmdb / "GeoLite2-City-Test.mmdb"]), internal_networks=["81.2.69.0/24"]
    )
    try:
        inside, outside = r.resolve_many([(None, "81.2.69.142"), (None, "2.125.160.216")])
    finally:
        r.close()
    assert inside.internal is True
    assert outside.internal is False


def test_ipv6_eea_member(resolver: Resolver) -> None:
    (d,) = resolver.resolve_many([(None, "2a02:cf40::1")])
    assert (d.located_country, d.eea) == ("NO", True)


def test_host_only_key(resolver: Resolver) -> None:
    (d,) = resolver.resolve_many([("api.example.com", None)])
    assert d.ip is None
    assert d.country is None
    assert d.confidence == "none"
    assert d.eea is None


def test_address_not_in_database(resolver: Resolver) -> None:
    (d,) = resolver.resolve_many([("dns.google", "8.8.8.8")])
    assert (d.country, d.eea, d.confidence) == (None, None, "none")


@pytest.mark.parametrize(("host", "country"), [("81.2.69.142", "GB"), ("2001:218::1", "JP")])
def test_host_that_is_an_address_literal(resolver: Resolver, host: str, country: str) -> None:
    (d,) = resolver.resolve_many([(host, None)])
    assert d.ip == host
    assert d.located_country == country


def test_fallback_without_mmdb(pack: RulePack) -> None:
    r = Resolver(in_eea=pack.in_eea)
    assert r.geoip is None
    us, nl, nothing = r.resolve_many([("dns.google", "8.8.8.8"), (None, "193.0.6.139"), ("x.example", None)])
    assert (us.registered_country, us.located_country, us.confidence, us.eea) == ("US", None, "low", False)
    assert (nl.registered_country, nl.located_country, nl.confidence, nl.eea) == ("NL", None, "low", True)
    assert (nothing.country, nothing.confidence) == (None, "none")
    assert us.mmdb_build == fallback.data_version()
    assert us.mmdb_build.startswith("iptocc@")
    assert dict(us.sources)["registered_country"].startswith("fallback:iptocc@")


def test_resolve_many_keeps_order(resolver: Resolver) -> None:
    keys: list[tuple[str | None, str | None]] = [(None, "2001:218::1"), (None, "81.2.69.142"), (None, "10.0.0.1")]
    out = resolver.resolve_many(keys)
    assert [(d.ip, d.located_country, d.internal) for d in out] == [
        ("2001:218::1", "JP", False),
        ("81.2.69.142", "GB", False),
        ("10.0.0.1", None, True),
    ]


def test_cache_avoids_second_lookup(resolver: Resolver, monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolver.geoip is not None
    calls: list[str] = []
    real = resolver.geoip.lookup

    def counting(ip: str) -> tuple[GeoFacts, list[tuple[str, str]]]:
        calls.append(ip)
        return real(ip)

    monkeypatch.setattr(resolver.geoip, "lookup", counting)
    keys: list[tuple[str | None, str | None]] = [("a.example", "81.2.69.142"), ("b.example", "2001:218::1")]
    first = resolver.resolve_many(keys)
    assert sorted(calls) == ["2001:218::1", "81.2.69.142"]
    second = resolver.resolve_many(keys)
    assert sorted(calls) == ["2001:218::1", "81.2.69.142"]
    assert first == second


def test_fallback_cache_avoids_second_lookup(pack: RulePack, monkeypatch: pytest.MonkeyPatch) -> None:
    batches: list[list[str]] = []
    real = fallback.registered_countries

    def counting(ips: list[str]) -> list[str | None]:
        batches.append(list(ips))
        return real(ips)

    monkeypatch.setattr(fallback, "registered_countries", counting)
    r = Resolver(in_eea=pack.in_eea)
    r.resolve_many([(None, "8.8.8.8")])
    r.resolve_many([(None, "8.8.8.8")])
    assert batches == [["8.8.8.8"]]


def test_cache_is_bounded(mmdb: Path, pack: RulePack) -> None:
    r = Resolver(in_eea=pack.in_eea, geoip=GeoIP([mmdb / "GeoLite2-City-Test.mmdb"]), cache_size=2)
    try:
        r.resolve_many([(None, "81.2.69.142"), (None, "2001:218::1"), (None, "2a02:cf40::1")])
    finally:
        r.close()
    assert len(r._cache) == 2
    assert list(r._cache) == [(None, "2001:218::1"), (None, "2a02:cf40::1")]


def test_cache_evicts_least_recently_used(mmdb: Path, pack: RulePack) -> None:
    r = Resolver(in_eea=pack.in_eea, geoip=GeoIP([mmdb / "GeoLite2-City-Test.mmdb"]), cache_size=2)
    try:
        r.resolve_many([(None, "81.2.69.142")])
        r.resolve_many([(None, "2001:218::1")])
        r.resolve_many([(None, "81.2.69.142")])  # used again: now the most recent
        r.resolve_many([(None, "2a02:cf40::1")])
    finally:
        r.close()
    assert set(r._cache) == {(None, "81.2.69.142"), (None, "2a02:cf40::1")}
