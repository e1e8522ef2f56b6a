"""Opens the evidence store (SQLite WAL or PostgreSQL) and keeps its schema at the Alembic head."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from monitor.errors import StoreError


def migrations_dir() -> Path:
    here = Path(__file__).resolve().parent.parent
    for cand in (here.parent / "migrations", here / "_migrations"):
        if (cand / "env.py").is_file():
            return cand
    raise StoreError("cannot find the Alembic migrations/ directory")


def _sqlite_pragmas(dbapi_conn: Any, _rec: Any) -> None:
    # pysqlite's own transaction handling is switched off so that "begin" below can take the
    # write lock up front (BEGIN IMMEDIATE): two writers then queue instead of deadlocking.
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def make_engine(url: str) -> Engine:
    try:
        if url.startswith("sqlite"):
            path = url.split("///", 1)[-1]
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(url)
            event.listen(engine, "connect", _sqlite_pragmas)

            @event.listens_for(engine, "begin")
            def _begin(conn: Any) -> None:
                conn.exec_driver_sql("BEGIN IMMEDIATE")

            return engine
        return create_engine(url, pool_pre_ping=True)
    except (SQLAlchemyError, ImportError, ValueError) as exc:
        raise StoreError(f"cannot open store {redact(url)}: {exc}") from exc


def redact(url: str) -> str:
    """The URL without its password, for messages."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        user = creds.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}" if ":" in creds else url
    return url


def _alembic_config(engine: Engine) -> Any:
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(migrations_dir()))
    cfg.attributes["engine"] = engine
    return cfg


_REVISION = re.compile(r"^(down_revision|revision)\s*=\s*(?:\"([^\"]*)\"|'([^']*)'|None)\s*$", re.M)


def _head_from_files() -> str | None:
    """The head revision read off migrations/versions/*.py without importing Alembic (~0.3 s at
    every start). None when the files do not have the plain shape ours have: ask Alembic."""
    revs: set[str] = set()
    downs: set[str] = set()
    for f in Path(migrations_dir(), "versions").glob("*.py"):
        found = {m[1]: m[2] or m[3] for m in _REVISION.finditer(f.read_text(encoding="utf-8"))}
        if "revision" not in found:
            return None
        revs.add(found["revision"])
        if found.get("down_revision"):
            downs.add(found["down_revision"])
    heads = revs - downs
    return heads.pop() if len(heads) == 1 else None


def _current_from_table(engine: Engine) -> str | None:
    """alembic_version read with plain SQL (no Alembic import); None if there is no such table."""
    try:
        with engine.connect() as conn:
            if not inspect(conn).has_table("alembic_version"):
                return None
            return conn.execute(text("select version_num from alembic_version")).scalar()
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot read store {redact(str(engine.url))}: {exc}") from exc


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    script = ScriptDirectory(str(migrations_dir()))
    head = script.get_current_head()
    if head is None:
        raise StoreError("migrations/ has no revisions")
    return head


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot read store {redact(str(engine.url))}: {exc}") from exc


def upgrade(engine: Engine) -> tuple[str | None, str]:
    """Migrate to head; returns (revision before, revision after)."""
    from alembic import command

    before = current_revision(engine)
    try:
        command.upgrade(_alembic_config(engine), "head")
    except SQLAlchemyError as exc:
        raise StoreError(f"migration failed on {redact(str(engine.url))}: {exc}") from exc
    return before, head_revision()


def ensure_schema(engine: Engine) -> None:
    """A brand-new store is created; an existing one at an older revision must be upgraded on purpose."""
    head = _head_from_files()
    if head is not None and _current_from_table(engine) == head:
        return  # the usual case, decided without importing Alembic
    rev = current_revision(engine)
    if rev == head_revision():
        return
    if rev is None and not inspect(engine).get_table_names():
        upgrade(engine)
        return
    raise StoreError(
        f"store {redact(str(engine.url))} is at schema revision {rev or 'none'}, "
        f"this xborder needs {head_revision()}: run `xborder db upgrade`"
    )


def open_store(url: str, *, create: bool = True) -> sessionmaker[Session]:
    engine = make_engine(url)
    if create:
        ensure_schema(engine)
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def read_session(url: str) -> Iterator[Session]:
    """A session on the store for one command; the engine is disposed afterwards."""
    factory = open_store(url)
    try:
        with factory() as session:
            yield session
    finally:
        factory.kw["bind"].dispose()
