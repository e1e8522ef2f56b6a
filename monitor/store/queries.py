"""Read-side queries over the evidence store: transfers, per-source stats, quarantine."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from monitor.store.models import Batch, CheckpointRow, Evidence, Quarantine


@dataclass(frozen=True)
class TransferFilter:
    system: str | None = None
    outcome: str | None = None
    country: str | None = None
    dest: str | None = None  # host or IP, exact
    since: dt.datetime | None = None  # window_start >= since
    until: dt.datetime | None = None  # window_start < until


def utc(v: dt.datetime | None) -> dt.datetime | None:
    """SQLite hands datetimes back naive; they were stored as UTC."""
    if v is None:
        return None
    return v.replace(tzinfo=dt.UTC) if v.tzinfo is None else v.astimezone(dt.UTC)


def transfers(session: Session, f: TransferFilter = TransferFilter()) -> list[dict[str, Any]]:
    """One row per (system, destination, verdict), summed over windows and batches."""
    keys = [
        Evidence.system,
        Evidence.data_categories,
        Evidence.dest_host,
        Evidence.dest_ip,
        Evidence.country,
        Evidence.eea,
        Evidence.outcome,
        Evidence.article,
        Evidence.rule_id,
        Evidence.rule_location,
        Evidence.severity,
        Evidence.vendor,
    ]
    q = select(
        *keys,
        func.sum(Evidence.requests).label("requests"),
        func.sum(Evidence.egress_requests).label("egress_requests"),
        func.sum(Evidence.bytes_in).label("bytes_in"),
        func.min(Evidence.first_seen).label("first_seen"),
        func.max(Evidence.last_seen).label("last_seen"),
    ).group_by(*keys)
    if f.system:
        q = q.where(Evidence.system == f.system)
    if f.outcome:
        q = q.where(Evidence.outcome == f.outcome)
    if f.country:
        q = q.where(Evidence.country == f.country.upper())
    if f.dest:
        q = q.where((Evidence.dest_host == f.dest) | (Evidence.dest_ip == f.dest))
    if f.since:
        q = q.where(Evidence.window_start >= f.since)
    if f.until:
        q = q.where(Evidence.window_start < f.until)
    out = []
    for r in session.execute(q):
        d = r._asdict()
        d["first_seen"], d["last_seen"] = utc(d["first_seen"]), utc(d["last_seen"])
        for k in ("requests", "egress_requests", "bytes_in"):
            d[k] = int(d[k] or 0)
        out.append(d)
    order = {"unauthorized": 0, "review": 1, "permitted": 2, "out_of_scope": 3}
    out.sort(key=lambda d: (order.get(d["outcome"], 9), -d["requests"], d["system"], d["dest_host"] or ""))
    return out


def source_stats(session: Session) -> list[dict[str, Any]]:
    """Per source: committed counts, and where reading stands (file, offset) from its checkpoint."""
    q = (
        select(
            Batch.source,
            Batch.collector,
            func.count(Batch.seq).label("batches"),
            func.sum(Batch.lines_read).label("lines_read"),
            func.sum(Batch.rows).label("rows"),
            func.sum(Batch.quarantined).label("quarantined"),
            func.sum(Batch.blank).label("blank"),
            func.sum(Batch.no_destination).label("no_destination"),
            func.max(Batch.committed_at).label("last_commit"),
        )
        .group_by(Batch.source, Batch.collector)
        .order_by(Batch.source)
    )
    checkpoints = {c.source: c for c in session.scalars(select(CheckpointRow))}
    out = []
    for r in session.execute(q):
        d = r._asdict()
        for k in ("batches", "lines_read", "rows", "quarantined", "blank", "no_destination"):
            d[k] = int(d[k] or 0)
        d["last_commit"] = utc(d["last_commit"])
        cp = checkpoints.get(d["source"])
        d["current_file"] = cp.path if cp else None
        d["offset"] = int(cp.offset) if cp else None
        out.append(d)
    return out


def quarantine_rows(session: Session, source: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
    q = select(Quarantine).order_by(Quarantine.source, Quarantine.line).limit(limit)
    if source:
        q = q.where(Quarantine.source == source)
    return [
        {
            "id": r.id,
            "source": r.source,
            "line": r.line,
            "offset": r.offset,
            "field": r.field,
            "reason": r.reason,
            "raw": r.raw.decode("utf-8", "backslashreplace"),
        }
        for r in session.scalars(q)
    ]


def day_requests(session: Session, system: str, vendor: str, day: dt.date) -> int:
    """Requests already recorded from `system` to `vendor` (any of its hosts and addresses) on `day` (UTC)."""
    start = dt.datetime.combine(day, dt.time(), dt.UTC)
    q = select(func.coalesce(func.sum(Evidence.requests), 0)).where(
        Evidence.system == system,
        Evidence.vendor == vendor,
        Evidence.window_start >= start,
        Evidence.window_start < start + dt.timedelta(days=1),
    )
    return int(session.scalar(q) or 0)
