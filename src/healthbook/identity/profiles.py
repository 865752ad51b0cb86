"""Vietnamese profile rules for Patient, Organization and Practitioner, run on every write.

Errors make the write a 422 OperationOutcome whose text is Vietnamese then English; warnings are
returned with the stored resource.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from healthbook.fhir.outcomes import Issue
from healthbook.identity import systems
from healthbook.identity.admin_units import Unit, units
from healthbook.identity.ethnicity import ETHNIC_GROUPS
from healthbook.identity.identifiers import (
    Problem,
    _date,
    check_bhyt,
    check_cccd,
    check_cmnd,
    check_facility_code,
    check_passport,
)

Check = Callable[[str], list[Problem]]


def _issues(problems: list[Problem], expression: str) -> list[Issue]:
    return [
        Issue(p.severity, "value" if p.severity == "error" else "business-rule", p.text, expression)
        for p in problems
    ]


def check_resource(doc: dict[str, Any]) -> list[Issue]:
    """Profile issues of one resource (an empty list for types without Vietnamese rules)."""
    rtype = doc.get("resourceType")
    if rtype not in ("Patient", "Organization", "Practitioner"):
        return []
    out: list[Issue] = []
    person = rtype != "Organization"
    gender = doc.get("gender") if isinstance(doc.get("gender"), str) else None
    birth = doc.get("birthDate") if isinstance(doc.get("birthDate"), str) else None
    for n, ident in enumerate(_list(doc.get("identifier"))):
        out += _identifier(ident, f"{rtype}.identifier[{n}]", person, gender, birth)
    for n, addr in enumerate(_list(doc.get("address"))):
        out += check_address(addr, f"{rtype}.address[{n}]")
    if rtype == "Patient":
        out += _extensions(doc)
    return out


def _identifier(
    ident: dict[str, Any], where: str, person: bool, gender: str | None, birth: str | None
) -> list[Issue]:
    system, value = ident.get("system"), ident.get("value")
    if not isinstance(system, str) or not isinstance(value, str):
        return []
    if ident.get("use") == "old" or _ended(ident):
        # A cancelled number stays for history: its layout matters, not its fit with today's record.
        gender = birth = None
    checks: dict[str, Check] = {}
    if person:
        checks = {
            systems.CCCD: lambda v: check_cccd(v, gender=gender, birth_date=birth),
            systems.BHYT: check_bhyt,
            systems.CMND: check_cmnd,
            systems.PASSPORT: lambda v: check_passport(v, vietnamese=True),
        }
    else:
        checks = {systems.FACILITY_CODE: check_facility_code}
    check = checks.get(system)
    if check is None and person and system.startswith(systems.PASSPORT_PREFIX):
        check = lambda v: check_passport(v, vietnamese=False)  # noqa: E731
    if check is None:
        return []
    return _issues(check(value), f"{where}.value")


def _ended(ident: dict[str, Any]) -> bool:
    period = ident.get("period")
    return isinstance(period, dict) and isinstance(period.get("end"), str)


def check_address(addr: Any, where: str) -> list[Issue]:
    """Province, district and commune codes of one address, in the era the address belongs to."""
    if not isinstance(addr, dict):
        return []
    codes = {
        ext.get("url"): ext.get("valueCode")
        for ext in _list(addr.get("extension"))
        if isinstance(ext, dict) and isinstance(ext.get("valueCode"), str)
    }
    province = codes.get(systems.EXT_PROVINCE)
    district = codes.get(systems.EXT_DISTRICT)
    commune = codes.get(systems.EXT_COMMUNE)
    if province is None and commune is None and district is None:
        return []
    u = units()
    period = addr.get("period")
    end = period.get("end") if isinstance(period, dict) else None
    ended = _date(end) if isinstance(end, str) else None
    eras = (
        ["legacy"] if district is not None or (ended and u.era_on(ended) == "legacy") else ["2025", "legacy"]
    )
    problems: list[tuple[str, str, str]] = []
    for era in eras:
        problems = _address_in(era, province, district, commune)
        if not problems:
            return []
    ext = {"province": systems.EXT_PROVINCE, "district": systems.EXT_DISTRICT, "commune": systems.EXT_COMMUNE}
    return [
        Issue("error", "code-invalid", f"{vi} / {en}", f"{where}.extension('{ext[level]}')")
        for level, vi, en in problems
    ]


def _address_in(
    era: str, province: str | None, district: str | None, commune: str | None
) -> list[tuple[str, str, str]]:
    u = units()
    label = "sau 01/07/2025" if era == "2025" else "trước 01/07/2025"
    label_en = "from 01/07/2025" if era == "2025" else "before 01/07/2025"
    out: list[tuple[str, str, str]] = []
    p: Unit | None = None
    if province is not None:
        p = u.province(province, era)
        if p is None:
            out.append(
                (
                    "province",
                    f"Mã tỉnh '{province}' không có trong danh mục đơn vị hành chính {label}",
                    f"Province code '{province}' is not an administrative unit {label_en}",
                )
            )
    if district is not None and era == "legacy":
        d = u.districts_legacy.get(district)
        if d is None or (p is not None and d.province != p.code):
            out.append(
                (
                    "district",
                    f"Mã huyện '{district}' không thuộc tỉnh '{province}'",
                    f"District code '{district}' is not in province '{province}'",
                )
            )
    if commune is not None:
        c = u.commune(commune, era)
        if c is None or (p is not None and c.province != p.code) or (district and c.district != district):
            out.append(
                (
                    "commune",
                    f"Mã xã '{commune}' không thuộc tỉnh '{province}' trong danh mục {label}",
                    f"Commune code '{commune}' is not in province '{province}' {label_en}",
                )
            )
    return out


def _extensions(doc: dict[str, Any]) -> list[Issue]:
    out: list[Issue] = []
    for n, ext in enumerate(_list(doc.get("extension"))):
        if not isinstance(ext, dict) or ext.get("url") != systems.EXT_ETHNICITY:
            continue
        concept = ext.get("valueCodeableConcept")
        codings = _list(concept.get("coding")) if isinstance(concept, dict) else []
        for coding in codings:
            if isinstance(coding, dict) and coding.get("system") == systems.CS_ETHNICITY:
                code = coding.get("code")
                if code not in ETHNIC_GROUPS:
                    out.append(
                        Issue(
                            "error",
                            "code-invalid",
                            f"Mã dân tộc '{code}' không có trong danh mục 54 dân tộc (01–54, 55 người nước "
                            f"ngoài) / Ethnic group code '{code}' is not one of the 54 groups (01–54, 55 "
                            "foreigners)",
                            f"Patient.extension[{n}]",
                        )
                    )
    return out


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []
