"""Table-driven search semantics on both databases: each query with its exact expected result ids."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from healthbook.app import build_services, create_app
from healthbook.config import Settings
from healthbook.db.engine import Database
from healthbook.db.migrate import upgrade
from healthbook.fhir.search import sql
from healthbook.testing.postgres import TempPostgres

H = {"content-type": "application/fhir+json"}
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"

PATIENTS: list[dict[str, Any]] = [
    {
        "resourceType": "Patient",
        "id": "p1",
        "identifier": [{"system": "urn:vn:cccd", "value": "001190000001"}],
        "name": [{"family": "Nguyễn", "given": ["Thị", "Ánh"]}],
        "gender": "female",
        "birthDate": "1990-05-17",
        "active": True,
        "managingOrganization": {"reference": "Organization/o1"},
        "meta": {"tag": [{"system": "urn:tags", "code": "vip"}]},
    },
    {
        "resourceType": "Patient",
        "id": "p2",
        "identifier": [
            {
                "type": {
                    "coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "NI"}]
                },
                "system": "urn:vn:cccd",
                "value": "079085000002",
            }
        ],
        "name": [{"family": "Trần", "given": ["Văn", "Hùng"]}],
        "gender": "male",
        "birthDate": "1985",
        "managingOrganization": {"reference": "Organization/o2"},
    },
    {
        "resourceType": "Patient",
        "id": "p3",
        "name": [{"family": "NGUYEN", "given": ["ANH"]}],
        "gender": "female",
        "birthDate": "2000-01-01",
        "deceasedBoolean": False,
    },
]
ORGS = [
    {"resourceType": "Organization", "id": "o1", "name": "Trạm Y tế phường Ba Đình"},
    {"resourceType": "Organization", "id": "o2", "name": "Bệnh viện Bạch Mai"},
]


def _obs(oid: str, patient: str, code: str, value: float | None, when: str, **extra: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "code": {
            "coding": [{"system": LOINC, "code": code, "display": f"Test {code}"}],
            "text": f"code {code}",
        },
        "subject": {"reference": f"Patient/{patient}"},
        "effectiveDateTime": when,
    }
    if value is not None:
        doc["valueQuantity"] = {"value": value, "unit": "mmHg", "system": UCUM, "code": "mm[Hg]"}
    doc.update(extra)
    return doc


BP = _obs("bp1", "p2", "85354-9", None, "2024-06-01")
BP["component"] = [
    {
        "code": {"coding": [{"system": LOINC, "code": "8480-6"}]},
        "valueQuantity": {"value": 145, "unit": "mmHg", "system": UCUM, "code": "mm[Hg]"},
    },
    {
        "code": {"coding": [{"system": LOINC, "code": "8462-4"}]},
        "valueQuantity": {"value": 85, "unit": "mmHg", "system": UCUM, "code": "mm[Hg]"},
    },
]
OBSERVATIONS = [
    BP,
    _obs("ob1", "p1", "8480-6", 120, "2026-01-10T08:00:00+07:00"),
    _obs("ob2", "p1", "8480-6", 150.5, "2026-03-01T09:30:00+07:00"),
    _obs("ob3", "p2", "8462-4", 80, "2025-12-31T23:59:00Z"),
    _obs(
        "ob4",
        "p3",
        "29463-7",
        None,
        "2026-02",
        valueString="không đo được",
        subject={"reference": "Patient/p3", "identifier": {"system": "urn:vn:cccd", "value": "X123"}},
    ),
]
PROVENANCE = {
    "resourceType": "Provenance",
    "id": "prov1",
    "target": [{"reference": "Observation/ob1"}],
    "recorded": "2026-01-10T08:05:00+07:00",
    "agent": [{"who": {"reference": "Organization/o1"}}],
}


def _goal(gid: str, *due: str) -> dict[str, Any]:
    return {
        "resourceType": "Goal",
        "id": gid,
        "lifecycleStatus": "active",
        "description": {"text": f"goal {gid}"},
        "subject": {"reference": "Patient/p1"},
        **({"target": [{"dueDate": d} for d in due]} if due else {}),
    }


# A Condition of p1 asserted by p3: the reference to p3 is stored under p1's key (a "foreign" holder).
CONDITION = {
    "resourceType": "Condition",
    "id": "c1",
    "subject": {"reference": "Patient/p1"},
    "asserter": {"reference": "Patient/p3"},
    "code": {"coding": [{"system": "http://snomed.info/sct", "code": "44054006"}]},
}

# Goal.target.due is the one date parameter here with several values per resource (g1).
GOALS = [_goal("g1", "2020-01-10", "2020-03-05"), _goal("g2", "2020-02-01"), _goal("g3")]


def _load(client: TestClient) -> TestClient:
    for doc in [*ORGS, *PATIENTS, *OBSERVATIONS, PROVENANCE, *GOALS, CONDITION]:
        r = client.put(f"/fhir/{doc['resourceType']}/{doc['id']}", json=doc, headers=H)
        assert r.status_code in (200, 201), r.text
    return client


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def shared(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """The population loaded once per backend, for the read-only tests."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('search') / 'search.db'}"
    else:
        server: TempPostgres = request.getfixturevalue("pg_server")
        url = server.create_database(f"search_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}")
    settings = Settings(database_url=url, pool_size=2)
    db = Database(settings)
    upgrade(db)
    with TestClient(create_app(settings, build_services(settings, db))) as client:
        yield _load(client)
    db.dispose()


