"""Unit tests of the definition-driven R4 validator: each rule, good and bad, plus hostile input."""

from __future__ import annotations

import copy
import itertools
import re
from typing import Any

import pytest

from healthbook.fhir.jsonio import loads
from healthbook.fhir.outcomes import Issue
from healthbook.fhir.validation import (
    MAX_DEPTH,
    MAX_ISSUES,
    RESOURCE_TYPES,
    load_model,
    resource_types,
    validate_resource,
)
from healthbook.fhir.validation.primitives import _base64_matcher

GENDER_VS = "http://hl7.org/fhir/ValueSet/administrative-gender"


def errors(resource: object) -> list[Issue]:
    return [i for i in validate_resource(resource) if i.severity in ("error", "fatal")]


def expressions(resource: object) -> list[str | None]:
    return [i.expression for i in errors(resource)]


def assert_valid(resource: object) -> None:
    found = errors(resource)
    assert found == [], found


def assert_invalid_at(resource: object, expression: str, code: str | None = None) -> Issue:
    found = errors(resource)
    matching = [i for i in found if i.expression == expression]
    assert matching, f"expected an error at {expression}, got {found}"
    if code is not None:
        assert any(i.code == code for i in matching), matching
    return matching[0]


def patient(**elements: Any) -> dict[str, Any]:
    return {"resourceType": "Patient", **elements}


def observation(**elements: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"resourceType": "Observation", "status": "final", "code": {"text": "x"}}
    base.update(elements)
    return base


# --- resource types and the root ---------------------------------------------------------------------


def test_resource_types() -> None:
    assert len(RESOURCE_TYPES) == 146
    assert resource_types() == RESOURCE_TYPES == load_model().resource_types
    assert {"Patient", "Observation", "Bundle", "Parameters", "Binary"} <= RESOURCE_TYPES
    assert not {"Resource", "DomainResource", "BackboneElement", "HumanName"} & RESOURCE_TYPES


def test_minimal_resources_are_valid() -> None:
    assert_valid({"resourceType": "Patient"})
    assert_valid(observation())


@pytest.mark.parametrize("root", [None, [], [{"resourceType": "Patient"}], "Patient", 1, 1.5, True, b"{}"])
def test_non_object_root(root: object) -> None:
    issues = errors(root)
    assert len(issues) == 1
    assert issues[0].code == "structure"
    assert "must be a JSON object" in issues[0].diagnostics


def test_missing_and_unknown_resource_type() -> None:
    assert_invalid_at({"id": "x"}, "resourceType", "required")
    issue = assert_invalid_at({"resourceType": "Patients"}, "resourceType", "not-supported")
    assert "'Patients'" in issue.diagnostics
    assert_invalid_at({"resourceType": "DomainResource"}, "resourceType")
    assert_invalid_at({"resourceType": 7}, "resourceType")


# --- unknown elements -----------------------------------------------------------------------------------


def test_unknown_element() -> None:
    issue = assert_invalid_at(patient(foo=1), "Patient.foo", "structure")
    assert issue.diagnostics == "Unknown element 'foo' in Patient"


def test_unknown_element_in_datatype_and_backbone() -> None:
    issue = assert_invalid_at(patient(name=[{"family": "x", "nickname": "y"}]), "Patient.name[0].nickname")
    assert "HumanName" in issue.diagnostics
    assert_invalid_at(patient(contact=[{"gender": "male", "foo": True}]), "Patient.contact[0].foo")
    assert_invalid_at(
        observation(code={"coding": [{"system": "s", "cod": "c"}]}), "Observation.code.coding[0].cod"
    )


def test_resource_type_inside_a_datatype_is_unknown() -> None:
    assert_invalid_at(patient(name=[{"resourceType": "HumanName"}]), "Patient.name[0].resourceType")


def test_non_string_property_names() -> None:
    assert errors({"resourceType": "Patient", 1: "x"})


# --- cardinality and arrays ------------------------------------------------------------------------------


def test_missing_required_element() -> None:
    issue = assert_invalid_at({"resourceType": "Observation", "code": {"text": "x"}}, "Observation.status")
    assert issue.diagnostics == "Missing required element 'Observation.status' (min 1)"
    assert issue.code == "required"


def test_required_elements_only_when_parent_present() -> None:
    assert_valid(patient())  # Patient.link.other is min 1, but there is no link
    assert_invalid_at(patient(link=[{"type": "seealso"}]), "Patient.link[0].other", "required")
    assert_valid(patient(link=[{"type": "seealso", "other": {"reference": "Patient/1"}}]))


