"""Alert stage: incidents opened from unauthorized-transfer alerts, their GDPR/NIS2 clocks, and reminders as alerts.

The clocks run from the moment xborder became aware: the first alert's time. Whether an
unauthorized transfer is a personal-data breach (GDPR Art. 4(12) "unauthorised disclosure") or a
significant NIS2 incident (Art. 23(3)) is a legal call xborder cannot make, so the clocks start
and a person records the decision (`xborder incidents ack|file|close`); see
../shared/reference/regulatory-facts.md §5-6.
"""

from __future__ import annotations

import calendar
import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from monitor.store.models import AlertChannel, AlertOutbox, Incident, IncidentClock, IncidentEvent

CURSOR = "~incidents"  # an alert_channels row: the last alert looked at for incidents
H = dt.timedelta(hours=1)
# (clock, hours from awareness, what it is). GDPR Art. 33(1): notify the supervisory authority
# without undue delay and, where feasible, within 72 h of becoming aware. (The Digital Omnibus
# proposal of 19 Nov 2025 would make it 96 h; not adopted as far as we know: not encoded.)
GDPR_CLOCKS = [("gdpr_art33_notify", 72, "GDPR Art. 33(1): notify the supervisory authority")]
# NIS2 Art. 23(4): (a) early warning within 24 h, (b) incident notification within 72 h, both from
# awareness; (d) the final report within one month after the notification (set once it is filed).
NIS2_CLOCKS = [
    ("nis2_early_warning", 24, "NIS2 Art. 23(4)(a): early warning to the CSIRT"),
    ("nis2_notification", 72, "NIS2 Art. 23(4)(b): incident notification"),
]
FINAL = ("nis2_final_report", "NIS2 Art. 23(4)(d): final report, one month after the notification")
DESCRIPTIONS = {c: d for c, _, d in GDPR_CLOCKS + NIS2_CLOCKS} | {FINAL[0]: FINAL[1]}


@dataclass(frozen=True)
class IncidentPolicy:
    """From the config: is the organisation a NIS2 entity, and which systems' incidents may be significant."""

    nis2_entity: bool = False
    nis2_systems: frozenset[str] = frozenset()  # criticality high or critical
    remind_before_h: tuple[float, ...] = (12.0, 2.0)


NO_PERSONAL_DATA = frozenset({"none"})  # the data category that says a system holds no personal data


def add_month(t: dt.datetime) -> dt.datetime:
    """The same day and time one calendar month later (the last day of a shorter month)."""
    y, m = (t.year + 1, 1) if t.month == 12 else (t.year, t.month + 1)
    return t.replace(year=y, month=m, day=min(t.day, calendar.monthrange(y, m)[1]))


def _aware(t: dt.datetime) -> dt.datetime:
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


def open_incidents(s: Session, policy: IncidentPolicy, now: dt.datetime) -> int:
    """Open an incident for each new unauthorized transfer of personal data and each lockout; returns how many."""
    cur = s.get(AlertChannel, CURSOR)
    if cur is None:
        cur = AlertChannel(name=CURSOR, cursor=0, first_seen=now)
        s.add(cur)
    new = select(AlertOutbox).where(AlertOutbox.id > cur.cursor).order_by(AlertOutbox.id).limit(1000)
    alerts = s.scalars(new).all()
    opened = 0
    for a in alerts:
        p: dict[str, Any] = dict(a.payload or {})
        kind = p.get("kind")
        categories = {str(c) for c in p.get("data_categories") or []} - NO_PERSONAL_DATA
        if not (kind == "lockout" or (kind == "unauthorized_transfer" and categories)):
            continue
        held = s.scalars(
            select(Incident).where(Incident.key == a.dedup_key, Incident.status != "closed").limit(1)
        ).first()
        if held is not None:
            s.add(IncidentEvent(incident_id=held.id, at=now, actor="xborder", action="alert", note=f"alert #{a.id}"))
            continue
        aware = _aware(a.created_at)
        system = p.get("system")
        inc = Incident(
            key=a.dedup_key, kind=str(kind), title=a.summary, system=system, severity=a.severity,
            aware_at=aware, status="open", first_alert_id=a.id,
        )  # fmt: skip
        s.add(inc)
        s.flush()
        # a lockout is a disruption, not a disclosure: no GDPR clock, NIS2 ones if it may be significant
        clocks = list(GDPR_CLOCKS) if kind == "unauthorized_transfer" else []
        if policy.nis2_entity and system in policy.nis2_systems:
            clocks += NIS2_CLOCKS
        for name, hours, _ in clocks:
            s.add(IncidentClock(incident_id=inc.id, clock=name, due_at=aware + hours * H, reminded=[]))
        if policy.nis2_entity and system in policy.nis2_systems:
            s.add(IncidentClock(incident_id=inc.id, clock=FINAL[0], due_at=add_month(aware + 72 * H), reminded=[]))
        names = [c for c, _, _ in clocks] + ([FINAL[0]] if policy.nis2_entity and system in policy.nis2_systems else [])
        note = "clocks: " + (", ".join(names) or "none (not a NIS2 entity's critical system)")
        s.add(IncidentEvent(incident_id=inc.id, at=now, actor="xborder", action="opened", note=note))
        opened += 1
    if alerts:
        cur.cursor = alerts[-1].id
    s.commit()
    return opened


