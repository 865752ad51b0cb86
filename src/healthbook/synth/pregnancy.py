"""Pregnancies of mothers of children born in the window: antenatal care, delivery, postpartum visit."""

from __future__ import annotations

from healthbook.synth import systems as sy
from healthbook.synth.care import DRUGS, HEMOGLOBIN_F, WEIGHT, weight_kg
from healthbook.synth.chart import VITAL, Chart, code_of, quantity
from healthbook.synth.ids import AS_OF_DAY, day, rint
from healthbook.synth.vaccination import TETANUS, immunization

# Weeks of pregnancy of the antenatal visits, by how many visits the woman makes.
_ANC_WEEKS = {
    3: (12, 24, 36),
    4: (10, 22, 30, 36),
    5: (9, 16, 24, 32, 37),
    6: (8, 14, 22, 28, 33, 37),
    8: (8, 12, 16, 22, 28, 32, 35, 38),
}
VAGINAL = code_of(sy.SNOMED, "177184002", "Normal delivery procedure", "Đẻ thường")
CAESAREAN = code_of(sy.SNOMED, "11466000", "Cesarean section", "Mổ lấy thai")
BIRTH_WEIGHT = code_of(sy.LOINC, "8339-4", "Birth weight Measured", "Cân nặng lúc sinh")
COMPLICATIONS = (("O21.0", 0.05), ("O24.4", 0.05), ("O13", 0.04), ("O99.0", 0.08))


def pregnancies(chart: Chart, first_child: bool) -> None:
    """One pregnancy per child of this mother born in the window (the child's birth day ends it)."""
    p = chart.person
    for n, birth in enumerate(sorted(p.births)):
        if birth - 270 < chart.start or birth > AS_OF_DAY:
            continue
        _pregnancy(chart, birth, first_child and n == 0)


def _pregnancy(chart: Chart, birth: int, first: bool) -> None:
    p, rng = chart.person, chart.rng
    conception = birth - 266 - (-10 + rint(rng, 10 - -10))
    visits = rng.choices((3, 4, 5, 6, 8), (12, 30, 25, 20, 13))[0]
    station = chart.station
    regional = chart.net.regional[p.commune.code]
    pregnancy: str | None = None
    conditions: list[str] = []
    tetanus_doses = 2 if first else 1
    for k, week in enumerate(_ANC_WEEKS[visits]):
        on = conception + 14 + 7 * week
        if on >= birth:
            break
        fac = station if k % 2 == 0 or rng.random() < 0.3 else regional
        enc, minute, prac = chart.encounter(fac, on, "KT", "Khám thai")
        if pregnancy is None:
            pregnancy = chart.condition("Z34.0" if first else "Z34.8", on, enc, until=birth)
        chart.blood_pressure(int(rng.gauss(112, 9)), int(rng.gauss(70, 7)), on, minute, enc)
        chart.vital(
            WEIGHT, quantity(round(weight_kg(chart, on) + week * 0.3, 1), "kg", "kg"), on, minute, enc
        )
        if k == 1:
            chart.lab(HEMOGLOBIN_F, round(rng.gauss(118, 11)), on, enc)
            for code, share in COMPLICATIONS:
                if rng.random() < share:
                    conditions.append(chart.condition(code, on, enc, until=birth + 7))
            chart.prescribe(DRUGS["iron_folate"], on, 90, enc, prac)
        if week >= 20 and tetanus_doses > 0 and rng.random() < 0.9:
            dose = 3 - tetanus_doses if first else 3  # doses 1 and 2 in a first pregnancy, then a booster
            immunization(chart, TETANUS, on, fac, dose, "Tiêm phòng uốn ván cho phụ nữ có thai", False)
            tetanus_doses -= 1
    _delivery(chart, birth)


def _delivery(chart: Chart, birth: int) -> None:
    """The delivery stay at a hospital and, when it happened, the postpartum visit at the station."""
    p, rng = chart.person, chart.rng
    u = rng.random()
    net = chart.net
    fac = (
        net.regional[p.commune.code]
        if u < 0.55
        else net.maternity[p.province.code]
        if u < 0.95
        else (net.central[p.province.code])
    )
    caesarean = rng.random() < 0.35
    nights = 3 + rint(rng, 3) if caesarean else 1 + rint(rng, 2)
    enc, _, prac = chart.encounter(fac, birth, "SINH", "Sinh con", cls="IMP", nights=nights)
    code = ("O82.0" if rng.random() < 0.6 else "O82.1") if caesarean else "O80.0"
    chart.condition(code, birth, enc, until=birth + nights)
    chart.procedure(CAESAREAN if caesarean else VAGINAL, birth, enc, prac, None)
    back = birth + 7 + rint(rng, 35)
    if back <= AS_OF_DAY and rng.random() < 0.7:
        enc2, minute, _ = chart.encounter(chart.station, back, "SS", "Khám sau sinh")
        chart.condition("Z39.2", back, enc2, until=back)
        chart.blood_pressure(int(rng.gauss(110, 9)), int(rng.gauss(70, 7)), back, minute, enc2)


def birth_weight(chart: Chart) -> None:
    """The newborn's weight, for children born in the window."""
    p = chart.person
    if p.birth < chart.start:
        return
    grams = int(chart.rng.gauss(3150 if p.gender == "male" else 3050, 420))
    chart.out.append(
        {
            "resourceType": "Observation",
            "id": chart.new_id("Observation"),
            "status": "final",
            "category": VITAL,
            "code": BIRTH_WEIGHT,
            "subject": chart.ref,
            "effectiveDateTime": day(p.birth),
            "valueQuantity": quantity(max(1500, grams), "g", "g"),
        }
    )