def test_required_primitive_satisfied_by_extension_only() -> None:
    ext = {
        "extension": [
            {"url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason", "valueCode": "unknown"}
        ]
    }
    obs = {"resourceType": "Observation", "_status": ext, "code": {"text": "x"}}
    assert_valid(obs)


def test_array_required_for_repeating_elements() -> None:
    issue = assert_invalid_at(patient(name={"family": "x"}), "Patient.name", "structure")
    assert "must be an array" in issue.diagnostics
    assert_invalid_at(patient(name=[{"given": "Peter"}]), "Patient.name[0].given")


def test_single_value_required_for_max_one() -> None:
    issue = assert_invalid_at(patient(gender=["male"]), "Patient.gender", "structure")
    assert "must not be an array" in issue.diagnostics
    assert_invalid_at(patient(maritalStatus=[{"text": "x"}]), "Patient.maritalStatus")


def test_empty_arrays_objects_and_strings() -> None:
    assert_invalid_at(patient(name=[]), "Patient.name")
    assert_invalid_at(patient(name=[{}]), "Patient.name[0]")
    assert_invalid_at(patient(maritalStatus={}), "Patient.maritalStatus")
    assert_invalid_at(patient(name=[{"family": ""}]), "Patient.name[0].family")
    assert_invalid_at(patient(name=[{"given": []}]), "Patient.name[0].given")


def test_nulls_are_not_values() -> None:
    assert_invalid_at(patient(gender=None), "Patient.gender")
    assert_invalid_at(patient(maritalStatus=None), "Patient.maritalStatus")
    assert_invalid_at(patient(name=[None]), "Patient.name[0]")
    assert_invalid_at(patient(name=[{"given": ["a", None]}]), "Patient.name[0].given[1]")


def test_max_zero_in_profiled_type() -> None:
    # Dosage.doseAndRate.dose[x] is a SimpleQuantity, whose comparator has max 0.
    dose = {"doseQuantity": {"value": 1, "comparator": "<"}}
    med = {
        "resourceType": "MedicationRequest",
        "status": "active",
        "intent": "order",
        "medicationCodeableConcept": {"text": "x"},
        "subject": {"reference": "Patient/1"},
        "dosageInstruction": [{"doseAndRate": [dose]}],
    }
    assert_invalid_at(med, "MedicationRequest.dosageInstruction[0].doseAndRate[0].doseQuantity.comparator")
    del dose["doseQuantity"]["comparator"]
    assert_valid(med)


# --- primitives ---------------------------------------------------------------------------------------------

PRIMITIVE_CASES: list[tuple[str, str, list[Any], list[Any]]] = [
    # (resource type, element path from a minimal resource, good values, bad values)
    ("Patient", "active", [True, False], ["true", 1, 0, None, [True], {"value": True}]),
    (
        "Patient",
        "birthDate",
        ["2000", "2000-02", "2000-02-29", "1974-12-25"],
        ["2000-2-1", "2001-02-29", "2000-13-01", "2000-01-32", "1974-12-25T10:00:00Z", "", " 2000", 2000],
    ),
    (
        "Patient",
        "deceasedDateTime",
        [
            "2015",
            "2015-02-07",
            "2015-02-07T13:28:17Z",
            "2015-02-07T13:28:17.239+02:00",
            "2017-01-01T00:00:00.1-05:00",
        ],
        [
            "2015-02-07T13:28:17",
            "2015-02-07T13:28Z",
            "2015-02-07T25:00:00Z",
            "2015-02-07 13:28:17Z",
            "2015-02-31",
        ],
    ),
    ("Patient", "multipleBirthInteger", [0, 1, -5, 2147483647], ["1", 1.5, 1.0, True, 2147483648, 10**30]),
    ("Patient", "id", ["a", "A-1.b", "x" * 64], ["", "a b", "a_b", "x" * 65, "é", 5]),
    ("Patient", "language", ["en", "en-US"], ["", " en", "en ", "a  b", 1]),
    ("Patient", "implicitRules", ["http://example.org/rules", "urn:x"], ["", "http://exa mple.org", 1]),
    ("Observation", "valueString", ["x", "  spaced  ", "multi\nline", "Ünïcödé \u00a0 ok"], ["", "\x0b", 5]),
    (
        "Observation",
        "valueTime",
        ["10:00:00", "23:59:60", "10:00:00.123"],
        ["24:00:00", "10:00", "10:00:00Z"],
    ),
    ("Observation", "valueInteger", [42], ["42", 4.2]),
    (
        "Observation",
        "issued",
        ["2015-02-07T13:28:17.239+02:00", "2015-02-07T13:28:17Z"],
        ["2015-02-07", "2015-02-07T13:28:17", "2015-02-07T13:28:17+15:00"],
    ),
    ("Observation", "valueQuantity.value", [1, 1.5, -0.001, 1e10], ["1.5", True, float("nan"), float("inf")]),
    ("Observation", "valueSampledData.period", [0.5], ["0.5"]),
    ("Observation", "valueSampledData.dimensions", [1, 3], [0, -1, "1"]),
    ("Patient", "photo.0.size", [0, 10], [-1, "10"]),
    (
        "Patient",
        "photo.0.data",
        ["aGVsbG8=", "aGVs bG8=", "aGVs\nbG8="],
        ["aGVsbG8", "aGV sbG8=", "a!==", "====x"],
    ),
    ("Patient", "photo.0.url", ["http://x.org/a"], ["http://x.org/a b"]),
    ("Patient", "photo.0.hash", ["aGVsbG8="], ["not base64"]),
    ("Patient", "photo.0.creation", ["2015-02-07T13:28:17Z"], ["yesterday"]),
    ("Observation", "identifier.0.system", ["urn:oid:1.2.3", "http://x"], ["has space"]),
    ("Observation", "meta.source", ["urn:uuid:53fefa32-fcbb-4ff8-8a92-55ee120877b7"], [""]),
    ("Observation", "meta.profile.0", ["http://hl7.org/fhir/StructureDefinition/vitalsigns|4.0.1"], ["a b"]),
]


