"""Years of care: acute visits, referrals, hypertension and diabetes follow-up, labs and blood donation."""

from __future__ import annotations

import bisect
import datetime as dt
import itertools
from functools import lru_cache

from healthbook.synth import systems as sy
from healthbook.synth.chart import LAB, Chart, code_of, quantity
from healthbook.synth.facilities import Facility
from healthbook.synth.icd import ACUTE, CODES
from healthbook.synth.ids import AS_OF_DAY, day, rint

# Acute visits a year by age band (infant, 1-5, 6-17, 18-59, 60+).
VISIT_RATE = (3.2, 2.0, 0.8, 0.7, 1.4)
# Prevalence on AS_OF by age (18-29, 30-39, 40-49, 50-59, 60-69, 70+), tuned to 25% and 7% of adults.
HYPERTENSION = (0.035, 0.11, 0.24, 0.38, 0.52, 0.62)
DIABETES = (0.01, 0.025, 0.065, 0.11, 0.155, 0.165)
DONOR_SHARE = 0.025  # adults 18-60 who donate blood repeatedly
# Diagnoses that send the patient to a higher level, and how often.
SERIOUS = {"J18.9": 0.35, "K35.8": 1.0, "K80.2": 0.5, "H25.9": 0.6, "A97.0": 0.2, "I25.9": 0.3, "J44.9": 0.15}

