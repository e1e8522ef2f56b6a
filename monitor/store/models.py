"""SQLAlchemy 2 models of the evidence store; migrations/ creates exactly these tables."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# SQLite only auto-increments INTEGER PRIMARY KEY; BigInteger elsewhere.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    pass


class Batch(Base):
    """One committed ingest batch: a link of the evidence hash chain."""

    __tablename__ = "batches"
    seq: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=False)
    collector: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(Text)
    committed_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    lines_read: Mapped[int] = mapped_column(BigInteger)
    rows: Mapped[int] = mapped_column(BigInteger)
    quarantined: Mapped[int] = mapped_column(BigInteger)
    blank: Mapped[int] = mapped_column(BigInteger)
    no_destination: Mapped[int] = mapped_column(BigInteger)
    evidence_rows: Mapped[int] = mapped_column(Integer)
    # time span of the batch's rows (None: no rows): reports count a batch's lines and
    # quarantine in the periods its data covers, not the day it happened to be ingested
    first_ts: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    last_ts: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    digest: Mapped[str] = mapped_column(String(64))  # over the batch's evidence + quarantine rows
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))  # sha256(prev_hash || digest || header)


class ChainHead(Base):
    """A single row; locking it serialises appends to the chain across writers."""

    __tablename__ = "chain_head"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))


class Evidence(Base):
    """Aggregate per (window, system, destination, verdict) within one batch."""

    __tablename__ = "evidence"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    batch_seq: Mapped[int] = mapped_column(ForeignKey("batches.seq"), index=True)
    window_start: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), index=True)
    window_end: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    collector: Mapped[str] = mapped_column(String(64))
    system: Mapped[str] = mapped_column(String(200), index=True)
    data_categories: Mapped[str] = mapped_column(Text)  # comma-separated, sorted
    dest_host: Mapped[str | None] = mapped_column(Text)
    dest_ip: Mapped[str | None] = mapped_column(String(64))
    located_country: Mapped[str | None] = mapped_column(String(2))
    registered_country: Mapped[str | None] = mapped_column(String(2))
    country: Mapped[str | None] = mapped_column(String(2), index=True)  # the one judged
    eea: Mapped[bool | None] = mapped_column(Boolean)
    asn: Mapped[int | None] = mapped_column(BigInteger)
    as_org: Mapped[str | None] = mapped_column(Text)
    provider: Mapped[str | None] = mapped_column(Text)
    provider_seat: Mapped[str | None] = mapped_column(String(2))
    legal_entity: Mapped[str | None] = mapped_column(Text)
    region: Mapped[str | None] = mapped_column(String(64))
    region_country: Mapped[str | None] = mapped_column(String(2))
    edge: Mapped[bool | None] = mapped_column(Boolean)
    confidence: Mapped[str] = mapped_column(String(16))
    outcome: Mapped[str] = mapped_column(String(16), index=True)
    article: Mapped[str | None] = mapped_column(String(32))
    basis: Mapped[str] = mapped_column(Text)
    rule_id: Mapped[str] = mapped_column(String(200))
    rule_location: Mapped[str] = mapped_column(Text)
    pack_hash: Mapped[str] = mapped_column(String(64))
    severity: Mapped[str] = mapped_column(String(16))
    vendor: Mapped[str | None] = mapped_column(Text)
    mmdb_build: Mapped[str | None] = mapped_column(Text)
    catalog_version: Mapped[str | None] = mapped_column(Text)
    requests: Mapped[int] = mapped_column(BigInteger)  # rows seen (sampled rows weighted)
    egress_requests: Mapped[int] = mapped_column(BigInteger)  # of which actually left
    bytes_out: Mapped[int | None] = mapped_column(BigInteger)
    bytes_in: Mapped[int] = mapped_column(BigInteger)
    first_seen: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    last_seen: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    sample_origins: Mapped[list[str]] = mapped_column(JSON)
    pii_kinds: Mapped[str | None] = mapped_column(String(64))  # kinds seen in URLs, never values
    status_blocked: Mapped[int | None] = mapped_column(BigInteger)  # 403/451
    status_rate_limited: Mapped[int | None] = mapped_column(BigInteger)  # 429
    status_5xx: Mapped[int | None] = mapped_column(BigInteger)
    status_timeout: Mapped[int | None] = mapped_column(BigInteger)  # no answer, 408, 504
    row_hash: Mapped[str] = mapped_column(String(64))

    __table_args__ = (Index("ix_evidence_dest", "dest_host", "dest_ip"),)


class Quarantine(Base):
    """A line that could not be parsed, kept whole with why and where."""

    __tablename__ = "quarantine"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    batch_seq: Mapped[int] = mapped_column(ForeignKey("batches.seq"), index=True)
    collector: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(Text)
    line: Mapped[int | None] = mapped_column(BigInteger)
    offset: Mapped[int | None] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(Text)
    field: Mapped[str | None] = mapped_column(String(64))
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    row_hash: Mapped[str] = mapped_column(String(64))


class CheckpointRow(Base):
    """Where a source resumes; written in the same transaction as the batch it ends."""

    __tablename__ = "checkpoints"
    source: Mapped[str] = mapped_column(String(500), primary_key=True)
    path: Mapped[str] = mapped_column(Text)
    device: Mapped[int] = mapped_column(BigInteger)
    inode: Mapped[int] = mapped_column(BigInteger)
    offset: Mapped[int] = mapped_column(BigInteger)
    line: Mapped[int] = mapped_column(BigInteger)
    fingerprint: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    mtime_ns: Mapped[int | None] = mapped_column(BigInteger)
    done: Mapped[list[str] | None] = mapped_column(JSON)


class AlertOutbox(Base):
    """An alert and its suppression window: repeats of its dedup_key until window_end are counted here."""

    __tablename__ = "alert_outbox"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    dedup_key: Mapped[str] = mapped_column(String(500))
    batch_seq: Mapped[int] = mapped_column(ForeignKey("batches.seq"))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    severity: Mapped[str] = mapped_column(String(16))
    summary: Mapped[str] = mapped_column(Text)
    payload: Mapped[dict[str, object]] = mapped_column(JSON)
    delivered_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    window_end: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))  # null: open (pre-0006)
    repeats: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    repeat_requests: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    last_repeat_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    summarised_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (Index("ix_alert_dedup_window", "dedup_key", "window_end"),)


class AlertChannel(Base):
    """A delivery channel as first seen: it gets the alerts created after `cursor` (an alert id).

    A channel added to the config later does not replay the whole history; the deliverer moves
    the cursor as it queues deliveries, in the same transaction.
    """

    __tablename__ = "alert_channels"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    cursor: Mapped[int] = mapped_column(BigInteger)
    first_seen: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class AlertDelivery(Base):
    """One alert to one channel: pending until sent; every attempt is counted and the next one timed."""

    __tablename__ = "alert_deliveries"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alert_outbox.id"))
    channel: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16))  # pending | sent
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    last_attempt_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        UniqueConstraint("alert_id", "channel", name="uq_delivery_alert_channel"),
        Index("ix_delivery_due", "state", "next_attempt_at"),
    )


class AlertAttempt(Base):
    """Each try of a delivery, kept for the SOC's "why did this not arrive?"."""

    __tablename__ = "alert_attempts"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("alert_deliveries.id"), index=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    ok: Mapped[bool] = mapped_column(Boolean)
    error: Mapped[str | None] = mapped_column(Text)
    seconds: Mapped[float] = mapped_column(Float)


