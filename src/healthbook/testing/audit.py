"""Emptying the append-only audit tables between tests (never used by the product itself)."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import Connection

from healthbook.db.dialect import append_only_ddl, drop_append_only_ddl, is_sqlite

AUDIT_TABLES = ("audit_event", "audit_head")


def wipe(conn: Connection) -> None:
    """Lift the append-only triggers, empty both tables, put the triggers back (in one transaction)."""
    for statement in drop_append_only_ddl(conn, "audit_event"):
        conn.execute(text(statement))
    conn.execute(text("DELETE FROM audit_head"))
    conn.execute(text("DELETE FROM audit_event" if is_sqlite(conn) else "TRUNCATE audit_event"))
    for statement in append_only_ddl(conn, "audit_event"):
        conn.execute(text(statement))