Drug = tuple[str, str, str, int]
DRUGS: dict[str, Drug] = {
    "amlodipine": ("C08CA01", "Amlodipin 5mg (viên)", "Uống 1 viên/lần, 1 lần/ngày, buổi sáng", 1),
    "losartan": ("C09CA01", "Losartan 50mg (viên)", "Uống 1 viên/lần, 1 lần/ngày, buổi sáng", 1),
    "enalapril": ("C09AA02", "Enalapril 5mg (viên)", "Uống 1 viên/lần, 2 lần/ngày, sáng và chiều", 2),
    "perindopril": ("C09AA04", "Perindopril 5mg (viên)", "Uống 1 viên/lần, 1 lần/ngày, buổi sáng", 1),
    "hctz": ("C03AA03", "Hydroclorothiazid 25mg (viên)", "Uống 1 viên/lần, 1 lần/ngày, buổi sáng", 1),
    "metformin": ("A10BA02", "Metformin 500mg (viên)", "Uống 1 viên/lần, 2 lần/ngày, sau ăn", 2),
    "gliclazide": (
        "A10BB09",
        "Gliclazid 30mg (viên giải phóng kéo dài)",
        "Uống 1 viên/lần, 1 lần/ngày, trước ăn sáng",
        1,
    ),
    "atorvastatin": ("C10AA05", "Atorvastatin 10mg (viên)", "Uống 1 viên/lần, 1 lần/ngày, buổi tối", 1),
    "paracetamol": (
        "N02BE01",
        "Paracetamol 500mg (viên)",
        "Uống 1 viên/lần khi sốt hoặc đau, cách nhau 4-6 giờ",
        3,
    ),
    "paracetamol_child": ("N02BE01", "Paracetamol 250mg (gói bột)", "Uống 1 gói/lần khi sốt trên 38,5°C", 3),
    "amoxicillin": ("J01CA04", "Amoxicilin 500mg (viên)", "Uống 1 viên/lần, 3 lần/ngày", 3),
    "cefuroxime": ("J01DC02", "Cefuroxim 250mg (viên)", "Uống 1 viên/lần, 2 lần/ngày, sau ăn", 2),
    "omeprazole": ("A02BC01", "Omeprazol 20mg (viên)", "Uống 1 viên/lần, 1 lần/ngày, trước ăn sáng", 1),
    "loratadine": ("R06AX13", "Loratadin 10mg (viên)", "Uống 1 viên/lần, 1 lần/ngày", 1),
    "meloxicam": ("M01AC06", "Meloxicam 7,5mg (viên)", "Uống 1 viên/lần, 1 lần/ngày, sau ăn", 1),
    "salbutamol": ("R03CC02", "Salbutamol 2mg (viên)", "Uống 1 viên/lần, 3 lần/ngày", 3),
    "ors": ("A07CA", "Oresol 245 (gói)", "Pha 1 gói với 200 ml nước, uống sau mỗi lần đi ngoài", 3),
    "zinc": ("A12CB01", "Kẽm gluconat 10mg (gói)", "Uống 1 gói/lần, 1 lần/ngày trong 10-14 ngày", 1),
    "iron_folate": ("B03AD02", "Sắt fumarat + acid folic (viên)", "Uống 1 viên/lần, 1 lần/ngày", 1),
    "calcium": ("A12AA04", "Calci carbonat 500mg (viên)", "Uống 1 viên/lần, 1 lần/ngày, sau ăn", 1),
}
_ACUTE_DRUG = {
    "J": ("paracetamol", "amoxicillin", "cefuroxime", "loratadine", "salbutamol"),
    "A": ("ors", "zinc", "paracetamol"),
    "B": ("paracetamol", "loratadine"),
    "K": ("omeprazole",),
    "M": ("meloxicam", "paracetamol"),
    "N": ("cefuroxime", "amoxicillin"),
    "L": ("loratadine",),
    "H": ("amoxicillin", "paracetamol"),
}
Test = tuple[str, str, str, str, float, float]
# (LOINC, Vietnamese name, unit, UCUM, reference low, high); units as reported by Vietnamese laboratories.
HBA1C: Test = ("4548-4", "HbA1c", "%", "%", 4.0, 6.0)
GLUCOSE: Test = ("14771-0", "Glucose máu lúc đói", "mmol/L", "mmol/L", 3.9, 6.1)
CHOLESTEROL: Test = ("14647-2", "Cholesterol toàn phần", "mmol/L", "mmol/L", 3.9, 5.2)
TRIGLYCERIDE: Test = ("14927-8", "Triglycerid", "mmol/L", "mmol/L", 0.46, 1.88)
HDL: Test = ("14646-4", "HDL-Cholesterol", "mmol/L", "mmol/L", 0.9, 2.0)
LDL: Test = ("22748-8", "LDL-Cholesterol", "mmol/L", "mmol/L", 0.0, 3.4)
CREATININE_M: Test = ("14682-9", "Creatinin máu", "µmol/L", "umol/L", 62.0, 120.0)
CREATININE_F: Test = ("14682-9", "Creatinin máu", "µmol/L", "umol/L", 53.0, 100.0)
HEMOGLOBIN_M: Test = ("718-7", "Huyết sắc tố (Hemoglobin)", "g/L", "g/L", 130.0, 170.0)
HEMOGLOBIN_F: Test = ("718-7", "Huyết sắc tố (Hemoglobin)", "g/L", "g/L", 120.0, 150.0)
LIPID_PANEL = code_of(sy.LOINC, "57698-3", "Lipid panel with direct LDL - Serum or Plasma", "Mỡ máu")
METABOLIC_PANEL = code_of(sy.LOINC, "24321-2", "Basic metabolic 2000 panel - Serum or Plasma", "Sinh hóa máu")
WEIGHT = code_of(sy.LOINC, "29463-7", None, "Cân nặng")
TEMPERATURE = code_of(sy.LOINC, "8310-5", None, "Nhiệt độ")
BLOOD_GROUP = code_of(sy.LOINC, "882-1", "ABO and Rh group [Type] in Blood", "Nhóm máu")
DONATION = code_of(
    sy.SYNTH_PROCEDURE, "hien-mau-toan-phan", "Hiến máu toàn phần", "Hiến máu toàn phần 350 ml"
)
_FEVER = frozenset({"R50.9", "J00", "J06.9", "J11.1", "A97.0", "B08.4", "J18.9", "J21.9", "J02.9", "J03.9"})


def band(age_days: int) -> int:
    """Age band of the acute-diagnosis table."""
    years = age_days // 365
    return 0 if years < 1 else 1 if years < 6 else 2 if years < 18 else 3 if years < 60 else 4


