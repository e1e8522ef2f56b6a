"""The Resolver's order of evidence, overrides, territories, edges and live reload of a replaced mmdb."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import time
from pathlib import Path

import pytest

from monitor.policy.evaluator import evaluate
from monitor.policy.register import OverrideDef
from monitor.policy.rulepack import RulePack, load_pack
from monitor.records import Destination, Outcome, System
from monitor.resolve.geoip import GeoIP
from monitor.resolve.jurisdiction import Resolver
from monitor.resolve.overrides import Overrides
from monitor.settings import default_rules_dir


@pytest.fixture(scope="module")
def pack() -> RulePack:
    return load_pack(default_rules_dir())


@pytest.fixture
def mmdb(fixtures_real: Path) -> Path:
    return fixtures_real / "mmdb"


def test_replaced_mmdb_changes_answers_without_restart(mmdb: Path, tmp_path: Path, pack: RulePack) -> None:
    live = tmp_path / "City.mmdb"
    shutil.copy(mmdb / "GeoLite2-City-Test.mmdb", live)
    r = Resolver(in_eea=pack.in_eea, geoip=GeoIP([live], check_every=1.0))
    try:
        before = r.resolve(None, "214.0.0.1")
        assert before.country is None and r.resolve(None, "81.2.69.142").country == "GB"
        # an updater writes the new build beside it and renames it into place
        tmp = tmp_path / "City.mmdb.new"
        shutil.copy(mmdb / "GeoIP2-City-Test.mmdb", tmp)
        os.replace(tmp, live)
        assert r.resolve(None, "214.0.0.1").country is None  # within the check interval: cached answer
        time.sleep(1.1)
        after = r.resolve(None, "214.0.0.1")
        assert (after.located_country, after.located_city) == ("SG", "Singapore")
        assert after.mmdb_build == "GeoIP2-City@1770245369"
        assert r.resolve(None, "81.2.69.142").mmdb_build == "GeoIP2-City@1770245369"  # no stale cache entry
    finally:
        r.close()


def test_corrupt_replacement_keeps_the_old_database(
    mmdb: Path, tmp_path: Path, pack: RulePack, caplog: pytest.LogCaptureFixture
) -> None:
    live = tmp_path / "City.mmdb"
    shutil.copy(mmdb / "GeoLite2-City-Test.mmdb", live)
    r = Resolver(in_eea=pack.in_eea, geoip=GeoIP([live], check_every=0))
    try:
        # a broken download renamed into place (updaters replace by rename; an in-place
        # overwrite would change the bytes under the open memory map in any reader mode but memory)
        tmp = tmp_path / "broken.mmdb"
        shutil.copy(mmdb / "bad-data" / "libmaxminddb-metadata-marker-only.mmdb", tmp)
        os.replace(tmp, live)
        d = r.resolve(None, "81.2.69.142")
        assert d.country == "GB" and d.mmdb_build == "GeoLite2-City@1770245369"
        assert "GeoIP reload refused" in caplog.text
    finally:
        r.close()


def test_anycast_address_is_an_edge_with_no_judged_country(mmdb: Path, pack: RulePack) -> None:
    r = Resolver(in_eea=pack.in_eea, geoip=GeoIP([mmdb / "GeoIP2-City-Test.mmdb"]))
    try:
        d = r.resolve("cdn.example", "214.1.1.1")
    finally:
        r.close()
    assert d.edge and d.country is None and d.eea is None
    assert "anycast" in dict(d.sources)["edge"]
    assert "CDN edge" in dict(d.sources)["country"]


def test_overrides_come_first(mmdb: Path, pack: RulePack) -> None:
    ov = Overrides(
        [
            OverrideDef(host="llm.sovereign.example", country="DE", provider="Sovereign AI GmbH", seat="DE"),
            OverrideDef(cidr="81.2.69.0/24", country="FR", provider="Own DC Paris"),
            OverrideDef(host="*.corp.example", internal=True),
        ]
    )
    r = Resolver(in_eea=pack.in_eea, geoip=GeoIP([mmdb / "GeoLite2-City-Test.mmdb"]), overrides=ov)
    try:
        sov = r.resolve("llm.sovereign.example", "175.16.199.1")  # GeoIP says CN
        dc = r.resolve(None, "81.2.69.142")  # GeoIP says GB
        own = r.resolve("wiki.corp.example", "175.16.199.1")
    finally:
        r.close()
    assert (sov.country, sov.eea, sov.provider, sov.provider_seat, sov.located_country) == (
        "DE",
        True,
        "Sovereign AI GmbH",
        "DE",
        "CN",
    )
    assert dict(sov.sources)["country"].startswith("override:")
    assert (dc.country, dc.located_country) == ("FR", "GB")
    assert own.internal and own.country is None


def test_fallback_is_registered_country_low_confidence(pack: RulePack) -> None:
    r = Resolver(in_eea=pack.in_eea)
    d = r.resolve("x.example", "8.8.8.8")
    assert (d.located_country, d.registered_country, d.country, d.confidence) == (None, "US", "US", "low")
    assert dict(d.sources)["country"].startswith("registered via fallback:iptocc@")


@pytest.mark.parametrize(
    ("country", "city", "outcome", "rule"),
    [
        ("CY", "Girne", Outcome.REVIEW, "gdpr.territory-review"),
        ("CY", "Akrotiri", Outcome.REVIEW, "gdpr.territory-review"),
        ("CY", "Limassol", Outcome.PERMITTED, "gdpr.no-transfer.eea"),
        ("AX", "Mariehamn", Outcome.PERMITTED, "gdpr.no-transfer.eea"),
        ("GF", None, Outcome.PERMITTED, "gdpr.no-transfer.eea"),
        ("GL", "Nuuk", Outcome.UNAUTHORIZED, "gdpr.art44.unauthorized"),
        ("FO", None, Outcome.PERMITTED, "adequacy.FO"),
        ("GI", None, Outcome.UNAUTHORIZED, "gdpr.art44.unauthorized"),
        ("BL", None, Outcome.UNAUTHORIZED, "gdpr.art44.unauthorized"),
        ("SJ", None, Outcome.REVIEW, "gdpr.territory-review"),
    ],
)
def test_territories(pack: RulePack, country: str, city: str | None, outcome: Outcome, rule: str) -> None:
    d = Destination("h.example", "198.51.100.1", located_country=country, located_city=city)
    v = evaluate(pack, System("s", ("customer-personal",)), d, dt.date(2026, 11, 20), None)
    assert (v.outcome, v.rule_id) == (outcome, rule)


def test_eu_multi_region_is_in_the_eea(pack: RulePack) -> None:
    d = Destination("aiplatform.eu.rep.googleapis.com", None, region="eu", region_country="EU")
    v = evaluate(pack, System("s", ("customer-personal",)), d, dt.date(2026, 11, 20), None)
    assert (v.outcome, v.rule_id) == (Outcome.PERMITTED, "gdpr.no-transfer.eea")


@pytest.mark.parametrize(("ip", "internal"), [
    ("10.1.2.3", True), ("172.31.0.1", True), ("192.168.1.1", True), ("127.0.0.1", True), ("169.254.1.1", True),
    ("100.64.0.1", True), ("192.0.2.10", True), ("::1", True), ("fd00::1", True), ("fe80::1", True),
    ("2001:db8::5", True), ("::ffff:10.0.0.1", True), ("::ffff:8.8.8.8", False), ("8.8.8.8", False),
    ("172.32.0.1", False), ("2a00:1450::1", False), ("100.128.0.1", False),
])  # fmt: skip
def test_internal_addresses(pack: RulePack, ip: str, internal: bool) -> None:
    assert Resolver(in_eea=pack.in_eea).resolve(None, ip).internal is internal


@pytest.mark.parametrize("mode", ["auto", "mmap_ext", "mmap", "file", "memory"])
def test_every_bad_database_is_refused_in_every_reader_mode(mmdb: Path, mode: str) -> None:
    from monitor.errors import DataSourceError

    bad = sorted((mmdb / "bad-data").glob("*.mmdb"))
    assert len(bad) == 7
    for path in [*bad, mmdb / "LICENSE-MIT"]:  # and a file that is not a database at all
        with pytest.raises(DataSourceError) as err:
            GeoIP([path], mode)
        assert str(path) in str(err.value)


def test_stale_database_is_logged_at_start(mmdb: Path, pack: RulePack, caplog: pytest.LogCaptureFixture) -> None:
    from monitor.resolve.build import build_resolver
    from monitor.settings import Config, Settings

    cfg = Config(Settings.model_validate({"geoip": {"databases": [str(mmdb / "GeoLite2-City-Test.mmdb")],
                                                    "max_age_days": 45}}), None, mmdb)  # fmt: skip
    build_resolver(cfg, pack).close()
    assert "stale GeoIP database" in caplog.text and "GeoLite2-City-Test.mmdb" in caplog.text
