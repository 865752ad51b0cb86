"""FHIRPath Patch (fhirpatch.html) on JSON resources, without a database."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from healthbook.errors import BadRequest, HealthbookError, Unprocessable
from healthbook.fhir import fhirpath_patch, patching


def op(kind: str, path: str, **parts: Any) -> dict[str, Any]:
    """One operation parameter; `value=` takes the value part's content ({"valueCode": ...} or parts)."""
    out: list[dict[str, Any]] = [
        {"name": "type", "valueCode": kind},
        {"name": "path", "valueString": path},
    ]
    for name, value in parts.items():
        if name in ("index", "source", "destination"):
            out.append({"name": name, "valueInteger": value})
        elif name == "name":
            out.append({"name": "name", "valueString": value})
        else:
            out.append({"name": "value", **value})
    return {"name": "operation", "part": out}


def patch(resource: dict[str, Any], *ops: dict[str, Any]) -> dict[str, Any]:
    apply = patching.fhirpath({"resourceType": "Parameters", "parameter": list(ops)})
    return apply(copy.deepcopy(resource))


PATIENT: dict[str, Any] = {
    "resourceType": "Patient",
    "id": "p1",
    "identifier": [
        {"system": "urn:cccd", "value": "001090000001"},
        {"system": "urn:bhyt", "value": "DN4010000000001"},
    ],
    "name": [{"family": "Nguyễn", "given": ["Văn", "An"], "_given": [None, {"id": "g2"}]}],
    "birthDate": "1990-04-30",
    "contact": [{"name": {"text": "Trần Thị Bình"}, "gender": "female"}],
}
OBSERVATION: dict[str, Any] = {
    "resourceType": "Observation",
    "status": "final",
    "code": {"text": "Huyết áp"},
    "valueQuantity": {"value": 120, "unit": "mmHg"},
    "component": [{"code": {"text": "tâm thu"}, "valueString": "x"}],
}

