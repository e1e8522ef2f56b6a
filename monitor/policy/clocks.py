"""Incident reporting clocks (NIS2 Art. 23, GDPR Art. 33) from the rule pack: deadlines, never legal conclusions."""

from __future__ import annotations

import calendar
import datetime as dt
from dataclasses import dataclass

from monitor.policy.rulepack import Clock, RulePack


@dataclass(frozen=True)
class Deadline:
    clock_id: str
    instrument: str
    what: str
    due: dt.datetime | None  # None: runs from an event that has not happened yet (e.g. notification)
    runs_from: str
    rule_location: str

    def remaining(self, now: dt.datetime) -> dt.timedelta | None:
        # in UTC: subtracting two times of one zone would ignore a daylight-saving change between them
        return None if self.due is None else self.due.astimezone(dt.UTC) - now.astimezone(dt.UTC)


def add_months(t: dt.datetime, months: int) -> dt.datetime:
    """Same day-of-month `months` later, clamped to the month's end (31 Jan + 1 month = 28/29 Feb)."""
    m = t.month - 1 + months
    year, month = t.year + m // 12, m % 12 + 1
    return t.replace(year=year, month=month, day=min(t.day, calendar.monthrange(year, month)[1]))


def _due(c: Clock, start: dt.datetime) -> dt.datetime:
    if c.hours is not None:
        # elapsed hours: added in UTC, then shown in the caller's zone (24 h across a DST change)
        return (start.astimezone(dt.UTC) + dt.timedelta(hours=c.hours)).astimezone(start.tzinfo)
    return add_months(start, c.months or 0)


def deadlines(
    pack: RulePack,
    aware_at: dt.datetime,
    *,
    notified_at: dt.datetime | None = None,
    nis2_entity: bool = True,
    personal_data: bool = True,
) -> list[Deadline]:
    """Every clock that applies, due from awareness (or from the notification, once made), soonest first."""
    if aware_at.tzinfo is None:
        raise ValueError("aware_at must be timezone-aware")
    out = []
    for c in pack.clocks:
        if (c.applies_to == "nis2" and not nis2_entity) or (c.applies_to == "gdpr" and not personal_data):
            continue
        start = aware_at if c.from_ == "aware" else notified_at
        out.append(Deadline(c.id, c.instrument, c.what, _due(c, start) if start else None, c.from_,
                            pack.locations[c.id]))  # fmt: skip
    far = dt.datetime.max.replace(tzinfo=dt.UTC)
    return sorted(out, key=lambda d: d.due or far)