@pytest.fixture
def loaded(client: TestClient) -> TestClient:
    """A fresh copy of the population, for tests that change it."""
    return _load(client)


def _ids(client: TestClient, url: str, mode: str = "match") -> list[str]:
    r = client.get(url)
    assert r.status_code == 200, r.text
    bundle = r.json()
    return sorted(e["resource"]["id"] for e in bundle.get("entry", []) if e["search"]["mode"] == mode)


CASES = [
    # token
    ("Patient?gender=female", ["p1", "p3"]),
    ("Patient?gender=male,female", ["p1", "p2", "p3"]),
    ("Patient?gender:not=male", ["p1", "p3"]),
    ("Patient?identifier=urn:vn:cccd|001190000001", ["p1"]),
    ("Patient?identifier=001190000001", ["p1"]),
    ("Patient?identifier=urn:vn:cccd|", ["p1", "p2"]),
    ("Patient?identifier=|001190000001", []),
    ("Patient?identifier:missing=true", ["p3"]),
    ("Patient?active=true", ["p1"]),
    ("Patient?_tag=urn:tags|vip", ["p1"]),
    ("Observation?code=http://loinc.org|8480-6", ["ob1", "ob2"]),
    ("Observation?code:text=test 84", ["ob1", "ob2", "ob3"]),
    # system|code must match both: the same code in another system, or with no system, is another token
    ("Condition?code=http://snomed.info/sct|44054006", ["c1"]),
    ("Condition?code=http://loinc.org|44054006", []),
    ("Condition?code=|44054006", []),
    ("Condition?code=44054006", ["c1"]),
    ("Observation?code=http://snomed.info/sct|8480-6,http://loinc.org|8462-4", ["ob3"]),
    # string: prefix, accent- and case-insensitive; :exact; :contains
    ("Patient?name=nguyen", ["p1", "p3"]),
    ("Patient?name=Nguyễn", ["p1", "p3"]),
    ("Patient?family:exact=Nguyễn", ["p1"]),
    ("Patient?family:exact=nguyen", []),
    ("Patient?name:contains=ùn", ["p2"]),
    ("Patient?given=anh", ["p1", "p3"]),
    ("Patient?name=nguyen&given=thi", ["p1"]),
    ("Organization?name=tram y te", ["o1"]),
    # date with partial precision and prefixes
    ("Patient?birthdate=1990", ["p1"]),
    ("Patient?birthdate=1990-05", ["p1"]),
    ("Patient?birthdate=1985-06-01", []),
    ("Patient?birthdate=ge1990-01-01", ["p1", "p3"]),
    ("Patient?birthdate=lt1990", ["p2"]),
    ("Patient?birthdate=gt1985", ["p1", "p3"]),
    ("Patient?birthdate=ne1990-05-17", ["p2", "p3"]),
    ("Patient?birthdate=sa1999-12-31", ["p3"]),
    ("Patient?birthdate=eb1990-05-17", ["p2"]),
    ("Patient?birthdate=ge1990&birthdate=le2000-01-01", ["p1", "p3"]),
    ("Observation?date=2026-01-10", ["ob1"]),
    ("Observation?date=2026-02", ["ob4"]),
    ("Observation?date=2026-01-01T00:00:00+07:00", []),
    ("Observation?date=2026-01-10T08:00:00%2B07:00", ["ob1"]),
    ("Observation?date=ge2026-01-01T00:00:00Z", ["ob1", "ob2", "ob4"]),
    ("Observation?date=lt2026-01-01T00:00:00Z", ["bp1", "ob3"]),
    # several date clauses of one parameter: each clause may be met by a different value (g1)
    ("Goal?target-date=ge2020-03-01&target-date=lt2020-01-15", ["g1"]),
    ("Goal?target-date=ge2020-01-20&target-date=lt2020-03-01", ["g1", "g2"]),
    ("Goal?target-date=gt2020-03-05&target-date=lt2020-01-10", []),
    ("Goal?target-date=ge2020-03-05&target-date=le2020-01-10", ["g1"]),
    ("Goal?target-date=2020-01&target-date=2020-03", ["g1"]),
    ("Goal?target-date=2020-01&target-date=2020-02", []),
    ("Goal?target-date=2020-02", ["g2"]),
    ("Goal?target-date=ne2020-01-10&target-date=ge2020", ["g1", "g2"]),
    ("Goal?target-date=sa2020-01-31&target-date=eb2020-03-01", ["g1", "g2"]),
    ("Goal?target-date=sa2020-02-01&target-date=eb2020-02-01", ["g1"]),
    ("Goal?target-date=ge2021&target-date=lt2020", []),
    ("Goal?target-date=ap2020-03-05&target-date=le2020-01-31", ["g1"]),
    ("Goal?target-date:missing=true", ["g3"]),
    # quantity and number precision
    ("Observation?value-quantity=120", ["ob1"]),
    ("Observation?value-quantity=150", []),
    ("Observation?value-quantity=150.5", ["ob2"]),
    ("Observation?value-quantity=1.5e2", ["ob2"]),
    ("Observation?value-quantity=gt100|http://unitsofmeasure.org|mm[Hg]", ["ob1", "ob2"]),
    ("Observation?value-quantity=le120||mm[Hg]", ["ob1", "ob3"]),
    ("Observation?value-quantity=ap125", ["ob1"]),
    # sa/eb: beyond the whole implicit range of the search number (eb151 = below 150.5)
    ("Observation?value-quantity=eb151", ["ob1", "ob3"]),
    ("Observation?value-quantity=sa150", ["ob2"]),
    ("Observation?value-string=khong", ["ob4"]),
    # reference forms
    ("Observation?subject=Patient/p1", ["ob1", "ob2"]),
    ("Observation?subject=p1", ["ob1", "ob2"]),
    ("Observation?subject:Patient=p2", ["bp1", "ob3"]),
    ("Observation?patient=p3", ["ob4"]),
    ("Observation?subject=http://example.org/fhir/Patient/p1", ["ob1", "ob2"]),
    ("Patient?organization=Organization/o1", ["p1"]),
    # chains and reverse chains
    ("Observation?subject:Patient.name=tran", ["bp1", "ob3"]),
    ("Observation?patient.gender=female", ["ob1", "ob2", "ob4"]),
    ("Observation?subject:Patient.organization.name=benh vien", ["bp1", "ob3"]),
    ("Observation?subject:Patient.organization.name=bach mai", []),
    ("Patient?_has:Observation:subject:code=8480-6", ["p1"]),
    ("Patient?_has:Observation:patient:_has:Provenance:target:agent=Organization/o1", ["p1"]),
    # chains to Patients: references stored under the Patient's own key, and under another's (c1 -> p3)
    ("Condition?asserter:Patient.name=nguyen", ["c1"]),
    ("Condition?subject:Patient.gender=female", ["c1"]),
    ("Condition?asserter:Patient.gender=male", []),
    ("Organization?_has:Patient:organization:gender=male", ["o2"]),
    # :of-type and :identifier
    ("Patient?identifier:of-type=http://terminology.hl7.org/CodeSystem/v2-0203|NI|079085000002", ["p2"]),
    ("Patient?identifier:of-type=http://terminology.hl7.org/CodeSystem/v2-0203|NI|001190000001", []),
    ("Observation?subject:identifier=urn:vn:cccd|X123", ["ob4"]),
    ("Observation?subject:identifier=X123", ["ob4"]),
    # deceased: `Patient.deceased.exists() and Patient.deceased != false` is false without deceased[x]
    ("Patient?deceased=false", ["p1", "p2", "p3"]),
    ("Patient?deceased=true", []),
    ("Patient?deceased:missing=true", []),
    # common parameters
    ("Patient?_id=p1,p3", ["p1", "p3"]),
    ("Patient?_id=nope", []),
    # composite parameters
    ("Observation?code-value-quantity=http://loinc.org|8480-6$gt130", ["ob2"]),
    ("Observation?code-value-quantity=8480-6$120", ["ob1"]),
    ("Observation?code-value-quantity=http://snomed.info/sct|8480-6$120", []),
    ("Observation?code-value-quantity=8462-4$gt100", []),
    ("Observation?code-value-quantity=8480-6$lt200||mm[Hg],8462-4$80", ["ob1", "ob2", "ob3"]),
    ("Observation?code-value-string=29463-7$khong", ["ob4"]),
    ("Observation?component-code-value-quantity=http://loinc.org|8480-6$gt100", ["bp1"]),
    ("Observation?component-code-value-quantity=8462-4$gt100", []),
    ("Observation?combo-code-value-quantity=8462-4$85", ["bp1"]),
    # compartment search
    ("Patient/p1/Observation", ["ob1", "ob2"]),
    ("Patient/p1/Observation?code=8480-6&date=2026-03", ["ob2"]),
    ("Patient/p2/Observation", ["bp1", "ob3"]),
]


