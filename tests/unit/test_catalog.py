"""The provider catalog: shipped data loads, every example resolves, matching rules, all-at-once validation."""

from __future__ import annotations

import dataclasses
import re
import shutil
import textwrap
from pathlib import Path

import pytest
import yaml

from monitor.errors import ConfigError, Problem
from monitor.resolve.catalog import Catalog, CatalogMatch, load_catalog
from monitor.settings import default_rules_dir

CATALOG = default_rules_dir() / "catalog"
PROVIDERS = "rules/catalog/providers.yaml"


def _examples() -> list[tuple[str, str, str]]:
    """(provider id, pattern, example) for every example of every host pattern in the shipped catalog."""
    data = yaml.safe_load((CATALOG / "providers.yaml").read_text(encoding="utf-8"))
    return [
        (p["id"], h["pattern"], ex) for p in data["providers"] for h in p.get("hosts", []) for ex in h["examples"]
    ]


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog(CATALOG)


def _m(catalog: Catalog, host: str) -> CatalogMatch:
    m = catalog.match(host)
    assert m is not None, f"{host} is not in the catalog"
    return m


# --------------------------------------------------------------------------- shipped catalog


def test_shipped_catalog_loads(catalog: Catalog) -> None:
    assert re.fullmatch(r"2026\.11\.1\+[0-9a-f]{12}", catalog.version)
    assert len(catalog.providers) >= 25
    assert {"aws", "gcp", "azure"} <= set(catalog.tables)
    ids = [p.id for p in catalog.providers]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize(("provider_id", "pattern", "example"), _examples(), ids=lambda v: str(v))
def test_every_example_resolves_to_its_own_pattern(
    catalog: Catalog, provider_id: str, pattern: str, example: str
) -> None:
    m = _m(catalog, example)
    assert m.provider_id == provider_id
    line = int(m.location.rsplit(":", 1)[1])
    text = (CATALOG / "providers.yaml").read_text(encoding="utf-8").splitlines()[line - 1]
    assert f'pattern: "{pattern}"' in text


def test_european_regions_are_all_there(catalog: Catalog) -> None:
    aws = {r: d.country for r, d in catalog.tables["aws"].items()}
    eu = {"eu-central-1": "DE", "eu-west-1": "IE", "eu-west-3": "FR", "eu-north-1": "SE", "eu-south-1": "IT"}
    assert {k: aws[k] for k in eu} == eu and aws["eu-south-2"] == "ES"
    assert aws["eu-west-2"] == "GB" and aws["eu-central-2"] == "CH"
    gcp = {r: d.country for r, d in catalog.tables["gcp"].items()}
    assert [gcp[r] for r in ("europe-west1", "europe-west3", "europe-west4", "europe-west8", "europe-west9")] == [
        "BE", "DE", "NL", "IT", "FR",
    ]
    assert gcp["europe-southwest1"] == "ES" and gcp["europe-north1"] == "FI" and gcp["europe-central2"] == "PL"
    assert gcp["eu"] == "EU" and gcp["us"] == "US"
    azure = {r: d.country for r, d in catalog.tables["azure"].items()}
    assert azure["westeurope"] == "NL" and azure["northeurope"] == "IE" and azure["swedencentral"] == "SE"
    assert azure["norwayeast"] == "NO"  # quoted in YAML: a bare NO is a boolean


def test_region_country_for_cloud_ranges(catalog: Catalog) -> None:
    assert catalog.region_country("aws", "eu-central-1") == "DE"
    assert catalog.region_country("gcp", "europe-west4") == "NL"
    assert catalog.region_country("azure", "germanywestcentral") == "DE"
    assert catalog.region_country("azure", "WestEurope") == "NL"
    assert catalog.region_country("aws", "xx-nowhere-1") is None
    assert catalog.region_country("oracle", "eu-frankfurt-1") is None


def test_provider_for_asn_spots_edges(catalog: Catalog) -> None:
    assert (cf := catalog.provider_for_asn(13335)) is not None and cf.edge and cf.name == "Cloudflare"
    assert all(p is not None and p.edge for p in map(catalog.provider_for_asn, (20940, 16625, 54113, 15169)))
    aws = catalog.provider_for_asn(16509)
    assert aws is not None and aws.id == "aws" and not aws.edge  # AWS's network is not only CloudFront
    assert catalog.provider_for_asn(64512) is None


# --------------------------------------------------------------------------- specific facts


def test_bedrock_in_frankfurt(catalog: Catalog) -> None:
    m = _m(catalog, "bedrock-runtime.eu-central-1.amazonaws.com")
    assert (m.provider, m.seat, m.region, m.region_country) == ("AWS", "US", "eu-central-1", "DE")
    assert m.legal_entity == "Amazon Web Services, Inc." and not m.edge
    assert m.location.startswith(f"{PROVIDERS}:")


def test_vertex_regional_and_multiregion(catalog: Catalog) -> None:
    assert _m(catalog, "europe-west4-aiplatform.googleapis.com").region_country == "NL"
    eu = _m(catalog, "aiplatform.eu.rep.googleapis.com")
    assert (eu.region, eu.region_country) == ("eu", "EU")
    glob = _m(catalog, "aiplatform.googleapis.com")
    assert glob.provider == eu.provider and glob.region_country is None


