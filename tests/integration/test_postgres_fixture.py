"""The test harness itself: a real PostgreSQL per session, a fresh database per test."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, inspect, select, text
from sqlalchemy.orm import Session

from monitor.store.models import AlertOutbox, Base, Batch

REPO_ROOT = Path(__file__).resolve().parents[2]


def _engine(url: str) -> Iterator[Engine]:
    engine = create_engine(url)
    try:
        yield engine
    finally:
        # Undisposed pooled connections would raise ResourceWarning (an error here) at GC.
        engine.dispose()


@pytest.fixture
def pg_engine(pg_url: str) -> Iterator[Engine]:
    yield from _engine(pg_url)


@pytest.fixture
def db_engine(db_url: str) -> Iterator[Engine]:
    yield from _engine(db_url)


@pytest.mark.postgres
def test_server_is_real_postgresql(pg_engine: Engine) -> None:
    with pg_engine.connect() as conn:
        version = conn.execute(text("SELECT version()")).scalar_one()
        assert "PostgreSQL" in version
        # Reached over TCP on loopback, not through a socket left over from elsewhere.
        assert conn.execute(text("SELECT inet_server_addr()::text")).scalar_one() == "127.0.0.1/32"
        assert conn.execute(text("SHOW fsync")).scalar_one() == "off"


_seen_databases: list[str] = []


@pytest.mark.postgres
@pytest.mark.parametrize("run", ["first", "second"])
def test_each_test_gets_its_own_empty_database(pg_engine: Engine, run: str) -> None:
    with pg_engine.begin() as conn:
        dbname = conn.execute(text("SELECT current_database()")).scalar_one()
        assert inspect(conn).get_table_names() == [], "database is not empty"
        assert dbname not in _seen_databases
        for earlier in _seen_databases:
            # The previous test's database was dropped at its teardown.
            gone = conn.execute(
                text("SELECT count(*) FROM pg_database WHERE datname = :n"), {"n": earlier}
            ).scalar_one()
            assert gone == 0, f"database {earlier} outlived its test"
        # Leave something behind; the next test must not see it.
        conn.execute(text("CREATE TABLE left_behind (x int)"))
    _seen_databases.append(dbname)


def test_store_models_round_trip(db_engine: Engine, request: pytest.FixtureRequest) -> None:
    # db_url is parametrized: this runs as [sqlite] and as [postgres] (marked `postgres`).
    backend = request.node.callspec.params["db_url"]
    assert db_engine.dialect.name == {"sqlite": "sqlite", "postgres": "postgresql"}[backend]
    assert (request.node.get_closest_marker("postgres") is not None) == (backend == "postgres")

    Base.metadata.create_all(db_engine)
    now = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)
    with Session(db_engine) as session, session.begin():
        session.add(
            Batch(
                seq=1,
                collector="squid",
                source="/var/log/squid/access.log",
                committed_at=now,
                lines_read=10,
                rows=9,
                quarantined=1,
                blank=0,
                no_destination=0,
                evidence_rows=2,
                digest="d" * 64,
                prev_hash="0" * 64,
                hash="h" * 64,
            )
        )
        session.flush()
        session.add(
            AlertOutbox(
                dedup_key="crm->us",
                batch_seq=1,
                created_at=now,
                severity="high",
                summary="unauthorized transfer",
                payload={"country": "US", "bytes": 123},
            )
        )
    with Session(db_engine) as session:
        batch = session.execute(select(Batch)).scalar_one()
        assert (batch.seq, batch.rows, batch.hash) == (1, 9, "h" * 64)
        alert = session.execute(select(AlertOutbox)).scalar_one()
        assert alert.payload == {"country": "US", "bytes": 123}
        assert alert.attempts == 0 and alert.delivered_at is None


def test_fixtures_real_points_at_shared_fixtures(fixtures_real: Path) -> None:
    assert fixtures_real.is_dir()
    assert fixtures_real == REPO_ROOT.parent / "shared" / "fixtures" / "real"


def _run_without_server(ci: bool, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["PG_BINDIR"] = str(tmp_path)  # an empty dir: no server binaries anywhere
    if ci:
        env["CI"] = "true"
    target = f"{Path(__file__).resolve()}::test_server_is_real_postgresql"
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", target],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("ci", [False, True], ids=["local", "ci"])
def test_missing_server_skips_locally_but_fails_in_ci(ci: bool, tmp_path: Path) -> None:
    res = _run_without_server(ci, tmp_path)
    output = res.stdout + res.stderr
    if ci:
        assert res.returncode == 1, output
        assert "1 error" in output and "PostgreSQL server binaries not found" in output, output
    else:
        assert res.returncode == 0, output
        assert "1 skipped" in output, output
