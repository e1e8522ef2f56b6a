"""Cloud providers' published IP range files: parsing, longest-prefix match, precedence and errors."""

from __future__ import annotations

import ipaddress
import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.errors import DataSourceError
from monitor.resolve.cloudranges import CloudRanges, RangeHit, detect_format

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "cloud-ranges"
AWS = FIXTURES / "aws-ip-ranges.json"
GCP = FIXTURES / "gcp-cloud.json"
AZURE = FIXTURES / "azure-servicetags.json"


@pytest.fixture(scope="module")
def ranges() -> CloudRanges:
    return CloudRanges([("aws", AWS), ("gcp", GCP), ("azure", AZURE)])


def write(tmp_path: Path, doc: Any, name: str = "ranges.json") -> Path:
    path = tmp_path / name
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc, indent=2))
    return path


def aws_doc(prefixes: list[dict[str, str]], ipv6: list[dict[str, str]] | None = None) -> dict[str, Any]:
    return {"syncToken": "1", "createDate": "2024-01-01-00-00-00", "prefixes": prefixes, "ipv6_prefixes": ipv6 or []}


def aws_entry(cidr: str, region: str = "eu-central-1", service: str = "EC2") -> dict[str, str]:
    return {"ip_prefix": cidr, "region": region, "service": service, "network_border_group": region}


def hit(ranges: CloudRanges, ip: str) -> RangeHit:
    found = ranges.lookup(ip)
    assert found is not None, ip
    return found


# --- each format parses -------------------------------------------------------------------------


def test_aws_format(ranges: CloudRanges) -> None:
    h = hit(ranges, "52.28.1.1")
    assert (h.provider, h.region, h.service, h.prefix) == ("aws", "eu-central-1", "AMAZON", "52.28.0.0/16")
    assert h.source == "aws-ip-ranges.json (syncToken 1718022612, createDate 2024-06-10-12-30-12)"


def test_gcp_format(ranges: CloudRanges) -> None:
    h = hit(ranges, "34.91.200.3")
    assert (h.provider, h.region, h.service, h.prefix) == ("gcp", "europe-west4", "Google Cloud", "34.90.0.0/15")
    assert hit(ranges, "34.1.210.1").region == "me-central2"
    assert hit(ranges, "34.149.9.9").region == "global"
    assert "creationTime 2024-06-10T03:31:01.234567" in h.source


def test_azure_format(ranges: CloudRanges) -> None:
    h = hit(ranges, "13.107.246.10")
    assert (h.provider, h.region, h.service, h.prefix) == ("azure", "global", "AzureFrontDoor.Frontend",
                                                           "13.107.246.0/24")
    assert hit(ranges, "52.137.0.1").service == "AzureCloud"
    assert h.source == "azure-servicetags.json (changeNumber 301, cloud Public)"


def test_versions_and_len(ranges: CloudRanges) -> None:
    assert set(ranges.versions) == {"aws", "gcp", "azure"}
    assert "syncToken 1718022612" in ranges.versions["aws"]
    assert "syncToken 1718015461234" in ranges.versions["gcp"]
    assert "changeNumber 301" in ranges.versions["azure"]
    # AWS 10 distinct prefixes, GCP 8, Azure 8: a prefix under several services or tags counts once
    assert len(ranges) == 10 + 8 + 8


# --- precedence ---------------------------------------------------------------------------------


def test_longest_prefix_wins_with_its_own_region(ranges: CloudRanges) -> None:
    h = hit(ranges, "52.28.128.9")
    assert (h.region, h.service, h.prefix) == ("eu-west-3", "EC2", "52.28.128.0/24")
    assert hit(ranges, "52.28.129.9").prefix == "52.28.0.0/16"


def test_amazon_duplicate_keeps_specific_service(ranges: CloudRanges) -> None:
    # AMAZON listed first, EC2 later
    assert (hit(ranges, "18.157.1.1").service, hit(ranges, "18.157.1.1").region) == ("EC2", "eu-central-1")
    # S3 listed first, AMAZON later: order does not matter
    assert hit(ranges, "3.5.137.1").service == "S3"
    assert (hit(ranges, "13.33.0.1").service, hit(ranges, "13.33.0.1").region) == ("CLOUDFRONT", "global")


