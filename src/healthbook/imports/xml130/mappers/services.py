"""XML3 (services, supplies, beds) as ChargeItem and Procedure; XML4 (results) as Observation and DiagnosticReport."""

from __future__ import annotations

import re
from typing import Any

from healthbook.imports.xml130 import codes as cs
from healthbook.imports.xml130 import icd
from healthbook.imports.xml130.mappers.common import (
    Context,
    Resource,
    concept,
    decimal,
    instant,
    quantity,
    when,
)
from healthbook.imports.xml130.mappers.medication import charge
from healthbook.imports.xml130.tables import Row, split_codes

_VALUE = re.compile(r"^(<=|>=|<|>)?\s*([+-]?\d+(?:\.\d+)?)$")
_CATEGORIES = {
    cs.LAB_GROUP: ("laboratory", "LAB"),
    cs.IMAGING_GROUP: ("imaging", "RAD"),
    cs.FUNCTION_GROUP: ("procedure", "OTH"),
}


def _reasons(ctx: Context, raw: str | None) -> tuple[list[dict[str, str]], list[dict[str, Any]]]:
    """MA_BENH codes as references to the episode's Conditions, or as codes when the episode has none."""
    refs: list[dict[str, str]] = []
    loose: list[dict[str, Any]] = []
    for code in split_codes(raw or "")[0]:
        norm = icd.normalise(code)
        if norm in ctx.conditions:
            refs.append({"reference": f"Condition/{ctx.conditions[norm]}"})
        else:
            found = icd.lookup(norm)
            loose.append(concept(cs.ICD10, norm, found.name if found else None))
    return refs, loose


def _is_procedure(row: Row, tested: set[str]) -> bool:
    service = row.get("MA_DICH_VU") or ""
    if not service or row.get("MA_VAT_TU") or row.get("MA_GIUONG"):
        return False
    if service.upper().startswith("VC.") or service in tested:
        return False  # transport, or a paraclinical service whose results are in XML4
    return (row.get("MA_NHOM") or "") not in cs.NOT_PROCEDURE_GROUPS


def services(ctx: Context) -> list[dict[str, str]]:
    """ChargeItem per XML3 line, Procedure per performed service, Procedure per XML1 MA_PTTT_QT not covered."""
    tested = {r.get("MA_DICH_VU") or "" for r in ctx.episode.table("XML4")}
    doctors: list[dict[str, str]] = []
    icd9_done: set[str] = set()
    for row in ctx.episode.table("XML3"):
        doctor = ctx.practitioner(row.get("MA_BAC_SI"))
        if doctor and doctor not in doctors:
            doctors.append(doctor)
        service_ref = None
        if _is_procedure(row, tested):
            proc = _procedure(ctx, row)
            icd9_done.update(c["code"] for c in proc["code"].get("coding", []) if c["system"] == cs.ICD9CM)
            service_ref = f"Procedure/{proc['id']}"
        elif row.get("MA_DICH_VU") in tested and row.get("MA_DICH_VU"):
            service_ref = f"DiagnosticReport/{ctx.id('DiagnosticReport', row.values['MA_DICH_VU'])}"
        if row.get("MA_VAT_TU"):
            item = charge(
                ctx, row, "vtyt", cs.SUPPLY, row.values["MA_VAT_TU"], row.get("TEN_VAT_TU"), service_ref
            )
            item["productCodeableConcept"] = concept(
                cs.SUPPLY, row.values["MA_VAT_TU"], None, row.get("TEN_VAT_TU")
            )
            if row.get("MA_DICH_VU"):
                item["code"] = concept(cs.SERVICE, row.values["MA_DICH_VU"], None, row.get("TEN_DICH_VU"))
        else:
            code = row.get("MA_DICH_VU") or ""
            item = charge(ctx, row, "dvkt", cs.SERVICE, code, row.get("TEN_DICH_VU"), service_ref)
        ctx.add(item)
    for code in split_codes(ctx.episode.summary.get("MA_PTTT_QT") or "")[0]:
        if code not in icd9_done:
            ctx.add({
                "resourceType": "Procedure", "id": ctx.id("Procedure", "pttt", code), "status": "completed",
                "code": concept(cs.ICD9CM, code), "subject": ctx.subject, "encounter": ctx.encounter,
            })  # fmt: skip
    return doctors


def _procedure(ctx: Context, row: Row) -> Resource:
    coding = [{"system": cs.SERVICE, "code": row.values["MA_DICH_VU"]}]
    coding += [{"system": cs.ICD9CM, "code": c} for c in split_codes(row.get("MA_PTTT_QT") or "")[0]]
    code: dict[str, Any] = {"coding": coding}
    if row.get("TEN_DICH_VU"):
        code["text"] = row.values["TEN_DICH_VU"]
    res: Resource = {
        "resourceType": "Procedure",
        "id": ctx.id("Procedure", str(row.number)),
        "status": "completed",
        "code": code,
        "subject": ctx.subject,
        "encounter": ctx.encounter,
    }
    start, end = row.get("NGAY_TH_YL") or row.get("NGAY_YL"), row.get("NGAY_KQ")
    if start and end and end >= start:
        res["performedPeriod"] = {"start": when(start), "end": when(end)}
    elif start or end:
        res["performedDateTime"] = when(start or end)
    performers = ctx.practitioners(row.get("NGUOI_THUC_HIEN"))
    if performers:
        res["performer"] = [{"actor": p} for p in performers]
    refs, loose = _reasons(ctx, row.get("MA_BENH"))
    if refs:
        res["reasonReference"] = refs
    if loose:
        res["reasonCode"] = loose
    return ctx.add(res)


