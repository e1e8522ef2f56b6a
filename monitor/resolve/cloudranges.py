"""Resolve stage: the clouds' published IP range files (AWS, GCP, Azure) tell provider, region and service per IP."""

from __future__ import annotations

import ipaddress
import json
import socket
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from monitor.errors import DataSourceError

PROVIDERS = ("aws", "gcp", "azure")
GLOBAL = "global"
TOP = "top level"
MAX_REPORTED = 20
FORMAT_NAMES = {"aws": "AWS ip-ranges.json", "gcp": "Google Cloud cloud.json", "azure": "Azure Service Tags"}
_V4_MAPPED = b"\x00" * 10 + b"\xff\xff"


@dataclass(frozen=True)
class RangeHit:
    """The most specific published range that contains an IP.

    region is the provider's own region name, or "global" for ranges the provider publishes as not
    tied to one region (AWS "GLOBAL", Google "global", Azure tags with an empty region).
    """

    provider: str
    region: str | None
    service: str | None
    prefix: str
    source: str


class _Raw(NamedTuple):
    """One prefix as a parser read it, before the CIDR itself is checked."""

    where: str
    cidr: object
    version: int | None
    region: str
    service: str
    regional: bool
    rank: tuple[int, int]


class _Entry(NamedTuple):
    rank: tuple[int, int]
    regional: bool
    region: str
    service: str
    provider: str
    prefix: str
    source: str


class _Problems(list[str]):
    """Every bad entry of one file, so the operator sees them all in one error."""

    def add(self, where: str, message: str) -> None:
        self.append(f"{where}: {message}")

    def render(self) -> str:
        lines = [f"{len(self)} bad entr{'y' if len(self) == 1 else 'ies'}:", *(f"  {p}" for p in self[:MAX_REPORTED])]
        return "\n".join(lines + ([f"  ... and {len(self) - MAX_REPORTED} more"] if len(self) > MAX_REPORTED else []))


_KINDS: dict[type, str] = {dict: "an object", list: "an array", str: "a string", type(None): "null", bool: "a boolean"}


def _kind(value: object) -> str:
    return _KINDS.get(type(value), type(value).__name__)


def _get(obj: dict[str, Any], key: str, where: str, problems: _Problems, typ: type, required: bool = True) -> Any:
    """obj[key] if it is of type typ; otherwise note the problem and return None."""
    if key not in obj:
        if required:
            problems.add(where, f"missing key '{key}'")
        return None
    value = obj[key]
    if not isinstance(value, typ):
        problems.add(key if where == TOP else f"{where}.{key}", f"expected {_KINDS[typ]}, got {_kind(value)}")
        return None
    return value


def _stamp(doc: dict[str, Any], key: str, problems: _Problems) -> str:
    value = doc.get(key)
    if isinstance(value, str | int) and not isinstance(value, bool):
        return f"{key} {value}"
    _get(doc, key, TOP, problems, str)
    return f"{key} ?"


def _objects(items: list[Any], list_where: str, problems: _Problems) -> Iterator[tuple[str, dict[str, Any]]]:
    for i, item in enumerate(items):
        where = f"{list_where}[{i}]"
        if isinstance(item, dict):
            yield where, item
        else:
            problems.add(where, f"expected an object, got {_kind(item)}")


def _aws(doc: dict[str, Any], problems: _Problems) -> Iterator[_Raw]:
    for list_key, cidr_key, version in (("prefixes", "ip_prefix", 4), ("ipv6_prefixes", "ipv6_prefix", 6)):
        items = _get(doc, list_key, TOP, problems, list, required=list_key == "prefixes") or []
        for where, item in _objects(items, list_key, problems):
            if cidr_key not in item:
                problems.add(where, f"missing key '{cidr_key}'")
            region = _get(item, "region", where, problems, str)
            service = _get(item, "service", where, problems, str)
            if cidr_key not in item or region is None or service is None:
                continue
            regional = region.upper() != "GLOBAL"
            # AWS lists most prefixes once under the umbrella "AMAZON" and again as EC2, S3, ...
            yield _Raw(
                f"{where}.{cidr_key}",
                item[cidr_key],
                version,
                region if regional else GLOBAL,
                service,
                regional,
                (int(service.upper() != "AMAZON"), int(regional)),
            )


