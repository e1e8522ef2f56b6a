"""Core types shared by every stage: the columnar ObservationBatch and the per-key answers joined onto it."""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import pyarrow as pa

if TYPE_CHECKING:
    import pandas as pd

# The one batch schema. Every collector emits exactly these columns in this order; nothing
# downstream knows which collector a row came from except through `collector`.
#   ts           UTC time of the request (end of request for proxies that log at the end)
#   collector    registry name of the collector ("squid", ...)
#   source_ip    internal client address as logged
#   source_user  authenticated user, or null
#   dest_host    destination hostname (lower-case) from the URL / CONNECT target, or null
#   dest_ip      destination address the proxy connected to, or null when unknown
#   dest_port    destination port, or null
#   protocol     "http", "https", "tunnel" (CONNECT), or another scheme
#   method       request method as logged
#   status       HTTP status (0 when none)
#   bytes_out    bytes sent toward the destination, null when the source does not log it
#   bytes_in     bytes delivered back to the client
#   sample_rate  1 for logs; N for 1-in-N sampled flows; 0 for a row that adds bytes to a request
#                another row counts (a Zeek conn row of a connection also in ssl.log or http.log)
#   egress       the request left the organisation (false: denied, cache hit, proxy error)
#   pii          kinds of personal data seen in the URL ("email,iban"), never the values; null: none
#   line, offset provenance: 1-based line number and byte offset in `ObservationBatch.source`
BATCH_SCHEMA = pa.schema(
    [
        ("ts", pa.timestamp("us", tz="UTC")),
        ("collector", pa.string()),
        ("source_ip", pa.string()),
        ("source_user", pa.string()),
        ("dest_host", pa.string()),
        ("dest_ip", pa.string()),
        ("dest_port", pa.int32()),
        ("protocol", pa.string()),
        ("method", pa.string()),
        ("status", pa.int32()),
        ("bytes_out", pa.int64()),
        ("bytes_in", pa.int64()),
        ("sample_rate", pa.int32()),
        ("egress", pa.bool_()),
        ("pii", pa.string()),
        ("line", pa.int64()),
        ("offset", pa.int64()),
    ]
)
COLUMNS: tuple[str, ...] = tuple(BATCH_SCHEMA.names)


def frame_from_table(table: pa.Table) -> pa.Table:
    """The table in BATCH_SCHEMA: its columns in schema order, cast to the schema's types."""
    return table.select(list(COLUMNS)).cast(BATCH_SCHEMA)


def empty_frame() -> pa.Table:
    return BATCH_SCHEMA.empty_table()


def as_pandas(table: pa.Table) -> pd.DataFrame:
    """A pandas view on Arrow dtypes, for inspection (tests, a notebook); the pipeline never needs it.

    pandas is imported here, not at module load: it costs ~0.5 s of start-up that ingest does not use.
    """
    import pandas as pd

    frame: pd.DataFrame = table.to_pandas(types_mapper=pd.ArrowDtype)
    return frame


@dataclass(frozen=True)
class Quarantined:
    """A line or datagram that could not be parsed: kept whole, with why and where."""

    source: str
    line: int | None
    offset: int | None
    reason: str
    raw: bytes
    field: str | None = None


@dataclass
class ObservationBatch:
    """The unit that flows: rows in BATCH_SCHEMA plus what was quarantined and the resume point.

    `source` names the input (e.g. "squid:/var/log/squid/access.log"); with a row's `line`
    and `offset` it is the row's origin. `checkpoint` is where reading resumes after this
    batch is committed; it is written in the same transaction as the batch's evidence.
    """

    collector: str
    source: str
    table: pa.Table
    quarantined: list[Quarantined] = field(default_factory=list)
    lines_read: int = 0
    blank_lines: int = 0
    checkpoint: Checkpoint | None = None

    def __len__(self) -> int:
        return int(self.table.num_rows)

    @property
    def frame(self) -> pd.DataFrame:
        return as_pandas(self.table)


@dataclass(frozen=True)
class Checkpoint:
    """Where a collector resumes: file identity (device, inode, fingerprint) and position."""

    source: str
    path: str
    device: int
    inode: int
    offset: int
    line: int
    fingerprint: str  # sha256 of the file's first bytes: tells a rotated/replaced file apart
    # The file's mtime when read: rotated generations written after it are newer (unread) ones.
    mtime_ns: int | None = None
    # Fingerprints of the last rotated generations read to their end: never read again, whatever
    # their mtime (a compressor that does not keep it makes an old generation look new).
    done: tuple[str, ...] = ()


