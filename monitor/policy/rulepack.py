"""Loads and validates the rule pack under rules/ (all files at once), hashing it for provenance."""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, cast

from pydantic import BaseModel, Field, model_validator

from monitor import yamlsrc
from monitor.errors import ConfigError, Location, Problem
from monitor.policy.register import ISO2, Strict

Outcome = Literal["permitted", "unauthorized", "review", "out_of_scope"]
SeverityName = Literal["info", "low", "medium", "high", "critical"]


class PackInfo(Strict):
    name: str
    version: str
    status_date: dt.date
    sources: str | None = None


class PackFile(Strict):
    pack: PackInfo


class Member(Strict):
    code: ISO2
    name: str
    note: str | None = None


class Territory(Strict):
    code: ISO2
    name: str
    treat_as: Literal["eea", "third_country", "review"]
    part_of: ISO2 | None = None
    source: str
    uncertain: bool = False


class EeaBlock(Strict):
    members: list[Member]


class ReviewPlace(Strict):
    name: str
    country: ISO2
    cities: list[str] = Field(min_length=1)
    source: str
    uncertain: bool = False


class Transitional(Strict):
    """A state treated as inside the EEA for a while after leaving (no transfer until `until`)."""

    code: ISO2
    until: dt.date
    source: str
    uncertain: bool = False


class EeaFile(Strict):
    eea: EeaBlock
    transitional: list[Transitional] = []
    territories: list[Territory] = []
    review_places: list[ReviewPlace] = []


class Decision(Strict):
    id: str
    country: ISO2
    instrument: str
    in_force_from: dt.date
    in_force_until: dt.date | None = None
    scope: Literal["full", "conditional", "certified"]
    condition: str | None = None
    certification: Literal["safe-harbour", "privacy-shield", "dpf"] | None = None
    note: str | None = None
    uncertain: bool = False

    @model_validator(mode="after")
    def _consistent(self) -> Decision:
        if self.scope == "conditional" and not self.condition:
            raise ValueError("scope 'conditional' needs a 'condition'")
        if self.scope == "certified" and not self.certification:
            raise ValueError("scope 'certified' needs a 'certification'")
        if self.in_force_until and self.in_force_until < self.in_force_from:
            raise ValueError("in_force_until is before in_force_from")
        return self


class AdequacyFile(Strict):
    decisions: list[Decision]


CheckName = Literal[
    "no_personal_data",
    "internal_destination",
    "same_legal_entity",
    "country_unknown",
    "recipient_in_eea",
    "territory_review",
    "adequacy",
    "adequacy_scope_unconfirmed",
    "scc_on_file",
    "bcr_on_file",
    "derogation_on_file",
    "derogation_beyond_limits",
    "waiver_on_file",
    "unknown_data_categories",
    "always",
]


class StepDef(Strict):
    id: str
    check: CheckName
    outcome: Outcome
    article: str | None = None
    basis: str
    severity: SeverityName | None = None  # instead of the severity table's value for the outcome


class UnauthorizedSeverity(Strict):
    by_category: dict[str, SeverityName] = {}
    default: SeverityName = "high"


class SeverityTable(Strict):
    permitted: SeverityName = "info"
    out_of_scope: SeverityName = "info"
    review: SeverityName = "medium"
    unauthorized: UnauthorizedSeverity = UnauthorizedSeverity()


class SccVersion(Strict):
    version: Literal["2021/914", "2010/87", "2001/497", "2004/915"]
    instrument: str
    signed_from: dt.date | None = None
    signed_until: dt.date | None = None  # last day a contract on this version could be signed
    usable_from: dt.date | None = None  # first day transfers could rely on this version
    valid_until: dt.date | None = None  # last day such a contract covers transfers


class SccFile(Strict):
    scc: list[SccVersion]


class SupplierCheck(Strict):
    id: str
    article: str
    outcome: Outcome
    basis: str
    review_overdue_basis: str


class Nis2Block(Strict):
    instrument: str
    applies_from: dt.date
    supplier_check: SupplierCheck


class Clock(Strict):
    id: str
    instrument: str
    applies_to: Literal["nis2", "gdpr"]
    from_: Literal["aware", "notified"] = Field(alias="from")
    hours: int | None = None
    months: int | None = None
    what: str

    @model_validator(mode="after")
    def _one_span(self) -> Clock:
        if (self.hours is None) == (self.months is None):
            raise ValueError("give exactly one of 'hours' or 'months'")
        return self


class Nis2File(Strict):
    nis2: Nis2Block
    clocks: list[Clock]


class Chapter5File(Strict):
    procedure: list[StepDef] = Field(min_length=1)
    non_personal_categories: list[str]
    severity: SeverityTable


@dataclass(frozen=True)
class Located:
    """A rule's file:line, shown on every verdict that rests on it."""

    where: str


@dataclass(frozen=True)
class RulePack:
    info: PackInfo
    hash: str
    eea: frozenset[str]
    territories: dict[str, Territory]
    review_places: tuple[ReviewPlace, ...]
    transitional: dict[str, Transitional]
    decisions: tuple[Decision, ...]
    procedure: tuple[StepDef, ...]
    non_personal: frozenset[str]
    severity: SeverityTable
    scc: dict[str, SccVersion]
    nis2: Nis2Block
    clocks: tuple[Clock, ...]
    locations: dict[str, str]  # rule id -> "rules/…:line"

    def in_eea(self, country: str) -> bool | None:
        # "EU": a multi-region or data zone whose members are all EU states (catalog data)
        if country in self.eea or country == "EU":
            return True
        t = self.territories.get(country)
        if t is not None:
            return {"eea": True, "third_country": False}.get(t.treat_as)
        return False

    def in_eea_on(self, country: str, day: dt.date) -> bool | None:
        t = self.transitional.get(country)
        if t is not None and day <= t.until:
            return True
        return self.in_eea(country)

    def review_place(self, country: str | None, city: str | None) -> ReviewPlace | None:
        if not country or not city:
            return None
        c = city.casefold()
        for p in self.review_places:
            if p.country == country and any(c == x.casefold() for x in p.cities):
                return p
        return None

    def decisions_for(self, country: str) -> list[Decision]:
        return [d for d in self.decisions if d.country == country]