def test_amazon_duplicate_keeps_region_of_the_umbrella_entry(tmp_path: Path) -> None:
    path = write(tmp_path, aws_doc([aws_entry("198.51.100.0/24", "eu-west-1", "AMAZON"),
                                    aws_entry("198.51.100.0/24", "GLOBAL", "ROUTE53_HEALTHCHECKS")]))
    h = hit(CloudRanges([("aws", path)]), "198.51.100.7")
    assert (h.service, h.region) == ("ROUTE53_HEALTHCHECKS", "eu-west-1")


def test_azure_regional_tag_beats_global(ranges: CloudRanges) -> None:
    assert (hit(ranges, "13.69.1.1").service, hit(ranges, "13.69.1.1").region) == ("AzureCloud.westeurope",
                                                                                 "westeurope")
    assert (hit(ranges, "13.69.40.7").service, hit(ranges, "13.69.40.7").region) == ("Storage.WestEurope",
                                                                                   "westeurope")
    # a global service tag (Sql) on the same prefix as a regional tag: the regional one is kept
    assert hit(ranges, "20.38.129.1").service == "AzureCloud.westeurope"


def test_ipv6_lookups(ranges: CloudRanges) -> None:
    assert (hit(ranges, "2a05:d014::1").service, hit(ranges, "2a05:d014::1").region) == ("EC2", "eu-central-1")
    assert hit(ranges, "2a05:d014:1f80::5").prefix == "2a05:d014:1f80::/56"
    assert hit(ranges, "2600:9000:1::1").service == "CLOUDFRONT"
    assert hit(ranges, "2600:1900:4060:1::1").region == "europe-west4"
    assert hit(ranges, "2600:1901::1").region == "global"
    assert hit(ranges, "2603:1020:200::1").service == "AzureCloud.westeurope"
    assert ranges.lookup("2001:db8::1") is None


@pytest.mark.parametrize("ip", ["8.8.8.8", "192.0.2.1", "10.0.0.1", "::1", "not-an-ip", "", "52.28.1", "fe80::1%eth0"])
def test_outside_all_ranges_or_not_an_ip(ranges: CloudRanges, ip: str) -> None:
    assert ranges.lookup(ip) is None


def test_ipv4_mapped_ipv6_resolves_as_ipv4(ranges: CloudRanges) -> None:
    assert hit(ranges, "::ffff:52.28.128.9").prefix == "52.28.128.0/24"


def test_host_bits_are_normalised(tmp_path: Path) -> None:
    # AWS's own documentation uses "198.51.100.2/24" as its example
    path = write(tmp_path, aws_doc([aws_entry("198.51.100.2/24")], [
        {"ipv6_prefix": "2001:DB8:1234:0::/64", "region": "eu-central-1", "service": "EC2",
         "network_border_group": "eu-central-1"}]))
    ranges = CloudRanges([("aws", path)])
    assert hit(ranges, "198.51.100.200").prefix == "198.51.100.0/24"
    assert hit(ranges, "2001:db8:1234::9").prefix == "2001:db8:1234::/64"


# --- format detection ---------------------------------------------------------------------------


def test_auto_detection() -> None:
    ranges = CloudRanges([("auto", AWS), ("auto", GCP), ("auto", AZURE)])
    assert set(ranges.versions) == {"aws", "gcp", "azure"}
    for path, provider in ((AWS, "aws"), (GCP, "gcp"), (AZURE, "azure")):
        assert detect_format(json.loads(path.read_text())) == provider


@pytest.mark.parametrize(("provider", "path", "found"), [
    ("aws", GCP, "Google Cloud cloud.json"), ("gcp", AZURE, "Azure Service Tags"), ("azure", AWS, "AWS ip-ranges.json"),
])
def test_provider_format_mismatch(provider: str, path: Path, found: str) -> None:
    with pytest.raises(DataSourceError) as err:
        CloudRanges([(provider, path)])
    assert str(path) in str(err.value) and found in str(err.value) and f"'{provider}'" in str(err.value)


def test_unknown_format_and_provider(tmp_path: Path) -> None:
    path = write(tmp_path, {"hello": "world"})
    with pytest.raises(DataSourceError, match="not a known cloud IP range format"):
        CloudRanges([("auto", path)])
    with pytest.raises(DataSourceError, match="unknown provider 'oracle'"):
        CloudRanges([("oracle", AWS)])


# --- malformed files ----------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataSourceError, match="not found") as err:
        CloudRanges([("aws", tmp_path / "nope.json")])
    assert "nope.json" in str(err.value)


