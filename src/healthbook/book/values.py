"""Reading FHIR datatypes as words: concepts, numbers, quantities, names and observation values."""

from __future__ import annotations

from typing import Any

from healthbook.book.dates import show_date
from healthbook.book.labels import Lang, word
from healthbook.book.record import Record, Resource
from healthbook.fhir.jsonio import FhirDecimal

ICD10_SYSTEMS = ("http://hl7.org/fhir/sid/icd-10", "http://hl7.org/fhir/sid/icd-10-vn")


def concept(value: Any) -> str:
    """A CodeableConcept as words: its text, else a coding's display, else a code; ICD-10 codes lead."""
    if not isinstance(value, dict):
        return ""
    codings = [c for c in value.get("coding") or [] if isinstance(c, dict)]
    raw_text = value.get("text")
    text = raw_text if isinstance(raw_text, str) else None
    for c in codings:
        if c.get("system") in ICD10_SYSTEMS and isinstance(c.get("code"), str):
            shown = text or c.get("display")
            return f"{c['code']} – {shown}" if isinstance(shown, str) and shown else str(c["code"])
    if text:
        return text
    for c in codings:
        if isinstance(c.get("display"), str) and c["display"]:
            return str(c["display"])
    for c in codings:
        if isinstance(c.get("code"), str):
            return str(c["code"])
    return ""


def first_concept(values: Any) -> str:
    """The first non-empty concept of a list of CodeableConcepts."""
    for value in values if isinstance(values, list) else []:
        found = concept(value)
        if found:
            return found
    return ""


def number(value: Any, lang: Lang) -> str:
    """A FHIR decimal as written (decimal comma in Vietnamese)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return ""
    text = value.text if isinstance(value, FhirDecimal) else repr(value)
    if isinstance(value, float) and not isinstance(value, FhirDecimal) and text.endswith(".0"):
        text = text[:-2]
    return text.replace(".", ",") if lang == "vi" else text


def quantity(value: Any, lang: Lang) -> str:
    """A Quantity as '38,3 °C'."""
    if not isinstance(value, dict):
        return ""
    shown = number(value.get("value"), lang)
    unit = value.get("unit") or value.get("code") or ""
    comparator = value.get("comparator") or ""
    return f"{comparator}{shown} {unit}".strip() if shown else ""


def human_name(names: Any) -> str:
    """The official (else first) HumanName as one string, in the customary order."""
    if not isinstance(names, list) or not names:
        return ""
    chosen = next((n for n in names if isinstance(n, dict) and n.get("use") == "official"), names[0])
    if not isinstance(chosen, dict):
        return ""
    if isinstance(chosen.get("text"), str) and chosen["text"].strip():
        return str(chosen["text"])
    given = [g for g in chosen.get("given") or [] if isinstance(g, str)]
    family = str(chosen["family"]) if isinstance(chosen.get("family"), str) else ""
    return " ".join([family, *given]).strip()  # Vietnamese order: family name first


def identifier(res: Resource, system: str) -> str:
    """The value of the first identifier of a system."""
    for ident in res.get("identifier") or []:
        if isinstance(ident, dict) and ident.get("system") == system and isinstance(ident.get("value"), str):
            return str(ident["value"])
    return ""


def observation_value(obs: Resource, lang: Lang) -> str:
    """The value of an Observation: a quantity, code, text, or its components as 120/80 mmHg."""
    if "valueQuantity" in obs:
        return quantity(obs["valueQuantity"], lang)
    if "valueCodeableConcept" in obs:
        return concept(obs["valueCodeableConcept"])
    for name in ("valueString", "valueDateTime", "valueTime"):
        if isinstance(obs.get(name), str):
            return show_date(obs[name]) if name == "valueDateTime" else str(obs[name])
    if isinstance(obs.get("valueInteger"), int):
        return str(obs["valueInteger"])
    if isinstance(obs.get("valueBoolean"), bool):
        return (
            ("có" if obs["valueBoolean"] else "không") if lang == "vi" else str(obs["valueBoolean"]).lower()
        )
    components = [c for c in obs.get("component") or [] if isinstance(c, dict)]
    quantities: list[dict[str, Any]] = [
        c["valueQuantity"] for c in components if isinstance(c.get("valueQuantity"), dict)
    ]
    if quantities and len(quantities) == len(components):
        units = {q.get("unit") or q.get("code") for q in quantities}
        if len(units) == 1:
            return (
                "/".join(number(q.get("value"), lang) for q in quantities) + f" {units.pop() or ''}".rstrip()
            )
    return "; ".join(f"{concept(c.get('code'))}: {observation_value(c, lang)}" for c in components)


def interpretation(obs: Resource, lang: Lang) -> str:
    codes = {
        c.get("code")
        for i in obs.get("interpretation") or []
        if isinstance(i, dict)
        for c in i.get("coding") or []
        if isinstance(c, dict)
    }
    if codes & {"H", "HH", "HU"}:
        return word("d.high", lang)
    if codes & {"L", "LL", "LU"}:
        return word("d.low", lang)
    if codes & {"A", "AA"}:
        return word("d.abnormal", lang)
    return ""


def reference_range(obs: Resource, lang: Lang) -> str:
    for rng in obs.get("referenceRange") or []:
        if isinstance(rng, dict):
            if isinstance(rng.get("text"), str):
                return f"{word('d.range', lang)} {rng['text']}"
            low = number((rng.get("low") or {}).get("value"), lang)
            high = number((rng.get("high") or {}).get("value"), lang)
            if low or high:
                return f"{word('d.range', lang)} {low}–{high}"
    return ""


def observation_kind(obs: Resource) -> str:
    """vital, lab, imaging or Observation, from the category."""
    codes = {
        c.get("code")
        for cat in obs.get("category") or []
        if isinstance(cat, dict)
        for c in cat.get("coding") or []
        if isinstance(c, dict)
    }
    if "vital-signs" in codes:
        return "vital"
    if "laboratory" in codes:
        return "lab"
    if "imaging" in codes:
        return "imaging"
    return "Observation"


def medication_name(res: Resource, record: Record) -> str:
    """The drug of a medication resource, from its code or the Medication it references."""
    if "medicationCodeableConcept" in res:
        return concept(res["medicationCodeableConcept"])
    ref = res.get("medicationReference")
    med = record.get(ref)
    if med is not None:
        return concept(med.get("code"))
    display = ref.get("display") if isinstance(ref, dict) else None
    return display if isinstance(display, str) else ""


def dosage(res: Resource) -> str:
    for name in ("dosageInstruction", "dosage"):
        value = res.get(name)
        items = value if isinstance(value, list) else [value] if isinstance(value, dict) else []
        texts = [d["text"] for d in items if isinstance(d, dict) and isinstance(d.get("text"), str)]
        if texts:
            return "; ".join(texts)
    return ""