@pytest.mark.parametrize(("query", "expected"), CASES, ids=[c[0] for c in CASES])
def test_search_result_sets(shared: TestClient, query: str, expected: list[str]) -> None:
    assert _ids(shared, "/fhir/" + query) == expected


HAS_CASES = [
    ("Patient?_has:Observation:subject:code=8480-6", ["p1"]),
    ("Patient?_has:Observation:subject:code=8480-6,8462-4", ["p1", "p2"]),
    ("Patient?_has:Observation:subject:code=nope", []),
    ("Patient?_has:Observation:patient:_has:Provenance:target:agent=Organization/o1", ["p1"]),
    ("Patient?_has:Condition:asserter:code=44054006", ["p3"]),
    ("Patient?_has:Condition:subject:code=44054006", ["p1"]),
    ("Patient?gender=female&_has:Observation:subject:status=final", ["p1", "p3"]),
    ("Patient?_has:Observation:subject:date=ge2026-01-01&_has:Observation:subject:code=8462-4", []),
    ("Patient?_has:Observation:subject:date=ge2026-01-01&_count=1", ["p1", "p3"]),
    ("Organization?_has:Patient:organization:gender=male", ["o2"]),
]


@pytest.mark.parametrize("per_patient", [False, True], ids=["targets-first", "per-patient"])
@pytest.mark.parametrize(("query", "expected"), HAS_CASES, ids=[c[0] for c in HAS_CASES])
def test_has_plans(
    shared: TestClient, monkeypatch: pytest.MonkeyPatch, per_patient: bool, query: str, expected: list[str]
) -> None:
    """_has on Patients has two plans (chosen by the number of matching sources): both are exact."""
    monkeypatch.setattr(sql, "HAS_PER_PATIENT_FROM", 1 if per_patient else 10**9)
    monkeypatch.setattr(sql, "_patients", lambda conn: 0)  # the bound is the floor alone
    pages = _walk(shared, "/fhir/" + query)
    assert sorted(i for page in pages for i in page) == expected


