"""Deferred writes: a transaction bundle or a bulk load queues its rows and sends them in bulk.

While a PendingWrites is attached to a connection, the store functions queue instead of
executing; a read of a queued resource, a move, or the end of the batch flushes the queue.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg
from sqlalchemy import Table, bindparam, delete, insert, tuple_, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError, OperationalError

from healthbook.fhir.store.schema import INDEX_TABLES, resource, resource_locator, resource_version

_KEY = "healthbook_pending"
_r = resource.c
UPDATE_CURRENT = (  # shared with sql_repository
    update(resource)
    .where(_r.patient_key == bindparam("pk"), _r.res_type == bindparam("t"), _r.res_id == bindparam("i"))
    .values(
        version_id=bindparam("v"),
        last_updated=bindparam("ts"),
        deleted=bindparam("del"),
        content=bindparam("c"),
    )
)


@dataclass
class PendingWrites:
    """Rows waiting to be written, grouped by table."""

    locators: list[dict[str, Any]] = field(default_factory=list)
    versions: list[dict[str, Any]] = field(default_factory=list)
    new_current: list[dict[str, Any]] = field(default_factory=list)
    updated_current: list[dict[str, Any]] = field(default_factory=list)
    index_deletes: list[tuple[str, str, str]] = field(default_factory=list)
    index_rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    keys: set[tuple[str, str]] = field(default_factory=set)
    latest: dict[tuple[str, str], str | None] = field(default_factory=dict)  # content (None: deleted)
    # patient_key of logical ids looked up in one query ahead of the writes (None: never written);
    # kept across flushes, and dropped for an id as soon as this batch writes or moves it.
    located: dict[tuple[str, str], str | None] = field(default_factory=dict)
    # Index rows (owner columns included) a bulk load computed ahead, in its worker processes, for the
    # resource it writes next, by (type, id), with the patient key they were made for: the index hook
    # takes them instead of extracting again when the write gives that key. Kept across flushes.
    ready_rows: dict[tuple[str, str], tuple[str, dict[str, list[dict[str, Any]]]]] = field(
        default_factory=dict
    )

    copy: bool = False

    def flush(self, conn: Connection) -> None:
        """Send everything queued, in an order that respects keys and replaced index rows."""
        if self.index_deletes:
            for table in INDEX_TABLES.values():
                c = table.c
                for start in range(0, len(self.index_deletes), 500):
                    chunk = self.index_deletes[start : start + 500]
                    conn.execute(delete(table).where(tuple_(c.patient_key, c.res_type, c.res_id).in_(chunk)))
        inserts: list[tuple[Table, list[dict[str, Any]]]] = [
            (resource_locator, self.locators),
            (resource_version, self.versions),
            (resource, self.new_current),
            *((INDEX_TABLES[ptype], rows) for ptype, rows in self.index_rows.items()),
        ]
        for table, rows in inserts:
            if not rows:
                continue
            if self.copy and conn.dialect.name == "postgresql" and len(rows) >= COPY_THRESHOLD:
                _copy(conn, table, rows)
            else:
                conn.execute(insert(table), rows)
        if self.updated_current:
            conn.execute(UPDATE_CURRENT, self.updated_current)
        self.clear()

    def clear(self) -> None:
        """Forget what was sent; the COPY preference stays."""
        for rows in (
            self.locators,
            self.versions,
            self.new_current,
            self.updated_current,
            self.index_deletes,
        ):
            rows.clear()
        self.index_rows.clear()
        self.keys.clear()
        self.latest.clear()


COPY_THRESHOLD = 50


def _copy(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """PostgreSQL COPY FROM STDIN on the transaction's own connection (atomic with it)."""
    columns = list(rows[0])
    raw = conn.connection.driver_connection
    assert raw is not None
    sql = f"COPY {table.name} ({', '.join(columns)}) FROM STDIN"  # names from our own schema
    try:
        with raw.cursor() as cur, cur.copy(sql) as copy:
            for row in rows:
                copy.write_row([row[c] for c in columns])
    except psycopg.errors.IntegrityError as exc:
        # Same exception types as the executemany path, so the callers' retries (duplicate id, deadlock) apply.
        raise IntegrityError(sql, None, exc) from exc
    except psycopg.errors.OperationalError as exc:
        raise OperationalError(sql, None, exc) from exc


def pending(conn: Connection) -> PendingWrites | None:
    """The queue attached to this connection, if a batch is open."""
    found: PendingWrites | None = conn.info.get(_KEY)
    return found


def queued(conn: Connection, res_type: str, res_id: str) -> tuple[bool, str | None]:
    """(True, content) when a resource's latest version is still queued (content None: a deletion).

    Lets a write hook read what the same batch wrote without flushing the queue (which would cut the
    batch into small statements).
    """
    queue = pending(conn)
    if queue is not None and (res_type, res_id) in queue.latest:
        return True, queue.latest[(res_type, res_id)]
    return False, None


def flush_if_pending(conn: Connection, res_type: str, res_id: str) -> None:
    """Make a queued resource visible before it is read again in the same batch."""
    queue = pending(conn)
    if queue is not None and (res_type, res_id) in queue.keys:
        queue.flush(conn)


@contextmanager
def batching(conn: Connection, *, copy: bool = False) -> Iterator[PendingWrites]:
    """Queue writes on `conn` for the duration of the block, then flush them (COPY if asked, on PostgreSQL)."""
    queue = PendingWrites(copy=copy)
    conn.info[_KEY] = queue
    try:
        yield queue
        queue.flush(conn)
    finally:
        conn.info.pop(_KEY, None)
