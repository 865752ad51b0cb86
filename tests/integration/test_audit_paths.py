"""The audit trail on the paths an independent review found open: every way of reading a book is recorded,
nothing is answered about what the caller may not see, and concurrent work neither collides nor deadlocks."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from healthbook.audit import chain
from healthbook.audit import repository as repo
from healthbook.auth.subject import Caller, Role
from healthbook.fhir.audit import Access
from healthbook.fhir.router import Services
from tests.integration import access_population as pop
from tests.integration.access_population import as_
from tests.integration.conftest import outcome

JSON_PATCH = {"Content-Type": "application/json-patch+json"}


def events(services: Services, book: str) -> list[tuple[str, str, str | None]]:
    """(interaction, outcome, purpose) of a book's events, in chain order."""
    with services.fhir.db.read() as conn:
        rows = conn.execute(
            text("SELECT interaction, outcome, purpose FROM audit_event WHERE patient_key = :k ORDER BY seq"),
            {"k": book},
        )
        return [(r[0], r[1], r[2]) for r in rows]


def parallel(tasks: list[Callable[[], Any]]) -> list[BaseException]:
    errors: list[BaseException] = []

    def run(task: Callable[[], Any]) -> None:
        try:
            task()
        except BaseException as exc:  # reported to the test
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(t,)) for t in tasks]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def slow_links(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    """Widen the window between reading a chain head and writing the next link."""
    real = chain.digest
    monkeypatch.setattr(chain, "digest", lambda row: (time.sleep(seconds), real(row))[1])


def test_a_conditional_create_that_answers_with_an_existing_record_records_the_read(
    secured: tuple[TestClient, Services],
) -> None:
    client, services = secured
    obs = pop.observation("x", "citizen", "citizen-hospital", "75622-1")
    del obs["id"]
    headers = {**as_("station"), "If-None-Exist": "code=75622-1&subject=Patient/citizen"}
    resp = client.post("/fhir/Observation", json=obs, headers={**headers, "Prefer": "return=representation"})
    assert resp.status_code == 200 and resp.json()["id"] == "citizen-hiv"
    assert ("read", "0", "TREAT") in events(services, "citizen")


def test_counts_empty_compartments_and_has_over_shared_types_record_the_book_they_name(
    secured: tuple[TestClient, Services],
) -> None:
    client, services = secured
    h = as_("station")
    assert (
        client.get("/fhir/Patient/citizen/Observation?code=75622-1&_summary=count", headers=h).json()["total"]
        == 1
    )
    assert (
        client.get(
            "/fhir/Patient/citizen/Condition?code=http://hl7.org/fhir/sid/icd-10|C50", headers=h
        ).json()["total"]
        == 0
    )
    orgs = client.get("/fhir/Organization?_has:Encounter:service-provider:subject=Patient/citizen", headers=h)
    assert {e["resource"]["id"] for e in orgs.json()["entry"]} == {"hospital", "station"}
    assert [e[:2] for e in events(services, "citizen")] == [("search-type", "0")] * 3
    # A book the caller may not see is recorded as refused; made-up ids start no chain.
    client.get("/fhir/Observation?subject=Patient/stranger&_summary=count", headers=h)
    client.get("/fhir/Observation?subject=Patient/nobody-1,Patient/nobody-2", headers=h)
    assert events(services, "stranger") == [("search-type", "4", "TREAT")]
    assert events(services, "nobody-1") == []


def test_everything_records_the_books_of_the_page_it_serves(secured: tuple[TestClient, Services]) -> None:
    client, services = secured
    for res in [
        pop.encounter("mother-station", "mother", "station"),
        {
            "resourceType": "AllergyIntolerance",
            "id": "citizen-allergy",
            "patient": {"reference": "Patient/citizen"},
            "asserter": {"reference": "Patient/mother"},
            "encounter": {"reference": "Encounter/citizen-station"},
            "code": {"text": "penicillin"},
        },
    ]:
        services.fhir.update(pop.SYSTEM, res["resourceType"], res["id"], res)
    page = client.get(
        "/fhir/Patient/mother/$everything?_count=1&_page_offset=1", headers=as_("station")
    ).json()
    assert [(e["resource"]["resourceType"], e["resource"]["id"]) for e in page["entry"]] == [
        ("AllergyIntolerance", "citizen-allergy")
    ]
    assert [e[0] for e in events(services, "citizen")] == ["$everything"]
    assert [e[0] for e in events(services, "mother")] == ["$everything"]


def test_an_empty_patch_or_an_unchanged_put_answers_nothing_about_an_unseen_record(
    secured: tuple[TestClient, Services],
) -> None:
    client, services = secured
    h = as_("station")
    outcome(client.get("/fhir/Observation/stranger-hiv", headers=h), 404)
    outcome(client.patch("/fhir/Observation/stranger-hiv", json=[], headers={**h, **JSON_PATCH}), 404)
    probe = [{"op": "test", "path": "/status", "value": "final"}]
    outcome(client.patch("/fhir/Observation/stranger-hiv", json=probe, headers={**h, **JSON_PATCH}), 404)
    stored = client.get("/fhir/Observation/stranger-hiv", headers=as_("stranger")).json()
    outcome(client.put("/fhir/Observation/stranger-hiv", json=stored, headers=h), 404)
    assert client.delete("/fhir/Observation/stranger-hiv", headers=h).status_code in (
        200,
        204,
    )  # not there, for it
    assert client.get("/fhir/Observation/stranger-hiv", headers=as_("stranger")).status_code == 200
    # An unchanged PUT of a record it may write answers 200 and records the read.
    own = client.get("/fhir/Observation/citizen-bp", headers=h).json()
    assert client.put("/fhir/Observation/citizen-bp", json=own, headers=h).status_code == 200
    assert [e[0] for e in events(services, "citizen")] == ["read", "read"]


def test_conditional_criteria_do_not_match_what_the_caller_may_not_see(
    secured: tuple[TestClient, Services],
) -> None:
    client, _services = secured
    obs = pop.observation("x", "stranger", None, "75622-1")
    del obs["id"]
    h = as_("station")
    hit = client.post(
        "/fhir/Observation", json=obs, headers={**h, "If-None-Exist": "subject=Patient/stranger&code=75622-1"}
    )
    miss = client.post(
        "/fhir/Observation", json=obs, headers={**h, "If-None-Exist": "subject=Patient/stranger&code=0000-0"}
    )
    assert hit.status_code == miss.status_code == 403, (hit.text[:200], miss.text[:200])
    gone = client.delete("/fhir/Observation?subject=Patient/stranger", headers=h)
    assert gone.status_code in (200, 204), gone.text[:300]  # no match among what the station sees
    assert client.get("/fhir/Observation/stranger-hiv", headers=as_("stranger")).status_code == 200


def test_trail_ids_and_other_ids_get_the_same_answer(secured: tuple[TestClient, Services]) -> None:
    client, _services = secured
    client.get("/fhir/Patient/citizen", headers=as_("citizen"))
    trail_id = client.get("/fhir/AuditEvent", headers=as_("citizen")).json()["entry"][0]["resource"]["id"]
    narrow = pop.headers(
        pop.token("citizen", scope="openid patient/Observation.rs", healthbook_cccd=pop.STRANGER)
    )
    known = client.get(f"/fhir/AuditEvent/{trail_id}", headers=narrow)
    unknown = client.get("/fhir/AuditEvent/00000000-0000-4000-8000-000000000000", headers=narrow)
    assert known.status_code == unknown.status_code == 403
    stranger = as_("stranger")
    assert client.get(f"/fhir/AuditEvent/{trail_id}", headers=stranger).status_code == 404
    assert (
        client.get("/fhir/AuditEvent/00000000-0000-4000-8000-000000000000", headers=stranger).status_code
        == 404
    )


def test_subtypes_are_searched_by_the_codes_the_events_carry(secured: tuple[TestClient, Services]) -> None:
    client, _services = secured
    client.get("/fhir/Patient/citizen/$everything", headers=as_("citizen"))
    client.get("/fhir/Patient/citizen", headers=as_("citizen"))
    url = "http://hl7.org/fhir/OperationDefinition/Patient-everything"
    for token in (
        url,
        f"urn:ietf:rfc:3986|{url}",
        "operation",
        "http://hl7.org/fhir/restful-interaction|operation",
    ):
        found = client.get(
            "/fhir/AuditEvent", params={"subtype": token, "_format": "json"}, headers=as_("citizen")
        )
        assert found.status_code == 200, found.text[:300]
        assert [e["resource"]["subtype"][-1]["code"] for e in found.json()["entry"]] == [url]
    reads = client.get(
        "/fhir/AuditEvent?subtype=read", headers={**as_("citizen"), "Prefer": "handling=strict"}
    )
    assert len(reads.json()["entry"]) == 1


def test_a_nul_in_a_bundle_search_is_a_400_entry(secured: tuple[TestClient, Services]) -> None:
    client, _services = secured
    entry = {"request": {"method": "GET", "url": "Observation?subject=Patient/citizen&x%00y=1"}}
    resp = client.post(
        "/fhir", json={"resourceType": "Bundle", "type": "batch", "entry": [entry]}, headers=as_("station")
    )
    assert resp.status_code == 200
    assert resp.json()["entry"][0]["response"]["status"].startswith("400")


def test_break_glass_reads_are_for_emergency_treatment(secured: tuple[TestClient, Services]) -> None:
    client, services = secured
    reason = {"resourceType": "Parameters", "parameter": [{"name": "reason", "valueString": "cấp cứu"}]}
    assert (
        client.post("/fhir/Patient/stranger/$break-glass", json=reason, headers=as_("station")).status_code
        == 201
    )
    client.get("/fhir/Observation/stranger-hiv", headers=as_("station"))
    client.get("/fhir/Observation/citizen-bp", headers=as_("station"))
    assert events(services, "stranger") == [("$break-glass", "0", "ETREAT"), ("read", "0", "ETREAT")]
    assert events(services, "citizen") == [("read", "0", "TREAT")]


def test_concurrent_batch_reads_of_one_book_do_not_collide(
    secured: tuple[TestClient, Services], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, services = secured
    slow_links(monkeypatch, 0.1)
    batch = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [{"request": {"method": "GET", "url": "Observation/citizen-bp"}}],
    }
    h = as_("station")
    results: list[int] = []
    errors = parallel([lambda: results.append(client.post("/fhir", json=batch, headers=h).status_code)] * 3)
    assert errors == [] and results == [200, 200, 200]
    assert [e[0] for e in events(services, "citizen")] == ["read"] * 3
    assert services.audit is not None and services.audit.verify().breaks == []


def test_transactions_writing_two_books_in_opposite_orders_do_not_deadlock(
    secured: tuple[TestClient, Services], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, services = secured
    slow_links(monkeypatch, 0.3)

    def bundle(first: tuple[str, str, str], second: tuple[str, str, str]) -> dict[str, Any]:
        return {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [
                {
                    "resource": pop.observation(*ids, "8867-4"),
                    "request": {"method": "PUT", "url": f"Observation/{ids[0]}"},
                }
                for ids in (first, second)
            ],
        }

    a = bundle(("a1", "citizen", "citizen-station"), ("a2", "child", "child-station"))
    b = bundle(("b1", "child", "child-station"), ("b2", "citizen", "citizen-station"))
    h = as_("station")
    statuses: list[int] = []
    errors = parallel(
        [
            lambda: statuses.append(client.post("/fhir", json=a, headers=h).status_code),
            lambda: statuses.append(client.post("/fhir", json=b, headers=h).status_code),
        ]
    )
    assert errors == [] and statuses == [200, 200]
    assert [e[0] for e in events(services, "citizen")] == ["update", "update"]


def test_verify_on_a_live_trail_reports_no_false_break(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    trail = services.audit
    assert trail is not None
    who = Caller(subject="w", issuer=pop.ISSUER, role=Role.HEALTH_WORKER, facility=pop.STATION)
    trail.record(who, [Access("busy", "read")])
    real = repo.events_of

    def events_of(conn: Any, key: str, batch: int = 1000) -> Any:
        rows = list(real(conn, key, batch))
        done = threading.Thread(target=trail.record, args=(who, [Access(key, "read")]))
        done.start()
        done.join()  # another request appends while verify walks the chain
        return iter(rows)

    monkeypatch.setattr(repo, "events_of", events_of)
    assert trail.verify().breaks == []


def test_a_refused_write_is_recorded_after_its_rollback(secured: tuple[TestClient, Services]) -> None:
    client, services = secured
    obs = pop.observation("refused", "citizen", "citizen-hospital", "8867-4")  # the hospital's encounter
    outcome(client.put("/fhir/Observation/refused", json=obs, headers=as_("station")), 403)
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [{"resource": obs, "request": {"method": "PUT", "url": "Observation/refused"}}],
    }
    outcome(client.post("/fhir", json=bundle, headers=as_("station")), 403)
    assert (
        client.get("/fhir/Observation/refused", headers=as_("citizen")).status_code == 404
    )  # nothing written
    assert events(services, "citizen") == [("update", "4", "TREAT"), ("update", "4", "TREAT")]


def test_conditional_references_and_patient_criteria_name_nothing_unseen(
    secured: tuple[TestClient, Services],
) -> None:
    client, _services = secured
    h = as_("elsewhere")  # treats the stranger only
    report = {
        "resourceType": "DiagnosticReport",
        "status": "final",
        "code": {"text": "x"},
        "subject": {"reference": "Patient/stranger"},
        "result": [{"reference": "Observation?code=85354-9"}],  # only the citizen's records have this code
    }
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [{"resource": report, "request": {"method": "POST", "url": "DiagnosticReport"}}],
    }
    resp = client.post("/fhir", json=bundle, headers=h)
    assert resp.status_code == 412 and "matched 0 resources" in resp.text, resp.text[:300]
    patient = {"resourceType": "Patient", "identifier": [{"system": pop.systems.CCCD, "value": pop.CITIZEN}]}
    put = client.put(f"/fhir/Patient?identifier={pop.systems.CCCD}|{pop.CITIZEN}", json=patient, headers=h)
    assert put.status_code == 404 and "citizen" not in put.text, put.text[:300]
