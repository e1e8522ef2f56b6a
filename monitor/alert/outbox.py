"""Delivers pending outbox rows to every configured channel, marking each delivered only once all succeed."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from monitor.alert.base import Alerter, AlertMessage, DeliveryError
from monitor.alert.jsonl import JsonlAlerter
from monitor.alert.stderr import StderrAlerter
from monitor.settings import Config
from monitor.store.models import AlertOutbox


@dataclass
class DeliveryReport:
    delivered: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)
    summaries: list[str] = field(default_factory=list)


def make_alerters(config: Config) -> list[Alerter]:
    a = config.settings.alerts
    out: list[Alerter] = []
    if a.jsonl:
        out.append(JsonlAlerter(config.resolve_path(a.jsonl)))
    if a.stderr:
        out.append(StderrAlerter())
    return out


def _message(row: AlertOutbox) -> AlertMessage:
    created = row.created_at if row.created_at.tzinfo else row.created_at.replace(tzinfo=dt.UTC)
    return AlertMessage(row.id, row.dedup_key, created.isoformat(), row.severity, row.summary, dict(row.payload))


def deliver_pending(factory: sessionmaker[Session], alerters: list[Alerter], limit: int = 1000) -> DeliveryReport:
    """At-least-once: a crash between send and mark re-sends; the alert id lets receivers dedupe."""
    rep = DeliveryReport()
    with factory() as session:
        rows = session.scalars(
            select(AlertOutbox).where(AlertOutbox.delivered_at.is_(None)).order_by(AlertOutbox.id).limit(limit)
        ).all()
        for row in rows:
            msg = _message(row)
            try:
                for a in alerters:
                    a.send(msg)
            except DeliveryError as exc:
                row.attempts += 1
                row.last_error = str(exc)
                rep.failed += 1
                rep.errors.append(f"alert {row.id}: {exc}")
            else:
                row.attempts += 1
                row.delivered_at = dt.datetime.now(dt.UTC)
                rep.delivered += 1
                rep.summaries.append(msg.summary)
            session.commit()
    for a in alerters:
        a.close()
    return rep
