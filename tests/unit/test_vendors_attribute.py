"""Who receives (vendor by domain suffix or provider name) and who sends (system by user or network)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from monitor import yamlsrc
from monitor.attribute import UNATTRIBUTED, Inventory
from monitor.policy.register import Register, SystemDef, VendorDef
from monitor.policy.vendors import VendorIndex
from monitor.records import Destination


def v(name: str, *domains: str, **extra: Any) -> VendorDef:
    return VendorDef.model_validate({"name": name, "domains": list(domains), **extra})


def to(host: str | None, **extra: Any) -> Destination:
    return Destination(host=host, ip=None, **extra)


GLOBAL = v("Example Global", "example.com")
EU_API = v("Example EU API", "eu.api.example.com")
OTHER = v("Other Corp", "other.net", legal_entity="Other Corp Ireland Ltd")


@pytest.fixture(params=["declared-wide-first", "declared-narrow-first"])
def index(request: pytest.FixtureRequest) -> VendorIndex:
    # the answer must not depend on the order vendors are written in
    vendors = [GLOBAL, EU_API, OTHER] if request.param == "declared-wide-first" else [EU_API, OTHER, GLOBAL]
    return VendorIndex(vendors)


def _name(index: VendorIndex, dest: Destination) -> str | None:
    ref = index.match(dest)
    return ref.vendor.name if ref else None


# --------------------------------------------------------------------------- vendors


@pytest.mark.parametrize(
    ("host", "vendor"),
    [
        ("eu.api.example.com", "Example EU API"),
        ("v2.eu.api.example.com", "Example EU API"),
        ("api.example.com", "Example Global"),
        ("us.api.example.com", "Example Global"),
        ("example.com", "Example Global"),
        ("EU.API.Example.COM", "Example EU API"),
        ("eu.api.example.com.", "Example EU API"),  # fully qualified, trailing dot
    ],
)
def test_longest_domain_suffix_wins(index: VendorIndex, host: str, vendor: str) -> None:
    assert _name(index, to(host)) == vendor


@pytest.mark.parametrize(
    "host", ["notexample.com", "example.com.evil.net", "example.co", "com", "api.other.network", "", None]
)
def test_no_partial_label_matches(index: VendorIndex, host: str | None) -> None:
    assert index.match(to(host)) is None


def test_provider_name_match(index: VendorIndex) -> None:
    assert _name(index, to("cdn.unknown.net", provider="Example Global")) == "Example Global"
    assert _name(index, to(None, provider="example global")) == "Example Global"  # case-insensitive


def test_legal_entity_is_tried_before_provider(index: VendorIndex) -> None:
    # a catalog that says "provider Example Global, legal entity Other Corp" names Other Corp's record
    dest = to("x.unknown.net", legal_entity="Other Corp", provider="Example Global")
    assert _name(index, dest) == "Other Corp"


def test_domain_beats_provider(index: VendorIndex) -> None:
    assert _name(index, to("eu.api.example.com", provider="Other Corp")) == "Example EU API"


def test_unknown_provider(index: VendorIndex) -> None:
    assert index.match(to("x.unknown.net", provider="Nobody Inc.")) is None


def test_domains_are_normalised() -> None:
    idx = VendorIndex([v("Shouty", " .Example.ORG ")])
    assert _name(idx, to("api.example.org")) == "Shouty"


def test_vendor_and_mechanism_locations_from_config(tmp_path: Path) -> None:
    path = tmp_path / "xborder.yaml"
    path.write_text(
        "vendors:\n"
        "  - name: First\n"
        "    domains: [first.example]\n"
        "  - name: Second\n"
        "    domains: [second.example]\n"
        "    mechanisms:\n"
        "      - {type: bcr, approved_on: 2020-01-01}\n"
        "      - type: derogation\n"
        "        point: b\n"
        "        justification: contract\n",
        encoding="utf-8",
    )
    src = yamlsrc.load(path)
    reg = yamlsrc.validate(src, Register)
    ref = VendorIndex(list(reg.vendors), src).match(to("api.second.example"))
    assert ref is not None
    assert ref.where == f"{path}:4:5"
    assert ref.mechanism_where == (f"{path}:7:9", f"{path}:8:9")


def test_locations_without_config() -> None:
    ref = VendorIndex([v("Plain", "plain.example", mechanisms=[{"type": "bcr", "approved_on": "2020-01-01"}])]).match(
        to("plain.example")
    )
    assert ref is not None
    assert ref.where == "vendor 'Plain'"
    assert ref.mechanism_where == ("vendor 'Plain'",)


# --------------------------------------------------------------------------- attribution


def s(
    name: str, *sources: str, users: tuple[str, ...] = (), cats: tuple[str, ...] = ("customer-personal",)
) -> SystemDef:
    return SystemDef(name=name, sources=list(sources), users=list(users), data_categories=list(cats))


SYSTEMS = [
    s("corp", "10.0.0.0/8", cats=("hr",)),
    s("checkout", "10.20.1.0/24", users=("svc-checkout",), cats=("payment",)),
    s("db-host", "10.20.1.5"),
    s("v6-wide", "2001:db8::/32"),
    s("v6-lab", "2001:db8:1::/48", users=("lab-bot",)),
]


@pytest.fixture(params=["as-written", "reversed"])
def inventory(request: pytest.FixtureRequest) -> Inventory:
    return Inventory(SYSTEMS if request.param == "as-written" else list(reversed(SYSTEMS)))


@pytest.mark.parametrize(
    ("ip", "user", "system"),
    [
        ("10.99.0.1", "svc-checkout", "checkout"),  # user beats the /8 network
        ("2001:db8:1::9", "svc-checkout", "checkout"),  # and beats an IPv6 network
        (None, "lab-bot", "v6-lab"),
        ("10.20.1.5", None, "db-host"),  # /32 beats /24 beats /8
        ("10.20.1.6", None, "checkout"),
        ("10.1.2.3", None, "corp"),
        ("10.20.1.5", "someone-else", "db-host"),  # unknown user: fall back to the network
        ("2001:db8:1::5", None, "v6-lab"),
        ("2001:db8:2::5", None, "v6-wide"),
        ("2001:DB8:1:0::5", None, "v6-lab"),
    ],
)
def test_system_for(inventory: Inventory, ip: str | None, user: str | None, system: str) -> None:
    assert inventory.system_for(ip, user).name == system


def test_categories_come_from_the_system(inventory: Inventory) -> None:
    found = inventory.system_for("10.20.1.7", None)
    assert found.data_categories == ("payment",)


@pytest.mark.parametrize(
    ("ip", "user"),
    [
        ("192.168.1.1", None),
        ("2001:db9::1", None),
        (None, None),
        (None, "nobody"),
        ("", None),
        ("not-an-ip", None),
        ("10.20.1.300", None),
        ("10.20.1.0/24", None),
        ("::ffff:zz", None),
    ],
)
def test_unattributed(inventory: Inventory, ip: str | None, user: str | None) -> None:
    found = inventory.system_for(ip, user)
    assert found.name == UNATTRIBUTED
    assert found.data_categories == ("unknown",)


def test_ipv4_address_never_matches_ipv6_network() -> None:
    inv = Inventory([s("v6-all", "::/0")])
    assert inv.system_for("10.0.0.1", None).name == UNATTRIBUTED
    assert inv.system_for("2001:db8::1", None).name == "v6-all"


def test_unattributed_categories_configurable() -> None:
    inv = Inventory(SYSTEMS, unattributed_categories=("personal",))
    assert inv.system_for("192.168.1.1", None).data_categories == ("personal",)


def test_get_by_name(inventory: Inventory) -> None:
    assert inventory.get("checkout").criticality == "normal"
    assert inventory.get("no-such-system").name == UNATTRIBUTED
