"""Access control over HTTP: role × interaction × consent state, with the exact result sets (both databases)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from healthbook.fhir.router import Services
from tests.integration import access_population as pop
from tests.integration.access_population import SEES, TOKENS, as_, headers
from tests.integration.conftest import outcome

Key = tuple[str, str]


def keys(bundle: dict[str, Any], mode: str | None = None) -> set[Key]:
    return {
        (e["resource"]["resourceType"], e["resource"]["id"])
        for e in bundle.get("entry", [])
        if e.get("search", {}).get("mode") != "outcome" and (mode is None or e["search"]["mode"] == mode)
    }


def search(client: TestClient, role: str, path: str) -> dict[str, Any]:
    resp = client.get(f"/fhir/{path}", headers=as_(role))
    assert resp.status_code == 200, (role, path, resp.text[:300])
    body: dict[str, Any] = resp.json()
    return body


TYPES = "Patient,Encounter,Observation,Condition,RelatedPerson,Organization,Practitioner"
ALL_TYPES = f"_type={TYPES}&_count=100"
WITH_CONSENTS = f"_type={TYPES},Consent&_count=100"


@pytest.mark.parametrize("role", sorted(SEES))
def test_system_search_returns_exactly_what_the_role_may_see(
    secured: tuple[TestClient, Services], role: str
) -> None:
    client, _ = secured
    body = search(client, role, f"?{ALL_TYPES}&_total=accurate")
    assert keys(body) == SEES[role]
    assert body["total"] == len(SEES[role])


@pytest.mark.parametrize("role", sorted(SEES))
def test_read_of_each_resource_is_allowed_exactly_when_visible(
    secured: tuple[TestClient, Services], role: str
) -> None:
    client, _ = secured
    everything = {(r["resourceType"], r["id"]) for r in pop.resources()}
    for rtype, rid in sorted(everything):
        resp = client.get(f"/fhir/{rtype}/{rid}", headers=as_(role))
        if (rtype, rid) in SEES[role]:
            assert resp.status_code == 200, (role, rtype, rid)
        else:
            # The same answer as for an id that never existed: nothing leaks through the error.
            body = outcome(resp, 404)
            assert body["issue"][0]["diagnostics"] == f"{rtype}/{rid} is not known"
            resp = client.get(f"/fhir/{rtype}/{rid}/_history/1", headers=as_(role))
            assert resp.status_code == 404
            assert client.get(f"/fhir/{rtype}/{rid}/_history", headers=as_(role)).status_code == 404


LEAK_QUERIES = [
    # (query, what an unrestricted caller gets) — each must be cut down to the caller's view.
    "Observation?code=http://loinc.org|75622-1&_total=accurate",
    "Observation?_total=estimate",
    "Observation?subject:Patient.name=Hoàng",
    "Patient?_has:Observation:subject:code=75622-1",
    "Observation?_include=Observation:subject&_include=Observation:encounter",
    "Patient?_revinclude=Observation:subject&_revinclude=Encounter:subject",
    "Encounter?service-provider.identifier=79001",
    "Observation?_summary=count",
    "Observation?encounter.service-provider:Organization.identifier=01501",
]


@pytest.mark.parametrize("role", sorted(SEES))
@pytest.mark.parametrize("query", LEAK_QUERIES)
def test_no_leak_through_counts_chains_has_includes(
    secured: tuple[TestClient, Services], role: str, query: str
) -> None:
    client, services = secured
    body = search(client, role, query + ("&_count=100" if "_summary" not in query else ""))
    found = keys(body)
    assert found <= SEES[role], (role, query, found - SEES[role])
    # The same query for the unrestricted in-process caller, cut down to the view, is the answer.
    everyone = _unrestricted(services, query)
    if "_summary=count" not in query:
        assert found == everyone & SEES[role], (role, query)
    if "total" in body and "_summary" not in query:
        assert body["total"] == len(keys(body, "match"))
    if "_summary=count" in query:
        expected = {k for k in SEES[role] if k[0] == "Observation"}
        assert body["total"] == len(expected)


def _unrestricted(services: Services, query: str) -> set[Key]:
    from urllib.parse import parse_qsl

    import orjson

    from healthbook.fhir.http import Prefer

    rtype, _, qs = query.partition("?")
    pairs = [*parse_qsl(qs, keep_blank_values=True), ("_count", "100")]
    pairs = [p for p in pairs if p[0] != "_summary"]
    bundle = orjson.loads(services.search.search_bundle(pop.SYSTEM, rtype, pairs, base="", prefer=Prefer()))
    return keys(bundle)


@pytest.mark.parametrize("role", sorted(SEES))
def test_everything_and_summary_follow_the_view(secured: tuple[TestClient, Services], role: str) -> None:
    client, _ = secured
    for pid, book in (
        ("citizen", pop.CITIZEN_BOOK),
        ("child", pop.CHILD_BOOK),
        ("stranger", pop.STRANGER_BOOK),
    ):
        resp = client.get(f"/fhir/Patient/{pid}/$everything?_count=100", headers=as_(role))
        summary = client.get(f"/fhir/Patient/{pid}/$summary", headers=as_(role))
        if ("Patient", pid) in SEES[role]:
            assert resp.status_code == 200, (role, pid, resp.text[:200])
            assert {k for k in keys(resp.json()) if k[0] not in ("Organization", "Practitioner")} == book
            assert summary.status_code == 200, (role, pid, summary.text[:200])
        else:
            assert resp.status_code in (403, 404), (role, pid)
            assert summary.status_code in (403, 404), (role, pid)


def test_type_and_system_history_are_not_for_restricted_callers(secured: tuple[TestClient, Services]) -> None:
    client, _ = secured
    for role in SEES:
        outcome(client.get("/fhir/Observation/_history", headers=as_(role)), 403)
        outcome(client.get("/fhir/_history", headers=as_(role)), 403)


def test_anonymous_gets_401_and_forged_tokens_are_refused(secured: tuple[TestClient, Services]) -> None:
    client, _ = secured
    outcome(client.get("/fhir/Patient"), 401)
    expired = pop.token("citizen", scope=pop.PATIENT_SCOPE, lifetime=-120, healthbook_cccd=pop.CITIZEN)
    outcome(client.get("/fhir/Patient", headers=headers(expired)), 401)
    head, body, _sig = TOKENS["citizen"]().split(".")
    outcome(client.get("/fhir/Patient", headers=headers(f"{head}.{body}.")), 401)
    import base64

    none = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
    outcome(client.get("/fhir/Patient", headers=headers(f"{none}.{body}.")), 401)


def test_scopes_limit_types(secured: tuple[TestClient, Services]) -> None:
    client, _ = secured
    narrow = pop.token("citizen", scope="patient/Observation.rs", healthbook_cccd=pop.CITIZEN)
    assert client.get("/fhir/Observation", headers=headers(narrow)).status_code == 200
    outcome(client.get("/fhir/Condition", headers=headers(narrow)), 403)
    outcome(client.get("/fhir/Condition/citizen-dx", headers=headers(narrow)), 403)
    none = pop.token("citizen", scope="openid", healthbook_cccd=pop.CITIZEN)
    outcome(client.get("/fhir/Patient/citizen", headers=headers(none)), 403)


# ---- writes -----------------------------------------------------------------------------------------


def test_citizen_writes_only_own_consents(secured: tuple[TestClient, Services]) -> None:
    client, _ = secured
    obs = pop.observation("mine", "citizen", None, "85354-9")
    outcome(client.post("/fhir/Observation", json=obs, headers=as_("citizen")), 403)
    outcome(
        client.post(
            "/fhir/Consent", json=_hide("stranger", "Encounter/stranger-elsewhere"), headers=as_("citizen")
        ),
        403,
    )
    resp = client.post(
        "/fhir/Consent", json=_hide("citizen", "Encounter/citizen-hospital"), headers=as_("citizen")
    )
    assert resp.status_code == 201, resp.text
    # The mother decides for her child.
    resp = client.post(
        "/fhir/Consent", json=_hide("child", "Observation/child-weight"), headers=as_("mother")
    )
    assert resp.status_code == 201, resp.text


def test_facility_writes_only_its_own_data(secured: tuple[TestClient, Services]) -> None:
    client, _ = secured
    hospital = as_("hospital")
    ok = pop.observation("h-ok", "citizen", "citizen-hospital", "85354-9")
    assert client.post("/fhir/Observation", json=ok, headers=hospital).status_code == 201
    other = pop.observation("h-bad", "citizen", "citizen-station", "85354-9")
    outcome(client.post("/fhir/Observation", json=other, headers=hospital), 403)
    outcome(
        client.put("/fhir/Encounter/x", json=pop.encounter("x", "citizen", "station"), headers=hospital), 403
    )
    outcome(client.put("/fhir/Organization/station", json=_org_renamed(), headers=hospital), 403)
    # No encounter with the stranger: nothing may be written into that book ...
    loose = pop.observation("h-loose", "stranger", None, "85354-9")
    outcome(client.post("/fhir/Observation", json=loose, headers=hospital), 403)
    # ... until the stranger comes to the hospital.
    visit = pop.encounter("stranger-hospital", "stranger", "hospital")
    assert client.put("/fhir/Encounter/stranger-hospital", json=visit, headers=hospital).status_code == 201
    assert client.post("/fhir/Observation", json=loose, headers=hospital).status_code == 201
    assert client.get("/fhir/Patient/stranger", headers=hospital).status_code == 200
    # A new citizen can be registered; a consent cannot be recorded by a facility.
    new = {"resourceType": "Patient", "name": [{"text": "Mới Đến"}], "gender": "female"}
    assert client.post("/fhir/Patient", json=new, headers=hospital).status_code == 201
    outcome(
        client.post("/fhir/Consent", json=_hide("citizen", "Encounter/citizen-hospital"), headers=hospital),
        403,
    )
    # Deleting another facility's record is refused and leaves it in place.
    outcome(client.delete("/fhir/Observation/citizen-bp", headers=hospital), 403)
    assert client.get("/fhir/Observation/citizen-bp", headers=as_("citizen")).status_code == 200
    # A manager writes nothing.
    outcome(client.post("/fhir/Observation", json=ok, headers=as_("manager")), 403)


def test_a_refused_transaction_entry_leaves_nothing(secured: tuple[TestClient, Services]) -> None:
    client, _ = secured
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"resource": pop.observation("t1", "citizen", "citizen-hospital", "85354-9"),
             "request": {"method": "PUT", "url": "Observation/t1"}},
            {"resource": pop.observation("t2", "citizen", "citizen-station", "85354-9"),
             "request": {"method": "PUT", "url": "Observation/t2"}},
        ],
    }  # fmt: skip
    body = outcome(client.post("/fhir", json=bundle, headers=as_("hospital")), 403)
    assert "entry[1]" in str(body["issue"][0].get("expression"))
    assert client.get("/fhir/Observation/t1", headers=as_("citizen")).status_code == 404


def _org_renamed() -> dict[str, Any]:
    return {
        "resourceType": "Organization",
        "id": "station",
        "identifier": [{"system": "http://fhir.ehealth.gov.vn/core/sid/provider-code", "value": pop.STATION}],
        "name": "Đổi tên",
    }


# ---- consent ----------------------------------------------------------------------------------------


def _consent(pid: str, provision: dict[str, Any], status: str = "active") -> dict[str, Any]:
    return {
        "resourceType": "Consent",
        "status": status,
        "scope": {
            "coding": [
                {"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}
            ]
        },
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": f"Patient/{pid}"},
        "dateTime": "2026-12-01",
        "provision": provision,
    }


def _hide(pid: str, ref: str) -> dict[str, Any]:
    return _consent(pid, {"type": "deny", "data": [{"meaning": "instance", "reference": {"reference": ref}}]})


def _permit(pid: str, code: str, types: list[str], data: dict[str, str] | None = None) -> dict[str, Any]:
    provision: dict[str, Any] = {
        "type": "permit",
        "actor": [
            {
                "role": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "IRCP"}]},
                "reference": {"identifier": {"system": "http://fhir.ehealth.gov.vn/core/sid/provider-code", "value": code}},
            }
        ],
        "purpose": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "TREAT"}],
        "period": {"start": "2026-01-01", "end": "2099-12-31"},
    }  # fmt: skip
    if types:
        provision["class"] = [{"system": "http://hl7.org/fhir/resource-types", "code": t} for t in types]
    if data is not None:
        provision["dataPeriod"] = data
    return _consent(pid, provision)


ROLE = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "IRCP"}]}
HIDDEN = {("Encounter", "citizen-hospital"), ("Observation", "citizen-hiv"), ("Condition", "citizen-dx")}


def test_hiding_an_encounter_hides_its_records_from_everyone_but_the_citizen(
    secured: tuple[TestClient, Services],
) -> None:
    client, _ = secured
    resp = client.post(
        "/fhir/Consent", json=_hide("citizen", "Encounter/citizen-hospital"), headers=as_("citizen")
    )
    assert resp.status_code == 201, resp.text
    consent_id = resp.json()["id"]
    consent = ("Consent", consent_id)
    assert keys(search(client, "citizen", f"?{WITH_CONSENTS}")) == SEES["citizen"] | {consent}
    for role in ("station", "hospital"):
        body = search(client, role, f"?{WITH_CONSENTS}&_total=accurate")
        # The consent that hides them is hidden with them: it names what it hides.
        assert keys(body) == SEES[role] - HIDDEN, role
        assert body["total"] == len(SEES[role] - HIDDEN)
        assert keys(search(client, role, "Patient?_has:Observation:subject:code=75622-1")) == set()
        assert keys(search(client, role, "Patient/citizen/$everything")) >= {("Patient", "citizen")}
        assert not keys(search(client, role, "Patient/citizen/$everything")) & HIDDEN
        outcome(client.get("/fhir/Observation/citizen-hiv", headers=as_(role)), 404)
    # A record written later into the hidden encounter is hidden too.
    late = pop.observation("late", "citizen", "citizen-hospital", "2345-7")
    assert client.put("/fhir/Observation/late", json=late, headers=as_("hospital")).status_code == 201
    assert ("Observation", "late") not in keys(search(client, "station", "Observation?_count=100"))
    assert ("Observation", "late") in keys(search(client, "citizen", "Observation?_count=100"))
    # Revoking the consent shows everything again.
    revoked = {**resp.json(), "status": "inactive"}
    assert client.put(f"/fhir/Consent/{consent_id}", json=revoked, headers=as_("citizen")).status_code == 200
    assert keys(search(client, "station", "Observation?_count=100")) >= {("Observation", "citizen-hiv")}


def test_a_consent_permits_a_facility_types_and_a_data_range(secured: tuple[TestClient, Services]) -> None:
    client, _ = secured
    assert keys(search(client, "elsewhere", "Observation?subject=Patient/citizen")) == set()
    consent = _permit(
        "citizen", pop.ELSEWHERE, ["Observation", "Patient"], {"start": "2020-01-01", "end": "2030-12-31"}
    )
    resp = client.post("/fhir/Consent", json=consent, headers=as_("citizen"))
    assert resp.status_code == 201, resp.text
    seen = keys(search(client, "elsewhere", f"?{ALL_TYPES}"))
    # Observations in the data range (not the 2015 one), the Patient, nothing else of the book.
    assert seen - SEES["elsewhere"] == {
        ("Patient", "citizen"),
        ("Observation", "citizen-bp"),
        ("Observation", "citizen-hiv"),
    }
    outcome(client.get("/fhir/Condition/citizen-dx", headers=as_("elsewhere")), 404)
    # Expiry and revocation end it.
    client.delete(f"/fhir/Consent/{resp.json()['id']}", headers=as_("citizen"))
    assert keys(search(client, "elsewhere", "Observation?subject=Patient/citizen")) == set()
    expired = _permit("citizen", pop.ELSEWHERE, [])
    expired["provision"]["period"] = {"start": "2020-01-01", "end": "2021-01-01"}
    resp = client.post("/fhir/Consent", json=expired, headers=as_("citizen"))
    assert resp.status_code == 201, resp.text
    assert keys(search(client, "elsewhere", "Observation?subject=Patient/citizen")) == set()


def test_a_consent_can_name_a_proxy(secured: tuple[TestClient, Services]) -> None:
    client, _ = secured
    proxy = _consent(
        "citizen",
        {
            "type": "permit",
            "actor": [
                {
                    "role": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-RoleCode", "code": "NOK"}]},
                    "reference": {"reference": "Patient/stranger"},
                }
            ],
        },
    )  # fmt: skip
    assert client.post("/fhir/Consent", json=proxy, headers=as_("citizen")).status_code == 201
    assert keys(search(client, "stranger", "Observation?subject=Patient/citizen&_count=100")) == {
        k for k in pop.CITIZEN_BOOK if k[0] == "Observation"
    }


@pytest.mark.parametrize(
    ("provision", "where"),
    [
        ({"type": "permit"}, "Consent.provision.actor"),
        ({"type": "deny", "actor": [{"role": ROLE, "reference": {"reference": "Organization/hospital"}}]}, "Consent.provision.actor"),
        ({"type": "permit", "actor": [{"role": ROLE, "reference": {"reference": "Organization/hospital"}}], "class": [{"system": "urn:x", "code": "y"}]}, "Consent.provision.class"),
    ],
)  # fmt: skip
def test_consents_that_cannot_be_enforced_are_stored_with_warnings_and_open_nothing(
    secured: tuple[TestClient, Services], provision: dict[str, Any], where: str
) -> None:
    client, _ = secured
    prefer = {**as_("citizen"), "Prefer": "return=OperationOutcome"}
    resp = client.post("/fhir/Consent", json=_consent("citizen", provision), headers=prefer)
    assert resp.status_code == 201, resp.text
    issues = resp.json()["issue"]
    assert any(i["severity"] == "warning" and where in str(i.get("expression")) for i in issues), issues
    for role in ("hospital", "elsewhere", "stranger"):
        assert keys(search(client, role, f"?{ALL_TYPES}")) == SEES[role], role


def test_unknown_actors_and_other_books_records_change_nothing(secured: tuple[TestClient, Services]) -> None:
    client, _ = secured
    unknown = {"type": "permit", "actor": [{"role": ROLE, "reference": {"reference": "Organization/nope"}}]}
    assert (
        client.post("/fhir/Consent", json=_consent("citizen", unknown), headers=as_("citizen")).status_code
        == 201
    )
    other = _hide("citizen", "Observation/stranger-hiv")  # not the citizen's record: cannot hide it
    assert client.post("/fhir/Consent", json=other, headers=as_("citizen")).status_code == 201
    for role in ("elsewhere", "stranger", "hospital"):
        assert keys(search(client, role, f"?{ALL_TYPES}")) == SEES[role], role


# ---- break-glass -------------------------------------------------------------------------------------


def test_break_glass_gives_time_limited_access_and_tells_the_citizen(
    secured: tuple[TestClient, Services],
) -> None:
    client, services = secured
    worker = as_("elsewhere")
    outcome(client.get("/fhir/Patient/citizen", headers=worker), 404)
    params = {
        "resourceType": "Parameters",
        "parameter": [{"name": "reason", "valueString": "Hôn mê, cấp cứu"}],
    }
    outcome(
        client.post(
            "/fhir/Patient/citizen/$break-glass", json={"resourceType": "Parameters"}, headers=worker
        ),
        400,
    )
    outcome(client.post("/fhir/Patient/citizen/$break-glass", json=params, headers=as_("hospital")), 403)
    outcome(client.post("/fhir/Patient/citizen/$break-glass", json=params, headers=as_("citizen")), 403)
    outcome(client.post("/fhir/Patient/nobody/$break-glass", json=params, headers=worker), 404)
    # The citizen hid an encounter; an emergency sees it.
    client.post("/fhir/Consent", json=_hide("citizen", "Encounter/citizen-hospital"), headers=as_("citizen"))
    resp = client.post("/fhir/Patient/citizen/$break-glass", json=params, headers=worker)
    assert resp.status_code == 201, resp.text
    answer = {p["name"]: p for p in resp.json()["parameter"]}
    assert answer["expires"]["valueInstant"]
    assert client.get("/fhir/Observation/citizen-hiv", headers=worker).status_code == 200
    # Only that worker: a colleague at the same facility does not get it.
    colleague = pop.token(
        "health-worker", scope="openid user/*.cruds", sub="colleague", healthbook_facility=pop.ELSEWHERE
    )
    outcome(client.get("/fhir/Patient/citizen", headers=headers(colleague)), 404)
    notices = search(client, "citizen", "Communication?subject=Patient/citizen")["entry"]
    assert len(notices) == 1
    assert "khẩn cấp" in notices[0]["resource"]["payload"][0]["contentString"]
    assert "Hôn mê, cấp cứu" in notices[0]["resource"]["payload"][0]["contentString"]
    # When it expires, the access ends.
    from sqlalchemy import update

    from healthbook.access.models import access_grant

    with services.fhir.db.write() as conn:
        conn.execute(
            update(access_grant).where(access_grant.c.grant_id.like("break-glass:%")).values(valid_to=1)
        )
    outcome(client.get("/fhir/Patient/citizen", headers=worker), 404)


# ---- pages and bulk -------------------------------------------------------------------------------------


def test_book_pages_need_a_login_and_show_only_what_is_allowed(secured: tuple[TestClient, Services]) -> None:
    client, services = secured
    services.settings.__dict__["book_pages"] = True  # the fixture's settings object is the app's
    page = client.get(f"/so-suc-khoe/{pop.CITIZEN}")
    assert page.status_code == 401
    assert "Cần đăng nhập" in page.text
    cookie = {"hb_session": TOKENS["mother"]()}
    client.cookies.update(cookie)
    try:
        assert client.get(f"/so-suc-khoe/{pop.CHILD}").status_code == 200
        assert client.get(f"/so-suc-khoe/{pop.MOTHER}").status_code == 200
        assert client.get(f"/so-suc-khoe/{pop.CITIZEN}").status_code == 404
        mine = client.get("/so-suc-khoe/")
        assert mine.status_code == 200
        assert f"/so-suc-khoe/{pop.CHILD}" in mine.text and f"/so-suc-khoe/{pop.CITIZEN}" not in mine.text
        # The cookie is for the pages only: the API wants the Authorization header.
        outcome(client.get("/fhir/Patient/child"), 401)
    finally:
        client.cookies.clear()


def test_export_of_a_facility_system_holds_only_its_patients(
    secured: tuple[TestClient, Services], tmp_path: Any
) -> None:
    _, services = secured
    from healthbook.auth.tokens import ClaimNames, VerifiedToken, caller_from_token  # noqa: F401
    from healthbook.fhir.bulk.export import export_ndjson, parse_request

    caller = _caller_of(services, TOKENS["hospital"]())
    files = export_ndjson(
        services.fhir, caller, parse_request("system", None, "Observation,Patient", None, []), tmp_path
    )
    got = set()
    for f in files:
        for line in f.path.read_text().splitlines():
            import json

            res = json.loads(line)
            got.add((res["resourceType"], res["id"]))
    assert got == {k for k in pop.CITIZEN_BOOK if k[0] in ("Observation", "Patient")}


def _caller_of(services: Services, tok: str) -> Any:
    import asyncio

    from healthbook.app import build_auth

    auth = build_auth(services.settings, services)
    return asyncio.run(auth.authenticator.caller(f"Bearer {tok}"))


def test_the_quick_record_check_agrees_with_the_general_condition(
    secured: tuple[TestClient, Services],
) -> None:
    """RecordPolicy.sees (reads and writes) decides like View.condition (searches) for every record."""
    from healthbook.access.policy import RecordPolicy
    from healthbook.auth.subject import Caller, Role
    from healthbook.fhir.search.sql import visible

    client, services = secured
    h = as_("citizen")
    assert (
        client.post(
            "/fhir/Consent", json=_hide("citizen", "Encounter/citizen-hospital"), headers=h
        ).status_code
        == 201
    )
    dated = _permit("citizen", pop.ELSEWHERE, ["Observation"], {"start": "2020-01-01", "end": "2030-12-31"})
    assert client.post("/fhir/Consent", json=dated, headers=h).status_code == 201
    typed = _permit("citizen", pop.HOSPITAL, ["Condition", "Patient"])
    assert client.post("/fhir/Consent", json=typed, headers=h).status_code == 201
    callers = [
        Caller(subject="c", issuer=pop.ISSUER, role=Role.CITIZEN, cccd=pop.CITIZEN),
        Caller(subject="m", issuer=pop.ISSUER, role=Role.GUARDIAN, cccd=pop.MOTHER),
        Caller(subject="s", issuer=pop.ISSUER, role=Role.CITIZEN, cccd=pop.STRANGER),
        Caller(subject="w", issuer=pop.ISSUER, role=Role.HEALTH_WORKER, facility=pop.STATION),
        Caller(subject="e", issuer=pop.ISSUER, role=Role.HEALTH_WORKER, facility=pop.ELSEWHERE),
        Caller(subject="h", issuer=pop.ISSUER, role=Role.FACILITY_SYSTEM, facility=pop.HOSPITAL),
        Caller(subject="g", issuer=pop.ISSUER, role=Role.MANAGER, province="01"),
        Caller(subject="anonymous"),
    ]
    policy = services.fhir.policy
    assert isinstance(policy, RecordPolicy)
    decided = 0
    with services.fhir.db.read() as conn:
        keys = [tuple(r) for r in conn.execute(text("SELECT patient_key, res_type, res_id FROM resource"))]
        for caller in callers:
            condition = policy.condition(conn, caller)
            general = visible(conn, keys, condition)
            for key in keys:
                quick = policy.sees(conn, caller, *key)
                if quick is not None:
                    decided += 1
                    assert quick == (key in general), (caller.subject, key)
    assert decided > len(keys) * len(callers) * 0.9