class Outcome(StrEnum):
    PERMITTED = "permitted"
    UNAUTHORIZED = "unauthorized"
    REVIEW = "review"
    OUT_OF_SCOPE = "out_of_scope"


class Severity(StrEnum):
    INFO = "info"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


@dataclass(frozen=True)
class Destination:
    """What is known about one destination (host, IP), each fact kept apart with its source.

    `sources` maps each fact to where it came from (override, catalog file:line, cloud range
    file, GeoIP database, RIR fallback), so a DPO can defend every answer.
    """

    host: str | None
    ip: str | None
    located_country: str | None = None  # where the server is (GeoIP country)
    located_subdivision: str | None = None  # ISO 3166-2 suffix, e.g. "CN" for ES-CN (City DBs)
    located_city: str | None = None
    registered_country: str | None = None  # where the address block is registered
    represented_country: str | None = None  # e.g. a military base abroad (MaxMind)
    asn: int | None = None
    as_org: str | None = None
    provider: str | None = None
    legal_entity: str | None = None
    provider_seat: str | None = None  # country of the provider's legal seat
    region: str | None = None  # cloud region, e.g. eu-central-1
    region_country: str | None = None  # that region's country ("EU": a multi-region inside the EU)
    edge: bool = False  # a CDN/anycast edge: its location says where the edge is, not the data
    internal: bool = False  # private, loopback or operator-declared own network
    judged_country: str | None = None  # set by the resolver, with its reason in sources["country"]
    eea: bool | None = None  # None: country unknown
    confidence: str = "none"  # high / medium / low / none
    sources: tuple[tuple[str, str], ...] = ()  # (fact, where it came from)
    mmdb_build: str | None = None
    catalog_version: str | None = None

    @property
    def country(self) -> str | None:
        """The country the transfer is judged against (see Resolver for the order of evidence)."""
        if self.judged_country is not None:
            return self.judged_country
        if self.region_country:
            return self.region_country
        if self.edge:  # an edge's location is not where the data is processed
            return None
        return self.located_country or self.registered_country

    def as_dict(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "ip": self.ip,
            "country": self.country,
            "located_country": self.located_country,
            "located_subdivision": self.located_subdivision,
            "located_city": self.located_city,
            "registered_country": self.registered_country,
            "represented_country": self.represented_country,
            "asn": self.asn,
            "as_org": self.as_org,
            "provider": self.provider,
            "legal_entity": self.legal_entity,
            "provider_seat": self.provider_seat,
            "region": self.region,
            "region_country": self.region_country,
            "eea": self.eea,
            "edge": self.edge,
            "internal": self.internal,
            "confidence": self.confidence,
            "sources": dict(self.sources),
            "data_versions": {"mmdb_build": self.mmdb_build, "catalog": self.catalog_version},
        }


@dataclass(frozen=True)
class System:
    """The internal system a source belongs to (from the inventory in the config)."""

    name: str
    data_categories: tuple[str, ...]
    criticality: str = "normal"
    owner: str | None = None
    nis2_scope: bool = True


@dataclass(frozen=True)
class Step:
    """One step of the reasoning that led to a verdict, in the order it was taken."""

    rule_id: str
    location: str  # rule file:line
    result: str  # "pass" (go on), "match" (decided here), "skip"
    text: str


@dataclass(frozen=True)
class Verdict:
    """The judgement for one (system, destination, day), with its provenance."""

    outcome: Outcome
    article: str | None  # GDPR article the outcome rests on, e.g. "45", "46(2)(c)", "44"; None: no transfer
    basis: str  # human-readable legal basis
    rule_id: str
    rule_location: str  # file:line in rules/ or in the organisation's config
    pack_hash: str
    severity: Severity
    steps: tuple[Step, ...] = ()
    vendor: str | None = None


def is_ip(value: str) -> bool:
    """An IPv4 or IPv6 address literal (collectors tell peers from hostnames, resolvers hosts from IPs)."""
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def utc_day(ts: dt.datetime) -> dt.date:
    return ts.astimezone(dt.UTC).date()
