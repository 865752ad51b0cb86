"""XML9 (giấy chứng sinh): the newborn, the mother linked to the child, the birth weight and the certificate."""

from __future__ import annotations

from typing import Any

from healthbook.imports.xml130 import codes as cs
from healthbook.imports.xml130.episode import Episode
from healthbook.imports.xml130.mappers.common import (
    Context,
    Resource,
    birth,
    concept,
    decimal,
    loinc,
    quantity,
    when,
)
from healthbook.imports.xml130.mappers.documents import _composition, _section, _show
from healthbook.imports.xml130.mappers.summary import address, human_name
from healthbook.imports.xml130.patients import Person, valid_cards
from healthbook.imports.xml130.tables import Row

_MOTHER = concept(cs.V3_ROLE, "MTH", "mother", "Mẹ")
_FATHER = concept(cs.V3_ROLE, "FTH", "father", "Cha")


def newborn(ep: Episode, row: Row) -> Person:
    """Who the child is, for patients.resolve: only the temporary BHYT code, if any, identifies a newborn."""
    card = (row.get("MA_THE_TAM") or "").strip().upper()
    cards, _ = valid_cards([card] if card else [])
    return Person(None, cards, None, f"{ep.facility}|{ep.ma_lk}|XML9|{row.number}")


def child_resource(pid: str, ep: Episode, row: Row, child: Person) -> Resource:
    """A new Patient for the newborn of an XML9 row, with the mother (and father) as contacts."""
    res: Resource = {
        "resourceType": "Patient",
        "id": pid,
        "active": True,
        "gender": cs.GENDER.get(row.get("GIOI_TINH_CON") or "3", "unknown"),
    }
    if child.cards:
        res["identifier"] = [{"use": "temp", "system": cs.BHYT, "value": child.cards[0]}]
    if row.get("HO_TEN_CON"):
        res["name"] = [human_name(row.values["HO_TEN_CON"])]
    if row.get("NGAY_SINH_CON"):
        date, time = birth(row.values["NGAY_SINH_CON"])
        res["birthDate"] = date
        if time is not None:
            res["_birthDate"] = {"extension": [{"url": cs.EXT_BIRTH_TIME, "valueDateTime": time}]}
    if (row.get("SO_CON") or "1") not in ("0", "1"):
        res["multipleBirthBoolean"] = True
    home = address(row, "NOI_CU_TRU_NND")
    if home is not None:
        res["address"] = [home]
    contacts = []
    if row.get("HO_TEN_NND"):
        contacts.append(
            {"relationship": [_MOTHER], "name": human_name(row.values["HO_TEN_NND"]), "gender": "female"}
        )
    if row.get("HO_TEN_CHA"):
        contacts.append(
            {"relationship": [_FATHER], "name": human_name(row.values["HO_TEN_CHA"]), "gender": "male"}
        )
    if contacts:
        res["contact"] = contacts
    return res