def _set(resource: dict[str, Any], dotted: str, value: Any) -> None:
    """Put value at a dotted path in which digits are list indices."""
    parts = dotted.split(".")
    node: Any = resource
    for part, nxt in itertools.pairwise(parts):
        key: Any = int(part) if part.isdigit() else part
        if isinstance(node, list):
            while len(node) <= key:
                node.append({})
            node = node[key]
        else:
            node = node.setdefault(key, [] if nxt.isdigit() else {})
    last = parts[-1]
    if last.isdigit():
        node.append(value)
    else:
        node[last] = value


def _base(rtype: str) -> dict[str, Any]:
    if rtype == "Observation":
        obs = observation()
        obs["component"] = [{"code": {"text": "c"}}]
        return obs
    return {"resourceType": rtype}


def _fill_required(resource: dict[str, Any], dotted: str) -> None:
    if dotted.startswith("valueSampledData."):
        resource["valueSampledData"].setdefault("origin", {"value": 0})
        resource["valueSampledData"].setdefault("dimensions", 1)
        resource["valueSampledData"].setdefault("period", 1)


@pytest.mark.parametrize(("rtype", "dotted", "good", "bad"), PRIMITIVE_CASES)
def test_primitive_values(rtype: str, dotted: str, good: list[Any], bad: list[Any]) -> None:
    expression = rtype + "." + re.sub(r"\.(\d+)", r"[\1]", dotted)
    for value in good:
        resource = _base(rtype)
        _set(resource, dotted, value)
        _fill_required(resource, dotted)
        assert errors(resource) == [], (dotted, value)
    for value in bad:
        resource = _base(rtype)
        _set(resource, dotted, value)
        _fill_required(resource, dotted)
        found = errors(resource)
        assert any(i.expression == expression for i in found), (dotted, value, found)


def test_primitive_diagnostics_name_element_and_type() -> None:
    issue = assert_invalid_at(patient(birthDate="25/12/1974"), "Patient.birthDate", "value")
    assert issue.diagnostics == "Element Patient.birthDate has value '25/12/1974' that is not a valid date"
    issue = assert_invalid_at(patient(active="true"), "Patient.active")
    assert "JSON boolean" in issue.diagnostics


def test_string_max_length() -> None:
    assert_valid(observation(valueString="x" * 1048576))
    assert_invalid_at(observation(valueString="x" * 1048577), "Observation.valueString")


def test_decimal_precision_type_from_jsonio() -> None:
    parsed = loads(
        b'{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueQuantity":{"value":1.50}}'
    )
    assert_valid(parsed)
    parsed = loads(b'{"resourceType":"Patient","multipleBirthInteger":2.0}')
    assert_invalid_at(parsed, "Patient.multipleBirthInteger")
    parsed = loads(b'{"resourceType":"Patient","multipleBirthInteger":12345678901234567890123}')
    assert_invalid_at(parsed, "Patient.multipleBirthInteger")