def _gcp(doc: dict[str, Any], problems: _Problems) -> Iterator[_Raw]:
    for where, item in _objects(_get(doc, "prefixes", TOP, problems, list) or [], "prefixes", problems):
        keys = [k for k in ("ipv4Prefix", "ipv6Prefix") if k in item]
        if len(keys) != 1:
            problems.add(where, "expected exactly one of 'ipv4Prefix' or 'ipv6Prefix'")
        service = _get(item, "service", where, problems, str)
        scope = _get(item, "scope", where, problems, str)
        if len(keys) != 1 or service is None or scope is None:
            continue
        regional = scope.lower() != GLOBAL
        yield _Raw(
            f"{where}.{keys[0]}",
            item[keys[0]],
            4 if keys[0] == "ipv4Prefix" else 6,
            scope if regional else GLOBAL,
            service,
            regional,
            (int(regional), 0),
        )


def _azure(doc: dict[str, Any], problems: _Problems) -> Iterator[_Raw]:
    for where, item in _objects(_get(doc, "values", TOP, problems, list) or [], "values", problems):
        name = _get(item, "name", where, problems, str)
        props = _get(item, "properties", where, problems, dict)
        if props is None:
            continue
        pwhere = f"{where}.properties"
        region = _get(props, "region", pwhere, problems, str)
        system = _get(props, "systemService", pwhere, problems, str, required=False) or ""
        cidrs = _get(props, "addressPrefixes", pwhere, problems, list)
        if name is None or region is None or cidrs is None:
            continue
        # One prefix sits in AzureCloud, AzureCloud.<region> and service tags alike: the regional
        # tag says where it is, so it outranks every global tag; a service tag outranks AzureCloud.
        rank = (int(bool(region)), int(bool(system)))
        for j, cidr in enumerate(cidrs):
            yield _Raw(f"{pwhere}.addressPrefixes[{j}]", cidr, None, region or GLOBAL, name, bool(region), rank)


PARSERS: dict[str, Callable[[dict[str, Any], _Problems], Iterator[_Raw]]] = {"aws": _aws, "gcp": _gcp, "azure": _azure}
# The file's own version stamp: AWS and Google publish strings, Azure integers.
STAMPS = {"aws": ("syncToken", "createDate"), "gcp": ("syncToken", "creationTime"), "azure": ("changeNumber", "cloud")}


def detect_format(doc: object) -> str | None:
    """Which provider's format a parsed document is in, judged by its keys; None when none fits."""
    if not isinstance(doc, dict):
        return None
    if "values" in doc and ("cloud" in doc or "changeNumber" in doc):
        return "azure"
    if "createDate" in doc or "ipv6_prefixes" in doc:
        return "aws"
    if "creationTime" in doc:
        return "gcp"
    first = doc.get("prefixes")
    first = first[0] if isinstance(first, list) and first else None
    if isinstance(first, dict):
        if "ip_prefix" in first:
            return "aws"
        if "ipv4Prefix" in first or "ipv6Prefix" in first:
            return "gcp"
    return "azure" if "values" in doc else None


def _parse_cidr(value: object, version: int | None) -> tuple[int, int, int, str] | str:
    """(ip version, prefix length, network bits, normalised prefix), or what is wrong with it."""
    if not isinstance(value, str):
        return f"expected a CIDR string, got {_kind(value)}"
    addr, sep, length = value.partition("/")
    try:
        if not sep or not (length.isascii() and length.isdigit()) or "%" in addr:
            raise ValueError(value)
        ip = ipaddress.ip_address(addr)
        plen = int(length)
        if plen > ip.max_prefixlen:
            raise ValueError(value)
    except ValueError:
        return f"{value!r} is not a CIDR"
    if version is not None and ip.version != version:
        return f"{value!r} is not an IPv{version} CIDR"
    shift = ip.max_prefixlen - plen
    net = int(ip) >> shift
    return ip.version, plen, net, f"{type(ip)(net << shift)}/{plen}"


def _read(path: Path) -> dict[str, Any]:
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except FileNotFoundError as exc:
        raise DataSourceError("cloud IP range file not found", str(path)) from exc
    except OSError as exc:
        raise DataSourceError(f"cannot read cloud IP range file: {exc.strerror or exc}", str(path)) from exc
    except UnicodeDecodeError as exc:
        raise DataSourceError(f"not UTF-8 text (byte {exc.start}): not a cloud IP range JSON file", str(path)) from exc
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataSourceError(f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}", str(path)) from exc
    except RecursionError as exc:
        raise DataSourceError("invalid JSON: nested too deeply", str(path)) from exc
    if not isinstance(doc, dict):
        raise DataSourceError(f"expected a JSON object at the top level, got {_kind(doc)}", str(path))
    return doc


