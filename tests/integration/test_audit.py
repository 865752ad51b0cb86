"""The audit trail: every access of an authenticated caller recorded, readable by the book's owner only, untouchable."""

from __future__ import annotations

import base64
import threading
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from healthbook.auth.subject import Caller, Role
from healthbook.db.dialect import drop_append_only_ddl
from healthbook.fhir.audit import Access
from healthbook.fhir.router import Services
from healthbook.fhir.validation import validate_resource
from tests.integration import access_population as pop
from tests.integration.access_population import TOKENS, as_
from tests.integration.conftest import outcome

Event = dict[str, Any]


def log(client: TestClient, role: str, query: str = "") -> list[Event]:
    """The AuditEvents a role is shown, following every next link."""
    url: str | None = f"/fhir/AuditEvent{query}"
    events: list[Event] = []
    while url:
        resp = client.get(url, headers=as_(role))
        assert resp.status_code == 200, resp.text[:300]
        bundle = resp.json()
        events += [e["resource"] for e in bundle.get("entry", []) if e["search"]["mode"] == "match"]
        url = next((link["url"] for link in bundle["link"] if link["relation"] == "next"), None)
    return events


def book(event: Event) -> str:
    return str(event["entity"][0]["what"]["reference"])


def facility(event: Event) -> str | None:
    for agent in event["agent"][1:]:
        if agent["type"]["coding"][0]["code"] == "110152":
            return str(agent["who"]["identifier"]["value"])
    return None


def interaction(event: Event) -> str:
    return str(event["subtype"][-1]["code"])


def stored_events(services: Services) -> int:
    with services.fhir.db.read() as conn:
        return int(conn.execute(text("SELECT count(*) FROM audit_event")).scalar_one())


def test_reads_searches_and_writes_are_recorded_for_the_book_they_touch(
    secured: tuple[TestClient, Services],
) -> None:
    client, services = secured
    assert stored_events(services) == 0  # in-process loading is not recorded per record
    assert client.get("/fhir/Observation/citizen-bp", headers=as_("station")).status_code == 200
    found = client.get("/fhir/Observation?code=85354-9,29463-7&_count=10", headers=as_("station"))
    assert found.status_code == 200
    obs = pop.observation("hosp-new", "citizen", "citizen-hospital", "8867-4")
    assert client.post("/fhir/Observation", json=obs, headers=as_("hospital")).status_code == 201

    events = log(client, "citizen")
    assert {book(e) for e in events} == {"Patient/citizen"}
    by_kind = {(interaction(e), facility(e), e["action"], e["outcome"]) for e in events}
    assert ("read", pop.STATION, "R", "0") in by_kind
    assert ("search-type", pop.STATION, "E", "0") in by_kind
    assert ("create", pop.HOSPITAL, "C", "0") in by_kind
    read = next(e for e in events if interaction(e) == "read")
    assert {"reference": "Observation/citizen-bp"} in [x.get("what") for x in read["entity"]]
    assert read["purposeOfEvent"][0]["coding"][0]["code"] == "TREAT"
    assert read["agent"][0]["requestor"] is True
    search = next(e for e in events if interaction(e) == "search-type")
    query = next(x["query"] for x in search["entity"] if "query" in x)

    assert base64.b64decode(query).decode() == "Observation?_count&code"  # names, never the values
    # The child's book was searched too (the station treats the child): its mother sees that event.
    child = log(client, "mother", "?patient=child")
    assert [interaction(e) for e in child] == ["search-type"]
    for event in events + child:
        assert not [i for i in validate_resource(event) if i.severity in ("error", "fatal")], event


def test_a_refused_read_is_recorded_with_outcome_4(secured: tuple[TestClient, Services]) -> None:
    client, _services = secured
    outcome(client.get("/fhir/Observation/citizen-hiv", headers=as_("elsewhere")), 404)
    events = log(client, "citizen", "?outcome=4")
    assert [(interaction(e), facility(e)) for e in events] == [("read", pop.ELSEWHERE)]
    assert "outcomeDesc" in events[0]


