"""The built-in tests a rule-pack procedure step names (`check:`); each looks at one Case."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from monitor.policy.case import Case
from monitor.policy.register import AdequacyScope as ScopeMech
from monitor.policy.register import Bcr, Derogation, Dpf, Scc
from monitor.policy.rulepack import Decision

HR_CATEGORIES = frozenset({"hr", "employee-personal"})


def _in_force(d: Decision, day: dt.date) -> bool:
    return d.in_force_from <= day and (d.in_force_until is None or day <= d.in_force_until)


# which register framework a `certified` adequacy decision's certification list corresponds to
FRAMEWORK_OF = {"dpf": "eu-us", "privacy-shield": "privacy-shield", "safe-harbour": "safe-harbour"}


def _certified_rows(c: Case, certification: str) -> list[tuple[Dpf, str]]:
    """The vendor's certifications under `certification` that are in force on the day."""
    return [
        (m, w)
        for m, w in c.mechanisms()
        if isinstance(m, Dpf)
        and m.framework == FRAMEWORK_OF.get(certification)
        and m.certified_since <= c.day
        and (m.lapsed_on is None or c.day < m.lapsed_on)
    ]


def _scopes_cover(rows: list[tuple[Dpf, str]], categories: tuple[str, ...]) -> bool:
    # the DPF List records HR and non-HR coverage separately; a register may hold them as two rows
    scopes = {m.scope for m, _ in rows}
    hr_ok, other_ok = bool(scopes & {"hr", "both"}), bool(scopes & {"non-hr", "both"})
    needs_hr = any(x in HR_CATEGORIES for x in categories)
    needs_other = any(x not in HR_CATEGORIES for x in categories)
    return (hr_ok or not needs_hr) and (other_ok or not needs_other) and bool(rows)


def _check_no_personal(c: Case) -> bool:
    cats = c.system.data_categories
    return bool(cats) and all(x in c.pack.non_personal for x in cats)


def _check_same_entity(c: Case) -> bool:
    if c.vendor and c.vendor.vendor.same_entity:
        c.found.append(f"vendor '{c.vendor.vendor.name}' is the organisation itself ({c.vendor.where})")
        return True
    return False


def _check_eea(c: Case) -> bool:
    if c.country and c.pack.in_eea_on(c.country, c.day):
        t = c.pack.transitional.get(c.country)
        if t is not None and c.day <= t.until:
            c.found.append(f"{c.country} is treated as inside the EEA until {t.until}: {t.source}")
        else:
            c.found.append(f"country {c.country} is in the EEA")
        seat = c.dest.provider_seat
        if seat and not c.pack.in_eea(seat):
            # EDPB 05/2021: not a transfer, but the importer's home law may reach the data
            c.found.append(
                f"third-country access risk to record: {c.dest.provider or 'the provider'} is seated in {seat}"
            )
        return True
    return False


def _check_territory_review(c: Case) -> bool:
    t = c.pack.territories.get(c.country or "")
    if t is not None and t.treat_as == "review":
        c.found.append(f"{t.name} ({t.code}): {t.source}")
        return True
    # only where the judged country is the located one: a catalog region says nothing of a city
    if c.country and c.country == c.dest.located_country:
        place = c.pack.review_place(c.country, c.dest.located_city)
        if place is not None:
            c.found.append(f"{place.name}: located in {c.dest.located_city}, {place.country}; {place.source}")
            return True
    return False


