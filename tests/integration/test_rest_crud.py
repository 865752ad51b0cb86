"""read, vread, create, update, update-as-create and delete against FHIR R4 http.html."""

from __future__ import annotations

from email.utils import parsedate_to_datetime
from typing import Any

from fastapi.testclient import TestClient

from .conftest import TableCounts, outcome

BASE = "http://testserver/fhir"
FHIR_JSON = "application/fhir+json"


def patient(family: str = "Nguyen", **extra: Any) -> dict[str, Any]:
    return {"resourceType": "Patient", "name": [{"family": family, "given": ["An"]}], **extra}


def create(client: TestClient, body: dict[str, Any]) -> dict[str, Any]:
    resp = client.post(f"/fhir/{body['resourceType']}", json=body)
    assert resp.status_code == 201, resp.text
    out: dict[str, Any] = resp.json()
    return out


def system_total(client: TestClient) -> int:
    resp = client.get("/fhir/_history", params={"_count": "0"})
    assert resp.status_code == 200, resp.text
    total: int = resp.json()["total"]
    return total


def assert_version_headers(resp: Any, res: dict[str, Any]) -> None:
    """ETag is W/"versionId" and Last-Modified is meta.lastUpdated to the second (http.html#versioning)."""
    assert resp.headers["etag"] == f'W/"{res["meta"]["versionId"]}"'
    last_modified = parsedate_to_datetime(resp.headers["last-modified"])
    assert last_modified.tzinfo is not None
    updated = res["meta"]["lastUpdated"]
    assert last_modified.strftime("%Y-%m-%dT%H:%M:%S") == updated[:19]


def test_create_assigns_id_and_ignores_body_id(client: TestClient) -> None:
    resp = client.post("/fhir/Patient", json=patient(id="chosen-by-client"))
    assert resp.status_code == 201, resp.text
    assert resp.headers["content-type"].startswith(FHIR_JSON)
    body = resp.json()
    assert body["resourceType"] == "Patient"
    assert body["id"]
    assert body["id"] != "chosen-by-client"
    assert body["meta"]["versionId"] == "1"
    assert body["name"] == [{"family": "Nguyen", "given": ["An"]}]
    assert resp.headers["location"] == f"{BASE}/Patient/{body['id']}/_history/1"
    assert_version_headers(resp, body)
    assert client.get("/fhir/Patient/chosen-by-client").status_code == 404


def test_create_twice_gives_two_resources(client: TestClient) -> None:
    a, b = create(client, patient()), create(client, patient())
    assert a["id"] != b["id"]
    assert system_total(client) == 2


def test_create_replaces_client_meta_version(client: TestClient) -> None:
    body = patient(meta={"versionId": "42", "lastUpdated": "2001-01-01T00:00:00Z", "tag": [{"code": "t"}]})
    res = create(client, body)
    assert res["meta"]["versionId"] == "1"
    assert not res["meta"]["lastUpdated"].startswith("2001")
    assert res["meta"]["tag"] == [{"code": "t"}]


def test_read_returns_current_version_with_headers(client: TestClient) -> None:
    created = create(client, patient())
    resp = client.get(f"/fhir/Patient/{created['id']}")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith(FHIR_JSON)
    assert resp.json() == created
    assert_version_headers(resp, created)


def test_read_unknown_is_404(client: TestClient) -> None:
    outcome(client.get("/fhir/Patient/does-not-exist"), 404, "not-found")


def test_update_makes_a_new_version_and_keeps_the_old(client: TestClient) -> None:
    v1 = create(client, patient("Tran"))
    body = {**patient("Le"), "id": v1["id"]}
    resp = client.put(f"/fhir/Patient/{v1['id']}", json=body)
    assert resp.status_code == 200, resp.text
    v2 = resp.json()
    assert v2["id"] == v1["id"]
    assert v2["meta"]["versionId"] == "2"
    assert v2["meta"]["lastUpdated"] > v1["meta"]["lastUpdated"]
    assert_version_headers(resp, v2)
    assert client.get(f"/fhir/Patient/{v1['id']}").json()["name"][0]["family"] == "Le"
    old = client.get(f"/fhir/Patient/{v1['id']}/_history/1")
    assert old.status_code == 200
    assert old.json() == v1
    assert_version_headers(old, v1)
    new = client.get(f"/fhir/Patient/{v1['id']}/_history/2")
    assert new.json() == v2


def test_update_as_create_with_client_id(client: TestClient) -> None:
    resp = client.put("/fhir/Patient/client-id-1", json={**patient(), "id": "client-id-1"})
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert body["id"] == "client-id-1"
    assert body["meta"]["versionId"] == "1"
    assert resp.headers["location"] == f"{BASE}/Patient/client-id-1/_history/1"
    assert_version_headers(resp, body)
    assert client.get("/fhir/Patient/client-id-1").json() == body


def test_update_with_identical_content_creates_no_version_or_a_proper_one(client: TestClient) -> None:
    v1 = create(client, patient())
    resp = client.put(f"/fhir/Patient/{v1['id']}", json={**patient(), "id": v1["id"]})
    assert resp.status_code == 200
    vid = resp.json()["meta"]["versionId"]
    history = client.get(f"/fhir/Patient/{v1['id']}/_history").json()
    assert history["total"] == int(vid)
    assert resp.headers["etag"] == f'W/"{vid}"'


