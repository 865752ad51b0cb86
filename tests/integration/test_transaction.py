"""Transaction and batch bundles (FHIR R4 http.html#transaction, #trules, #brules) on both databases."""

from __future__ import annotations

import base64
import gzip
import json
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from healthbook.auth.subject import Caller
from healthbook.fhir.router import Services
from healthbook.fhir.transaction import BundleProcessor

from .conftest import TableCounts, outcome

SYNTHEA = Path(__file__).resolve().parents[3] / "shared" / "test-material" / "synthea-100"
FHIR_JSON = {"content-type": "application/fhir+json", "accept": "application/fhir+json"}
SYS = "urn:healthbook:tx-test"
SMALL_BUNDLE = "Dwain_McGlynn_7515d14b-843b-4210-8b6b-a33ab253d560.json.gz"  # 96 entries

# The totals of all 102 transaction bundles of the test material (SOURCES.md).
SYNTHEA_COUNTS = {
    "Observation": 16315,
    "Claim": 6083,
    "Encounter": 3697,
    "ExplanationOfBenefit": 3697,
    "MedicationRequest": 2386,
    "Procedure": 2351,
    "Immunization": 1287,
    "DiagnosticReport": 897,
    "Condition": 639,
    "Organization": 452,
    "Practitioner": 452,
    "CareTeam": 278,
    "CarePlan": 278,
    "Patient": 100,
    "AllergyIntolerance": 38,
    "ImagingStudy": 16,
    "Device": 4,
}


# ---- helpers ---------------------------------------------------------------------------------


def synthea_bundles() -> Iterator[tuple[str, dict[str, Any]]]:
    """(file name, parsed Bundle) of every transaction bundle of the Synthea material, by file name."""
    for path in sorted(SYNTHEA.glob("*.json.gz")):
        doc = json.loads(gzip.decompress(path.read_bytes()))
        if doc.get("resourceType") == "Bundle":
            yield path.name, doc


def load_synthea(name: str) -> dict[str, Any]:
    """One Synthea file, parsed."""
    doc: dict[str, Any] = json.loads(gzip.decompress((SYNTHEA / name).read_bytes()))
    return doc


def post(client: TestClient, body: Any) -> Any:
    """POST a body to the base URL; returns the httpx response."""
    return client.post("/fhir", content=json.dumps(body), headers=FHIR_JSON)


def bundle(kind: str, *entries: dict[str, Any]) -> dict[str, Any]:
    """A transaction or batch Bundle."""
    return {"resourceType": "Bundle", "type": kind, "entry": list(entries)}


def entry(
    method: str, url: str, resource: dict[str, Any] | None = None, full_url: str | None = None, **request: str
) -> dict[str, Any]:
    """One Bundle.entry with its request."""
    out: dict[str, Any] = {"request": {"method": method, "url": url, **request}}
    if resource is not None:
        out["resource"] = resource
    if full_url is not None:
        out["fullUrl"] = full_url
    return out


def patient(value: str, *, family: str = "Tx", res_id: str | None = None) -> dict[str, Any]:
    """A valid Patient with one identifier in our test system."""
    doc: dict[str, Any] = {
        "resourceType": "Patient",
        "identifier": [{"system": SYS, "value": value}],
        "name": [{"family": family, "given": ["Test"]}],
    }
    if res_id is not None:
        doc["id"] = res_id
    return doc


def observation(subject: str, code: str = "8302-2") -> dict[str, Any]:
    """A valid Observation about `subject` (a reference string)."""
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
        "subject": {"reference": subject},
        "valueQuantity": {"value": 170, "unit": "cm", "system": "http://unitsofmeasure.org", "code": "cm"},
    }


def urn() -> str:
    """A fresh urn:uuid fullUrl."""
    return f"urn:uuid:{uuid.uuid4()}"


def ok_transaction(
    client: TestClient, body: dict[str, Any], kind: str = "transaction"
) -> list[dict[str, Any]]:
    """Send a bundle that must succeed; returns its response entries."""
    resp = post(client, body)
    assert resp.status_code == 200, resp.text[:2000]
    assert resp.headers["content-type"].startswith("application/fhir+json")
    out = resp.json()
    assert out["resourceType"] == "Bundle"
    assert out["type"] == f"{kind}-response"
    assert len(out["entry"]) == len(body["entry"])
    entries: list[dict[str, Any]] = out["entry"]
    return entries


def status_code(item: dict[str, Any]) -> int:
    """The numeric HTTP status of a response entry ('201 Created' -> 201)."""
    return int(str(item["response"]["status"]).split()[0])


def location_id(item: dict[str, Any], res_type: str) -> str:
    """The id of a response entry's location Type/id/_history/v (relative or absolute)."""
    loc = str(item["response"]["location"])
    parts = loc.split("/")
    i = len(parts) - 1 - parts[::-1].index(res_type)
    return parts[i + 1]


def read(client: TestClient, ref: str) -> dict[str, Any]:
    """GET Type/id, which must exist."""
    resp = client.get(f"/fhir/{ref}", headers=FHIR_JSON)
    assert resp.status_code == 200, (ref, resp.status_code, resp.text[:500])
    doc: dict[str, Any] = resp.json()
    return doc


def total(client: TestClient, query: str) -> int:
    """Search total of `Type?params` (with _summary=count)."""
    sep = "&" if "?" in query else "?"
    resp = client.get(f"/fhir/{query}{sep}_summary=count", headers=FHIR_JSON)
    assert resp.status_code == 200, (query, resp.text[:500])
    return int(resp.json()["total"])


