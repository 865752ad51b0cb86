"""XML2 (drugs): a MedicationRequest per line, a MedicationDispense when the order was carried out."""

from __future__ import annotations

from typing import Any

from healthbook.imports.xml130 import codes as cs
from healthbook.imports.xml130.mappers.common import Context, Resource, concept, decimal, quantity, when
from healthbook.imports.xml130.tables import Row

_CATEGORY = "http://terminology.hl7.org/CodeSystem/medicationrequest-category"
# MA_THUOC codes that are costs, not drugs: blood transport (VM.xxxxx) and herbal-remedy packaging (BB.xxxxx).
COST_PREFIXES = ("VM.", "BB.")


def _medication(row: Row) -> dict[str, Any]:
    text = " ".join(v for v in (row.get("TEN_THUOC"), row.get("HAM_LUONG")) if v)
    out: dict[str, Any] = {}
    if row.get("MA_THUOC"):
        out["coding"] = [{"system": cs.DRUG, "code": row.values["MA_THUOC"]}]
    if text:
        out["text"] = text
    return out


def _dosage(row: Row) -> list[dict[str, Any]]:
    dose: dict[str, Any] = {}
    text = "; ".join(v for v in (row.get("LIEU_DUNG"), row.get("CACH_DUNG")) if v)
    if text:
        dose["text"] = text
    if row.get("CACH_DUNG"):
        dose["patientInstruction"] = row.values["CACH_DUNG"]
    if row.get("DUONG_DUNG"):
        dose["route"] = concept(cs.ROUTE, row.values["DUONG_DUNG"])
    return [dose] if dose else []


def drugs(ctx: Context) -> list[dict[str, str]]:
    """MedicationRequest (and MedicationDispense) per drug line; returns the prescribers for the Encounter."""
    prescribers: list[dict[str, str]] = []
    inpatient = (ctx.episode.summary.get("MA_LOAI_KCB") or "") in cs.INPATIENT_TYPES
    for row in ctx.episode.table("XML2"):
        code = row.get("MA_THUOC") or ""
        if code.upper().startswith(COST_PREFIXES):
            ctx.add(charge(ctx, row, "thuoc", cs.DRUG, code, row.get("TEN_THUOC")))
            continue
        n = str(row.number)
        mid = ctx.id("MedicationRequest", n)
        amount = decimal(row.get("SO_LUONG"))
        res: Resource = {
            "resourceType": "MedicationRequest",
            "id": mid,
            "status": "completed",
            "intent": "order",
            "category": [concept(_CATEGORY, "inpatient" if inpatient else "outpatient")],
            "medicationCodeableConcept": _medication(row),
            "subject": ctx.subject,
            "encounter": ctx.encounter,
        }
        if row.get("NGAY_YL"):
            res["authoredOn"] = when(row.get("NGAY_YL"))
        doctor = ctx.practitioner(row.get("MA_BAC_SI"))
        if doctor:
            res["requester"] = doctor
            if doctor not in prescribers:
                prescribers.append(doctor)
        dosage = _dosage(row)
        if dosage:
            res["dosageInstruction"] = dosage
        if amount is not None:
            res["dispenseRequest"] = {"quantity": quantity(amount, row.get("DON_VI_TINH"))}
        ctx.add(res)
        if row.get("NGAY_TH_YL"):
            given: Resource = {
                "resourceType": "MedicationDispense",
                "id": ctx.id("MedicationDispense", n),
                "status": "completed",
                "medicationCodeableConcept": _medication(row),
                "subject": ctx.subject,
                "context": ctx.encounter,
                "authorizingPrescription": [{"reference": f"MedicationRequest/{mid}"}],
                "whenHandedOver": when(row.get("NGAY_TH_YL")),
            }
            if amount is not None:
                given["quantity"] = quantity(amount, row.get("DON_VI_TINH"))
            if dosage:
                given["dosageInstruction"] = dosage
            ctx.add(given)
    return prescribers


def charge(
    ctx: Context, row: Row, kind: str, system: str, code: str, text: str | None, service: str | None = None
) -> Resource:
    """A ChargeItem of a billed line (XML3 lines, and XML2 lines that are costs rather than drugs)."""
    res: Resource = {
        "resourceType": "ChargeItem",
        "id": ctx.id("ChargeItem", row.table, str(row.number)),
        "status": "billed",
        "code": concept(system, code, None, text) if code else {"text": text or kind},
        "subject": ctx.subject,
        "context": ctx.encounter,
    }
    at = row.get("NGAY_TH_YL") or row.get("NGAY_YL")
    if at:
        res["occurrenceDateTime"] = when(at)
    amount = decimal(row.get("SO_LUONG"))
    if amount is not None:
        res["quantity"] = {"value": amount}
        if row.get("DON_VI_TINH"):
            res["quantity"]["unit"] = row.values["DON_VI_TINH"]
    price = decimal(row.get("DON_GIA_BV") or row.get("DON_GIA"))
    if price is not None:
        res["priceOverride"] = {"value": price, "currency": "VND"}
    performers = ctx.practitioners(row.get("NGUOI_THUC_HIEN"))
    if performers:
        res["performer"] = [{"actor": p} for p in performers]
    requester = ctx.practitioner(row.get("MA_BAC_SI"))
    if requester:
        res["enterer"] = requester
    provider = ctx.org(ctx.episode.facility)
    if provider:
        res["performingOrganization"] = provider
    reasons = [c for c in (row.get("MA_BENH") or "").split(";") if c.strip()]
    if reasons:
        res["reason"] = [concept(cs.ICD10, c.strip().upper()) for c in reasons]
    if row.get("MA_NHOM"):
        res["extension"] = [{"url": cs.BASE + "/StructureDefinition/xml130-ma-nhom",
                             "valueCoding": {"system": cs.COST_GROUP, "code": row.values["MA_NHOM"]}}]  # fmt: skip
    if service:
        res["service"] = [{"reference": service}]
    return res