def test_update_of_non_patient_moves_between_compartments(client: TestClient) -> None:
    """An Observation whose subject changes keeps its id, its history and its search entries."""
    for pid in ("pa", "pb"):
        assert client.put(f"/fhir/Patient/{pid}", json={**patient(), "id": pid}).status_code == 201
    obs = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "hr"},
        "subject": {"reference": "Patient/pa"},
    }
    v1 = create(client, obs)
    moved = {**obs, "id": v1["id"], "subject": {"reference": "Patient/pb"}}
    resp = client.put(f"/fhir/Observation/{v1['id']}", json=moved)
    assert resp.status_code == 200, resp.text
    assert client.get(f"/fhir/Observation/{v1['id']}").json()["subject"] == {"reference": "Patient/pb"}
    assert client.get(f"/fhir/Observation/{v1['id']}/_history/1").json() == v1
    assert client.get(f"/fhir/Observation/{v1['id']}/_history").json()["total"] == 2
    found_b = client.get("/fhir/Observation", params={"subject": "Patient/pb"}).json()
    assert [e["resource"]["id"] for e in found_b.get("entry", [])] == [v1["id"]]
    found_a = client.get("/fhir/Observation", params={"subject": "Patient/pa"}).json()
    assert found_a.get("entry", []) == []
    assert client.delete(f"/fhir/Observation/{v1['id']}").status_code in (200, 204)
    outcome(client.get(f"/fhir/Observation/{v1['id']}"), 410, "deleted")


def test_delete_then_read_is_gone(client: TestClient) -> None:
    res = create(client, patient())
    resp = client.delete(f"/fhir/Patient/{res['id']}")
    assert resp.status_code in (200, 204), resp.text
    if resp.status_code == 200 and resp.content:
        assert resp.json()["resourceType"] == "OperationOutcome"
    outcome(client.get(f"/fhir/Patient/{res['id']}"), 410, "deleted")
    # The old version stays readable; the deletion is a version of its own (http.html#delete).
    assert client.get(f"/fhir/Patient/{res['id']}/_history/1").json() == res
    outcome(client.get(f"/fhir/Patient/{res['id']}/_history/2"), 410)
    history = client.get(f"/fhir/Patient/{res['id']}/_history").json()
    assert history["total"] == 2
    newest = history["entry"][0]
    assert newest["request"]["method"] == "DELETE"
    assert "resource" not in newest
    # A deleted resource is not found by search.
    assert client.get("/fhir/Patient", params={"_id": res["id"]}).json().get("entry", []) == []


def test_delete_twice_and_delete_missing_are_not_errors(client: TestClient, counts: Any) -> None:
    res = create(client, patient())
    assert client.delete(f"/fhir/Patient/{res['id']}").status_code in (200, 204)
    before: TableCounts = counts()
    again = client.delete(f"/fhir/Patient/{res['id']}")
    assert again.status_code in (200, 204), again.text
    missing = client.delete("/fhir/Patient/never-existed")
    assert missing.status_code in (200, 204), missing.text
    assert counts() == before
    outcome(client.get("/fhir/Patient/never-existed"), 404, "not-found")


def test_update_after_delete_recreates_with_next_version(client: TestClient) -> None:
    res = create(client, patient())
    client.delete(f"/fhir/Patient/{res['id']}")
    resp = client.put(f"/fhir/Patient/{res['id']}", json={**patient("Pham"), "id": res["id"]})
    assert resp.status_code == 201, resp.text
    assert resp.json()["meta"]["versionId"] == "3"
    assert resp.headers["location"] == f"{BASE}/Patient/{res['id']}/_history/3"
    assert client.get(f"/fhir/Patient/{res['id']}").json()["name"][0]["family"] == "Pham"


def test_vread_unknown_version_is_404(client: TestClient) -> None:
    res = create(client, patient())
    outcome(client.get(f"/fhir/Patient/{res['id']}/_history/2"), 404, "not-found")
    outcome(client.get("/fhir/Patient/nobody/_history/1"), 404, "not-found")


def test_decimal_precision_is_kept_byte_for_byte(client: TestClient) -> None:
    """FHIR decimals keep their precision (datatypes.html#decimal): 1.50 is not 1.5."""
    raw = (
        b'{"resourceType":"Observation","status":"final","code":{"text":"glucose"},'
        b'"valueQuantity":{"value":1.50,"unit":"mmol/L"},'
        b'"component":[{"code":{"text":"a"},"valueQuantity":{"value":100.000}},'
        b'{"code":{"text":"b"},"valueQuantity":{"value":0.1000000000000000000001}},'
        b'{"code":{"text":"c"},"valueQuantity":{"value":12345678901234567890.5}}]}'
    )
    resp = client.post("/fhir/Observation", content=raw, headers={"Content-Type": FHIR_JSON})
    assert resp.status_code == 201, resp.text
    rid = resp.json()["id"]
    wanted = [
        b'"value":1.50',
        b'"value":100.000',
        b'"value":0.1000000000000000000001',
        b'"value":12345678901234567890.5',
    ]
    texts = {
        "create": resp.content,
        "read": client.get(f"/fhir/Observation/{rid}").content,
        "vread": client.get(f"/fhir/Observation/{rid}/_history/1").content,
        "search": client.get("/fhir/Observation", params={"_id": rid}).content,
        "history": client.get(f"/fhir/Observation/{rid}/_history").content,
    }
    for name, text in texts.items():
        for w in wanted:
            assert w in text.replace(b" ", b""), (name, w, text[:400])
    # An update that only changes the precision is a change (1.50 and 1.5 are different decimals).
    upd_raw = raw.replace(b"{", b'{"id":"' + rid.encode() + b'",', 1).replace(b"1.50", b"1.5")
    upd = client.put(f"/fhir/Observation/{rid}", content=upd_raw, headers={"Content-Type": FHIR_JSON})
    assert upd.status_code == 200, upd.text
    assert upd.json()["meta"]["versionId"] == "2"
    current = client.get(f"/fhir/Observation/{rid}").content
    assert b'"value":1.5,' in current
    assert b'"value":1.50' in client.get(f"/fhir/Observation/{rid}/_history/1").content