def references(value: Any) -> list[str]:
    """Every Reference.reference string in a resource (contained resources included)."""
    found: list[str] = []
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if isinstance(node.get("reference"), str):
                found.append(node["reference"])
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return found


def rewrite(value: Any, mapping: dict[str, str]) -> Any:
    """A copy of `value` with every reference in `mapping` replaced."""
    if isinstance(value, dict):
        out = {k: rewrite(v, mapping) for k, v in value.items()}
        ref = out.get("reference")
        if isinstance(ref, str) and ref in mapping:
            out["reference"] = mapping[ref]
        return out
    if isinstance(value, list):
        return [rewrite(v, mapping) for v in value]
    return value


def without_server_fields(doc: dict[str, Any]) -> dict[str, Any]:
    """A resource without id and meta.versionId/lastUpdated (what the server assigns)."""
    out = {k: v for k, v in doc.items() if k != "id"}
    meta = {k: v for k, v in (out.pop("meta", None) or {}).items() if k not in ("versionId", "lastUpdated")}
    if meta:
        out["meta"] = meta
    return out


def issue_expressions(body: dict[str, Any]) -> list[str]:
    """All expression strings of an OperationOutcome."""
    return [e for issue in body["issue"] for e in issue.get("expression", [])]


def assert_names_entry(body: dict[str, Any], index: int) -> None:
    """The OperationOutcome points at Bundle.entry[index] (in expression), and at no other entry."""
    expressions = issue_expressions(body)
    assert expressions, body
    assert any(
        e == f"Bundle.entry[{index}]" or e.startswith(f"Bundle.entry[{index}].") for e in expressions
    ), body
    assert not any(
        e.startswith("Bundle.entry[") and not e.startswith(f"Bundle.entry[{index}]") for e in expressions
    )


# ---- the Synthea material --------------------------------------------------------------------


@pytest.mark.slow
def test_every_synthea_bundle_loads_and_the_counts_match(client: TestClient) -> None:
    expected: Counter[str] = Counter()
    loaded = 0
    for name, doc in synthea_bundles():
        resp = post(client, doc)
        assert resp.status_code == 200, (name, resp.text[:1000])
        out = resp.json()
        assert out["type"] == "transaction-response", name
        assert len(out["entry"]) == len(doc["entry"]), name
        for req, res in zip(doc["entry"], out["entry"], strict=True):
            rtype = req["resource"]["resourceType"]
            expected[rtype] += 1
            assert status_code(res) == 201, (name, res)
            assert res["response"]["location"].split("/")[-4] == rtype, res
            assert res["response"]["location"].endswith("/_history/1"), res
            assert res["response"]["etag"] == 'W/"1"', res
        loaded += 1
    assert loaded == 102
    assert dict(expected) == SYNTHEA_COUNTS  # the material is what SOURCES.md says
    assert sum(expected.values()) == 38970
    stored = {rtype: total(client, rtype) for rtype in SYNTHEA_COUNTS}
    assert stored == SYNTHEA_COUNTS
    assert total(client, "Group") == 0


def test_urn_uuid_references_are_rewritten_to_the_created_ids(client: TestClient) -> None:
    doc = load_synthea(SMALL_BUNDLE)
    items = ok_transaction(client, doc)
    mapping: dict[str, str] = {}
    for req, res in zip(doc["entry"], items, strict=True):
        rtype = req["resource"]["resourceType"]
        assert status_code(res) == 201
        mapping[req["fullUrl"]] = f"{rtype}/{location_id(res, rtype)}"
    assert len(set(mapping.values())) == len(mapping)  # every entry got its own id
    (pid,) = [v.split("/")[1] for v in mapping.values() if v.startswith("Patient/")]
    observations = [e for e in doc["entry"] if e["resource"]["resourceType"] == "Observation"]
    assert observations
    for e in observations:
        stored = read(client, mapping[e["fullUrl"]])
        assert stored["subject"]["reference"] == f"Patient/{pid}"
    assert total(client, f"Observation?subject=Patient/{pid}") == len(observations)
    assert total(client, f"Observation?subject={pid}") == len(observations)
    # Every stored resource equals the submitted one with its urn:uuid references replaced.
    for e in doc["entry"]:
        stored = read(client, mapping[e["fullUrl"]])
        for ref in references(stored):
            assert not ref.startswith("urn:"), (mapping[e["fullUrl"]], ref)
            assert ref.startswith("#") or ref in mapping.values(), ref
        assert without_server_fields(stored) == without_server_fields(rewrite(e["resource"], mapping))


def test_references_in_extensions_and_contained_resources_are_rewritten(client: TestClient) -> None:
    p_url, o_url = urn(), urn()
    obs = observation(p_url)
    obs["extension"] = [{"url": "http://example.org/ext", "valueReference": {"reference": p_url}}]
    obs["contained"] = [
        {"resourceType": "Provenance", "id": "prov", "target": [{"reference": o_url}],
         "recorded": "2024-01-01T00:00:00Z", "agent": [{"who": {"reference": p_url}}]}
    ]  # fmt: skip
    items = ok_transaction(
        client,
        bundle(
            "transaction",
            entry("POST", "Patient", patient("ext"), p_url),
            entry("POST", "Observation", obs, o_url),
        ),
    )
    pid, oid = location_id(items[0], "Patient"), location_id(items[1], "Observation")
    stored = read(client, f"Observation/{oid}")
    assert stored["extension"][0]["valueReference"]["reference"] == f"Patient/{pid}"
    assert stored["contained"][0]["agent"][0]["who"]["reference"] == f"Patient/{pid}"
    assert stored["contained"][0]["target"][0]["reference"] == f"Observation/{oid}"


