"""The unmodified `fhirclient` package (SMART on FHIR Python client) against a real server process.

fhirclient has model methods for create, read, update, delete and search. It has no vread method:
the version read goes through the model's `read_from(path)` with a `_history` path, which is its public
way to read from an arbitrary REST path.
"""

from __future__ import annotations

import pytest
import requests
from fhirclient import client as fhir_client
from fhirclient.models.bundle import Bundle
from fhirclient.models.capabilitystatement import CapabilityStatement
from fhirclient.models.codeableconcept import CodeableConcept
from fhirclient.models.fhirdate import FHIRDate
from fhirclient.models.fhirreference import FHIRReference
from fhirclient.models.humanname import HumanName
from fhirclient.models.identifier import Identifier
from fhirclient.models.observation import Observation
from fhirclient.models.patient import Patient
from fhirclient.models.quantity import Quantity
from fhirclient.server import FHIRNotFoundException

from .conftest import ServerProcess

pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning"), pytest.mark.xdist_group("fhirclient")]


def smart_client(module_server: ServerProcess) -> fhir_client.FHIRClient:
    return fhir_client.FHIRClient(settings={"app_id": "healthbook-tests", "api_base": module_server.base})


def test_fhirclient_crud_cycle(module_server: ServerProcess) -> None:
    smart = smart_client(module_server)
    # The client parses our CapabilityStatement with its strict R4 models.
    smart.server.get_capability()
    cs = smart.server.capabilityStatement
    assert isinstance(cs, CapabilityStatement)
    assert cs.fhirVersion == "4.0.1"
    assert any(r.type == "Patient" for r in cs.rest[0].resource)

    # create
    p = Patient()
    p.identifier = [Identifier({"system": "urn:healthbook:test", "value": "fc-1"})]
    p.name = [HumanName({"family": "Nguyễn", "given": ["Văn", "An"]})]
    p.gender = "male"
    p.birthDate = FHIRDate("1980-06-01")
    created = p.create(smart.server)
    assert created is not None
    pid = created["id"]
    assert created["meta"]["versionId"] == "1"

    # read
    read = Patient.read(pid, smart.server)
    assert read.id == pid
    assert read.name[0].family == "Nguyễn"
    assert read.name[0].given == ["Văn", "An"]
    assert read.birthDate.isostring == "1980-06-01"
    assert read.meta.versionId == "1"

    # update
    read.gender = "female"
    read.name[0].family = "Trần"
    updated = read.update(smart.server)
    assert updated is not None
    assert updated["meta"]["versionId"] == "2"
    again = Patient.read(pid, smart.server)
    assert again.gender == "female"
    assert again.meta.versionId == "2"

    # version read (no vread API in fhirclient: read_from with the _history path)
    v1 = Patient.read_from(f"Patient/{pid}/_history/1", smart.server)
    assert v1.gender == "male"
    assert v1.name[0].family == "Nguyễn"
    assert v1.meta.versionId == "1"

    # search by _id, and by identifier
    other = Patient({"resourceType": "Patient", "gender": "other"}).create(smart.server)
    assert other is not None
    found = list(Patient.where(struct={"_id": pid}).perform_resources_iter(smart.server))
    assert [r.id for r in found] == [pid]
    by_identifier = list(
        Patient.where(struct={"identifier": "urn:healthbook:test|fc-1"}).perform_resources_iter(smart.server)
    )
    assert [r.id for r in by_identifier] == [pid]
    bundle = Patient.where(struct={"_id": pid}).perform(smart.server)
    assert isinstance(bundle, Bundle)
    assert bundle.type == "searchset"
    assert bundle.total == 1

    # delete, then read: 410 Gone (fhirclient raises requests' HTTPError for it)
    again.delete(smart.server)
    with pytest.raises(requests.HTTPError) as gone:
        Patient.read(pid, smart.server)
    assert gone.value.response.status_code == 410
    assert list(Patient.where(struct={"_id": pid}).perform_resources_iter(smart.server)) == []
    with pytest.raises(FHIRNotFoundException):
        Patient.read("never-existed", smart.server)


