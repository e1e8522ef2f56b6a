"""Policy test cases (`xborder rules test FILE`): a stated verdict per case, evaluated as in production."""

from __future__ import annotations

import dataclasses
import datetime as dt
import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from monitor import yamlsrc
from monitor.errors import ConfigError, Problem
from monitor.policy.evaluator import evaluate
from monitor.policy.register import ApprovedSupplier, Register, Strict, SystemDef, VendorDef, WaiverDef
from monitor.policy.rulepack import RulePack
from monitor.policy.vendors import RegisterIndex
from monitor.records import Destination, System, Verdict
from monitor.resolve.jurisdiction import Resolver, judge

DEST_FIELDS = {f.name for f in dataclasses.fields(Destination)} - {"sources", "mmdb_build", "catalog_version"}


class Expect(Strict):
    outcome: Literal["permitted", "unauthorized", "review", "out_of_scope"]
    article: str | None = None  # prefix match: "46" accepts "46(2)(c)"; "" or null: no article
    rule_id: str | None = None
    severity: Literal["info", "low", "medium", "high", "critical"] | None = None


class OrgDef(Strict):
    nis2: Literal["essential", "important", "none"] = "none"


class CaseDef(Strict):
    name: str
    date: dt.date
    system: SystemDef
    destination: dict[str, Any] = Field(min_length=1)
    vendors: list[VendorDef] = []
    waivers: list[WaiverDef] = []
    approved_suppliers: list[ApprovedSupplier] = []
    organisation: OrgDef = OrgDef()
    volume: int | None = None  # requests that day, for derogations with an occasional limit
    expect: Expect


class CaseFile(Strict):
    cases: list[CaseDef] = Field(min_length=1)


@dataclass(frozen=True)
class CaseResult:
    name: str
    passed: bool
    expected: dict[str, Any]
    actual: dict[str, Any]
    where: str
    mismatches: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "passed": self.passed, "expected": self.expected, "actual": self.actual,
                "where": self.where}  # fmt: skip


def load_cases(path: Path) -> tuple[CaseFile, yamlsrc.Sourced]:
    src = yamlsrc.load(path)
    problems: list[Problem] = []
    for i, case in enumerate(src.data.get("cases", []) if isinstance(src.data, dict) else []):
        for key in (case.get("destination") or {}) if isinstance(case, dict) else {}:
            if key not in DEST_FIELDS:
                close = difflib.get_close_matches(str(key), sorted(DEST_FIELDS), n=1)
                hint = f"did you mean '{close[0]}'?" if close else f"allowed: {', '.join(sorted(DEST_FIELDS))}"
                where = src.where(("cases", i, "destination", key))
                problems.append(Problem(f"unknown destination field '{key}'", where, hint))
    try:
        cases = yamlsrc.validate(src, CaseFile)
    except ConfigError as exc:
        raise ConfigError(exc.problems + problems) from exc
    if problems:
        raise ConfigError(problems)
    return cases, src


def destination_for(resolver: Resolver, given: dict[str, Any], in_eea: Any) -> Destination:
    """Given fields win; the rest is resolved as in production; the judged country is re-derived."""
    host, ip = given.get("host"), given.get("ip")
    base = resolver.resolve(host, ip)
    values = {f: getattr(base, f) for f in DEST_FIELDS if f not in ("host", "ip")}
    sources = dict(base.sources)
    for k, v in given.items():
        if k not in ("host", "ip"):
            values[k] = v
            sources[k] = "test case"
    if "judged_country" not in given:
        values["judged_country"] = None
        country, _, confidence = judge(values, sources)
        values["judged_country"], values["confidence"] = country, given.get("confidence", confidence)
    if "eea" not in given:
        c = values["judged_country"]
        values["eea"] = in_eea(c) if c else None
    return Destination(host=host, ip=ip, sources=tuple(sorted(sources.items())), mmdb_build=base.mmdb_build,
                       catalog_version=base.catalog_version, **values)  # fmt: skip


def actual_of(v: Verdict) -> dict[str, Any]:
    return {
        "outcome": v.outcome.value,
        "article": v.article,
        "rule_id": v.rule_id,
        "rule_location": v.rule_location,
        "severity": v.severity.value,
        "basis": v.basis,
        "steps": [{"rule_id": s.rule_id, "location": s.location, "result": s.result, "text": s.text} for s in v.steps],
    }


def run_case(pack: RulePack, resolver: Resolver, case: CaseDef, where: str) -> CaseResult:
    dest = destination_for(resolver, case.destination, pack.in_eea)
    reg = Register(systems=[case.system], vendors=case.vendors, waivers=case.waivers,
                   approved_suppliers=case.approved_suppliers, nis2_entity=case.organisation.nis2)  # fmt: skip
    index = RegisterIndex(reg)
    sd = case.system
    system = System(sd.name, tuple(sd.data_categories), sd.criticality, sd.owner, sd.nis2_scope)
    vendor = index.vendor(dest)
    verdict = evaluate(pack, system, dest, case.date, vendor, index.extras(sd.name, dest, vendor, case.volume))
    actual = actual_of(verdict)
    e = case.expect
    bad = []
    if actual["outcome"] != e.outcome:
        bad.append(f"outcome: expected {e.outcome}, got {actual['outcome']}")
    if e.article is not None:
        got = actual["article"] or ""
        if not got.startswith(e.article) or (e.article == "" and got):
            bad.append(f"article: expected {e.article or 'none'}, got {got or 'none'}")
    if e.rule_id is not None and actual["rule_id"] != e.rule_id:
        bad.append(f"rule_id: expected {e.rule_id}, got {actual['rule_id']}")
    if e.severity is not None and actual["severity"] != e.severity:
        bad.append(f"severity: expected {e.severity}, got {actual['severity']}")
    expected = e.model_dump(exclude_none=True)
    return CaseResult(case.name, not bad, expected, actual, where, tuple(bad))


def run_file(pack: RulePack, resolver: Resolver, path: Path) -> list[CaseResult]:
    cases, src = load_cases(path)
    return [run_case(pack, resolver, c, str(src.where(("cases", i)))) for i, c in enumerate(cases.cases)]
