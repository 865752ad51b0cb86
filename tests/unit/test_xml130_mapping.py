"""Mapping XML130 tables to FHIR R4, table by table and field by field (no database)."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from healthbook.fhir.outcomes import has_errors
from healthbook.fhir.validation import validate_resource
from healthbook.imports.xml130 import codes as cs
from healthbook.imports.xml130.episode import Episode, assemble
from healthbook.imports.xml130.mappers import Context, Refs, map_episode, needs
from healthbook.imports.xml130.mappers.birth import child_resource, newborn
from healthbook.imports.xml130.mappers.summary import patient_resource, person
from healthbook.imports.xml130.source import Limits, Submission
from healthbook.testing import xml130 as sample

Resource = dict[str, Any]


def _episode(rows: sample.Rows) -> Episode:
    sub = Submission(sample.submission(rows), Limits(10**8, 10**7), "t.xml")
    header = sub.check()
    (hoso,) = list(sub.episodes())
    episode, _, problems = assemble(hoso, header.macskcb)
    assert episode is not None, problems
    return episode


def _map(rows: sample.Rows | None = None) -> tuple[Episode, Context, Refs]:
    ep = _episode(rows or sample.episode_rows())
    who, _ = person(ep)
    n = needs(ep, who)
    refs = Refs(
        "pat",
        {c: f"org-{c}" for c in n.facilities},
        {c: f"prac-{i}" for i, c in enumerate(n.staff)},
        {row: f"child-{row}" for row in n.children},
    )
    return ep, map_episode(ep, refs), refs


@pytest.fixture(scope="module")
def mapped() -> tuple[Episode, Context, Refs]:
    return _map()


def _of(ctx: Context, rtype: str) -> list[Resource]:
    return [r for r in ctx.out if r["resourceType"] == rtype]


def _coding(concept: dict[str, Any], system: str) -> list[str]:
    return [c["code"] for c in concept.get("coding", []) if c["system"] == system]


def test_every_mapped_resource_is_valid_fhir(mapped: tuple[Episode, Context, Refs]) -> None:
    ep, ctx, refs = mapped
    who, _ = person(ep)
    extra = [
        patient_resource("pat", ep, who, refs.organizations),
        child_resource("child-1", ep, ep.table("XML9")[0], newborn(ep, ep.table("XML9")[0])),
    ]
    for res in ctx.out + extra:
        issues = validate_resource(res)
        assert not has_errors(issues), (res["resourceType"], issues)
    assert ctx.problems == []
    assert len({r["id"] for r in ctx.out}) == len(ctx.out)


def test_ids_are_derived_from_facility_ma_lk_and_row() -> None:
    _, first, _ = _map()
    _, again, _ = _map()
    _, other, _ = _map(sample.episode_rows("LK0002"))
    assert [r["id"] for r in first.out] == [r["id"] for r in again.out]
    assert not {r["id"] for r in first.out} & {r["id"] for r in other.out}


def test_xml1_patient(mapped: tuple[Episode, Context, Refs]) -> None:
    ep, _, refs = mapped
    who, _ = person(ep)
    p = patient_resource("pat", ep, who, refs.organizations)
    assert {(i["system"], i["value"]) for i in p["identifier"]} == {
        (cs.CCCD, "001190123456"),
        (cs.BHYT, "DN4010123456789"),
        (cs.PATIENT_CODE, "BN0001"),
    }
    local = next(i for i in p["identifier"] if i["system"] == cs.PATIENT_CODE)
    assert local["assigner"] == {"identifier": {"system": cs.FACILITY, "value": "01001"}}
    card = next(i for i in p["identifier"] if i["system"] == cs.BHYT)
    assert card["period"] == {"start": "2026-01-01", "end": "2026-12-31"}
    assert p["name"] == [
        {"use": "official", "text": "Nguyễn Thị Hoa", "family": "Nguyễn", "given": ["Thị", "Hoa"]}
    ]
    assert (p["gender"], p["birthDate"]) == ("female", "1990-01-02") and "_birthDate" not in p
    (home,) = p["address"]
    assert home["text"].startswith("Số 12") and {e["url"]: e["valueCode"] for e in home["extension"]} == {
        cs.EXT_PROVINCE: "01",
        cs.EXT_COMMUNE: "00070",
    }
    assert p["telecom"] == [{"system": "phone", "value": "0912345678"}]
    ext = {e["url"]: e for e in p["extension"]}
    assert ext[cs.EXT_ETHNICITY]["valueCodeableConcept"]["coding"][0] == {
        "system": cs.CS_ETHNICITY, "code": "01", "display": "Kinh"}  # fmt: skip
    assert ext[cs.EXT_OCCUPATION]["valueCodeableConcept"]["coding"][0]["code"] == "00000"
    assert ext[cs.EXT_NATIONALITY]["valueCodeableConcept"]["coding"][0]["code"] == "000"
    assert p["generalPractitioner"] == [{"reference": "Organization/org-01100"}]


def test_xml1_patient_variants() -> None:
    rows = sample.variant(sample.episode_rows(), "XML1", SO_CCCD="1190123456", NGAY_SINH="202606011130",
                          DIEN_THOAI="912345678", MATINH_CU_TRU="01", MAHUYEN_CU_TRU="001", MAXA_CU_TRU="00001")  # fmt: skip
    ep = _episode(rows)
    who, problems = person(ep)
    assert who.identity == (cs.CCCD, "001190123456") and "leading zeros" in problems[0].message
    assert not who.identity_valid  # the number says born 1990, NGAY_SINH 2026: not carried by a new Patient
    p = patient_resource("pat", ep, who, {})
    assert p["_birthDate"]["extension"][0] == {
        "url": cs.EXT_BIRTH_TIME,
        "valueDateTime": "2026-06-01T11:30:00+07:00",
    }
    assert {i["system"] for i in p["identifier"]} == {cs.BHYT, cs.PATIENT_CODE}
    urls = [e["url"] for e in p["address"][0]["extension"]]
    assert urls == [cs.EXT_PROVINCE, cs.EXT_DISTRICT, cs.EXT_COMMUNE]  # read in the pre-2025 units
    assert p["telecom"][0]["value"] == "0912345678"
    for raw, system in (("123456789", cs.CMND), ("B1234567", cs.PASSPORT), ("VNEID-abc", cs.OTHER_ID)):
        who, _ = person(_episode(sample.variant(sample.episode_rows(), "XML1", SO_CCCD=raw)))
        assert who.identity is not None and who.identity[0] == system


def test_identity_rules_drop_what_a_new_patient_may_not_carry() -> None:
    rows = sample.variant(sample.episode_rows(), "XML1", MA_THE_BHYT="DN4010123456789;XX0001", MA_DANTOC="99",
                          MATINH_CU_TRU="01", MAXA_CU_TRU="99999")  # fmt: skip
    ep = _episode(rows)
    who, problems = person(ep)
    assert who.cards == ("DN4010123456789",)
    assert {p.field for p in problems} == {"MA_THE_BHYT", "MA_DANTOC", "MAXA_CU_TRU"}
    assert all(not p.is_error for p in problems)
    p = patient_resource("pat", ep, who, {})
    assert "extension" not in p["address"][0] and all(
        e["url"] != cs.EXT_ETHNICITY for e in p.get("extension", [])
    )
    from healthbook.identity.profiles import check_resource

    assert [i for i in check_resource(p) if i.severity == "error"] == []


def test_xml1_encounter(mapped: tuple[Episode, Context, Refs]) -> None:
    _, ctx, _ = mapped
    (enc,) = _of(ctx, "Encounter")
    assert enc["identifier"] == [
        {"use": "official", "system": f"{cs.EPISODE}/01001", "value": "LK0001"},
        {"system": f"{cs.RECORD_NUMBER}/01001", "value": "BA0001"},
    ]
    assert enc["status"] == "finished" and enc["class"]["code"] == "IMP"
    assert _coding(enc["type"][0], cs.CARE_TYPE) == ["03"] and _coding(
        enc["type"][1], cs.PATIENT_CATEGORY
    ) == ["1"]
    assert enc["period"] == {"start": "2026-06-01T08:30:00+07:00", "end": "2026-06-04T10:00:00+07:00"}
    assert enc["length"] == {"value": 4, "unit": "ngày", "system": cs.UCUM, "code": "d"}
    assert enc["reasonCode"] == [{"text": "Chuyển dạ"}]
    assert _coding(enc["serviceType"], cs.DEPARTMENT) == ["K25"]
    stay = enc["hospitalization"]
    assert stay["origin"] == {"reference": "Organization/org-01100"}
    assert stay["destination"] == {"reference": "Organization/org-01904"}
    assert stay["preAdmissionIdentifier"] == {"system": f"{cs.REFERRAL_SLIP}/01100", "value": "CT-01100-0001"}
    assert _coding(stay["dischargeDisposition"], cs.DISCHARGE_DISPOSITION) == ["other-hcf"]
    assert _coding(stay["dischargeDisposition"], cs.DISCHARGE_TYPE) == ["2"]
    assert enc["extension"][0]["valueCoding"]["code"] == "2"
    assert enc["serviceProvider"] == {"reference": "Organization/org-01001"}
    assert {p["individual"]["reference"] for p in enc["participant"]} == {"Practitioner/prac-0"}
    uses = [(d.get("rank"), d.get("use", {}).get("coding", [{}])[0].get("code")) for d in enc["diagnosis"]]
    assert uses == [(1, "DD"), (2, "CM"), (3, "CM"), (None, "AD")]


def test_xml1_conditions_with_vietnamese_icd_names(mapped: tuple[Episode, Context, Refs]) -> None:
    _, ctx, _ = mapped
    conditions = _of(ctx, "Condition")
    codes = [c["code"].get("coding", [{}])[0].get("code") for c in conditions]
    assert codes == ["O82.0", "O99.0", "D50.9", None]
    main = conditions[0]
    assert main["code"]["coding"][0] == {
        "system": cs.ICD10,
        "code": "O82.0",
        "display": "Mổ lấy thai chủ động",
    }
    assert main["note"] == [{"text": "Mổ lấy thai chủ động; thiếu máu"}]
    assert main["clinicalStatus"]["coding"][0]["code"] == "active"
    assert main["recordedDate"] == "2026-06-04T10:00:00+07:00"
    assert conditions[3]["verificationStatus"]["coding"][0]["code"] == "provisional"
    assert conditions[3]["code"] == {"text": "Thai 39 tuần chuyển dạ"}


def test_xml1_results_codes_and_icd_forms() -> None:
    rows = sample.variant(sample.episode_rows(), "XML1", KET_QUA_DTRI="1", MA_BENH_CHINH="o820",
                          MA_BENH_KT="O99.0,X99.99", MA_BENH_YHCT="U50.351")  # fmt: skip
    _, ctx, _ = _map(rows)
    main = _of(ctx, "Condition")[0]
    assert main["code"]["coding"][0]["code"] == "O82.0"
    assert main["clinicalStatus"]["coding"][0]["code"] == "resolved"
    assert main["abatementDateTime"] == "2026-06-04T10:00:00+07:00"
    assert {c["code"]["coding"][0]["system"] for c in _of(ctx, "Condition") if "coding" in c["code"]} == {
        cs.ICD10,
        cs.YHCT,
    }
    messages = [p.message for p in ctx.problems]
    assert any("','" in m for m in messages) and any(
        "X99.99 is not in the ICD-10 list" in m for m in messages
    )
    _, died, _ = _map(sample.variant(sample.episode_rows(), "XML1", KET_QUA_DTRI="5"))
    stay = _of(died, "Encounter")[0]["hospitalization"]
    assert _coding(stay["dischargeDisposition"], cs.DISCHARGE_DISPOSITION) == ["exp"]


def test_xml1_weight_blood_group_and_revisit_dates(mapped: tuple[Episode, Context, Refs]) -> None:
    _, ctx, _ = mapped
    obs = {o["code"]["coding"][0]["code"]: o for o in _of(ctx, "Observation")}
    weight = obs["29463-7"]["valueQuantity"]
    assert (float(weight["value"]), weight["system"], weight["code"]) == (62.5, cs.UCUM, "kg")
    assert str(weight["value"].text) == "62.50"
    assert obs["882-1"]["valueCodeableConcept"] == {"text": "O Rh+"}
    starts = sorted(a["start"] for a in _of(ctx, "Appointment"))
    assert starts == ["2026-06-11T08:00:00+07:00", "2026-07-11T00:00:00+07:00"]  # 11/06 is the XML14 slip


@pytest.mark.parametrize(("raw", "code", "text"), [("A", "883-9", "A"), ("O Rh-", "882-1", "O Rh-"),
                                                    ("Rh+", "10331-7", "Rh+"), ("??", "882-1", "??")])  # fmt: skip
def test_blood_group_forms(raw: str, code: str, text: str) -> None:
    _, ctx, _ = _map(sample.variant(sample.episode_rows(), "XML1", NHOM_MAU=raw))
    (o,) = [
        o for o in _of(ctx, "Observation") if o["code"]["coding"][0]["code"] in ("882-1", "883-9", "10331-7")
    ]
    assert (o["code"]["coding"][0]["code"], o["valueCodeableConcept"]["text"]) == (code, text)


def test_xml2_drugs(mapped: tuple[Episode, Context, Refs]) -> None:
    _, ctx, _ = mapped
    (mr,) = _of(ctx, "MedicationRequest")
    assert mr["medicationCodeableConcept"] == {"coding": [{"system": cs.DRUG, "code": "40.822"}],
                                               "text": "Sắt fumarat + acid folic"}  # fmt: skip
    assert mr["authoredOn"] == "2026-06-01T10:00:00+07:00" and mr["requester"] == {
        "reference": "Practitioner/prac-0"
    }
    dose = mr["dosageInstruction"][0]
    assert dose["text"].startswith("1 viên/lần") and dose["patientInstruction"] == "Uống sau ăn sáng"
    assert _coding(dose["route"], cs.ROUTE) == ["1.01"]
    assert mr["dispenseRequest"]["quantity"] == {"value": 30, "unit": "viên"}
    assert mr["category"][0]["coding"][0]["code"] == "inpatient"
    (md,) = _of(ctx, "MedicationDispense")
    assert md["whenHandedOver"] == "2026-06-01T10:30:00+07:00"
    assert md["authorizingPrescription"] == [{"reference": f"MedicationRequest/{mr['id']}"}]
    transport = [c for c in _of(ctx, "ChargeItem") if _coding(c["code"], cs.DRUG) == ["VM.01904"]]
    assert len(transport) == 1  # blood transport is a cost, not a drug


def test_xml3_charges_and_procedures(mapped: tuple[Episode, Context, Refs]) -> None:
    _, ctx, _ = mapped
    charges = _of(ctx, "ChargeItem")
    assert len(charges) == 5
    bed = next(c for c in charges if _coding(c["code"], cs.SERVICE) == ["K03.1917"])
    assert bed["quantity"] == {"value": 3} and bed["priceOverride"] == {"value": 221000, "currency": "VND"}
    assert "service" not in bed and bed["status"] == "billed"
    (proc,) = _of(ctx, "Procedure")
    assert _coding(proc["code"], cs.SERVICE) == ["12.0297.0591"] and _coding(proc["code"], cs.ICD9CM) == [
        "74.1"
    ]
    assert proc["performedPeriod"] == {
        "start": "2026-06-01T11:00:00+07:00",
        "end": "2026-06-01T12:00:00+07:00",
    }
    assert [p["actor"]["reference"] for p in proc["performer"]] == [
        "Practitioner/prac-1",
        "Practitioner/prac-2",
    ]
    main = _of(ctx, "Condition")[0]["id"]
    assert proc["reasonReference"] == [{"reference": f"Condition/{main}"}]
    surgery = next(c for c in charges if _coding(c["code"], cs.SERVICE) == ["12.0297.0591"])
    assert surgery["service"] == [{"reference": f"Procedure/{proc['id']}"}]
    lab = next(c for c in charges if _coding(c["code"], cs.SERVICE) == ["22.0120.1370"])
    report = _of(ctx, "DiagnosticReport")[0]
    assert lab["service"] == [{"reference": f"DiagnosticReport/{report['id']}"}]
    supply = next(c for c in charges if "productCodeableConcept" in c)
    assert _coding(supply["productCodeableConcept"], cs.SUPPLY) == ["N07.01.010"]


def test_xml4_results_with_ucum_units(mapped: tuple[Episode, Context, Refs]) -> None:
    _, ctx, _ = mapped
    (report,) = _of(ctx, "DiagnosticReport")
    assert _coding(report["code"], cs.SERVICE) == ["22.0120.1370"] and report["code"]["text"].startswith(
        "Định lượng"
    )
    assert report["category"][0]["coding"][0]["code"] == "LAB" and report["status"] == "final"
    assert report["conclusion"] == "Thiếu máu nhẹ" and report["issued"] == "2026-06-01T10:00:00+07:00"
    assert report["resultsInterpreter"] == [{"reference": "Practitioner/prac-3"}]
    results = {o["id"]: o for o in _of(ctx, "Observation")}
    hgb, wbc = (results[r["reference"].split("/")[1]] for r in report["result"])
    assert (
        _coding(hgb["code"], cs.RESULT_INDEX) == ["HGB"]
        and hgb["category"][0]["coding"][0]["code"] == "laboratory"
    )
    assert hgb["valueQuantity"] == {"value": 98, "unit": "g/L", "system": cs.UCUM, "code": "g/L"}
    assert wbc["valueQuantity"]["comparator"] == "<" and wbc["valueQuantity"]["code"] == "10*9/L"
    assert hgb["note"] == [{"text": "Thiếu máu nhẹ"}]


def test_xml4_text_values_and_unknown_units() -> None:
    rows = sample.variant(sample.episode_rows(), "XML4", 0, GIA_TRI="Âm tính", DON_VI_DO=None)
    rows = sample.variant(rows, "XML4", 1, DON_VI_DO="cái/vi trường")
    _, ctx, _ = _map(rows)
    obs = [o for o in _of(ctx, "Observation") if "HGB" in str(o["code"]) or "WBC" in str(o["code"])]
    assert obs[0]["valueString"] == "Âm tính"
    assert obs[1]["valueQuantity"] == {"value": 15.5, "unit": "cái/vi trường", "comparator": "<"}
    assert any(p.field == "DON_VI_DO" for p in ctx.problems)


def test_xml5_notes_and_vital_signs(mapped: tuple[Episode, Context, Refs]) -> None:
    _, ctx, _ = mapped
    notes = [
        d for d in _of(ctx, "DocumentReference") if _coding(d.get("category", [{}])[0], cs.TABLE) == ["XML5"]
    ]
    assert [_coding(d["type"], cs.LOINC) for d in notes] == [["11506-3"], ["11504-8"]]
    text = base64.b64decode(notes[0]["content"][0]["attachment"]["data"]).decode()
    assert "CSST<M88" in text and notes[0]["date"] == "2026-06-01T09:00:00+07:00"
    assert notes[0]["author"] == [{"reference": "Practitioner/prac-0"}]
    vitals = {o["code"]["coding"][0]["code"]: o for o in _of(ctx, "Observation") if "derivedFrom" in o}
    assert set(vitals) == {"8867-4", "8310-5", "85354-9", "9279-1", "59408-5"}
    assert (
        vitals["8310-5"]["valueQuantity"]["code"] == "Cel"
        and float(vitals["8310-5"]["valueQuantity"]["value"]) == 37.2
    )
    bp = [c["valueQuantity"]["value"] for c in vitals["85354-9"]["component"]]
    assert bp == [120, 75] and vitals["8867-4"]["derivedFrom"] == [
        {"reference": f"DocumentReference/{notes[0]['id']}"}
    ]


def test_xml7_and_xml8_compositions(mapped: tuple[Episode, Context, Refs]) -> None:
    _, ctx, _ = mapped
    comps = {c["title"]: c for c in _of(ctx, "Composition")}
    paper = comps["Giấy ra viện"]
    assert _coding(paper["type"], cs.LOINC) == ["18842-5"] and paper["date"] == "2026-06-04"
    assert paper["identifier"] == {"system": f"{cs.ARCHIVE_NUMBER}/01001", "value": "LT-0001"}
    assert paper["author"] == [{"reference": "Practitioner/prac-0"}]
    assert any("Mổ lấy thai chủ động" in s["text"]["div"] for s in paper["section"])
    summary = comps["Tóm tắt hồ sơ bệnh án"]
    assert _coding(summary["type"], cs.LOINC) == ["34133-9"]
    titles = [s["title"] for s in summary["section"]]
    assert "Tóm tắt kết quả cận lâm sàng" in titles and "Quá trình bệnh lý và diễn biến lâm sàng" in titles


def test_xml9_mother_and_child_linked(mapped: tuple[Episode, Context, Refs]) -> None:
    ep, ctx, _ = mapped
    (mother,) = _of(ctx, "RelatedPerson")
    assert mother["patient"] == {"reference": "Patient/child-1"}
    assert {(i["system"], i["value"]) for i in mother["identifier"]} == {
        (cs.CCCD, "001190123456"), (cs.BHYT, "DN4010123456789"), (cs.BHXH, "0123456789")}  # fmt: skip
    weight = next(o for o in _of(ctx, "Observation") if o["code"]["coding"][0]["code"] == "8339-4")
    assert weight["subject"] == {"reference": "Patient/child-1"} and weight["valueQuantity"]["code"] == "g"
    cert = next(c for c in _of(ctx, "Composition") if c["title"] == "Giấy chứng sinh")
    assert cert["subject"] == {"reference": "Patient/child-1"} and cert["encounter"] == ctx.encounter
    assert cert["section"][0]["entry"] == [{"reference": "Patient/pat"}, ctx.encounter]
    assert cert["identifier"]["value"] == "2026/123"
    child = child_resource("child-1", ep, ep.table("XML9")[0], newborn(ep, ep.table("XML9")[0]))
    assert child["name"][0]["text"] == "Lê Minh Khôi" and child["gender"] == "male"
    assert child["birthDate"] == "2026-06-01" and child["identifier"][0]["use"] == "temp"
    assert [c["relationship"][0]["coding"][0]["code"] for c in child["contact"]] == ["MTH", "FTH"]


def test_xml13_referral_and_task(mapped: tuple[Episode, Context, Refs]) -> None:
    _, ctx, _ = mapped
    (sr,) = _of(ctx, "ServiceRequest")
    assert [i["value"] for i in sr["identifier"]] == ["CT-01001-0009", "HS-01", "SCT-01"]
    assert sr["performer"] == [{"reference": "Organization/org-01904"}]
    assert sr["requester"] == {"reference": "Practitioner/prac-0"}
    assert _coding(sr["reasonCode"][0], cs.REFERRAL_REASON) == ["2"]
    conds = {c["code"]["coding"][0]["code"]: c["id"] for c in _of(ctx, "Condition") if "coding" in c["code"]}
    assert sr["reasonReference"] == [{"reference": f"Condition/{conds['D50.9']}"},
                                     {"reference": f"Condition/{conds['O99.0']}"}]  # fmt: skip
    assert "Xe cứu thương" in sr["note"][0]["text"] and sr["patientInstruction"] == "Điều trị thiếu máu"
    (task,) = _of(ctx, "Task")
    assert task["focus"] == {"reference": f"ServiceRequest/{sr['id']}"}
    assert task["owner"] == {"reference": "Organization/org-01904"}
    assert task["requester"] == {"reference": "Organization/org-01001"} and task["status"] == "requested"


@pytest.mark.parametrize(("value", "start", "end"), [
    ("202606110800", "2026-06-11T08:00:00+07:00", "2026-06-11T08:00:00+07:00"),
    ("20260611", "2026-06-11T00:00:00+07:00", "2026-06-11T23:59:59+07:00"),
])  # fmt: skip
def test_xml14_appointment_both_forms(value: str, start: str, end: str) -> None:
    _, ctx, _ = _map(sample.variant(sample.episode_rows(), "XML14", NGAY_HEN_KL=value))
    slip = next(a for a in _of(ctx, "Appointment") if "identifier" in a)
    assert (slip["start"], slip["end"], slip["status"]) == (start, end, "booked")
    assert slip["identifier"] == [{"system": f"{cs.APPOINTMENT_SLIP}/01001", "value": "GH-0001"}]
    assert {p["actor"]["reference"] for p in slip["participant"]} == {"Patient/pat", "Practitioner/prac-0"}
    assert len(_of(ctx, "Appointment")) == 2


def test_other_tables_are_kept_with_their_original_content(mapped: tuple[Episode, Context, Refs]) -> None:
    ep, ctx, _ = mapped
    (kept,) = [d for d in _of(ctx, "DocumentReference") if _coding(d["type"], cs.TABLE) == ["XML15"]]
    attachment = kept["content"][0]["attachment"]
    assert attachment["contentType"] == "application/xml"
    assert base64.b64decode(attachment["data"]) == ep.kept[0].content
    assert kept["context"]["encounter"] == [ctx.encounter]


def test_the_mapping_document_covers_every_field_of_every_mapped_table() -> None:
    import re
    from pathlib import Path

    from healthbook.imports.xml130 import fields

    doc = (Path(__file__).resolve().parents[2] / "docs" / "xml130-mapping.md").read_text(encoding="utf-8")
    sections = re.split(r"^### ", doc, flags=re.MULTILINE)
    for table in fields.MAPPED:
        (section,) = [s for s in sections if s.startswith(f"{table} ")]
        words = set(re.findall(r"[A-Z][A-Z0-9_]+", section))
        missing = [f for f in fields.field_names(table) if f not in words]
        assert missing == [], f"{table}: {missing}"