def test_lastupdated(shared: TestClient) -> None:
    assert _ids(shared, "/fhir/Patient?_lastUpdated=gt2000-01-01") == ["p1", "p2", "p3"]
    assert _ids(shared, "/fhir/Patient?_lastUpdated=lt2000-01-01") == []


def test_include_and_revinclude(shared: TestClient) -> None:
    url = "/fhir/Observation?_id=ob1&_include=Observation:subject&_revinclude=Provenance:target"
    assert _ids(shared, url) == ["ob1"]
    assert _ids(shared, url, "include") == ["p1", "prov1"]
    url = "/fhir/Observation?_id=ob3&_include=Observation:subject&_include:iterate=Patient:organization"
    assert _ids(shared, url, "include") == ["o2", "p2"]
    assert _ids(shared, "/fhir/Observation?_id=ob3&_include=Observation:*", "include") == ["p2"]
    assert _ids(shared, "/fhir/Observation?_id=ob3&_include=Observation:subject:Group", "include") == []


def test_sort_and_paging(shared: TestClient) -> None:
    r = shared.get("/fhir/Patient?_sort=-birthdate&_count=2&_total=accurate")
    bundle = r.json()
    assert [e["resource"]["id"] for e in bundle["entry"]] == ["p3", "p1"]
    assert bundle["total"] == 3
    links = {link["relation"]: link["url"] for link in bundle["link"]}
    assert "previous" not in links
    nxt = shared.get(links["next"].replace("http://testserver", "")).json()
    assert [e["resource"]["id"] for e in nxt["entry"]] == ["p2"]
    assert nxt["total"] == 3
    back = {link["relation"]: link["url"] for link in nxt["link"]}
    assert "next" not in back
    prev = shared.get(back["previous"].replace("http://testserver", "")).json()
    assert [e["resource"]["id"] for e in prev["entry"]] == ["p3", "p1"]
    assert "previous" not in {link["relation"] for link in prev["link"]}
    r = shared.get("/fhir/Patient?_sort=family,-_id")
    assert [e["resource"]["id"] for e in r.json()["entry"]] == ["p3", "p1", "p2"]


