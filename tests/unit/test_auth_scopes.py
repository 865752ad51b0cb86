"""SMART scopes: the v2 and v1 grammar, what a set of scopes allows, granular scopes as filters."""

from __future__ import annotations

import pytest

from healthbook.auth.scopes import (
    SmartScope,
    parse_scope,
    parse_scopes,
    scope_allows,
    scope_restrictions,
)


@pytest.mark.parametrize(
    ("text", "context", "rtype", "perms"),
    [
        ("patient/*.rs", "patient", "*", "rs"),
        ("user/Observation.cruds", "user", "Observation", "cruds"),
        ("system/*.rs", "system", "*", "rs"),
        ("patient/Immunization.r", "patient", "Immunization", "r"),
        ("user/Patient.cud", "user", "Patient", "cud"),
        ("patient/*.read", "patient", "*", "rs"),  # v1
        ("user/Observation.write", "user", "Observation", "cud"),  # v1
        ("system/*.*", "system", "*", "cruds"),  # v1
    ],
)
def test_parse_valid(text: str, context: str, rtype: str, perms: str) -> None:
    scope = parse_scope(text)
    assert scope == SmartScope(context, rtype, frozenset(perms))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "text",
    [
        "patient/*.sr",  # out of order
        "patient/*.rr",  # repeated
        "patient/*.x",
        "patient/*.",
        "patient/observation.rs",  # not a resource type
        "clinic/*.rs",
        "patient/*.read?category=x",  # v1 has no query
        "patient/*.rs?",
        "patient/*",
        "openid",
    ],
)
def test_parse_invalid(text: str) -> None:
    assert parse_scope(text) is None


def test_granular_scope_params() -> None:
    scope = parse_scope(
        "patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory"
    )
    assert scope is not None
    assert scope.params == (
        ("category", "http://terminology.hl7.org/CodeSystem/observation-category|laboratory"),
    )
    assert str(scope).startswith("patient/Observation.rs?category=")


def test_parse_scopes_keeps_other_names_and_drops_malformed() -> None:
    scopes = parse_scopes(
        "openid fhirUser launch/patient patient/*.rs patient/Observation.xyz offline_access"
    )
    assert scopes.other == {"openid", "fhirUser", "launch/patient", "offline_access"}
    assert list(scopes) == [SmartScope("patient", "*", frozenset("rs"))]
    assert scopes.names() == ["fhirUser", "launch/patient", "offline_access", "openid", "patient/*.rs"]


def test_parse_scopes_list_claim() -> None:
    assert {str(s) for s in parse_scopes(["user/*.rs", "system/Patient.c"])} == {
        "user/*.rs",
        "system/Patient.c",
    }
    assert not parse_scopes(None)


@pytest.mark.parametrize(
    ("granted", "context", "rtype", "interaction", "allowed"),
    [
        ("patient/*.rs", "patient", "Observation", "read", True),
        ("patient/*.rs", "patient", "Observation", "search", True),
        ("patient/*.rs", "patient", "Observation", "create", False),
        ("patient/*.rs", "user", "Observation", "read", False),  # wrong context
        ("patient/*.rs", None, "Observation", "read", True),  # any context
        ("user/Observation.cruds", "user", "Observation", "delete", True),
        ("user/Observation.cruds", "user", "Condition", "read", False),
        ("user/Observation.cruds", "user", None, "search", False),  # system-level needs a wildcard
        ("system/*.rs", "system", None, "search", True),
        ("system/*.rs", "system", "Patient", "export", True),
        ("system/*.rs", "system", "Patient", "import", False),
        ("patient/*.read", "patient", "Immunization", "vread", True),  # v1
        ("patient/*.read", "patient", "Immunization", "update", False),
        ("user/*.write", "user", "Patient", "patch", True),  # v1 write = cud
        ("patient/*.r patient/*.s", "patient", "Patient", "everything", True),  # letters from two scopes
        ("patient/*.r", "patient", "Patient", "everything", False),
        ("patient/*.rs", "patient", "Patient", "rs", True),  # SMART letters
        ("openid fhirUser", "patient", "Patient", "read", False),
        ("", "patient", "Patient", "read", False),
    ],
)
def test_scope_allows(
    granted: str, context: str | None, rtype: str | None, interaction: str, allowed: bool
) -> None:
    assert scope_allows(parse_scopes(granted), context, rtype, interaction) is allowed  # type: ignore[arg-type]


def test_unknown_interaction_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown interaction"):
        scope_allows(parse_scopes("patient/*.rs"), "patient", "Patient", "frobnicate")


def test_granular_scopes_are_filters_not_grants() -> None:
    scopes = parse_scopes(
        "patient/Observation.rs?category=laboratory patient/Observation.rs?category=vital-signs"
    )
    assert not scope_allows(scopes, "patient", "Observation", "search")
    assert scope_restrictions(scopes, "patient", "Observation", "search") == (
        (("category", "laboratory"),),
        (("category", "vital-signs"),),
    )
    assert scope_restrictions(scopes, "patient", "Condition", "search") is None
    both = parse_scopes("patient/Observation.rs?category=laboratory patient/*.rs")
    assert scope_restrictions(both, "patient", "Observation", "search") == ()
