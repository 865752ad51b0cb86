"""Conditional create / update / delete and versioned update with If-Match (http.html)."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from .conftest import TableCounts, outcome

SYS = "urn:oid:2.16.840.1.113883.2.24"
BASE = "http://testserver/fhir"


def patient(value: str, family: str = "Vo", **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "identifier": [{"system": SYS, "value": value}],
        "name": [{"family": family}],
        **extra,
    }


def ids_with(client: TestClient, value: str) -> list[str]:
    bundle = client.get("/fhir/Patient", params={"identifier": f"{SYS}|{value}"}).json()
    return sorted(e["resource"]["id"] for e in bundle.get("entry", []) if e["search"]["mode"] == "match")


# ---- conditional create (If-None-Exist) ------------------------------------------------------


def test_conditional_create_no_match_creates(client: TestClient) -> None:
    resp = client.post(
        "/fhir/Patient", json=patient("cc-1"), headers={"If-None-Exist": f"identifier={SYS}|cc-1"}
    )
    assert resp.status_code == 201, resp.text
    rid = resp.json()["id"]
    assert resp.headers["location"] == f"{BASE}/Patient/{rid}/_history/1"
    assert ids_with(client, "cc-1") == [rid]


def test_conditional_create_one_match_returns_existing(client: TestClient, counts: Any) -> None:
    first = client.post("/fhir/Patient", json=patient("cc-2")).json()
    before: TableCounts = counts()
    resp = client.post(
        "/fhir/Patient",
        json=patient("cc-2", family="Other"),
        headers={"If-None-Exist": f"identifier={SYS}|cc-2"},
    )
    # "One Match: The server ignores the post and returns 200 OK"
    assert resp.status_code == 200, resp.text
    assert resp.headers["etag"] == 'W/"1"'
    if resp.content:
        assert resp.json()["id"] == first["id"]
        assert resp.json()["name"] == [{"family": "Vo"}]
    assert counts() == before
    assert ids_with(client, "cc-2") == [first["id"]]


def test_conditional_create_many_matches_is_412(client: TestClient, counts: Any) -> None:
    client.post("/fhir/Patient", json=patient("cc-3"))
    client.post("/fhir/Patient", json=patient("cc-3"))
    before: TableCounts = counts()
    resp = client.post(
        "/fhir/Patient", json=patient("cc-3"), headers={"If-None-Exist": f"identifier={SYS}|cc-3"}
    )
    outcome(resp, 412)
    assert counts() == before


def test_conditional_create_ignores_deleted_matches(client: TestClient) -> None:
    old = client.post("/fhir/Patient", json=patient("cc-4")).json()
    client.delete(f"/fhir/Patient/{old['id']}")
    resp = client.post(
        "/fhir/Patient", json=patient("cc-4"), headers={"If-None-Exist": f"identifier={SYS}|cc-4"}
    )
    assert resp.status_code == 201
    assert resp.json()["id"] != old["id"]


def test_conditional_create_bad_criteria_is_400(client: TestClient, counts: Any) -> None:
    before: TableCounts = counts()
    resp = client.post("/fhir/Patient", json=patient("cc-5"), headers={"If-None-Exist": "no-such-param=1"})
    outcome(resp, 400)
    assert counts() == before


# ---- conditional update ----------------------------------------------------------------------


def test_conditional_update_no_match_creates(client: TestClient) -> None:
    resp = client.put("/fhir/Patient", params={"identifier": f"{SYS}|cu-1"}, json=patient("cu-1"))
    assert resp.status_code == 201, resp.text
    rid = resp.json()["id"]
    assert resp.json()["meta"]["versionId"] == "1"
    assert resp.headers["location"] == f"{BASE}/Patient/{rid}/_history/1"
    assert ids_with(client, "cu-1") == [rid]


def test_conditional_update_one_match_updates_it(client: TestClient) -> None:
    first = client.post("/fhir/Patient", json=patient("cu-2")).json()
    resp = client.put(
        "/fhir/Patient", params={"identifier": f"{SYS}|cu-2"}, json=patient("cu-2", family="Dang")
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["id"] == first["id"]
    assert resp.json()["meta"]["versionId"] == "2"
    assert resp.headers["etag"] == 'W/"2"'
    assert client.get(f"/fhir/Patient/{first['id']}").json()["name"] == [{"family": "Dang"}]
    # The body may carry the id of the match.
    again = client.put(
        "/fhir/Patient",
        params={"identifier": f"{SYS}|cu-2"},
        json={**patient("cu-2", "Ho"), "id": first["id"]},
    )
    assert again.status_code == 200
    assert again.json()["meta"]["versionId"] == "3"


def test_conditional_update_many_matches_is_412(client: TestClient, counts: Any) -> None:
    client.post("/fhir/Patient", json=patient("cu-3"))
    client.post("/fhir/Patient", json=patient("cu-3"))
    before: TableCounts = counts()
    outcome(client.put("/fhir/Patient", params={"identifier": f"{SYS}|cu-3"}, json=patient("cu-3")), 412)
    assert counts() == before


def test_conditional_update_body_id_differs_from_match_is_400(client: TestClient, counts: Any) -> None:
    client.post("/fhir/Patient", json=patient("cu-4"))
    before: TableCounts = counts()
    resp = client.put(
        "/fhir/Patient", params={"identifier": f"{SYS}|cu-4"}, json={**patient("cu-4"), "id": "other"}
    )
    body = outcome(resp, 400)
    assert body["issue"][0].get("expression") == ["Patient.id"]
    assert counts() == before


def test_conditional_update_without_criteria_is_400(client: TestClient, counts: Any) -> None:
    before: TableCounts = counts()
    outcome(client.put("/fhir/Patient", json=patient("cu-5")), 400)
    assert counts() == before


def test_conditional_update_with_if_match(client: TestClient) -> None:
    client.post("/fhir/Patient", json=patient("cu-6"))
    params = {"identifier": f"{SYS}|cu-6"}
    outcome(
        client.put("/fhir/Patient", params=params, json=patient("cu-6", "X"), headers={"If-Match": 'W/"2"'}),
        412,
    )
    ok = client.put("/fhir/Patient", params=params, json=patient("cu-6", "X"), headers={"If-Match": 'W/"1"'})
    assert ok.status_code == 200
    assert ok.json()["meta"]["versionId"] == "2"


# ---- conditional delete ----------------------------------------------------------------------


def test_conditional_delete_single_match(client: TestClient) -> None:
    keep = client.post("/fhir/Patient", json=patient("cd-keep")).json()
    doomed = client.post("/fhir/Patient", json=patient("cd-1")).json()
    resp = client.delete("/fhir/Patient", params={"identifier": f"{SYS}|cd-1"})
    assert resp.status_code in (200, 204), resp.text
    outcome(client.get(f"/fhir/Patient/{doomed['id']}"), 410, "deleted")
    assert client.get(f"/fhir/Patient/{keep['id']}").status_code == 200
    assert ids_with(client, "cd-1") == []


def test_conditional_delete_no_match(client: TestClient, counts: Any) -> None:
    client.post("/fhir/Patient", json=patient("cd-2"))
    before: TableCounts = counts()
    resp = client.delete("/fhir/Patient", params={"identifier": f"{SYS}|nothing-like-this"})
    assert resp.status_code in (200, 204, 404), resp.text
    assert counts() == before


def test_conditional_delete_many_matches_is_412(client: TestClient, counts: Any) -> None:
    a = client.post("/fhir/Patient", json=patient("cd-3")).json()
    b = client.post("/fhir/Patient", json=patient("cd-3")).json()
    before: TableCounts = counts()
    outcome(client.delete("/fhir/Patient", params={"identifier": f"{SYS}|cd-3"}), 412)
    assert counts() == before
    assert ids_with(client, "cd-3") == sorted([a["id"], b["id"]])


def test_conditional_delete_without_criteria_is_400(client: TestClient, counts: Any) -> None:
    client.post("/fhir/Patient", json=patient("cd-4"))
    before: TableCounts = counts()
    outcome(client.delete("/fhir/Patient"), 400)
    assert counts() == before


# ---- If-Match (versioned update, http.html#concurrency) --------------------------------------


def test_if_match_current_version_updates(client: TestClient) -> None:
    client.put("/fhir/Patient/im-1", json={**patient("im-1"), "id": "im-1"})
    resp = client.put(
        "/fhir/Patient/im-1", json={**patient("im-1", "B"), "id": "im-1"}, headers={"If-Match": 'W/"1"'}
    )
    assert resp.status_code == 200, resp.text
    assert resp.headers["etag"] == 'W/"2"'


def test_if_match_stale_version_is_412_and_stores_nothing(client: TestClient, counts: Any) -> None:
    client.put("/fhir/Patient/im-2", json={**patient("im-2"), "id": "im-2"})
    client.put("/fhir/Patient/im-2", json={**patient("im-2", "B"), "id": "im-2"})
    before: TableCounts = counts()
    stale = client.put(
        "/fhir/Patient/im-2", json={**patient("im-2", "C"), "id": "im-2"}, headers={"If-Match": 'W/"1"'}
    )
    outcome(stale, 412)
    assert counts() == before
    assert client.get("/fhir/Patient/im-2").json()["name"] == [{"family": "B"}]
    patch = client.patch(
        "/fhir/Patient/im-2",
        json=[{"op": "replace", "path": "/name/0/family", "value": "D"}],
        headers={"Content-Type": "application/json-patch+json", "If-Match": 'W/"1"'},
    )
    outcome(patch, 412)
    assert counts() == before


def test_if_match_on_missing_resource_is_rejected(client: TestClient, counts: Any) -> None:
    before: TableCounts = counts()
    resp = client.put(
        "/fhir/Patient/im-3", json={**patient("im-3"), "id": "im-3"}, headers={"If-Match": 'W/"1"'}
    )
    outcome(resp, {404, 409, 412})
    assert counts() == before


def test_if_match_garbage_is_400(client: TestClient, counts: Any) -> None:
    client.put("/fhir/Patient/im-4", json={**patient("im-4"), "id": "im-4"})
    before: TableCounts = counts()
    resp = client.put(
        "/fhir/Patient/im-4", json={**patient("im-4", "Z"), "id": "im-4"}, headers={"If-Match": "banana"}
    )
    outcome(resp, {400, 412})
    assert counts() == before