def test_each_citizen_reads_the_log_of_own_and_childrens_books_only(
    secured: tuple[TestClient, Services],
) -> None:
    client, _services = secured
    for path in ("Patient/citizen", "Patient/child", "Patient/stranger", "Patient/mother"):
        assert client.get(f"/fhir/{path}", headers=as_("station")).status_code in (200, 404)
    assert {book(e) for e in log(client, "citizen")} == {"Patient/citizen"}
    assert {book(e) for e in log(client, "mother")} == {"Patient/child", "Patient/mother"}
    assert log(client, "stranger", "?patient=citizen") == []  # filtered, not an error
    assert {book(e) for e in log(client, "stranger")} <= {"Patient/stranger"}
    compartment = client.get("/fhir/Patient/child/AuditEvent", headers=as_("mother")).json()
    assert {book(e["resource"]) for e in compartment["entry"]} == {"Patient/child"}
    one = log(client, "citizen")[0]
    assert client.get(f"/fhir/AuditEvent/{one['id']}", headers=as_("citizen")).json() == one
    outcome(client.get(f"/fhir/AuditEvent/{one['id']}", headers=as_("stranger")), 404)
    assert client.get(f"/fhir/AuditEvent/{one['id']}/_history/1", headers=as_("citizen")).status_code == 200


@pytest.mark.parametrize("role", ["station", "hospital", "manager"])
def test_staff_systems_and_managers_read_no_access_log(
    secured: tuple[TestClient, Services], role: str
) -> None:
    client, _services = secured
    outcome(client.get("/fhir/AuditEvent", headers=as_(role)), 403, "forbidden")
    outcome(client.get("/fhir/AuditEvent?patient=citizen", headers=as_(role)), 403, "forbidden")


def test_nobody_changes_the_trail_and_submitted_audit_events_never_change(
    secured: tuple[TestClient, Services],
) -> None:
    client, services = secured
    client.get("/fhir/Patient/citizen", headers=as_("citizen"))
    event = log(client, "citizen")[0]
    trail_id = event["id"]
    for role in ("citizen", "hospital"):
        h = as_(role)
        outcome(client.put(f"/fhir/AuditEvent/{trail_id}", json=event, headers=h), {403, 405, 422})
        outcome(client.delete(f"/fhir/AuditEvent/{trail_id}", headers=h), {403, 405})
        patched = client.patch(
            f"/fhir/AuditEvent/{trail_id}",
            json=[{"op": "replace", "path": "/outcome", "value": "8"}],
            headers={**h, "Content-Type": "application/json-patch+json"},
        )
        outcome(patched, {403, 404, 405})
    assert client.get(f"/fhir/AuditEvent/{trail_id}", headers=as_("citizen")).json() == event

    # A facility submits an AuditEvent of its own system: kept as a record of the book, immutable.
    submitted = {k: v for k, v in event.items() if k not in ("id", "meta")}
    look_alike = client.post("/fhir/AuditEvent", json=submitted, headers=as_("hospital"))
    assert outcome(look_alike, 422)["issue"][0]["expression"] == ["AuditEvent.entity[0].detail[0].type"]
    submitted["entity"] = [{k: v for k, v in e.items() if k != "detail"} for e in submitted["entity"]]
    outcome(client.post("/fhir/AuditEvent", json=submitted, headers=as_("citizen")), 403)
    created = client.post("/fhir/AuditEvent", json=submitted, headers=as_("hospital"))
    assert created.status_code == 201, created.text[:300]
    new_id = created.json()["id"]
    assert client.get(f"/fhir/AuditEvent/{new_id}", headers=as_("hospital")).status_code == 200
    assert client.get(f"/fhir/AuditEvent/{new_id}/_history/1", headers=as_("citizen")).status_code == 200
    changed = {**created.json(), "outcome": "8"}
    outcome(client.put(f"/fhir/AuditEvent/{new_id}", json=changed, headers=as_("hospital")), 405)
    outcome(client.delete(f"/fhir/AuditEvent/{new_id}", headers=as_("hospital")), 405)
    patch = [{"op": "replace", "path": "/outcome", "value": "8"}]
    resp = client.patch(
        f"/fhir/AuditEvent/{new_id}",
        json=patch,
        headers={**as_("hospital"), "Content-Type": "application/json-patch+json"},
    )
    outcome(resp, 405)
    same = client.put(f"/fhir/AuditEvent/{new_id}", json=created.json(), headers=as_("hospital"))
    assert same.status_code == 200  # the same content again: nothing to change
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [{"request": {"method": "DELETE", "url": f"AuditEvent/{new_id}"}}],
    }
    outcome(client.post("/fhir", json=bundle, headers=as_("hospital")), 405)
    assert client.get(f"/fhir/AuditEvent/{new_id}", headers=as_("hospital")).json()["outcome"] == "0"
    # The trail recorded the submission like any write.
    assert "create" in [interaction(e) for e in log(client, "citizen")]
    assert stored_events(services) > 0


