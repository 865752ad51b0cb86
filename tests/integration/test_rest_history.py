"""history at instance, type and system level: Bundle type history, newest first, _count paging, _since."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from .conftest import outcome

BASE = "http://testserver/fhir"


def put(client: TestClient, rtype: str, rid: str, **fields: Any) -> dict[str, Any]:
    body = {"resourceType": rtype, "id": rid, **fields}
    resp = client.put(f"/fhir/{rtype}/{rid}", json=body)
    assert resp.status_code in (200, 201), resp.text
    out: dict[str, Any] = resp.json()
    return out


def follow(
    client: TestClient, url: str, max_pages: int = 100
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every page from `url` following `next`; returns (pages, entries)."""
    pages: list[dict[str, Any]] = []
    entries: list[dict[str, Any]] = []
    while url:
        assert url.startswith(BASE), url
        resp = client.get(url[len("http://testserver") :])
        assert resp.status_code == 200, resp.text
        page = resp.json()
        assert page["resourceType"] == "Bundle"
        assert page["type"] == "history"
        pages.append(page)
        entries.extend(page.get("entry", []))
        links = {link["relation"]: link["url"] for link in page["link"]}
        assert "self" in links
        url = links.get("next", "")
        assert len(pages) <= max_pages, "next links never end"
    return pages, entries


def version_key(entry: dict[str, Any]) -> tuple[str, str]:
    return entry["fullUrl"], entry["response"]["etag"]


def test_instance_history_lists_every_version_newest_first(client: TestClient) -> None:
    for n in range(3):
        put(client, "Patient", "hist-1", gender=["male", "female", "other"][n])
    client.delete("/fhir/Patient/hist-1")
    put(client, "Patient", "hist-other")
    resp = client.get("/fhir/Patient/hist-1/_history")
    assert resp.status_code == 200
    bundle = resp.json()
    assert bundle["type"] == "history"
    assert bundle["total"] == 4
    etags = [e["response"]["etag"] for e in bundle["entry"]]
    assert etags == ['W/"4"', 'W/"3"', 'W/"2"', 'W/"1"']
    assert all(e["fullUrl"] == f"{BASE}/Patient/hist-1" for e in bundle["entry"])
    assert [e["request"]["method"] for e in bundle["entry"]] == ["DELETE", "PUT", "PUT", "PUT"]
    assert "resource" not in bundle["entry"][0]
    assert [e["resource"]["gender"] for e in bundle["entry"][1:]] == ["other", "female", "male"]
    assert [e["resource"]["meta"]["versionId"] for e in bundle["entry"][1:]] == ["3", "2", "1"]
    assert bundle["entry"][-1]["response"]["status"].startswith("201")
    for e in bundle["entry"]:
        assert e["response"]["lastModified"]


def test_instance_history_of_unknown_resource_is_404(client: TestClient) -> None:
    outcome(client.get("/fhir/Patient/nobody/_history"), 404, "not-found")


def test_type_and_system_history(client: TestClient) -> None:
    put(client, "Patient", "p1")
    put(client, "Patient", "p1", gender="male")
    put(client, "Patient", "p2")
    org = client.post("/fhir/Organization", json={"resourceType": "Organization", "name": "BV"}).json()
    patients = client.get("/fhir/Patient/_history").json()
    assert patients["type"] == "history"
    assert patients["total"] == 3
    assert {version_key(e) for e in patients["entry"]} == {
        (f"{BASE}/Patient/p1", 'W/"1"'),
        (f"{BASE}/Patient/p1", 'W/"2"'),
        (f"{BASE}/Patient/p2", 'W/"1"'),
    }
    everything = client.get("/fhir/_history").json()
    assert everything["type"] == "history"
    assert everything["total"] == 4
    assert (f"{BASE}/Organization/{org['id']}", 'W/"1"') in {version_key(e) for e in everything["entry"]}
    create_entry = next(e for e in everything["entry"] if e["fullUrl"].endswith(org["id"]))
    assert create_entry["request"]["method"] == "POST"
    modified = [e["response"]["lastModified"] for e in everything["entry"]]
    assert modified == sorted(modified, reverse=True)
    assert client.get("/fhir/Encounter/_history").json()["total"] == 0