def _decade(age: int) -> int:
    return 0 if age < 30 else min(5, (age - 20) // 10)


@lru_cache(maxsize=16)
def _acute_table(b: int, gender: str) -> tuple[tuple[str, ...], tuple[float, ...]]:
    pairs = [
        (c, w[b])
        for c, w in ACUTE.items()
        if w[b] > 0 and CODES[c].sex in ("", "F" if gender == "female" else "M")
    ]
    return tuple(p[0] for p in pairs), tuple(itertools.accumulate(p[1] for p in pairs))


def pick_acute(chart: Chart, on: int) -> str:
    """An acute diagnosis valid for the person's sex and age on that day (QĐ 4469 A3/A4 rules)."""
    p = chart.person
    age_days = on - p.birth
    codes, cum = _acute_table(band(age_days), p.gender)
    for _ in range(20):
        code = codes[bisect.bisect(cum, chart.rng.random() * cum[-1])]
        icd = CODES[code]
        in_season = code != "A97.0" or 6 <= dt.date.fromordinal(on).month <= 11  # dengue in the rainy season
        if icd.min_days + 1 <= age_days <= icd.max_days - 1 and in_season:
            return code
    return "J00"


_GROWTH = tuple(
    itertools.pairwise(
        ((0, 3.3), (1, 9.6), (2, 12.2), (3, 14.3), (5, 18.3), (7, 22.4), (10, 31.0), (14, 47.0), (18, 57.0))
    )
)


def weight_kg(chart: Chart, on: int) -> float:
    """A plausible body weight for the age (WHO growth medians for children) with individual variation."""
    p = chart.person
    years = (on - p.birth) / 365.25
    if years < 18:
        w = 57.0
        for (a0, w0), (a1, w1) in _GROWTH:
            if years < a1:
                w = w0 + (w1 - w0) * (years - a0) / (a1 - a0)
                break
        w *= 0.92 if p.gender == "female" else 1.0
    else:
        w = 62.0 if p.gender == "male" else 52.0
    return round(w * (0.9 + 0.2 * chart.rng.random()), 1)


def next_level(chart: Chart, fac: Facility) -> Facility:
    """Where a facility refers to: station -> regional centre -> provincial hospital -> central hospital."""
    p = chart.person
    net = chart.net
    if fac.level == "tram-y-te":
        return net.regional[p.commune.code]
    if fac.level == "khu-vuc":
        return net.provincial[p.province.code]
    return net.central[p.province.code]


def _visit_facility(chart: Chart) -> Facility:
    u = chart.rng.random()
    if u < 0.65:
        return chart.station
    if u < 0.9:
        return chart.net.regional[chart.person.commune.code]
    if chart.person.age < 16 and u < 0.95:
        return chart.net.maternity[chart.person.province.code]
    return chart.net.provincial[chart.person.province.code]


def acute_visits(chart: Chart) -> None:
    """Illness visits over the ten years, with a diagnosis, often a prescription, sometimes a referral."""
    p, rng = chart.person, chart.rng
    t = float(max(chart.start, p.birth + 1))
    while True:
        rate = VISIT_RATE[band(int(t) - p.birth)] * (1.15 if p.gender == "female" else 1.0)
        t += rng.expovariate(rate / 365.0)
        on = int(t)
        if on > AS_OF_DAY:
            return
        code = pick_acute(chart, on)
        fac = _visit_facility(chart)
        enc, minute, prac = chart.encounter(fac, on, "KB", "Khám bệnh")
        cond = chart.condition(code, on, enc, until=on + 7 + rint(rng, 14))
        if code in _FEVER and rng.random() < 0.6:
            chart.vital(
                TEMPERATURE, quantity(round(37.8 + rng.random() * 1.7, 1), "°C", "Cel"), on, minute, enc
            )
        if on - p.birth < 6 * 365:
            chart.vital(WEIGHT, quantity(weight_kg(chart, on), "kg", "kg"), on, minute, enc)
        drugs = _ACUTE_DRUG.get(code[0])
        if drugs and rng.random() < 0.6:
            drug = rng.choice(drugs)
            if drug == "paracetamol" and on - p.birth < 12 * 365:
                drug = "paracetamol_child"
            chart.prescribe(DRUGS[drug], on, 3 + rint(rng, 5), enc, prac)
        serious = SERIOUS.get(code, 0.01)
        if fac.level != "trung-uong" and rng.random() < serious:
            refer(chart, fac, on, enc, prac, cond, code)


def refer(chart: Chart, src: Facility, on: int, enc: str, prac: str, cond: str, code: str) -> None:
    """Referral to the next level, the visit or stay there, and a follow-up appointment."""
    rng = chart.rng
    dst = next_level(chart, src)
    sr = chart.referral(src, dst, on, enc, prac, cond)
    arrive = on + rint(rng, 3)
    if arrive > AS_OF_DAY:
        return
    inpatient = code in ("J18.9", "K35.8", "I63.9", "I21.9", "A97.0") or rng.random() < 0.2
    nights = 2 + rint(rng, 6) if inpatient else 0
    enc2, _, prac2 = chart.encounter(
        dst,
        arrive,
        "CT",
        "Điều trị nội trú" if inpatient else "Khám chuyên khoa",
        cls="IMP" if inpatient else "AMB",
        nights=nights,
        based_on=sr,
    )
    if code in ("I63.9", "I21.9"):
        chart.condition(code, arrive, enc2, until=arrive + nights)
    back = arrive + nights + 14 + rint(rng, 21)
    appt = chart.appointment(dst, back, f"Hẹn khám lại tại {dst.name}", based_on=sr)
    if back <= AS_OF_DAY and rng.random() < 0.85:
        chart.encounter(dst, back, "TK", "Tái khám", appointment=appt, practitioner=prac2)


def _prevalent(chart: Chart, table: tuple[float, ...]) -> bool:
    p = chart.person
    return p.age >= 18 and chart.rng.random() < table[_decade(p.age)]


def chronic_care(chart: Chart) -> None:
    """Hypertension (I10) and type 2 diabetes (E11.9): diagnosis, regular visits, drugs, yearly labs."""
    p, rng = chart.person, chart.rng
    htn = _prevalent(chart, HYPERTENSION)
    dm = _prevalent(chart, DIABETES) or (htn and rng.random() < 0.04)
    if not (htn or dm):
        return
    # Diagnosed at some age after 18 (often before the ten-year window starts).
    onset_age = p.age - rint(rng, min(p.age - 17, 15))
    onset = max(p.birth + onset_age * 365 + rint(rng, 365), p.birth + 18 * 365 + 1)
    onset = min(onset, AS_OF_DAY - 1)
    first = max(onset, chart.start)
    st = chart.station
    enc, minute, prac = chart.encounter(st, first, "NCD", "Khám phát hiện bệnh không lây nhiễm")
    episodes: list[str] = []
    drugs: list[str] = []
    if htn:
        cond = chart.condition("I10", onset, enc, chronic=True)
        episodes.append(chart.episode("Quản lý tăng huyết áp", first, cond))
        drugs.append(rng.choices(("amlodipine", "losartan", "enalapril", "perindopril"), (50, 25, 15, 10))[0])
    if dm:
        cond = chart.condition("E11.9", onset, enc, chronic=True)
        episodes.append(chart.episode("Quản lý đái tháo đường", first, cond))
        drugs.append("metformin")
    # Managed patients come every 1-2 months; others a few times a year; some stop for a while.
    managed = rng.random() < 0.6
    gap = (40, 90) if managed else (75, 180)
    control = rng.random()  # how well the pressure and glucose come down under treatment
    systolic0 = 150 + rint(rng, 30)
    hba1c0 = 7.5 + rng.random() * 3
    on, visit, last_lab = first, 0, -(10**6)
    while on <= AS_OF_DAY:
        if visit:
            enc, minute, prac = chart.encounter(
                st, on, "NCD", "Khám quản lý bệnh mạn tính", episode=episodes[0]
            )
        years = (on - first) / 365.0
        if htn:
            drop = (systolic0 - 128) * min(1.0, years * 2) * control
            sbp = int(systolic0 - drop + rng.gauss(0, 7))
            chart.blood_pressure(sbp, int(sbp * 0.6 + rng.gauss(2, 5)), on, minute, enc)
        if dm:
            glucose = 6.0 + (hba1c0 - 6.0) * (1 - 0.6 * control * min(1.0, years * 2)) + rng.gauss(0, 0.8)
            chart.lab(GLUCOSE, round(max(4.0, glucose + 1.0), 1), on, enc)
        if htn and visit == 4 and rng.random() < 0.35:
            drugs.append("hctz" if drugs[0] != "amlodipine" else "losartan")
        if dm and visit == 6 and rng.random() < 0.3:
            drugs.append("gliclazide")
        step = gap[0] + rint(rng, gap[1] - gap[0])
        supply = 30 if step <= 45 else 60 if step <= 75 else 90  # drugs until the next visit
        for d in drugs:
            chart.prescribe(DRUGS[d], on, supply, enc, prac)
        if on - last_lab >= 330:
            yearly_labs(chart, on, dm, hba1c0, control, years, episodes[0])
            last_lab = on
        visit += 1
        on += step
        if rng.random() < 0.02:
            on += 90 + rint(rng, 400 - 90)  # a break in follow-up
        if htn and rng.random() < 0.004:
            _complication(chart, on, prac)
    chart.appointment(st, on, "Hẹn tái khám quản lý bệnh mạn tính")


def _complication(chart: Chart, on: int, prac: str) -> None:
    """A stroke or heart attack: emergency at the regional centre and referral upward."""
    if on > AS_OF_DAY:
        return
    code = "I63.9" if chart.rng.random() < 0.7 else "I21.9"
    fac = chart.net.regional[chart.person.commune.code]
    enc, _, prac2 = chart.encounter(fac, on, "CC", "Cấp cứu", cls="EMER")
    cond = chart.condition(code, on, enc, until=on + 30)
    refer(chart, fac, on, enc, prac2, cond, code)


def yearly_labs(
    chart: Chart, on: int, dm: bool, hba1c0: float, control: float, years: float, episode: str
) -> None:
    """Blood tests at the regional centre: lipids, glucose and creatinine, HbA1c for diabetics."""
    p, rng = chart.person, chart.rng
    fac = chart.net.regional[p.commune.code]
    day_ = on + 1 + rint(rng, 6)
    if day_ > AS_OF_DAY:
        return
    enc, _, _ = chart.encounter(fac, day_, "XN", "Xét nghiệm định kỳ", episode=episode)
    chol = round(4.6 + rng.gauss(0.4, 0.8), 2)
    lipids = [
        chart.lab(CHOLESTEROL, chol, day_, enc),
        chart.lab(TRIGLYCERIDE, round(max(0.4, rng.gauss(1.9, 0.7)), 2), day_, enc),
        chart.lab(HDL, round(max(0.6, rng.gauss(1.2, 0.25)), 2), day_, enc),
        chart.lab(LDL, round(max(1.0, chol * 0.62 + rng.gauss(0, 0.3)), 2), day_, enc),
    ]
    chart.report(LIPID_PANEL, lipids, day_, enc, fac)
    creat = CREATININE_M if p.gender == "male" else CREATININE_F
    metabolic = [
        chart.lab(GLUCOSE, round(max(4.0, rng.gauss(8.0 if dm else 5.4, 1.2 if dm else 0.5)), 1), day_, enc),
        chart.lab(creat, round(rng.gauss(88 if p.gender == "male" else 70, 14)), day_, enc),
    ]
    if dm:
        value = hba1c0 - (hba1c0 - 6.5) * control * min(1.0, years * 2) + rng.gauss(0, 0.4)
        metabolic.append(chart.lab(HBA1C, round(max(5.5, value), 1), day_, enc))
    chart.report(METABOLIC_PANEL, metabolic, day_, enc, fac)


def blood_donations(chart: Chart) -> None:
    """Repeated whole-blood donations at the provincial hospital, with a haemoglobin check each time."""
    p, rng = chart.person, chart.rng
    if not (18 <= p.age <= 60) or rng.random() >= DONOR_SHARE:
        return
    fac = chart.net.provincial[p.province.code]
    hb = HEMOGLOBIN_M if p.gender == "male" else HEMOGLOBIN_F
    group = rng.choices(("O Rh+", "B Rh+", "A Rh+", "AB Rh+", "O Rh-"), (42, 30, 21, 6, 1))[0]
    on = max(chart.start, p.birth + 18 * 365) + rint(rng, 3 * 365)
    first = True
    while on <= AS_OF_DAY:
        enc, _, _ = chart.encounter(fac, on, "HM", "Hiến máu tình nguyện")
        chart.lab(hb, round(rng.gauss(145 if p.gender == "male" else 132, 8)), on, enc)
        if first:
            chart.out.append(
                {
                    "resourceType": "Observation",
                    "id": chart.new_id("Observation"),
                    "status": "final",
                    "category": LAB,
                    "code": BLOOD_GROUP,
                    "subject": chart.ref,
                    "encounter": {"reference": f"Encounter/{enc}"},
                    "effectiveDateTime": day(on),
                    "valueCodeableConcept": {"text": group},
                }
            )
            first = False
        chart.procedure(DONATION, on, enc, chart.nurse(fac), "Z52.0")
        on += 90 if p.gender == "male" else 120 + rint(rng, 400 - 90 if p.gender == "male" else 120)
