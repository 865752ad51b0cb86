"""Prefer, JSON Patch, content negotiation and the CapabilityStatement (http.html)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from fastapi.testclient import TestClient

from .conftest import TableCounts, outcome

BASE = "http://testserver/fhir"
PATCH_JSON = {"Content-Type": "application/json-patch+json"}


def put_patient(client: TestClient, rid: str, **extra: Any) -> dict[str, Any]:
    resp = client.put(f"/fhir/Patient/{rid}", json={"resourceType": "Patient", "id": rid, **extra})
    assert resp.status_code in (200, 201), resp.text
    out: dict[str, Any] = resp.json()
    return out


# ---- Prefer: return= --------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["create", "update", "patch"])
def test_prefer_return(client: TestClient, method: str) -> None:
    put_patient(client, "pref", gender="male")
    seen = {}
    for n, mode in enumerate(["minimal", "representation", "OperationOutcome"]):
        headers = {"Prefer": f"return={mode}"}
        if method == "create":
            resp = client.post(
                "/fhir/Patient", json={"resourceType": "Patient", "gender": "male"}, headers=headers
            )
            assert resp.status_code == 201, resp.text
            assert resp.headers["location"].startswith(f"{BASE}/Patient/")
        elif method == "update":
            body = {"resourceType": "Patient", "id": "pref", "birthDate": f"200{n}"}
            resp = client.put("/fhir/Patient/pref", json=body, headers=headers)
            assert resp.status_code == 200, resp.text
        else:
            ops = [{"op": "replace", "path": "/gender", "value": ["female", "other", "unknown"][n]}]
            resp = client.patch("/fhir/Patient/pref", json=ops, headers={**headers, **PATCH_JSON})
            assert resp.status_code == 200, resp.text
        assert resp.headers["etag"].startswith('W/"')
        assert resp.headers["last-modified"]
        seen[mode] = resp
    assert seen["minimal"].content == b""
    rep = seen["representation"].json()
    assert rep["resourceType"] == "Patient"
    assert seen["representation"].headers["etag"] == f'W/"{rep["meta"]["versionId"]}"'
    assert seen["OperationOutcome"].json()["resourceType"] == "OperationOutcome"


def test_prefer_minimal_on_delete(client: TestClient) -> None:
    put_patient(client, "pref-del")
    resp = client.delete("/fhir/Patient/pref-del", headers={"Prefer": "return=minimal"})
    assert resp.status_code == 204
    assert resp.content == b""


def test_duplicated_prefer_first_wins(client: TestClient) -> None:
    """RFC 7240 §2: a preference given more than once: only the first instance is considered."""
    headers = [("Prefer", "return=minimal"), ("Prefer", "return=representation")]
    resp = client.post("/fhir/Patient", json={"resourceType": "Patient"}, headers=headers)
    assert resp.status_code == 201
    assert resp.content == b""
    resp = client.post(
        "/fhir/Patient",
        json={"resourceType": "Patient"},
        headers={"Prefer": "return=OperationOutcome, return=minimal"},
    )
    assert resp.status_code == 201
    assert resp.json()["resourceType"] == "OperationOutcome"


# ---- PATCH (JSON Patch) ---------------------------------------------------------------------


def test_json_patch_applies_and_versions(client: TestClient) -> None:
    put_patient(client, "pt-1", gender="male", name=[{"family": "Bui"}])
    ops = [
        {"op": "test", "path": "/gender", "value": "male"},
        {"op": "replace", "path": "/gender", "value": "female"},
        {"op": "add", "path": "/name/0/given", "value": ["Lan"]},
        {"op": "add", "path": "/birthDate", "value": "1990-04-30"},
    ]
    resp = client.patch("/fhir/Patient/pt-1", json=ops, headers=PATCH_JSON)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["meta"]["versionId"] == "2"
    assert resp.headers["etag"] == 'W/"2"'
    current = client.get("/fhir/Patient/pt-1").json()
    assert current["gender"] == "female"
    assert current["name"] == [{"family": "Bui", "given": ["Lan"]}]
    assert current["birthDate"] == "1990-04-30"
    assert client.get("/fhir/Patient/pt-1/_history/1").json()["gender"] == "male"
    found = client.get("/fhir/Patient", params={"gender": "female"}).json()
    assert [e["resource"]["id"] for e in found.get("entry", [])] == ["pt-1"]


@pytest.mark.parametrize(
    ("ops", "statuses"),
    [
        pytest.param({"op": "replace", "path": "/gender", "value": "male"}, {400}, id="not-an-array"),
        pytest.param([{"op": "frobnicate", "path": "/gender"}], {400}, id="unknown-op"),
        pytest.param([{"op": "replace", "value": "male"}], {400}, id="no-path"),
        pytest.param([{"op": "replace", "path": "/gender"}], {400, 422}, id="no-value"),
        pytest.param([{"op": "remove", "path": "/nothing/here"}], {400, 409, 422}, id="missing-target"),
        pytest.param(
            [{"op": "test", "path": "/gender", "value": "female"}], {409, 412, 422}, id="failed-test"
        ),
        pytest.param([{"op": "replace", "path": "/id", "value": "other"}], {400, 422}, id="change-id"),
        pytest.param([{"op": "remove", "path": "/id"}], {400, 422}, id="remove-id"),
        pytest.param(
            [{"op": "replace", "path": "/resourceType", "value": "Group"}], {400, 422}, id="change-type"
        ),
        pytest.param([{"op": "replace", "path": "/gender", "value": "robot"}], {422}, id="invalid-code"),
        pytest.param([{"op": "add", "path": "/birthDate", "value": "30/04/1990"}], {422}, id="invalid-date"),
        pytest.param([{"op": "add", "path": "/noSuchElement", "value": 1}], {422}, id="unknown-element"),
        pytest.param(
            [{"op": "replace", "path": "", "value": {"resourceType": "Patient"}}], {400, 422}, id="whole-doc"
        ),
        pytest.param([{"op": "move", "from": "/gender", "path": "/id"}], {400, 422}, id="move-onto-id"),
    ],
)
def test_bad_json_patch_stores_nothing(client: TestClient, counts: Any, ops: Any, statuses: set[int]) -> None:
    put_patient(client, "pt-bad", gender="male")
    before: TableCounts = counts()
    resp = client.patch("/fhir/Patient/pt-bad", json=ops, headers=PATCH_JSON)
    outcome(resp, statuses)
    assert counts() == before
    current = client.get("/fhir/Patient/pt-bad").json()
    assert current["id"] == "pt-bad"
    assert current["gender"] == "male"
    assert current["meta"]["versionId"] == "1"


def test_patch_formats_follow_the_media_type(client: TestClient, counts: Any) -> None:
    put_patient(client, "pt-ct", gender="male")
    before: TableCounts = counts()
    ops = [{"op": "replace", "path": "/gender", "value": "female"}]
    # A JSON Patch array sent as FHIR JSON is read as a FHIRPath Patch, which it is not.
    resp = client.patch("/fhir/Patient/pt-ct", json=ops, headers={"Content-Type": "application/fhir+json"})
    assert "FHIRPath Patch" in outcome(resp, 400)["issue"][0]["diagnostics"]
    params = {"resourceType": "Parameters", "parameter": []}
    resp = client.patch("/fhir/Patient/pt-ct", json=params, headers=PATCH_JSON)
    assert "JSON Patch" in outcome(resp, 400)["issue"][0]["diagnostics"]
    for ctype in ("application/fhir+xml", "text/plain"):
        outcome(client.patch("/fhir/Patient/pt-ct", json=ops, headers={"Content-Type": ctype}), 415)
    assert counts() == before


# ---- PATCH (FHIRPath Patch, fhirpatch.html) ---------------------------------------------------------


def fhirpath_op(kind: str, path: str, *extra: dict[str, Any]) -> dict[str, Any]:
    parts = [{"name": "type", "valueCode": kind}, {"name": "path", "valueString": path}, *extra]
    return {"name": "operation", "part": parts}


def fhirpath_patch(client: TestClient, rid: str, *ops: dict[str, Any], **headers: str) -> Any:
    body = {"resourceType": "Parameters", "parameter": list(ops)}
    return client.patch(
        f"/fhir/Patient/{rid}", json=body, headers={"Content-Type": "application/fhir+json", **headers}
    )


def test_fhirpath_patch_applies_versions_and_reindexes(client: TestClient) -> None:
    put_patient(
        client,
        "fp-1",
        gender="male",
        name=[{"family": "Bùi", "given": ["Văn"]}],
        identifier=[{"system": "urn:x", "value": "1"}, {"system": "urn:y", "value": "2"}],
    )
    resp = fhirpath_patch(
        client,
        "fp-1",
        fhirpath_op("replace", "Patient.gender", {"name": "value", "valueCode": "female"}),
        fhirpath_op(
            "add",
            "Patient.name[0]",
            {"name": "name", "valueString": "given"},
            {"name": "value", "valueString": "Lan"},
        ),
        fhirpath_op(
            "add",
            "Patient",
            {"name": "name", "valueString": "birthDate"},
            {"name": "value", "valueDate": "1990-04-30"},
        ),
        fhirpath_op("delete", "Patient.identifier.where(system='urn:x')"),
        **{"If-Match": 'W/"1"'},
    )
    assert resp.status_code == 200, resp.text
    assert resp.headers["etag"] == 'W/"2"'
    current = client.get("/fhir/Patient/fp-1").json()
    assert current["gender"] == "female"
    assert current["name"] == [{"family": "Bùi", "given": ["Văn", "Lan"]}]
    assert current["birthDate"] == "1990-04-30"
    assert current["identifier"] == [{"system": "urn:y", "value": "2"}]
    assert client.get("/fhir/Patient/fp-1/_history/1").json()["gender"] == "male"
    for query, ids in ((("gender", "female"),), ["fp-1"]), ((("identifier", "urn:x|1"),), []):
        found = client.get("/fhir/Patient", params=dict(query)).json()
        assert [e["resource"]["id"] for e in found.get("entry", [])] == ids
    stale = fhirpath_patch(
        client, "fp-1", fhirpath_op("delete", "Patient.birthDate"), **{"If-Match": 'W/"1"'}
    )
    outcome(stale, {409, 412})


@pytest.mark.parametrize(
    ("ops", "statuses", "where"),
    [
        pytest.param([{"name": "op"}], {400}, "Parameters.parameter[0]", id="not-an-operation"),
        pytest.param(
            [fhirpath_op("frobnicate", "Patient")],
            {400},
            "Parameters.parameter[0].part[0]",
            id="unknown-type",
        ),
        pytest.param(
            [fhirpath_op("delete", "Patient.name(")],
            {400},
            "Parameters.parameter[0].part[1]",
            id="bad-fhirpath",
        ),
        pytest.param(
            [fhirpath_op("replace", "Patient.birthDate", {"name": "value", "valueDate": "1"})],
            {422},
            "Parameters.parameter[0]",
            id="nothing-to-replace",
        ),
        pytest.param(
            [fhirpath_op("replace", "Patient.gender", {"name": "value", "valueCode": "robot"})],
            {422},
            "Patient.gender",
            id="invalid-code",
        ),
        pytest.param(
            [fhirpath_op("replace", "Patient.gender", {"name": "value", "valueHumanName": {}})],
            {422},
            "Parameters.parameter[0]",
            id="wrong-type",
        ),
        pytest.param(
            [fhirpath_op("replace", "Patient.id", {"name": "value", "valueId": "x"})],
            {422},
            "Parameters.parameter[0]",
            id="id",
        ),
        pytest.param(
            [fhirpath_op("delete", "Patient")], {422}, "Parameters.parameter[0]", id="whole-resource"
        ),
        pytest.param(
            [
                fhirpath_op("replace", "Patient.gender", {"name": "value", "valueCode": "female"}),
                fhirpath_op("delete", "Patient.name.given"),
            ],
            {422},
            "Parameters.parameter[1]",
            id="second-op-fails",
        ),
    ],
)
def test_bad_fhirpath_patch_stores_nothing(
    client: TestClient, counts: Any, ops: list[dict[str, Any]], statuses: set[int], where: str
) -> None:
    put_patient(client, "fp-bad", gender="male", name=[{"given": ["A", "B"]}])
    before: TableCounts = counts()
    body = outcome(fhirpath_patch(client, "fp-bad", *ops), statuses)
    assert body["issue"][0]["expression"][0].startswith(where), body
    assert counts() == before
    current = client.get("/fhir/Patient/fp-bad").json()
    assert current["gender"] == "male"
    assert current["meta"]["versionId"] == "1"


def test_patch_missing_and_deleted(client: TestClient) -> None:
    ops = [{"op": "replace", "path": "/gender", "value": "female"}]
    outcome(client.patch("/fhir/Patient/pt-none", json=ops, headers=PATCH_JSON), 404, "not-found")
    put_patient(client, "pt-gone", gender="male")
    client.delete("/fhir/Patient/pt-gone")
    outcome(client.patch("/fhir/Patient/pt-gone", json=ops, headers=PATCH_JSON), 410, "deleted")


# ---- content negotiation (http.html#mime-type) ------------------------------------------------


@pytest.mark.parametrize(
    "accept",
    ["application/fhir+json", "application/json", "*/*", "application/fhir+json; fhirVersion=4.0", None],
)
def test_json_is_served(client: TestClient, accept: str | None) -> None:
    put_patient(client, "neg")
    headers = {"Accept": accept} if accept else {}
    resp = client.get("/fhir/Patient/neg", headers=headers)
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("application/fhir+json")


@pytest.mark.parametrize("fmt", ["json", "application/fhir+json", "application/json"])
def test_format_json_is_served(client: TestClient, fmt: str) -> None:
    put_patient(client, "neg")
    resp = client.get(
        "/fhir/Patient/neg", params={"_format": fmt}, headers={"Accept": "application/fhir+xml"}
    )
    assert resp.status_code == 200
    assert resp.json()["id"] == "neg"


@pytest.mark.parametrize(
    ("path", "params", "headers"),
    [
        ("/fhir/Patient/neg", {}, {"Accept": "application/fhir+xml"}),
        ("/fhir/Patient/neg", {}, {"Accept": "application/xml"}),
        ("/fhir/Patient/neg", {"_format": "xml"}, {}),
        ("/fhir/Patient/neg", {"_format": "application/fhir+xml"}, {"Accept": "application/fhir+json"}),
        ("/fhir/Patient", {"_format": "xml"}, {}),
        ("/fhir/metadata", {}, {"Accept": "application/fhir+xml"}),
        ("/fhir/_history", {"_format": "text/xml"}, {}),
        ("/fhir/Patient/neg/_history/1", {}, {"Accept": "text/turtle"}),
    ],
)
def test_xml_or_other_formats_are_406(
    client: TestClient, path: str, params: dict[str, str], headers: Any
) -> None:
    put_patient(client, "neg")
    body = outcome(client.get(path, params=params, headers=headers), 406)
    assert body["issue"][0]["code"] in ("not-supported", "invalid")


def test_write_asking_for_xml_is_406_and_stores_nothing(client: TestClient, counts: Any) -> None:
    before: TableCounts = counts()
    resp = client.post(
        "/fhir/Patient", json={"resourceType": "Patient"}, headers={"Accept": "application/fhir+xml"}
    )
    outcome(resp, 406)
    assert counts() == before


def test_xml_body_is_415(client: TestClient, counts: Any) -> None:
    before: TableCounts = counts()
    xml = '<Patient xmlns="http://hl7.org/fhir"><gender value="male"/></Patient>'
    for ctype in ("application/fhir+xml", "application/xml", "text/xml"):
        outcome(
            client.post("/fhir/Patient", content=xml, headers={"Content-Type": ctype}), 415, "not-supported"
        )
        outcome(
            client.put("/fhir/Patient/x1", content=xml, headers={"Content-Type": ctype}), 415, "not-supported"
        )
    assert counts() == before


# ---- concurrency ----------------------------------------------------------------------------


def test_concurrent_conditional_creates_make_one_resource(client: TestClient) -> None:
    body = {"resourceType": "Patient", "identifier": [{"system": "urn:race", "value": "1"}]}

    def attempt(_: int) -> int:
        resp = client.post("/fhir/Patient", json=body, headers={"If-None-Exist": "identifier=urn:race|1"})
        return resp.status_code

    with ThreadPoolExecutor(8) as pool:
        statuses = sorted(pool.map(attempt, range(8)))
    assert statuses == [200] * 7 + [201]
    found = client.get("/fhir/Patient", params={"identifier": "urn:race|1"}).json()
    assert found["total"] == 1


def test_concurrent_updates_make_consecutive_versions(client: TestClient) -> None:
    put_patient(client, "race", birthDate="2000")

    def attempt(n: int) -> int:
        body = {"resourceType": "Patient", "id": "race", "birthDate": f"{2001 + n}"}
        resp = client.put("/fhir/Patient/race", json=body)
        assert resp.status_code == 200, resp.text
        return int(resp.json()["meta"]["versionId"])

    with ThreadPoolExecutor(6) as pool:
        versions = sorted(pool.map(attempt, range(6)))
    assert versions == [2, 3, 4, 5, 6, 7]
    history = client.get("/fhir/Patient/race/_history").json()
    assert history["total"] == 7


def test_concurrent_update_as_create_same_id(client: TestClient) -> None:
    def attempt(n: int) -> int:
        body = {"resourceType": "Patient", "id": "new-race", "birthDate": f"{2001 + n}"}
        resp = client.put("/fhir/Patient/new-race", json=body)
        assert resp.status_code in (200, 201), resp.text
        return resp.status_code

    with ThreadPoolExecutor(6) as pool:
        statuses = sorted(pool.map(attempt, range(6)))
    assert statuses == [200] * 5 + [201]
    assert client.get("/fhir/Patient/new-race/_history").json()["total"] == 6


# ---- CapabilityStatement ------------------------------------------------------------------


def test_metadata_is_a_capability_statement(client: TestClient) -> None:
    resp = client.get("/fhir/metadata")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("application/fhir+json")
    cs = resp.json()
    assert cs["resourceType"] == "CapabilityStatement"
    assert cs["fhirVersion"] == "4.0.1"
    assert cs["kind"] == "instance"
    assert cs["status"] in ("draft", "active", "retired", "unknown")
    assert cs["date"]
    assert not any("xml" in f for f in cs["format"]), "XML is claimed but answered with 406"
    assert any("json" in f for f in cs["format"])
    assert cs["implementation"]["url"] == BASE
    rest = cs["rest"][0]
    assert rest["mode"] == "server"
    assert len({r["type"] for r in rest["resource"]}) == len(rest["resource"])
    assert "Patient" in {r["type"] for r in rest["resource"]}


def _capability(client: TestClient, rtype: str) -> dict[str, Any]:
    cs = client.get("/fhir/metadata").json()
    out: dict[str, Any] = next(r for r in cs["rest"][0]["resource"] if r["type"] == rtype)
    return out


def _sample(rtype: str) -> dict[str, Any]:
    if rtype == "Observation":
        return {"resourceType": "Observation", "status": "final", "code": {"text": "t"}}
    if rtype == "Organization":
        return {"resourceType": "Organization", "name": "Benh vien"}
    return {"resourceType": "Patient", "gender": "female"}


@pytest.mark.parametrize("rtype", ["Patient", "Observation", "Organization"])
def test_every_claimed_interaction_works(client: TestClient, rtype: str) -> None:
    cap = _capability(client, rtype)
    claimed = {i["code"] for i in cap["interaction"]}
    assert {"read", "create"} <= claimed
    created = client.post(f"/fhir/{rtype}", json=_sample(rtype))
    assert created.status_code == 201
    rid = created.json()["id"]
    body = {**_sample(rtype), "id": rid}
    checks = {
        "read": lambda: client.get(f"/fhir/{rtype}/{rid}").status_code == 200,
        "vread": lambda: client.get(f"/fhir/{rtype}/{rid}/_history/1").status_code == 200,
        "update": lambda: (
            client.put(f"/fhir/{rtype}/{rid}", json={**body, "language": "vi"}).status_code == 200
        ),
        "patch": lambda: (
            client.patch(
                f"/fhir/{rtype}/{rid}",
                json=[{"op": "add", "path": "/language", "value": "en"}],
                headers=PATCH_JSON,
            ).status_code
            == 200
        ),
        "history-instance": lambda: client.get(f"/fhir/{rtype}/{rid}/_history").json()["total"] >= 1,
        "history-type": lambda: client.get(f"/fhir/{rtype}/_history").json()["total"] >= 1,
        "search-type": lambda: client.get(f"/fhir/{rtype}", params={"_id": rid}).json()["total"] == 1,
        "create": lambda: client.post(f"/fhir/{rtype}", json=_sample(rtype)).status_code == 201,
        "delete": lambda: (
            client.delete(f"/fhir/{rtype}/{rid}").status_code in (200, 204)
            and client.get(f"/fhir/{rtype}/{rid}").status_code == 410
        ),
    }
    order = [c for c in checks if c != "delete"] + ["delete"]
    for code in order:
        if code in claimed:
            assert checks[code](), f"{rtype}: claimed interaction {code} does not work"
    assert claimed <= set(checks), f"unchecked claims {claimed - set(checks)}"
    if cap.get("updateCreate"):
        resp = client.put(
            f"/fhir/{rtype}/uc-{rtype.lower()}", json={**_sample(rtype), "id": f"uc-{rtype.lower()}"}
        )
        assert resp.status_code == 201
    if cap.get("readHistory"):
        assert "vread" in claimed
    if cap.get("versioning") == "versioned-update":
        resp = client.put(
            f"/fhir/{rtype}/uc-{rtype.lower()}",
            json=body | {"id": f"uc-{rtype.lower()}"},
            headers={"If-Match": 'W/"9"'},
        )
        assert resp.status_code == 412


def test_claimed_conditional_interactions_work(client: TestClient) -> None:
    cap = _capability(client, "Patient")
    params = {p["name"]: p["type"] for p in cap["searchParam"]}
    assert params.get("identifier") == "token"
    body = {"resourceType": "Patient", "identifier": [{"system": "urn:cap", "value": "1"}]}
    if cap.get("conditionalCreate"):
        assert (
            client.post(
                "/fhir/Patient", json=body, headers={"If-None-Exist": "identifier=urn:cap|1"}
            ).status_code
            == 201
        )
        assert (
            client.post(
                "/fhir/Patient", json=body, headers={"If-None-Exist": "identifier=urn:cap|1"}
            ).status_code
            == 200
        )
    if cap.get("conditionalUpdate"):
        resp = client.put(
            "/fhir/Patient", params={"identifier": "urn:cap|1"}, json={**body, "gender": "male"}
        )
        assert resp.status_code == 200
    if cap.get("conditionalDelete") in ("single", "multiple"):
        assert client.delete("/fhir/Patient", params={"identifier": "urn:cap|1"}).status_code in (200, 204)
        assert client.get("/fhir/Patient", params={"identifier": "urn:cap|1"}).json()["total"] == 0
    assert cap.get("conditionalRead", "not-supported") == "not-supported"


def test_system_interactions_claimed_work(client: TestClient) -> None:
    cs = client.get("/fhir/metadata").json()
    claimed = {i["code"] for i in cs["rest"][0].get("interaction", [])}
    put_patient(client, "sys-1")
    if "history-system" in claimed:
        assert client.get("/fhir/_history").json()["total"] == 1
    if "search-system" in claimed:
        found = client.get("/fhir", params={"_id": "sys-1"}).json()
        assert [e["resource"]["id"] for e in found.get("entry", [])] == ["sys-1"]
    for unsupported in ("transaction", "batch"):
        if unsupported not in claimed:
            bundle = {"resourceType": "Bundle", "type": unsupported, "entry": []}
            resp = client.post("/fhir", json=bundle)
            assert resp.status_code in (404, 405, 501), resp.text


_SAMPLE_VALUES = {
    "token": "x",
    "string": "x",
    "date": "2020",
    "reference": "Patient/x",
    "number": "1",
    "quantity": "1",
    "uri": "http://example.org/x",
}


def _composite_sample(name: str) -> str:
    """A value for a composite parameter: token$<second component by the name's suffix>."""
    second = {"quantity": "1", "date": "2020", "string": "x"}.get(name.rsplit("-", 1)[-1], "x")
    return f"x${second}"


@pytest.mark.parametrize("rtype", ["Patient", "Observation", "Encounter", "Condition", "MedicationRequest"])
def test_claimed_search_params_are_understood(client: TestClient, rtype: str) -> None:
    """Each searchParam in the CapabilityStatement is accepted under Prefer: handling=strict."""
    cap = _capability(client, rtype)
    failures = []
    for p in cap["searchParam"]:
        value = _composite_sample(p["name"]) if p["type"] == "composite" else _SAMPLE_VALUES.get(p["type"])
        assert value is not None, f"{rtype}.{p['name']} of type {p['type']} is claimed"
        resp = client.get(f"/fhir/{rtype}", params={p["name"]: value}, headers={"Prefer": "handling=strict"})
        if resp.status_code != 200:
            failures.append((p["name"], resp.status_code, resp.text[:200]))
    assert not failures


def test_claimed_resource_types_are_served(client: TestClient) -> None:
    cs = client.get("/fhir/metadata").json()
    for r in cs["rest"][0]["resource"]:
        resp = client.get(f"/fhir/{r['type']}/unknown-id")
        assert resp.status_code == 404, (r["type"], resp.text)
        assert resp.json()["issue"][0]["code"] == "not-found"