# ---- the response bundle -----------------------------------------------------------------------


def test_response_has_one_entry_per_request_in_request_order(client: TestClient) -> None:
    kept = ok_transaction(client, bundle("transaction", entry("POST", "Patient", patient("keep"))))
    kept_id = location_id(kept[0], "Patient")
    doomed = ok_transaction(client, bundle("transaction", entry("POST", "Patient", patient("doomed"))))
    doomed_id = location_id(doomed[0], "Patient")
    p_url = urn()
    body = bundle(
        "transaction",
        entry("GET", f"Patient/{kept_id}"),  # 0
        entry("PUT", f"Patient/{kept_id}", patient("keep", family="Changed", res_id=kept_id)),  # 1
        entry("POST", "Observation", observation(p_url)),  # 2
        entry("DELETE", f"Patient/{doomed_id}"),  # 3
        entry("PUT", "Patient/client-chosen-id", patient("client", res_id="client-chosen-id")),  # 4
        entry("POST", "Patient", patient("new"), p_url),  # 5
    )
    items = ok_transaction(client, body)
    codes = [status_code(i) for i in items]
    assert codes[3] in (200, 204), items[3]
    assert codes[:3] + codes[4:] == [200, 200, 201, 201, 201], codes
    # GET is processed after the PUT of the same resource: it sees version 2.
    assert items[0]["resource"]["name"][0]["family"] == "Changed"
    assert items[0]["resource"]["meta"]["versionId"] == "2"
    assert items[1]["response"]["location"].endswith(f"Patient/{kept_id}/_history/2")
    assert items[1]["response"]["etag"] == 'W/"2"'
    assert items[2]["response"]["location"].split("/")[-4] == "Observation"
    assert items[2]["response"]["etag"] == 'W/"1"'
    assert items[4]["response"]["location"].endswith("Patient/client-chosen-id/_history/1")
    assert items[4]["response"]["etag"] == 'W/"1"'
    new_id = location_id(items[5], "Patient")
    assert items[5]["response"]["etag"] == 'W/"1"'
    assert items[5]["fullUrl"] == p_url
    for i in (1, 2, 4, 5):
        assert "lastModified" in items[i]["response"], items[i]
    obs = read(client, f"Observation/{location_id(items[2], 'Observation')}")
    assert obs["subject"]["reference"] == f"Patient/{new_id}"
    assert client.get(f"/fhir/Patient/{doomed_id}").status_code == 410
    assert read(client, "Patient/client-chosen-id")["identifier"][0]["value"] == "client"


def test_processing_order_is_delete_post_put_get(client: TestClient) -> None:
    old = ok_transaction(client, bundle("transaction", entry("POST", "Patient", patient("order"))))
    old_id = location_id(old[0], "Patient")
    body = bundle(
        "transaction",
        entry(
            "GET", f"Patient?identifier={SYS}|order"
        ),  # 0: last, sees the POST and the PUT, not the deleted one
        entry("PUT", "Patient/order-put", patient("order", res_id="order-put")),  # 1
        entry("POST", "Patient", patient("order")),  # 2
        entry("DELETE", f"Patient/{old_id}"),  # 3
    )
    items = ok_transaction(client, body)
    codes = [status_code(i) for i in items]
    assert codes[:3] == [200, 201, 201], codes
    assert codes[3] in (200, 204), codes
    found = {
        e["resource"]["id"]
        for e in items[0]["resource"]["entry"]
        if e.get("search", {}).get("mode") == "match"
    }
    assert found == {"order-put", location_id(items[2], "Patient")}
    # The versions were written in the order DELETE, POST, PUT.
    times = [
        items[i]["response"]["lastModified"] for i in (3, 2, 1) if "lastModified" in items[i]["response"]
    ]
    assert times == sorted(times), times


def test_conditional_create_in_a_transaction_that_matches_reuses_the_existing_resource(
    client: TestClient,
) -> None:
    first = ok_transaction(client, bundle("transaction", entry("POST", "Patient", patient("cc"))))
    existing = location_id(first[0], "Patient")
    p_url = urn()
    items = ok_transaction(
        client,
        bundle(
            "transaction",
            entry(
                "POST", "Patient", patient("cc", family="Other"), p_url, ifNoneExist=f"identifier={SYS}|cc"
            ),
            entry("POST", "Observation", observation(p_url)),
        ),
    )
    assert status_code(items[0]) == 200
    assert location_id(items[0], "Patient") == existing
    assert status_code(items[1]) == 201
    obs = read(client, f"Observation/{location_id(items[1], 'Observation')}")
    assert obs["subject"]["reference"] == f"Patient/{existing}"
    assert total(client, "Patient") == 1
    assert read(client, f"Patient/{existing}")["name"][0]["family"] == "Tx"  # not modified
    assert read(client, f"Patient/{existing}")["meta"]["versionId"] == "1"


def test_conditional_create_in_a_transaction_without_a_match_creates(client: TestClient) -> None:
    p_url = urn()
    items = ok_transaction(
        client,
        bundle(
            "transaction",
            entry("POST", "Patient", patient("fresh"), p_url, ifNoneExist=f"identifier={SYS}|fresh"),
            entry("POST", "Observation", observation(p_url)),
        ),
    )
    assert [status_code(i) for i in items] == [201, 201]
    pid = location_id(items[0], "Patient")
    assert (
        read(client, f"Observation/{location_id(items[1], 'Observation')}")["subject"]["reference"]
        == f"Patient/{pid}"
    )
    assert total(client, f"Patient?identifier={SYS}|fresh") == 1


