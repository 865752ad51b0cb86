"""Engine and unit-of-work context managers: one transaction per interaction, commit on success."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine
from sqlalchemy.engine import Connection, Engine

from healthbook.config import Settings
from healthbook.db import dialect

_TX = "healthbook_transaction"  # per-transaction state on the connection, cleared when it ends


def transaction_state(conn: Connection) -> dict[str, Any]:
    """Scratch space of the open write transaction of `conn`; emptied when the transaction ends."""
    state: dict[str, Any] = conn.info.setdefault(_TX, {})
    return state


def before_commit(conn: Connection, name: str, hook: Callable[[Connection], None]) -> None:
    """Run `hook` once at the end of the write transaction of `conn` (Database.write), before COMMIT.

    For work that is collected during the transaction and done best at once (the audit trail appends
    a transaction's events in one sorted batch). Registering the same name again keeps the first hook.
    """
    transaction_state(conn).setdefault("before_commit", {}).setdefault(name, hook)


class Database:
    """A configured engine plus the read and write transaction scopes the services use."""

    def __init__(self, settings: Settings):
        self.url = dialect.normalise_url(settings.database_url)
        self.engine: Engine = create_engine(
            self.url,
            **dialect.engine_options(
                self.url,
                pool_size=settings.pool_size,
                busy_timeout_ms=settings.sqlite_busy_timeout_ms,
                statement_timeout_ms=settings.statement_timeout_ms,
                parallel_workers=settings.pg_parallel_workers,
                jit=settings.pg_jit,
            ),
        )
        self.synchronous = settings.sqlite_synchronous
        dialect.tune_engine(self.engine)
        dialect.install_sqlite_hooks(
            self.engine,
            synchronous=settings.sqlite_synchronous,
            busy_timeout_ms=settings.sqlite_busy_timeout_ms,
        )

    @property
    def is_sqlite(self) -> bool:
        """True for the embedded backend."""
        return dialect.is_sqlite(self.engine)

    def sqlite_path(self) -> Path | None:
        """The database file of a SQLite URL (None for memory or PostgreSQL)."""
        db = self.engine.url.database
        if not self.is_sqlite or not db or db == ":memory:":
            return None
        return Path(db)

    @contextmanager
    def write(self, *, durable: bool = True) -> Iterator[Connection]:
        """A write transaction: committed when the block ends normally, rolled back otherwise.

        Work registered with before_commit() runs when the block has ended normally, just before COMMIT.
        `durable=False` commits without waiting for the disk (dialect.relax_durability): for records
        whose loss in a crash of the machine is acceptable (the audit events of reads).
        """
        with self.engine.connect() as conn:
            if not durable:
                dialect.relax_durability(conn)
            dialect.mark_write(conn)
            conn.info.pop(_TX, None)
            try:
                with conn.begin():
                    dialect.after_begin_relaxed(conn)
                    yield conn
                    for hook in list(transaction_state(conn).get("before_commit", {}).values()):
                        hook(conn)
            finally:
                conn.info.pop(_TX, None)  # the DBAPI connection (and its info) goes back to the pool
                if not durable:
                    dialect.restore_durability(conn, self.synchronous)

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """Autocommit reads: no BEGIN/COMMIT round trips, each statement sees the latest commit."""
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            yield conn

    @contextmanager
    def snapshot(self, *, unbounded: bool = False) -> Iterator[Connection]:
        """A read transaction whose statements all see one consistent snapshot (pages and totals).

        `unbounded` lifts the statement timeout for the transaction (long streaming reads: bulk export).
        """
        with self.engine.connect() as conn:
            if not self.is_sqlite:
                conn = conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                if unbounded:
                    dialect.unbounded(conn)
                yield conn

    def dispose(self) -> None:
        """Close pooled connections (tests, shutdown)."""
        self.engine.dispose()