def test_narrative_div() -> None:
    div = '<div xmlns="http://www.w3.org/1999/xhtml"><p>Hi</p></div>'
    assert_valid(patient(text={"status": "generated", "div": div}))
    assert_invalid_at(patient(text={"status": "generated", "div": "<p>Hi</p>"}), "Patient.text.div")
    assert_invalid_at(patient(text={"status": "generated", "div": "<div>Hi</div>"}), "Patient.text.div")
    assert_invalid_at(patient(text={"status": "generated"}), "Patient.text.div", "required")
    assert_invalid_at(
        patient(text={"status": "generated", "div": div, "_div": {"id": "x"}}), "Patient.text._div"
    )


def test_base64_matcher_is_equivalent_to_spec_regex() -> None:
    spec = r"(\s*([0-9a-zA-Z\+/=]){4}\s*)+"
    fast = _base64_matcher(spec)
    reference = re.compile(spec, re.ASCII).fullmatch
    samples = [
        "",
        "AAAA",
        "AAA",
        "AAAA AAAA",
        "AA AA",
        " AAAA ",
        "AAAAAAAA",
        "AAAA\n\tBBBB",
        "AA=A",
        "AAA\u00a0",
    ]
    samples += ["A" * n + " " * m + "B" * k for n in range(6) for m in range(3) for k in range(6)]
    for sample in samples:
        assert bool(fast(sample)) == bool(reference(sample)), repr(sample)


def test_base64_hostile_input() -> None:
    # A backtracking pattern would take minutes here (no timing assertion: CI would visibly hang).
    hostile = "AAAA " * 200_000 + "!"
    assert_invalid_at(patient(photo=[{"data": hostile}]), "Patient.photo[0].data")


# --- choice types ------------------------------------------------------------------------------------------


def test_choice_types() -> None:
    assert_valid(observation(valueQuantity={"value": 1, "unit": "kg"}))
    assert_valid(observation(valueCodeableConcept={"text": "x"}))
    assert_valid(observation(valueBoolean=True))
    issue = assert_invalid_at(observation(valueAttachment={"url": "http://x"}), "Observation.valueAttachment")
    assert "Unknown element 'valueAttachment'" in issue.diagnostics
    assert_invalid_at(observation(valueQuantity={"value": "1"}), "Observation.valueQuantity.value")
    assert_invalid_at(observation(value={"value": 1}), "Observation.value")
    assert_invalid_at(observation(valuequantity={"value": 1}), "Observation.valuequantity")


def test_only_one_form_of_a_choice() -> None:
    issue = assert_invalid_at(observation(valueBoolean=True, valueString="x"), "Observation.valueString")
    assert "value[x]" in issue.diagnostics
    assert_invalid_at(
        patient(deceasedBoolean=True, _deceasedDateTime={"id": "a"}), "Patient._deceasedDateTime"
    )
    assert_valid(patient(deceasedBoolean=True, _deceasedBoolean={"id": "a"}))


def test_required_choice() -> None:
    # Extension-free example of a required choice: MedicationRequest.medication[x] is 1..1.
    med = {
        "resourceType": "MedicationRequest",
        "status": "active",
        "intent": "order",
        "subject": {"reference": "Patient/1"},
    }
    issue = assert_invalid_at(med, "MedicationRequest.medication[x]", "required")
    assert "MedicationRequest.medication[x]" in issue.diagnostics
    assert_valid({**med, "medicationReference": {"reference": "Medication/1"}})


# --- primitive extensions (_name) -----------------------------------------------------------------------

EXT = {"url": "http://example.org/ext", "valueString": "x"}


def test_primitive_extension_single() -> None:
    assert_valid(patient(birthDate="1970-01-01", _birthDate={"id": "b", "extension": [EXT]}))
    assert_valid(patient(_birthDate={"extension": [EXT]}))
    assert_invalid_at(patient(_birthDate={"value": "1970"}), "Patient.birthDate.value")
    assert_invalid_at(patient(_birthDate={}), "Patient.birthDate")
    assert_invalid_at(patient(_birthDate=[{"id": "x"}]), "Patient.birthDate")
    assert_invalid_at(
        patient(_birthDate={"extension": [{"url": "http://x"}]}), "Patient.birthDate.extension[0]"
    )


