"""Patient/$everything (R4 patient-operation-everything) over loaded Synthea patients, on both databases.

The expected result is computed from the bundle content alone: the patient compartment (R4
CompartmentDefinition/patient, with the element paths of its search parameters) plus every
resource those members reference.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient

from .conftest import outcome
from .test_transaction import FHIR_JSON, load_synthea, location_id, post, references

PATIENT_FILES = (
    "Dwain_McGlynn_7515d14b-843b-4210-8b6b-a33ab253d560.json.gz",
    "Wm_Bergstrom_c536dee9-9ef6-4807-ae20-9f1045c9c7d6.json.gz",
    "Fannie_Waelchi_8666cd40-7af9-48c6-a1a6-86a161195542.json.gz",
    "Myles_Hoppe_3cbdd43e-7cb5-48b0-a097-47fecc7b4098.json.gz",
)
OTHER_FILES = (
    "hospitalInformation1588766256867.json.gz",
    "practitionerInformation1588766256867.json.gz",
)
MUTATED = PATIENT_FILES[3]  # the _since test changes one of its Observations

# R4 CompartmentDefinition/patient: the element paths of the parameters that make a resource of
# each type a member (types of the Synthea material, plus Group). Types not listed are no members.
COMPARTMENT_PATHS: dict[str, tuple[str, ...]] = {
    "Patient": ("link.other",),
    "AllergyIntolerance": ("patient", "recorder", "asserter"),
    "CarePlan": ("subject", "activity.detail.performer"),
    "CareTeam": ("subject", "participant.member"),
    "Claim": ("patient", "payee.party"),
    "Condition": ("subject", "asserter"),
    "DiagnosticReport": ("subject",),
    "Encounter": ("subject",),
    "ExplanationOfBenefit": ("patient", "payee.party"),
    "Group": ("member.entity",),
    "ImagingStudy": ("subject",),
    "Immunization": ("patient",),
    "MedicationRequest": ("subject",),
    "Observation": ("subject", "performer"),
    "Procedure": ("subject", "performer.actor"),
}


def values_at(resource: dict[str, Any], path: str) -> list[Any]:
    """The values at a dotted element path (arrays are walked)."""
    nodes: list[Any] = [resource]
    for name in path.split("."):
        nxt: list[Any] = []
        for node in nodes:
            value = node.get(name) if isinstance(node, dict) else None
            if isinstance(value, list):
                nxt.extend(value)
            elif value is not None:
                nxt.append(value)
        nodes = nxt
    return nodes


def in_compartment(resource: dict[str, Any], patient_refs: set[str]) -> bool:
    """Whether the resource is in the compartment of the patient named by any of `patient_refs`."""
    for path in COMPARTMENT_PATHS.get(resource["resourceType"], ()):
        for value in values_at(resource, path):
            if isinstance(value, dict) and value.get("reference") in patient_refs:
                return True
    return False


@dataclass(frozen=True)
class Loaded:
    """One Synthea patient bundle as loaded: the server ids and the expected $everything."""

    name: str
    patient_id: str
    by_full_url: dict[str, str]  # fullUrl -> Type/id on the server
    resources: dict[str, dict[str, Any]]  # Type/id -> resource as submitted
    compartment: frozenset[str]  # Type/id
    everything: frozenset[str]  # Type/id: compartment plus what it references


def expected_everything(doc: dict[str, Any], by_full_url: dict[str, str]) -> tuple[set[str], set[str]]:
    """(compartment, compartment + referenced) of the bundle's Patient, as server Type/ids."""
    (p_entry,) = [e for e in doc["entry"] if e["resource"]["resourceType"] == "Patient"]
    patient_refs = {p_entry["fullUrl"]}
    members = {p_entry["fullUrl"]}
    for e in doc["entry"]:
        if in_compartment(e["resource"], patient_refs):
            members.add(e["fullUrl"])
    result = set(members)
    for e in doc["entry"]:
        if e["fullUrl"] in members:
            for ref in references(e["resource"]):
                if not ref.startswith("#"):
                    assert ref in by_full_url, ref  # every reference of the material resolves in its bundle
                    result.add(ref)
    return {by_full_url[u] for u in members}, {by_full_url[u] for u in result}


