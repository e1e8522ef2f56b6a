"""CLI: `xborder incidents list|show|ack|file|note|close` — the legal clocks and who decided what, when."""

from __future__ import annotations

import datetime as dt
from typing import Any

import click
from sqlalchemy import select

from monitor.cli.context import EXIT_OK, Ctx, pass_ctx
from monitor.cli.output import emit, format_option
from monitor.errors import UsageError
from monitor.store.session import read_session


def _iso(t: dt.datetime | None) -> str:
    if t is None:
        return "-"
    return (t if t.tzinfo else t.replace(tzinfo=dt.UTC)).isoformat(timespec="minutes")


@click.group()
def incidents() -> None:
    """Incidents opened by unauthorized transfers, with their GDPR Art. 33 / NIS2 Art. 23 clocks."""


@incidents.command("list", epilog="Example: xborder incidents list --open")
@click.option("--open", "only_open", is_flag=True, help="Only incidents not closed.")
@format_option
@pass_ctx
def incidents_list(ctx: Ctx, only_open: bool, fmt: str) -> int:
    """Incidents, newest first, with the next deadline still to meet."""
    from monitor.store.models import Incident, IncidentClock

    with read_session(ctx.config().store_url) as s:
        q = select(Incident).order_by(Incident.id.desc())
        if only_open:
            q = q.where(Incident.status != "closed")
        rows = []
        for inc in s.scalars(q):
            todo = s.scalars(
                select(IncidentClock)
                .where(IncidentClock.incident_id == inc.id, IncidentClock.done_at.is_(None))
                .order_by(IncidentClock.due_at)
            ).first()
            nxt = "-" if todo is None or inc.status == "closed" else f"{todo.clock} {_iso(todo.due_at)}"
            rows.append({
                "id": inc.id, "status": inc.status, "aware_at": _iso(inc.aware_at), "system": inc.system,
                "severity": inc.severity, "next_deadline": nxt, "title": inc.title,
            })  # fmt: skip
    emit(rows, fmt, title="incidents")
    return EXIT_OK


@incidents.command("show", epilog="Example: xborder incidents show 3")
@click.argument("incident_id", type=int)
@format_option
@pass_ctx
def incidents_show(ctx: Ctx, incident_id: int, fmt: str) -> int:
    """One incident: its clocks (due, done, by whom) and every event."""
    from monitor.alert.incidents import DESCRIPTIONS
    from monitor.store.models import Incident, IncidentClock, IncidentEvent

    with read_session(ctx.config().store_url) as s:
        inc = s.get(Incident, incident_id)
        if inc is None:
            raise UsageError(f"no incident #{incident_id}")
        clocks = s.scalars(select(IncidentClock).where(IncidentClock.incident_id == inc.id)
                           .order_by(IncidentClock.due_at)).all()  # fmt: skip
        events = s.scalars(select(IncidentEvent).where(IncidentEvent.incident_id == inc.id)
                           .order_by(IncidentEvent.id)).all()  # fmt: skip
        head: dict[str, Any] = {
            "id": inc.id, "status": inc.status, "title": inc.title, "system": inc.system,
            "severity": inc.severity, "aware_at": _iso(inc.aware_at), "first_alert": inc.first_alert_id,
            "closed_at": _iso(inc.closed_at),
        }  # fmt: skip
        clock_rows = [{"clock": c.clock, "what": DESCRIPTIONS.get(c.clock, ""), "due_at": _iso(c.due_at),
                       "done_at": _iso(c.done_at), "done_by": c.done_by or "-",
                       "reminders": ", ".join(c.reminded or []) or "-"} for c in clocks]  # fmt: skip
        event_rows = [{"at": _iso(e.at), "actor": e.actor, "action": e.action, "note": e.note or ""}
                      for e in events]  # fmt: skip
    if fmt == "json":
        emit([], fmt, extra={**head, "clocks": clock_rows, "events": event_rows})
    else:
        emit([head], fmt, title=f"incident #{incident_id}")
        emit(clock_rows, fmt, title="clocks")
        emit(event_rows, fmt, title="events")
    return EXIT_OK


def _decide(ctx: Ctx, incident_id: int, actor: str, action: str, note: str | None, clock: str | None = None,
            at: str | None = None) -> int:  # fmt: skip
    from monitor.alert.incidents import record

    when = dt.datetime.now(dt.UTC)
    if at:
        try:
            when = dt.datetime.fromisoformat(at)
        except ValueError as exc:
            raise UsageError(f"--at: expected an ISO time such as 2026-12-03T14:30+01:00, got '{at}'") from exc
        if when.tzinfo is None:
            raise UsageError("--at needs a time zone (e.g. +01:00 or Z)")
    with read_session(ctx.config().store_url) as s:
        try:
            inc = record(s, incident_id, actor, action, note, when, clock)
        except (LookupError, ValueError) as exc:
            raise UsageError(str(exc)) from exc
        click.echo(f"incident #{inc.id}: {action}{' ' + clock if clock else ''} recorded by {actor} at "
                   f"{_iso(when)}; status {inc.status}")  # fmt: skip
    return EXIT_OK


BY = click.option("--by", "actor", required=True, help="Who decides (name or role), kept with the record.")
NOTE = click.option("--note", help="What was decided and why, e.g. 'not significant: test traffic'.")


@incidents.command("ack", epilog="Example: xborder incidents ack 3 --by 'J. Doe (DPO)' --note 'looking into it'")
@click.argument("incident_id", type=int)
@BY
@NOTE
@pass_ctx
def incidents_ack(ctx: Ctx, incident_id: int, actor: str, note: str | None) -> int:
    """Acknowledge: someone owns it. The clocks keep running."""
    return _decide(ctx, incident_id, actor, "ack", note)


@incidents.command("file", epilog="Example: xborder incidents file 3 nis2_early_warning --by CISO --note 'BSI ref 123'")
@click.argument("incident_id", type=int)
@click.argument("clock")
@BY
@NOTE
@click.option("--at", help="When it was filed (ISO time with zone; default now).")
@pass_ctx
def incidents_file(ctx: Ctx, incident_id: int, clock: str, actor: str, note: str | None, at: str | None) -> int:
    """Record that a deadline was met (a notification filed), or decided not to be needed."""
    return _decide(ctx, incident_id, actor, "file", note, clock, at)


@incidents.command("note", epilog="Example: xborder incidents note 3 --by DPO --note 'vendor contacted'")
@click.argument("incident_id", type=int)
@BY
@click.option("--note", required=True, help="The note.")
@pass_ctx
def incidents_note(ctx: Ctx, incident_id: int, actor: str, note: str) -> int:
    """Add a note to the record."""
    return _decide(ctx, incident_id, actor, "note", note)


@incidents.command("close", epilog="Example: xborder incidents close 3 --by DPO --note 'not a breach: test data'")
@click.argument("incident_id", type=int)
@BY
@click.option("--note", required=True, help="Why it is closed (the decision, e.g. 'not significant').")
@pass_ctx
def incidents_close(ctx: Ctx, incident_id: int, actor: str, note: str) -> int:
    """Close: the clocks stop and no more reminders go out."""
    return _decide(ctx, incident_id, actor, "close", note)
