"""XML1 (TONG_HOP): the Patient (when new), the Encounter, its diagnoses, weight, blood group, re-visit dates."""

from __future__ import annotations

import re
from typing import Any

from healthbook.identity.ethnicity import ETHNIC_GROUPS
from healthbook.identity.profiles import check_address
from healthbook.imports.xml130 import codes as cs
from healthbook.imports.xml130 import icd
from healthbook.imports.xml130.episode import Episode
from healthbook.imports.xml130.issues import Problem, warning
from healthbook.imports.xml130.mappers.common import (
    Context,
    Resource,
    birth,
    concept,
    day_bounds,
    decimal,
    loinc,
    quantity,
    when,
)
from healthbook.imports.xml130.patients import Person, identifiers, identity_key, valid_cards
from healthbook.imports.xml130.tables import Row, split_codes

_BLOOD = re.compile(r"^(AB|A|B|O)?\s*(?:RH)?\s*(\+|-|DƯƠNG|ÂM|POS|NEG)?$")


def person(ep: Episode) -> tuple[Person, list[Problem]]:
    """Who the episode's patient is, for patients.resolve, and what the identity rules say about it."""
    s = ep.summary
    born = birth(s.values["NGAY_SINH"])[0] if s.get("NGAY_SINH") else None
    gender = cs.GENDER.get(s.get("GIOI_TINH") or "")
    identity, valid, problems = identity_key(s.get("SO_CCCD"), gender=gender, birth=born)
    raw_cards = [c.strip().upper() for c in (s.get("MA_THE_BHYT") or "").split(";") if c.strip()]
    cards, card_problems = valid_cards(raw_cards)
    problems += card_problems
    local = (cs.PATIENT_CODE, f"{ep.facility}/{s.values['MA_BN']}") if s.get("MA_BN") else None
    address(s, problems=problems)
    _ethnicity(s.get("MA_DANTOC"), problems, "XML1", "MA_DANTOC")
    return Person(identity, cards, local, f"{ep.facility}|{ep.ma_lk}", valid), problems


def _ethnicity(
    code: str | None, problems: list[Problem] | None, table: str, name: str
) -> dict[str, Any] | None:
    """The VN Core ethnicity extension of a GSO code; None (and a warning) for a code not in the list."""
    if not code:
        return None
    group = ETHNIC_GROUPS.get(code)
    if group is None:
        if problems is not None:
            problems.append(warning("code-invalid", "is not one of the 54 ethnic-group codes (01-54, 55 "
                                    "foreigners) of QĐ 121-TCTK; not recorded", table=table, row=1, field=name,
                                    value=code))  # fmt: skip
        return None
    return {"url": cs.EXT_ETHNICITY, "valueCodeableConcept": concept(cs.CS_ETHNICITY, code, group, group)}


def _cards(s: Row, cards: tuple[str, ...]) -> list[dict[str, Any]]:
    starts = [d.strip() for d in (s.get("GT_THE_TU") or "").split(";")]
    ends = [d.strip() for d in (s.get("GT_THE_DEN") or "").split(";")]
    out = []
    for n, card in enumerate(cards):
        entry: dict[str, Any] = {"system": cs.BHYT, "value": card}
        period = {}
        if n < len(starts) and starts[n]:
            period["start"] = when(starts[n])
        if n < len(ends) and ends[n]:
            period["end"] = when(ends[n])
        if period:
            entry["period"] = period
        out.append(entry)
    return out


