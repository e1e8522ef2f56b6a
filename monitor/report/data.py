"""Weekly report data: reads the evidence store for one ISO week into plain, frozen values (no ORM)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, case, distinct, func, select
from sqlalchemy.orm import Session

from monitor.records import Outcome, Severity
from monitor.report.model import (
    BasisRow,
    ChainStatus,
    CountryRow,
    DataVersion,
    OutcomeCounts,
    QuarantineSummary,
    Totals,
    TransferRow,
    WeeklyReport,
    parse_week,
)
from monitor.store.chain import verify_chain
from monitor.store.models import Batch, Evidence, Quarantine

# Report order: what needs action first.
OUTCOME_ORDER: tuple[str, ...] = (
    Outcome.UNAUTHORIZED,
    Outcome.REVIEW,
    Outcome.PERMITTED,
    Outcome.OUT_OF_SCOPE,
)
SEVERITY_ORDER: tuple[str, ...] = (
    Severity.CRITICAL,
    Severity.HIGH,
    Severity.MEDIUM,
    Severity.LOW,
    Severity.INFO,
)
TOP_REASONS = 10


def _int(v: Any) -> int:
    # SUM() is NULL over no rows, and a Decimal on PostgreSQL (numeric)
    return 0 if v is None else int(v)


def _opt_int(v: Any) -> int | None:
    return None if v is None else int(v)


def _utc(v: dt.datetime) -> dt.datetime:
    # SQLite hands back naive datetimes; the store writes UTC only
    return v.replace(tzinfo=dt.UTC) if v.tzinfo is None else v.astimezone(dt.UTC)


def _dest() -> ColumnElement[Any]:
    return func.coalesce(Evidence.dest_host, Evidence.dest_ip)


def _n_dest() -> ColumnElement[Any]:
    return func.count(distinct(_dest()))


def _sum_outcome(outcome: str) -> ColumnElement[Any]:
    return func.sum(case((Evidence.outcome == outcome, Evidence.requests), else_=0))


def _outcome_cols() -> list[ColumnElement[Any]]:
    return [_sum_outcome(o) for o in Outcome]


def _outcomes(values: Sequence[Any]) -> OutcomeCounts:
    by_name = {o.value: _int(v) for o, v in zip(Outcome, values, strict=True)}
    return OutcomeCounts(**by_name)


# --------------------------------------------------------------------------- queries


def _totals(session: Session, in_period: ColumnElement[bool]) -> Totals:
    row = session.execute(
        select(
            func.sum(Evidence.requests),
            func.sum(Evidence.egress_requests),
            func.sum(Evidence.bytes_in),
            func.sum(Evidence.bytes_out),
            _n_dest(),
            func.count(distinct(Evidence.system)),
            func.count(distinct(Evidence.country)),
            func.count(),
            *_outcome_cols(),
        ).where(in_period)
    ).one()
    per_outcome: dict[str, Any] = {
        r[0]: r[1]
        for r in session.execute(select(Evidence.outcome, _n_dest()).where(in_period).group_by(Evidence.outcome))
    }
    return Totals(
        requests=_int(row[0]),
        egress_requests=_int(row[1]),
        bytes_in=_int(row[2]),
        bytes_out=_opt_int(row[3]),
        destinations=_int(row[4]),
        systems=_int(row[5]),
        countries=_int(row[6]),
        evidence_rows=_int(row[7]),
        outcomes=_outcomes(row[8:]),
        unauthorized_destinations=_int(per_outcome.get(Outcome.UNAUTHORIZED.value)),
        review_destinations=_int(per_outcome.get(Outcome.REVIEW.value)),
    )


def _by_country(session: Session, in_period: ColumnElement[bool]) -> list[CountryRow]:
    # max() over a CASE instead of bool_or(): SQLite has no bool_or, PostgreSQL no max(boolean)
    eea = func.max(case((Evidence.eea.is_(True), 1), (Evidence.eea.is_(False), 0), else_=None))
    rows = session.execute(
        select(
            Evidence.country,
            eea,
            func.sum(Evidence.requests),
            _n_dest(),
            *_outcome_cols(),
        )
        .where(in_period)
        .group_by(Evidence.country)
    ).all()
    out = [
        CountryRow(
            country=r[0] or "unknown",
            eea=None if r[1] is None else bool(r[1]),
            requests=_int(r[2]),
            destinations=_int(r[3]),
            outcomes=_outcomes(r[4:]),
        )
        for r in rows
    ]
    out.sort(key=lambda c: (-c.requests, c.country == "unknown", c.country))
    return out


def _by_basis(session: Session, in_period: ColumnElement[bool]) -> list[BasisRow]:
    rows = session.execute(
        select(
            Evidence.outcome,
            Evidence.article,
            Evidence.basis,
            func.sum(Evidence.requests),
            _n_dest(),
        )
        .where(in_period)
        .group_by(Evidence.outcome, Evidence.article, Evidence.basis)
    ).all()
    out = [BasisRow(r[0], r[1], r[2], _int(r[3]), _int(r[4])) for r in rows]
    out.sort(key=lambda b: (_rank(OUTCOME_ORDER, b.outcome), -b.requests, b.article or "", b.basis))
    return out


def _rank(order: tuple[str, ...], value: str) -> int:
    return order.index(value) if value in order else len(order)


def _transfers(session: Session, in_period: ColumnElement[bool], outcome: Outcome) -> list[TransferRow]:
    # The rule columns are part of the key: if the verdict for a destination changed within
    # the week (rule pack updated), each rule keeps its own line rather than one hiding the other.
    key = (
        Evidence.system,
        Evidence.data_categories,
        Evidence.dest_host,
        Evidence.dest_ip,
        Evidence.country,
        Evidence.provider,
        Evidence.rule_id,
        Evidence.rule_location,
        Evidence.article,
        Evidence.severity,
    )
    rows = session.execute(
        select(
            *key,
            func.sum(Evidence.requests),
            func.sum(Evidence.egress_requests),
            func.sum(Evidence.bytes_out),
            func.min(Evidence.first_seen),
            func.max(Evidence.last_seen),
        )
        .where(in_period, Evidence.outcome == outcome.value)
        .group_by(*key)
    ).all()
    out = [
        TransferRow(
            system=r[0],
            data_categories=r[1],
            dest_host=r[2],
            dest_ip=r[3],
            country=r[4],
            provider=r[5],
            rule_id=r[6],
            rule_location=r[7],
            article=r[8],
            severity=r[9],
            requests=_int(r[10]),
            egress_requests=_int(r[11]),
            bytes_out=_opt_int(r[12]),
            first_seen=_utc(r[13]),
            last_seen=_utc(r[14]),
        )
        for r in rows
    ]
    out.sort(
        key=lambda t: (
            _rank(SEVERITY_ORDER, t.severity),
            -t.requests,
            t.system,
            t.destination,
            t.first_seen,
        )
    )
    return out


def _quarantine(session: Session, start: dt.datetime, end: dt.datetime) -> QuarantineSummary:
    # a batch counts in every period its rows overlap; one without rows, in the period it was committed
    committed = ((Batch.first_ts < end) & (Batch.last_ts >= start)) | (
        Batch.first_ts.is_(None) & (Batch.committed_at >= start) & (Batch.committed_at < end)
    )
    count = session.execute(
        select(func.count(Quarantine.id)).join(Batch, Batch.seq == Quarantine.batch_seq).where(committed)
    ).scalar_one()
    n = func.count(Quarantine.id)
    reasons = session.execute(
        select(Quarantine.reason, n)
        .join(Batch, Batch.seq == Quarantine.batch_seq)
        .where(committed)
        .group_by(Quarantine.reason)
        .order_by(n.desc(), Quarantine.reason)
        .limit(TOP_REASONS)
    ).all()
    b = session.execute(
        select(
            func.count(Batch.seq),
            func.sum(Batch.lines_read),
            func.sum(Batch.rows),
            func.sum(Batch.blank),
            func.sum(Batch.no_destination),
        ).where(committed)
    ).one()
    return QuarantineSummary(
        count=_int(count),
        top_reasons=tuple((r[0], _int(r[1])) for r in reasons),
        batches=_int(b[0]),
        lines_read=_int(b[1]),
        rows=_int(b[2]),
        blank=_int(b[3]),
        no_destination=_int(b[4]),
    )


def _data_versions(session: Session, in_period: ColumnElement[bool]) -> list[DataVersion]:
    key = (Evidence.mmdb_build, Evidence.catalog_version, Evidence.pack_hash)
    rows = session.execute(select(*key, func.sum(Evidence.requests)).where(in_period).group_by(*key)).all()
    out = [DataVersion(r[0], r[1], r[2], _int(r[3])) for r in rows]
    out.sort(key=lambda v: (-v.requests, v.pack_hash, v.mmdb_build or "", v.catalog_version or ""))
    return out


def _chain(session: Session) -> ChainStatus:
    rep = verify_chain(session)
    return ChainStatus(
        ok=rep.ok,
        batches=rep.batches,
        evidence_rows=rep.evidence_rows,
        head_seq=rep.head_seq,
        head_hash=rep.head_hash,
        problems=tuple(rep.problems),
        first_bad_batch=rep.first_bad_batch,
        bad_evidence_ids=tuple(rep.bad_evidence_ids),
    )


def weekly_report_data(
    session: Session,
    week: str,
    *,
    organisation: str,
    generated_at: dt.datetime,
    mmdb_warnings: Sequence[str] = (),
) -> WeeklyReport:
    """Everything the weekly DPO report shows for `week` (evidence by window_start in the week)."""
    week, start, end = parse_week(week)
    in_period = (Evidence.window_start >= start) & (Evidence.window_start < end)
    return WeeklyReport(
        organisation=organisation,
        week=week,
        period_start=start,
        period_end=end,
        generated_at=_utc(generated_at),
        totals=_totals(session, in_period),
        by_country=tuple(_by_country(session, in_period)),
        by_basis=tuple(_by_basis(session, in_period)),
        unauthorized=tuple(_transfers(session, in_period, Outcome.UNAUTHORIZED)),
        review=tuple(_transfers(session, in_period, Outcome.REVIEW)),
        quarantine=_quarantine(session, start, end),
        chain=_chain(session),
        data_versions=tuple(_data_versions(session, in_period)),
        mmdb_warnings=tuple(mmdb_warnings),
    )