def test_primitive_extension_arrays_are_aligned() -> None:
    name = {"given": ["Peter", None, "James"], "_given": [None, {"extension": [EXT]}, {"id": "j"}]}
    assert_valid(patient(name=[name]))
    assert_valid(patient(name=[{"_given": [{"extension": [EXT]}]}]))
    both_null = {"given": ["Peter", None], "_given": [None, None]}
    assert_invalid_at(patient(name=[both_null]), "Patient.name[0].given[1]")
    mismatch = {"given": ["Peter", "James"], "_given": [None]}
    assert_invalid_at(patient(name=[mismatch]), "Patient.name[0]._given")
    assert_invalid_at(patient(name=[{"given": ["a"], "_given": {"id": "x"}}]), "Patient.name[0]._given")
    assert_invalid_at(patient(name=[{"given": ["a"], "_given": ["x"]}]), "Patient.name[0].given[0]")
    assert_invalid_at(patient(name=[{"_given": [None]}]), "Patient.name[0].given[0]")


def test_underscore_not_allowed_on_complex_or_attribute_elements() -> None:
    issue = assert_invalid_at(patient(_name=[{"id": "x"}]), "Patient._name")
    assert "cannot have extensions" in issue.diagnostics
    assert_invalid_at(patient(name=[{"id": "n", "_id": {"id": "y"}}]), "Patient.name[0]._id")
    assert_invalid_at(patient(extension=[{**EXT, "_url": {"id": "y"}}]), "Patient.extension[0]._url")
    assert_valid(patient(id="p", _id={"extension": [EXT]}))  # Resource.id is an element, not an attribute


# --- extensions ------------------------------------------------------------------------------------------


def test_extensions() -> None:
    assert_valid(patient(extension=[EXT], modifierExtension=[EXT]))
    nested = {"url": "http://example.org/complex", "extension": [EXT, {"url": "part", "valueInteger": 1}]}
    assert_valid(patient(extension=[nested]))
    assert_invalid_at(patient(extension=[{"valueString": "x"}]), "Patient.extension[0].url", "required")
    assert_invalid_at(patient(extension=[{"url": "http://x"}]), "Patient.extension[0]", "invariant")
    both = {"url": "http://x", "valueString": "x", "extension": [EXT]}
    assert_invalid_at(patient(extension=[both]), "Patient.extension[0]", "invariant")
    assert_invalid_at(
        patient(extension=[{"url": "http://x", "valueFoo": 1}]), "Patient.extension[0].valueFoo"
    )
    assert_invalid_at(patient(extension=EXT), "Patient.extension")
    assert_invalid_at(
        patient(extension=[{"url": "http://x", "valueString": ""}]), "Patient.extension[0].valueString"
    )
    assert_invalid_at(
        patient(extension=[{"url": "has space", "valueString": "x"}]), "Patient.extension[0].url"
    )
    deep = {"url": "http://x", "valueQuantity": {"value": "1"}}
    assert_invalid_at(
        patient(name=[{"extension": [deep]}]), "Patient.name[0].extension[0].valueQuantity.value"
    )


# --- required bindings ------------------------------------------------------------------------------------


def test_required_binding_on_code() -> None:
    assert_valid(patient(gender="female"))
    issue = assert_invalid_at(patient(gender="xyz"), "Patient.gender", "code-invalid")
    assert issue.diagnostics == (
        f"Element 'Patient.gender' has value 'xyz' that is not in the required value set {GENDER_VS}"
    )
    assert_invalid_at(patient(gender="Male"), "Patient.gender")
    assert_invalid_at(observation(status="done"), "Observation.status")
    assert_invalid_at(patient(telecom=[{"system": "pager", "use": "office"}]), "Patient.telecom[0].use")


def test_required_binding_on_repeating_code() -> None:
    cap = {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2020",
        "kind": "instance",
        "fhirVersion": "4.0.1",
        "format": ["json"],
        "implementation": {"description": "x"},
    }
    assert_valid(cap)
    # SearchParameter.base is a repeating code bound to resource-types.
    sp = {
        "resourceType": "SearchParameter",
        "url": "http://x",
        "name": "x",
        "status": "active",
        "description": "x",
        "code": "x",
        "base": ["Patient", "Nope"],
        "type": "token",
    }
    assert_invalid_at(sp, "SearchParameter.base[1]", "code-invalid")


def test_required_binding_on_codeable_concept_and_coding() -> None:
    # AllergyIntolerance.clinicalStatus is a CodeableConcept with a required binding.
    system = "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical"
    allergy: dict[str, Any] = {"resourceType": "AllergyIntolerance", "patient": {"reference": "Patient/1"}}
    allergy["clinicalStatus"] = {"coding": [{"system": system, "code": "active"}]}
    assert_valid(allergy)
    allergy["clinicalStatus"] = {
        "coding": [{"system": "http://other.org", "code": "whatever"}, {"system": system, "code": "bogus"}]
    }
    assert_invalid_at(allergy, "AllergyIntolerance.clinicalStatus.coding[1].code", "code-invalid")
    allergy["clinicalStatus"] = {"text": "active"}
    assert_valid(allergy)


