"""Vietnamese profile rules: identifiers in context, address codes of both eras, ethnicity codes."""

from __future__ import annotations

from typing import Any

from healthbook.identity import systems
from healthbook.identity.admin_units import units
from healthbook.identity.profiles import check_address, check_resource


def address(
    province: str | None, commune: str | None = None, district: str | None = None, **extra: Any
) -> dict[str, Any]:
    ext = []
    if province is not None:
        ext.append({"url": systems.EXT_PROVINCE, "valueCode": province})
    if district is not None:
        ext.append({"url": systems.EXT_DISTRICT, "valueCode": district})
    if commune is not None:
        ext.append({"url": systems.EXT_COMMUNE, "valueCode": commune})
    return {"extension": ext, **extra}


def test_units_of_both_eras() -> None:
    u = units()
    assert len(u.provinces_2025) == 34
    assert len(u.communes_2025) == 3321
    assert len(u.provinces_legacy) == 63
    assert u.province("15", "2025").name == "Tỉnh Lào Cai"  # the new Lào Cai took Yên Bái's code
    assert u.province("15", "legacy").name == "Tỉnh Yên Bái"
    assert u.current_province("02") == "08"  # Hà Giang → Tuyên Quang
    assert u.current_province("01") == "01"
    assert u.province("02", "2025") is None


def test_address_2025() -> None:
    assert check_address(address("01", "10144"), "Patient.address[0]") == []
    bad = check_address(address("01", "26734"), "Patient.address[0]")  # a Hồ Chí Minh ward under Hà Nội
    assert bad and bad[0].severity == "error" and "Patient.address[0].extension" in (bad[0].expression or "")


def test_address_of_a_merged_province_is_still_accepted() -> None:
    # Older records carry the 63-province codes: Hà Giang (02), with its district and commune.
    u = units()
    commune = next(c for c in u.communes_legacy.values() if c.province == "02")
    assert check_address(address("02", commune.code, commune.district), "a") == []
    assert check_address(address("02"), "a") == []  # province only, before 2025
    # a legacy commune with a district of another province is refused
    other = next(d for d in u.districts_legacy.values() if d.province == "01")
    assert check_address(address("02", commune.code, other.code), "a")


def test_unknown_province_in_both_eras() -> None:
    (issue,) = check_address(address("03"), "Patient.address[0]")
    assert "03" in issue.diagnostics and " / " in issue.diagnostics


def test_address_without_codes_is_not_checked() -> None:
    assert check_address({"text": "Thôn Tân Lập, Xã Tam Hưng, Thành phố Hà Nội"}, "a") == []


def test_patient_identifier_issues_carry_their_path() -> None:
    doc = {
        "resourceType": "Patient",
        "gender": "female",
        "birthDate": "2000-01-01",
        "identifier": [
            {"system": "urn:other", "value": "x"},
            {"system": systems.CCCD, "value": "001199012345"},
        ],
    }
    (issue,) = check_resource(doc)
    assert issue.severity == "error" and issue.expression == "Patient.identifier[1].value"
    assert "1999" in issue.diagnostics and "2000-01-01" in issue.diagnostics


def test_cancelled_number_is_checked_for_layout_only() -> None:
    doc = {
        "resourceType": "Patient",
        "gender": "male",
        "birthDate": "1980-05-05",
        "identifier": [
            {"system": systems.CCCD, "value": "001080012345"},
            {"system": systems.CCCD, "value": "001179012345", "use": "old"},  # issued before a correction
        ],
    }
    assert check_resource(doc) == []
    doc["identifier"][1]["value"] = "0011790123"
    assert check_resource(doc)


def test_organization_facility_code() -> None:
    org = {"resourceType": "Organization", "identifier": [{"system": systems.FACILITY_CODE, "value": "0190"}]}
    (issue,) = check_resource(org)
    assert issue.expression == "Organization.identifier[0].value"
    org["identifier"][0]["value"] = "01901"
    assert check_resource(org) == []


def test_practitioner_identity_number() -> None:
    doc = {"resourceType": "Practitioner", "identifier": [{"system": systems.CCCD, "value": "12"}]}
    assert check_resource(doc)


def test_ethnicity_code() -> None:
    doc: dict[str, Any] = {
        "resourceType": "Patient",
        "extension": [
            {
                "url": systems.EXT_ETHNICITY,
                "valueCodeableConcept": {"coding": [{"system": systems.CS_ETHNICITY, "code": "01"}]},
            }
        ],
    }
    assert check_resource(doc) == []
    doc["extension"][0]["valueCodeableConcept"]["coding"][0]["code"] = "99"
    (issue,) = check_resource(doc)
    assert "99" in issue.diagnostics


def test_other_resource_types_have_no_rules() -> None:
    assert (
        check_resource(
            {"resourceType": "Observation", "identifier": [{"system": systems.CCCD, "value": "1"}]}
        )
        == []
    )