def address(
    s: Row, text_field: str = "DIA_CHI", *, problems: list[Problem] | None = None
) -> dict[str, Any] | None:
    """DIA_CHI with the residence codes (read in the pre-2025 units when there is a district code).

    Codes that the administrative-unit rules of healthbook.identity refuse are left out (the text stays),
    with a warning when `problems` is given.
    """
    text = s.get(text_field)
    province, district, commune = s.get("MATINH_CU_TRU"), s.get("MAHUYEN_CU_TRU"), s.get("MAXA_CU_TRU")
    if not (text or province or commune):
        return None
    out: dict[str, Any] = {"use": "home", "country": "VN"}
    if text:
        out["text"] = text
    ext = []
    if province:
        ext.append({"url": cs.EXT_PROVINCE, "valueCode": province[-2:].zfill(2)})
    if district:
        ext.append({"url": cs.EXT_DISTRICT, "valueCode": district})
    if commune:
        ext.append({"url": cs.EXT_COMMUNE, "valueCode": commune})
    if ext:
        out["extension"] = ext
        found = [i for i in check_address(out, "address") if i.severity == "error"]
        if found:
            del out["extension"]
            if problems is not None:
                problems.append(warning("code-invalid", f"{found[0].diagnostics}; the residence codes are not "
                                        "recorded", table=s.table, row=s.number, field="MAXA_CU_TRU",
                                        value=f"{province or ''}/{district or ''}/{commune or ''}"))  # fmt: skip
    if len(out) == 2:
        return None
    return out


def human_name(text: str) -> dict[str, Any]:
    """A Vietnamese full name: family name first, then middle and given names; the text as written."""
    words = text.split()
    out: dict[str, Any] = {"use": "official", "text": " ".join(words)}
    if len(words) >= 2:
        out["family"] = words[0]
        out["given"] = words[1:]
    return out


def patient_resource(pid: str, ep: Episode, who: Person, orgs: dict[str, str]) -> Resource:
    """A new Patient from the identity fields of XML1."""
    s = ep.summary
    res: Resource = {
        "resourceType": "Patient",
        "id": pid,
        "identifier": identifiers(who, _cards(s, who.cards), ep.facility),
        "active": True,
        "name": [human_name(s.get("HO_TEN") or "")],
        "gender": cs.GENDER[s.get("GIOI_TINH") or "3"],
    }
    born = s.get("NGAY_SINH")
    if born:
        date, time = birth(born)
        res["birthDate"] = date
        if time is not None:
            res["_birthDate"] = {"extension": [{"url": cs.EXT_BIRTH_TIME, "valueDateTime": time}]}
    home = address(s)
    if home is not None:
        res["address"] = [home]
    phone = s.get("DIEN_THOAI")
    if phone:
        digits = phone.replace(" ", "").replace(".", "")
        if digits.isdigit() and len(digits) == 9:
            digits = "0" + digits  # lost its leading zero when QĐ 130 typed it a number
        res["telecom"] = [{"system": "phone", "value": digits}]
    ext: list[dict[str, Any]] = []
    ethnicity = _ethnicity(s.get("MA_DANTOC"), None, "XML1", "MA_DANTOC")
    if ethnicity is not None:
        ext.append(ethnicity)
    if s.get("MA_QUOCTICH"):
        ext.append(
            {
                "url": cs.EXT_NATIONALITY,
                "valueCodeableConcept": concept(cs.NATIONALITY, s.values["MA_QUOCTICH"]),
            }
        )
    if s.get("MA_NGHE_NGHIEP"):
        ext.append({"url": cs.EXT_OCCUPATION,
                    "valueCodeableConcept": concept(cs.CS_OCCUPATION, s.values["MA_NGHE_NGHIEP"])})  # fmt: skip
    if ext:
        res["extension"] = ext
    registered = (s.get("MA_DKBD") or "").split(";")[0].strip()
    if registered and registered in orgs:
        res["generalPractitioner"] = [{"reference": f"Organization/{orgs[registered]}"}]
    return res