def _value(row: Row) -> dict[str, Any]:
    raw = row.get("GIA_TRI")
    if not raw:
        return {}
    m = _VALUE.match(raw)
    if m is None:
        return {"valueString": raw}
    value = decimal(m.group(2))
    assert value is not None
    q = quantity(value, row.get("DON_VI_DO"))
    if m.group(1):
        q["comparator"] = m.group(1)
    return {"valueQuantity": q}


def results(ctx: Context) -> None:
    """Observation per XML4 row; a DiagnosticReport per paraclinical service (MA_DICH_VU) grouping them."""
    rows = ctx.episode.table("XML4")
    if not rows:
        return
    billed = {r.get("MA_DICH_VU"): r for r in ctx.episode.table("XML3") if r.get("MA_DICH_VU")}
    groups: dict[str, list[Row]] = {}
    for row in rows:
        groups.setdefault(row.get("MA_DICH_VU") or "", []).append(row)
    for service, members in groups.items():
        line = billed.get(service)
        category = _CATEGORIES.get((line.get("MA_NHOM") if line else None) or "")
        observations = [_observation(ctx, row, category) for row in members]
        name = (line.get("TEN_DICH_VU") if line else None) or members[0].get("TEN_CHI_SO")
        code = concept(cs.SERVICE, service, None, name) if service else {"text": name or "Cận lâm sàng"}
        report: Resource = {
            "resourceType": "DiagnosticReport",
            "id": ctx.id("DiagnosticReport", service),
            "status": "final" if any(o["status"] == "final" for o in observations) else "registered",
            "code": code,
            "subject": ctx.subject,
            "encounter": ctx.encounter,
            "result": [{"reference": f"Observation/{o['id']}"} for o in observations],
        }
        if category:
            report["category"] = [concept(cs.DIAGNOSTIC_SERVICE, category[1])]
        done = sorted(r.values["NGAY_KQ"] for r in members if r.get("NGAY_KQ"))
        if done:
            report["effectiveDateTime"] = when(done[0])
            report["issued"] = instant(done[-1])
        provider = ctx.org(ctx.episode.facility)
        if provider:
            report["performer"] = [provider]
        readers = []
        for r in members:
            for p in ctx.practitioners(r.get("MA_BS_DOC_KQ")):
                if p not in readers:
                    readers.append(p)
        if readers:
            report["resultsInterpreter"] = readers
        conclusions = list(dict.fromkeys(r.values["KET_LUAN"] for r in members if r.get("KET_LUAN")))
        if conclusions:
            report["conclusion"] = "\n".join(conclusions)
        ctx.add(report)


def _observation(ctx: Context, row: Row, category: tuple[str, str] | None) -> Resource:
    text = row.get("TEN_CHI_SO") or row.get("MA_CHI_SO") or row.get("MA_DICH_VU")
    code: dict[str, Any] = {"text": text}
    if row.get("MA_CHI_SO"):
        code["coding"] = [{"system": cs.RESULT_INDEX, "code": row.values["MA_CHI_SO"]}]
    elif row.get("MA_DICH_VU"):
        code["coding"] = [{"system": cs.SERVICE, "code": row.values["MA_DICH_VU"]}]
    value = _value(row)
    res: Resource = {
        "resourceType": "Observation",
        "id": ctx.id("Observation", "XML4", str(row.number)),
        "status": "final" if value or row.get("MO_TA") or row.get("KET_LUAN") else "registered",
        "code": code,
        "subject": ctx.subject,
        "encounter": ctx.encounter,
        **value,
    }
    if category:
        res["category"] = [concept(cs.OBSERVATION_CATEGORY, category[0])]
    if row.get("NGAY_KQ"):
        res["effectiveDateTime"] = when(row.get("NGAY_KQ"))
    notes = [{"text": row.values[f]} for f in ("MO_TA", "KET_LUAN") if row.get(f)]
    if notes:
        res["note"] = notes
    if row.get("KET_LUAN") and not value:
        res["valueString"] = row.values["KET_LUAN"]
    reader = ctx.practitioner(row.get("MA_BS_DOC_KQ"))
    if reader:
        res["performer"] = [reader]
    if row.get("DON_VI_DO") and "valueQuantity" in value and "code" not in value["valueQuantity"]:
        ctx.warn("is not a unit this importer can express in UCUM; kept as text", row, "DON_VI_DO")
    return ctx.add(res)