def load_bundle(client: TestClient, name: str) -> tuple[dict[str, Any], dict[str, str]]:
    """POST one Synthea bundle; returns it and its fullUrl -> Type/id map."""
    doc = load_synthea(name)
    resp = post(client, doc)
    assert resp.status_code == 200, (name, resp.text[:1000])
    mapping = {}
    for req, res in zip(doc["entry"], resp.json()["entry"], strict=True):
        rtype = req["resource"]["resourceType"]
        mapping[req["fullUrl"]] = f"{rtype}/{location_id(res, rtype)}"
    return doc, mapping


def load_patients(client: TestClient, names: tuple[str, ...]) -> dict[str, Loaded]:
    """Load patient bundles and compute what $everything should answer for each."""
    out = {}
    for name in names:
        doc, mapping = load_bundle(client, name)
        compartment, everything = expected_everything(doc, mapping)
        (pid,) = [v.split("/")[1] for v in mapping.values() if v.startswith("Patient/")]
        resources = {mapping[e["fullUrl"]]: e["resource"] for e in doc["entry"]}
        out[name] = Loaded(name, pid, mapping, resources, frozenset(compartment), frozenset(everything))
    return out


@pytest.fixture(scope="module")
def loaded(module_client: TestClient) -> dict[str, Loaded]:
    """The patients of PATIENT_FILES plus the unreferenced Organization/Practitioner bundles."""
    patients = load_patients(module_client, PATIENT_FILES)
    for name in OTHER_FILES:
        load_bundle(module_client, name)
    return patients