def test_openai_eu_and_global_same_provider(catalog: Catalog) -> None:
    eu, glob = _m(catalog, "eu.api.openai.com"), _m(catalog, "api.openai.com")
    assert eu.region_country == "EU" and glob.region_country == "US"
    assert eu.provider_id == glob.provider_id == "openai" and eu.seat == "US"
    assert eu.eea_entity == "OpenAI Ireland Ltd"
    assert _m(catalog, "au.api.openai.com").region_country is None  # storage only, no regional processing


def test_mistral_eu(catalog: Catalog) -> None:
    m = _m(catalog, "api.eu.mistral.ai")
    assert (m.provider, m.seat, m.region_country, m.dpf_status) == ("Mistral AI", "FR", "EU", "not-applicable")


def test_sentry_and_datadog_eu(catalog: Catalog) -> None:
    for host in ("de.sentry.io", "o123.ingest.de.sentry.io", "api.datadoghq.eu"):
        assert _m(catalog, host).region_country == "DE", host
    assert _m(catalog, "o123.ingest.sentry.io").region_country == "US"
    assert _m(catalog, "api.datadoghq.com").region_country == "US"
    assert _m(catalog, "api.ap1.datadoghq.com").region_country == "JP"


def test_cdn_hosts_are_edges(catalog: Catalog) -> None:
    for host in ("x.cloudfront.net", "e1.a.akamaiedge.net", "a.b.fastly.net", "x.azurefd.net", "y.cdn.cloudflare.net"):
        assert _m(catalog, host).edge, host
    assert not _m(catalog, "api.stripe.com").edge


def test_dpf_only_where_a_source_says_so(catalog: Catalog) -> None:
    certified = {p.id for p in catalog.providers if p.dpf.status == "certified"}
    assert certified == {"stripe", "segment", "datadog", "sentry"}
    assert all(p.dpf.source for p in catalog.providers if p.dpf.status == "certified")
    assert _m(catalog, "api.anthropic.com").dpf_status == "not-listed"
    assert _m(catalog, "api.openai.com").dpf_status == "unknown"


def test_case_and_trailing_dot(catalog: Catalog) -> None:
    assert _m(catalog, "API.OpenAI.com.").location == _m(catalog, "api.openai.com").location
    assert _m(catalog, " BEDROCK-RUNTIME.EU-CENTRAL-1.AMAZONAWS.COM ").region == "eu-central-1"


@pytest.mark.parametrize(
    "host", ["notopenai.com", "api.openai.com.evil.example", "openai.com.evil", "cloudfront.net", "", "10.0.0.1"]
)
def test_lookalikes_do_not_match(catalog: Catalog, host: str) -> None:
    assert catalog.match(host) is None


def test_uncertainty_is_carried(catalog: Catalog) -> None:
    th = _m(catalog, "asia-southeast3-aiplatform.googleapis.com")
    assert th.region_country == "TH" and th.uncertain  # the region entry is uncertain
    new = _m(catalog, "bedrock-runtime.xx-future-9.amazonaws.com")
    assert (new.region, new.region_country, new.uncertain) == ("xx-future-9", None, True)
    assert new.note and "not in the aws region table" in new.note
    assert _m(catalog, "ws1.eu-central-1.maas.aliyuncs.com").uncertain
    assert not _m(catalog, "eu.api.openai.com").uncertain


def test_match_is_frozen(catalog: Catalog) -> None:
    m = _m(catalog, "api.stripe.com")
    with pytest.raises(dataclasses.FrozenInstanceError):
        m.seat = "IE"  # type: ignore[misc]


# --------------------------------------------------------------------------- matching rules (tmp catalogs)


def _mini(tmp_path: Path, providers: str) -> Path:
    root = tmp_path / "rules" / "catalog"
    root.mkdir(parents=True)
    shutil.copy(CATALOG / "regions.yaml", root / "regions.yaml")
    head = 'catalog: {version: "t.1", checked: 2026-11-22}\nproviders:\n'
    (root / "providers.yaml").write_text(head + textwrap.dedent(providers), encoding="utf-8")
    return root


def _provider(pid: str, hosts: str, seat: str = "US") -> str:
    return textwrap.indent(
        f"- id: {pid}\n  name: {pid}\n  legal_entity: {pid} Inc.\n  seat: {seat}\n  kind: saas\n"
        f"  dpf: {{status: unknown, checked_on: 2026-11-22}}\n  source: test\n  hosts:\n"
        + textwrap.indent(textwrap.dedent(hosts), "    "),
        "  ",
    )


