"""The server's PostgreSQL statement timeout: a search past it is a clean 400 too-costly OperationOutcome."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Connection

from healthbook.app import build_services, create_app
from healthbook.config import Settings
from healthbook.fhir import service as fhir_service
from healthbook.fhir.router import Services
from healthbook.fhir.search import sql

from .conftest import outcome

pytestmark = pytest.mark.postgres

TIMEOUT_MS = 300


@pytest.fixture
def timed(pg_url: str) -> Iterator[tuple[TestClient, Services]]:
    settings = Settings(database_url=pg_url, pool_size=2, statement_timeout_ms=TIMEOUT_MS)
    services = build_services(settings)
    with TestClient(create_app(settings, services)) as client:
        yield client, services
    services.fhir.db.dispose()


def _sleep(conn: Connection) -> None:
    conn.exec_driver_sql("SELECT pg_sleep(5)")  # well past the timeout: the server cancels it


def test_connections_carry_the_timeout(timed: tuple[TestClient, Services]) -> None:
    _, services = timed
    with services.fhir.db.read() as conn:
        assert conn.exec_driver_sql("SHOW statement_timeout").scalar_one() == f"{TIMEOUT_MS}ms"
    with services.fhir.db.snapshot(unbounded=True) as conn:
        assert conn.exec_driver_sql("SHOW statement_timeout").scalar_one() == "0"
    with services.fhir.db.read() as conn:  # SET LOCAL ended with that transaction
        assert conn.exec_driver_sql("SHOW statement_timeout").scalar_one() == f"{TIMEOUT_MS}ms"


def test_search_past_the_timeout_is_too_costly(
    timed: tuple[TestClient, Services], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, _ = timed
    real = sql.fetch_page

    def slow_page(conn: Connection, *args: Any, **kwargs: Any) -> sql.PageResult:
        _sleep(conn)
        return real(conn, *args, **kwargs)

    monkeypatch.setattr(sql, "fetch_page", slow_page)
    body = outcome(client.get("/fhir/Patient?name=nguyen"), 400, "too-costly")
    assert "limit" in body["issue"][0]["diagnostics"]
    monkeypatch.setattr(sql, "fetch_page", real)
    assert client.get("/fhir/Patient?name=nguyen").status_code == 200  # the pooled connection is fine


def test_other_statements_past_the_timeout_are_503(
    timed: tuple[TestClient, Services], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, _ = timed

    def slow_locate(conn: Connection, res_type: str, res_id: str) -> str | None:
        _sleep(conn)
        return None

    monkeypatch.setattr(fhir_service.store, "locate", slow_locate)
    outcome(client.get("/fhir/Observation/someone"), 503, "timeout")