def local(url: str) -> str:
    """An absolute link of the server as a path for the test client."""
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def pages(client: TestClient, url: str, params: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Every page of a searchset, following next links."""
    resp = client.get(url, params=params, headers=FHIR_JSON)
    assert resp.status_code == 200, resp.text[:1000]
    out = [resp.json()]
    while True:
        nxt = [link["url"] for link in out[-1].get("link", []) if link["relation"] == "next"]
        if not nxt:
            return out
        assert len(out) < 1000, "next links do not end"
        resp = client.get(local(nxt[0]), headers=FHIR_JSON)
        assert resp.status_code == 200, resp.text[:1000]
        out.append(resp.json())


def ids_of(page_list: list[dict[str, Any]]) -> list[str]:
    """Type/id of every entry of the pages, in order (duplicates kept)."""
    out = []
    for page in page_list:
        assert page["resourceType"] == "Bundle"
        assert page["type"] == "searchset"
        for e in page.get("entry", []):
            res = e["resource"]
            out.append(f"{res['resourceType']}/{res['id']}")
    return out


def everything_ids(client: TestClient, pid: str, **params: str) -> list[str]:
    """All entries of Patient/{pid}/$everything (every page)."""
    return ids_of(pages(client, f"/fhir/Patient/{pid}/$everything", params))


# ---- the result set ------------------------------------------------------------------------------


def test_the_material_is_what_the_expectations_assume(loaded: dict[str, Loaded]) -> None:
    for p in loaded.values():
        # Organizations and Practitioners are no compartment members but are in the result.
        types = {ref.split("/")[0] for ref in p.everything - p.compartment}
        assert types, p.name
        assert types <= {"Organization", "Practitioner"}, (p.name, types)
        assert any(ref.startswith("Observation/") for ref in p.compartment)
        devices = {ref for ref in p.resources if ref.startswith("Device/")}
        assert not devices & p.everything  # Device is no member of the R4 Patient compartment


@pytest.mark.parametrize("name", PATIENT_FILES)
def test_everything_is_the_compartment_plus_what_it_references(
    module_client: TestClient, loaded: dict[str, Loaded], name: str
) -> None:
    p = loaded[name]
    found = everything_ids(module_client, p.patient_id)
    assert len(found) == len(set(found)), "duplicates in $everything"
    assert set(found) - p.everything == set(), "resources that do not belong to this patient"
    assert p.everything - set(found) == set(), "resources missing"
    assert found[0] == f"Patient/{p.patient_id}"


def test_everything_answers_current_resources_with_their_content(
    module_client: TestClient, loaded: dict[str, Loaded]
) -> None:
    p = loaded[PATIENT_FILES[2]]
    (page,) = pages(module_client, f"/fhir/Patient/{p.patient_id}/$everything")
    assert page["total"] == len(p.everything)
    for e in page["entry"]:
        res = e["resource"]
        ref = f"{res['resourceType']}/{res['id']}"
        assert e["fullUrl"].endswith(ref)
        assert e["search"]["mode"] in ("match", "include")
        submitted = p.resources[ref]
        for key in ("status", "code", "name", "identifier", "effectiveDateTime"):
            assert res.get(key) == submitted.get(key), (ref, key)
        for r in references(res):
            assert not r.startswith("urn:"), r


def test_type_level_everything_with_ids_is_the_union(
    module_client: TestClient, loaded: dict[str, Loaded]
) -> None:
    a, b = loaded[PATIENT_FILES[0]], loaded[PATIENT_FILES[1]]
    one = ids_of(pages(module_client, "/fhir/Patient/$everything", {"_id": a.patient_id}))
    assert set(one) == a.everything
    both = ids_of(
        pages(module_client, "/fhir/Patient/$everything", {"_id": f"{a.patient_id},{b.patient_id}"})
    )
    assert len(both) == len(set(both))
    assert set(both) == a.everything | b.everything


def test_type_filters_the_result(module_client: TestClient, loaded: dict[str, Loaded]) -> None:
    p = loaded[PATIENT_FILES[0]]
    for types in ("Observation", "Observation,Encounter", "Patient", "Organization,Practitioner", "Device"):
        wanted = set(types.split(","))
        found = everything_ids(module_client, p.patient_id, _type=types)
        assert len(found) == len(set(found))
        assert set(found) == {ref for ref in p.everything if ref.split("/")[0] in wanted}, types


@pytest.mark.parametrize("count", ["1", "7", "50"])
def test_count_pages_through_the_whole_result(
    module_client: TestClient, loaded: dict[str, Loaded], count: str
) -> None:
    p = loaded[PATIENT_FILES[0]]
    all_pages = pages(module_client, f"/fhir/Patient/{p.patient_id}/$everything", {"_count": count})
    assert len(all_pages) == -(-len(p.everything) // int(count))
    found = ids_of(all_pages)
    assert len(found) == len(set(found)), "a resource on two pages"
    assert set(found) == p.everything
    for page in all_pages:
        assert len(page.get("entry", [])) <= int(count)
        if "total" in page:
            assert page["total"] == len(p.everything)
    # previous links lead back to the same pages
    last = all_pages[-1]
    if len(all_pages) > 1:
        (prev,) = [link["url"] for link in last["link"] if link["relation"] == "previous"]
        back = module_client.get(local(prev), headers=FHIR_JSON).json()
        assert ids_of([back]) == ids_of([all_pages[-2]])


def test_count_and_type_together(module_client: TestClient, loaded: dict[str, Loaded]) -> None:
    p = loaded[PATIENT_FILES[1]]
    found = everything_ids(module_client, p.patient_id, _type="Observation,Claim", _count="5")
    assert len(found) == len(set(found))
    assert set(found) == {r for r in p.everything if r.split("/")[0] in ("Observation", "Claim")}


def test_since_returns_only_what_changed(module_client: TestClient, loaded: dict[str, Loaded]) -> None:
    p = loaded[MUTATED]
    obs_ref = sorted(r for r in p.compartment if r.startswith("Observation/"))[0]
    time.sleep(0.01)
    since = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    time.sleep(0.01)
    assert everything_ids(module_client, p.patient_id, _since=since) == []
    doc = module_client.get(f"/fhir/{obs_ref}", headers=FHIR_JSON).json()
    doc["status"] = "amended"
    resp = module_client.put(f"/fhir/{obs_ref}", content=json.dumps(doc), headers=FHIR_JSON)
    assert resp.status_code == 200, resp.text
    assert everything_ids(module_client, p.patient_id, _since=since) == [obs_ref]
    assert everything_ids(module_client, p.patient_id, _since=since, _type="Observation") == [obs_ref]
    assert everything_ids(module_client, p.patient_id, _since=since, _type="Encounter") == []
    # without _since the result is unchanged
    assert set(everything_ids(module_client, p.patient_id)) == p.everything


def test_a_resource_in_two_compartments_is_in_both_and_names_no_other_patient(
    module_client: TestClient,
) -> None:
    """A Group is in the compartment of each member; it references the others, whose records stay out."""
    for pid in ("two-a", "two-b", "two-c"):
        body = {"resourceType": "Patient", "id": pid, "name": [{"family": pid}]}
        assert module_client.put(
            f"/fhir/Patient/{pid}", content=json.dumps(body), headers=FHIR_JSON
        ).is_success
    group = {
        "resourceType": "Group",
        "id": "two-group",
        "type": "person",
        "actual": True,
        "member": [{"entity": {"reference": f"Patient/{p}"}} for p in ("two-a", "two-b")],
    }
    assert module_client.put("/fhir/Group/two-group", content=json.dumps(group), headers=FHIR_JSON).is_success
    assert sorted(everything_ids(module_client, "two-a")) == ["Group/two-group", "Patient/two-a"]
    assert sorted(everything_ids(module_client, "two-b")) == ["Group/two-group", "Patient/two-b"]
    assert everything_ids(module_client, "two-c") == ["Patient/two-c"]
    both = ids_of(pages(module_client, "/fhir/Patient/$everything", {"_id": "two-a,two-b"}))
    assert sorted(both) == ["Group/two-group", "Patient/two-a", "Patient/two-b"]


# ---- errors ----------------------------------------------------------------------------------------


def test_unknown_patient_is_404(module_client: TestClient, loaded: dict[str, Loaded]) -> None:
    outcome(module_client.get("/fhir/Patient/no-such-patient/$everything", headers=FHIR_JSON), 404)
    outcome(module_client.get("/fhir/Patient/$everything?_id=no-such-patient", headers=FHIR_JSON), 404)
    known = loaded[PATIENT_FILES[0]].patient_id
    outcome(
        module_client.get(f"/fhir/Patient/$everything?_id={known},no-such-patient", headers=FHIR_JSON), 404
    )


def test_an_organization_id_is_no_patient(module_client: TestClient, loaded: dict[str, Loaded]) -> None:
    org = sorted(r for r in loaded[PATIENT_FILES[0]].everything if r.startswith("Organization/"))[0]
    outcome(module_client.get(f"/fhir/Patient/{org.split('/')[1]}/$everything", headers=FHIR_JSON), 404)


def test_deleted_patient_is_gone(module_client: TestClient) -> None:
    body = {"resourceType": "Patient", "id": "everything-deleted", "name": [{"family": "Gone"}]}
    assert module_client.put(
        "/fhir/Patient/everything-deleted", content=json.dumps(body), headers=FHIR_JSON
    ).is_success
    assert module_client.delete("/fhir/Patient/everything-deleted").is_success
    outcome(module_client.get("/fhir/Patient/everything-deleted/$everything", headers=FHIR_JSON), {404, 410})


@pytest.mark.parametrize(
    "query",
    ["_type=NotAType", "_type=Observation,Obsrvation", "_since=yesterday", "_since=2024-13-45T00:00:00Z"],
)
def test_bad_parameters_are_400(module_client: TestClient, loaded: dict[str, Loaded], query: str) -> None:
    pid = loaded[PATIENT_FILES[0]].patient_id
    outcome(module_client.get(f"/fhir/Patient/{pid}/$everything?{query}", headers=FHIR_JSON), 400)


def test_type_level_everything_needs_ids(module_client: TestClient) -> None:
    outcome(module_client.get("/fhir/Patient/$everything", headers=FHIR_JSON), 400)
