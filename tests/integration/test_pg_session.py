"""What every PostgreSQL connection of the server is set up with, whatever the server's own configuration."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from psycopg import sql

from healthbook.config import Settings
from healthbook.db.engine import Database
from healthbook.testing.postgres import TempPostgres

pytestmark = pytest.mark.postgres


def _show(url: str, name: str, **settings: object) -> str:
    db = Database(Settings(database_url=url, **settings))  # type: ignore[arg-type]
    try:
        with db.read() as conn:
            return str(conn.exec_driver_sql(f"SHOW {name}").scalar_one())  # fixed names from this file
    finally:
        db.dispose()


def test_jit_is_off_by_default(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HEALTHBOOK_PG_JIT", raising=False)
    # PostgreSQL's own default is on: the connection option must win over it
    assert _show(pg_url, "jit") == "off"


def test_jit_on_wins_over_the_server_setting(pg_server: TempPostgres) -> None:
    name = f"jit_off_{uuid.uuid4().hex[:8]}"
    url = pg_server.create_database(name)
    with psycopg.connect(pg_server.admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("ALTER DATABASE {} SET jit = off").format(sql.Identifier(name)))
        try:
            assert _show(url, "jit", pg_jit=False) == "off"
            assert _show(url, "jit", pg_jit=True) == "on"
        finally:
            conn.execute(sql.SQL("DROP DATABASE {}").format(sql.Identifier(name)))


def test_parallel_workers_follow_the_setting(pg_url: str) -> None:
    assert _show(pg_url, "max_parallel_workers_per_gather") == "0"
    assert _show(pg_url, "max_parallel_workers_per_gather", pg_parallel_workers=2) == "2"