def test_bad_json_reports_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, '{\n  "syncToken": "1",\n  "prefixes": [,]\n}')
    with pytest.raises(DataSourceError, match="line 3 column 16") as err:
        CloudRanges([("auto", path)])
    assert str(path) in str(err.value)


@pytest.mark.parametrize("content", ["[]", '"text"', "\xff\xfe"])
def test_not_an_object(tmp_path: Path, content: str) -> None:
    path = tmp_path / "x.json"
    path.write_bytes(content.encode("latin-1"))
    with pytest.raises(DataSourceError) as err:
        CloudRanges([("aws", path)])
    assert str(path) in str(err.value)


def test_missing_keys(tmp_path: Path) -> None:
    path = write(tmp_path, {"createDate": "2024-01-01-00-00-00", "prefixes": [
        {"ip_prefix": "198.51.100.0/24", "region": "eu-west-1"},
        {"region": "eu-west-1", "service": "EC2"},
        "198.51.100.0/24",
    ]})
    with pytest.raises(DataSourceError) as err:
        CloudRanges([("aws", path)])
    msg = str(err.value)
    assert str(path) in msg
    assert "top level: missing key 'syncToken'" in msg
    assert "prefixes[0]: missing key 'service'" in msg
    assert "prefixes[1]: missing key 'ip_prefix'" in msg
    assert "prefixes[2]: expected an object, got a string" in msg


def test_bad_cidr_names_its_json_path(tmp_path: Path) -> None:
    prefixes = [aws_entry(f"198.51.{i}.0/24") for i in range(17)] + [aws_entry("1.2.3.4/33")]
    path = write(tmp_path, aws_doc(prefixes, [{"ipv6_prefix": "10.0.0.0/8", "region": "GLOBAL", "service": "EC2"}]))
    with pytest.raises(DataSourceError) as err:
        CloudRanges([("aws", path)])
    msg = str(err.value)
    assert msg.startswith(f"{path}: 2 bad entries")
    assert "prefixes[17].ip_prefix: '1.2.3.4/33' is not a CIDR" in msg
    assert "ipv6_prefixes[0].ipv6_prefix: '10.0.0.0/8' is not an IPv6 CIDR" in msg


def test_many_bad_entries_listed_together_up_to_twenty(tmp_path: Path) -> None:
    cidrs: list[object] = ["13.69.0.0/17", "bogus", "13.69.0.0", "300.1.1.0/24", "13.69.0.0/-1", None, 42]
    cidrs += [f"x{i}" for i in range(30)]
    doc = {"changeNumber": 1, "cloud": "Public", "values": [
        {"name": "Broken", "id": "Broken", "properties": {"region": 7, "addressPrefixes": "1.2.3.0/24"}},
        {"name": "AzureCloud", "id": "AzureCloud", "properties": {
            "changeNumber": 1, "region": "", "regionId": 0, "platform": "Azure", "systemService": "",
            "addressPrefixes": cidrs, "networkFeatures": None}},
    ]}
    path = write(tmp_path, doc)
    with pytest.raises(DataSourceError) as err:
        CloudRanges([("azure", path)])
    msg = str(err.value)
    assert f"{path}: 38 bad entries" in msg
    assert "values[1].properties.addressPrefixes[1]: 'bogus' is not a CIDR" in msg
    assert "values[1].properties.addressPrefixes[2]: '13.69.0.0' is not a CIDR" in msg
    assert "values[1].properties.addressPrefixes[3]: '300.1.1.0/24' is not a CIDR" in msg
    assert "values[1].properties.addressPrefixes[5]: expected a CIDR string, got null" in msg
    assert "values[1].properties.addressPrefixes[6]: expected a CIDR string, got int" in msg
    assert "values[0].properties.region: expected a string, got int" in msg
    assert "values[0].properties.addressPrefixes: expected an array, got a string" in msg
    assert msg.count("\n  ") == 21 and msg.endswith("... and 18 more")


