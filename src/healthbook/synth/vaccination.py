"""Childhood vaccination on the national schedule (TCMR, TT 10/2024 = TT 52/2025), delays and dropouts."""

from __future__ import annotations

from typing import NamedTuple

from healthbook.synth import systems as sy
from healthbook.synth.chart import Chart, code_of, quantity
from healthbook.synth.facilities import Facility
from healthbook.synth.ids import AS_OF_DAY, rint, stamp


class Dose(NamedTuple):
    """One dose of the schedule: target age, share of children who get it, and the dose it follows."""

    key: str
    text: str  # Vietnamese name of the vaccine
    cvx: str
    cvx_display: str
    dose: int
    age_days: int
    coverage: float  # given the previous dose of the series (or unconditional)
    after: str | None  # previous dose of the same series
    oral: bool = False


# Ages from vn-standards §8.3. OPV at 2-3-4 months and Japanese encephalitis at 12 months, +2 weeks and +1
# year are customary practice (the circular's ages are unconfirmed); rotavirus (late 2024, some provinces) and
# HPV are left out.
SCHEDULE: tuple[Dose, ...] = (
    Dose("VGB0", "Vắc xin viêm gan B sơ sinh", "08", "Hep B, adolescent or pediatric", 1, 0, 0.90, None),
    Dose("BCG", "Vắc xin phòng lao (BCG)", "19", "BCG", 1, 3, 0.96, None),
    Dose("DPT1", "Vắc xin 5 trong 1 (DPT-VGB-Hib)", "102", "DTP-Hib-Hep B", 1, 60, 0.965, None),
    Dose("OPV1", "Vắc xin bại liệt uống (bOPV)", "178", "OPV bivalent", 1, 60, 0.99, "DPT1", True),
    Dose("DPT2", "Vắc xin 5 trong 1 (DPT-VGB-Hib)", "102", "DTP-Hib-Hep B", 2, 90, 0.975, "DPT1"),
    Dose("OPV2", "Vắc xin bại liệt uống (bOPV)", "178", "OPV bivalent", 2, 90, 0.99, "DPT2", True),
    Dose("DPT3", "Vắc xin 5 trong 1 (DPT-VGB-Hib)", "102", "DTP-Hib-Hep B", 3, 120, 0.97, "DPT2"),
    Dose("OPV3", "Vắc xin bại liệt uống (bOPV)", "178", "OPV bivalent", 3, 120, 0.99, "DPT3", True),
    Dose("IPV1", "Vắc xin bại liệt tiêm (IPV)", "10", "IPV", 1, 150, 0.91, None),
    Dose("MV", "Vắc xin sởi", "05", "measles", 1, 270, 0.945, None),
    Dose("IPV2", "Vắc xin bại liệt tiêm (IPV)", "10", "IPV", 2, 270, 0.92, "IPV1"),
    Dose("JE1", "Vắc xin viêm não Nhật Bản", "39", "Japanese encephalitis SC", 1, 365, 0.87, None),
    Dose("JE2", "Vắc xin viêm não Nhật Bản", "39", "Japanese encephalitis SC", 2, 379, 0.96, "JE1"),
    Dose("DPT4", "Vắc xin DPT (bạch hầu - ho gà - uốn ván) nhắc lại", "01", "DTP", 4, 540, 0.93, "DPT3"),
    Dose("MR", "Vắc xin sởi - rubella (MR)", "04", "M/R", 1, 540, 0.90, None),
    Dose("JE3", "Vắc xin viêm não Nhật Bản", "39", "Japanese encephalitis SC", 3, 744, 0.88, "JE2"),
    Dose("TD7", "Vắc xin Td (uốn ván - bạch hầu giảm liều)", "09", "Td (adult)", 1, 7 * 365, 0.86, None),
)
BY_KEY = {d.key: d for d in SCHEDULE}
# Kinds of families: most vaccinate on time, some late, a few drop out or refuse.
ON_TIME, LATE, DROPOUT, REFUSE = 0.80, 0.15, 0.04, 0.01
TETANUS = code_of(sy.CVX, "35", "tetanus toxoid, adsorbed", "Vắc xin uốn ván hấp phụ (VAT)")
_ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
_NOT_DONE_REASON = code_of(_ACT_REASON, "MEDPREC", "medical precaution", "Hoãn tiêm do đang ốm")