def test_conditional_create_after_a_delete_of_its_match_does_not_point_at_the_deleted_resource(
    client: TestClient,
) -> None:
    """DELETE is processed before POST: the ifNoneExist search must not find what the same bundle deletes."""
    first = ok_transaction(client, bundle("transaction", entry("POST", "Patient", patient("gone"))))
    old_id = location_id(first[0], "Patient")
    p_url = urn()
    resp = post(
        client,
        bundle(
            "transaction",
            entry("POST", "Patient", patient("gone"), p_url, ifNoneExist=f"identifier={SYS}|gone"),
            entry("POST", "Observation", observation(p_url)),
            entry("DELETE", f"Patient/{old_id}"),
        ),
    )
    if resp.status_code != 200:  # refusing the overlap is allowed (#trules): then nothing happened
        outcome(resp, {400, 409, 412, 422})
        assert read(client, f"Patient/{old_id}")["meta"]["versionId"] == "1"
        assert total(client, "Observation") == 0
        return
    items = resp.json()["entry"]
    assert status_code(items[0]) == 201
    pid = location_id(items[0], "Patient")
    assert pid != old_id
    obs = read(client, f"Observation/{location_id(items[1], 'Observation')}")
    assert obs["subject"]["reference"] == f"Patient/{pid}"
    read(client, f"Patient/{pid}")


def test_conditional_references_are_resolved(client: TestClient) -> None:
    first = ok_transaction(client, bundle("transaction", entry("POST", "Patient", patient("cref"))))
    pid = location_id(first[0], "Patient")
    items = ok_transaction(
        client,
        bundle(
            "transaction",
            entry("POST", "Observation", observation(f"Patient?identifier={SYS}|cref")),
            entry("POST", "Observation", observation(f"Patient?identifier={SYS}|cref", code="29463-7")),
        ),
    )
    for item in items:
        obs = read(client, f"Observation/{location_id(item, 'Observation')}")
        assert obs["subject"]["reference"] == f"Patient/{pid}"
    assert total(client, f"Observation?subject=Patient/{pid}") == 2


def test_conditional_update_in_a_transaction(client: TestClient) -> None:
    first = ok_transaction(client, bundle("transaction", entry("POST", "Patient", patient("cu"))))
    pid = location_id(first[0], "Patient")
    items = ok_transaction(
        client,
        bundle(
            "transaction",
            entry("PUT", f"Patient?identifier={SYS}|cu", patient("cu", family="Updated")),
            entry("PUT", f"Patient?identifier={SYS}|cu-new", patient("cu-new", family="Created")),
        ),
    )
    assert [status_code(i) for i in items] == [200, 201]
    assert location_id(items[0], "Patient") == pid
    assert items[0]["response"]["etag"] == 'W/"2"'
    updated = read(client, f"Patient/{pid}")
    assert updated["name"][0]["family"] == "Updated"
    assert updated["meta"]["versionId"] == "2"
    created = read(client, f"Patient/{location_id(items[1], 'Patient')}")
    assert created["name"][0]["family"] == "Created"
    assert total(client, "Patient") == 2


def test_conditional_update_and_delete_in_a_batch(client: TestClient) -> None:
    ok_transaction(
        client,
        bundle(
            "transaction", entry("POST", "Patient", patient("bcu")), entry("POST", "Patient", patient("bcd"))
        ),
    )
    items = ok_transaction(
        client,
        bundle(
            "batch",
            entry("PUT", f"Patient?identifier={SYS}|bcu", patient("bcu", family="Batch")),
            entry("DELETE", f"Patient?identifier={SYS}|bcd"),
        ),
        "batch",
    )
    assert [status_code(i) for i in items] == [200, 204]
    assert total(client, f"Patient?identifier={SYS}|bcd") == 0
    assert total(client, "Patient?family=Batch") == 1