class Incident(Base):
    """What the legal clocks run on: opened when xborder becomes aware (the first alert's time)."""

    __tablename__ = "incidents"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(500), index=True)  # the alert dedup key it grew from
    kind: Mapped[str] = mapped_column(String(32))  # unauthorized_transfer
    title: Mapped[str] = mapped_column(Text)
    system: Mapped[str | None] = mapped_column(String(200))
    severity: Mapped[str] = mapped_column(String(16))
    aware_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(16))  # open | acknowledged | closed
    first_alert_id: Mapped[int] = mapped_column(ForeignKey("alert_outbox.id"))
    closed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class IncidentClock(Base):
    """One legal deadline of an incident; done when someone records that it was met (or not needed)."""

    __tablename__ = "incident_clocks"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id"), index=True)
    clock: Mapped[str] = mapped_column(String(64))
    due_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    done_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    done_by: Mapped[str | None] = mapped_column(String(200))
    reminded: Mapped[list[str] | None] = mapped_column(JSON)  # reminders sent ("12h", "2h", "overdue")


class IncidentEvent(Base):
    """Who decided what and when: opened, acknowledged, filed, note, closed, reminded."""

    __tablename__ = "incident_events"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id"), index=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(32))
    note: Mapped[str | None] = mapped_column(Text)