def test_most_specific_pattern_wins(tmp_path: Path) -> None:
    root = _mini(
        tmp_path,
        _provider("wide", '- {pattern: "*.openai.com", examples: [x.openai.com, a.b.openai.com]}\n')
        + _provider(
            "narrow",
            '- {pattern: "eu.api.openai.com", region: eu, processing_country: EU, examples: [eu.api.openai.com]}\n'
            '- {pattern: "*.api.openai.com", examples: [x.api.openai.com]}\n'
            '- {pattern: "o{any}.ingest.openai.com", examples: [o12.ingest.openai.com]}\n',
        ),
    )
    c = load_catalog(root)
    assert c.version.startswith("t.1+")
    assert _m(c, "eu.api.openai.com").provider_id == "narrow" and _m(c, "eu.api.openai.com").region_country == "EU"
    assert _m(c, "y.api.openai.com").provider_id == "narrow"  # *.api.openai.com has more literal characters
    assert _m(c, "o9.ingest.openai.com").provider_id == "narrow"
    assert _m(c, "api.openai.com").provider_id == "wide"
    assert _m(c, "a.b.c.openai.com").provider_id == "wide"  # * spans several labels
    assert c.match("openai.com") is None  # * is at least one label


def test_shadowed_example_is_reported(tmp_path: Path) -> None:
    root = _mini(
        tmp_path,
        _provider("wide", '- {pattern: "*.example.com", examples: [eu.api.example.com]}\n')
        + _provider("narrow", '- {pattern: "eu.api.example.com", examples: [eu.api.example.com]}\n'),
    )
    with pytest.raises(ConfigError) as exc:
        load_catalog(root)
    assert any("resolves to 'eu.api.example.com'" in p.message for p in exc.value.problems)


@pytest.mark.parametrize(
    ("pattern", "fragment"),
    [
        ("o*.ingest.de.sentry.io", "whole labels"),
        ("api.{regoin}.example.com", "unknown placeholder"),
        ("*.example.*", "last label must be literal"),
        ("API.example.com", "lower case"),
        ("{region}.{region}.example.com", "at most one"),
    ],
)
def test_bad_patterns_are_rejected(tmp_path: Path, pattern: str, fragment: str) -> None:
    host = f'- {{pattern: "{pattern}", region_table: aws, examples: [a.example.com]}}\n'
    root = _mini(tmp_path, _provider("p", host))
    with pytest.raises(ConfigError) as exc:
        load_catalog(root)
    assert any(fragment in p.message for p in exc.value.problems), exc.value


def test_certified_needs_a_source_and_not_applicable_needs_a_foreign_seat(tmp_path: Path) -> None:
    text = _provider("a", '- {pattern: "a.example.com", examples: [a.example.com]}\n') + _provider(
        "b", '- {pattern: "b.example.com", examples: [b.example.com]}\n'
    )
    text = text.replace("{status: unknown, checked_on: 2026-11-22}", "{status: certified, checked_on: 2026-11-22}", 1)
    text = text.replace("status: unknown", "status: not-applicable", 1)
    with pytest.raises(ConfigError) as exc:
        load_catalog(_mini(tmp_path, text))
    messages = " | ".join(p.message for p in exc.value.problems)
    assert "needs a source" in messages and "seated outside the US" in messages


def test_missing_file(tmp_path: Path) -> None:
    (tmp_path / "catalog").mkdir()
    with pytest.raises(ConfigError) as exc:
        load_catalog(tmp_path / "catalog")
    assert len(exc.value.problems) == 2 and all("missing" in p.message for p in exc.value.problems)


# --------------------------------------------------------------------------- a broken copy: every error at once


def _edit(root: Path, old: str, new: str) -> int:
    """Replace `old` (exactly once) in providers.yaml; returns the 1-based line of the edit."""
    path = root / "providers.yaml"
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times"
    path.write_text(text.replace(old, new), encoding="utf-8")
    return text[: text.index(old)].count("\n") + 1


def _at(problems: list[Problem], line: int, fragment: str) -> Problem:
    hits = [p for p in problems if p.location and p.location.file == PROVIDERS and p.location.line == line
            and fragment in p.message]
    assert hits, f"no problem at {PROVIDERS}:{line} containing {fragment!r}; got:\n" + "\n".join(map(str, problems))
    return hits[0]


def test_broken_copy_reports_every_mistake_located(tmp_path: Path) -> None:
    root = tmp_path / "rules" / "catalog"
    shutil.copytree(CATALOG, root)
    typo = _edit(root, '    legal_entity: "Anthropic PBC"', '    legal_entty: "Anthropic PBC"')
    seat = _edit(root, "    seat: CA\n", "    seat: USA\n")
    table = _edit(root, '"bedrock-agent.{region}.amazonaws.com"\n        region_table: aws',
                  '"bedrock-agent.{region}.amazonaws.com"\n        region_table: awz') + 1
    example = _edit(root, "examples: [api.groq.com]", "examples: [api.groq.co]")
    dup = _edit(root, "  - id: together\n", "  - id: groq\n")
    with pytest.raises(ConfigError) as exc:
        load_catalog(root)
    problems = exc.value.problems
    assert _at(problems, typo, "unknown key 'legal_entty'").hint == "did you mean 'legal_entity'?"
    _at(problems, seat, "seat")
    assert _at(problems, table, "unknown region table 'awz'").hint == "did you mean 'aws'?"
    _at(problems, example, "example 'api.groq.co' does not match")
    _at(problems, dup, "provider id 'groq' is defined twice")
    assert str(exc.value).count("\n") + 1 == len(problems) >= 5