def remind(s: Session, policy: IncidentPolicy, now: dt.datetime) -> int:
    """A reminder alert before each deadline (and one when it has passed), each once; returns how many."""
    rows = s.execute(
        select(IncidentClock, Incident)
        .join(Incident, Incident.id == IncidentClock.incident_id)
        .where(IncidentClock.done_at.is_(None), Incident.status != "closed")
    ).all()
    made = 0
    for clock, inc in rows:
        due = _aware(clock.due_at)
        sent = list(clock.reminded or [])
        if now >= due:
            label = "overdue"
        else:
            near = [h for h in policy.remind_before_h if now >= due - h * H]
            label = f"{min(near):g}h" if near else ""
        if not label or label in sent:
            continue
        when = "was due" if label == "overdue" else "is due"
        s.add(
            AlertOutbox(
                dedup_key=f"reminder|{inc.id}|{clock.clock}|{label}",
                batch_seq=s.get(AlertOutbox, inc.first_alert_id).batch_seq,  # type: ignore[union-attr]
                created_at=now,
                severity="critical" if label == "overdue" else "high",
                summary=f"Incident #{inc.id}: {DESCRIPTIONS[clock.clock]} {when} at {due.isoformat(timespec='minutes')}"
                f" ({inc.title})",
                payload={
                    "kind": "reminder", "outcome": "reminder", "incident": inc.id, "clock": clock.clock,
                    "due_at": due.isoformat(), "reminder": label, "system": inc.system,
                    "next": f"xborder incidents show {inc.id}",
                },  # fmt: skip
                attempts=0,
                window_end=now,
                repeats=0,
                repeat_requests=0,
            )
        )
        clock.reminded = [*sent, label]
        s.add(IncidentEvent(incident_id=inc.id, at=now, actor="xborder", action="reminded",
                            note=f"{clock.clock} {label}"))  # fmt: skip
        made += 1
    if made:
        s.commit()
    return made


def record(s: Session, incident_id: int, actor: str, action: str, note: str | None, now: dt.datetime,
           clock: str | None = None) -> Incident:  # fmt: skip
    """ack / file CLOCK / note / close: what a person decided, kept with who and when."""
    now = now.astimezone(dt.UTC)  # SQLite keeps the wall time and drops the zone: store UTC
    inc = s.get(Incident, incident_id)
    if inc is None:
        raise LookupError(f"no incident #{incident_id}")
    if inc.status == "closed" and action != "note":
        raise ValueError(f"incident #{incident_id} is closed")
    if action == "ack":
        inc.status = "acknowledged"
    elif action == "close":
        inc.status, inc.closed_at = "closed", now
    elif action == "file":
        of_incident = select(IncidentClock).where(IncidentClock.incident_id == inc.id)
        c = s.scalars(of_incident.where(IncidentClock.clock == clock)).first()
        if c is None:
            raise LookupError(f"incident #{incident_id} has no clock '{clock}'")
        c.done_at, c.done_by = now, actor
        if clock == "nis2_notification":  # the final report is due one month after the notification
            final = s.scalars(
                select(IncidentClock).where(IncidentClock.incident_id == inc.id, IncidentClock.clock == FINAL[0])
            ).first()
            if final is not None:
                final.due_at = add_month(now)
        note = f"{clock}: {note}" if note else clock
    s.add(IncidentEvent(incident_id=inc.id, at=now, actor=actor, action=action, note=note))
    s.commit()
    return inc
