"""XML5 clinical notes (DocumentReference, vital signs), XML7 and XML8 papers (Composition), other tables kept."""

from __future__ import annotations

import base64
import html
import re
from typing import Any

from healthbook.imports.xml130 import codes as cs
from healthbook.imports.xml130 import fields
from healthbook.imports.xml130.mappers.common import (
    Context,
    Resource,
    concept,
    decimal,
    instant,
    loinc,
    quantity,
    when,
)
from healthbook.imports.xml130.tables import Row

_CSST = re.compile(r"CSST\s*<([^>]*)>", re.IGNORECASE)
_TOKEN = re.compile(r"^\s*([A-Za-z]+)\s*([0-9][0-9.,/]*)\s*$")
_XHTML = 'xmlns="http://www.w3.org/1999/xhtml"'


def _attachment(text: str, title: str) -> dict[str, Any]:
    return {
        "contentType": "text/plain; charset=utf-8",
        "language": "vi",
        "data": base64.b64encode(text.encode("utf-8")).decode("ascii"),
        "title": title,
    }


def notes(ctx: Context) -> None:
    """One DocumentReference per XML5 row (progress, consultation or operation note) and its vital signs."""
    for row in ctx.episode.table("XML5"):
        parts = [
            ("Diễn biến lâm sàng", row.get("DIEN_BIEN_LS")),
            ("Giai đoạn bệnh", row.get("GIAI_DOAN_BENH")),
            ("Hội chẩn", row.get("HOI_CHAN")),
            ("Phẫu thuật", row.get("PHAU_THUAT")),
        ]
        text = "\n\n".join(f"{label}:\n{value}" for label, value in parts if value)
        kind = (cs.OPERATION_NOTE if row.get("PHAU_THUAT") else
                cs.CONSULT_NOTE if row.get("HOI_CHAN") and not row.get("DIEN_BIEN_LS") else cs.PROGRESS_NOTE)  # fmt: skip
        did = ctx.id("DocumentReference", "XML5", str(row.number))
        res: Resource = {
            "resourceType": "DocumentReference",
            "id": did,
            "status": "current",
            "docStatus": "final",
            "type": concept(cs.LOINC, kind[0], kind[1], "Diễn biến lâm sàng"),
            "category": [concept(cs.TABLE, "XML5", fields.spec("XML5").title)],
            "subject": ctx.subject,
            "description": (row.get("DIEN_BIEN_LS") or text)[:200],
            "content": [{"attachment": _attachment(text, "Diễn biến lâm sàng")}],
            "context": {"encounter": [ctx.encounter]},
        }
        at = row.get("THOI_DIEM_DBLS")
        if at:
            res["date"] = instant(at)
            res["context"]["period"] = {"start": when(at)}
        author = ctx.practitioner(row.get("NGUOI_THUC_HIEN"))
        if author:
            res["author"] = [author]
        ctx.add(res)
        vital_signs(ctx, row, did)


def vital_signs(ctx: Context, row: Row, document: str) -> None:
    """CSST<M75_T37_HA120/70_NT18_SP98_HL2> in DIEN_BIEN_LS (QĐ 4750): pulse, temperature, BP, breaths, SpO2."""
    m = _CSST.search(row.get("DIEN_BIEN_LS") or "")
    if m is None:
        return
    at = when(row.get("THOI_DIEM_DBLS"))
    for token in m.group(1).split("_"):
        t = _TOKEN.match(token)
        if t is None:
            continue
        key, raw = t.group(1).upper(), t.group(2).replace(",", ".")
        base: Resource = {
            "resourceType": "Observation",
            "id": ctx.id("Observation", "XML5", str(row.number), key),
            "status": "final",
            "category": [concept(cs.OBSERVATION_CATEGORY, "vital-signs")],
            "subject": ctx.subject,
            "encounter": ctx.encounter,
            "derivedFrom": [{"reference": f"DocumentReference/{document}"}],
        }
        if at:
            base["effectiveDateTime"] = at
        if key == "HA":
            high, _, low = raw.partition("/")
            sys_v, dia_v = decimal(high), decimal(low)
            if sys_v is None or dia_v is None:
                ctx.warn(
                    f"blood pressure {token.strip()!r} in CSST<…> is not systolic/diastolic",
                    row,
                    "DIEN_BIEN_LS",
                )
                continue
            base["code"] = loinc(cs.BLOOD_PRESSURE)
            base["component"] = [
                {"code": loinc(cs.SYSTOLIC), "valueQuantity": quantity(sys_v, "mmHg")},
                {"code": loinc(cs.DIASTOLIC), "valueQuantity": quantity(dia_v, "mmHg")},
            ]
        elif key in cs.VITALS:
            value = decimal(raw)
            if value is None:
                ctx.warn(f"vital sign {token.strip()!r} in CSST<…> is not a number", row, "DIEN_BIEN_LS")
                continue
            code, name, ucum, unit = cs.VITALS[key]
            base["code"] = loinc((code, name))
            base["valueQuantity"] = {"value": value, "unit": unit, "system": cs.UCUM, "code": ucum}
        else:
            continue  # HL (level of nursing care) and keys this importer does not know
        ctx.add(base)