def births(ctx: Context) -> None:
    """Per XML9 row: RelatedPerson (the mother, of the child), birth weight, and the certificate Composition."""
    for row in ctx.episode.table("XML9"):
        child = ctx.refs.children.get(row.number)
        if child is None:
            continue
        child_ref = {"reference": f"Patient/{child}"}
        n = str(row.number)
        mother: Resource = {
            "resourceType": "RelatedPerson",
            "id": ctx.id("RelatedPerson", "XML9", n),
            "active": True,
            "patient": child_ref,
            "relationship": [_MOTHER],
            "gender": "female",
        }
        ids: list[dict[str, Any]] = []
        if row.get("SO_CCCD_NND"):
            ids.append({"system": cs.CCCD if len(row.values["SO_CCCD_NND"]) == 12 else cs.OTHER_ID,
                        "value": row.values["SO_CCCD_NND"]})  # fmt: skip
        if row.get("MA_THE_NND"):
            ids.append({"system": cs.BHYT, "value": row.values["MA_THE_NND"].upper()})
        if row.get("MA_BHXH_NND"):
            ids.append({"system": cs.BHXH, "value": row.values["MA_BHXH_NND"]})
        if ids:
            mother["identifier"] = ids
        if row.get("HO_TEN_NND"):
            mother["name"] = [human_name(row.values["HO_TEN_NND"])]
        if row.get("NGAYSINH_NND"):
            mother["birthDate"] = when(row.values["NGAYSINH_NND"])
        home = address(row, "NOI_CU_TRU_NND")
        if home is not None:
            mother["address"] = [home]
        ctx.add(mother)
        grams = decimal(row.get("CAN_NANG_CON"))
        if grams is not None:
            weight: Resource = {
                "resourceType": "Observation", "id": ctx.id("Observation", "XML9", n), "status": "final",
                "category": [concept(cs.OBSERVATION_CATEGORY, "vital-signs")], "code": loinc(cs.BIRTH_WEIGHT),
                "subject": child_ref, "valueQuantity": quantity(grams, "g"),
            }  # fmt: skip
            if row.get("NGAY_SINH_CON"):
                weight["effectiveDateTime"] = when(row.values["NGAY_SINH_CON"])
            ctx.add(weight)
        ctx.add(_certificate(ctx, row, child_ref))


def _certificate(ctx: Context, row: Row, child: dict[str, str]) -> Resource:
    yes_no = {"1": "Có", "0": "Không"}
    res = _composition(ctx, row, ("", ""), "Giấy chứng sinh", [
        _section("Mẹ", [("Họ tên", row.get("HO_TEN_NND")), ("Ngày sinh", _show(row.get("NGAYSINH_NND"))),
                        ("Số CCCD", row.get("SO_CCCD_NND")), ("Nơi cư trú", row.get("NOI_CU_TRU_NND")),
                        ("Mã thẻ BHYT", row.get("MA_THE_NND"))]),
        _section("Con", [("Họ tên", row.get("HO_TEN_CON")), ("Giới tính", {"1": "Nam", "2": "Nữ"}.get(
                         row.get("GIOI_TINH_CON") or "", "Chưa xác định")),
                         ("Ngày giờ sinh", _show(row.get("NGAY_SINH_CON"))), ("Nơi sinh", row.get("NOI_SINH_CON")),
                         ("Cân nặng (g)", row.get("CAN_NANG_CON")), ("Tình trạng", row.get("TINH_TRANG_CON")),
                         ("Sinh con phẫu thuật", yes_no.get(row.get("SINHCON_PHAUTHUAT") or "")),
                         ("Sinh con dưới 32 tuần", yes_no.get(row.get("SINHCON_DUOI32TUAN") or ""))]),
        _section("Lần sinh", [("Số con lần này", row.get("SO_CON")), ("Lần sinh thứ", row.get("LAN_SINH")),
                              ("Số con hiện sống", row.get("SO_CON_SONG"))]),
        _section("Cha", [("Họ tên cha", row.get("HO_TEN_CHA"))]),
        _section("Người đỡ đẻ, người ghi phiếu", [("Người đỡ đẻ", row.get("NGUOI_DO_DE")),
                                                  ("Người ghi phiếu", row.get("NGUOI_GHI_PHIEU")),
                                                  ("Ghi chú", row.get("GHI_CHU"))]),
    ])  # fmt: skip
    res["type"] = concept(cs.TABLE, "XML9", "Giấy chứng sinh")
    res["subject"] = child
    res["section"].insert(
        0, {"title": "Người mẹ (hồ sơ của đợt sinh)", "entry": [ctx.subject, ctx.encounter]}
    )
    if row.get("SO"):
        book = f"{row.values['QUYEN_SO']}/" if row.get("QUYEN_SO") else ""
        res["identifier"] = {"system": f"{cs.BIRTH_CERTIFICATE}/{ctx.episode.facility}",
                             "value": book + row.values["SO"]}  # fmt: skip
    return res
