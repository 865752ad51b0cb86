"""Every official R4 example must validate, except the few that really break the specification."""

from __future__ import annotations

import os
import time
from pathlib import Path

import orjson
import pytest

from healthbook.fhir.jsonio import loads
from healthbook.fhir.validation import validate_resource
from tests.conftest import fetch_examples

# The official package, fetched from npm by the test set-up (or a local copy named by the variable).
EXAMPLES = (
    Path(os.environ["HEALTHBOOK_R4_EXAMPLES"]) if "HEALTHBOOK_R4_EXAMPLES" in os.environ else fetch_examples()
)
DEFINITION_PREFIXES = (
    "StructureDefinition-",
    "SearchParameter-",
    "ValueSet-",
    "CodeSystem-",
    "ConceptMap-",
    "OperationDefinition-",
    "CompartmentDefinition-",
    "CapabilityStatement-",
    "NamingSystem-",
    "ImplementationGuide-",
)


# Examples that violate the R4 specification, with the reason and where.
KNOWN_INVALID = {
    "DeviceMetric-example.json": (
        "DeviceMetric.parent is Reference(Device) but refers to DeviceDefinition/dc102"
    ),
    "DeviceUseStatement-example.json": (
        "DeviceUseStatement.reasonReference is Reference(Condition|Observation|DiagnosticReport|"
        "DocumentReference|Media) but reasonReference[0] refers to Procedure/example"
    ),
    "MedicationRequest-medrx0301.json": (
        "MedicationRequest.dispenseRequest.performer is Reference(Organization) "
        "but refers to Practitioner/f001"
    ),
    "Observation-clinical-gender.json": (
        "Observation.performer is Reference(Practitioner|PractitionerRole|Organization|CareTeam|"
        "Patient|RelatedPerson) but performer[0] refers to Encounter/example"
    ),
    "Questionnaire-qs1.json": (
        "Questionnaire.item.linkId is 1..1, but 32 nested display items (e.g. item[0].item[0]) have no linkId"
    ),
    "ig-r4.json": (
        "ImplementationGuide.name and ImplementationGuide.status are 1..1 but missing; and "
        "manifest.resource[11904].reference.reference has the id "
        "'questionnaireresponse-extensions-QuestionnaireResponse-item-subject' "
        "(68 characters; an id has at most 64)"
    ),
    "package.json": "the npm package manifest, not a FHIR resource: it has no resourceType",
}

# The expressions that the validator must report for each known-invalid example (all of them).
BAD_ELEMENTS = {
    "DeviceMetric-example.json": ["DeviceMetric.parent.reference"],
    "DeviceUseStatement-example.json": ["DeviceUseStatement.reasonReference[0].reference"],
    "MedicationRequest-medrx0301.json": ["MedicationRequest.dispenseRequest.performer.reference"],
    "Observation-clinical-gender.json": ["Observation.performer[0].reference"],
    "Questionnaire-qs1.json": [
        "Questionnaire.item[0].item[0].linkId",
        "Questionnaire.item[0].item[1].item[0].linkId",
    ],
    "ig-r4.json": [
        "ImplementationGuide.name",
        "ImplementationGuide.status",
        "ImplementationGuide.manifest.resource[11904].reference.reference",
    ],
    "package.json": ["resourceType"],
}


def example_files() -> list[str]:
    if not EXAMPLES.is_dir():
        return []
    return sorted(p.name for p in EXAMPLES.glob("*.json") if not p.name.startswith(DEFINITION_PREFIXES))


def test_example_set_is_complete() -> None:
    names = example_files()
    assert len(names) >= 700
    assert set(KNOWN_INVALID) <= set(names)
    assert set(KNOWN_INVALID) == set(BAD_ELEMENTS)


@pytest.mark.parametrize("name", example_files())
def test_example(name: str) -> None:
    # orjson for speed: the server's jsonio parser (decimals kept as text) is slow on the 35 MB bundles.
    resource = orjson.loads((EXAMPLES / name).read_bytes())
    errors = [i for i in validate_resource(resource) if i.severity in ("error", "fatal")]
    if name in KNOWN_INVALID:
        found = {i.expression for i in errors}
        missing = [e for e in BAD_ELEMENTS[name] if e not in found]
        assert not missing, f"{name}: expected errors at {missing} ({KNOWN_INVALID[name]}), got {errors[:5]}"
    else:
        assert errors == [], f"{name}: {errors[:10]}"


@pytest.mark.parametrize("name", ["Patient-example.json", "Observation-example.json"])
def test_typical_resource_validates_fast(name: str) -> None:
    """Budget: the server validates on every write and aims at 600+ creates/s on 2 cores.

    CPU time, best of five rounds, so that a busy machine does not make the test flaky.
    """
    resource = loads((EXAMPLES / name).read_bytes())
    validate_resource(resource)
    rounds = []
    for _ in range(5):
        start = time.process_time()
        for _ in range(200):
            validate_resource(resource)
        rounds.append((time.process_time() - start) / 200)
    assert min(rounds) < 0.0005, f"{name}: {min(rounds) * 1e6:.0f} µs per validation"
