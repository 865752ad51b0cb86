"""The access rules read off records (healthbook.access.derive) and the type-level policy, without a database."""

from __future__ import annotations

from typing import Any

import pytest

from healthbook.access import derive
from healthbook.access.policy import RecordPolicy
from healthbook.access.view import grantees, subject_key
from healthbook.auth.scopes import parse_scopes
from healthbook.auth.subject import Caller, Role
from healthbook.errors import Forbidden
from healthbook.identity import systems

PRIVACY = {
    "coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]
}
FACILITY = {"identifier": {"system": systems.FACILITY_CODE, "value": "79001"}}


def consent(provision: dict[str, Any], **over: Any) -> dict[str, Any]:
    return {"resourceType": "Consent", "status": "active", "scope": PRIVACY, "provision": provision, **over}


def test_a_permit_with_types_period_data_range_and_purpose() -> None:
    rules = derive.consent_rules(
        consent(
            {
                "type": "permit",
                "actor": [{"reference": FACILITY}],
                "class": [{"system": derive.RESOURCE_TYPES_SYSTEM, "code": "Observation"}],
                "period": {"start": "2026-01-01", "end": "2026-12-31"},
                "dataPeriod": {"start": "2020", "end": "2021-06"},
                "purpose": [{"code": "TREAT"}],
            }
        )
    )
    (permit,) = rules.permits
    assert permit.actors[0].facility == "79001"
    assert permit.types == ("Observation",)
    assert (
        permit.valid_from is not None and permit.valid_to is not None and permit.valid_from < permit.valid_to
    )
    assert permit.data_from is not None and permit.data_to is not None
    assert permit.purpose == "TREAT"
    assert rules.hidden == ()


def test_deny_base_with_nested_permit_and_hidden_records() -> None:
    rules = derive.consent_rules(
        consent(
            {
                "type": "deny",
                "provision": [
                    {"type": "permit", "actor": [{"reference": {"reference": "RelatedPerson/r1"}}]},
                    {
                        "type": "deny",
                        "data": [{"meaning": "instance", "reference": {"reference": "Encounter/e1"}}],
                    },
                ],
            }
        )
    )
    assert [a.reference for p in rules.permits for a in p.actors] == ["RelatedPerson/r1"]
    assert rules.permits[0].types == ("*",)
    assert rules.hidden == (("Encounter", "e1"),)


@pytest.mark.parametrize(
    "doc",
    [
        consent({"type": "permit", "actor": [{"reference": FACILITY}]}, status="inactive"),
        consent(
            {"type": "permit", "actor": [{"reference": FACILITY}]}, scope={"coding": [{"code": "treatment"}]}
        ),
        {"resourceType": "Consent", "status": "active", "scope": PRIVACY},
    ],
)
def test_consents_that_grant_nothing(doc: dict[str, Any]) -> None:
    assert derive.consent_rules(doc) == derive.ConsentRules()


@pytest.mark.parametrize(
    ("provision", "where"),
    [
        ({"type": "permit"}, "Consent.provision.actor"),
        ({"type": "deny", "actor": [{"reference": FACILITY}]}, "Consent.provision.actor"),
        ({"type": "permit", "actor": [{"reference": {"display": "someone"}}]}, "Consent.provision.actor[0].reference"),
        ({"type": "permit", "actor": [{"reference": FACILITY}], "data": [{"reference": {"reference": "Observation/1"}}]}, "Consent.provision.data"),
        ({"type": "deny", "data": [{"reference": {"reference": "http://x/Observation/1"}}]}, "Consent.provision.data[0].reference"),
        ({"type": "permit", "actor": [{"reference": FACILITY}], "class": [{"system": "urn:x", "code": "y"}]}, "Consent.provision.class"),
    ],
)  # fmt: skip
def test_what_cannot_be_enforced_grants_nothing_and_is_reported(
    provision: dict[str, Any], where: str
) -> None:
    rules = derive.consent_rules(consent(provision))
    assert rules.permits == () and rules.hidden == ()
    assert [path for _, path in rules.unenforced] == [where]
    warnings = derive.consent_warnings(consent(provision))
    assert [(w.severity, w.expression) for w in warnings] == [("warning", where)]


def test_guardians_are_parents_with_a_personal_id() -> None:
    mother = {
        "resourceType": "RelatedPerson",
        "identifier": [{"system": systems.CCCD, "value": "001192000777"}],
        "relationship": [{"coding": [{"code": "MTH"}]}],
        "period": {"end": "2030-01-01"},
    }
    found = derive.guardian(mother)
    assert found is not None and found[0] == "001192000777" and found[2] is not None
    assert derive.guardian({**mother, "active": False}) is None
    assert derive.guardian({**mother, "relationship": [{"coding": [{"code": "FRND"}]}]}) is None
    assert derive.guardian({**mother, "identifier": []}) is None


def test_encounter_ids_of_records() -> None:
    assert derive.encounter_ids({"encounter": {"reference": "Encounter/a"}}) == ["a"]
    doc = {"context": {"encounter": [{"reference": "Encounter/b"}, {"reference": "Encounter/c"}]}}
    assert derive.encounter_ids(doc) == ["b", "c"]
    assert derive.encounter_ids({"encounter": {"display": "x"}}) == []


def _caller(role: Role, scope: str, **claims: Any) -> Caller:
    return Caller(subject="s", issuer="https://id.example", role=role, scopes=parse_scopes(scope), **claims)


def test_type_level_policy_by_role_and_scope() -> None:
    policy = RecordPolicy(auth_required=True)
    citizen = _caller(Role.CITIZEN, "patient/*.rs", cccd="001190012345")
    policy.check(citizen, "search", "Observation")
    policy.check(Caller.system("cli"), "history-system", None)
    with pytest.raises(Forbidden):
        policy.check(citizen, "history-type", "Observation")  # not for a citizen, whatever the scopes
    with pytest.raises(Forbidden):
        policy.check(citizen, "create", "Consent")  # no write scope
    with pytest.raises(Forbidden):
        policy.check(Caller(subject="anonymous"), "read", "Patient")  # auth required: anonymous is nobody
    manager = _caller(Role.MANAGER, "user/*.rs", province="01")
    with pytest.raises(Forbidden):
        policy.check(manager, "everything", "Patient")
    worker = _caller(Role.HEALTH_WORKER, "user/*.cruds", facility="01001")
    policy.check(worker, "break-glass", "Patient")
    assert RecordPolicy(auth_required=False).unrestricted(Caller(subject="anonymous"))
    assert not RecordPolicy(auth_required=False).unrestricted(worker)


def test_grantee_names() -> None:
    assert grantees(_caller(Role.CITIZEN, "", cccd="001190012345")) == ("cccd:001190012345",)
    worker = _caller(Role.HEALTH_WORKER, "", facility="01001")
    assert grantees(worker) == ("facility:01001", subject_key(worker))
    assert grantees(_caller(Role.MANAGER, "", province="01")) == ()
    other = Caller(subject="s", issuer="https://other.example", role=Role.HEALTH_WORKER, facility="01001")
    assert subject_key(other) != subject_key(worker)