def test_gcp_entry_needs_exactly_one_prefix_key(tmp_path: Path) -> None:
    path = write(tmp_path, {"syncToken": "1", "creationTime": "2024-01-01T00:00:00", "prefixes": [
        {"ipv4Prefix": "34.1.0.0/16", "ipv6Prefix": "2600:1900::/28", "service": "Google Cloud", "scope": "global"},
        {"service": "Google Cloud", "scope": "global"},
        {"ipv4Prefix": "2600:1900::/28", "service": "Google Cloud"},
    ]})
    with pytest.raises(DataSourceError) as err:
        CloudRanges([("gcp", path)])
    msg = str(err.value)
    assert "prefixes[0]: expected exactly one of" in msg and "prefixes[1]: expected exactly one of" in msg
    assert "prefixes[2]: missing key 'scope'" in msg


def test_bad_file_loads_nothing_and_names_itself(tmp_path: Path) -> None:
    good = write(tmp_path, aws_doc([aws_entry("198.51.100.0/24")]), "good.json")
    bad = write(tmp_path, aws_doc([aws_entry("198.51.100.0/99")]), "bad.json")
    with pytest.raises(DataSourceError) as err:
        CloudRanges([("aws", good), ("aws", bad)])
    assert err.value.path == str(bad)


def test_two_files_of_one_provider_both_versioned(tmp_path: Path) -> None:
    a = write(tmp_path, aws_doc([aws_entry("198.51.100.0/24")]), "a.json")
    b = write(tmp_path, aws_doc([aws_entry("203.0.113.0/24", "us-east-1")]), "b.json")
    ranges = CloudRanges([("aws", a), ("auto", b)])
    assert ranges.versions["aws"].startswith("a.json (") and "; b.json (" in ranges.versions["aws"]
    assert hit(ranges, "203.0.113.1").region == "us-east-1"


def test_same_prefix_across_providers_keeps_first_and_never_mixes_regions(tmp_path: Path) -> None:
    aws = write(tmp_path, aws_doc([aws_entry("198.51.100.0/24", "GLOBAL", "CLOUDFRONT")]), "aws.json")
    gcp = write(tmp_path, {"syncToken": "1", "creationTime": "2024-01-01T00:00:00", "prefixes": [
        {"ipv4Prefix": "198.51.100.0/24", "service": "Google Cloud", "scope": "europe-west4"}]}, "gcp.json")
    h = hit(CloudRanges([("aws", aws), ("gcp", gcp)]), "198.51.100.1")
    assert (h.provider, h.region, h.service) == ("aws", "global", "CLOUDFRONT")
    assert h.source.startswith("aws.json (")


# --- property: the answer is the longest containing prefix --------------------------------------

V4_NETS = st.builds(lambda a, n: ipaddress.ip_network((a, n), strict=False),
                    st.integers(0x0A000000, 0x0A00FFFF), st.integers(8, 32))
V6_NETS = st.builds(lambda a, n: ipaddress.ip_network((a, n), strict=False),
                    st.integers(0x20010DB8 << 96, (0x20010DB8 << 96) + 0xFFFF), st.integers(16, 128))


@settings(max_examples=60, deadline=None)
@given(nets=st.lists(st.one_of(V4_NETS, V6_NETS), min_size=1, max_size=40, unique=True),
       probes=st.lists(st.one_of(st.integers(0x0A000000, 0x0A00FFFF).map(ipaddress.IPv4Address),
                                 st.integers(0x20010DB8 << 96, (0x20010DB8 << 96) + 0xFFFF).map(ipaddress.IPv6Address)),
                       min_size=1, max_size=30))
def test_lookup_is_longest_containing_prefix(
    nets: list[ipaddress.IPv4Network | ipaddress.IPv6Network],
    probes: list[ipaddress.IPv4Address | ipaddress.IPv6Address],
) -> None:
    v4 = [aws_entry(str(n), f"r{i}") for i, n in enumerate(nets) if n.version == 4]
    v6 = [{"ipv6_prefix": str(n), "region": f"r{i}", "service": "EC2"} for i, n in enumerate(nets) if n.version == 6]
    with tempfile.TemporaryDirectory() as tmp:
        ranges = CloudRanges([("aws", write(Path(tmp), aws_doc(v4, v6)))])
    assert len(ranges) == len(nets)
    for ip in probes + [n.network_address for n in nets] + [n.broadcast_address for n in nets]:
        containing = [n for n in nets if n.version == ip.version and ip in n]
        found = ranges.lookup(str(ip))
        if not containing:
            assert found is None
        else:
            best = max(containing, key=lambda n: n.prefixlen)
            assert found is not None and found.prefix == str(best) and found.region == f"r{nets.index(best)}"
