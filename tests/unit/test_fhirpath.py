"""The compiled FHIRPath subset (each syntax form) and the general fhirpathpy fallback behind it."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from healthbook.fhir.fhirpath import CompiledPath, Node, Unsupported, compile_path, reference_type
from healthbook.fhir.fhirpath_general import FHIRPathSyntaxError, GeneralPath, compile_general
from healthbook.fhir.search.extract import extract
from healthbook.fhir.search.registry import _compile, params_for

PATIENT: dict[str, Any] = {
    "resourceType": "Patient",
    "id": "p1",
    "name": [{"family": "Nguyễn", "given": ["Thị", "Ánh"]}, {"family": "Trần", "given": [None, "Lan"]}],
    "telecom": [{"system": "phone", "value": "0901"}, {"system": "email", "value": "a@b.vn"}],
    "gender": "female",
    "meta": {"tag": [{"system": "urn:t", "code": "vip"}]},
    "managingOrganization": {"reference": "Organization/o1"},
    "generalPractitioner": [
        {"reference": "Practitioner/pr1"},
        {"reference": "http://example.org/fhir/Organization/o9/_history/2"},
        {"reference": "#c1"},
        {"type": "PractitionerRole", "identifier": {"value": "x"}},
    ],
    "contained": [{"resourceType": "Practitioner", "id": "c1"}],
}
OBSERVATION: dict[str, Any] = {
    "resourceType": "Observation",
    "status": "final",
    "valueQuantity": {"value": 120, "unit": "mmHg"},
    "effectivePeriod": {"start": "2026-01-01"},
    "component": [{"valueString": "x"}, {"valueQuantity": {"value": 5}}],
    "subject": {"reference": "Patient/p1"},
}


def values(expr: str, resource: dict[str, Any]) -> list[Any]:
    return [n.value for n in compile_path(expr).evaluate(resource)]


# ---- the compiled subset, one syntax form at a time -------------------------------------------------------


def test_child_path_without_root_flattens_arrays_and_skips_nulls() -> None:
    assert values("name.given", PATIENT) == ["Thị", "Ánh", "Lan"]
    assert values("gender", PATIENT) == ["female"]
    assert values("nosuch.element", PATIENT) == []


def test_rooted_path_only_on_its_type() -> None:
    assert values("Patient.name.family", PATIENT) == ["Nguyễn", "Trần"]
    assert values("Patient.name.family", OBSERVATION) == []
    assert values("Observation.status", OBSERVATION) == ["final"]


def test_resource_and_domainresource_roots_apply_to_every_type() -> None:
    assert values("Resource.meta.tag", PATIENT) == [{"system": "urn:t", "code": "vip"}]
    assert values("DomainResource.meta.tag", OBSERVATION) == []
    path = compile_path("Resource.id")
    assert path.applies_to("Observation")
    assert path.applies_to("Patient")


def test_union_concatenates_parts_and_applies_to_each_root() -> None:
    path = compile_path("Patient.gender | Observation.status")
    assert [n.value for n in path.evaluate(PATIENT)] == ["female"]
    assert [n.value for n in path.evaluate(OBSERVATION)] == ["final"]
    assert path.applies_to("Patient")
    assert path.applies_to("Observation")
    assert not path.applies_to("Encounter")


def test_choice_element_reports_its_type_suffix() -> None:
    nodes = compile_path("Observation.value").evaluate(OBSERVATION)
    assert nodes == [Node({"value": 120, "unit": "mmHg"}, "Quantity")]
    comp = compile_path("Observation.component.value").evaluate(OBSERVATION)
    assert [(n.value, n.choice) for n in comp] == [("x", "String"), ({"value": 5}, "Quantity")]
    # an exact element name wins over the choice prefix
    assert compile_path("Observation.status").evaluate(OBSERVATION) == [Node("final", None)]


def test_parenthesised_as() -> None:
    assert values("(Observation.value as Quantity)", OBSERVATION) == [{"value": 120, "unit": "mmHg"}]
    assert values("(Observation.value as string)", OBSERVATION) == []
    assert values("(Observation.effective as Period).start", OBSERVATION) == ["2026-01-01"]


def test_as_and_oftype_functions() -> None:
    assert values("Observation.value.as(Quantity)", OBSERVATION) == [{"value": 120, "unit": "mmHg"}]
    assert values("Observation.effective.as(dateTime)", OBSERVATION) == []
    assert values("Observation.component.value.ofType(string)", OBSERVATION) == ["x"]
    # as() keeps non-choice nodes (the subset knows no element types)
    assert values("Patient.gender.as(code)", PATIENT) == ["female"]


def test_where_resolve_is_type() -> None:
    expr = "Patient.generalPractitioner.where(resolve() is Practitioner)"
    assert [v.get("reference") for v in values(expr, PATIENT)] == ["Practitioner/pr1", "#c1"]
    expr = "Patient.generalPractitioner.where(resolve() is Organization)"
    assert values(expr, PATIENT) == [{"reference": "http://example.org/fhir/Organization/o9/_history/2"}]
    expr = "Patient.generalPractitioner.where(resolve() is PractitionerRole)"
    assert values(expr, PATIENT) == [{"type": "PractitionerRole", "identifier": {"value": "x"}}]


def test_reference_type_forms() -> None:
    assert reference_type({"reference": "Patient/1"}, {}) == "Patient"
    assert reference_type({"reference": "Patient/1/_history/3"}, {}) == "Patient"
    assert reference_type({"reference": "urn:uuid:1234"}, {}) is None
    assert reference_type({"reference": "#gone"}, PATIENT) is None
    assert reference_type({"reference": "urn:uuid:1", "type": "Device"}, {}) == "Device"
    assert reference_type("Patient/1", {}) is None


def test_where_string_equality() -> None:
    assert values("Patient.telecom.where(system='phone').value", PATIENT) == ["0901"]
    assert values("Patient.telecom.where(system='fax')", PATIENT) == []
    assert values("Patient.telecom.where(system = 'email').value", PATIENT) == ["a@b.vn"]


def test_index() -> None:
    assert values("Patient.name[0].family", PATIENT) == ["Nguyễn"]
    assert values("Patient.name[1].given", PATIENT) == ["Lan"]
    assert values("Patient.name[5]", PATIENT) == []


def test_compile_is_cached() -> None:
    assert compile_path("Patient.name") is compile_path("Patient.name")
    assert isinstance(compile_path("Patient.name"), CompiledPath)


@pytest.mark.parametrize(
    "expr",
    [
        "Patient.deceased.exists()",
        "Patient.deceased.exists() and Patient.birthDate != false",
        "Patient.deceased.exists() or Patient.deceased != false",
        "Patient.name.first()",
        "Observation.value.where(value > 5)",
        "Patient.telecom.where(rank=1)",
        "Patient.name.where(resolve() as Patient)",
        "Patient.name +",
        "(Observation.value as Quantity",
        "Patient.name[x]",
        "%resource.id",
        "",
    ],
)
def test_outside_the_subset_raises_unsupported(expr: str) -> None:
    with pytest.raises(Unsupported):
        compile_path(expr)


def test_every_r4_search_expression_compiles() -> None:
    """The subset covers all R4 search parameters; the general fallback is there for anything else."""
    from healthbook.fhir.definitions import load_json

    outside = []
    for sp in load_json("searchparams.json"):
        expr = sp.get("expression")
        if expr:
            try:
                compile_path(expr)
            except Unsupported:
                outside.append(expr)
    assert outside == []


# ---- the general fallback ----------------------------------------------------------------------------------

DECEASED = "Patient.deceased.exists() and Patient.deceased != false"
DECEASED_CASES = [
    ({}, False),
    ({"deceasedBoolean": False}, False),
    ({"deceasedBoolean": True}, True),
    ({"deceasedDateTime": "2020-03-01T10:00:00Z"}, True),
]


@pytest.mark.parametrize(("extra", "expected"), DECEASED_CASES)
def test_general_deceased_expression(extra: dict[str, Any], expected: bool) -> None:
    path = compile_general(DECEASED)
    assert path.evaluate({"resourceType": "Patient", **extra}) == [Node(expected)]


@pytest.mark.parametrize(("extra", "expected"), DECEASED_CASES)
def test_compiled_deceased_expression_matches_fhirpath(extra: dict[str, Any], expected: bool) -> None:
    """The subset's special form for `X.exists() and X != false` gives what FHIRPath gives."""
    doc = {"resourceType": "Patient", **extra}
    assert compile_path(DECEASED).evaluate(doc) == [Node(expected)]
    assert compile_path(DECEASED).evaluate(doc) == compile_general(DECEASED).evaluate(doc)
    assert compile_path(DECEASED).evaluate({"resourceType": "Observation", **extra}) == []
    assert not compile_path(DECEASED).applies_to("Observation")