def test_a_big_transaction_updates_moves_deletes_and_creates_records_by_id(client: TestClient) -> None:
    """The ids a transaction addresses are looked up together; every kind of write must still see them."""
    ok_transaction(client, bundle("transaction",
        entry("PUT", "Patient/tx-a", patient("tx-a", res_id="tx-a")),
        entry("PUT", "Patient/tx-b", patient("tx-b", res_id="tx-b")),
        *(entry("PUT", f"Observation/tx-obs-{i}", {**observation("Patient/tx-a"), "id": f"tx-obs-{i}"})
          for i in range(60)),
    ))  # fmt: skip
    entries = [
        entry("PUT", "Observation/tx-obs-0", {**observation("Patient/tx-a", "29463-7"), "id": "tx-obs-0"}),
        entry("PUT", "Observation/tx-obs-1", {**observation("Patient/tx-b"), "id": "tx-obs-1"}),  # moves
        entry("DELETE", "Observation/tx-obs-2"),
        entry(
            "PATCH",
            "Observation/tx-obs-3",
            json_patch([{"op": "replace", "path": "/status", "value": "amended"}]),
        ),
        entry("PUT", "Observation/tx-new", {**observation("Patient/tx-b"), "id": "tx-new"}),
        *(
            entry("PUT", f"Observation/tx-obs-{i}", {**observation("Patient/tx-b"), "id": f"tx-obs-{i}"})
            for i in range(4, 60)
        ),  # moved too, in bulk
    ]
    out = ok_transaction(client, bundle("transaction", *entries))
    statuses = [e["response"]["status"] for e in out]
    assert statuses[:5] == ["200 OK", "200 OK", "204 No Content", "200 OK", "201 Created"]
    assert set(statuses[5:]) == {"200 OK"}
    assert client.get("/fhir/Observation/tx-obs-0").json()["code"]["coding"][0]["code"] == "29463-7"
    assert client.get("/fhir/Observation/tx-obs-0").json()["meta"]["versionId"] == "2"
    assert client.get("/fhir/Observation/tx-obs-2").status_code == 410
    assert client.get("/fhir/Observation/tx-obs-3").json()["status"] == "amended"
    on_b = client.get("/fhir/Patient/tx-b/Observation?_count=100").json()
    assert {e["resource"]["id"] for e in on_b.get("entry", [])} == {
        "tx-obs-1", "tx-new", *(f"tx-obs-{i}" for i in range(4, 60))
    }  # fmt: skip
    on_a = client.get("/fhir/Patient/tx-a/Observation?_count=100").json()
    assert {e["resource"]["id"] for e in on_a.get("entry", [])} == {"tx-obs-0", "tx-obs-3"}
    again = ok_transaction(client, bundle("transaction",
        entry("PUT", "Observation/tx-obs-1", {**observation("Patient/tx-a"), "id": "tx-obs-1"})))  # fmt: skip
    assert again[0]["response"]["status"] == "200 OK"
    assert client.get("/fhir/Observation/tx-obs-1").json()["meta"]["versionId"] == "3"


@pytest.mark.parametrize("method", ["DELETE", "PATCH", "PUT"])
def test_a_record_moved_by_another_client_during_a_transaction_is_still_found(
    client: TestClient, services: Services, monkeypatch: pytest.MonkeyPatch, method: str
) -> None:
    """The ids a transaction addresses are looked up ahead; a concurrent move must not make them vanish."""
    if services.fhir.db.is_sqlite:
        pytest.skip("SQLite takes one writer at a time")
    ok_transaction(client, bundle("transaction",
        entry("PUT", "Patient/mv-a", patient("mv-a", res_id="mv-a")),
        entry("PUT", "Patient/mv-b", patient("mv-b", res_id="mv-b")),
        entry("PUT", "Observation/mv-x", {**observation("Patient/mv-a"), "id": "mv-x"})))  # fmt: skip
    original = BundleProcessor._rewrite_references
    moved: list[int] = []

    def rewrite(self: BundleProcessor, conn: Any, caller: Any, entries: Any, ids: Any) -> Any:
        if not moved:  # after the lookahead: another client moves the Observation to mv-b and commits
            moved.append(1)
            moving = {**observation("Patient/mv-b"), "id": "mv-x"}
            services.fhir.update(Caller.system("other-client"), "Observation", "mv-x", moving)
        return original(self, conn, caller, entries, ids)

    monkeypatch.setattr(BundleProcessor, "_rewrite_references", rewrite)
    if method == "DELETE":
        ok_transaction(client, bundle("transaction", entry("DELETE", "Observation/mv-x")))
        assert client.get("/fhir/Observation/mv-x").status_code == 410
    elif method == "PATCH":
        ops = [{"op": "replace", "path": "/status", "value": "amended"}]
        ok_transaction(client, bundle("transaction", entry("PATCH", "Observation/mv-x", json_patch(ops))))
        assert client.get("/fhir/Observation/mv-x").json()["status"] == "amended"
    else:
        body = {**observation("Patient/mv-b", "29463-7"), "id": "mv-x"}
        out = ok_transaction(client, bundle("transaction", entry("PUT", "Observation/mv-x", body)))
        assert out[0]["response"]["status"] == "200 OK"
        doc = client.get("/fhir/Observation/mv-x").json()
        assert doc["code"]["coding"][0]["code"] == "29463-7" and doc["meta"]["versionId"] == "3"


def test_prefer_minimal_leaves_the_resources_out(client: TestClient) -> None:
    resp = client.post(
        "/fhir",
        content=json.dumps(bundle("transaction", entry("POST", "Patient", patient("min")))),
        headers={**FHIR_JSON, "prefer": "return=minimal"},
    )
    assert resp.status_code == 200
    (item,) = resp.json()["entry"]
    assert status_code(item) == 201
    assert "resource" not in item
    assert item["response"]["location"]


# ---- all or nothing ----------------------------------------------------------------------------