def _div(sections: list[tuple[str, str | None]]) -> str:
    body = "".join(
        f"<p><b>{html.escape(label)}</b>: {html.escape(value).replace(chr(10), '<br/>')}</p>"
        for label, value in sections
        if value
    )
    return f"<div {_XHTML}>{body}</div>"


def _section(title: str, items: list[tuple[str, str | None]]) -> dict[str, Any] | None:
    if not any(v for _, v in items):
        return None
    return {"title": title, "text": {"status": "generated", "div": _div(items)}}


def _composition(ctx: Context, row: Row, kind: tuple[str, str], title: str, sections: list[Any]) -> Resource:
    author = ctx.practitioner(row.get("MA_BS")) or ctx.org(ctx.episode.facility)
    s = ctx.episode.summary
    date = when(row.get("NGAY_CT")) or when(row.get("NGAY_RA") or s.get("NGAY_RA") or s.get("NGAY_VAO"))
    res: Resource = {
        "resourceType": "Composition",
        "id": ctx.id("Composition", row.table, str(row.number)),
        "status": "final",
        "type": concept(cs.LOINC, kind[0], kind[1], title),
        "category": [concept(cs.TABLE, row.table, fields.spec(row.table).title)],
        "subject": ctx.subject,
        "encounter": ctx.encounter,
        "date": date,
        "author": [author] if author else [{"display": ctx.episode.facility}],
        "title": title,
        "section": [x for x in sections if x is not None],
    }
    custodian = ctx.org(ctx.episode.facility)
    if custodian:
        res["custodian"] = custodian
    return res


def discharge_papers(ctx: Context) -> None:
    """XML7 (giấy ra viện, one per child for twins) as a discharge-summary Composition."""
    for row in ctx.episode.table("XML7"):
        res = _composition(ctx, row, cs.DISCHARGE_SUMMARY, "Giấy ra viện", [
            _section("Điều trị", [("Vào viện", _show(row.get("NGAY_VAO"))), ("Ra viện", _show(row.get("NGAY_RA"))),
                                  ("Khoa ra viện", row.get("MA_KHOA_RV"))]),
            _section("Chẩn đoán", [("Chẩn đoán ra viện", row.get("CHAN_DOAN_RV"))]),
            _section("Phương pháp điều trị", [("Phương pháp điều trị", row.get("PP_DIEUTRI"))]),
            _section("Đình chỉ thai nghén", [
                ("Đình chỉ thai nghén", {"1": "Có", "0": "Không"}.get(row.get("MA_DINH_CHI_THAI") or "")),
                ("Nguyên nhân", row.get("NGUYENNHAN_DINHCHI")), ("Thời gian", _show(row.get("THOIGIAN_DINHCHI"))),
                ("Tuổi thai (tuần)", row.get("TUOI_THAI"))]),
            _section("Cha mẹ", [("Họ tên cha", row.get("HO_TEN_CHA")), ("Mã BHXH của cha", row.get("MA_CHA")),
                                ("Họ tên mẹ", row.get("HO_TEN_ME")), ("Mã BHXH của mẹ", row.get("MA_ME")),
                                ("Mã thẻ BHYT tạm", row.get("MA_THE_TAM"))]),
            _section("Nghỉ ngơi", [("Số ngày nghỉ", row.get("SO_NGAY_NGHI")),
                                   ("Từ ngày", _show(row.get("NGOAITRU_TUNGAY"))),
                                   ("Đến ngày", _show(row.get("NGOAITRU_DENNGAY")))]),
            _section("Ghi chú", [("Ghi chú", row.get("GHI_CHU"))]),
            _section("Người ký", [("Bác sĩ", row.get("TEN_BS")), ("Mã bác sĩ", row.get("MA_BS")),
                                  ("Thủ trưởng đơn vị (mã BHXH)", row.get("MA_TTDV"))]),
        ])  # fmt: skip
        ids = [{"system": f"{cs.ARCHIVE_NUMBER}/{ctx.episode.facility}", "value": row.values["SO_LUU_TRU"]}] if row.get(
            "SO_LUU_TRU") else []  # fmt: skip
        if ids:
            res["identifier"] = ids[0]
        ctx.add(res)


