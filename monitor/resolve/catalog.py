"""Resolve stage: the provider catalog (rules/catalog/) turns a destination hostname into provider, seat and region."""

from __future__ import annotations

import datetime as dt
import difflib
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from monitor import yamlsrc
from monitor.errors import ConfigError, Location, Problem
from monitor.resolve.catalog_schema import (
    _ANY_RE,
    _REGION_RE,
    _STAR_RE,
    FILES,
    CatalogInfo,
    HostDef,
    ProviderDef,
    ProvidersFile,
    RegionDef,
    RegionsFile,
)


@dataclass(frozen=True, slots=True)
class CatalogMatch:
    """What the catalog says about one hostname; `location` is the matching pattern's file:line."""

    provider: str
    provider_id: str
    legal_entity: str
    eea_entity: str | None
    seat: str
    kind: str
    edge: bool
    region: str | None
    region_country: str | None  # the region table's country, else processing_country
    processing_country: str | None
    dpf_status: str
    dpf_checked_on: dt.date
    uncertain: bool
    note: str | None
    location: str
    source: str


@dataclass(frozen=True, slots=True)
class _Rule:
    """One compiled host pattern."""

    provider: ProviderDef
    host: HostDef
    location: str
    path: tuple[str | int, ...]  # of the host entry in providers.yaml
    regex: re.Pattern[str]
    rank: tuple[int, int]  # (literal characters, -placeholders): higher is more specific
    has_region: bool


def _compile(p: str) -> tuple[re.Pattern[str], tuple[int, int]]:
    parts: list[str] = []
    for label in p.split("."):
        if label == "*":
            parts.append(_STAR_RE)
            continue
        tokens = re.split(r"(\{region\}|\{any\})", label)
        parts.append("".join({"{region}": _REGION_RE, "{any}": _ANY_RE}.get(t) or re.escape(t) for t in tokens))
    holes = p.count("*") + p.count("{region}") + p.count("{any}")
    literal = len(p) - p.count("*") - 8 * p.count("{region}") - 5 * p.count("{any}")
    return re.compile(r"\.".join(parts)), (literal, -holes)


def _suffix_key(p: str) -> str:
    """The literal last labels of a pattern: the key of its bucket in the suffix index."""
    labels = p.split(".")
    i = len(labels)
    while i > 0 and labels[i - 1] != "*" and "{" not in labels[i - 1]:
        i -= 1
    return ".".join(labels[i:])


def normalize(host: str) -> str:
    return host.strip().lower().rstrip(".")


class Catalog:
    """Validated provider catalog with an exact-host dict and a suffix index of compiled patterns."""

    def __init__(
        self,
        info: CatalogInfo,
        version: str,
        tables: dict[str, dict[str, RegionDef]],
        providers: Sequence[ProviderDef],
        rules: Sequence[_Rule],
    ) -> None:
        self.info = info
        self.version = version
        self.tables = tables
        self.providers = tuple(providers)
        self._exact: dict[str, _Rule] = {}
        self._suffix: dict[str, list[_Rule]] = {}
        for r in rules:
            if r.rank[1] == 0:
                self._exact[r.host.pattern] = r
            else:
                self._suffix.setdefault(_suffix_key(r.host.pattern), []).append(r)
        for bucket in self._suffix.values():
            bucket.sort(key=lambda r: r.rank, reverse=True)
        self._asn = {a: p for p in self.providers for a in p.asns}
        self._memo: dict[tuple[str, str | None], CatalogMatch] = {}

    def _rule(self, host: str) -> tuple[_Rule, str | None] | None:
        exact = self._exact.get(host)
        if exact is not None:
            return exact, None
        best: _Rule | None = None
        captured: str | None = None
        i = host.find(".")
        while i != -1:
            for r in self._suffix.get(host[i + 1 :], ()):
                if best is not None and r.rank <= best.rank:
                    break  # buckets are sorted: nothing further here can beat the best so far
                m = r.regex.fullmatch(host)
                if m is not None:
                    best, captured = r, (m.group("region") if r.has_region else None)
                    break
            i = host.find(".", i + 1)
        return None if best is None else (best, captured)

    def match(self, host: str) -> CatalogMatch | None:
        """The most specific catalog entry for `host` (any case, trailing dot ignored), or None."""
        found = self._rule(normalize(host))
        if found is None:
            return None
        rule, captured = found
        key = (rule.location, captured)
        cached = self._memo.get(key)
        if cached is None:
            cached = self._result(rule, captured)
            if captured is None or cached.region_country is not None:  # bounded: known regions only
                self._memo[key] = cached
        return cached

    def _result(self, rule: _Rule, captured: str | None) -> CatalogMatch:
        p, h = rule.provider, rule.host
        region = captured if captured is not None else h.region
        table = self.tables.get(h.region_table or "", {})
        rdef = table.get(region) if region is not None and h.region_table else None
        uncertain, note = p.uncertain or h.uncertain, h.note or p.note
        if rdef is not None:
            uncertain = uncertain or rdef.uncertain
        elif h.region_table and region is not None:
            uncertain = True
            note = f"'{region}' is not in the {h.region_table} region table: its country is unknown"
        return CatalogMatch(
            provider=p.name,
            provider_id=p.id,
            legal_entity=p.legal_entity,
            eea_entity=p.eea_entity,
            seat=p.seat,
            kind=p.kind,
            edge=p.edge if h.edge is None else h.edge,
            region=region,
            region_country=rdef.country if rdef is not None else h.processing_country,
            processing_country=h.processing_country,
            dpf_status=p.dpf.status,
            dpf_checked_on=p.dpf.checked_on,
            uncertain=uncertain,
            note=note,
            location=rule.location,
            source=h.source or p.source,
        )

    def region_country(self, table: str, region: str) -> str | None:
        """Country of `region` in `table` (aws, gcp, azure, ...); None when unknown."""
        rdef = self.tables.get(table, {}).get(region.strip().lower())
        return rdef.country if rdef is not None else None

    def provider_for_asn(self, asn: int) -> ProviderDef | None:
        return self._asn.get(asn)


