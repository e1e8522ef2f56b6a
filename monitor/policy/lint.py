"""Checks across the register that one field's validator cannot see: references (errors) and lint (warnings)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from monitor.errors import Location, Problem
from monitor.policy.register import Dpf, Scc
from monitor.yamlsrc import Sourced

DPF_RECHECK_DAYS = 365


def _where(src: Sourced | None, *path: str | int) -> Location | None:
    return src.where(path) if src is not None else None


def _items(data: Any, key: str) -> list[tuple[int, dict[str, Any]]]:
    items = data.get(key) if isinstance(data, dict) else None
    return [(i, x) for i, x in enumerate(items if isinstance(items, list) else []) if isinstance(x, dict)]


def reference_errors(data: Any, src: Sourced | None) -> list[Problem]:
    """Waivers name existing systems, approved suppliers existing vendors, no domain has two vendors.

    Works on the raw YAML data, so these are reported together with schema problems, not after.
    """
    out: list[Problem] = []
    systems = {x.get("name") for _, x in _items(data, "systems")}
    vendors = {str(v.get("name", "")).lower() for _, v in _items(data, "vendors")}
    for i, w in _items(data, "waivers"):
        if "system" in w and w["system"] not in systems:
            known = ", ".join(sorted(str(x) for x in systems if x)) or "none defined"
            out.append(Problem(f"waiver names unknown system '{w['system']}'", _where(src, "waivers", i, "system"),
                               f"systems: {known}"))  # fmt: skip
    for i, entry in _items(data, "approved_suppliers"):
        if "vendor" in entry and str(entry["vendor"]).lower() not in vendors:
            where = _where(src, "approved_suppliers", i, "vendor")
            msg = f"approved supplier '{entry['vendor']}' is not a vendor in the register"
            out.append(Problem(msg, where, "add it under vendors: or fix the name"))
    owner: dict[str, str] = {}
    for i, v in _items(data, "vendors"):
        domains = v.get("domains")
        for j, d in enumerate(domains if isinstance(domains, list) else []):
            d = str(d).strip().lower().lstrip(".")
            name = str(v.get("name"))
            if d in owner and owner[d] != name:
                out.append(Problem(f"domain '{d}' belongs to vendors '{owner[d]}' and '{name}'",
                                   _where(src, "vendors", i, "domains", j), "a domain names one vendor"))  # fmt: skip
            owner.setdefault(d, name)
    return out


def lint_warnings(
    s: Any, src: Sourced | None, today: dt.date, seen_hosts: Iterable[str] | None = None
) -> list[Problem]:
    """What a DPO should look at, but which does not make the register invalid."""
    out: list[Problem] = []
    for i, v in enumerate(s.vendors):
        for j, m in enumerate(v.mechanisms):
            loc = _where(src, "vendors", i, "mechanisms", j)
            if isinstance(m, Scc) and m.expires is not None and m.expires < today:
                out.append(Problem(f"vendor '{v.name}': SCC module {m.module} expired on {m.expires}", loc))
            if isinstance(m, Scc) and m.tia is None:
                out.append(
                    Problem(f"vendor '{v.name}': SCC without a transfer impact assessment date (Clause 14)", loc)
                )
            if isinstance(m, Dpf):
                if m.checked_on is None:
                    out.append(
                        Problem(
                            f"vendor '{v.name}': DPF certification never checked (checked_on)",
                            loc,
                            "look the entity up on the DPF List and record the date",
                        )
                    )
                elif (today - m.checked_on).days > DPF_RECHECK_DAYS:
                    out.append(
                        Problem(
                            f"vendor '{v.name}': DPF check of {m.checked_on} is older than a year",
                            loc,
                            "certification is annual: check the DPF List again",
                        )
                    )
    for i, w in enumerate(s.waivers):
        if w.expires < today:
            out.append(
                Problem(
                    f"waiver for {w.system} → {w.destination} expired on {w.expires}",
                    _where(src, "waivers", i, "expires"),
                )
            )
    for i, a in enumerate(s.approved_suppliers):
        if a.review_due is not None and a.review_due < today:
            out.append(
                Problem(
                    f"approved supplier '{a.vendor}': review was due {a.review_due}",
                    _where(src, "approved_suppliers", i, "review_due"),
                )
            )
    if seen_hosts is not None:
        hosts = [h.lower() for h in seen_hosts if h]
        for i, v in enumerate(s.vendors):
            for j, d in enumerate(v.domains):
                if not any(h == d or h.endswith("." + d) for h in hosts):
                    out.append(
                        Problem(
                            f"vendor '{v.name}': no system has reached domain '{d}' (per the evidence store)",
                            _where(src, "vendors", i, "domains", j),
                            "stale entry, or traffic not yet ingested",
                        )
                    )
    return out