def immunization(
    chart: Chart, vaccine: dict[str, object], on: int, fac: Facility, dose: int, series: str, oral: bool
) -> str:
    """A completed Immunization given by a nurse of the facility."""
    rng = chart.rng
    iid = chart.new_id("Immunization")
    res: dict[str, object] = {
        "resourceType": "Immunization",
        "id": iid,
        "status": "completed",
        "vaccineCode": vaccine,
        "patient": chart.ref,
        "occurrenceDateTime": stamp(on, 7 * 60 + 30 + rint(rng, 8 * 60)),
        "primarySource": True,
        "lotNumber": f"{vaccine_key(vaccine)}{on % 97:02d}{rint(rng, 1000):03d}",
        "performer": [{"actor": {"reference": f"Practitioner/{chart.nurse(fac)}"}}],
        "doseQuantity": quantity(2, "giọt", "{drp}") if oral else quantity(0.5, "mL", "mL"),
    }
    res["protocolApplied"] = [{"series": series, "doseNumberPositiveInt": dose}]
    chart.out.append(res)
    return iid


def vaccine_key(vaccine: dict[str, object]) -> str:
    """A short lot prefix from the CVX code."""
    coding = vaccine["coding"]
    assert isinstance(coding, list)
    return f"VN{coding[0]['code']}"


def childhood(chart: Chart) -> None:
    """The TCMR doses that fall in the ten-year window, given late or not at all for some children."""
    p, rng = chart.person, chart.rng
    if p.birth + 7 * 365 + 400 < chart.start:
        return  # every dose of this child is older than the window
    u = rng.random()
    kind = (
        "on_time"
        if u < ON_TIME
        else "late"
        if u < ON_TIME + LATE
        else "dropout"
        if u < 1 - REFUSE
        else "refuse"
    )
    if kind == "refuse":
        return
    stop = p.birth + (60 + rint(rng, 800 - 60)) if kind == "dropout" else 10**9
    mean_delay = 6.0 if kind == "on_time" else 40.0
    given: dict[str, int] = {}
    station = chart.station
    birth_place = chart.net.regional[p.commune.code]
    for d in SCHEDULE:
        prev = None if d.after is None else given.get(d.after)
        if d.after is not None and prev is None:
            continue
        if rng.random() >= d.coverage:
            due = p.birth + d.age_days
            if chart.start <= due <= AS_OF_DAY and rng.random() < 0.05:
                _not_done(chart, d, due + rint(rng, 30), station)
            continue
        if d.key == "VGB0":
            on = p.birth if rng.random() < 0.85 else p.birth + 1 + rint(rng, 7)
        elif d.oral and prev is not None:
            on = prev  # the oral polio vaccine is given at the same session as the 5-in-1
        else:
            on = p.birth + d.age_days + int(rng.expovariate(1 / mean_delay))
            if prev is not None:
                on = max(on, prev + 28)  # at least a month after the previous dose of the series
        if on > stop or on > AS_OF_DAY:
            continue  # dropped out, or not yet given: overdue when the due date has passed
        given[d.key] = on
        if on < chart.start:
            continue
        fac = birth_place if d.age_days <= 3 and on - p.birth <= 7 else station
        vaccine = code_of(sy.CVX, d.cvx, d.cvx_display, d.text)
        immunization(chart, vaccine, on, fac, d.dose, "TCMR", d.oral)


def _not_done(chart: Chart, d: Dose, on: int, fac: Facility) -> None:
    """A postponed dose (the child was ill that day), recorded as not done."""
    if on > AS_OF_DAY:
        return
    chart.out.append(
        {
            "resourceType": "Immunization",
            "id": chart.new_id("Immunization"),
            "status": "not-done",
            "statusReason": _NOT_DONE_REASON,
            "vaccineCode": code_of(sy.CVX, d.cvx, d.cvx_display, d.text),
            "patient": chart.ref,
            "occurrenceDateTime": stamp(on, 8 * 60),
            "primarySource": True,
            "performer": [{"actor": {"reference": f"Practitioner/{chart.nurse(fac)}"}}],
        }
    )