def test_a_failed_transaction_leaves_no_event(secured: tuple[TestClient, Services]) -> None:
    client, services = secured
    good = pop.observation("tx-good", "citizen", "citizen-hospital", "8867-4")
    bad = {"resourceType": "Observation", "status": "not-a-status"}
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"resource": good, "request": {"method": "PUT", "url": "Observation/tx-good"}},
            {"resource": bad, "request": {"method": "POST", "url": "Observation"}},
        ],
    }
    resp = client.post("/fhir", json=bundle, headers=as_("hospital"))
    assert 400 <= resp.status_code < 500
    assert stored_events(services) == 0


def test_everything_break_glass_and_export_are_recorded(secured: tuple[TestClient, Services]) -> None:
    client, services = secured
    assert client.get("/fhir/Patient/citizen/$everything", headers=as_("citizen")).status_code == 200
    reason = {"resourceType": "Parameters", "parameter": [{"name": "reason", "valueString": "bất tỉnh"}]}
    assert (
        client.post("/fhir/Patient/stranger/$break-glass", json=reason, headers=as_("station")).status_code
        == 201
    )
    assert client.get("/fhir/Observation/stranger-hiv", headers=as_("station")).status_code == 200
    kinds = [interaction(e) for e in log(client, "citizen")]
    assert "http://hl7.org/fhir/OperationDefinition/Patient-everything" in kinds
    stranger = log(client, "stranger")
    declared = next(e for e in stranger if e["subtype"][0]["code"] == "operation")
    assert declared["purposeOfEvent"][0]["coding"][0]["code"] == "ETREAT"
    assert ("read", pop.STATION) in [(interaction(e), facility(e)) for e in stranger]
    # A facility system's bulk export: one event per exported book and type.
    kick = client.get(
        "/fhir/$export?_type=Observation", headers={**as_("hospital"), "Prefer": "respond-async"}
    )
    assert kick.status_code == 202, kick.text[:300]
    status_url = kick.headers["Content-Location"]
    for _ in range(200):
        polled = client.get(status_url, headers=as_("hospital"))
        if polled.status_code == 200:
            break
        threading.Event().wait(0.05)
    assert polled.status_code == 200, polled.text[:300]
    exported = [e for e in log(client, "citizen") if interaction(e).endswith("/export")]
    assert [facility(e) for e in exported] == [pop.HOSPITAL]
    assert not [e for e in log(client, "stranger") if interaction(e).endswith("/export")]
    assert stored_events(services) > 0