FILES: dict[str, type[BaseModel]] = {
    "pack.yaml": PackFile,
    "gdpr/eea.yaml": EeaFile,
    "gdpr/adequacy.yaml": AdequacyFile,
    "gdpr/chapter5.yaml": Chapter5File,
    "gdpr/scc.yaml": SccFile,
    "nis2/nis2.yaml": Nis2File,
}


def pack_hash(root: Path) -> str:
    """sha256 over every rules file's relative path and bytes, in path order."""
    h = hashlib.sha256()
    for p in sorted(root.rglob("*.yaml")):
        if p.relative_to(root).parts[0] == "tests":  # policy test cases are not rules
            continue
        h.update(p.relative_to(root).as_posix().encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()


def _display(root: Path, rel: str) -> str:
    # the shipped pack reads rules/… whether it runs from a checkout or an installed wheel
    return f"rules/{rel}" if root.name in ("rules", "_rules") else str(root / rel)


def load_pack(root: Path) -> RulePack:
    """Validate every file of the pack; all problems are reported together."""
    problems: list[Problem] = []
    parsed: dict[str, tuple[BaseModel, yamlsrc.Sourced]] = {}
    sources: dict[str, yamlsrc.Sourced] = {}
    for rel, model in FILES.items():
        path = root / rel
        if not path.is_file():
            problems.append(Problem("rule file missing", Location(str(path))))
            continue
        try:
            src = yamlsrc.load(path, display=_display(root, rel))
            sources[rel] = src
            parsed[rel] = (yamlsrc.validate(src, model), src)
        except ConfigError as exc:
            problems.extend(exc.problems)

    # Rule ids are checked on the raw data, across files, so a clash is reported together
    # with every schema problem rather than only once those are fixed.
    locations: dict[str, str] = {}
    for rel, key in (("gdpr/adequacy.yaml", "decisions"), ("gdpr/chapter5.yaml", "procedure")):
        src_ = sources.get(rel)
        items = src_.data.get(key) if src_ is not None and isinstance(src_.data, dict) else None
        for i, item in enumerate(items if isinstance(items, list) else []):
            rule_id = item.get("id") if isinstance(item, dict) else None
            if not isinstance(rule_id, str) or src_ is None:
                continue
            loc = src_.where((key, i))
            if rule_id in locations:
                problems.append(Problem(f"rule id '{rule_id}' is used twice", loc, f"first at {locations[rule_id]}"))
            else:
                locations[rule_id] = f"{loc.file}:{loc.line}"
    if problems:
        raise ConfigError(problems)

    info = cast(PackFile, parsed["pack.yaml"][0])
    eea_f, eea_src = cast(EeaFile, parsed["gdpr/eea.yaml"][0]), parsed["gdpr/eea.yaml"][1]
    adq_f = cast(AdequacyFile, parsed["gdpr/adequacy.yaml"][0])
    ch5_f, ch5_src = cast(Chapter5File, parsed["gdpr/chapter5.yaml"][0]), parsed["gdpr/chapter5.yaml"][1]
    scc_f = cast(SccFile, parsed["gdpr/scc.yaml"][0])
    nis2_f, nis2_src = cast(Nis2File, parsed["nis2/nis2.yaml"][0]), parsed["nis2/nis2.yaml"][1]
    sc = nis2_src.where(("nis2", "supplier_check", "id"))
    locations[nis2_f.nis2.supplier_check.id] = f"{sc.file}:{sc.line}"
    for i, c in enumerate(nis2_f.clocks):
        loc = nis2_src.where(("clocks", i))
        locations[c.id] = f"{loc.file}:{loc.line}"

    if ch5_f.procedure[-1].check != "always":
        problems.append(
            Problem(
                "the last step must be a catch-all",
                ch5_src.where(("procedure", len(ch5_f.procedure) - 1)),
                "end the procedure with check: always (Art. 44)",
            )
        )
    eea_codes = {m.code for m in eea_f.eea.members}
    for i, t in enumerate(eea_f.territories):
        if t.code in eea_codes:
            problems.append(Problem(f"territory {t.code} is also an EEA member", eea_src.where(("territories", i))))
    if problems:
        raise ConfigError(problems)
    return RulePack(
        info=info.pack,
        hash=pack_hash(root),
        eea=frozenset(eea_codes),
        territories={t.code: t for t in eea_f.territories},
        review_places=tuple(eea_f.review_places),
        transitional={t.code: t for t in eea_f.transitional},
        decisions=tuple(adq_f.decisions),
        procedure=tuple(ch5_f.procedure),
        non_personal=frozenset(ch5_f.non_personal_categories),
        severity=ch5_f.severity,
        scc={v.version: v for v in scc_f.scc},
        nis2=nis2_f.nis2,
        clocks=tuple(nis2_f.clocks),
        locations=locations,
    )
