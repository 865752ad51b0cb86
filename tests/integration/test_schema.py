"""The Alembic migrations build exactly the schema that schema.py declares, on both databases."""

from __future__ import annotations

import warnings

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from healthbook.config import Settings
from healthbook.db.engine import Database
from healthbook.db.migrate import current_revision, head_revision
from healthbook.fhir.store.schema import metadata


def test_migrations_match_the_metadata(db_url: str) -> None:
    db = Database(Settings(database_url=db_url))
    try:
        assert current_revision(db) == head_revision()
        with db.engine.connect() as conn, warnings.catch_warnings():
            # SQLite cannot reflect expression indexes; the one there is (GiST) exists on PostgreSQL only.
            warnings.filterwarnings("ignore", message=".*expression-based index.*")
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(context, metadata) == []
    finally:
        db.dispose()