def test_search_paging_and_bad_input(secured: tuple[TestClient, Services]) -> None:
    client, _services = secured
    for _ in range(5):
        client.get("/fhir/Patient/citizen", headers=as_("citizen"))
    all_events = log(client, "citizen")
    paged = log(client, "citizen", "?_count=2")
    assert [e["id"] for e in paged] == [e["id"] for e in all_events]
    assert len({e["id"] for e in paged}) == len(paged) >= 5
    recorded = [e["recorded"] for e in paged]
    assert recorded == sorted(recorded, reverse=True)
    assert log(client, "citizen", "?date=gt2099-01-01") == []
    assert len(log(client, "citizen", "?date=ge2020-01-01&action=R")) >= 5
    assert log(client, "citizen", "?action=D") == []
    for bad in ("?date=yesterday", "?action=X", "?outcome=2", "?_page=zzz", "?_count=-1", "?patient=a%20b"):
        outcome(client.get(f"/fhir/AuditEvent{bad}", headers=as_("citizen")), 400)
    lenient = client.get("/fhir/AuditEvent?foo=1", headers=as_("citizen")).json()
    assert lenient["entry"][-1]["search"]["mode"] == "outcome"
    strict = client.get("/fhir/AuditEvent?foo=1", headers={**as_("citizen"), "Prefer": "handling=strict"})
    outcome(strict, 400)
    outcome(client.get("/fhir/AuditEvent?patient=citizen&subtype=drop", headers=as_("citizen")), 400)
    posted = client.post(
        "/fhir/AuditEvent/_search",
        content="patient=citizen&_count=1",
        headers={**as_("citizen"), "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert posted.status_code == 200 and len(posted.json()["entry"]) == 1


def test_the_capability_statement_says_audit_events_never_change(
    secured: tuple[TestClient, Services],
) -> None:
    client, _services = secured
    cs = client.get("/fhir/metadata").json()
    entry = next(r for r in cs["rest"][0]["resource"] if r["type"] == "AuditEvent")
    assert {i["code"] for i in entry["interaction"]} == {"read", "vread", "create", "search-type"}


# ---- the trail below the API: append-only, hash-chained, safe under concurrency ----------------------


def caller(n: int = 0) -> Caller:
    """An authenticated caller as the token check would make it."""
    return Caller(
        subject=f"worker-{n}",
        issuer=pop.ISSUER,
        role=Role.HEALTH_WORKER,
        facility=pop.STATION,
        request_id=f"r{n}",
    )


def test_rows_cannot_be_updated_or_deleted(services: Services) -> None:
    assert services.audit is not None
    services.audit.record(caller(), [Access("someone", "read", "Patient", "someone")])
    statements = ["UPDATE audit_event SET outcome = '0'", "DELETE FROM audit_event"]
    if not services.fhir.db.is_sqlite:
        statements.append("TRUNCATE audit_event")
    for statement in statements:
        with pytest.raises(DBAPIError, match="append-only"), services.fhir.db.write() as conn:
            conn.execute(text(statement))
    assert stored_events(services) == 1


def test_verify_finds_altered_removed_and_truncated_links(services: Services) -> None:
    trail = services.audit
    assert trail is not None
    for n in range(5):
        trail.record(caller(n), [Access("book-a", "read", "Observation", f"o{n}"), Access("book-b", "read")])
    trail.record(caller(), [Access("book-c", "read"), Access("book-c", "search-type")])
    report = trail.verify()
    assert (report.books, report.events, report.breaks) == (3, 12, [])
    anchor = report.anchor
    assert trail.verify(["book-a"]).breaks == []

    with services.fhir.db.write() as conn:
        for statement in drop_append_only_ddl(conn, "audit_event"):
            conn.execute(text(statement))  # what an intruder with the owner's rights could do
        conn.execute(
            text("UPDATE audit_event SET agent_facility = '99999' WHERE patient_key = 'book-a' AND seq = 3")
        )
        conn.execute(text("DELETE FROM audit_event WHERE patient_key = 'book-b' AND seq = 5"))
    found = {(b.patient_key, b.seq) for b in trail.verify().breaks}
    assert found == {("book-a", 3), ("book-b", 4)}
    assert trail.verify().anchor == anchor  # heads untouched: the anchor cannot tell, the chains can

    with services.fhir.db.write() as conn:
        conn.execute(text("DELETE FROM audit_head WHERE patient_key = 'book-c'"))
    assert ("book-c", 2) in {(b.patient_key, b.seq) for b in trail.verify().breaks}
    assert trail.verify().anchor != anchor


def test_concurrent_appends_to_one_book_keep_one_unbroken_chain(services: Services) -> None:
    trail = services.audit
    assert trail is not None
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(15):
                trail.record(
                    caller(n), [Access("busy", "read", "Observation", f"{n}-{i}"), Access(f"own-{n}", "read")]
                )
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with services.fhir.db.read() as conn:
        seqs = [
            int(r[0])
            for r in conn.execute(text("SELECT seq FROM audit_event WHERE patient_key = 'busy' ORDER BY seq"))
        ]
    assert seqs == list(range(1, 61))
    report = trail.verify()
    assert report.breaks == [] and report.events == 120


def test_the_book_page_shows_its_owner_who_accessed_it(secured: tuple[TestClient, Services]) -> None:
    client, services = secured
    services.settings.__dict__["book_pages"] = True  # the fixture's settings object is the app's
    assert client.get("/fhir/Observation/citizen-bp", headers=as_("station")).status_code == 200
    outcome(client.get("/fhir/Observation/citizen-hiv", headers=as_("elsewhere")), 404)
    try:
        client.cookies.update({"hb_session": TOKENS["citizen"]()})
        page = client.get(f"/so-suc-khoe/{pop.CITIZEN}")
        assert page.status_code == 200
        assert "Ai đã truy cập sổ này" in page.text
        assert f"Nhân viên y tế · Cơ sở {pop.STATION} ({pop.STATION})" in page.text
        assert "Xem kết quả đo, xét nghiệm" in page.text and "bị từ chối" in page.text
        assert "Chính chủ" in page.text and "Xem sổ sức khỏe" in page.text  # this very visit ($summary)
        english = client.get(f"/so-suc-khoe/{pop.CITIZEN}?lang=en")
        assert "Who accessed this book" in english.text and "A health worker" in english.text
        client.cookies.clear()
        client.cookies.update({"hb_session": TOKENS["station"]()})
        staff = client.get(f"/so-suc-khoe/{pop.CITIZEN}")
        assert staff.status_code == 200 and "Ai đã truy cập sổ này" not in staff.text
    finally:
        client.cookies.clear()


def test_reads_inside_a_transaction_bundle_are_recorded_in_it(secured: tuple[TestClient, Services]) -> None:
    client, _services = secured
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"request": {"method": "GET", "url": "Observation/citizen-bp"}},
            {"request": {"method": "GET", "url": "Observation?subject=Patient/citizen"}},
            {"request": {"method": "GET", "url": "Observation/stranger-hiv"}},
        ],
    }
    resp = client.post("/fhir", json=bundle, headers=as_("station"))
    assert resp.status_code == 200, resp.text[:300]
    kinds = sorted((interaction(e), e["outcome"]) for e in log(client, "citizen"))
    assert kinds == [("read", "0"), ("search-type", "0")]
    assert [(interaction(e), e["outcome"]) for e in log(client, "stranger")] == [("read", "4")]
    batch = {**bundle, "type": "batch"}
    assert client.post("/fhir", json=batch, headers=as_("station")).status_code == 200
    assert len(log(client, "citizen")) == 4


