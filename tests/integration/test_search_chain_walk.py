"""A chain to Patients that matches many of them walks the referring rows (PostgreSQL), paging like the join."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Connection

from healthbook.app import Services
from healthbook.auth.subject import Caller
from healthbook.fhir.bulk.ndjson_import import Line, import_lines
from healthbook.fhir.search import sql
from healthbook.fhir.search.query import parse

PATIENTS = 90
FREQUENT, RARE = "Nguyễn", "Đặng"


def family(n: int) -> str:
    return RARE if n % 30 == 0 else FREQUENT if n % 3 else "Trần"


def resources() -> Iterator[dict[str, Any]]:
    for n in range(PATIENTS):
        yield {
            "resourceType": "Patient",
            "id": f"cw{n:03d}",
            "name": [{"family": family(n), "given": ["Văn"]}],
        }
        for k in "abc":  # three namesakes without Observations after each: a walk must skip them
            yield {"resourceType": "Patient", "id": f"cw{n:03d}{k}", "name": [{"family": FREQUENT}]}
    for n in range(PATIENTS * 4):
        owner = (n * 7) % PATIENTS
        doc: dict[str, Any] = {
            "resourceType": "Observation",
            "id": f"cwo{n:04d}",
            "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
            "subject": {"reference": f"Patient/cw{owner:03d}"},
        }
        if n % 9 == 0:  # performed by another patient: a reference held under the subject's key
            doc["performer"] = [{"reference": f"Patient/cw{n // 9:03d}"}]
        yield doc


def expected(param: str, name: str) -> list[str]:
    """Brute force over the documents: the ids of the Observations whose `param` Patient has that family."""
    families = {f"Patient/cw{n:03d}": family(n) for n in range(PATIENTS)}
    out = []
    for doc in resources():
        if doc["resourceType"] != "Observation":
            continue
        refs = [doc["subject"]] if param == "subject" else doc.get("performer", [])
        if any(families[r["reference"]] == name for r in refs):
            out.append(doc["id"])
    return out


@pytest.fixture
def loaded(services: Services, client: TestClient) -> TestClient:
    lines = (Line("chain", n, orjson.dumps(d)) for n, d in enumerate(resources(), start=1))
    stats = import_lines(services.fhir, Caller.system("test"), lines, errors=lambda e: None)
    assert stats.errors == 0
    return client


def follow(client: TestClient, url: str, relation: str) -> list[list[str]]:
    """The ids of each page from url on, following `relation` links."""
    pages: list[list[str]] = []
    next_url: str | None = url
    while next_url:
        bundle = client.get(next_url).json()
        pages.append([e["resource"]["id"] for e in bundle.get("entry", [])])
        next_url = next((link["url"] for link in bundle["link"] if link["relation"] == relation), None)
        if next_url:
            parts = urlsplit(next_url)
            next_url = f"{parts.path}?{parts.query}"
    return pages


def all_pages(client: TestClient, query: str) -> list[str]:
    return [i for page in follow(client, f"/fhir/Observation?{query}&_count=17", "next") for i in page]


def walk_from(monkeypatch: pytest.MonkeyPatch, matches: int) -> None:
    """Walk when the chain matches at least `matches` rows, whatever the number of Patients."""
    monkeypatch.setattr(sql, "CHAIN_WALK_MIN", matches)
    monkeypatch.setattr(sql, "_patients", lambda conn: 0)


@pytest.mark.parametrize("param", ["subject", "performer"])
@pytest.mark.parametrize("name", [FREQUENT, RARE])
def test_the_walk_pages_like_the_join(
    loaded: TestClient, monkeypatch: pytest.MonkeyPatch, param: str, name: str
) -> None:
    query = f"{param}:Patient.name={quote(name)}"
    walk_from(monkeypatch, 1)  # always walk
    walked = all_pages(loaded, query)
    walk_from(monkeypatch, 10**9)  # never walk
    joined = all_pages(loaded, query)
    assert walked == joined
    # both in the default order (patient_key, type, id): the set is the brute-force one
    assert sorted(walked) == sorted(expected(param, name)) and len(set(walked)) == len(walked)
    assert walked


def test_the_walk_pages_backwards(loaded: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    walk_from(monkeypatch, 1)
    query = f"subject:Patient.name={quote(FREQUENT)}&_count=13"
    forward = follow(loaded, f"/fhir/Observation?{query}", "next")
    assert len(forward) > 3
    last = loaded.get(f"/fhir/Observation?{query}").json()
    bundle = last
    while nxt := next((link["url"] for link in bundle["link"] if link["relation"] == "next"), None):
        parts = urlsplit(nxt)
        last_url = f"{parts.path}?{parts.query}"
        bundle = loaded.get(last_url).json()
    backward = follow(loaded, last_url, "previous")
    assert backward == forward[::-1]


def test_the_walk_combines_with_other_conditions(loaded: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    query = f"subject:Patient.name={quote(FREQUENT)}&performer:missing=false"
    walk_from(monkeypatch, 1)
    walked = all_pages(loaded, query)
    walk_from(monkeypatch, 10**9)
    assert walked == all_pages(loaded, query)
    assert sorted(walked) == sorted(
        set(expected("subject", FREQUENT)) & {f"cwo{n:04d}" for n in range(0, 360, 9)}
    )


def test_the_walk_is_chosen_for_many_matches_only(
    loaded: TestClient, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    postgres = services.fhir.db.engine.dialect.name == "postgresql"
    walk_from(monkeypatch, 20)  # 330 Patients are Nguyễn, 3 are Đặng

    def walks(conn: Connection, name: str) -> bool:
        parsed = parse(("Observation",), parse_qsl(f"subject:Patient.name={name}"), strict=True)
        driver = sql._driver(sql._conds(parsed, None))
        assert driver is not None
        return sql._chain_walk(conn, driver.branches[0], parsed.types, None, False, 18) is not None

    with services.fhir.db.read() as conn:
        assert walks(conn, FREQUENT) is postgres
        assert not walks(conn, RARE)
        # the bound grows with the square root of page size × Patients: 6,000 for 18 and a million
        monkeypatch.setattr(sql, "_patients", lambda conn: 10**6)
        assert not walks(conn, FREQUENT)
        monkeypatch.undo()
        sql._ESTIMATES.clear()
        if postgres:
            conn.exec_driver_sql("ANALYZE resource")
            assert PATIENTS * 2 <= sql._patients(conn) <= PATIENTS * 8  # 4 × PATIENTS, estimated
        else:
            assert sql._patients(conn) == 0  # SQLite has none (and never walks)


def test_the_has_walk_bound_grows_with_the_patients(
    loaded: TestClient, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """_has on Patients checks Patient by Patient from max(floor, sqrt(page × Patients / 4)) sources."""
    parsed = parse(
        ("Patient",), parse_qsl("_has:Observation:subject:code=http://loinc.org|8867-4"), strict=True
    )
    c = parsed.clauses[0]
    monkeypatch.setattr(sql, "HAS_PER_PATIENT_FROM", 20)
    with services.fhir.db.read() as conn:
        monkeypatch.setattr(sql, "_patients", lambda conn: 0)
        assert sql._has_per_patient(c, "Observation", "subject", conn, 51) is not None  # 360 sources
        monkeypatch.setattr(sql, "_patients", lambda conn: 10**6)  # the bound: 3,570
        assert sql._has_per_patient(c, "Observation", "subject", conn, 51) is None
    ids = [
        e["resource"]["id"]
        for e in loaded.get("/fhir/Patient?_has:Observation:subject:code=8867-4&_count=500").json()["entry"]
    ]
    assert len(ids) == PATIENTS  # the namesakes have no Observation