def _walk(client: TestClient, url: str, relation: str = "next") -> list[list[str]]:
    """The match ids of every page from url on, following `relation` links."""
    pages: list[list[str]] = []
    next_url: str | None = url
    while next_url:
        bundle = client.get(next_url).json()
        pages.append([e["resource"]["id"] for e in bundle.get("entry", []) if e["search"]["mode"] == "match"])
        links = {link["relation"]: link["url"] for link in bundle["link"]}
        next_url = links.get(relation, "").replace("http://testserver", "") or None
        assert len(pages) < 50, url
    return pages


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        # the default order is (patient_key, type, id): p1's ob1 ob2, p2's bp1 ob3, p3's ob4
        ("Observation?_count=2", ["ob1", "ob2", "bp1", "ob3", "ob4"]),
        ("Observation?status=final&_count=2", ["ob1", "ob2", "bp1", "ob3", "ob4"]),
        ("Patient?_count=2", ["p1", "p2", "p3"]),
        ("Patient?gender=female,male&_count=2", ["p1", "p2", "p3"]),
        ("Patient/p1/Observation?_count=1", ["ob1", "ob2"]),
        ("Observation?subject:Patient.gender=female,male&_count=2", ["ob1", "ob2", "bp1", "ob3", "ob4"]),
        ("Observation?_count=2&_sort=-date", ["ob2", "ob4", "ob1", "ob3", "bp1"]),
        ("Observation?_count=3&_sort=date", ["bp1", "ob3", "ob1", "ob4", "ob2"]),
        # a resource without a value of the sort parameter comes last in both directions
        ("Goal?_count=1&_sort=target-date", ["g1", "g2", "g3"]),
        ("Goal?_count=1&_sort=-target-date", ["g1", "g2", "g3"]),
        ("Goal?_count=2&_sort=-target-date", ["g1", "g2", "g3"]),
        ("Observation?_count=2&_sort=-value-quantity", ["ob2", "ob1", "ob3", "bp1", "ob4"]),
        ("Patient?_count=1&_sort=_lastUpdated", ["o1", "o2", "p1", "p2", "p3"][2:]),
    ],
)
def test_paging_forward_and_back(shared: TestClient, query: str, expected: list[str]) -> None:
    pages = _walk(shared, "/fhir/" + query)
    assert [i for page in pages for i in page] == expected
    count = int(query.split("_count=")[1].split("&")[0])
    assert all(len(page) == count for page in pages[:-1])
    # From the last page back to the first, by the previous links: the same pages in reverse.
    last = shared.get("/fhir/" + query).json()
    for _ in pages[1:]:
        links = {link["relation"]: link["url"] for link in last["link"]}
        last = shared.get(links["next"].replace("http://testserver", "")).json()
    links = {link["relation"]: link["url"] for link in last["link"]}
    if len(pages) > 1:
        back = _walk(shared, links["previous"].replace("http://testserver", ""), "previous")
        assert back == pages[-2::-1]


