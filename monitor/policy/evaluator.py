"""Judges one (system, destination, day) under the rule pack's Chapter V procedure: pure, no I/O."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

from monitor.policy.case import Case, Extras, SupplierRef, VendorRef, WaiverRef
from monitor.policy.checks import CHECKS
from monitor.policy.rulepack import RulePack, StepDef
from monitor.records import Destination, Outcome, Severity, Step, System, Verdict

__all__ = ["Extras", "SupplierRef", "VendorRef", "WaiverRef", "evaluate", "severity"]


def severity(pack: RulePack, outcome: str, categories: tuple[str, ...]) -> Severity:
    table = pack.severity
    if outcome != "unauthorized":
        return Severity(getattr(table, outcome))
    for cat, sev in table.unauthorized.by_category.items():
        if cat in categories:
            return Severity(sev)
    return Severity(table.unauthorized.default)


def _describe(step: StepDef, c: Case) -> str:
    """Why a step did not apply, in words a DPO can paste into a ticket."""
    d, country = c.dest, c.dest.country or "unknown"
    vendor = f"vendor '{c.vendor.vendor.name}'" if c.vendor else "no vendor in the register for this destination"
    facts = {
        "no_personal_data": f"the system's data categories ({', '.join(c.system.data_categories) or 'none'}) "
        "include personal data",
        "internal_destination": f"{d.host or d.ip} is not on the organisation's own network",
        "same_legal_entity": f"the recipient is not the organisation itself ({vendor})",
        "country_unknown": f"country {country} (confidence {d.confidence})",
        "territory_review": f"{country} is not a territory or place flagged for review",
        "recipient_in_eea": f"{country} is not in the EEA",
        "adequacy": f"no adequacy decision in force on {c.day} covers this recipient in {country}",
        "adequacy_scope_unconfirmed": "no limited adequacy decision waiting for scope confirmation",
        "scc_on_file": f"no SCCs valid on {c.day} on file ({vendor})",
        "bcr_on_file": f"no BCRs approved by {c.day} on file ({vendor})",
        "derogation_on_file": "no Art. 49 derogation on file within its limits",
        "derogation_beyond_limits": "no derogation used beyond its limits",
        "waiver_on_file": f"no waiver in force on {c.day}",
        "unknown_data_categories": f"the source is attributed to system '{c.system.name}'",
    }
    return facts.get(step.check, step.basis)


def evaluate(
    pack: RulePack,
    system: System,
    dest: Destination,
    day: dt.date,
    vendor: VendorRef | None,
    extras: Extras | None = None,
) -> Verdict:
    """The first procedure step whose check holds decides; every step tried is recorded.

    Then NIS2 Art. 21(2)(d): for an essential/important entity, an in-scope system reaching a
    recipient that is not an approved supplier gets a NIS2 finding on top of the GDPR verdict.
    """
    case = Case(pack, system, dest, day, vendor, extras or Extras())
    steps: list[Step] = []
    for step in pack.procedure:
        where = pack.locations[step.id]
        case.found.clear()
        case.article = None
        if not CHECKS[step.check](case):
            steps.append(Step(step.id, where, "pass", f"no: {_describe(step, case)}"))
            continue
        detail = "; ".join(case.found)
        steps.append(Step(step.id, where, "match", f"{step.basis}" + (f": {detail}" if detail else "")))
        verdict = Verdict(
            outcome=Outcome(step.outcome),
            article=case.article or step.article,
            basis=step.basis + (f" — {detail}" if detail else ""),
            rule_id=case.rule_id or step.id,
            rule_location=case.rule_where or where,
            pack_hash=pack.hash,
            severity=Severity(step.severity) if step.severity else severity(pack, step.outcome, system.data_categories),
            steps=tuple(steps),
            vendor=vendor.vendor.name if vendor else None,
        )
        return _nis2(pack, case, verdict)
    # load_pack guarantees the last step is a catch-all, so this is unreachable
    raise RuntimeError("rule pack procedure has no catch-all step")


def _nis2(pack: RulePack, c: Case, v: Verdict) -> Verdict:
    n = pack.nis2
    sc = n.supplier_check
    same_entity = c.vendor is not None and c.vendor.vendor.same_entity  # the entity itself is no supplier
    if c.extras.nis2_entity == "none" or c.day < n.applies_from or not c.system.nis2_scope or c.dest.internal:
        return v
    if same_entity:
        return v
    sup = c.extras.supplier
    where = pack.locations[sc.id]
    if sup is not None and sup.entry.approved_on <= c.day:
        if sup.entry.review_due is None or c.day <= sup.entry.review_due:
            step = Step(sc.id, where, "pass", f"approved supplier since {sup.entry.approved_on} ({sup.where})")
            return replace(v, steps=(*v.steps, step))
        text = f"{sc.review_overdue_basis}: review was due {sup.entry.review_due} ({sup.where})"
    else:
        who = c.vendor.vendor.name if c.vendor else (c.dest.provider or c.dest.host or c.dest.ip or "recipient")
        text = f"{sc.basis}: {who} ({c.extras.nis2_entity} entity, system {c.system.name})"
    step = Step(sc.id, where, "match", text)
    if v.outcome in (Outcome.PERMITTED, Outcome.OUT_OF_SCOPE):
        return replace(
            v, outcome=Outcome(sc.outcome), article=sc.article, rule_id=sc.id, rule_location=where,
            basis=f"{text} (GDPR: {v.basis})", severity=severity(pack, sc.outcome, c.system.data_categories),
            steps=(*v.steps, step),
        )  # fmt: skip
    return replace(v, basis=f"{v.basis}; also {text}", steps=(*v.steps, step))