def record_summaries(ctx: Context) -> None:
    """XML8 (tóm tắt hồ sơ bệnh án) as a summary-of-episode Composition."""
    for row in ctx.episode.table("XML8"):
        ctx.add(_composition(ctx, row, cs.EPISODE_SUMMARY, "Tóm tắt hồ sơ bệnh án", [
            _section("Đợt điều trị", [("Vào viện", _show(row.get("NGAY_VAO"))), ("Ra viện", _show(row.get("NGAY_RA"))),
                                      ("Hình thức", row.get("MA_LOAI_KCB")), ("Đơn vị", row.get("DON_VI"))]),
            _section("Chẩn đoán", [("Chẩn đoán vào viện", row.get("CHAN_DOAN_VAO")),
                                   ("Chẩn đoán ra viện", row.get("CHAN_DOAN_RV"))]),
            _section("Quá trình bệnh lý và diễn biến lâm sàng", [("Quá trình bệnh lý", row.get("QT_BENHLY"))]),
            _section("Tóm tắt kết quả cận lâm sàng", [("Kết quả", row.get("TOMTAT_KQ"))]),
            _section("Phương pháp điều trị", [("Phương pháp điều trị", row.get("PP_DIEUTRI"))]),
            _section("Kết quả điều trị", [("Kết quả", cs.TREATMENT_RESULTS.get(row.get("KET_QUA_DTRI") or ""))]),
            _section("Sinh con", [("Ngày sinh con", _show(row.get("NGAY_SINHCON"))),
                                  ("Ngày con chết", _show(row.get("NGAY_CONCHET"))),
                                  ("Số con chết", row.get("SO_CONCHET"))]),
            _section("Người thân", [("Họ tên cha", row.get("HO_TEN_CHA")), ("Họ tên mẹ", row.get("HO_TEN_ME")),
                                    ("Người giám hộ", row.get("NGUOI_GIAM_HO"))]),
            _section("Ghi chú", [("Ghi chú", row.get("GHI_CHU"))]),
        ]))  # fmt: skip


def kept_tables(ctx: Context) -> None:
    """Every table this importer does not map (XML0, 6, 10, 11, 12, 15) as a DocumentReference with the original."""
    s = ctx.episode.summary
    for doc in ctx.episode.kept:
        table = doc.table or "XML"
        title = fields.spec(table).title if table in fields.tables() else table
        res: Resource = {
            "resourceType": "DocumentReference",
            "id": ctx.id("DocumentReference", table, str(doc.position)),
            "status": "current",
            "type": concept(cs.TABLE, table, title),
            "subject": ctx.subject,
            "description": f"{table}: {title} (nội dung gốc XML 130)",
            "content": [{"attachment": {
                "contentType": "application/xml", "data": base64.b64encode(doc.content).decode("ascii"),
                "title": f"{table}.xml", "size": len(doc.content)}}],
            "context": {"encounter": [ctx.encounter]},
        }  # fmt: skip
        if s.get("NGAY_VAO"):
            res["date"] = instant(s.values["NGAY_VAO"])
        ctx.add(res)


def _show(value: str | None) -> str | None:
    """yyyymmdd[HHMM] as dd/mm/yyyy [HH:MM] for a narrative."""
    if not value or not value.isdigit() or len(value) < 8:
        return value
    text = f"{value[6:8]}/{value[4:6]}/{value[:4]}"
    return text + (f" {value[8:10]}:{value[10:12]}" if len(value) >= 12 else "")
