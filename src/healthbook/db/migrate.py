"""Alembic migrations run programmatically, so an installed package can upgrade its own database."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from healthbook.db import dialect
from healthbook.db.engine import Database

_SCRIPTS = Path(__file__).parent / "migrations"


def _config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(_SCRIPTS))
    cfg.set_main_option("file_template", "%%(year)d-%%(month).2d-%%(day).2d_%%(slug)s")
    return cfg


def head_revision() -> str | None:
    """The newest revision shipped with this code."""
    return ScriptDirectory.from_config(_config()).get_current_head()


def current_revision(db: Database) -> str | None:
    """The revision the database is at (None when it was never migrated)."""
    with db.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(db: Database, revision: str = "head") -> None:
    """Bring the schema to `revision`, in one transaction where the backend allows it."""
    cfg = _config()
    with db.engine.connect() as conn:
        dialect.unbounded(conn)  # index builds on large tables outlast the statement timeout
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
        conn.commit()


def ensure_current(db: Database) -> None:
    """Upgrade a SQLite file automatically; refuse to serve an outdated PostgreSQL schema."""
    if current_revision(db) == head_revision():
        return
    if db.is_sqlite:
        upgrade(db)
        return
    raise RuntimeError("The PostgreSQL schema is not up to date: run `healthbook db upgrade` first.")
