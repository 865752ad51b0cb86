"""The one place where SQLite and PostgreSQL differ: URLs, connection set-up, locking, upserts."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table, event
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.postgresql.dml import Insert as PgInsert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.dialects.sqlite.dml import Insert as SqliteInsert
from sqlalchemy.engine import Connection, Engine


def normalise_url(url: str) -> str:
    """Map user-facing URLs (postgresql://, postgres://) to the psycopg 3 driver."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def is_sqlite(engine: Engine | Connection) -> bool:
    """True for the embedded SQLite backend."""
    return engine.dialect.name == "sqlite"


def engine_options(url: str, *, pool_size: int, busy_timeout_ms: int) -> dict[str, Any]:
    """create_engine() keyword arguments for the backend behind `url`."""
    if url.startswith("sqlite"):
        # The driver's own transaction handling is switched off: we emit BEGIN ourselves (see below).
        return {
            "connect_args": {
                "isolation_level": None,
                "timeout": busy_timeout_ms / 1000,
                "check_same_thread": False,
            }
        }
    return {"pool_size": pool_size, "max_overflow": pool_size, "pool_pre_ping": False, "pool_recycle": 3600}


def tune_engine(engine: Engine) -> None:
    """PostgreSQL: executemany becomes one multi-row INSERT instead of a statement per row."""
    if not is_sqlite(engine):
        engine.dialect.use_insertmanyvalues_wo_returning = True


def install_sqlite_hooks(engine: Engine, *, synchronous: str, busy_timeout_ms: int) -> None:
    """WAL journal, foreign keys and BEGIN IMMEDIATE for writers, so concurrent writers queue, not fail."""
    if not is_sqlite(engine):
        return
    if synchronous.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
        raise ValueError(f"invalid SQLite synchronous setting {synchronous!r}")

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA synchronous={synchronous.upper()}")
        cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = conn.info.pop("healthbook_begin", "DEFERRED")
        if conn.get_execution_options().get("isolation_level") == "AUTOCOMMIT":
            return
        conn.exec_driver_sql(f"BEGIN {mode}")


def mark_write(conn: Connection) -> None:
    """Ask for a write transaction on the next BEGIN (SQLite: IMMEDIATE; PostgreSQL: no-op)."""
    conn.info["healthbook_begin"] = "IMMEDIATE"


def upsert(conn: Connection | Engine, table: Table) -> SqliteInsert | PgInsert:
    """An INSERT that the caller can turn into ON CONFLICT DO UPDATE/NOTHING for this backend."""
    if is_sqlite(conn):
        return sqlite_insert(table)
    return pg_insert(table)


def lock_key(conn: Connection, key: int) -> None:
    """Serialise writers on one logical key until commit (SQLite writers are already serial)."""
    if not is_sqlite(conn):
        conn.exec_driver_sql("SELECT pg_advisory_xact_lock(%(k)s)", {"k": key})