def test_an_xml130_submission_records_the_facility_for_every_book_it_wrote(
    secured: tuple[TestClient, Services],
) -> None:
    from healthbook.fhir import jsonio
    from healthbook.testing import xml130 as sample

    client, services = secured
    assert services.audit is not None
    station_system = pop.token("facility-system", scope="system/*.cruds", healthbook_facility=pop.STATION)
    body = sample.submission(sample.episode_rows("GOOD"))
    resp = client.post(
        "/fhir/$import-xml130",
        content=body,
        headers={**pop.headers(station_system), "Content-Type": "application/xml"},
    )
    assert resp.status_code == 200, resp.text[:500]
    pairs = [("subtype", "$import-xml130")]
    found = jsonio.loads(services.audit.search(Caller.system("t"), pairs, base="", strict=True))
    events = [e["resource"] for e in found.get("entry", [])]
    # The mother's book and her newborn's (CAN_NANG_CON of the sample episode): one event each.
    assert len(events) == 2 and {facility(e) for e in events} == {pop.STATION}
    for event in events:
        assert event["action"] == "C"
        assert event["agent"][0]["role"][0]["coding"][0]["code"] == "facility-system"
    readable = [
        client.get(f"/fhir/{book(e)}", headers=pop.headers(station_system)).status_code for e in events
    ]
    assert 200 in readable  # the mother's, whose Encounter the station provided


def test_read_events_commit_without_waiting_for_the_disk_and_nothing_else_does(services: Services) -> None:
    db = services.fhir.db
    if db.is_sqlite:
        probe = "PRAGMA synchronous"
        relaxed, normal = 1, {"FULL": 2, "NORMAL": 1, "OFF": 0, "EXTRA": 3}[db.synchronous.upper()]
    else:
        probe = "SHOW synchronous_commit"
        relaxed, normal = "off", "on"

    def setting(conn: Any) -> Any:
        return conn.exec_driver_sql(probe).scalar()

    with db.write(durable=False) as conn:
        assert setting(conn) == relaxed
    for _ in range(3):  # whichever pooled connection comes next is back to the configured durability
        with db.write() as conn:
            assert setting(conn) == normal
