"""The evidence hash chain: canonical row hashes, batch digests, and verification of the whole chain."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from monitor.store.models import Batch, Evidence, Quarantine

GENESIS = "0" * 64
# Fields hashed per evidence row: everything but the row's own id and hash.
EVIDENCE_FIELDS = [c.name for c in Evidence.__table__.columns if c.name not in ("id", "row_hash")]
QUARANTINE_FIELDS = [c.name for c in Quarantine.__table__.columns if c.name not in ("id", "row_hash")]


def _canon(v: Any) -> Any:
    if v is None or type(v) in (str, int, bool, float):  # the common case, first
        return v
    if isinstance(v, dt.datetime):
        # SQLite returns naive datetimes; everything is stored as UTC
        if v.tzinfo is None:
            v = v.replace(tzinfo=dt.UTC)
        return v.astimezone(dt.UTC).isoformat()
    if isinstance(v, bytes):
        return v.hex()
    return v


def row_hash(values: dict[str, Any], fields: list[str]) -> str:
    """sha256 of the row as a JSON object with sorted keys, NULLs left out.

    Leaving NULLs out keeps old rows verifiable when a migration adds a nullable column, while
    setting any value to NULL (or from NULL) still changes the hash.

    The text is exactly `json.dumps({f: _canon(v)}, sort_keys=True, separators=(",", ":"),
    default=str)` (every stored row was hashed so; tests/unit/test_chain_hash.py holds the two to
    each other), written field by field: the common values (text, whole numbers, datetimes) are
    encoded directly, anything else through json.dumps. Several times faster than building the
    dict and dumping it, and the evidence rows of every batch pass through here.
    """
    keys = _KEYS.get(id(fields))
    if keys is None or keys[0] is not fields:
        keys = _KEYS[id(fields)] = (fields, [(f, _encode_str(f) + ":") for f in sorted(fields)])
    parts = []
    for f, k in keys[1]:
        v = values.get(f)
        if v is None:
            continue
        t = type(v)
        if t is str or t is dt.datetime:
            # A batch's rows repeat the same texts (system, provider, rule, ...) and window
            # times; their encoded pieces are kept (exact types only: equal values of these two
            # always encode alike, which 0.0 and -0.0, or True and 1, would not).
            piece = _PIECES.get((k, v))
            if piece is None:
                if len(_PIECES) > 100_000:
                    _PIECES.clear()
                piece = _PIECES[(k, v)] = k + _fragment(v)
            parts.append(piece)
        else:
            parts.append(k + _fragment(v))
    return hashlib.sha256(("{" + ",".join(parts) + "}").encode()).hexdigest()


_encode_str: Any = json.encoder.encode_basestring_ascii
_KEYS: dict[int, tuple[list[str], list[tuple[str, str]]]] = {}
_PIECES: dict[tuple[str, Any], str] = {}


def _fragment(v: Any) -> str:
    t = type(v)
    if t is str:
        return _encode_str(v)  # type: ignore[no-any-return]
    if t is int:
        return int.__repr__(v)
    if t is dt.datetime:
        return _encode_str(_canon(v))  # type: ignore[no-any-return]
    if t is bool:
        return "true" if v else "false"
    if t is list and all(type(x) is str for x in v):  # sample_origins
        return "[" + ",".join(map(_encode_str, v)) + "]"
    return json.dumps(_canon(v), sort_keys=True, separators=(",", ":"), default=str)


def batch_digest(row_hashes: list[str]) -> str:
    h = hashlib.sha256()
    for r in row_hashes:
        h.update(bytes.fromhex(r))
    return h.hexdigest()


def link_hash(prev_hash: str, digest: str, header: dict[str, Any]) -> str:
    doc = json.dumps({k: _canon(v) for k, v in header.items() if v is not None}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(f"{prev_hash}|{digest}|{doc}".encode()).hexdigest()


def batch_header(b: Batch) -> dict[str, Any]:
    """The batch's own fields that the link hash covers (its counts cannot change unseen)."""
    return {
        "seq": b.seq,
        "collector": b.collector,
        "source": b.source,
        "committed_at": b.committed_at,
        "lines_read": b.lines_read,
        "rows": b.rows,
        "quarantined": b.quarantined,
        "blank": b.blank,
        "no_destination": b.no_destination,
        "evidence_rows": b.evidence_rows,
        "first_ts": b.first_ts,
        "last_ts": b.last_ts,
    }


@dataclass
class ChainReport:
    ok: bool
    batches: int
    evidence_rows: int
    head_seq: int | None
    head_hash: str | None
    problems: list[str] = field(default_factory=list)
    first_bad_batch: int | None = None
    bad_evidence_ids: list[int] = field(default_factory=list)


def verify_chain(session: Session, limit_problems: int = 20) -> ChainReport:
    """Recompute every row hash, batch digest and link; report the first break and bad rows."""
    rep = ChainReport(ok=True, batches=0, evidence_rows=0, head_seq=None, head_hash=None)
    prev = GENESIS
    expected_seq = 1

    def bad(seq: int, msg: str) -> None:
        rep.ok = False
        if rep.first_bad_batch is None:
            rep.first_bad_batch = seq
        if len(rep.problems) < limit_problems:
            rep.problems.append(msg)

    for b in session.scalars(select(Batch).order_by(Batch.seq)):
        rep.batches += 1
        if b.seq != expected_seq:
            bad(b.seq, f"batch {b.seq}: expected sequence {expected_seq} (a batch is missing)")
        expected_seq = b.seq + 1
        hashes: list[str] = []
        ev = session.scalars(select(Evidence).where(Evidence.batch_seq == b.seq).order_by(Evidence.id))
        n_ev = 0
        for e in ev:
            n_ev += 1
            h = row_hash({f: getattr(e, f) for f in EVIDENCE_FIELDS}, EVIDENCE_FIELDS)
            if h != e.row_hash:
                rep.bad_evidence_ids.append(e.id)
                bad(b.seq, f"evidence row id={e.id} (batch {b.seq}) was changed after commit")
            hashes.append(e.row_hash)
        rep.evidence_rows += n_ev
        qs = session.scalars(select(Quarantine).where(Quarantine.batch_seq == b.seq).order_by(Quarantine.id))
        for q in qs:
            h = row_hash({f: getattr(q, f) for f in QUARANTINE_FIELDS}, QUARANTINE_FIELDS)
            if h != q.row_hash:
                bad(b.seq, f"quarantine row id={q.id} (batch {b.seq}) was changed after commit")
            hashes.append(q.row_hash)
        if n_ev != b.evidence_rows:
            bad(b.seq, f"batch {b.seq}: {n_ev} evidence rows, {b.evidence_rows} committed")
        if batch_digest(hashes) != b.digest:
            bad(b.seq, f"batch {b.seq}: digest mismatch (rows added, removed or rehashed)")
        if b.prev_hash != prev:
            bad(b.seq, f"batch {b.seq}: prev_hash does not match batch {b.seq - 1}")
        if link_hash(b.prev_hash, b.digest, batch_header(b)) != b.hash:
            bad(b.seq, f"batch {b.seq}: link hash mismatch (batch header changed)")
        prev = b.hash
        rep.head_seq, rep.head_hash = b.seq, b.hash
    return rep