def _bad_bundles(client: TestClient) -> dict[str, tuple[dict[str, Any], int]]:
    """Bundles with one bad entry (and good ones around it) -> (bundle, index of the bad entry)."""
    p_url = urn()
    good = [
        entry("POST", "Patient", patient("good"), p_url),
        entry("POST", "Observation", observation(p_url)),
        entry("PUT", "Patient/good-put", patient("good-put", res_id="good-put")),
        entry("DELETE", "Patient/victim"),
    ]

    def with_bad(bad: dict[str, Any], at: int = 2) -> tuple[dict[str, Any], int]:
        entries = [*good[:at], bad, *good[at:]]
        return bundle("transaction", *entries), at

    invalid = patient("bad")
    invalid["birthDate"] = "not-a-date"
    unknown_element = patient("bad")
    unknown_element["favouriteColour"] = "blue"
    dup_url = urn()
    return {
        "invalid resource": with_bad(entry("POST", "Patient", invalid)),
        "unknown element": with_bad(entry("POST", "Patient", unknown_element)),
        "wrong resourceType for the url": with_bad(entry("POST", "Observation", patient("bad"))),
        "unresolvable urn:uuid": with_bad(entry("POST", "Observation", observation(urn()))),
        "bad method": with_bad(entry("FETCH", "Patient", patient("bad"))),
        "no request": with_bad({"resource": patient("bad")}),
        "PUT id mismatch": with_bad(entry("PUT", "Patient/one-id", patient("bad", res_id="another-id"))),
        "PUT invalid id": with_bad(entry("PUT", "Patient/bad_id!", patient("bad", res_id="bad_id!"))),
        "unknown resource type": with_bad(entry("POST", "Patinet", {"resourceType": "Patinet"})),
        "conditional reference without match": with_bad(
            entry("POST", "Observation", observation(f"Patient?identifier={SYS}|nobody"))
        ),
        "conditional reference with two matches": with_bad(
            entry("POST", "Observation", observation(f"Patient?identifier={SYS}|twin"))
        ),
        "conditional create with two matches": with_bad(
            entry("POST", "Patient", patient("x"), ifNoneExist=f"identifier={SYS}|twin")
        ),
        "conditional update with two matches": with_bad(
            entry("PUT", f"Patient?identifier={SYS}|twin", patient("twin"))
        ),
        "duplicate fullUrl": (
            bundle(
                "transaction",
                entry("POST", "Patient", patient("d1"), dup_url),
                *good,
                entry("POST", "Patient", patient("d2"), dup_url),
            ),
            len(good) + 1,
        ),
        "two entries for one resource": with_bad(
            entry("PUT", "Patient/good-put", patient("again", res_id="good-put")), 4
        ),
        "failed If-Match": with_bad(
            entry("PUT", "Patient/twin-2", patient("twin", res_id="twin-2"), ifMatch='W/"7"')
        ),
        "PATCH of a missing resource": with_bad(
            entry(
                "PATCH",
                "Patient/nobody-here",
                json_patch([{"op": "replace", "path": "/active", "value": True}]),
            )
        ),
        "PATCH that does not apply": with_bad(
            entry("PATCH", "Patient/twin-2", json_patch([{"op": "remove", "path": "/photo/7"}]))
        ),
        "PATCH body not a Binary": with_bad(entry("PATCH", "Patient/twin-2", patient("x"))),
    }


def setup_bad_cases(client: TestClient) -> None:
    """Two patients sharing an identifier (for the "two matches" cases) and the victim of the good DELETE."""
    ok_transaction(
        client,
        bundle(
            "batch",
            entry("PUT", "Patient/twin-1", patient("twin", res_id="twin-1")),
            entry("PUT", "Patient/twin-2", patient("twin", res_id="twin-2")),
            entry("PUT", "Patient/victim", patient("victim", res_id="victim")),
        ),
        "batch",
    )


BAD_CASES = [
    "invalid resource",
    "unknown element",
    "wrong resourceType for the url",
    "unresolvable urn:uuid",
    "bad method",
    "no request",
    "PUT id mismatch",
    "PUT invalid id",
    "unknown resource type",
    "conditional reference without match",
    "conditional reference with two matches",
    "conditional create with two matches",
    "conditional update with two matches",
    "duplicate fullUrl",
    "two entries for one resource",
    "failed If-Match",
    "PATCH of a missing resource",
    "PATCH that does not apply",
    "PATCH body not a Binary",
]


@pytest.mark.parametrize("case", BAD_CASES)
def test_a_transaction_with_one_bad_entry_leaves_nothing_behind(
    client: TestClient, counts: Callable[[], TableCounts], case: str
) -> None:
    setup_bad_cases(client)
    cases = _bad_bundles(client)
    assert set(cases) == set(BAD_CASES)
    body, index = cases[case]
    before = counts()
    resp = post(client, body)
    out = outcome(resp, {400, 404, 409, 412, 422})
    assert counts() == before, "a failed transaction changed the database"
    assert_names_entry(out, index)
    assert read(client, "Patient/victim")["meta"]["versionId"] == "1"
    assert client.get("/fhir/Patient/good-put").status_code == 404


def test_the_same_transaction_without_the_bad_entry_succeeds(client: TestClient) -> None:
    """The control of the test above: the good entries on their own are fine."""
    setup_bad_cases(client)
    body, index = _bad_bundles(client)["invalid resource"]
    del body["entry"][index]
    items = ok_transaction(client, body)
    assert [status_code(i) for i in items] == [201, 201, 201, 204]


def test_a_failing_entry_late_in_a_big_transaction_rolls_back_everything(
    client: TestClient, counts: Callable[[], TableCounts]
) -> None:
    doc = load_synthea(SMALL_BUNDLE)
    bad = dict(doc["entry"][-1])
    bad["resource"] = {**bad["resource"], "status": "not-a-status"}
    bad["fullUrl"] = urn()
    doc["entry"].append(bad)
    before = counts()
    out = outcome(post(client, doc), {400, 422})
    assert counts() == before
    assert_names_entry(out, len(doc["entry"]) - 1)


def test_an_error_names_the_entry_even_inside_the_resource(client: TestClient) -> None:
    bad = patient("deep")
    bad["name"][0]["given"] = "not-an-array-of-strings-but-one"
    bad["gender"] = "sometimes"
    resp = post(
        client, bundle("transaction", entry("POST", "Patient", patient("a")), entry("POST", "Patient", bad))
    )
    out = outcome(resp, {400, 422})
    assert_names_entry(out, 1)
    assert any(e.startswith("Bundle.entry[1].resource") for e in issue_expressions(out)), out