def _display(root: Path, name: str) -> str:
    in_pack = root.name == "catalog" and root.parent.name in ("rules", "_rules")  # checkout or installed wheel
    return f"rules/catalog/{name}" if in_pack else str(root / name)


def _hint(word: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f"did you mean '{close[0]}'?" if close else f"known: {', '.join(sorted(choices)) or '(none)'}"


def _lenient(model: type[BaseModel], data: Any) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError:
        return None  # already reported, located, by the whole-file validation


def _tables(src: yamlsrc.Sourced | None) -> dict[str, dict[str, RegionDef]]:
    """Region tables taken entry by entry, so cross-checks run even when regions.yaml has errors."""
    raw = src.data.get("regions") if src is not None and isinstance(src.data, dict) else None
    out: dict[str, dict[str, RegionDef]] = {}
    for t, entries in (raw if isinstance(raw, dict) else {}).items():
        parsed = {str(r): _lenient(RegionDef, d) for r, d in (entries if isinstance(entries, dict) else {}).items()}
        out[str(t)] = {r: d for r, d in parsed.items() if d is not None}
    return out


def _region_problems(src: yamlsrc.Sourced) -> list[Problem]:
    data = src.data if isinstance(src.data, dict) else {}
    regions, sources = data.get("regions"), data.get("sources")
    hint = "say where the region -> country facts come from"
    return [
        Problem(f"region table '{t}' has no entry in sources", src.where(("regions", t)), hint)
        for t in (regions if isinstance(regions, dict) else {})
        if isinstance(sources, dict) and t not in sources
    ]


def _host_problems(
    src: yamlsrc.Sourced,
    path: tuple[str | int, ...],
    h: HostDef,
    tables: dict[str, dict[str, RegionDef]],
    seen: dict[str, str],
) -> list[Problem]:
    out: list[Problem] = []

    def bad(message: str, key: str | int | tuple[str | int, ...] = "pattern", hint: str | None = None) -> None:
        out.append(Problem(message, src.where(path + (key if isinstance(key, tuple) else (key,))), hint))

    where = src.where(path + ("pattern",))
    if h.pattern in seen:
        bad(f"pattern '{h.pattern}' is listed twice", hint=f"first at {seen[h.pattern]}")
    seen.setdefault(h.pattern, f"{where.file}:{where.line}")
    templated, table = "{region}" in h.pattern, h.region_table
    if templated and not table:
        bad("a {region} pattern needs a region_table", hint=f"one of: {', '.join(sorted(tables))}")
    if templated and h.region:
        bad("give either {region} in the pattern or a literal region, not both")
    if table and not templated and not h.region:
        bad("region_table without a region", "region_table", "add {region} to the pattern or a literal region")
    if table and table not in tables:
        bad(f"unknown region table '{table}'", "region_table", _hint(table, list(tables)))
    elif table and h.region and h.region not in tables[table]:
        bad(
            f"region '{h.region}' is not in the {table} table of regions.yaml",
            "region",
            _hint(h.region, list(tables[table])),
        )
    regex = _compile(h.pattern)[0]
    for k, ex in enumerate(h.examples):
        if not regex.fullmatch(normalize(ex)):
            bad(
                f"example '{ex}' does not match its pattern '{h.pattern}'",
                ("examples", k),
                "fix the example or the pattern",
            )
    return out


def catalog_hash(root: Path) -> str:
    h = hashlib.sha256()
    for name in FILES:
        h.update(name.encode() + b"\0" + (root / name).read_bytes() + b"\0")
    return h.hexdigest()


def load_catalog(root: Path) -> Catalog:
    """Validate regions.yaml and providers.yaml under `root` (rules/catalog); every problem is reported at once."""
    problems: list[Problem] = []
    srcs: dict[str, yamlsrc.Sourced] = {}
    for name in FILES:
        if not (root / name).is_file():
            problems.append(Problem("catalog file missing", Location(str(root / name))))
            continue
        try:
            srcs[name] = yamlsrc.load(root / name, display=_display(root, name))
        except ConfigError as exc:
            problems.extend(exc.problems)
    info = CatalogInfo(version="?", checked=dt.date.min)
    for name, model in (("regions.yaml", RegionsFile), ("providers.yaml", ProvidersFile)):
        try:
            parsed = yamlsrc.validate(srcs[name], model) if name in srcs else None
        except ConfigError as exc:
            problems.extend(exc.problems)
        else:
            info = parsed.catalog if isinstance(parsed, ProvidersFile) else info
    if "regions.yaml" in srcs:
        problems.extend(_region_problems(srcs["regions.yaml"]))
    # Cross-checks run on every entry that validates on its own, so one ConfigError lists
    # schema mistakes and cross-file mistakes together.
    tables = _tables(srcs.get("regions.yaml"))
    src = srcs.get("providers.yaml")
    providers, rules = _walk(src, tables, problems) if src is not None else ([], [])
    catalog = Catalog(info, "", tables, providers, rules)
    if src is not None:
        problems.extend(_shadowed(catalog, rules, src))
    if problems:
        raise ConfigError(sorted(problems, key=_order))
    catalog.version = f"{info.version}+{catalog_hash(root)[:12]}"
    return catalog


def _walk(
    src: yamlsrc.Sourced, tables: dict[str, dict[str, RegionDef]], problems: list[Problem]
) -> tuple[list[ProviderDef], list[_Rule]]:
    """Providers and compiled host rules from the raw data, entry by entry, appending problems."""
    problems.extend(yamlsrc.duplicates(src, "providers", "id", "provider id"))
    raw = src.data.get("providers") if isinstance(src.data, dict) else None
    providers: list[ProviderDef] = []
    rules: list[_Rule] = []
    seen: dict[str, str] = {}
    asns: dict[int, str] = {}
    for i, item in enumerate(raw if isinstance(raw, list) else []):
        prov: ProviderDef | None = _lenient(ProviderDef, item)
        hosts = item.get("hosts") if isinstance(item, dict) else None
        for j, hraw in enumerate(hosts if isinstance(hosts, list) else []):
            h: HostDef | None = _lenient(HostDef, hraw)
            if h is None:
                continue
            path: tuple[str | int, ...] = ("providers", i, "hosts", j)
            problems.extend(_host_problems(src, path, h, tables, seen))
            if prov is not None:
                loc = src.where(path + ("pattern",))
                regex, rank = _compile(h.pattern)
                rules.append(_Rule(prov, h, f"{loc.file}:{loc.line}", path, regex, rank, "{region}" in h.pattern))
        if prov is None:
            continue
        providers.append(prov)
        for k, a in enumerate(prov.asns):
            if a in asns:
                where = src.where(("providers", i, "asns", k))
                problems.append(Problem(f"AS{a} is claimed twice", where, f"first by {asns[a]}: one provider per ASN"))
            asns.setdefault(a, prov.id)
    return providers, rules


def _shadowed(catalog: Catalog, rules: Sequence[_Rule], src: yamlsrc.Sourced) -> list[Problem]:
    """An example that another, more specific pattern captures would never reach its own entry."""
    out: list[Problem] = []
    for r in rules:
        for k, ex in enumerate(r.host.examples):
            if not r.regex.fullmatch(normalize(ex)):
                continue  # reported as a mismatch already
            found = catalog._rule(normalize(ex))
            if found is not None and found[0] is not r:
                msg = f"example '{ex}' resolves to '{found[0].host.pattern}' ({found[0].location}), not this pattern"
                out.append(Problem(msg, src.where(r.path + ("examples", k)), "make the patterns tell these apart"))
    return out


def _order(p: Problem) -> tuple[str, int, int]:
    loc = p.location
    return (loc.file, loc.line or 0, loc.column or 0) if loc else ("", 0, 0)