def test_registry_falls_back_to_the_general_evaluator() -> None:
    assert isinstance(params_for("Patient")["gender"].path, CompiledPath)
    assert params_for("Patient")["deceased"].indexed
    general = _compile("Patient.name.where(use = 'official' and family.exists()).family", "official-family")
    assert isinstance(general, GeneralPath)
    doc = {
        "resourceType": "Patient",
        "name": [{"use": "usual", "family": "A"}, {"use": "official", "family": "B"}],
    }
    assert general.evaluate(doc) == [Node("B")]
    assert _compile("Patient.name.(", "broken") is None


def test_deceased_indexes_as_token_true_false() -> None:
    def deceased_codes(doc: dict[str, Any]) -> list[str]:
        return [r["code"] for r in extract(doc).get("token", []) if r["param"] == "deceased"]

    assert deceased_codes({"resourceType": "Patient"}) == ["false"]
    assert deceased_codes({"resourceType": "Patient", "deceasedBoolean": True}) == ["true"]
    assert deceased_codes({"resourceType": "Patient", "deceasedDateTime": "2021-05"}) == ["true"]


def test_general_applies_to_its_root_type_only() -> None:
    path = compile_general(DECEASED)
    assert path.applies_to("Patient")
    assert not path.applies_to("Observation")
    assert path.evaluate({"resourceType": "Observation", "deceasedBoolean": True}) == []
    assert compile_general("name.exists()").applies_to("Observation")
    assert compile_general("Resource.id.exists()").applies_to("Observation")
    # type names inside string literals are not roots
    assert compile_general("name.where(text = 'Observation.x').exists()").applies_to("Patient")


