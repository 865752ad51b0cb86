"""The synthetic population: reproducible, valid identifiers, figures within the stated tolerances."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import sqlite3
import unicodedata
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import pytest

from healthbook.synth import facilities, geo, icd, identity, ids, writer
from healthbook.synth.generate import Config, Generator
from healthbook.synth.population import PYRAMID_FEMALE, PYRAMID_MALE
from healthbook.synth.vaccination import SCHEDULE

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
CITIZENS = 6000
SEED = 11


@dataclass
class Stats:
    """What the tests look at, gathered in one pass over the generated citizens."""

    patients: list[dict[str, object]] = field(default_factory=list)
    conditions: dict[str, set[str]] = field(default_factory=dict)  # patient id -> ICD codes
    diagnoses: list[tuple[str, str, str, int]] = field(default_factory=list)  # code, gender, birth, onset day
    doses: dict[str, Counter[str]] = field(default_factory=dict)  # patient id -> dose keys
    late_doses: Counter[str] = field(default_factory=Counter)
    mothers: dict[str, str] = field(default_factory=dict)  # child id -> mother's CCCD
    deliveries: set[str] = field(default_factory=set)  # mothers (patient ids) with a delivery stay
    donors: Counter[str] = field(default_factory=Counter)
    types: Counter[str] = field(default_factory=Counter)
    referrals: int = 0
    appointments: Counter[str] = field(default_factory=Counter)
    lab_units: set[tuple[str, str]] = field(default_factory=set)


def _day(text: str) -> int:
    return dt.date.fromisoformat(text[:10]).toordinal()


_DOSE_BY_CVX: dict[tuple[str, int], str] = {(d.cvx, d.dose): d.key for d in SCHEDULE}


@pytest.fixture(scope="module")
def stats() -> Stats:
    """Generate CITIZENS citizens once and keep only the figures the tests need."""
    gen = Generator(Config(CITIZENS, SEED))
    s = Stats()
    for b in range(gen.config.blocks):
        for record in gen.block(b):
            pat = record[0]
            assert pat["resourceType"] == "Patient"
            pid = pat["id"]
            s.patients.append(pat)
            s.conditions[pid] = set()
            s.doses[pid] = Counter()
            birth = _day(pat["birthDate"])
            for res in record:
                rtype = res["resourceType"]
                s.types[rtype] += 1
                if rtype == "Condition":
                    code = res["code"]["coding"][0]["code"]
                    s.conditions[pid].add(code)
                    s.diagnoses.append((code, pat["gender"], pat["birthDate"], _day(res["onsetDateTime"])))
                elif rtype == "Immunization" and res["status"] == "completed":
                    cvx = res["vaccineCode"]["coding"][0]["code"]
                    key = _DOSE_BY_CVX.get((cvx, res["protocolApplied"][0]["doseNumberPositiveInt"]))
                    if key is not None:
                        s.doses[pid][key] += 1
                        target = next(d.age_days for d in SCHEDULE if d.key == key)
                        if _day(res["occurrenceDateTime"]) - birth > target + 30:
                            s.late_doses[key] += 1
                elif rtype == "RelatedPerson":
                    s.mothers[pid] = res["identifier"][0]["value"]
                elif rtype == "Encounter" and res["type"][0]["text"] == "Sinh con":
                    s.deliveries.add(pid)
                elif rtype == "Procedure" and res["code"]["coding"][0]["code"] == "hien-mau-toan-phan":
                    s.donors[pid] += 1
                elif rtype == "ServiceRequest":
                    s.referrals += 1
                elif rtype == "Appointment":
                    s.appointments[res["status"]] += 1
                elif (
                    rtype == "Observation"
                    and "valueQuantity" in res
                    and res["category"][0]["coding"][0]["code"] == "laboratory"
                ):
                    s.lab_units.add((res["code"]["coding"][0]["code"], res["valueQuantity"]["code"]))
    return s


def _age(pat: dict[str, object]) -> int:
    return ids.years_between(_day(str(pat["birthDate"])), ids.AS_OF_DAY)


def _cccd(pat: dict[str, object]) -> str:
    idents = pat["identifier"]
    assert isinstance(idents, list)
    return str(
        next(i["value"] for i in idents if i["system"] == "http://fhir.ehealth.gov.vn/core/sid/national_id")
    )


def _bhyt(pat: dict[str, object]) -> str | None:
    idents = pat["identifier"]
    assert isinstance(idents, list)
    return next(
        (i["value"] for i in idents if i["system"] == "http://fhir.ehealth.gov.vn/core/sid/insurance_number"),
        None,
    )


# --- reproducibility -------------------------------------------------------------------------------------


def _digest(config: Config, workers: int, out: Path) -> dict[str, str]:
    writer.prepare(out, overwrite=True)
    writer.write_ndjson(config, out, workers)
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.glob("*.ndjson"))}


def test_same_seed_gives_the_same_bytes_whatever_the_workers(tmp_path: Path) -> None:
    config = Config(2100, 5)
    one = _digest(config, 1, tmp_path / "a")
    two = _digest(config, 2, tmp_path / "b")
    assert one == two
    assert "Patient.ndjson" in one
    assert "Immunization.ndjson" in one


def test_another_seed_gives_another_population() -> None:
    a = Generator(Config(50, 1)).block(0)
    b = Generator(Config(50, 2)).block(0)
    assert orjson.dumps(a) != orjson.dumps(b)
    assert {r[0]["id"] for r in a}.isdisjoint({r[0]["id"] for r in b})


def test_a_smaller_population_is_a_prefix_of_a_larger_one() -> None:
    small = Generator(Config(700, 4)).block(0)
    large = Generator(Config(1000, 4)).block(0)[:700]
    assert [r[0]["id"] for r in small] == [r[0]["id"] for r in large]
    assert orjson.dumps(small[:650]) == orjson.dumps(large[:650])  # the last household may be cut


def test_ids_are_uuids_and_unique(stats: Stats) -> None:
    gen = Generator(Config(1000, SEED))
    seen: set[str] = set()
    for record in gen.block(0):
        for res in record:
            rid = res["id"]
            assert uuid.UUID(rid).version == 5
            assert rid not in seen
            seen.add(rid)
    assert stats.patients[0]["id"] == gen.block(0)[0][0]["id"]


# --- identifiers ----------------------------------------------------------------------------------------


def test_personal_id_numbers_are_unique_and_match_sex_and_birth_year(stats: Stats) -> None:
    legacy = {f"0{c}" for codes in geo.LEGACY_CODES.values() for c in codes}
    current = {f"0{p.code}" for p in geo.provinces()}
    assert len(legacy) == 63
    assert len(current) == 34
    numbers = [_cccd(p) for p in stats.patients]
    assert len(set(numbers)) == len(numbers)
    for pat, number in zip(stats.patients, numbers, strict=True):
        assert len(number) == 12
        assert number.isdigit()
        year = int(str(pat["birthDate"])[:4])
        female = pat["gender"] == "female"
        digit = int(number[3])
        assert digit == (year // 100 - 19) * 2 + int(female)  # vn-standards §1.3
        assert digit % 2 == int(female)
        assert 1900 + (digit // 2) * 100 + int(number[4:6]) == year
        born_2025 = str(pat["birthDate"]) >= "2025-07-01"
        assert number[:3] in (current if born_2025 else legacy)


def test_century_digit_table() -> None:
    assert identity.century_sex_digit(1999, False) == 0
    assert identity.century_sex_digit(1999, True) == 1
    assert identity.century_sex_digit(2015, True) == 3  # the example of §1.3
    assert identity.century_sex_digit(2100, False) == 4


def test_bhyt_cards_cover_about_93_percent_and_are_well_formed(stats: Stats) -> None:
    cards = [(p, _bhyt(p)) for p in stats.patients]
    insured = [c for _, c in cards if c is not None]
    assert 0.91 <= len(insured) / len(cards) <= 0.95  # 93% ± 2%
    assert len(set(insured)) == len(insured)
    for pat, card in cards:
        if card is None:
            continue
        assert len(card) == 15
        assert card[:2].isalpha()
        assert card[2:].isdigit()
        assert int(card[2]) == identity.CATEGORY_LEVEL[card[:2]]
        assert card[3:5] in geo.by_code()
        if _age(pat) < 6:
            assert card.startswith("TE1")
    assert stats.types["Coverage"] == len(insured)


# --- demography and geography ---------------------------------------------------------------------------


def test_sex_ratio_and_age_pyramid(stats: Stats) -> None:
    n = len(stats.patients)
    males = sum(p["gender"] == "male" for p in stats.patients)
    assert 0.95 <= males / (n - males) <= 1.04  # target 0.992
    bands = Counter(min(_age(p) // 5, 16) for p in stats.patients)
    for band in range(17):
        target = PYRAMID_MALE[band] + PYRAMID_FEMALE[band]
        assert abs(100 * bands[band] / n - target) <= 1.6, (
            band * 5,
            bands[band] / n,
            target,
        )  # households cluster ages
    young = sum(_age(p) < 15 for p in stats.patients) / n
    old = sum(_age(p) >= 65 for p in stats.patients) / n
    assert abs(young - 0.230) <= 0.02
    assert abs(old - 0.091) <= 0.015


def test_names_are_vietnamese_in_customary_order(stats: Stats) -> None:
    for pat in stats.patients:
        name = pat["name"][0]  # type: ignore[index]
        text = name["text"]
        assert unicodedata.normalize("NFC", text) == text
        parts = [name["family"], *name["given"]]
        assert text in (" ".join(parts), " ".join([*name["given"], name["family"]]))
    families = Counter(p["name"][0]["family"] for p in stats.patients)  # type: ignore[index]
    assert 0.28 <= families["Nguyễn"] / len(stats.patients) <= 0.42


def test_addresses_use_real_2025_communes_weighted_by_population(stats: Stats) -> None:
    with sqlite3.connect(geo.dataset_path()) as conn:
        real = {row[0]: row[1] for row in conn.execute("SELECT wardCode, provinceCode FROM admin_units")}
    assert len(real) == 3321
    provinces: Counter[str] = Counter()
    for pat in stats.patients:
        addr = pat["address"][0]  # type: ignore[index]
        codes = {e["url"].rsplit("-", 1)[1]: e["valueCode"] for e in addr["extension"]}
        assert real[codes["commune"]] == codes["province"]
        assert addr["country"] == "VN"
        assert addr["city"]
        assert addr["state"] == geo.by_code()[codes["province"]].name
        provinces[codes["province"]] += 1
    hcm = geo.PROVINCE_POPULATION["79"] / sum(geo.PROVINCE_POPULATION.values())
    assert abs(provinces["79"] / len(stats.patients) - hcm) <= 0.025
    assert len(provinces) == 34


def test_mothers_are_linked_to_their_children(stats: Stats) -> None:
    by_cccd = {_cccd(p): p for p in stats.patients}
    children = [p for p in stats.patients if _age(p) < 18]
    linked = [p for p in children if p["id"] in stats.mothers]
    assert len(linked) / len(children) >= 0.6
    for child in linked:
        mother = by_cccd[stats.mothers[str(child["id"])]]
        assert mother["gender"] == "female"
        at_birth = ids.years_between(_day(str(mother["birthDate"])), _day(str(child["birthDate"])))
        assert 17 <= at_birth <= 43
        links = {x["other"]["reference"] for x in mother.get("link", [])}  # type: ignore[attr-defined]
        assert any(r.startswith("RelatedPerson/") for r in links)


def test_admin_unit_package_agrees_with_the_legacy_table() -> None:
    path = geo.dataset_path().with_name("converter_2025.json")
    members = orjson.loads(path.read_bytes())["DICT_PROVINCE"]
    with sqlite3.connect(geo.dataset_path()) as conn:
        old = dict(conn.execute("SELECT DISTINCT provinceKey, provinceCode FROM admin_units_legacy"))
        new = dict(conn.execute("SELECT DISTINCT provinceKey, provinceCode FROM admin_units"))
    assert {new[k]: tuple(sorted(old[x] for x in v)) for k, v in members.items()} == geo.LEGACY_CODES
    assert set(geo.PROVINCE_POPULATION) == set(new.values())


# --- facilities -----------------------------------------------------------------------------------------


def test_facility_network() -> None:
    net = facilities.network(None)
    codes = [f.code for f in net.facilities]
    assert len(codes) == len(set(codes))
    assert all(len(c) == 5 and c.isdigit() for c in codes)
    communes = sum(len(p.communes) for p in geo.provinces())
    assert len(net.station) == communes == 3320  # every inhabited commune (Hoàng Sa has none)
    levels = Counter(f.level for f in net.facilities)
    assert levels[facilities.PROVINCIAL] == 68
    assert levels[facilities.CENTRAL] == len(facilities.CENTRAL_HOSPITALS)
    assert 250 <= levels[facilities.REGIONAL] <= 320
    assert all(f.staff for f in net.facilities)


# --- care -----------------------------------------------------------------------------------------------


def test_resources_per_person(stats: Stats) -> None:
    per_person = sum(stats.types.values()) / len(stats.patients)
    assert 50 <= per_person <= 150


def test_chronic_disease_prevalence(stats: Stats) -> None:
    adults = [p for p in stats.patients if _age(p) >= 18]
    htn = sum("I10" in stats.conditions[str(p["id"])] for p in adults) / len(adults)
    dm = sum("E11.9" in stats.conditions[str(p["id"])] for p in adults) / len(adults)
    assert abs(htn - 0.25) <= 0.04, htn
    assert abs(dm - 0.07) <= 0.02, dm
    assert all("I10" not in stats.conditions[str(p["id"])] for p in stats.patients if _age(p) < 18)


def test_diagnoses_are_valid_for_age_and_sex(stats: Stats) -> None:
    for code, gender, birth, onset in stats.diagnoses:
        rule = icd.CODES[code]
        days = onset - _day(birth)
        assert rule.min_days <= days <= rule.max_days, (code, days)
        assert rule.sex in ("", "F" if gender == "female" else "M"), (code, gender)


@pytest.mark.skipif(not SHARED.is_dir(), reason="the shared QĐ 4469 files are not present")
def test_icd_table_matches_qd4469() -> None:
    rows = {
        r["code_base"]: r for r in csv.DictReader((SHARED / "icd10-vn-qd4469.csv").open(encoding="utf-8"))
    }
    sexes = {r["code_base"]: r["sex"] for r in csv.DictReader((SHARED / "icd10-vn-qd4469-sex.csv").open())}
    ages: dict[str, list[dict[str, str]]] = {}
    for r in csv.DictReader((SHARED / "icd10-vn-qd4469-age.csv").open(encoding="utf-8")):
        ages.setdefault(r["code_base"], []).append(r)
    for code, rule in icd.CODES.items():
        assert unicodedata.normalize("NFC", rows[code]["name_vi"]) == rule.name
        assert sexes.get(code, "") == rule.sex
        for a in ages.get(code, []):
            if a["age_min"]:
                assert rule.min_days >= int(a["age_min"]) * (365 if a["age_min_unit"] == "year" else 1)
            if a["age_max"]:
                assert rule.max_days <= int(a["age_max"]) * (365 if a["age_max_unit"] == "year" else 1)


# Share of eligible children (born in the window, due date at least 3 months before AS_OF) with each dose.
COVERAGE = {
    "VGB0": (0.82, 0.95),
    "BCG": (0.88, 0.98),
    "DPT1": (0.88, 0.98),
    "DPT3": (0.83, 0.95),
    "IPV1": (0.80, 0.94),
    "MV": (0.85, 0.96),
    "MR": (0.78, 0.92),
    "JE1": (0.75, 0.92),
    "TD7": (0.75, 0.92),
}


def test_vaccination_coverage_delays_and_dropouts(stats: Stats) -> None:
    start = Config(1, 1).start
    for key, (low, high) in COVERAGE.items():
        dose = next(d for d in SCHEDULE if d.key == key)
        eligible = [
            p
            for p in stats.patients
            if _day(str(p["birthDate"])) + dose.age_days >= start + 30
            and _day(str(p["birthDate"])) + dose.age_days + 90 <= ids.AS_OF_DAY
        ]
        got = sum(stats.doses[str(p["id"])][key] > 0 for p in eligible) / len(eligible)
        assert low <= got <= high, (key, got, len(eligible))
        assert all(stats.doses[str(p["id"])][key] <= 1 for p in eligible)
    assert stats.late_doses["DPT3"] > 0
    assert stats.late_doses["MV"] > 0
    due_dpt3 = [p for p in stats.patients if 200 <= ids.AS_OF_DAY - _day(str(p["birthDate"])) <= 3 * 365]
    overdue = sum(stats.doses[str(p["id"])]["DPT3"] == 0 for p in due_dpt3) / len(due_dpt3)
    assert 0.03 <= overdue <= 0.2  # some children are overdue


def test_pregnancies_referrals_labs_and_donors(stats: Stats) -> None:
    start = Config(1, 1).start
    by_cccd = {_cccd(p): p for p in stats.patients}
    born = [
        c
        for c in stats.mothers
        if _day(str(next(p for p in stats.patients if p["id"] == c)["birthDate"])) >= start + 280
    ]
    mothers = {str(by_cccd[stats.mothers[c]]["id"]) for c in born}
    assert mothers
    assert len(mothers & stats.deliveries) / len(mothers) >= 0.95
    assert stats.referrals > len(stats.patients) * 0.05
    assert stats.appointments["booked"] > 0
    assert stats.appointments["fulfilled"] > 0
    assert ("4548-4", "%") in stats.lab_units
    assert ("14682-9", "umol/L") in stats.lab_units
    assert stats.donors
    assert max(stats.donors.values()) >= 3


def test_references_point_into_the_output() -> None:
    gen = Generator(Config(1500, 3, frozenset({"46", "96"})))
    known = {(r["resourceType"], r["id"]) for r in gen.facility_resources()}
    refs: list[tuple[str, str]] = []

    def walk(value: object) -> None:
        if isinstance(value, dict):
            ref = value.get("reference")
            if isinstance(ref, str):
                rtype, _, rid = ref.partition("/")
                refs.append((rtype, rid))
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)

    for b in range(gen.config.blocks):
        for record in gen.block(b):
            for res in record:
                known.add((res["resourceType"], res["id"]))
                walk(res)
    missing = [r for r in refs if r not in known]
    assert refs
    assert not missing, missing[:5]


def test_config_is_checked() -> None:
    with pytest.raises(ValueError, match="unknown province"):
        Generator(Config(10, 1, frozenset({"63"})))
    with pytest.raises(ValueError, match="years"):
        Generator(Config(10, 1, None, 0))
