"""The administrative fields of group (a): who the citizen is, as QĐ 1332 lists them."""

from __future__ import annotations

from typing import Any

from healthbook.book.dates import show_date
from healthbook.book.labels import Lang, word
from healthbook.book.record import Record, Resource
from healthbook.book.values import concept, human_name, identifier
from healthbook.identity.systems import BHYT, CCCD, EXT_ETHNICITY, EXT_NATIONALITY, EXT_OCCUPATION

# The VN Core extensions first; the HL7 core nationality extension (its code is nested) is read too.
_EXTENSIONS = {
    "f.ethnicity": (EXT_ETHNICITY,),
    "f.nationality": (EXT_NATIONALITY, "http://hl7.org/fhir/StructureDefinition/patient-nationality"),
    "f.occupation": (EXT_OCCUPATION,),
}


def _ext_value(ext: dict[str, Any]) -> str:
    for key, value in ext.items():
        if key == "valueCodeableConcept":
            return concept(value)
        if key == "valueCoding" and isinstance(value, dict):
            return str(value.get("display") or value.get("code") or "")
        if key.startswith("value") and isinstance(value, str):
            return value
    nested = [_ext_value(e) for e in ext.get("extension") or [] if isinstance(e, dict)]
    return ", ".join(n for n in nested if n)


def _extension(patient: Resource, field: str) -> str:
    for ext in patient.get("extension") or []:
        url = ext.get("url") if isinstance(ext, dict) else None
        if isinstance(url, str) and url in _EXTENSIONS[field]:
            found = _ext_value(ext)
            if found:
                return found
    return ""


def _address(patient: Resource) -> str:
    addresses = [a for a in patient.get("address") or [] if isinstance(a, dict)]
    home = next((a for a in addresses if a.get("use") == "home"), addresses[0] if addresses else None)
    if home is None:
        return ""
    if isinstance(home.get("text"), str):
        return str(home["text"])
    parts = [*(home.get("line") or []), home.get("city"), home.get("district"), home.get("state")]
    return ", ".join(str(p) for p in parts if isinstance(p, str) and p)


def _contacts(patient: Resource, lang: Lang) -> str:
    shown = []
    for contact in patient.get("contact") or []:
        if not isinstance(contact, dict):
            continue
        name = human_name([contact["name"]]) if isinstance(contact.get("name"), dict) else ""
        relation = ", ".join(concept(r) for r in contact.get("relationship") or [] if concept(r))
        phones = [
            str(t["value"])
            for t in contact.get("telecom") or []
            if isinstance(t, dict) and t.get("system") == "phone" and isinstance(t.get("value"), str)
        ]
        text = " · ".join(p for p in (name, relation, *phones) if p)
        if text:
            shown.append(text)
    return "; ".join(shown)


def patient_fields(patient: Resource, record: Record, lang: Lang) -> list[tuple[str, str]]:
    """(label, value) pairs of the administrative group; missing values say so instead of vanishing."""
    gender = patient.get("gender")
    bhyt = identifier(patient, BHYT)
    for ident in patient.get("identifier") or []:
        period = ident.get("period") if isinstance(ident, dict) and ident.get("system") == BHYT else None
        if isinstance(period, dict) and (period.get("start") or period.get("end")):
            valid = " – ".join(show_date(period.get(k)) for k in ("start", "end") if period.get(k))
            bhyt = f"{bhyt} ({word('d.valid', lang)} {valid})"
            break
    phones = [
        str(t["value"])
        for t in patient.get("telecom") or []
        if isinstance(t, dict) and t.get("system") == "phone" and isinstance(t.get("value"), str)
    ]
    primary = []
    for ref in patient.get("generalPractitioner") or []:
        target = record.get(ref)
        name = record.facility(target) if target is not None else None
        if name is None and isinstance(ref, dict) and isinstance(ref.get("display"), str):
            name = ref["display"]
        if name:
            primary.append(name)
    fields = [
        ("f.name", human_name(patient.get("name"))),
        ("f.birth", show_date(patient.get("birthDate"))),
        ("f.gender", word(f"g.{gender}", lang) if isinstance(gender, str) else ""),
        ("f.cccd", identifier(patient, CCCD)),
        ("f.bhyt", bhyt),
        ("f.ethnicity", _extension(patient, "f.ethnicity")),
        ("f.nationality", _extension(patient, "f.nationality")),
        ("f.occupation", _extension(patient, "f.occupation")),
        ("f.phone", ", ".join(phones)),
        ("f.address", _address(patient)),
        ("f.primary", "; ".join(primary)),
        ("f.contact", _contacts(patient, lang)),
    ]
    deceased = patient.get("deceasedDateTime") or patient.get("deceasedBoolean")
    if deceased:
        fields.append(("f.deceased", show_date(deceased) if isinstance(deceased, str) else "✓"))
    missing = word("empty.short", lang)
    return [(word(key, lang), value or missing) for key, value in fields]
