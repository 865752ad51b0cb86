"""Data-quality report ("đúng – đủ – sạch – sống") scored per facility and per province.

One streamed pass over the current resources, one patient at a time (memory stays flat), plus one
query for unresolvable references. Each record (a Patient or a clinical resource) is checked; a
unit's score is the share of its records without any problem. At national scale the same checks
run in an analytics engine over the bulk export (docs/quality.md).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from healthbook.auth.subject import Caller
from healthbook.fhir import jsonio
from healthbook.fhir.compartment import NO_PATIENT_PREFIX
from healthbook.fhir.service import FhirService
from healthbook.identity import systems
from healthbook.identity.admin_units import units
from healthbook.identity.matching import person_of
from healthbook.identity.profiles import check_resource
from healthbook.identity.service import current_numbers
from healthbook.reports import repository as repo
from healthbook.terminology import icd10

# kind → (Vietnamese, English)
KINDS = {
    "invalid-identifier": ("Định danh không hợp lệ", "Invalid identifier"),
    "missing-field": ("Thiếu trường bắt buộc", "Missing mandatory field"),
    "likely-duplicate": ("Nghi trùng hồ sơ", "Likely duplicate"),
    "no-recent-data": ("Còn sống nhưng nhiều năm không có dữ liệu", "Living person with no data for years"),
    "unresolvable-reference": ("Tham chiếu không tồn tại", "Unresolvable reference"),
    "code-invalid": ("Mã ngoài danh mục", "Code outside its code system"),
}
EXAMPLES = 3
UNKNOWN = "?"
# The date that says when care happened, per type (the first present wins).
_CLINICAL_DATES = {
    "Encounter": ("period.end", "period.start"),
    "Observation": ("effectiveDateTime", "effectivePeriod.start", "issued"),
    "Condition": ("recordedDate", "onsetDateTime"),
    "Immunization": ("occurrenceDateTime",),
    "MedicationRequest": ("authoredOn",),
    "MedicationDispense": ("whenHandedOver",),
    "Procedure": ("performedDateTime", "performedPeriod.start"),
    "DiagnosticReport": ("effectiveDateTime", "issued"),
    "Appointment": ("start",),
    "ServiceRequest": ("authoredOn",),
}
_MANDATORY = {
    "Patient": ("name", "gender", "birthDate", "address"),
    "Encounter": ("period", "serviceProvider"),
    "Condition": ("code", "subject"),
    "Observation": ("code", "subject"),
    "Immunization": ("vaccineCode", "occurrenceDateTime"),
    "MedicationRequest": ("medicationCodeableConcept|medicationReference", "subject", "authoredOn"),
}


@dataclass
class Unit:
    """The tally of one facility or province."""

    name: str
    records: int = 0
    clean: int = 0
    patients: int = 0
    issues: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)

    @property
    def score(self) -> float:
        """Share of records without any problem, 0–100."""
        return round(100.0 * self.clean / self.records, 1) if self.records else 100.0


@dataclass
class Report:
    """Units by kind ("facility" or "province") and code."""

    generated: str
    years: int
    facilities: dict[str, Unit] = field(default_factory=dict)
    provinces: dict[str, Unit] = field(default_factory=dict)
    total: Unit = field(default_factory=lambda: Unit("Toàn quốc / national"))


@dataclass(frozen=True)
class _Facility:
    code: str
    name: str
    province: str


def quality_report(
    fhir: FhirService,
    caller: Caller,
    *,
    years: int = 3,
    today: dt.date | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> Report:
    """Score every facility and province on the current data."""
    fhir.policy.check(caller, "report", None)
    today = today or dt.date.today()
    cutoff = (today - dt.timedelta(days=365 * years)).isoformat()
    report = Report(generated=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), years=years)
    u = units()
    for code, unit in u.provinces_2025.items():
        report.provinces[code] = Unit(unit.name)
    with fhir.db.snapshot() as conn:
        orgs = {rid: _facility(jsonio.loads(content)) for rid, content in repo.organizations(conn)}
        dangling = repo.dangling_references(conn)
        duplicates = repo.open_duplicates(conn)
        for done, (key, group) in enumerate(repo.by_patient(conn), start=1):
            if key.startswith(NO_PATIENT_PREFIX):
                continue  # facilities, practitioners, code lists: reference data, not a citizen's record
            _patient_group(report, key, group, orgs, dangling, duplicates, cutoff)
            if on_progress is not None and done % 1000 == 0:
                on_progress(done)
    report.provinces = {k: v for k, v in report.provinces.items() if v.records}
    return report


def _facility(doc: dict[str, Any]) -> _Facility:
    code = next(
        (
            i["value"]
            for i in doc.get("identifier") or []
            if isinstance(i, dict)
            and i.get("system") == systems.FACILITY_CODE
            and isinstance(i.get("value"), str)
        ),
        "",
    )
    province = (units().current_province(code[:2]) or UNKNOWN) if code else UNKNOWN
    return _Facility(code or f"Organization/{doc.get('id')}", str(doc.get("name") or code or "?"), province)


def _patient_group(
    report: Report,
    key: str,
    group: list[tuple[str, str, str]],
    orgs: dict[str, _Facility],
    dangling: set[tuple[str, str, str]],
    duplicates: set[str],
    cutoff: str,
) -> None:
    docs = [(rtype, rid, jsonio.loads(content)) for rtype, rid, content in group]
    patient = next((d for t, _, d in docs if t == "Patient"), None)
    encounter_org: dict[str, _Facility] = {}
    for rtype, rid, doc in docs:
        if rtype == "Encounter":
            org = _org_of(doc.get("serviceProvider"), orgs)
            if org is not None:
                encounter_org[rid] = org
    home = _home_facility(patient, orgs, encounter_org)
    home_province = _province_of(patient) or (home.province if home else UNKNOWN)
    last_care = max((_clinical_date(t, d) for t, _, d in docs if t != "Patient"), default="")
    for rtype, rid, doc in docs:
        problems: list[str] = []
        if rtype == "Patient":
            problems += _patient_problems(doc, duplicates)
            if not _deceased(doc) and last_care < cutoff:
                problems.append("no-recent-data")
        problems += [f"missing-field:{f}" for f in _missing(rtype, doc)]
        if rtype == "Condition":
            problems += _condition_problems(doc, patient)
        if (key, rtype, rid) in dangling:
            problems.append("unresolvable-reference")
        facility = home if rtype == "Patient" else _resource_facility(doc, orgs, encounter_org) or home
        province = home_province if rtype == "Patient" or facility is None else facility.province
        _tally(report, facility, province, f"{rtype}/{rid}", problems, patient=rtype == "Patient")


def _patient_problems(doc: dict[str, Any], duplicates: set[str]) -> list[str]:
    out = ["invalid-identifier" for i in check_resource(doc) if ".identifier" in (i.expression or "")][:1]
    if not current_numbers(doc) and not _foreign(doc):
        out.append(f"missing-field:identifier({systems.CCCD})")
    if doc.get("id") in duplicates:
        out.append("likely-duplicate")
    return out


def _condition_problems(doc: dict[str, Any], patient: dict[str, Any] | None) -> list[str]:
    out: list[str] = []
    for coding in (doc.get("code") or {}).get("coding") or []:
        if not isinstance(coding, dict) or coding.get("system") != icd10.SYSTEM:
            continue
        entry = icd10.lookup(str(coding.get("code") or ""))
        if entry is None:
            out.append("code-invalid")
        elif entry.sex_only and patient is not None:
            sex = {"F": "female", "M": "male"}[entry.sex_only]
            if patient.get("gender") in ("male", "female") and patient.get("gender") != sex:
                out.append("code-invalid")
    return out[:1]


def _missing(rtype: str, doc: dict[str, Any]) -> list[str]:
    return [f for f in _MANDATORY.get(rtype, ()) if not any(doc.get(alt) for alt in f.split("|"))]


def _clinical_date(rtype: str, doc: dict[str, Any]) -> str:
    for path in _CLINICAL_DATES.get(rtype, ()):
        value: Any = doc
        for part in path.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if isinstance(value, str):
            return value[:10]
    meta = doc.get("meta") or {}
    return str(meta.get("lastUpdated") or "")[:10] if rtype not in _CLINICAL_DATES else ""


def _deceased(doc: dict[str, Any]) -> bool:
    return bool(doc.get("deceasedBoolean") or doc.get("deceasedDateTime"))


def _foreign(doc: dict[str, Any]) -> bool:
    for ext in doc.get("extension") or []:
        if isinstance(ext, dict) and ext.get("url") == systems.EXT_NATIONALITY:
            codes = [c.get("code") for c in (ext.get("valueCodeableConcept") or {}).get("coding") or []]
            return "VN" not in codes
    return False


def _org_of(ref: Any, orgs: dict[str, _Facility]) -> _Facility | None:
    if isinstance(ref, dict) and isinstance(ref.get("reference"), str):
        return orgs.get(ref["reference"].removeprefix("Organization/"))
    return None


def _home_facility(
    patient: dict[str, Any] | None, orgs: dict[str, _Facility], encounter_org: dict[str, _Facility]
) -> _Facility | None:
    """Where the record is managed: the registered primary-care facility, else the last one seen."""
    if patient is not None:
        for ref in patient.get("generalPractitioner") or []:
            org = _org_of(ref, orgs)
            if org is not None:
                return org
        org = _org_of(patient.get("managingOrganization"), orgs)
        if org is not None:
            return org
    return next(reversed(encounter_org.values()), None) if encounter_org else None


def _resource_facility(
    doc: dict[str, Any], orgs: dict[str, _Facility], encounter_org: dict[str, _Facility]
) -> _Facility | None:
    enc = doc.get("encounter") or doc.get("context")
    if isinstance(enc, dict) and isinstance(enc.get("reference"), str):
        org = encounter_org.get(enc["reference"].removeprefix("Encounter/"))
        if org is not None:
            return org
    for name in ("serviceProvider", "performer", "recorder", "requester", "location"):
        value = doc.get(name)
        for ref in value if isinstance(value, list) else [value]:
            org = _org_of(ref.get("actor") if isinstance(ref, dict) and "actor" in ref else ref, orgs)
            if org is not None:
                return org
    return None


def _province_of(patient: dict[str, Any] | None) -> str | None:
    if patient is None:
        return None
    return person_of(patient).province or None


def _units_for(report: Report, facility: _Facility | None, province: str) -> list[Unit]:
    fac_key = facility.code if facility else UNKNOWN
    fac = report.facilities.setdefault(fac_key, Unit(facility.name if facility else "Không rõ / unknown"))
    known = units().provinces_2025.get(province)
    prov = report.provinces.setdefault(province, Unit(known.name if known else "Không rõ / unknown"))
    return [fac, prov, report.total]


def _tally(
    report: Report, facility: _Facility | None, province: str, ref: str, problems: list[str], *, patient: bool
) -> None:
    for unit in _units_for(report, facility, province):
        unit.records += 1
        unit.patients += int(patient)
        if not problems:
            unit.clean += 1
        for problem in problems:
            kind = problem.split(":")[0]
            unit.issues[kind] += 1
            examples = unit.examples.setdefault(kind, [])
            if len(examples) < EXAMPLES:
                examples.append(ref)


def as_parameters(report: Report) -> dict[str, Any]:
    """The report as a FHIR Parameters resource (what GET /fhir/$quality-report answers)."""

    def unit_part(kind: str, code: str, unit: Unit) -> dict[str, Any]:
        parts: list[dict[str, Any]] = [
            {"name": "code", "valueString": code},
            {"name": "name", "valueString": unit.name},
            {"name": "records", "valueInteger": unit.records},
            {"name": "patients", "valueInteger": unit.patients},
            {"name": "score", "valueDecimal": unit.score},
        ]
        for issue, count in sorted(unit.issues.items()):
            vi, en = KINDS[issue]
            parts.append(
                {
                    "name": "issue",
                    "part": [
                        {"name": "kind", "valueCode": issue},
                        {"name": "label", "valueString": f"{vi} / {en}"},
                        {"name": "count", "valueInteger": count},
                        *(
                            {"name": "example", "valueReference": {"reference": ex}}
                            for ex in unit.examples.get(issue, [])
                        ),
                    ],
                }
            )
        return {"name": kind, "part": parts}

    params: list[dict[str, Any]] = [
        {"name": "generated", "valueInstant": report.generated.replace("+00:00", "Z")},
        {"name": "years-without-data", "valueInteger": report.years},
        unit_part("total", "VN", report.total),
    ]
    params += [unit_part("province", c, u) for c, u in sorted(report.provinces.items())]
    params += [unit_part("facility", c, u) for c, u in sorted(report.facilities.items())]
    return {"resourceType": "Parameters", "parameter": params}