def test_fhirclient_pages_through_search_results(module_server: ServerProcess) -> None:
    smart = smart_client(module_server)
    ids = set()
    for n in range(7):
        created = Patient(
            {"resourceType": "Patient", "identifier": [{"system": "urn:pages", "value": str(n)}]}
        ).create(smart.server)
        assert created is not None
        ids.add(created["id"])
    search = Patient.where(struct={"identifier": "urn:pages|", "_count": "3"})
    pages = list(search.perform_iter(smart.server))
    assert len(pages) == 3
    assert {e.resource.id for b in pages for e in b.entry or []} == ids


def test_fhirclient_observation_with_decimal(module_server: ServerProcess) -> None:
    smart = smart_client(module_server)
    put = smart.server.put_json("Patient/fc-obs", {"resourceType": "Patient", "id": "fc-obs"})
    assert put.status_code in (200, 201)
    obs = Observation()
    obs.status = "final"
    obs.code = CodeableConcept(
        {"coding": [{"system": "http://loinc.org", "code": "8867-4"}], "text": "Heart rate"}
    )
    obs.subject = FHIRReference({"reference": "Patient/fc-obs"})
    obs.valueQuantity = Quantity(
        {"value": 72.5, "unit": "/min", "system": "http://unitsofmeasure.org", "code": "/min"}
    )
    created = obs.create(smart.server)
    assert created is not None
    read = Observation.read(created["id"], smart.server)
    assert read.valueQuantity.value == 72.5
    assert read.subject.reference == "Patient/fc-obs"
    found = list(Observation.where(struct={"subject": "Patient/fc-obs"}).perform_resources_iter(smart.server))
    assert [o.id for o in found] == [created["id"]]


def test_fhirpy_crud_cycle(module_server: ServerProcess) -> None:
    """fhirpy (not a project dependency: skipped unless installed) through the same cycle.

    fhirpy has no vread or history call: those go through its generic `execute`.
    Its `get_or_create` sends the criteria as URL parameters of the POST instead of If-None-Exist,
    which FHIR R4 does not define, so it is not used; conditional update and delete are.
    """
    fhirpy = pytest.importorskip("fhirpy")
    client = fhirpy.SyncFHIRClient(module_server.base)
    patient = client.resource(
        "Patient",
        identifier=[{"system": "urn:healthbook:fhirpy", "value": "py-1"}],
        name=[{"family": "Lê", "given": ["Minh"]}],
        gender="male",
    )
    patient.save()
    pid = patient.id
    assert pid
    assert patient.meta.versionId == "1"
    read = client.reference("Patient", pid).to_resource()
    assert read.name[0].family == "Lê"
    read.gender = "female"
    read.save()
    assert read.meta.versionId == "2"
    v1 = client.execute(f"Patient/{pid}/_history/1", method="get")
    assert v1["gender"] == "male"
    found = client.resources("Patient").search(_id=pid).fetch_all()
    assert [p.id for p in found] == [pid]
    assert client.resources("Patient").search(identifier="urn:healthbook:fhirpy|py-1").count() == 1
    updated, created = (
        client.resources("Patient")
        .search(identifier="urn:healthbook:fhirpy|py-1")
        .update(client.resource("Patient", identifier=[{"system": "urn:healthbook:fhirpy", "value": "py-1"}]))
    )
    assert not created
    assert updated.id == pid
    assert updated.meta.versionId == "3"
    client.resources("Patient").search(identifier="urn:healthbook:fhirpy|py-1").delete()
    with pytest.raises(fhirpy.base.exceptions.ResourceNotFound):
        client.reference("Patient", pid).to_resource()
    fresh = client.resource("Patient", gender="other")
    fresh.save()
    fresh.delete()
    with pytest.raises(fhirpy.base.exceptions.ResourceNotFound):
        client.reference("Patient", fresh.id).to_resource()