CASES: dict[str, tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]] = {
    "no operations": (PATIENT, [], {}),
    "replace a primitive": (
        PATIENT,
        [op("replace", "Patient.birthDate", value={"valueDate": "1991-01-02"})],
        {"birthDate": "1991-01-02"},
    ),
    "delete a primitive": (PATIENT, [op("delete", "Patient.birthDate")], {"birthDate": None}),
    "delete what is not there changes nothing": (PATIENT, [op("delete", "Patient.gender")], {}),
    "add a primitive with its extension": (
        PATIENT,
        [op("add", "Patient", name="gender", value={"valueCode": "male", "_valueCode": {"id": "x"}})],
        {"gender": "male", "_gender": {"id": "x"}},
    ),
    "replace a nested primitive": (
        PATIENT,
        [op("replace", "Patient.contact[0].name.text", value={"valueString": "Lê Văn C"})],
        {"contact": [{"name": {"text": "Lê Văn C"}, "gender": "female"}]},
    ),
    "add a complex": (
        PATIENT,
        [op("add", "Patient", name="maritalStatus", value={"valueCodeableConcept": {"text": "married"}})],
        {"maritalStatus": {"text": "married"}},
    ),
    "add an anonymous type from parts, repeating elements as lists": (
        PATIENT,
        [
            op(
                "add",
                "Patient",
                name="contact",
                value={
                    "part": [
                        {"name": "name", "valueHumanName": {"family": "Phạm"}},
                        {"name": "telecom", "valueContactPoint": {"system": "phone", "value": "0901"}},
                        {"name": "telecom", "valueContactPoint": {"system": "email", "value": "a@b.vn"}},
                    ]
                },
            )
        ],
        {
            "contact": [
                PATIENT["contact"][0],
                {
                    "name": {"family": "Phạm"},
                    "telecom": [
                        {"system": "phone", "value": "0901"},
                        {"system": "email", "value": "a@b.vn"},
                    ],
                },
            ]
        },
    ),
    "add appends to a list": (
        PATIENT,
        [op("add", "Patient.name[0]", name="given", value={"valueString": "Bình"})],
        {
            "name": [
                {"family": "Nguyễn", "given": ["Văn", "An", "Bình"], "_given": [None, {"id": "g2"}, None]}
            ]
        },
    ),
    "insert at the front keeps the extensions aligned": (
        PATIENT,
        [op("insert", "Patient.name[0].given", index=0, value={"valueString": "Zero"})],
        {
            "name": [
                {"family": "Nguyễn", "given": ["Zero", "Văn", "An"], "_given": [None, None, {"id": "g2"}]}
            ]
        },
    ),
    "insert into a list not there yet": (
        PATIENT,
        [op("insert", "Patient.telecom", index=0, value={"valueContactPoint": {"value": "0912"}})],
        {"telecom": [{"value": "0912"}]},
    ),
    "delete a list item takes its extension along": (
        PATIENT,
        [op("delete", "Patient.name[0].given[1]")],
        {"name": [{"family": "Nguyễn", "given": ["Văn"]}]},
    ),
    "delete the last item removes the list": (
        PATIENT,
        [op("delete", "Patient.contact[0]")],
        {"contact": None},
    ),
    "move within a list": (
        PATIENT,
        [op("move", "Patient.identifier", source=1, destination=0)],
        {"identifier": [PATIENT["identifier"][1], PATIENT["identifier"][0]]},
    ),
    "move a primitive with its extension": (
        PATIENT,
        [op("move", "Patient.name[0].given", source=1, destination=0)],
        {"name": [{"family": "Nguyễn", "given": ["An", "Văn"], "_given": [{"id": "g2"}, None]}]},
    ),
    "a where() selects the element": (
        PATIENT,
        [op("replace", "Patient.identifier.where(system='urn:bhyt').value", value={"valueString": "HT2"})],
        {"identifier": [PATIENT["identifier"][0], {"system": "urn:bhyt", "value": "HT2"}]},
    ),
    "later operations see the earlier ones": (
        PATIENT,
        [
            op("add", "Patient", name="gender", value={"valueCode": "male"}),
            op("replace", "Patient.gender", value={"valueCode": "female"}),
        ],
        {"gender": "female"},
    ),
    "a choice is replaced by another type": (
        OBSERVATION,
        [op("replace", "Observation.value", value={"valueString": "bình thường"})],
        {"valueQuantity": None, "valueString": "bình thường"},
    ),
    "a choice in a backbone element": (
        OBSERVATION,
        [op("replace", "Observation.component[0].value", value={"valueInteger": 80})],
        {"component": [{"code": {"text": "tâm thu"}, "valueInteger": 80}]},
    ),
    "add a choice by its base name": (
        PATIENT,
        [op("add", "Patient", name="deceased", value={"valueBoolean": False})],
        {"deceasedBoolean": False},
    ),
    "add a backbone element with a choice from parts": (
        OBSERVATION,
        [
            op(
                "add",
                "Observation",
                name="component",
                value={
                    "part": [
                        {"name": "code", "valueCodeableConcept": {"text": "tâm trương"}},
                        {"name": "value", "valueQuantity": {"value": 80}},
                    ]
                },
            )
        ],
        {
            "component": [
                OBSERVATION["component"][0],
                {"code": {"text": "tâm trương"}, "valueQuantity": {"value": 80}},
            ]
        },
    ),
    "a profile of Quantity fills a Quantity element": (
        OBSERVATION,
        [
            op(
                "add",
                "Observation",
                name="referenceRange",
                value={"part": [{"name": "low", "valueSimpleQuantity": {"value": 90}}]},
            )
        ],
        {"referenceRange": [{"low": {"value": 90}}]},
    ),
    "a contained resource is patched inside": (
        OBSERVATION,
        [
            op(
                "add",
                "Observation",
                name="contained",
                value={"resource": {"resourceType": "Patient", "id": "c"}},
            ),
            op("add", "Observation.contained[0]", name="gender", value={"valueCode": "male"}),
        ],
        {"contained": [{"resourceType": "Patient", "id": "c", "gender": "male"}]},
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_patch_operations(case: str) -> None:
    resource, ops, changes = CASES[case]
    expected = copy.deepcopy(resource)
    for key, value in changes.items():
        if value is None:
            expected.pop(key, None)
        else:
            expected[key] = value
    assert patch(resource, *ops) == expected


FAILS: dict[str, tuple[Any, type[HealthbookError], str | None]] = {
    "not a Parameters": ({"resourceType": "Patient"}, BadRequest, None),
    "a parameter not named operation": (
        {"resourceType": "Parameters", "parameter": [{"name": "op", "part": []}]},
        BadRequest,
        "Parameters.parameter[0]",
    ),
    "an unknown type": ([op("frobnicate", "Patient")], BadRequest, "Parameters.parameter[0].part[0]"),
    "an unknown part": (
        [{"name": "operation", "part": [{"name": "type", "valueCode": "delete"}, {"name": "where"}]}],
        BadRequest,
        "Parameters.parameter[0].part[1]",
    ),
    "a missing part": ([op("add", "Patient", name="gender")], BadRequest, "Parameters.parameter[0]"),
    "a negative index": (
        [op("insert", "Patient.identifier", index=-1, value={"valueIdentifier": {}})],
        BadRequest,
        "Parameters.parameter[0].part[2].valueInteger",
    ),
    "a path that is not FHIRPath": (
        [op("delete", "Patient.name(")],
        BadRequest,
        "Parameters.parameter[0].part[1]",
    ),
    "an empty path": ([op("delete", " ")], BadRequest, "Parameters.parameter[0].part[1]"),
    "a path too long": (
        [op("delete", "Patient" + ".name" * 500)],
        BadRequest,
        "Parameters.parameter[0].part[1]",
    ),
    "an index that is not an integer": (
        [
            {
                "name": "operation",
                "part": [
                    *op("move", "Patient.identifier")["part"],
                    {"name": "source", "valueDecimal": 1.5},
                    {"name": "destination", "valueInteger": 0},
                ],
            }
        ],
        BadRequest,
        "Parameters.parameter[0].part[2].valueInteger",
    ),
    "a value with two types": (
        [op("replace", "Patient.birthDate", value={"valueDate": "1990", "valueString": "1990"})],
        BadRequest,
        "Parameters.parameter[0].part[2]",
    ),
    "replace what is not there": (
        [op("replace", "Patient.gender", value={"valueCode": "male"})],
        Unprocessable,
        "Parameters.parameter[0]",
    ),
    "delete of several elements": ([op("delete", "Patient.identifier")], Unprocessable, None),
    "add what is already there": (
        [op("add", "Patient", name="birthDate", value={"valueDate": "1990"})],
        Unprocessable,
        None,
    ),
    "add an element the type does not have": (
        [op("add", "Patient", name="nickname", value={"valueString": "Tí"})],
        Unprocessable,
        None,
    ),
    "parts for a primitive": (
        [op("add", "Patient", name="gender", value={"part": [{"name": "x", "valueString": "y"}]})],
        Unprocessable,
        None,
    ),
    "parts naming an element twice that does not repeat": (
        [
            op(
                "add",
                "Patient",
                name="contact",
                value={
                    "part": [{"name": "gender", "valueCode": "male"}, {"name": "gender", "valueCode": "male"}]
                },
            )
        ],
        Unprocessable,
        None,
    ),
    "a value of the wrong type": (
        [op("replace", "Patient.birthDate", value={"valueHumanName": {"family": "x"}})],
        Unprocessable,
        None,
    ),
    "a resource where a datatype goes": (
        [op("add", "Patient", name="maritalStatus", value={"resource": {"resourceType": "Basic"}})],
        Unprocessable,
        None,
    ),
    "insert beyond the end": (
        [op("insert", "Patient.identifier", index=3, value={"valueIdentifier": {}})],
        Unprocessable,
        None,
    ),
    "insert into what is not a list": (
        [op("insert", "Patient.birthDate", index=0, value={"valueDate": "1990"})],
        Unprocessable,
        None,
    ),
    "move beyond the end": ([op("move", "Patient.identifier", source=0, destination=2)], Unprocessable, None),
    "change the id": ([op("replace", "Patient.id", value={"valueId": "other"})], Unprocessable, None),
    "add an id": ([op("add", "Patient.name[0]", name="id", value={"valueString": "n"})], None, None),
    "delete the resource": ([op("delete", "Patient")], Unprocessable, None),
    "a computed value": (
        [op("replace", "Patient.name.given.distinct().first()", value={"valueString": "x"})],
        Unprocessable,
        None,
    ),
    "a literal": ([op("replace", "'x'", value={"valueString": "y"})], Unprocessable, None),
    "an engine failure": ([op("delete", "Patient.name.given + 1")], Unprocessable, None),
    "an engine error value": ([op("delete", "Patient.name.given.single()")], Unprocessable, None),
}


@pytest.mark.parametrize("case", list(FAILS))
def test_bad_patches_are_refused_with_the_operation_named(case: str) -> None:
    body, error, where = FAILS[case]
    if isinstance(body, list):
        body = {"resourceType": "Parameters", "parameter": body}
    before = copy.deepcopy(PATIENT)
    if error is None:  # an id of an element (not of the resource) is an ordinary element
        assert patching.fhirpath(body)(copy.deepcopy(PATIENT))["name"][0]["id"] == "n"
        return
    with pytest.raises(error) as caught:
        patching.fhirpath(body)(copy.deepcopy(PATIENT))
    issue = caught.value.issues[0]
    assert issue.diagnostics
    if where is not None:
        assert issue.expression == where
    elif error is Unprocessable:
        assert issue.expression == "Parameters.parameter[0]"  # the operation that does not fit
    assert before == PATIENT


def test_too_many_operations_are_refused_before_any_runs() -> None:
    ops = [op("delete", "Patient.gender")] * (fhirpath_patch.MAX_OPERATIONS + 1)
    with pytest.raises(BadRequest):
        patching.fhirpath({"resourceType": "Parameters", "parameter": ops})


def test_the_content_type_chooses_the_format() -> None:
    with pytest.raises(BadRequest, match="FHIRPath Patch"):
        patching.parse([{"op": "remove", "path": "/gender"}], "application/fhir+json")
    with pytest.raises(BadRequest, match="JSON Patch"):
        patching.parse({"resourceType": "Parameters"}, patching.JSON_PATCH)
    for media in (patching.JSON_PATCH, "application/json"):
        remove = patching.parse([{"op": "remove", "path": "/birthDate"}], media)
        assert "birthDate" not in remove(copy.deepcopy(PATIENT))


def test_json_patch_may_not_move_the_id_away() -> None:
    with pytest.raises(Unprocessable):
        patching.json_patch([{"op": "move", "from": "/id", "path": "/language"}])


def test_a_delete_that_empties_an_element_removes_it_and_keeps_companions_aligned() -> None:
    contact = {"resourceType": "Patient", "contact": [{"name": {"text": "a"}, "gender": "male"}]}
    assert patch(contact, op("delete", "Patient.contact[0].name.text")) == {
        "resourceType": "Patient",
        "contact": [{"gender": "male"}],
    }
    ext = {"url": "http://example.org/x", "valueString": "y"}
    named = {
        "resourceType": "Patient",
        "name": [{"given": ["A", "B"], "_given": [{"extension": [ext]}, None]}],
    }
    assert patch(named, op("delete", "Patient.name[0].given.extension[0]")) == {
        "resourceType": "Patient",
        "name": [{"given": ["A", "B"]}],
    }
    two = {
        "resourceType": "Patient",
        "name": [{"given": ["A", "B"], "_given": [{"extension": [ext]}, {"id": "b"}]}],
    }
    assert patch(two, op("delete", "Patient.name[0].given.extension[0]"))["name"][0]["_given"] == [
        None,
        {"id": "b"},
    ]


def test_the_narrative_div_is_an_element_name_after_a_dot() -> None:
    doc = {
        "resourceType": "Patient",
        "text": {"status": "generated", "div": '<div xmlns="http://www.w3.org/1999/xhtml">a</div>'},
    }
    new = '<div xmlns="http://www.w3.org/1999/xhtml">b</div>'
    out = patch(doc, op("replace", "Patient.text.div", value={"valueString": new}))
    assert out["text"]["div"] == new
    assert fhirpath_patch._member_keywords("Patient.text.div") == "Patient.text.`div`"
    assert fhirpath_patch._member_keywords("Patient.x.where(y = '.div') and 4 div 2") == (
        "Patient.x.where(y = '.div') and 4 div 2"
    )


def test_an_extension_is_added_to_a_primitive_in_its_companion() -> None:
    ext = {"url": "http://example.org/reason", "valueString": "ước tính"}
    add = op("add", "Patient.birthDate", name="extension", value={"valueExtension": ext})
    assert patch(PATIENT, add)["_birthDate"] == {"extension": [ext]}
    add_item = op("add", "Patient.name[0].given[0]", name="extension", value={"valueExtension": ext})
    assert patch(PATIENT, add_item)["name"][0]["_given"] == [{"extension": [ext]}, {"id": "g2"}]