def test_unexpandable_required_bindings_are_not_enforced() -> None:
    # Attachment.contentType is bound to mimetypes (BCP 13), which the package cannot expand.
    assert_valid(patient(photo=[{"contentType": "application/x-anything"}]))


def test_extensible_bindings_are_not_enforced() -> None:
    assert_valid(patient(maritalStatus={"coding": [{"system": "http://x.org", "code": "odd"}]}))


# --- references -----------------------------------------------------------------------------------------

GOOD_REFERENCES = [
    "Patient/123",
    "Patient/a.b-c",
    "Patient/123/_history/2",
    "http://example.org/fhir/Patient/123",
    "https://example.org/fhir/Patient/123/_history/1",
    "#p1",
    "#",
    "urn:uuid:53fefa32-fcbb-4ff8-8a92-55ee120877b7",
    "urn:oid:1.2.840.113619.20.2",
]
BAD_REFERENCES = [
    "Patient",
    "Patient/",
    "Patient/has space",
    "Patient/" + "x" * 65,
    "Patient/1/_history/",
    "Patients/1",
    "patient/1",
    "/Patient/1",
    "Patient?identifier=x",
    "#has space",
    "urn:uuid:not-a-uuid",
    "urn:oid:abc",
    "urn:isbn:123",
    "http://exa mple.org/Patient/1",
]


@pytest.mark.parametrize("ref", GOOD_REFERENCES)
def test_good_references(ref: str) -> None:
    assert_valid(observation(subject={"reference": ref}))


@pytest.mark.parametrize("ref", BAD_REFERENCES)
def test_bad_references(ref: str) -> None:
    assert_invalid_at(observation(subject={"reference": ref}), "Observation.subject.reference")


def test_reference_target_types() -> None:
    issue = assert_invalid_at(
        observation(subject={"reference": "Medication/1"}), "Observation.subject.reference"
    )
    assert "Medication" in issue.diagnostics
    assert_valid(observation(subject={"reference": "Group/1"}))
    assert_valid(observation(focus=[{"reference": "Medication/1"}]))  # Reference(Any)
    assert_valid(observation(subject={"identifier": {"value": "x"}, "display": "x"}))


def test_conditional_references_only_in_transactions() -> None:
    obs = observation(subject={"reference": "Patient?identifier=http://x|1"})
    assert_invalid_at(obs, "Observation.subject.reference")
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [{"resource": obs, "request": {"method": "POST", "url": "Observation"}}],
    }
    assert_valid(bundle)
    bundle["type"] = "collection"
    del bundle["entry"][0]["request"]
    assert_invalid_at(bundle, "Bundle.entry[0].resource.subject.reference")


# --- contained, bundles, parameters ----------------------------------------------------------------------


def test_contained_resources() -> None:
    contained = {"resourceType": "Patient", "id": "p1", "gender": "male"}
    assert_valid(observation(contained=[contained], subject={"reference": "#p1"}))
    assert_invalid_at(
        observation(contained=[{"id": "p1"}]), "Observation.contained[0].resourceType", "required"
    )
    assert_invalid_at(
        observation(contained=[{**contained, "gender": "m"}]), "Observation.contained[0].gender"
    )
    assert_invalid_at(observation(contained=[{**contained, "foo": 1}]), "Observation.contained[0].foo")
    assert_invalid_at(observation(contained=contained), "Observation.contained")
    assert_invalid_at(observation(contained=["Patient"]), "Observation.contained[0]")
    nested = {**contained, "contained": [{"resourceType": "Patient", "id": "p2"}]}
    assert_invalid_at(observation(contained=[nested]), "Observation.contained[0].contained")


def test_contained_resources_have_no_version_metadata() -> None:
    contained = {
        "resourceType": "Patient",
        "id": "p1",
        "meta": {"versionId": "1", "lastUpdated": "2020-01-01T00:00:00Z"},
    }
    found = expressions(observation(contained=[contained]))
    assert "Observation.contained[0].meta.versionId" in found
    assert "Observation.contained[0].meta.lastUpdated" in found
    assert_valid(observation(meta={"versionId": "1", "lastUpdated": "2020-01-01T00:00:00Z"}))