def test_bad_page_position(shared: TestClient) -> None:
    for token in ("nonsense", "WyJhIl0", "WyJ4IiwxLDIsM10"):
        r = shared.get(f"/fhir/Observation?_page={token}")
        assert r.status_code == 400, r.text
        assert r.json()["resourceType"] == "OperationOutcome"
    # a position of another order
    first = shared.get("/fhir/Observation?_count=2&_sort=-date").json()
    nxt = {link["relation"]: link["url"] for link in first["link"]}["next"]
    token = nxt.split("_page=")[1].split("&")[0]
    assert shared.get(f"/fhir/Observation?_count=2&_page={token}").status_code == 400


def test_total_modes(shared: TestClient) -> None:
    # Without _total no count runs: the total comes only when the whole result is on the first page.
    assert shared.get("/fhir/Observation").json()["total"] == 5
    assert "total" not in shared.get("/fhir/Observation?_count=2").json()
    assert shared.get("/fhir/Observation?_count=2&_total=accurate").json()["total"] == 5
    estimate = shared.get("/fhir/Observation?_count=2&_total=estimate").json()["total"]
    assert estimate >= 3
    assert "total" not in shared.get("/fhir/Observation?_total=none").json()
    assert shared.get("/fhir/Observation?_summary=count").json()["total"] == 5
    assert shared.get("/fhir/Observation?_summary=count&_total=none").json()["total"] == 5
    assert shared.get("/fhir/Observation?code=nope").json()["total"] == 0


def test_summary_total_elements(shared: TestClient) -> None:
    r = shared.get("/fhir/Patient?_summary=count").json()
    assert r["total"] == 3 and "entry" not in r
    r = shared.get("/fhir/Patient?_total=none").json()
    assert "total" not in r
    r = shared.get("/fhir/Patient?_id=p1&_elements=gender").json()
    res = r["entry"][0]["resource"]
    assert set(res) == {"resourceType", "id", "meta", "gender"}
    assert any(t["code"] == "SUBSETTED" for t in res["meta"]["tag"])
    res = shared.get("/fhir/Patient?_id=p3&_summary=true").json()["entry"][0]["resource"]
    assert "deceasedBoolean" in res and "name" in res