# ---- batch ---------------------------------------------------------------------------------------


def test_batch_entries_are_independent(client: TestClient) -> None:
    invalid = patient("bad")
    invalid["birthDate"] = "not-a-date"
    items = ok_transaction(
        client,
        bundle(
            "batch",
            entry("POST", "Patient", patient("b1")),  # 0
            entry("POST", "Patient", invalid),  # 1 invalid
            entry("PUT", "Patient/batch-put", patient("b2", res_id="batch-put")),  # 2
            entry("PUT", "Patient/x", patient("b3", res_id="y")),  # 3 id mismatch
            entry("GET", "Patient/does-not-exist"),  # 4
            entry("DELETE", "Patient/never-there"),  # 5 deleting nothing is fine
            entry("POST", "Patinet", {"resourceType": "Patinet"}),  # 6
            entry("POST", "Patient", patient("b4")),  # 7
        ),
        "batch",
    )
    codes = [status_code(i) for i in items]
    assert [codes[0], codes[2], codes[7]] == [201, 201, 201], codes
    assert codes[5] in (200, 204), codes
    for i, allowed in ((1, {400, 422}), (3, {400}), (4, {404}), (6, {400, 404})):
        assert codes[i] in allowed, (i, items[i])
        oo = items[i]["response"]["outcome"]
        assert oo["resourceType"] == "OperationOutcome", items[i]
        assert oo["issue"][0]["severity"] in ("error", "fatal")
    assert_names_entry(items[1]["response"]["outcome"], 1)
    assert total(client, f"Patient?identifier={SYS}|b1") == 1
    assert total(client, f"Patient?identifier={SYS}|b4") == 1
    assert read(client, "Patient/batch-put")["identifier"][0]["value"] == "b2"
    assert total(client, "Patient") == 3


def test_batch_does_not_resolve_urn_uuid_between_entries(client: TestClient) -> None:
    """Batch entries may not depend on each other (#brules): a reference to another entry's fullUrl fails."""
    p_url = urn()
    resp = post(
        client,
        bundle(
            "batch",
            entry("POST", "Patient", patient("bu"), p_url),
            entry("POST", "Observation", observation(p_url)),
        ),
    )
    if resp.status_code == 200:
        items = resp.json()["entry"]
        assert status_code(items[1]) >= 400, items[1]
    else:
        outcome(resp, 400)
    assert total(client, "Observation") == 0


def test_get_entries_in_a_batch_and_a_transaction(client: TestClient) -> None:
    made = ok_transaction(
        client, bundle("transaction", entry("PUT", "Patient/reader", patient("reader", res_id="reader")))
    )
    assert status_code(made[0]) == 201
    for kind in ("batch", "transaction"):
        items = ok_transaction(
            client,
            bundle(
                kind,
                entry("GET", "Patient/reader"),
                entry("GET", f"Patient?identifier={SYS}|reader"),
                entry("GET", "Patient?identifier=urn:nothing|here"),
                entry("HEAD", "Patient/reader"),
            ),
            kind,
        )
        assert [status_code(i) for i in items] == [200, 200, 200, 200], items
        assert items[0]["resource"]["id"] == "reader"
        assert items[0]["response"]["etag"] == 'W/"1"'
        found = items[1]["resource"]
        assert found["resourceType"] == "Bundle"
        assert found["type"] == "searchset"
        assert [e["resource"]["id"] for e in found["entry"]] == ["reader"]
        assert items[2]["resource"]["type"] == "searchset"
        assert not items[2]["resource"].get("entry")
        assert "resource" not in items[3]
    items = ok_transaction(client, bundle("batch", entry("GET", "Patient/nobody")), "batch")
    assert status_code(items[0]) == 404
    assert items[0]["response"]["outcome"]["resourceType"] == "OperationOutcome"


# ---- PATCH ---------------------------------------------------------------------------------------


def json_patch(ops: list[dict[str, Any]]) -> dict[str, Any]:
    """A Binary carrying a JSON Patch document, as PATCH entries take it."""
    return {
        "resourceType": "Binary",
        "contentType": "application/json-patch+json",
        "data": base64.b64encode(json.dumps(ops).encode()).decode(),
    }


@pytest.mark.parametrize("kind", ["transaction", "batch"])
def test_patch_entries(client: TestClient, kind: str) -> None:
    ok_transaction(
        client, bundle("transaction", entry("PUT", "Patient/patchme", patient("patch", res_id="patchme")))
    )
    ops = [
        {"op": "replace", "path": "/name/0/family", "value": "Patched"},
        {"op": "add", "path": "/birthDate", "value": "1980-02-03"},
    ]
    items = ok_transaction(client, bundle(kind, entry("PATCH", "Patient/patchme", json_patch(ops))), kind)
    assert status_code(items[0]) == 200, items
    assert items[0]["response"]["etag"] == 'W/"2"'
    doc = read(client, "Patient/patchme")
    assert doc["name"][0]["family"] == "Patched"
    assert doc["birthDate"] == "1980-02-03"
    assert doc["identifier"] == [{"system": SYS, "value": "patch"}]
    assert doc["meta"]["versionId"] == "2"
    assert total(client, "Patient?family=Patched") == 1


def fhirpath_patch(*ops: list[dict[str, Any]]) -> dict[str, Any]:
    """A FHIRPath Patch Parameters; each op is its list of parts."""
    return {"resourceType": "Parameters", "parameter": [{"name": "operation", "part": p} for p in ops]}


