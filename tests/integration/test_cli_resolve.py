"""`xborder resolve` as a user runs it: facts with sources, JSON field names, clean refusals of bad databases."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from monitor.cli.main import run

JSON_FIELDS = {
    "located_country", "registered_country", "asn", "as_org", "provider", "legal_entity", "provider_seat",
    "region", "region_country", "eea", "edge", "confidence", "sources", "data_versions",
}  # fmt: skip


def resolve_json(capsys: pytest.CaptureFixture[str], *args: str) -> list[dict[str, object]]:
    capsys.readouterr()
    assert run(["resolve", *args, "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert isinstance(out, list)
    return out


@pytest.fixture(autouse=True)
def _no_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("XBORDER_CONFIG", raising=False)


def test_ipv4_and_ipv6_with_maxmind_test_databases(fixtures_real: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mm = fixtures_real / "mmdb"
    docs = resolve_json(
        capsys, "81.2.69.142", "h.example,2001:218::1", "89.160.20.112",
        "--mmdb", str(mm / "GeoIP2-City-Test.mmdb"), "--mmdb", str(mm / "GeoLite2-ASN-Test.mmdb"),
    )  # fmt: skip
    assert all(JSON_FIELDS <= set(d) for d in docs)
    gb, jp, se = docs
    assert (gb["located_country"], gb["registered_country"], gb["eea"], gb["located_city"]) == (
        "GB",
        "US",
        False,
        "London",
    )
    assert gb["sources"]["located_country"] == "geoip:GeoIP2-City-Test.mmdb@1770245369"  # type: ignore[index]
    assert (jp["host"], jp["ip"], jp["located_country"]) == ("h.example", "2001:218::1", "JP")
    assert (se["located_country"], se["asn"], se["as_org"], se["eea"]) == ("SE", 29518, "Bredband2 AB", True)
    assert se["data_versions"]["mmdb_build"] == "GeoIP2-City@1770245369,GeoLite2-ASN@1770245369"  # type: ignore[index]


def test_no_database_falls_back_to_rir_registration(capsys: pytest.CaptureFixture[str]) -> None:
    (d,) = resolve_json(capsys, "8.8.8.8")
    assert (d["located_country"], d["registered_country"], d["confidence"]) == (None, "US", "low")
    assert str(d["sources"]["registered_country"]).startswith("fallback:iptocc@")  # type: ignore[index]


def test_table_output_names_each_source(fixtures_real: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert run(["resolve", "175.16.199.1", "--mmdb", str(fixtures_real / "mmdb/GeoIP2-City-Test.mmdb")]) == 0
    out = capsys.readouterr().out
    assert "located_country" in out and "CN" in out and "geoip:GeoIP2-City-Test.mmdb@1770245369" in out


@pytest.mark.parametrize(
    "bad",
    sorted(
        p.name
        for p in (Path(__file__).resolve().parents[2].parent / "shared/fixtures/real/mmdb/bad-data").glob("*.mmdb")
    ),
)
def test_every_bad_database_is_one_clear_error(
    fixtures_real: Path, bad: str, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    code = run(["resolve", "81.2.69.142", "--mmdb", str(fixtures_real / "mmdb/bad-data" / bad)])
    err = capsys.readouterr().err
    assert code == 2
    assert "Traceback" not in err and bad in err
    assert len([line for line in err.splitlines() if line.startswith("error:")]) == 1


def test_bad_target_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["resolve", "host.example,not-an-ip"]) == 2
    assert "not an IP address" in capsys.readouterr().err


def test_cloud_ranges_and_overrides_from_the_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ranges = Path(__file__).resolve().parents[1] / "fixtures" / "cloud-ranges"
    cfg = tmp_path / "xborder.yaml"
    cfg.write_text(
        "cloud_ranges:\n"
        f"  - {{provider: aws, path: '{ranges / 'aws-ip-ranges.json'}'}}\n"
        f"  - {{provider: auto, path: '{ranges / 'azure-servicetags.json'}'}}\n"
        "overrides:\n"
        "  - {host: llm.sovereign.example, country: DE, provider: Sovereign AI GmbH, seat: DE}\n",
        encoding="utf-8",
    )
    capsys.readouterr()
    assert (
        run(["-c", str(cfg), "resolve", "52.28.128.9", "52.28.1.1", "llm.sovereign.example", "--format", "json"]) == 0
    )
    ec2, amazon, sov = json.loads(capsys.readouterr().out)
    # the /24 EC2 range in eu-west-3 inside the /16 AMAZON range in eu-central-1: longest prefix wins
    assert (ec2["provider"], ec2["region"], ec2["region_country"], ec2["country"]) == (
        "Amazon Web Services",
        "eu-west-3",
        "FR",
        "FR",
    )
    assert "cloud-ranges:aws-ip-ranges.json" in ec2["sources"]["region"]
    assert (amazon["region"], amazon["country"]) == ("eu-central-1", "DE")
    assert (sov["country"], sov["provider"], sov["eea"]) == ("DE", "Sovereign AI GmbH", True)
    assert sov["sources"]["country"].startswith(f"override:{cfg}:")


def test_catalog_facts_reach_the_evidence(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "xborder.yaml"
    cfg.write_text(
        "alerts: {jsonl: null, stderr: false}\n"
        "systems: [{name: chat, sources: [10.0.0.0/8], data_categories: [customer-personal]}]\n",
        encoding="utf-8",
    )
    log = tmp_path / "a.log"
    log.write_text(
        "1763300000.000 9 10.1.1.1 TCP_TUNNEL/200 9 CONNECT bedrock-runtime.eu-central-1.amazonaws.com:443 - "
        "HIER_DIRECT/3.5.136.1 -\n"
        "1763300001.000 9 10.1.1.1 TCP_TUNNEL/200 9 CONNECT api.deepseek.com:443 - HIER_DIRECT/116.205.40.114 -\n",
        encoding="utf-8",
    )
    assert run(["-c", str(cfg), "ingest", "squid", str(log)]) == 0
    capsys.readouterr()
    assert run(["-c", str(cfg), "transfers", "--format", "json"]) == 0
    by = {r["dest_host"]: r for r in json.loads(capsys.readouterr().out)}
    bedrock = by["bedrock-runtime.eu-central-1.amazonaws.com"]
    assert (bedrock["country"], bedrock["outcome"], bedrock["rule_id"]) == ("DE", "permitted", "gdpr.no-transfer.eea")
    assert by["api.deepseek.com"]["outcome"] == "unauthorized"
    import sqlite3

    con = sqlite3.connect(tmp_path / "xborder.db")
    row = con.execute(
        "select provider, provider_seat, region, region_country, catalog_version, basis from evidence "
        "where dest_host like 'bedrock%'"
    ).fetchone()
    con.close()
    assert row[:4] == ("AWS", "US", "eu-central-1", "DE")
    assert row[4].startswith("2026.11.1+")
    assert "third-country access risk" in row[5] and "seated in US" in row[5]
