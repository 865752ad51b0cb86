"""What every PostgreSQL connection of the server is set up with, whatever the server's own configuration."""

from __future__ import annotations

import pytest

from healthbook.config import Settings
from healthbook.db.engine import Database

pytestmark = pytest.mark.postgres


def _show(url: str, name: str, **settings: object) -> str:
    db = Database(Settings(database_url=url, **settings))  # type: ignore[arg-type]
    try:
        with db.read() as conn:
            return str(conn.exec_driver_sql(f"SHOW {name}").scalar_one())  # fixed names from this file
    finally:
        db.dispose()


def test_jit_is_off_by_default(pg_url: str) -> None:
    # PostgreSQL's own default is on: the connection option must win over it
    assert _show(pg_url, "jit") == "off"


def test_jit_can_be_turned_back_on(pg_url: str) -> None:
    assert _show(pg_url, "jit", pg_jit=True) == "on"


def test_parallel_workers_follow_the_setting(pg_url: str) -> None:
    assert _show(pg_url, "max_parallel_workers_per_gather") == "0"
    assert _show(pg_url, "max_parallel_workers_per_gather", pg_parallel_workers=2) == "2"
