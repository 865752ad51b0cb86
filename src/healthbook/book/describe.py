"""One line of the book per resource: what it is, its details, the facility and the date it came from."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from healthbook.book.dates import show_date, show_time, sort_key
from healthbook.book.labels import Lang, code_word, word
from healthbook.book.record import Record, Resource
from healthbook.book.values import (
    concept,
    dosage,
    first_concept,
    human_name,
    identifier,
    interpretation,
    medication_name,
    observation_kind,
    observation_value,
    quantity,
    reference_range,
)
from healthbook.identity.systems import BHYT, CCCD, FACILITY_CODE


@dataclass(frozen=True, slots=True)
class Line:
    """A resource as the book shows it, already in one language."""

    key: tuple[str, str]  # (type, id) of the resource
    kind: str
    text: str
    detail: str
    facility: str
    date: str  # dd/mm/yyyy
    sort: str  # chronological sort key of the date


def _join(*parts: str) -> str:
    return " · ".join(p for p in parts if p)


def _period(value: Any) -> str:
    if not isinstance(value, dict):
        return ""
    start, end = show_date(value.get("start")), show_date(value.get("end"))
    return f"{start} – {end}" if start and end else start or end


def _status(element: str, res: Resource, lang: Lang, skip: tuple[str, ...] = ()) -> str:
    status = res.get("status")
    return code_word(element, status, lang) if isinstance(status, str) and status not in skip else ""


Describer = Callable[[Resource, Record, Lang], tuple[str, str, str]]  # -> (kind key, text, detail)


def _patient(res: Resource, record: Record, lang: Lang) -> tuple[str, str, str]:
    cccd = identifier(res, CCCD)
    return (
        "Patient",
        human_name(res.get("name")),
        _join(f"CCCD {cccd}" if cccd else "", show_date(res.get("birthDate"))),
    )


def _coverage(res: Resource, record: Record, lang: Lang) -> tuple[str, str, str]:
    number_ = res.get("subscriberId") or identifier(res, BHYT)
    names = [
        str(c["name"])
        for c in res.get("class") or []
        if isinstance(c, dict) and isinstance(c.get("name"), str)
    ]
    period = _period(res.get("period"))
    return (
        "Coverage",
        _join(concept(res.get("type")), str(number_ or "")),
        _join(
            *names,
            f"{word('d.valid', lang)} {period}" if period else "",
            _status("coverage", res, lang, ("active",)),
        ),
    )


def _organization(res: Resource, record: Record, lang: Lang) -> tuple[str, str, str]:
    code = identifier(res, FACILITY_CODE)
    address = next((a.get("text") for a in res.get("address") or [] if isinstance(a, dict)), None)
    return (
        "Organization",
        record.org_name(res) or "",
        _join(f"{word('d.code', lang)} {code}" if code else "", str(address or "")),
    )


def _related(res: Resource, record: Record, lang: Lang) -> tuple[str, str, str]:
    phones = [
        t.get("value") for t in res.get("telecom") or [] if isinstance(t, dict) and t.get("system") == "phone"
    ]
    cccd = identifier(res, CCCD)
    return (
        "RelatedPerson",
        human_name(res.get("name")),
        _join(
            first_concept(res.get("relationship")),
            f"CCCD {cccd}" if cccd else "",
            *[str(p) for p in phones if p],
        ),
    )


def _condition(res: Resource, record: Record, lang: Lang) -> tuple[str, str, str]:
    categories = {c.get("code") for cat in res.get("category") or [] for c in (cat or {}).get("coding") or []}
    kind = "diagnosis" if "encounter-diagnosis" in categories else "Condition"
    enc = record.encounter_of(res)
    for diag in (enc or {}).get("diagnosis") or []:
        target = record.get(diag.get("condition")) if isinstance(diag, dict) else None
        if target is res and diag.get("rank") == 1:
            kind = "main-diagnosis"  # QĐ 1332 note 1: the first code is the main disease
    clinical = (res.get("clinicalStatus") or {}).get("coding") or [{}]
    verification = (res.get("verificationStatus") or {}).get("coding") or [{}]
    ver = verification[0].get("code")
    return (
        kind,
        concept(res.get("code")),
        _join(
            code_word("clinical", str(clinical[0].get("code")), lang) if clinical[0].get("code") else "",
            code_word("verification", str(ver), lang) if ver and ver != "confirmed" else "",
        ),
    )


def _episode_of_care(res: Resource, record: Record, lang: Lang) -> tuple[str, str, str]:
    since = show_date((res.get("period") or {}).get("start"))
    return (
        "EpisodeOfCare",
        first_concept(res.get("type")),
        _join(f"{word('d.since', lang)} {since}" if since else ""),
    )


def _allergy(res: Resource, record: Record, lang: Lang) -> tuple[str, str, str]:
    reactions = [
        concept(m)
        for r in res.get("reaction") or []
        if isinstance(r, dict)
        for m in r.get("manifestation") or []
    ]
    criticality = res.get("criticality")
    return (
        "AllergyIntolerance",
        concept(res.get("code")),
        _join(
            code_word("criticality", criticality, lang) if isinstance(criticality, str) else "",
            f"{word('d.reaction', lang)}: {', '.join(r for r in reactions if r)}" if any(reactions) else "",
        ),
    )


def _immunization(res: Resource, record: Record, lang: Lang) -> tuple[str, str, str]:
    doses = [
        str(p.get("doseNumberPositiveInt") or p.get("doseNumberString") or "")
        for p in res.get("protocolApplied") or []
        if isinstance(p, dict)
    ]
    lot = res.get("lotNumber")
    return (
        "Immunization",
        concept(res.get("vaccineCode")),
        _join(
            f"{word('d.dose', lang)} {doses[0]}" if doses and doses[0] else "",
            _status("immunization", res, lang, ("completed",)),
            concept(res.get("statusReason")),
            f"{word('d.lot', lang)} {lot}" if isinstance(lot, str) else "",
        ),
    )


def _encounter(res: Resource, record: Record, lang: Lang) -> tuple[str, str, str]:
    cls = (res.get("class") or {}).get("code")
    cls_word = code_word("class", cls, lang) if isinstance(cls, str) else ""
    period = res.get("period") or {}
    end = show_date(period.get("end"))
    multi_day = end and end != show_date(period.get("start"))
    reason = first_concept(res.get("reasonCode"))
    disposition = concept((res.get("hospitalization") or {}).get("dischargeDisposition"))
    return (
        "Encounter",
        first_concept(res.get("type")) or cls_word,
        _join(
            cls_word,
            f"{word('d.reason', lang)}: {reason}" if reason else "",
            f"{word('d.discharge', lang)} {end}" if multi_day else "",
            disposition,
        ),
    )


def _observation(res: Resource, record: Record, lang: Lang) -> tuple[str, str, str]:
    return (
        observation_kind(res),
        concept(res.get("code")),
        _join(observation_value(res, lang), interpretation(res, lang), reference_range(res, lang)),
    )


def _report(res: Resource, record: Record, lang: Lang) -> tuple[str, str, str]:
    results = [r for r in res.get("result") or [] if isinstance(r, dict)]
    conclusion = res.get("conclusion")
    return (
        "DiagnosticReport",
        concept(res.get("code")),
        _join(
            f"{len(results)} {word('d.results', lang)}" if results else "",
            str(conclusion) if isinstance(conclusion, str) else "",
            _status("report", res, lang, ("final",)),
        ),
    )


def _procedure(res: Resource, record: Record, lang: Lang) -> tuple[str, str, str]:
    return (
        "Procedure",
        concept(res.get("code")),
        _join(
            _status("procedure", res, lang, ("completed",)),
            first_concept(res.get("reasonCode")),
            concept(res.get("outcome")),
        ),
    )


def _medication(res: Resource, record: Record, lang: Lang) -> tuple[str, str, str]:
    rtype = str(res["resourceType"])
    supply = ((res.get("dispenseRequest") or {}).get("expectedSupplyDuration")) or res.get("daysSupply")
    amount = (res.get("dispenseRequest") or {}).get("quantity") or res.get("quantity")
    return (
        rtype,
        medication_name(res, record),
        _join(
            dosage(res),
            f"{word('d.quantity', lang)} {quantity(amount, lang)}" if quantity(amount, lang) else "",
            quantity(supply, lang),
            _status("medication", res, lang),
        ),
    )


def _appointment(res: Resource, record: Record, lang: Lang) -> tuple[str, str, str]:
    text = res.get("description")
    if not isinstance(text, str):
        text = first_concept(res.get("serviceType")) or concept(res.get("appointmentType"))
    at = show_time(res.get("start"))
    return (
        "Appointment",
        text or word("k.Appointment", lang),
        _join(_status("appointment", res, lang), f"{word('d.at', lang)} {at}" if at else ""),
    )


def _service_request(res: Resource, record: Record, lang: Lang) -> tuple[str, str, str]:
    destinations: list[str] = []
    for ref in res.get("performer") or []:
        target = record.get(ref)
        name = (
            record.org_name(target)
            if target is not None and target.get("resourceType") == "Organization"
            else None
        )
        if name is None and isinstance(ref, dict) and isinstance(ref.get("display"), str):
            name = ref["display"]
        if name:
            destinations.append(name)
    reasons = [concept(c) for c in res.get("reasonCode") or []]
    for ref in res.get("reasonReference") or []:
        target = record.get(ref)
        if target is not None:
            reasons.append(concept(target.get("code")))
    return (
        "ServiceRequest",
        concept(res.get("code")) or first_concept(res.get("category")),
        _join(
            f"{word('d.to', lang)} {', '.join(destinations)}" if destinations else "",
            f"{word('d.reason', lang)}: {', '.join(r for r in reasons if r)}" if any(reasons) else "",
            _status("request", res, lang),
        ),
    )


def _task(res: Resource, record: Record, lang: Lang) -> tuple[str, str, str]:
    text = res.get("description")
    return (
        "Task",
        text if isinstance(text, str) else concept(res.get("code")),
        _join(_status("task", res, lang), concept(res.get("businessStatus"))),
    )


def _document(res: Resource, record: Record, lang: Lang) -> tuple[str, str, str]:
    titles = [
        c["attachment"]["title"]
        for c in res.get("content") or []
        if isinstance(c, dict) and isinstance((c.get("attachment") or {}).get("title"), str)
    ]
    text = res.get("description") if isinstance(res.get("description"), str) else None
    return (
        "DocumentReference",
        text or (titles[0] if titles else concept(res.get("type"))),
        _join(concept(res.get("type")) if text or titles else ""),
    )


def _composition(res: Resource, record: Record, lang: Lang) -> tuple[str, str, str]:
    title = res.get("title")
    return (
        "Composition",
        str(title) if isinstance(title, str) else concept(res.get("type")),
        concept(res.get("type")),
    )


def _other(res: Resource, record: Record, lang: Lang) -> tuple[str, str, str]:
    for name in ("code", "type", "name"):
        value = res.get(name)
        shown = (
            concept(value)
            if isinstance(value, dict)
            else first_concept(value)
            if isinstance(value, list)
            else ""
        )
        if shown:
            return "other", shown, str(res.get("status") or "")
    return "other", str(res.get("resourceType")), str(res.get("status") or "")


DESCRIBERS: dict[str, Describer] = {
    "Patient": _patient,
    "Coverage": _coverage,
    "Organization": _organization,
    "RelatedPerson": _related,
    "Condition": _condition,
    "EpisodeOfCare": _episode_of_care,
    "AllergyIntolerance": _allergy,
    "Immunization": _immunization,
    "Encounter": _encounter,
    "Observation": _observation,
    "DiagnosticReport": _report,
    "Procedure": _procedure,
    "MedicationRequest": _medication,
    "MedicationDispense": _medication,
    "MedicationStatement": _medication,
    "MedicationAdministration": _medication,
    "Appointment": _appointment,
    "ServiceRequest": _service_request,
    "Task": _task,
    "DocumentReference": _document,
    "Composition": _composition,
}


def describe(res: Resource, record: Record, lang: Lang) -> Line:
    """The book's line for a resource, in one language."""
    rtype = str(res.get("resourceType"))
    kind, text, detail = DESCRIBERS.get(rtype, _other)(res, record, lang)
    date = record.date(res)
    return Line(
        key=(rtype, str(res.get("id"))),
        kind=word(f"k.{kind}", lang),
        text=text or "—",
        detail=detail,
        facility=record.facility(res) or word("unknown.facility", lang),
        date=show_date(date),
        sort=sort_key(date),
    )