def _diagnosis(
    ctx: Context, raw: str, key: tuple[str, ...], *, main: bool, row: Row, name: str
) -> str | None:
    """A Condition of the episode for one ICD-10 code; its id, or None if the code was already mapped."""
    found = icd.lookup(raw)
    code = found.code if found else icd.normalise(raw)
    if code in ctx.conditions:
        return None
    if found is None:
        ctx.warn(f"{code} is not in the ICD-10 list of QĐ 4469; kept without a name", row, name)
    elif main and found.not_principal:
        ctx.warn(f"{code} may not be the principal diagnosis (QĐ 4469 appendix A2)", row, name)
    gender = ctx.episode.summary.get("GIOI_TINH")
    if found and found.sex and gender in ("1", "2") and found.sex != ("F" if gender == "2" else "M"):
        ctx.warn(f"{code} is a {'female' if found.sex == 'F' else 'male'}-only code (QĐ 4469 A4)", row, name)
    cid = ctx.id("Condition", *key)
    s = ctx.episode.summary
    res: Resource = {
        "resourceType": "Condition",
        "id": cid,
        "verificationStatus": concept(cs.CONDITION_VERIFICATION, "confirmed"),
        "category": [concept(cs.CONDITION_CATEGORY, "encounter-diagnosis")],
        "code": concept(cs.ICD10, code, found.name if found else None),
        "subject": ctx.subject,
        "encounter": ctx.encounter,
    }
    recorded = when(s.get("NGAY_RA") or s.get("NGAY_VAO"))
    if recorded:
        res["recordedDate"] = recorded
    if main:
        cured = s.get("KET_QUA_DTRI") == "1"
        res["clinicalStatus"] = concept(cs.CONDITION_CLINICAL, "resolved" if cured else "active")
        if cured and s.get("NGAY_RA"):
            res["abatementDateTime"] = when(s.get("NGAY_RA"))
        notes = [s.values[f] for f in ("CHAN_DOAN_RV",) if s.get(f)]
        notes += [f"{label}: {s.values[f]}" for f, label in (("PP_DIEU_TRI", "Phương pháp điều trị"),
                                                            ("GHI_CHU", "Ghi chú")) if s.get(f)]  # fmt: skip
        if notes:
            res["note"] = [{"text": n} for n in notes]
    ctx.add(res)
    ctx.conditions[code] = cid
    return cid


def diagnoses(ctx: Context) -> list[dict[str, Any]]:
    """Conditions of MA_BENH_CHINH, each MA_BENH_KT and MA_BENH_YHCT code, and CHAN_DOAN_VAO."""
    s = ctx.episode.summary
    out: list[dict[str, Any]] = []
    main = s.get("MA_BENH_CHINH")
    if main:
        cid = _diagnosis(ctx, main, ("main",), main=True, row=s, name="MA_BENH_CHINH")
        if cid:
            out.append({"condition": {"reference": f"Condition/{cid}"},
                        "use": concept(cs.DIAGNOSIS_ROLE, "DD"), "rank": 1})  # fmt: skip
    others, comma = split_codes(s.get("MA_BENH_KT") or "")
    if comma:
        ctx.warn("codes are separated by ','; QĐ 4750 uses ';'", s, "MA_BENH_KT")
    if len(others) > 12:
        ctx.warn(f"lists {len(others)} codes; QĐ 4750 allows at most 12 (all are kept)", s, "MA_BENH_KT")
    for raw in others:
        cid = _diagnosis(ctx, raw, ("kt", icd.normalise(raw)), main=False, row=s, name="MA_BENH_KT")
        if cid:
            out.append({"condition": {"reference": f"Condition/{cid}"},
                        "use": concept(cs.DIAGNOSIS_ROLE, "CM"), "rank": len(out) + 1})  # fmt: skip
    for raw in split_codes(s.get("MA_BENH_YHCT") or "")[0]:
        cid = ctx.id("Condition", "yhct", raw)
        ctx.add({
            "resourceType": "Condition", "id": cid,
            "verificationStatus": concept(cs.CONDITION_VERIFICATION, "confirmed"),
            "category": [concept(cs.CONDITION_CATEGORY, "encounter-diagnosis")],
            "code": concept(cs.YHCT, raw), "subject": ctx.subject, "encounter": ctx.encounter,
        })  # fmt: skip
        out.append({"condition": {"reference": f"Condition/{cid}"}, "rank": len(out) + 1})
    if s.get("CHAN_DOAN_VAO"):
        cid = ctx.id("Condition", "vao")
        ctx.add({
            "resourceType": "Condition", "id": cid,
            "verificationStatus": concept(cs.CONDITION_VERIFICATION, "provisional"),
            "category": [concept(cs.CONDITION_CATEGORY, "encounter-diagnosis")],
            "code": {"text": s.values["CHAN_DOAN_VAO"]}, "subject": ctx.subject, "encounter": ctx.encounter,
        })  # fmt: skip
        out.append({"condition": {"reference": f"Condition/{cid}"}, "use": concept(cs.DIAGNOSIS_ROLE, "AD")})
    return out