def test_elements_need_a_value_or_children() -> None:
    assert_invalid_at(patient(maritalStatus={"id": "m"}), "Patient.maritalStatus", "invariant")
    assert_valid(patient(maritalStatus={"id": "m", "text": "x"}))
    assert_invalid_at(patient(_birthDate={"id": "b"}), "Patient.birthDate", "invariant")
    assert_valid(patient(birthDate="2000", _birthDate={"id": "b"}))
    assert_invalid_at(
        patient(name=[{"given": ["a", None], "_given": [None, {"id": "g"}]}]), "Patient.name[0].given[1]"
    )


def test_bundle_entries() -> None:
    good = {"resourceType": "Patient", "gender": "male"}
    bad = {"resourceType": "Observation", "code": {"text": "x"}, "status": "nope"}
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"fullUrl": "urn:uuid:53fefa32-fcbb-4ff8-8a92-55ee120877b7", "resource": good}] * 3
        + [{"resource": bad}],
    }
    issue = assert_invalid_at(bundle, "Bundle.entry[3].resource.status", "code-invalid")
    assert "Bundle.entry[3].resource.status" in issue.diagnostics
    assert_invalid_at({"resourceType": "Bundle"}, "Bundle.type", "required")
    assert_invalid_at(
        {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": {}}]},
        "Bundle.entry[0].resource.resourceType",
    )
    inner = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": bad}]}
    outer = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": inner}]}
    assert_invalid_at(outer, "Bundle.entry[0].resource.entry[0].resource.status")


def test_parameters_resources() -> None:
    params = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "a", "valueString": "x"},
            {"name": "b", "resource": {"resourceType": "Patient", "active": "yes"}},
            {"name": "c", "part": [{"name": "d", "valueInteger": "1"}]},
        ],
    }
    found = expressions(params)
    assert "Parameters.parameter[1].resource.active" in found
    assert "Parameters.parameter[2].part[0].valueInteger" in found


def test_content_reference_elements() -> None:
    q = {
        "resourceType": "Questionnaire",
        "status": "draft",
        "item": [{"linkId": "1", "type": "group", "item": [{"linkId": "1.1", "type": "string"}]}],
    }
    assert_valid(q)
    q["item"][0]["item"][0]["type"] = "strin"
    assert_invalid_at(q, "Questionnaire.item[0].item[0].type", "code-invalid")
    del q["item"][0]["item"][0]["linkId"]
    assert_invalid_at(q, "Questionnaire.item[0].item[0].linkId", "required")


# --- hostile input -----------------------------------------------------------------------------------------


def test_deep_nesting_of_extensions() -> None:
    ext: dict[str, Any] = {"url": "http://x", "valueString": "leaf"}
    for _ in range(10_000):
        ext = {"url": "http://x", "extension": [ext]}
    issues = errors(patient(extension=[ext]))
    assert any(i.code == "too-costly" for i in issues)
    assert len(issues) < 10


def test_deep_nesting_of_bundles_and_items() -> None:
    res: dict[str, Any] = {"resourceType": "Patient"}
    for _ in range(10_000):
        res = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": res}]}
    assert any(i.code == "too-costly" for i in errors(res))
    item: dict[str, Any] = {"linkId": "x", "type": "display"}
    for _ in range(10_000):
        item = {"linkId": "x", "type": "group", "item": [item]}
    assert any(
        i.code == "too-costly"
        for i in errors({"resourceType": "Questionnaire", "status": "draft", "item": [item]})
    )


