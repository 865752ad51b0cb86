"""The data-quality report on both databases: every kind of problem, scored per facility and province."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi.testclient import TestClient

from healthbook.app import Services
from healthbook.auth.subject import Caller
from healthbook.identity import systems
from healthbook.reports.quality import as_parameters, quality_report

from .conftest import outcome

FHIR = {"Content-Type": "application/fhir+json"}
TODAY = dt.date(2026, 12, 1)


def put(client: TestClient, doc: dict[str, Any]) -> None:
    resp = client.put(f"/fhir/{doc['resourceType']}/{doc['id']}", json=doc, headers=FHIR)
    assert resp.status_code in (200, 201), resp.text


def org(oid: str, code: str, name: str) -> dict[str, Any]:
    return {
        "resourceType": "Organization",
        "id": oid,
        "identifier": [{"system": systems.FACILITY_CODE, "value": code}],
        "name": name,
    }


def person(pid: str, org_id: str, **fields: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "resourceType": "Patient",
        "id": pid,
        "name": [
            {
                "family": {"p1": "Nguyễn", "p2": "Trần", "p3": "Phạm"}.get(pid, "Lê"),
                "given": ["Văn", {"p1": "An", "p2": "Bình", "p3": "Cường"}.get(pid, "Dũng")],
            }
        ],
        "gender": "male",
        "birthDate": "1980-01-01",
        "address": [{"extension": [{"url": systems.EXT_PROVINCE, "valueCode": "01"}]}],
        "generalPractitioner": [{"reference": f"Organization/{org_id}"}],
    }
    doc.update(fields)
    return {k: v for k, v in doc.items() if v is not None}


def encounter(eid: str, pid: str, org_id: str, day: str) -> dict[str, Any]:
    return {
        "resourceType": "Encounter",
        "id": eid,
        "status": "finished",
        "class": {"code": "AMB"},
        "subject": {"reference": f"Patient/{pid}"},
        "serviceProvider": {"reference": f"Organization/{org_id}"},
        "period": {"start": day, "end": day},
    }


def condition(cid: str, pid: str, eid: str, code: str) -> dict[str, Any]:
    return {
        "resourceType": "Condition",
        "id": cid,
        "subject": {"reference": f"Patient/{pid}"},
        "encounter": {"reference": f"Encounter/{eid}"},
        "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10", "code": code}]},
        "recordedDate": "2026-06-01",
    }


def load(client: TestClient) -> None:
    put(client, org("tram", "01901", "Trạm Y tế phường A"))
    put(client, org("bv", "79001", "Bệnh viện B"))
    # p1: clean — valid number, recent care, a valid diagnosis
    put(client, person("p1", "tram", identifier=[{"system": systems.CCCD, "value": "001080012345"}]))
    put(client, encounter("e1", "p1", "tram", "2026-06-01"))
    put(client, condition("c1", "p1", "e1", "I10"))
    # p2: no personal ID number, no address; a code outside ICD-10 and a female-only code, seen at B
    put(client, person("p2", "tram", address=None))
    put(client, encounter("e2", "p2", "bv", "2026-05-01"))
    put(client, condition("c2", "p2", "e2", "X99.99"))
    put(client, condition("c3", "p2", "e2", "C53.9"))  # cervix: female-only (QĐ 4469 A4.1)
    # p3: last care ten years ago, and an observation pointing at an encounter that does not exist
    put(
        client,
        person(
            "p3",
            "tram",
            birthDate="1970-01-01",
            identifier=[{"system": systems.CCCD, "value": "001070054321"}],
        ),
    )
    put(client, encounter("e3", "p3", "tram", "2016-01-01"))
    put(
        client,
        {
            "resourceType": "Observation",
            "id": "o3",
            "status": "final",
            "code": {"text": "cân nặng"},
            "subject": {"reference": "Patient/p3"},
            "encounter": {"reference": "Encounter/missing"},
            "effectiveDateTime": "2016-01-01",
        },
    )


def issues(params: dict[str, Any], kind: str, code: str) -> tuple[int, float, dict[str, int]]:
    for p in params["parameter"]:
        if p["name"] != kind:
            continue
        parts = {x["name"]: x for x in p["part"] if x["name"] != "issue"}
        if parts["code"]["valueString"] != code:
            continue
        found = {
            next(y["valueCode"] for y in x["part"] if y["name"] == "kind"): next(
                y["valueInteger"] for y in x["part"] if y["name"] == "count"
            )
            for x in p["part"]
            if x["name"] == "issue"
        }
        return parts["records"]["valueInteger"], parts["score"]["valueDecimal"], found
    raise AssertionError(f"no {kind} {code}")


def test_every_kind_of_problem_is_found_and_attributed(client: TestClient, services: Services) -> None:
    load(client)
    report = quality_report(services.fhir, Caller.system("test"), years=3, today=TODAY)
    params = as_parameters(report)
    records, score, found = issues(params, "facility", "01901")
    # the station manages the three books and records p1's and p3's care
    assert found == {"missing-field": 2, "no-recent-data": 1, "unresolvable-reference": 1}
    assert records == 7 and score == round(100 * 4 / 7, 1)
    b_records, _, b_found = issues(params, "facility", "79001")
    assert b_records == 3 and b_found == {"code-invalid": 2}
    # the province of the hospital is Hồ Chí Minh, of the station and the people Hà Nội
    assert issues(params, "province", "79")[0] == 3
    assert issues(params, "province", "01")[0] == 7
    total = issues(params, "total", "VN")
    assert total[0] == 10 and sum(total[2].values()) == 6 and total[1] == 50.0


def test_likely_duplicates_and_invalid_identifiers(client: TestClient, services: Services) -> None:
    put(client, org("tram", "01901", "Trạm Y tế phường A"))
    put(client, person("d1", "tram", name=[{"family": "Lê", "given": ["Thị", "Hoa"]}], gender="female"))
    put(client, person("d2", "tram", name=[{"family": "LE", "given": ["THI", "HOA"]}], gender="female"))
    report = quality_report(services.fhir, Caller.system("test"), years=3, today=TODAY)
    found = issues(as_parameters(report), "facility", "01901")[2]
    assert found["likely-duplicate"] == 2


def test_http_report(client: TestClient) -> None:
    load(client)
    resp = client.get("/fhir/$quality-report")
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["resourceType"] == "Parameters"
    labels = [
        y["valueString"]
        for p in body["parameter"]
        for x in p.get("part", [])
        if x["name"] == "issue"
        for y in x["part"]
        if y["name"] == "label"
    ]
    assert any(label == "Mã ngoài danh mục / Code outside its code system" for label in labels)
    outcome(client.get("/fhir/$quality-report", params={"years": "0"}), 400)
    outcome(client.get("/fhir/$quality-report", params={"years": "x"}), 400)