def test_a_fhirpath_patch_entry_may_point_at_what_the_transaction_creates(client: TestClient) -> None:
    ok_transaction(
        client, bundle("transaction", entry("PUT", "Patient/fp-tx", patient("fptx", res_id="fp-tx")))
    )
    org = {"resourceType": "Organization", "name": "Trạm Y tế phường Bến Nghé"}
    add_org = [
        {"name": "type", "valueCode": "add"},
        {"name": "path", "valueString": "Patient"},
        {"name": "name", "valueString": "managingOrganization"},
        {"name": "value", "valueReference": {"reference": "urn:uuid:5a1e0c7e-0000-4000-8000-000000000001"}},
    ]
    rename = [
        {"name": "type", "valueCode": "replace"},
        {"name": "path", "valueString": "Patient.name[0].family"},
        {"name": "value", "valueString": "Đã sửa"},
    ]
    items = ok_transaction(
        client,
        bundle(
            "transaction",
            entry("PATCH", "Patient/fp-tx", fhirpath_patch(add_org, rename)),
            entry("POST", "Organization", org, full_url="urn:uuid:5a1e0c7e-0000-4000-8000-000000000001"),
        ),
    )
    assert status_code(items[0]) == 200, items
    org_id = items[1]["response"]["location"].split("/")[1]
    doc = read(client, "Patient/fp-tx")
    assert doc["managingOrganization"] == {"reference": f"Organization/{org_id}"}
    assert doc["name"][0]["family"] == "Đã sửa"
    assert total(client, f"Patient?organization=Organization/{org_id}") == 1


def test_a_fhirpath_patch_entry_that_does_not_fit_undoes_the_transaction(client: TestClient) -> None:
    ok_transaction(
        client, bundle("transaction", entry("PUT", "Patient/fp-tx2", patient("fptx2", res_id="fp-tx2")))
    )
    bad = [
        {"name": "type", "valueCode": "delete"},
        {"name": "path", "valueString": "Patient.name.given | Patient.identifier"},
    ]
    resp = client.post(
        "/fhir",
        json=bundle(
            "transaction",
            entry("POST", "Patient", patient("fptx3")),
            entry("PATCH", "Patient/fp-tx2", fhirpath_patch(bad)),
        ),
    )
    body = outcome(resp, 422)
    assert body["issue"][0]["expression"] == ["Bundle.entry[1].resource.parameter[0]"]
    assert total(client, f"Patient?identifier={SYS}|fptx3") == 0
    assert read(client, "Patient/fp-tx2")["meta"]["versionId"] == "1"


def test_a_failing_patch_in_a_batch_reports_and_the_rest_goes_on(client: TestClient) -> None:
    ok_transaction(
        client, bundle("transaction", entry("PUT", "Patient/patch2", patient("p2", res_id="patch2")))
    )
    items = ok_transaction(
        client,
        bundle(
            "batch",
            entry("PATCH", "Patient/patch2", json_patch([{"op": "remove", "path": "/photo/3"}])),
            entry(
                "PATCH",
                "Patient/patch2",
                {"resourceType": "Binary", "contentType": "text/plain", "data": "eA=="},
            ),
            entry(
                "PATCH",
                "Patient/patch2",
                json_patch([{"op": "replace", "path": "/active", "value": "maybe"}]),
            ),
            entry("PATCH", "Patient/patch2", json_patch([{"op": "add", "path": "/active", "value": True}])),
        ),
        "batch",
    )
    codes = [status_code(i) for i in items]
    assert all(c >= 400 for c in codes[:3]), items
    assert codes[3] == 200
    doc = read(client, "Patient/patch2")
    assert doc["active"] is True
    assert doc["meta"]["versionId"] == "2"


# ---- the envelope -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        patient("not-a-bundle"),
        {"resourceType": "Bundle", "type": "collection", "entry": [entry("POST", "Patient", patient("c"))]},
        {"resourceType": "Bundle", "type": "searchset", "entry": []},
        {"resourceType": "Bundle", "type": "transaction-response", "entry": []},
        {"resourceType": "Bundle", "type": "document", "entry": []},
        {"resourceType": "Bundle", "entry": [entry("POST", "Patient", patient("c"))]},
        {"resourceType": "Bundle", "type": "transaction", "entry": {"request": {"url": "Patient"}}},
        {"resourceType": "Bundle", "type": "batch", "entry": ["not an entry"]},
        [bundle("transaction")],
        "transaction",
    ],
    ids=[
        "patient", "collection", "searchset", "transaction-response", "document", "no type",
        "entry not array", "entry not object", "array", "string",
    ],
)  # fmt: skip
def test_anything_but_a_transaction_or_batch_bundle_is_400(
    client: TestClient, counts: Callable[[], TableCounts], body: Any
) -> None:
    before = counts()
    outcome(post(client, body), 400)
    assert counts() == before


def test_malformed_json_is_400(client: TestClient) -> None:
    resp = client.post(
        "/fhir", content=b'{"resourceType": "Bundle", "type": "transaction", "entry": [', headers=FHIR_JSON
    )
    outcome(resp, 400)


@pytest.mark.parametrize("kind", ["transaction", "batch"])
def test_an_empty_bundle_answers_an_empty_response(client: TestClient, kind: str) -> None:
    for body in (bundle(kind), {"resourceType": "Bundle", "type": kind, "entry": []}):
        resp = post(client, body)
        assert resp.status_code == 200, resp.text
        out = resp.json()
        assert out["type"] == f"{kind}-response"
        assert out.get("entry", []) == []
