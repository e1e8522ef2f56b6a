"""Commits one batch in ONE transaction: evidence, quarantine, checkpoint, alert outbox, chain link."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import Connection, Table, insert, or_, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from monitor.errors import StoreError
from monitor.records import Checkpoint, Quarantined
from monitor.store.chain import (
    EVIDENCE_FIELDS,
    QUARANTINE_FIELDS,
    batch_digest,
    batch_header,
    link_hash,
    row_hash,
)
from monitor.store.models import AlertOutbox, Batch, ChainHead, CheckpointRow, Evidence, Quarantine


@dataclass
class BatchRecord:
    """Everything one batch adds to the store, ready to write."""

    collector: str
    source: str
    lines_read: int
    rows: int
    blank: int
    no_destination: int
    evidence: list[dict[str, Any]]  # Evidence columns except id, batch_seq, row_hash
    quarantined: list[Quarantined]
    checkpoint: Checkpoint | None
    resumed_from: Checkpoint | None  # the checkpoint this batch started from (None: new file)
    alerts: list[dict[str, Any]] = field(default_factory=list)  # dedup_key, severity, summary, payload
    first_ts: dt.datetime | None = None  # time span of the batch's rows
    last_ts: dt.datetime | None = None
    suppress_minutes: int = 60  # alerts.suppress_minutes: repeats of an open alert are counted, not sent


@dataclass(frozen=True)
class CommitResult:
    seq: int
    hash: str
    evidence_rows: int
    quarantined: int
    new_alerts: int


def _same_position(a: CheckpointRow | None, b: Checkpoint | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return (a.inode, a.device, a.offset, a.fingerprint) == (b.inode, b.device, b.offset, b.fingerprint)


SEVERITY_RANK = {"info": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}


def _record_alerts(session: Session, values: list[dict[str, Any]], now: dt.datetime, suppress: dt.timedelta) -> int:
    """Open an alert per new dedup_key; count a repeat into the key's open alert; returns how many opened.

    An alert is open until its window_end (created + the suppression window). A repeat inside the
    window is counted, not sent again (the deliverer sends one summary of the repeats when the
    window ends). A repeat of higher severity than the open alert is never suppressed: it opens
    an alert of its own at once. The caller holds the chain-head lock, so no other writer records
    alerts meanwhile: one SELECT for the open alerts, then one executemany for the new ones.
    """
    if not values:
        return 0
    keys = sorted({v["dedup_key"] for v in values})
    open_: dict[str, tuple[int, str]] = {}  # key -> (id, severity) of its newest open alert
    for i in range(0, len(keys), 500):
        rows = session.execute(
            select(AlertOutbox.dedup_key, AlertOutbox.id, AlertOutbox.severity)
            .where(AlertOutbox.dedup_key.in_(keys[i : i + 500]))
            .where(or_(AlertOutbox.window_end.is_(None), AlertOutbox.window_end > now))
            .order_by(AlertOutbox.id)
        )
        for key, id_, sev in rows:
            open_[key] = (id_, sev)
    new: list[dict[str, Any]] = []
    pending: dict[str, dict[str, Any]] = {}  # opened in this batch, by key
    repeats: dict[int, list[int]] = {}  # open alert id -> [repeats, requests]
    for v in values:
        key, rank = v["dedup_key"], SEVERITY_RANK.get(v["severity"], 0)
        mine = pending.get(key)
        if mine is not None and rank <= SEVERITY_RANK.get(mine["severity"], 0):
            mine["repeats"] += 1
            mine["repeat_requests"] += int(v["payload"].get("requests") or 0)
            continue
        held = open_.get(key)
        if mine is None and held is not None and rank <= SEVERITY_RANK.get(held[1], 0):
            r = repeats.setdefault(held[0], [0, 0])
            r[0] += 1
            r[1] += int(v["payload"].get("requests") or 0)
            continue
        row = dict(v, window_end=now + suppress, repeats=0, repeat_requests=0)
        before = mine["severity"] if mine is not None else held[1] if held is not None else None
        if before is not None:  # a higher severity than the open alert: said, and sent at once
            row["payload"] = {**v["payload"], "escalated_from": before}
        pending[key] = row
        new.append(row)
    for id_, (n, requests) in repeats.items():
        session.execute(
            update(AlertOutbox)
            .where(AlertOutbox.id == id_)
            .values(
                repeats=AlertOutbox.repeats + n,
                repeat_requests=AlertOutbox.repeat_requests + requests,
                last_repeat_at=now,
            )
        )
    if new:
        session.connection().execute(insert(cast(Table, AlertOutbox.__table__)), new)
    return len(new)


def commit_batch(factory: sessionmaker[Session], rec: BatchRecord) -> CommitResult:
    """Append `rec` to the store and the chain, atomically; refuse if the source moved meanwhile."""
    now = dt.datetime.now(dt.UTC)
    try:
        with factory.begin() as session:
            # Locking the head serialises writers (PostgreSQL row lock; SQLite holds its write
            # lock since BEGIN IMMEDIATE), so sequence numbers and links never fork.
            head = session.execute(select(ChainHead).where(ChainHead.id == 1).with_for_update()).scalar_one()
            if rec.checkpoint is not None:
                stored = session.get(CheckpointRow, rec.checkpoint.source)
                if not _same_position(stored, rec.resumed_from):
                    raise StoreError(
                        f"{rec.source}: another ingest advanced this source meanwhile; "
                        "nothing was written, run again to resume from its checkpoint"
                    )
            seq = head.seq + 1
            hashes: list[str] = []
            ev_rows = []
            for e in rec.evidence:
                row = dict(e, batch_seq=seq)
                row["row_hash"] = row_hash(row, EVIDENCE_FIELDS)
                hashes.append(row["row_hash"])
                ev_rows.append(row)
            q_rows = []
            for q in rec.quarantined:
                row = {
                    "batch_seq": seq,
                    "collector": rec.collector,
                    "source": q.source,
                    "line": q.line,
                    "offset": q.offset,
                    "reason": q.reason,
                    "field": q.field,
                    "raw": q.raw,
                }
                row["row_hash"] = row_hash(row, QUARANTINE_FIELDS)
                hashes.append(row["row_hash"])
                q_rows.append(row)
            batch = Batch(
                seq=seq,
                collector=rec.collector,
                source=rec.source,
                committed_at=now,
                lines_read=rec.lines_read,
                rows=rec.rows,
                quarantined=len(rec.quarantined),
                blank=rec.blank,
                no_destination=rec.no_destination,
                evidence_rows=len(ev_rows),
                first_ts=rec.first_ts,
                last_ts=rec.last_ts,
                digest=batch_digest(hashes),
                prev_hash=head.hash,
                hash="",
            )
            batch.hash = link_hash(batch.prev_hash, batch.digest, batch_header(batch))
            session.add(batch)
            session.flush()
            conn = session.connection()
            if ev_rows:
                _insert_many(conn, cast(Table, Evidence.__table__), ev_rows)
            if q_rows:
                _insert_many(conn, cast(Table, Quarantine.__table__), q_rows)
            if rec.checkpoint is not None:
                _save_checkpoint(session, rec.checkpoint, now)
            new_alerts = _record_alerts(
                session,
                [dict(a, batch_seq=seq, created_at=now, attempts=0) for a in rec.alerts],
                now,
                dt.timedelta(minutes=rec.suppress_minutes),
            )
            session.execute(update(ChainHead).where(ChainHead.id == 1).values(seq=seq, hash=batch.hash))
    except SQLAlchemyError as exc:
        raise StoreError(f"could not commit batch from {rec.source}: {exc}") from exc
    return CommitResult(seq, batch.hash, len(ev_rows), len(q_rows), new_alerts)


_PLANS: dict[tuple[str, str], tuple[str, list[str], list[tuple[int, Any]], bool]] = {}


def _insert_many(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """One executemany straight to the driver, values converted by the columns' own bind processors.

    The same INSERT SQLAlchemy would send, without its per-row parameter building, which cost
    about as much as the insert itself for a batch's thousands of 45-column evidence rows (the
    ORM bulk path is slower still: one INSERT per row here).
    """
    dialect = conn.dialect
    plan = _PLANS.get((dialect.name, table.name))
    if plan is None:
        keys = [c.name for c in table.columns if not (c.primary_key and c.autoincrement is True)]
        compiled = insert(table).compile(dialect=dialect, column_keys=keys)
        positional = bool(compiled.positional)
        if positional:  # the driver takes values in the statement's order
            keys = list(compiled.positiontup or keys)
        procs = [
            (i, p) for i, k in enumerate(keys) if (p := table.c[k].type.dialect_impl(dialect).bind_processor(dialect))
        ]
        plan = _PLANS[(dialect.name, table.name)] = (str(compiled), keys, procs, positional)
    sql, keys, procs, positional = plan
    params: list[Any] = []
    for r in rows:
        vals = list(map(r.get, keys))
        for i, p in procs:
            vals[i] = p(vals[i])
        params.append(tuple(vals) if positional else dict(zip(keys, vals, strict=True)))
    conn.exec_driver_sql(sql, params)


def _save_checkpoint(session: Session, cp: Checkpoint, now: dt.datetime) -> None:
    row = session.get(CheckpointRow, cp.source)
    if row is None:
        row = CheckpointRow(source=cp.source)
        session.add(row)
    row.path, row.device, row.inode = cp.path, cp.device, cp.inode
    row.offset, row.line, row.fingerprint, row.updated_at = cp.offset, cp.line, cp.fingerprint, now
    row.mtime_ns, row.done = cp.mtime_ns, list(cp.done)


def load_checkpoint(factory: sessionmaker[Session], source: str) -> Checkpoint | None:
    with factory() as session:
        row = session.get(CheckpointRow, source)
        if row is None:
            return None
        # A checkpoint from before mtimes were kept: its commit time stands in for the file's mtime.
        mtime_ns = row.mtime_ns if row.mtime_ns is not None else _epoch_ns(row.updated_at)
        return Checkpoint(
            row.source, row.path, row.device, row.inode, row.offset, row.line, row.fingerprint,
            mtime_ns, tuple(row.done or ()),
        )  # fmt: skip


def _epoch_ns(when: dt.datetime) -> int:
    if when.tzinfo is None:  # SQLite hands back naive datetimes; they were stored as UTC
        when = when.replace(tzinfo=dt.UTC)
    return int(when.timestamp() * 1e9)
