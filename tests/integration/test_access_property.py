"""Property: whatever search a caller sends, the answer is never a 5xx and never holds what it may not see."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlencode

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from healthbook.app import build_services, create_app
from healthbook.config import Settings
from tests.integration import access_population as pop
from tests.integration.access_population import SEES, TOKENS, headers

TYPES = ["Patient", "Observation", "Encounter", "Condition", "RelatedPerson", "Organization", "Consent"]
PARAMS = {
    "Patient": ["name", "identifier", "birthdate", "_id", "gender", "_has:Observation:subject:code"],
    "Observation": ["code", "subject", "subject:Patient.name", "encounter", "date", "_id", "value-quantity"],
    "Encounter": ["subject", "service-provider", "service-provider.identifier", "date", "_id"],
    "Condition": ["subject", "code", "encounter", "_id"],
    "RelatedPerson": ["patient", "identifier", "_id"],
    "Organization": ["identifier", "name", "_id"],
    "Consent": ["patient", "status", "_id"],
}
VALUES = [
    "citizen", "stranger", "Patient/citizen", "Patient/stranger", "75622-1", "http://loinc.org|85354-9",
    "Hoàng", "Trần", "Lê", "ge2020-01-01", "lt2016", "79001", "01501", "male", "gt100", "Encounter/citizen-hospital",
    "' OR 1=1 --", "x" * 300, "", ",", "%00",
]  # fmt: skip
CONTROLS = [
    ("_include", "Observation:subject"), ("_revinclude", "Observation:subject"), ("_total", "accurate"),
    ("_summary", "count"), ("_sort", "-_lastUpdated"), ("_count", "3"), ("_elements", "id"),
    ("_include", "Encounter:service-provider"), ("_revinclude:iterate", "Observation:encounter"),
]  # fmt: skip


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """One SQLite server with the population (hypothesis reuses it across examples)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('prop') / 'p.db'}"
    config = pop.settings_with_auth(Settings(database_url=url))
    services = build_services(config)
    from healthbook.db.migrate import upgrade

    upgrade(services.fhir.db)
    pop.load(services)
    with TestClient(create_app(config, services)) as client:
        yield client
    services.fhir.db.dispose()


@st.composite
def queries(draw: st.DrawFn) -> tuple[str, str]:
    rtype = draw(st.sampled_from(TYPES))
    pairs = [
        (draw(st.sampled_from(PARAMS[rtype])), draw(st.sampled_from(VALUES)))
        for _ in range(draw(st.integers(0, 3)))
    ]
    pairs += draw(st.lists(st.sampled_from(CONTROLS), max_size=3))
    return rtype, urlencode(pairs)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(role=st.sampled_from(sorted(SEES)), query=queries())
def test_random_searches_never_fail_and_never_leak(
    server: TestClient, role: str, query: tuple[str, str]
) -> None:
    rtype, qs = query
    resp = server.get(f"/fhir/{rtype}?{qs}", headers=headers(TOKENS[role]()))
    assert resp.status_code < 500, (role, rtype, qs, resp.text[:300])
    if resp.status_code != 200:
        assert resp.json()["resourceType"] == "OperationOutcome"
        return
    body = resp.json()
    found = {
        (e["resource"]["resourceType"], e["resource"]["id"])
        for e in body.get("entry", [])
        if e.get("search", {}).get("mode") != "outcome"
    }
    assert found <= SEES[role], (role, rtype, qs, found - SEES[role])
    if "total" in body:
        visible_of_type = {k for k in SEES[role] if k[0] == rtype}
        assert body["total"] <= len(visible_of_type), (role, rtype, qs)


LOG_BOOKS = {"citizen": {"citizen"}, "mother": {"mother", "child"}, "stranger": {"stranger"}}
LOG_PARAMS = ["patient", "date", "action", "outcome", "subtype", "_count", "_page", "entity"]
LOG_VALUES = [
    "citizen", "child", "Patient/stranger", "mother,citizen", "ge2020-01-01", "lt2100", "R", "E,C", "0", "4",
    "read", "search-type", "$everything", "1", "0", "eyJ4Ijo", "' OR 1=1 --", "x" * 300, "", ",", "%00",
]  # fmt: skip


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    role=st.sampled_from(sorted(SEES)),
    pairs=st.lists(st.tuples(st.sampled_from(LOG_PARAMS), st.sampled_from(LOG_VALUES)), max_size=4),
    reads=st.lists(st.sampled_from(sorted(SEES)), max_size=2),
)
def test_random_access_log_queries_show_only_own_books(
    server: TestClient, role: str, pairs: list[tuple[str, str]], reads: list[str]
) -> None:
    for reader in reads:  # some accesses to log first, by anyone
        server.get("/fhir/Patient?_count=5", headers=headers(TOKENS[reader]()))
    resp = server.get(f"/fhir/AuditEvent?{urlencode(pairs)}", headers=headers(TOKENS[role]()))
    assert resp.status_code < 500, (role, pairs, resp.text[:300])
    if role not in LOG_BOOKS:
        assert resp.status_code in (400, 403), (role, pairs)
        return
    if resp.status_code != 200:
        assert resp.status_code == 400 and resp.json()["resourceType"] == "OperationOutcome"
        return
    books = {
        e["resource"]["entity"][0]["what"]["reference"].removeprefix("Patient/")
        for e in resp.json().get("entry", [])
        if e["search"]["mode"] == "match"
    }
    assert books <= LOG_BOOKS[role], (role, pairs, books - LOG_BOOKS[role])
