"""migrations/ creates exactly the tables the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from monitor.store.models import Base
from monitor.store.session import make_engine, upgrade


def test_head_schema_matches_models(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        before, after = upgrade(engine)
        assert before is None and after
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        assert diff == []
        # upgrading again is a no-op
        assert upgrade(engine) == (after, after)
    finally:
        engine.dispose()


def test_head_read_off_the_files_is_alembics_head() -> None:
    """The start-up fast path (no Alembic import) must agree with Alembic about the head."""
    from monitor.store.session import _head_from_files, head_revision

    assert _head_from_files() == head_revision()