def encounter(ctx: Context, diagnosis: list[dict[str, Any]], participants: list[dict[str, str]]) -> Resource:
    """The Encounter of the episode (MA_LK as its identifier)."""
    ep, s = ctx.episode, ctx.episode.summary
    kind = s.get("MA_LOAI_KCB") or "01"
    display, klass = cs.CARE_TYPES[kind]
    res: Resource = {
        "resourceType": "Encounter",
        "id": ctx.encounter_id,
        "identifier": [{"use": "official", "system": f"{cs.EPISODE}/{ep.facility}", "value": ep.ma_lk}],
        "status": "finished" if s.get("NGAY_RA") else "in-progress",
        "class": {"system": cs.V3_ACT, "code": klass},
        "type": [concept(cs.CARE_TYPE, kind, display)],
        "subject": ctx.subject,
        "period": {"start": when(s.get("NGAY_VAO"))},
    }
    if s.get("MA_HSBA"):
        res["identifier"].append(
            {"system": f"{cs.RECORD_NUMBER}/{ep.facility}", "value": s.values["MA_HSBA"]}
        )
    if s.get("NGAY_RA"):
        res["period"]["end"] = when(s.get("NGAY_RA"))
    departments = [d.strip() for d in (s.get("MA_KHOA") or "").split(";") if d.strip()]
    if departments:
        res["serviceType"] = {"coding": [{"system": cs.DEPARTMENT, "code": d} for d in departments]}
    days = decimal(s.get("SO_NGAY_DTRI"))
    if days is not None:
        res["length"] = {"value": days, "unit": "ngày", "system": cs.UCUM, "code": "d"}
    if s.get("MA_DOITUONG_KCB"):
        res["type"].append(concept(cs.PATIENT_CATEGORY, s.values["MA_DOITUONG_KCB"]))
    reasons: list[dict[str, Any]] = [{"text": s.values[f]} for f in ("LY_DO_VV", "LY_DO_VNT") if s.get(f)]
    if s.get("MA_LY_DO_VNT"):
        reasons.append(concept(cs.ADMISSION_REASON, s.values["MA_LY_DO_VNT"]))
    if s.get("MA_TAI_NAN"):
        reasons.append(concept(cs.ACCIDENT, s.values["MA_TAI_NAN"]))
    if reasons:
        res["reasonCode"] = reasons
    if diagnosis:
        res["diagnosis"] = diagnosis
    if participants:
        res["participant"] = [{"individual": p} for p in participants]
    stay: dict[str, Any] = {}
    if s.get("GIAY_CHUYEN_TUYEN"):
        issuer = s.get("MA_NOI_DI") or ep.facility
        stay["preAdmissionIdentifier"] = {"system": f"{cs.REFERRAL_SLIP}/{issuer}",
                                          "value": s.values["GIAY_CHUYEN_TUYEN"]}  # fmt: skip
    origin, destination = ctx.org(s.get("MA_NOI_DI")), ctx.org(s.get("MA_NOI_DEN"))
    if origin:
        stay["origin"] = origin
    if destination:
        stay["destination"] = destination
    result, leave = s.get("KET_QUA_DTRI"), s.get("MA_LOAI_RV")
    if result in ("5", "8"):
        stay["dischargeDisposition"] = concept(cs.DISCHARGE_DISPOSITION, "exp", "Expired")
    elif leave:
        text, code = cs.DISCHARGE_TYPES[leave]
        stay["dischargeDisposition"] = {"coding": [{"system": cs.DISCHARGE_DISPOSITION, "code": code},
                                                   {"system": cs.DISCHARGE_TYPE, "code": leave, "display": text}]}  # fmt: skip
    if stay:
        res["hospitalization"] = stay
    if result:
        res["extension"] = [{"url": cs.EXT_TREATMENT_RESULT, "valueCoding": {
            "system": cs.TREATMENT_RESULT, "code": result, "display": cs.TREATMENT_RESULTS[result]}}]  # fmt: skip
    provider = ctx.org(ep.facility)
    if provider:
        res["serviceProvider"] = provider
    return ctx.add(res)