def test_history_paging_follows_next_until_the_end(client: TestClient) -> None:
    expected = set()
    for n in range(7):
        put(client, "Patient", f"page-{n}")
        expected.add((f"{BASE}/Patient/page-{n}", 'W/"1"'))
        if n % 2 == 0:
            put(client, "Patient", f"page-{n}", gender="female")
            expected.add((f"{BASE}/Patient/page-{n}", 'W/"2"'))
    for url in (f"{BASE}/Patient/_history?_count=3", f"{BASE}/_history?_count=3"):
        pages, entries = follow(client, url)
        assert len(pages) == 4  # 11 versions in pages of 3
        assert all(len(p.get("entry", [])) == 3 for p in pages[:-1])
        assert all(p["total"] == 11 for p in pages)
        keys = [version_key(e) for e in entries]
        assert len(keys) == len(set(keys)), "a version appeared on two pages"
        assert set(keys) == expected
    pages, entries = follow(client, f"{BASE}/Patient/page-0/_history?_count=1")
    assert [e["response"]["etag"] for e in entries] == ['W/"2"', 'W/"1"']


def test_history_pages_are_stable_while_writes_go_on(client: TestClient) -> None:
    for n in range(4):
        put(client, "Patient", f"stable-{n}")
    first = client.get("/fhir/_history", params={"_count": "2"}).json()
    put(client, "Patient", "stable-new")
    put(client, "Patient", "stable-0", gender="male")
    _, rest = follow(client, next(link["url"] for link in first["link"] if link["relation"] == "next"))
    keys = [version_key(e) for e in first["entry"] + rest]
    assert len(keys) == len(set(keys)) == 4
    assert {k[0] for k in keys} == {f"{BASE}/Patient/stable-{n}" for n in range(4)}


def test_history_count_zero_gives_total_only(client: TestClient) -> None:
    put(client, "Patient", "c0")
    bundle = client.get("/fhir/_history", params={"_count": "0"}).json()
    assert bundle["total"] == 1
    assert bundle.get("entry", []) == []


def test_history_since(client: TestClient) -> None:
    old = put(client, "Patient", "since-old")
    new = put(client, "Patient", "since-new")
    later = put(client, "Patient", "since-old", gender="male")
    since = new["meta"]["lastUpdated"]
    assert old["meta"]["lastUpdated"] < since
    bundle = client.get("/fhir/_history", params={"_since": since}).json()
    keys = {version_key(e) for e in bundle["entry"]}
    assert keys == {(f"{BASE}/Patient/since-new", 'W/"1"'), (f"{BASE}/Patient/since-old", 'W/"2"')}
    assert bundle["total"] == 2
    inst = client.get("/fhir/Patient/since-old/_history", params={"_since": since}).json()
    assert [e["resource"]["meta"]["versionId"] for e in inst["entry"]] == [later["meta"]["versionId"]]
    # _since is kept in the paging links.
    _, entries = follow(client, f"{BASE}/_history?_count=1&_since={since.replace('+', '%2B')}")
    assert {version_key(e) for e in entries} == keys
    future = client.get("/fhir/_history", params={"_since": "2999-01-01T00:00:00Z"}).json()
    assert future["total"] == 0
    # A timezone offset is honoured: the same instant written with +07:00.
    everything = client.get("/fhir/_history", params={"_since": "1970-01-01T07:00:00+07:00"}).json()
    assert everything["total"] == 3


def test_history_bad_parameters(client: TestClient) -> None:
    outcome(client.get("/fhir/_history", params={"_since": "yesterday"}), 400, "invalid")
    outcome(client.get("/fhir/_history", params={"_count": "-1"}), 400, "invalid")
    outcome(client.get("/fhir/_history", params={"_count": "ten"}), 400, "invalid")
    outcome(client.get("/fhir/NoSuchType/_history"), 404, "not-found")