def test_general_reports_choice_suffix_and_raw_values() -> None:
    path = compile_general("Observation.value")
    assert path.evaluate(OBSERVATION) == [Node({"value": 120, "unit": "mmHg"}, "Quantity")]
    comp = compile_general("Observation.component.value").evaluate(OBSERVATION)
    assert [(n.value, n.choice) for n in comp] == [("x", "String"), ({"value": 5}, "Quantity")]
    assert compile_general("Observation.status").evaluate(OBSERVATION) == [Node("final", None)]
    # values are the stored JSON values (no Decimal, no engine wrappers)
    assert compile_general("Observation.value.value").evaluate(OBSERVATION) == [Node(120, None)]
    assert compile_general("Observation.value.value + 0.5").evaluate(OBSERVATION) == [Node(120.5)]


def test_general_matches_compiled_subset_on_simple_paths() -> None:
    for expr in [
        "Patient.name.given",
        "Patient.telecom.where(system='phone').value",
        "Patient.name[1].family",
    ]:
        assert compile_general(expr).evaluate(PATIENT) == compile_path(expr).evaluate(PATIENT), expr


def test_general_failure_indexes_nothing_and_logs_no_content(caplog: pytest.LogCaptureFixture) -> None:
    path = compile_general("Observation.value < 200 '[lb_av]'")
    secret = {"resourceType": "Observation", "valueQuantity": {"value": 185, "unit": "SECRET-unit-Nguyen"}}
    with caplog.at_level(logging.DEBUG, logger="healthbook.fhir.fhirpath_general"):
        assert path.evaluate(secret) == []
    assert caplog.records, "the failure is logged"
    assert all(r.levelno == logging.DEBUG for r in caplog.records)
    assert "SECRET" not in caplog.text
    assert "Nguyen" not in caplog.text


def test_general_invalid_expression_raises_at_compile() -> None:
    for bad in ["Patient.name.(", "2 + 2 /* not finished", "Patient.name.where(", "name given"]:
        with pytest.raises(FHIRPathSyntaxError):
            compile_general(bad)