def measurements(ctx: Context) -> None:
    """CAN_NANG (kg) and NHOM_MAU as Observations at admission."""
    s = ctx.episode.summary
    at = when(s.get("NGAY_VAO"))
    weight = s.get("CAN_NANG")
    if weight:
        value = decimal(weight)
        if value is None or float(value) <= 0 or float(value) > 500:
            ctx.warn("is not a weight in kg ('.' as the decimal separator); not recorded", s, "CAN_NANG")
        else:
            ctx.add({
                "resourceType": "Observation", "id": ctx.id("Observation", "weight"), "status": "final",
                "category": [concept(cs.OBSERVATION_CATEGORY, "vital-signs")], "code": loinc(cs.WEIGHT),
                "subject": ctx.subject, "encounter": ctx.encounter, "effectiveDateTime": at,
                "valueQuantity": quantity(value, "kg"),
            })  # fmt: skip
    group = s.get("NHOM_MAU")
    if group:
        ctx.add(blood_group(ctx, group, at))


def blood_group(ctx: Context, raw: str, at: str | None) -> Resource:
    """NHOM_MAU: ABO and Rh (882-1), ABO only (883-9) or Rh only (10331-7), the value as text."""
    m = _BLOOD.match(raw.strip().upper().replace("RH(D)", "RH"))
    abo, rh = (m.group(1), m.group(2)) if m else (None, None)
    sign = {"+": "+", "DƯƠNG": "+", "POS": "+", "-": "-", "ÂM": "-", "NEG": "-"}.get(rh or "")
    code = (
        cs.BLOOD_GROUP if abo and sign else cs.ABO_GROUP if abo else cs.RH_GROUP if sign else cs.BLOOD_GROUP
    )
    text = (f"{abo} Rh{sign}" if abo and sign else abo or f"Rh{sign}") if m and (abo or sign) else raw
    if not (m and (abo or sign)):
        ctx.warn(
            "is not a recognised blood group (A, B, AB, O with Rh+ or Rh-); kept as text",
            ctx.episode.summary,
            "NHOM_MAU",
        )
    res: Resource = {
        "resourceType": "Observation", "id": ctx.id("Observation", "blood-group"), "status": "final",
        "category": [concept(cs.OBSERVATION_CATEGORY, "laboratory")], "code": loinc(code),
        "subject": ctx.subject, "encounter": ctx.encounter, "valueCodeableConcept": {"text": text},
    }  # fmt: skip
    if at:
        res["effectiveDateTime"] = at
    return res


def revisit_dates(ctx: Context, booked: set[str]) -> None:
    """Each NGAY_TAI_KHAM date without an XML14 slip for that day becomes a booked Appointment for the day."""
    s = ctx.episode.summary
    for day in dict.fromkeys(d.strip() for d in (s.get("NGAY_TAI_KHAM") or "").split(";") if d.strip()):
        if day in booked:
            continue
        start, end = day_bounds(day)
        res: Resource = {
            "resourceType": "Appointment", "id": ctx.id("Appointment", "tai-kham", day), "status": "booked",
            "description": "Hẹn tái khám", "start": start, "end": end,
            "requestedPeriod": [{"start": when(day), "end": when(day)}],
            "participant": [{"actor": ctx.subject, "status": "accepted"}],
            "supportingInformation": [ctx.encounter],
        }  # fmt: skip
        provider = ctx.org(ctx.episode.facility)
        if provider:
            res["supportingInformation"].append(provider)
        main = ctx.conditions.get(icd.normalise(s.get("MA_BENH_CHINH") or ""))
        if main:
            res["reasonReference"] = [{"reference": f"Condition/{main}"}]
        if s.get("NGAY_RA"):
            res["created"] = when(s.get("NGAY_RA"))
        ctx.add(res)
