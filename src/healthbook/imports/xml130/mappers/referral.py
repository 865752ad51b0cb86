"""XML13 (giấy chuyển tuyến) as ServiceRequest + Task; XML14 (giấy hẹn khám lại) as Appointment."""

from __future__ import annotations

from typing import Any

from healthbook.imports.xml130 import codes as cs
from healthbook.imports.xml130 import icd
from healthbook.imports.xml130.mappers.common import (
    Context,
    Resource,
    concept,
    day_bounds,
    instant,
    labelled,
    when,
)
from healthbook.imports.xml130.tables import Row, split_codes

_REFERRAL = concept(cs.SNOMED, "3457005", "Patient referral", "Chuyển tuyến")
_TASK_CODE = "http://hl7.org/fhir/CodeSystem/task-code"


def _reasons(ctx: Context, row: Row) -> tuple[list[dict[str, str]], list[dict[str, Any]]]:
    refs: list[dict[str, str]] = []
    codes: list[dict[str, Any]] = []
    raw = [row.get("MA_BENH_CHINH") or "", *split_codes(row.get("MA_BENH_KT") or "")[0]]
    for code in (icd.normalise(c) for c in raw if c):
        if code in ctx.conditions:
            ref = {"reference": f"Condition/{ctx.conditions[code]}"}
            if ref not in refs:
                refs.append(ref)
        else:
            found = icd.lookup(code)
            codes.append(concept(cs.ICD10, code, found.name if found else None))
    return refs, codes


def referrals(ctx: Context) -> None:
    """A ServiceRequest (the referral, to MA_NOI_DEN, with reason and clinical summary) and a Task per XML13 row."""
    facility = ctx.episode.facility
    for row in ctx.episode.table("XML13"):
        n = str(row.number)
        issuer = row.get("MA_CSKCB") or facility
        ids = [
            {"system": f"{system}/{issuer}", "value": row.values[name]}
            for name, system in (
                ("GIAY_CHUYEN_TUYEN", cs.REFERRAL_SLIP),
                ("SO_HOSO", cs.REFERRAL_FILE),
                ("SO_CHUYENTUYEN", cs.REFERRAL_BOOK),
            )
            if row.get(name)
        ]
        destination = row.values["MA_NOI_DEN"]
        sid = ctx.id("ServiceRequest", "XML13", n)
        authored = when(row.get("NGAY_RA") or ctx.episode.summary.get("NGAY_RA") or row.get("NGAY_VAO"))
        res: Resource = {
            "resourceType": "ServiceRequest",
            "id": sid,
            "status": "active",
            "intent": "order",
            "category": [_REFERRAL],
            "code": {"text": f"Chuyển tuyến đến cơ sở {destination}"},
            "subject": ctx.subject,
            "encounter": ctx.encounter,
        }
        if ids:
            res["identifier"] = ids
        if authored:
            res["authoredOn"] = authored
        requester = ctx.practitioner(row.get("MA_BAC_SI")) or ctx.org(issuer)
        if requester:
            res["requester"] = requester
        target = ctx.org(destination)
        if target:
            res["performer"] = [target]
        refs, codes = _reasons(ctx, row)
        reason = row.get("MA_LYDO_CT")
        if reason:
            codes.insert(0, concept(cs.REFERRAL_REASON, reason, cs.REFERRAL_REASONS[reason]))
        if codes:
            res["reasonCode"] = codes
        if refs:
            res["reasonReference"] = refs
        summary = labelled([
            ("Dấu hiệu lâm sàng", row.get("DAU_HIEU_LS")), ("Chẩn đoán", row.get("CHAN_DOAN_RV")),
            ("Quá trình bệnh lý và diễn biến lâm sàng", row.get("QT_BENHLY")),
            ("Tóm tắt kết quả cận lâm sàng", row.get("TOMTAT_KQ")),
            ("Phương pháp điều trị", row.get("PP_DIEUTRI") or row.get("PP_DIEU_TRI")),
            ("Dịch vụ kỹ thuật đã dùng", row.get("TEN_DICH_VU")), ("Thuốc đã dùng", row.get("TEN_THUOC")),
            ("Hướng điều trị", row.get("HUONG_DIEU_TRI")), ("Phương tiện vận chuyển", row.get("PHUONGTIEN_VC")),
            ("Người hộ tống", row.get("HOTEN_NGUOI_HT")), ("Chức danh người hộ tống", row.get("CHUCDANH_NGUOI_HT")),
        ])  # fmt: skip
        if summary:
            res["note"] = [{"text": summary}]
        if row.get("HUONG_DIEU_TRI"):
            res["patientInstruction"] = row.values["HUONG_DIEU_TRI"]
        ctx.add(res)
        task: Resource = {
            "resourceType": "Task",
            "id": ctx.id("Task", "XML13", n),
            "status": "requested",
            "intent": "order",
            "code": concept(_TASK_CODE, "fulfill"),
            "description": f"Tiếp nhận người bệnh chuyển tuyến từ {issuer}",
            "focus": {"reference": f"ServiceRequest/{sid}"},
            "for": ctx.subject,
            "encounter": ctx.encounter,
        }
        if ids:
            task["identifier"] = ids[:1]
        if authored:
            task["authoredOn"] = authored
        if ctx.org(issuer):
            task["requester"] = ctx.org(issuer)
        if target:
            task["owner"] = target
        if reason:
            task["reasonCode"] = concept(cs.REFERRAL_REASON, reason, cs.REFERRAL_REASONS[reason])
        ctx.add(task)


def appointments(ctx: Context) -> set[str]:
    """An Appointment per XML14 row; returns the days they cover (NGAY_TAI_KHAM dates need no other one)."""
    days: set[str] = set()
    for row in ctx.episode.table("XML14"):
        at = row.values["NGAY_HEN_KL"]
        days.add(at[:8])
        if len(at) == 12:
            start = end = instant(at)
        else:
            start, end = day_bounds(at)
        res: Resource = {
            "resourceType": "Appointment",
            "id": ctx.id("Appointment", "XML14", str(row.number)),
            "status": "booked",
            "description": "Hẹn khám lại",
            "start": start,
            "end": end,
            "participant": [{"actor": ctx.subject, "status": "accepted"}],
            "supportingInformation": [ctx.encounter],
        }
        if len(at) == 8:
            res["requestedPeriod"] = [{"start": when(at), "end": when(at)}]
        issuer = row.get("MA_CSKCB") or ctx.episode.facility
        if row.get("SO_GIAYHEN_KL"):
            res["identifier"] = [
                {"system": f"{cs.APPOINTMENT_SLIP}/{issuer}", "value": row.values["SO_GIAYHEN_KL"]}
            ]
        doctor = ctx.practitioner(row.get("MA_BAC_SI"))
        if doctor:
            res["participant"].append({"actor": doctor, "status": "accepted"})
        if ctx.org(issuer):
            res["supportingInformation"].append(ctx.org(issuer))
        refs, codes = _reasons(ctx, row)
        if refs:
            res["reasonReference"] = refs
        if codes:
            res["reasonCode"] = codes
        if row.get("CHAN_DOAN_RV"):
            res["comment"] = row.values["CHAN_DOAN_RV"]
        if row.get("NGAY_CT"):
            res["created"] = when(row.values["NGAY_CT"])
        ctx.add(res)
    return days
