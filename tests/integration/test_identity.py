"""One health book per citizen, on both databases: the number register, matching, $match, $merge, undo."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from healthbook.app import Services
from healthbook.auth.subject import Caller
from healthbook.fhir.bulk.ndjson_import import Line, import_lines
from healthbook.identity import systems

from .conftest import TableCounts, outcome

FHIR = {"Content-Type": "application/fhir+json"}


def patient(
    family: str = "Nguyễn",
    given: tuple[str, ...] = ("Thị", "Ánh"),
    *,
    cccd: str | None = "001185012345",
    birth: str = "1985-04-12",
    gender: str = "female",
    commune: str = "10144",
    old: tuple[str, ...] = (),
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "resourceType": "Patient",
        "name": [{"use": "official", "family": family, "given": list(given)}],
        "gender": gender,
        "birthDate": birth,
        "address": [
            {
                "use": "home",
                "extension": [
                    {"url": systems.EXT_PROVINCE, "valueCode": "01"},
                    {"url": systems.EXT_COMMUNE, "valueCode": commune},
                ],
            }
        ],
    }
    idents = [{"system": systems.CCCD, "value": cccd}] if cccd else []
    idents += [{"system": systems.CCCD, "value": v, "use": "old"} for v in old]
    if idents:
        doc["identifier"] = idents
    return doc


def post(client: TestClient, doc: dict[str, Any]) -> dict[str, Any]:
    resp = client.post(f"/fhir/{doc['resourceType']}", json=doc, headers=FHIR)
    assert resp.status_code == 201, resp.text
    out: dict[str, Any] = resp.json()
    return out


def params(*parts: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Parameters", "parameter": list(parts)}


def ref(name: str, pid: str) -> dict[str, Any]:
    return {"name": name, "valueReference": {"reference": f"Patient/{pid}"}}


def match(client: TestClient, doc: dict[str, Any], **extra: Any) -> dict[str, Any]:
    parts: list[dict[str, Any]] = [{"name": "resource", "resource": doc}]
    if extra.get("only_certain"):
        parts.append({"name": "onlyCertainMatches", "valueBoolean": True})
    resp = client.post("/fhir/Patient/$match", json=params(*parts), headers=FHIR)
    assert resp.status_code == 200, resp.text
    out: dict[str, Any] = resp.json()
    return out


def test_second_book_for_the_same_number_is_refused(
    client: TestClient, counts: Callable[[], TableCounts]
) -> None:
    first = post(client, patient())
    before = counts()
    resp = client.post("/fhir/Patient", json=patient("NGUYEN", ("THI", "ANH")), headers=FHIR)
    body = outcome(resp, 409, "conflict")
    text = body["issue"][0]["diagnostics"]
    assert first["id"] in text and "mỗi công dân chỉ có một sổ" in text and "one book per citizen" in text
    assert body["issue"][0]["expression"] == ["Patient.identifier[0].value"]
    assert counts() == before
    # the conditional create a facility should use finds the existing book
    resp = client.post(
        "/fhir/Patient",
        json=patient("NGUYEN", ("THI", "ANH")),
        headers={**FHIR, "If-None-Exist": f"identifier={systems.CCCD}|001185012345"},
    )
    assert resp.status_code == 200 and resp.json()["id"] == first["id"]


def test_invalid_number_is_a_bilingual_422(client: TestClient, counts: Callable[[], TableCounts]) -> None:
    before = counts()
    resp = client.post("/fhir/Patient", json=patient(cccd="001185012345", birth="1986-04-12"), headers=FHIR)
    body = outcome(resp, 422)
    issue = body["issue"][0]
    assert issue["expression"] == ["Patient.identifier[0].value"]
    assert "năm sinh 1985" in issue["diagnostics"] and "birth year 1985" in issue["diagnostics"]
    assert counts() == before


def test_sex_mismatch_is_stored_with_a_warning(client: TestClient) -> None:
    resp = client.post(
        "/fhir/Patient",
        json=patient(gender="male"),
        headers={**FHIR, "Prefer": "return=OperationOutcome"},
    )
    assert resp.status_code == 201, resp.text
    assert any(i["severity"] == "warning" for i in resp.json()["issue"])


def test_reissued_number_keeps_history_and_is_never_given_to_another(client: TestClient) -> None:
    # Born 1985 but registered with a wrong year (1986): the number is cancelled and a new one issued.
    wrong = post(client, patient(cccd="001186012345", birth="1986-04-12"))
    corrected = patient(cccd="001185054321", old=("001186012345",))
    corrected["id"] = wrong["id"]
    resp = client.put(f"/fhir/Patient/{wrong['id']}", json=corrected, headers=FHIR)
    assert resp.status_code == 200, resp.text
    # the cancelled number still finds the person
    found = match(client, patient(cccd="001186012345", birth="1986-04-12"), only_certain=True)
    assert [e["resource"]["id"] for e in found["entry"]] == [wrong["id"]]
    assert found["entry"][0]["search"]["extension"][0]["valueCode"] == "certain"
    # and nobody else can take it
    resp = client.post(
        "/fhir/Patient",
        json=patient("Lê", ("Văn", "Hùng"), cccd="001186012345", birth="1986-01-01", gender="male"),
        headers=FHIR,
    )
    body = outcome(resp, 409, "conflict")
    assert "never re-issued" in body["issue"][0]["diagnostics"]
    # dropping the number from the record altogether does not free it either
    corrected["identifier"] = [{"system": systems.CCCD, "value": "001185054321"}]
    assert client.put(f"/fhir/Patient/{wrong['id']}", json=corrected, headers=FHIR).status_code == 200
    resp = client.post(
        "/fhir/Patient",
        json=patient("Lê", ("Văn", "Hùng"), cccd="001186012345", birth="1986-01-01", gender="male"),
        headers=FHIR,
    )
    outcome(resp, 409, "conflict")


def test_one_number_in_use_at_a_time(client: TestClient) -> None:
    doc = patient()
    doc["identifier"].append({"system": systems.CCCD, "value": "001185099999"})
    outcome(client.post("/fhir/Patient", json=doc, headers=FHIR), 422, "business-rule")


def test_deleting_a_book_lets_the_person_be_registered_again(client: TestClient) -> None:
    first = post(client, patient())
    assert client.delete(f"/fhir/Patient/{first['id']}").status_code in (200, 204)
    again = post(client, patient())
    assert again["id"] != first["id"]


def test_two_facilities_register_the_same_person(client: TestClient) -> None:
    station = post(client, patient("Nguyễn", ("Thị", "Ánh"), cccd=None))
    hospital = post(client, patient("NGUYEN", ("THI", "ANH"), cccd=None))
    other = post(client, patient("Trần", ("Văn", "Nam"), cccd=None, gender="male"))
    resp = client.get("/fhir/Patient/$duplicates")
    assert resp.status_code == 200
    pairs = [
        {p["valueReference"]["reference"] for p in pair["part"] if p["name"] in ("patient", "other")}
        for pair in resp.json()["parameter"]
    ]
    assert pairs == [{f"Patient/{station['id']}", f"Patient/{hospital['id']}"}]
    assert client.get(f"/fhir/Patient/{other['id']}/$duplicates").json()["parameter"] == []
    # $match grades the pair probable and the stranger not at all
    found = match(client, patient("Nguyen", ("Thi", "Anh"), cccd=None))
    assert {e["resource"]["id"] for e in found["entry"]} == {station["id"], hospital["id"]}
    assert {e["search"]["extension"][0]["valueCode"] for e in found["entry"]} == {"probable"}
    # a health worker rules them different: the flag closes
    resp = client.post(
        "/fhir/Patient/$not-duplicate",
        json=params(ref("patient", station["id"]), ref("other", hospital["id"])),
        headers=FHIR,
    )
    assert resp.status_code == 200, resp.text
    assert client.get("/fhir/Patient/$duplicates").json()["parameter"] == []


def test_match_rejects_bad_parameters(client: TestClient) -> None:
    outcome(client.post("/fhir/Patient/$match", json={"resourceType": "Patient"}, headers=FHIR), 400)
    outcome(
        client.post("/fhir/Patient/$match", json=params({"name": "count", "valueInteger": 3}), headers=FHIR),
        400,
    )


def test_merge_moves_the_compartment_and_can_be_undone(client: TestClient) -> None:
    target = post(client, patient())
    source = post(client, patient("NGUYEN", ("THI", "ANH"), cccd=None))
    obs = post(
        client,
        {
            "resourceType": "Observation",
            "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
            "subject": {"reference": f"Patient/{source['id']}"},
            "valueQuantity": {"value": 52, "unit": "kg", "system": "http://unitsofmeasure.org", "code": "kg"},
        },
    )
    enc = post(
        client,
        {
            "resourceType": "Encounter",
            "status": "finished",
            "class": {"code": "AMB"},
            "subject": {"reference": f"Patient/{source['id']}"},
        },
    )
    preview = client.post(
        "/fhir/Patient/$merge",
        json=params(
            ref("source-patient", source["id"]),
            ref("target-patient", target["id"]),
            {"name": "preview", "valueBoolean": True},
        ),
        headers=FHIR,
    )
    assert preview.status_code == 200, preview.text
    assert "2" in preview.json()["parameter"][0]["resource"]["issue"][0]["diagnostics"]
    assert client.get(f"/fhir/Observation/{obs['id']}").json()["meta"]["versionId"] == "1"

    resp = client.post(
        "/fhir/Patient/$merge",
        json=params(ref("source-patient", source["id"]), ref("target-patient", target["id"])),
        headers=FHIR,
    )
    assert resp.status_code == 200, resp.text
    merge_id = next(p["valueString"] for p in resp.json()["parameter"] if p["name"] == "merge-id")
    moved = client.get(f"/fhir/Observation/{obs['id']}").json()
    assert moved["subject"]["reference"] == f"Patient/{target['id']}" and moved["meta"]["versionId"] == "2"
    everything = client.get(f"/fhir/Patient/{target['id']}/$everything").json()
    ids = {e["resource"]["id"] for e in everything["entry"]}
    assert {obs["id"], enc["id"]} <= ids
    retired = client.get(f"/fhir/Patient/{source['id']}").json()
    assert retired["active"] is False
    assert {"other": {"reference": f"Patient/{target['id']}"}, "type": "replaced-by"} in retired["link"]
    survivor = client.get(f"/fhir/Patient/{target['id']}").json()
    assert {"other": {"reference": f"Patient/{source['id']}"}, "type": "replaces"} in survivor["link"]
    # the history of the moved resource is kept
    history = client.get(f"/fhir/Observation/{obs['id']}/_history").json()
    assert history["total"] == 2
    # merging again is refused
    again = client.post(
        "/fhir/Patient/$merge",
        json=params(ref("source-patient", source["id"]), ref("target-patient", target["id"])),
        headers=FHIR,
    )
    outcome(again, 409)

    undo = client.post(
        "/fhir/Patient/$unmerge", json=params({"name": "merge-id", "valueString": merge_id}), headers=FHIR
    )
    assert undo.status_code == 200, undo.text
    back = client.get(f"/fhir/Observation/{obs['id']}").json()
    assert back["subject"]["reference"] == f"Patient/{source['id']}" and back["meta"]["versionId"] == "3"
    restored = client.get(f"/fhir/Patient/{source['id']}").json()
    assert restored.get("active") is not False and "link" not in restored
    assert "link" not in client.get(f"/fhir/Patient/{target['id']}").json()
    target_everything = client.get(f"/fhir/Patient/{target['id']}/$everything").json()
    assert obs["id"] not in {e["resource"]["id"] for e in target_everything["entry"]}
    outcome(
        client.post(
            "/fhir/Patient/$unmerge", json=params({"name": "merge-id", "valueString": merge_id}), headers=FHIR
        ),
        409,
    )


def test_merge_by_personal_id_moves_the_number_to_a_book_without_one(client: TestClient) -> None:
    target = post(client, patient(cccd=None))
    source = post(client, patient("NGUYEN", ("THI", "ANH")))
    resp = client.post(
        "/fhir/Patient/$merge",
        json=params(
            {
                "name": "source-patient-identifier",
                "valueIdentifier": {"system": systems.CCCD, "value": "001185012345"},
            },
            ref("target-patient", target["id"]),
        ),
        headers=FHIR,
    )
    assert resp.status_code == 200, resp.text
    result = next(p["resource"] for p in resp.json()["parameter"] if p["name"] == "result")
    assert {"system": systems.CCCD, "value": "001185012345"} in result["identifier"]
    found = match(client, patient(cccd="001185012345"), only_certain=True)
    assert [e["resource"]["id"] for e in found["entry"]] == [target["id"]]
    assert source["id"] != target["id"]


def test_merge_errors(client: TestClient) -> None:
    one = post(client, patient())
    outcome(
        client.post(
            "/fhir/Patient/$merge",
            json=params(ref("source-patient", one["id"]), ref("target-patient", one["id"])),
            headers=FHIR,
        ),
        400,
    )
    outcome(
        client.post(
            "/fhir/Patient/$merge",
            json=params(ref("source-patient", "nope"), ref("target-patient", one["id"])),
            headers=FHIR,
        ),
        404,
    )
    outcome(
        client.post("/fhir/Patient/$merge", json=params(ref("target-patient", one["id"])), headers=FHIR), 400
    )
    outcome(
        client.post(
            "/fhir/Patient/$unmerge", json=params({"name": "merge-id", "valueString": "x"}), headers=FHIR
        ),
        404,
    )


def test_transaction_with_two_books_for_one_number_leaves_nothing(
    client: TestClient, counts: Callable[[], TableCounts]
) -> None:
    before = counts()
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"resource": patient(), "request": {"method": "POST", "url": "Patient"}},
            {"resource": patient("NGUYEN", ("THI", "ANH")), "request": {"method": "POST", "url": "Patient"}},
        ],
    }
    resp = client.post("/fhir", json=bundle, headers=FHIR)
    assert resp.status_code == 409, resp.text
    assert counts() == before


def test_bulk_import_reports_the_second_book_and_goes_on(services: Services) -> None:
    docs = [
        {**patient(), "id": "p1"},
        {**patient("NGUYEN", ("THI", "ANH")), "id": "p2"},
        {
            **patient("Trần", ("Văn", "Nam"), cccd="001080012345", gender="male", birth="1980-01-01"),
            "id": "p3",
        },
    ]
    errors: list[dict[str, Any]] = []
    lines = [Line("people.ndjson", n, orjson.dumps(d)) for n, d in enumerate(docs, start=1)]
    stats = import_lines(services.fhir, Caller.system("test"), lines, errors=errors.append)
    assert (stats.created, stats.errors) == (2, 1)
    assert len(errors) == 1 and "p1" in orjson.dumps(errors[0]).decode()
    assert "2" in orjson.dumps(errors[0]).decode()


def test_concurrent_registrations_of_one_number_make_one_book(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time
    from concurrent.futures import ThreadPoolExecutor

    from healthbook.errors import Conflict
    from healthbook.identity import repository

    lookup = repository.number

    def slow_lookup(*args: Any) -> Any:
        found = lookup(*args)
        time.sleep(0.2)  # widen the window between "no owner yet" and the insert
        return found

    monkeypatch.setattr(repository, "number", slow_lookup)

    def register(n: int) -> str:
        try:
            services.fhir.create(Caller.system("test"), "Patient", patient(given=("Thị", f"Ánh{n}")))
            return "created"
        except Conflict:
            return "conflict"

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = sorted(pool.map(register, range(4)))
    assert results == ["conflict", "conflict", "conflict", "created"]