def _adequacy(c: Case, want_confirmed: bool) -> bool:
    for d in c.pack.decisions_for(c.country or ""):
        if not _in_force(d, c.day):
            continue
        where = c.pack.locations[d.id]
        if d.scope == "full":
            if want_confirmed:
                c.found.append(f"{d.instrument} (in force since {d.in_force_from})")
                c.rule_id, c.rule_where = d.id, where
                return True
            continue
        if d.scope == "certified":
            rows = _certified_rows(c, d.certification or "")
            if want_confirmed and _scopes_cover(rows, c.system.data_categories):
                name = c.vendor.vendor.name if c.vendor else "?"
                label = {"dpf": "DPF", "privacy-shield": "Privacy Shield", "safe-harbour": "Safe Harbour"}
                certified = "; ".join(
                    f"{name} {label.get(d.certification or '', '')}-certified ({m.framework}, scope {m.scope}) "
                    f"since {m.certified_since} ({w})"
                    for m, w in rows
                )
                c.found.append(f"{d.instrument}; {certified}")
                c.rule_id, c.rule_where = d.id, where
                return True
            continue
        confirmed = [
            (m, w)
            for m, w in c.mechanisms()
            # confirmed_on dates the check, not the recipient's status: a later check still documents it
            if isinstance(m, ScopeMech) and m.country == c.country
        ]
        if want_confirmed and confirmed:
            m, w = confirmed[0]
            c.found.append(
                f"{d.instrument}; recipient confirmed within scope ({d.condition}) on {m.confirmed_on} ({w})"
            )
            c.rule_id, c.rule_where = d.id, where
            return True
        if not want_confirmed and not confirmed:
            c.found.append(f"{d.instrument} covers only: {d.condition}")
            return True
    return False


def _check_scc(c: Case) -> bool:
    for m, where in c.mechanisms():
        if not isinstance(m, Scc) or m.signed > c.day or (m.expires and c.day > m.expires):
            continue
        v = c.pack.scc.get(m.version)
        if v is None:
            continue
        if (v.signed_from and m.signed < v.signed_from) or (v.signed_until and m.signed > v.signed_until):
            continue
        if v.valid_until and c.day > v.valid_until:
            continue
        if v.usable_from and c.day < v.usable_from:
            continue
        c.found.append(f"SCC {v.instrument}, module {m.module}, signed {m.signed} ({where})")
        return True
    return False


def _check_bcr(c: Case) -> bool:
    for m, where in c.mechanisms():
        if isinstance(m, Bcr) and m.approved_on <= c.day:
            c.found.append(f"BCR approved {m.approved_on} ({where})")
            return True
    return False


def _derogations(c: Case) -> list[tuple[Derogation, str]]:
    # Art. 49(6): a derogation relied on must be documented; one recorded later does not cover earlier days
    return [
        (m, w)
        for m, w in c.mechanisms()
        if isinstance(m, Derogation) and (m.recorded_on is None or m.recorded_on <= c.day)
    ]


def _within(m: Derogation, volume: int | None) -> bool:
    return m.occasional_limit_per_day is None or volume is None or volume <= m.occasional_limit_per_day


def _check_derogation(c: Case) -> bool:
    for m, where in _derogations(c):
        if _within(m, c.volume):
            limit = (
                f"; {c.volume} of at most {m.occasional_limit_per_day} requests that day"
                if (m.occasional_limit_per_day is not None and c.volume is not None)
                else ""
            )
            c.found.append(f"Art. 49(1) point ({m.point}): {m.justification} ({where}){limit}")
            c.article = "49(1)" + ("" if m.point == "compelling-interests" else f"({m.point})")
            return True
    return False


def _check_derogation_beyond(c: Case) -> bool:
    for m, where in _derogations(c):
        if not _within(m, c.volume):
            c.found.append(
                f"{c.volume} requests that day, the derogation at {where} allows {m.occasional_limit_per_day}"
            )
            return True
    return False


def _check_waiver(c: Case) -> bool:
    w = c.waiver
    if w is not None and w.waiver.granted <= c.day <= w.waiver.expires:
        c.found.append(
            f"waiver by {w.waiver.approved_by} until {w.waiver.expires}: {w.waiver.justification} ({w.where})"
        )
        return True
    return False


CHECKS: dict[str, Callable[[Case], bool]] = {
    "no_personal_data": _check_no_personal,
    "internal_destination": lambda c: c.dest.internal,
    "same_legal_entity": _check_same_entity,
    "country_unknown": lambda c: c.country is None,
    "recipient_in_eea": _check_eea,
    "territory_review": _check_territory_review,
    "adequacy": lambda c: _adequacy(c, True),
    "adequacy_scope_unconfirmed": lambda c: _adequacy(c, False),
    "scc_on_file": _check_scc,
    "bcr_on_file": _check_bcr,
    "derogation_on_file": _check_derogation,
    "derogation_beyond_limits": _check_derogation_beyond,
    "waiver_on_file": _check_waiver,
    "unknown_data_categories": lambda c: set(c.system.data_categories) <= {"unknown"},
    "always": lambda c: True,
}
