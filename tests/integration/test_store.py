"""The evidence store on SQLite and a real PostgreSQL: one transaction per batch, chain, dedup, checkpoints."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session, sessionmaker

from monitor.errors import StoreError
from monitor.records import Checkpoint, Quarantined
from monitor.store.chain import verify_chain
from monitor.store.models import AlertOutbox, Batch, CheckpointRow, Evidence, Quarantine
from monitor.store.session import current_revision, head_revision, make_engine, open_store
from monitor.store.writer import BatchRecord, commit_batch, load_checkpoint

T0 = dt.datetime(2026, 11, 16, 9, 0, tzinfo=dt.UTC)


def ev(
    system: str = "checkout",
    host: str = "api.example.com",
    outcome: str = "unauthorized",
    requests: int = 3,
    start: dt.datetime = T0,
) -> dict[str, Any]:
    return {
        "window_start": start,
        "window_end": start + dt.timedelta(hours=1),
        "collector": "squid",
        "system": system,
        "data_categories": "customer-personal",
        "dest_host": host,
        "dest_ip": "198.51.100.7",
        "located_country": None,
        "registered_country": "US",
        "country": "US",
        "eea": False,
        "asn": None,
        "as_org": None,
        "provider": None,
        "provider_seat": None,
        "confidence": "low",
        "outcome": outcome,
        "article": "44",
        "basis": "none",
        "rule_id": "gdpr.art44.unauthorized",
        "rule_location": "rules/gdpr/chapter5.yaml:54",
        "pack_hash": "ab" * 32,
        "severity": "high",
        "vendor": None,
        "mmdb_build": "iptocc@test",
        "catalog_version": None,
        "requests": requests,
        "egress_requests": requests,
        "bytes_out": None,
        "bytes_in": 100 * requests,
        "first_seen": start + dt.timedelta(minutes=1),
        "last_seen": start + dt.timedelta(minutes=9),
        "sample_origins": ["squid:/x:1"],
    }


def cp(offset: int, line: int) -> Checkpoint:
    done = ("e" * 64, "d" * 64)  # generations read to their end: kept with the checkpoint
    mtime_ns = 1_796_000_000 * 10**9
    return Checkpoint("squid:/var/log/a.log", "/var/log/a.log", 1, 42, offset, line, "f" * 64, mtime_ns, done)


def rec(
    evidence: list[dict[str, Any]],
    checkpoint: Checkpoint | None = None,
    resumed: Checkpoint | None = None,
    alerts: list[dict[str, Any]] | None = None,
    quarantined: list[Quarantined] | None = None,
) -> BatchRecord:
    q = quarantined or []
    return BatchRecord(
        "squid",
        "squid:/var/log/a.log",
        lines_read=len(evidence) + len(q),
        rows=len(evidence),
        blank=0,
        no_destination=0,
        evidence=evidence,
        quarantined=q,
        checkpoint=checkpoint,
        resumed_from=resumed,
        alerts=alerts or [],
    )


def alert(key: str) -> dict[str, Any]:
    return {"dedup_key": key, "severity": "high", "summary": f"alert {key}", "payload": {"k": key}}


def test_new_store_is_migrated_to_head(db_url: str) -> None:
    factory = open_store(db_url)
    engine = factory.kw["bind"]
    assert current_revision(engine) == head_revision()
    with factory() as s:
        assert s.execute(text("select seq, hash from chain_head")).one() == (0, "0" * 64)
    engine.dispose()


def test_batch_is_one_transaction_with_checkpoint_and_alerts(store: sessionmaker[Session]) -> None:
    q = Quarantined("squid:/var/log/a.log", 7, 600, "field 'time': expected epoch seconds", b"garbage", "time")
    res = commit_batch(store, rec([ev(), ev(host="b.example")], cp(1000, 11), None, [alert("k1"), alert("k2")], [q]))
    assert (res.seq, res.evidence_rows, res.quarantined, res.new_alerts) == (1, 2, 1, 2)
    with store() as s:
        assert s.scalar(select(func.count()).select_from(Evidence)) == 2
        qrow = s.scalars(select(Quarantine)).one()
        assert (qrow.line, qrow.raw, qrow.field) == (7, b"garbage", "time")
        assert s.get(CheckpointRow, "squid:/var/log/a.log").offset == 1000
    assert load_checkpoint(store, "squid:/var/log/a.log") == cp(1000, 11)
    rep = verify_chain(store())
    assert rep.ok and rep.batches == 1 and rep.head_hash == res.hash


def test_checkpoint_without_mtime_loads_with_its_commit_time(store: sessionmaker[Session]) -> None:
    """A checkpoint written before migration 0004 has no mtime: its commit time stands in."""
    old = Checkpoint("squid:/var/log/a.log", "/var/log/a.log", 1, 42, 10, 2, "f" * 64)
    before = dt.datetime.now(dt.UTC).timestamp() * 1e9
    commit_batch(store, rec([ev()], old, None))
    got = load_checkpoint(store, old.source)
    assert got is not None and got.mtime_ns is not None and got.done == ()
    assert before - 1e9 <= got.mtime_ns <= dt.datetime.now(dt.UTC).timestamp() * 1e9 + 1e9


def test_alerts_are_deduplicated_across_batches(store: sessionmaker[Session]) -> None:
    commit_batch(store, rec([ev()], cp(10, 2), None, [alert("same")]))
    res = commit_batch(store, rec([ev()], cp(20, 3), cp(10, 2), [alert("same"), alert("other")]))
    assert res.new_alerts == 1
    with store() as s:
        assert sorted(s.scalars(select(AlertOutbox.dedup_key))) == ["other", "same"]


def test_stale_checkpoint_is_refused_and_writes_nothing(store: sessionmaker[Session]) -> None:
    commit_batch(store, rec([ev()], cp(10, 2), None))
    # a second ingest that started from "no checkpoint" lost the race: it must not commit
    with pytest.raises(StoreError, match="advanced this source meanwhile"):
        commit_batch(store, rec([ev()], cp(10, 2), None))
    with store() as s:
        assert s.scalar(select(func.count()).select_from(Batch)) == 1
        assert s.scalar(select(func.count()).select_from(Evidence)) == 1


def test_chain_links_and_tamper_detection_names_the_row(store: sessionmaker[Session]) -> None:
    commit_batch(store, rec([ev(requests=1)], cp(10, 2), None))
    commit_batch(store, rec([ev(requests=2), ev(requests=5, host="c.example")], cp(20, 4), cp(10, 2)))
    commit_batch(store, rec([ev(requests=3)], cp(30, 5), cp(20, 4)))
    with store() as s:
        rep = verify_chain(s)
        assert rep.ok and rep.batches == 3 and rep.evidence_rows == 4
        target = s.scalars(select(Evidence).where(Evidence.dest_host == "c.example")).one()
        tid = target.id
    with store.begin() as s:
        s.execute(text("update evidence set requests = 1 where id = :i"), {"i": tid})
    with store() as s:
        rep = verify_chain(s)
    assert not rep.ok
    assert rep.bad_evidence_ids == [tid]
    assert rep.first_bad_batch == 2
    assert any(f"id={tid}" in p for p in rep.problems)


def test_deleting_a_row_or_batch_is_detected(store: sessionmaker[Session]) -> None:
    commit_batch(store, rec([ev(), ev(host="d.example")], cp(10, 2), None))
    commit_batch(store, rec([ev()], cp(20, 3), cp(10, 2)))
    with store.begin() as s:
        s.execute(text("delete from evidence where dest_host = 'd.example'"))
    with store() as s:
        rep = verify_chain(s)
    assert not rep.ok and rep.first_bad_batch == 1


def test_old_revision_requires_explicit_upgrade(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path}/old.db"
    engine = make_engine(url)
    with engine.begin() as c:
        c.execute(text("create table alembic_version (version_num varchar(32) primary key)"))
        c.execute(text("insert into alembic_version values ('0000')"))
    engine.dispose()
    with pytest.raises(StoreError, match="xborder db upgrade"):
        open_store(url)