def test_reasonable_nesting_is_fine() -> None:
    item: dict[str, Any] = {"linkId": "x", "type": "display"}
    for _ in range(MAX_DEPTH // 2 - 2):
        item = {"linkId": "x", "type": "group", "item": [item]}
    assert_valid({"resourceType": "Questionnaire", "status": "draft", "item": [item]})


def test_deeply_nested_garbage_is_not_walked() -> None:
    garbage: Any = []
    for _ in range(10_000):
        garbage = [garbage]
    assert_invalid_at(patient(foo=garbage), "Patient.foo")
    assert_invalid_at(patient(name=garbage), "Patient.name[0]")
    assert errors(garbage)


def test_huge_arrays() -> None:
    assert_valid(patient(name=[{"given": ["x"] * 200_000}]))
    issues = errors(patient(name=[1] * 200_000))
    assert len(issues) == MAX_ISSUES + 1
    assert issues[-1].code == "too-costly"


def test_wrong_types_everywhere_never_raise() -> None:
    weird: list[Any] = [
        None,
        True,
        0,
        -1,
        1.5,
        float("nan"),
        "",
        "x",
        [],
        [None],
        {},
        {"a": 1},
        b"x",
        (1,),
        {1, 2},
        10**400,
        object(),
    ]
    example = observation(
        subject={"reference": "Patient/1"},
        valueQuantity={"value": 1, "comparator": "<"},
        component=[{"code": {"coding": [{"system": "s", "code": "c"}]}, "valueString": "x"}],
        extension=[EXT],
        contained=[{"resourceType": "Patient", "name": [{"given": ["a"], "_given": [{"id": "g"}]}]}],
        _status={"id": "s"},
    )

    def paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        out = [prefix]
        if isinstance(node, dict):
            for k, v in node.items():
                out += paths(v, (*prefix, k))
        elif isinstance(node, list):
            for i, v in enumerate(node):
                out += paths(v, (*prefix, i))
        return out

    for where in paths(example)[1:]:
        for value in weird:
            mutated = copy.deepcopy(example)
            node: Any = mutated
            for step in where[:-1]:
                node = node[step]
            node[where[-1]] = value
            validate_resource(mutated)  # must not raise


def test_issue_cap_reports_where_it_stopped() -> None:
    issues = validate_resource({"resourceType": "Patient", **{f"x{i}": 1 for i in range(5000)}})
    assert len(issues) == MAX_ISSUES + 1
    assert "stopped" in issues[-1].diagnostics


# --- model -------------------------------------------------------------------------------------------------


def test_model_is_loaded_once() -> None:
    assert load_model() is load_model()
    from healthbook.fhir.validation import model as model_module

    fresh = model_module.Model(model_module._read_data())
    assert fresh.resource_types == RESOURCE_TYPES


def test_model_tables() -> None:
    model = load_model()
    obs = model.tables["Observation"].elements
    assert {"valueQuantity", "valueString", "_valueString", "valueCodeableConcept"} <= set(obs)
    assert "valueAttachment" not in obs
    assert model.tables["Questionnaire.item"].elements["item"].table is model.tables["Questionnaire.item"]
    assert obs["status"].all_codes == {
        "registered",
        "preliminary",
        "final",
        "amended",
        "corrected",
        "cancelled",
        "entered-in-error",
        "unknown",
    }


def _document(**changes: Any) -> dict[str, Any]:
    composition = {
        "resourceType": "Composition",
        "status": "final",
        "type": {"text": "summary"},
        "date": "2026-12-02",
        "author": [{"display": "server"}],
        "title": "Book",
        "section": [{"title": "Empty", "emptyReason": {"text": "none"}, "text": _NARRATIVE}],
    }
    doc: dict[str, Any] = {
        "resourceType": "Bundle",
        "identifier": {
            "system": "urn:ietf:rfc:3986",
            "value": "urn:uuid:9d0e4a7c-5f43-4f5b-9c8d-2b0c1f6a7e11",
        },
        "type": "document",
        "timestamp": "2026-12-02T10:00:00+07:00",
        "entry": [{"fullUrl": "urn:uuid:0c3b2d51-9b38-4a4c-9e3a-5d2b8f1f7a01", "resource": composition}],
    }
    doc.update(changes)
    return doc


_NARRATIVE = {"status": "generated", "div": '<div xmlns="http://www.w3.org/1999/xhtml">x</div>'}


def test_document_bundle_invariants() -> None:
    assert_valid(_document())
    no_id = _document()
    del no_id["identifier"]
    assert "Bundle.identifier" in expressions(no_id)  # bdl-9
    assert "Bundle.identifier" in expressions(_document(identifier={"value": "x"}))
    no_time = _document()
    del no_time["timestamp"]
    assert "Bundle.timestamp" in expressions(no_time)  # bdl-10
    patient_first = _document(entry=[{"fullUrl": "urn:uuid:x", "resource": {"resourceType": "Patient"}}])
    assert "Bundle.entry[0].resource" in expressions(patient_first)  # bdl-11
    assert_valid({**_document(type="collection"), "entry": patient_first["entry"]})


def test_composition_section_invariants() -> None:
    doc = _document()
    section = doc["entry"][0]["resource"]["section"][0]
    section["entry"] = [{"reference": "Patient/1"}]
    found = expressions(doc)
    assert "Bundle.entry[0].resource.section[0].emptyReason" in found  # cmp-2
    nested = _document()
    nested["entry"][0]["resource"]["section"] = [{"title": "Outer", "section": [{"title": "Bare"}]}]
    assert "Bundle.entry[0].resource.section[0].section[0]" in expressions(nested)  # cmp-1