def test_post_search(shared: TestClient) -> None:
    r = shared.post(
        "/fhir/Patient/_search",
        content="gender=male",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 200
    assert [e["resource"]["id"] for e in r.json()["entry"]] == ["p2"]


def test_system_search_with_type(shared: TestClient) -> None:
    assert _ids(shared, "/fhir?_type=Patient,Organization&_id=p1,o1") == ["o1", "p1"]


def test_unknown_parameter_lenient_and_strict(shared: TestClient) -> None:
    bundle = shared.get("/fhir/Patient?gender=male&nonsense=1").json()
    assert [e["resource"]["id"] for e in bundle["entry"] if e["search"]["mode"] == "match"] == ["p2"]
    outcome = [e for e in bundle["entry"] if e["search"]["mode"] == "outcome"]
    assert "nonsense" in outcome[0]["resource"]["issue"][0]["diagnostics"]
    r = shared.get("/fhir/Patient?nonsense=1", headers={"prefer": "handling=strict"})
    assert r.status_code == 400
    assert r.json()["issue"][0]["expression"] == ["nonsense"]


BAD = [
    "Patient?birthdate=1990-13",
    "Patient?birthdate=xx1990",
    "Patient?birthdate=not-a-date",
    "Observation?value-quantity=abc",
    "Observation?value-quantity=1|2",
    "Patient?gender:bogus=male",
    "Observation?subject.nosuch=1",
    "Observation?code.name=x",
    "Patient?_has:Nope:subject:code=1",
    "Patient?_has:Observation:code:code=1",
    "Patient?_count=-1",
    "Patient?_sort=nosuch",
    "Patient?_summary=maybe",
    "Patient?_total=lots",
    "Patient?_include=Patient",
    "Patient?_include=Patient:name",
    "Patient?identifier:missing=maybe",
    "Patient?identifier:of-type=NI|x",
    "Observation?subject=a/b/c",
    "Patient/p1/Nope",
    "Nope/p1/Observation",
]


@pytest.mark.parametrize("query", BAD)
def test_malformed_search_is_400(shared: TestClient, query: str) -> None:
    r = shared.get("/fhir/" + query)
    assert r.status_code in (400, 404), r.text
    assert r.json()["resourceType"] == "OperationOutcome"


def test_hostile_values(shared: TestClient) -> None:
    r = shared.get("/fhir/Patient", params={"name": "'; DROP TABLE resource; --"})
    assert r.status_code == 200 and r.json()["total"] == 0
    r = shared.get("/fhir/Patient", params={"name": "%_\\"})
    assert r.status_code == 200 and r.json()["total"] == 0
    r = shared.post(
        "/fhir/Patient/_search",
        content="_id=" + ",".join(str(i) for i in range(10_000)),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 400
    assert shared.get("/fhir/Patient").json()["total"] == 3


def test_index_follows_update_and_delete(loaded: TestClient) -> None:
    doc = dict(PATIENTS[1], gender="female")
    assert loaded.put("/fhir/Patient/p2", json=doc, headers=H).status_code == 200
    assert _ids(loaded, "/fhir/Patient?gender=male") == []
    assert loaded.delete("/fhir/Patient/p1").status_code in (200, 204)
    assert _ids(loaded, "/fhir/Patient?gender=female") == ["p2", "p3"]
    assert _ids(loaded, "/fhir/Patient?name=nguyen") == ["p3"]


def test_moving_subject_moves_compartment(loaded: TestClient) -> None:
    doc = dict(OBSERVATIONS[1], subject={"reference": "Patient/p2"})
    assert loaded.put("/fhir/Observation/ob1", json=doc, headers=H).status_code == 200
    assert _ids(loaded, "/fhir/Patient/p2/Observation") == ["bp1", "ob1", "ob3"]
    assert _ids(loaded, "/fhir/Observation?subject=p1") == ["ob2"]
    hist = loaded.get("/fhir/Observation/ob1/_history").json()
    assert hist["total"] == 2
    assert loaded.get("/fhir/Observation/ob1/_history/1").status_code == 200
