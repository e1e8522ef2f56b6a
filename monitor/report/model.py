"""Weekly report values: the plain, frozen data a report is rendered from, and ISO-week helpers."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from monitor.errors import UsageError

WEEK_RE = re.compile(r"^(\d{4})-[Ww](\d{2})$")


# --------------------------------------------------------------------------- values


@dataclass(frozen=True)
class OutcomeCounts:
    """Requests per verdict outcome."""

    permitted: int = 0
    unauthorized: int = 0
    review: int = 0
    out_of_scope: int = 0


@dataclass(frozen=True)
class Totals:
    requests: int
    egress_requests: int
    bytes_in: int
    bytes_out: int | None  # None: no source in the period logs bytes sent
    destinations: int  # distinct dest_host, or dest_ip when there is no host
    systems: int
    countries: int  # distinct known countries
    outcomes: OutcomeCounts
    unauthorized_destinations: int
    review_destinations: int
    evidence_rows: int


@dataclass(frozen=True)
class CountryRow:
    country: str  # ISO code, or "unknown"
    eea: bool | None
    requests: int
    destinations: int
    outcomes: OutcomeCounts


@dataclass(frozen=True)
class BasisRow:
    outcome: str
    article: str | None
    basis: str
    requests: int
    destinations: int


@dataclass(frozen=True)
class TransferRow:
    """Transfers of one system to one destination under one rule, summed over the period."""

    system: str
    data_categories: str
    dest_host: str | None
    dest_ip: str | None
    country: str | None
    provider: str | None
    requests: int
    egress_requests: int
    bytes_out: int | None
    first_seen: dt.datetime
    last_seen: dt.datetime
    rule_id: str
    rule_location: str
    article: str | None
    severity: str

    @property
    def destination(self) -> str:
        return self.dest_host or self.dest_ip or "unknown"


@dataclass(frozen=True)
class QuarantineSummary:
    """Ingest health of the batches committed during the period."""

    count: int
    top_reasons: tuple[tuple[str, int], ...]
    batches: int
    lines_read: int
    rows: int
    blank: int
    no_destination: int


@dataclass(frozen=True)
class ChainStatus:
    ok: bool
    batches: int
    evidence_rows: int
    head_seq: int | None
    head_hash: str | None
    problems: tuple[str, ...]
    first_bad_batch: int | None
    bad_evidence_ids: tuple[int, ...]


@dataclass(frozen=True)
class DataVersion:
    mmdb_build: str | None
    catalog_version: str | None
    pack_hash: str
    requests: int


@dataclass(frozen=True)
class WeeklyReport:
    organisation: str
    week: str  # ISO "YYYY-Www"
    period_start: dt.datetime  # Monday 00:00 UTC, inclusive
    period_end: dt.datetime  # next Monday 00:00 UTC, exclusive
    generated_at: dt.datetime
    totals: Totals
    by_country: tuple[CountryRow, ...]
    by_basis: tuple[BasisRow, ...]
    unauthorized: tuple[TransferRow, ...]
    review: tuple[TransferRow, ...]
    quarantine: QuarantineSummary
    chain: ChainStatus
    data_versions: tuple[DataVersion, ...]
    mmdb_warnings: tuple[str, ...]


# --------------------------------------------------------------------------- weeks


def parse_week(week: str) -> tuple[str, dt.datetime, dt.datetime]:
    """'2025-W07' -> (canonical week, Monday 00:00 UTC, next Monday 00:00 UTC)."""
    m = WEEK_RE.match(week.strip())
    if m is None:
        raise UsageError(f"week {week!r} is not an ISO week: expected YYYY-Www, e.g. 2025-W07")
    year, num = int(m.group(1)), int(m.group(2))
    try:
        monday = dt.date.fromisocalendar(year, num, 1)
    except ValueError:
        raise UsageError(
            f"week {week!r} does not exist: {year} has weeks 01 to {dt.date(year, 12, 28).isocalendar().week:02d}"
        ) from None
    start = dt.datetime.combine(monday, dt.time(), tzinfo=dt.UTC)
    return f"{year:04d}-W{num:02d}", start, start + dt.timedelta(days=7)


def current_week(today: dt.date) -> str:
    iso = today.isocalendar()
    return f"{iso.year:04d}-W{iso.week:02d}"


def previous_week(today: dt.date) -> str:
    return current_week(today - dt.timedelta(days=7))


# --------------------------------------------------------------------------- helpers