def _merge(old: _Entry, new: _Entry) -> _Entry:
    """Two entries for one prefix: the better ranked wins (the first on a tie) and, when both are the
    same provider's, takes the other's region if it has none of its own."""
    win, lose = (new, old) if new.rank > old.rank else (old, new)
    if lose.regional and not win.regional and win.provider == lose.provider:
        return win._replace(regional=True, region=lose.region)
    return win


class CloudRanges:
    """Longest-prefix match over the loaded range files: per IP version, one dict per prefix length."""

    def __init__(self, sources: Iterable[tuple[str, str | Path]]) -> None:
        self.versions: dict[str, str] = {}
        build: dict[int, dict[int, dict[int, _Entry]]] = {4: {}, 6: {}}
        for provider, path in sources:
            self._load(provider, Path(path), build)
        self._count = sum(len(table) for by_len in build.values() for table in by_len.values())
        # (shift, {network bits: hit}) longest prefix first: the first table that answers wins.
        self._tables: dict[int, list[tuple[int, dict[int, RangeHit]]]] = {
            version: [
                (
                    bits - plen,
                    {
                        net: RangeHit(e.provider, e.region, e.service, e.prefix, e.source)
                        for net, e in by_len[plen].items()
                    },
                )
                for plen in sorted(by_len, reverse=True)
            ]
            for version, bits, by_len in ((4, 32, build[4]), (6, 128, build[6]))
        }

    def _load(self, provider: str, path: Path, build: dict[int, dict[int, dict[int, _Entry]]]) -> None:
        if provider not in (*PROVIDERS, "auto"):
            raise DataSourceError(
                f"unknown provider '{provider}' (expected one of {', '.join(PROVIDERS)}, auto)", str(path)
            )
        doc = _read(path)
        detected = detect_format(doc)
        if detected is None and provider == "auto":
            raise DataSourceError(
                "not a known cloud IP range format: expected AWS ip-ranges.json (syncToken, createDate, prefixes), "
                "Google Cloud cloud.json (syncToken, creationTime, prefixes) or Azure Service Tags "
                f"(changeNumber, cloud, values); found keys {sorted(doc)[:10]}",
                str(path),
            )
        if detected is not None and provider not in ("auto", detected):
            raise DataSourceError(
                f"configured as provider '{provider}' ({FORMAT_NAMES[provider]}) but the file is "
                f"in the {FORMAT_NAMES[detected]} format",
                str(path),
            )
        provider = detected if provider == "auto" and detected else provider
        problems = _Problems()
        source = f"{path.name} ({', '.join(_stamp(doc, key, problems) for key in STAMPS[provider])})"
        # Azure repeats each prefix in several tags: parse each string once.
        cache: dict[tuple[str, int | None], tuple[int, int, int, str] | str] = {}
        for raw in PARSERS[provider](doc, problems):
            key = (raw.cidr, raw.version) if isinstance(raw.cidr, str) else None
            parsed = cache.get(key) if key else None
            if parsed is None:
                parsed = _parse_cidr(raw.cidr, raw.version)
                if key:
                    cache[key] = parsed
            if isinstance(parsed, str):
                problems.add(raw.where, parsed)
                continue
            # build is thrown away if any file fails, so entries can go straight in.
            version, plen, net, prefix = parsed
            entry = _Entry(raw.rank, raw.regional, raw.region, raw.service, provider, prefix, source)
            table = build[version].setdefault(plen, {})
            old = table.get(net)
            table[net] = entry if old is None else _merge(old, entry)
        if problems:
            raise DataSourceError(problems.render(), str(path))
        self.versions[provider] = f"{self.versions[provider]}; {source}" if provider in self.versions else source

    def __len__(self) -> int:
        """Distinct prefixes held (a prefix listed under several services or tags counts once)."""
        return self._count

    def lookup(self, ip: str) -> RangeHit | None:
        """The longest loaded prefix containing ip; None when none does or ip is not an IP address."""
        try:
            value, version = int.from_bytes(socket.inet_pton(socket.AF_INET, ip), "big"), 4
        except (OSError, TypeError, ValueError):
            try:
                packed = socket.inet_pton(socket.AF_INET6, ip)
            except (OSError, TypeError, ValueError):
                return None
            # ::ffff:a.b.c.d is the IPv4 host seen through a dual-stack socket.
            value, version = (
                (int.from_bytes(packed[12:], "big"), 4)
                if packed[:12] == _V4_MAPPED
                else (int.from_bytes(packed, "big"), 6)
            )
        for shift, table in self._tables[version]:
            hit = table.get(value >> shift)
            if hit is not None:
                return hit
        return None
