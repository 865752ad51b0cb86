"""Matching: Vietnamese name normalisation, field weights and the documented thresholds."""

from __future__ import annotations

from typing import Any

from healthbook.identity import systems
from healthbook.identity.matching import POSSIBLE, PROBABLE, grade, normalise, person_of, score


def patient(
    family: str,
    given: list[str],
    birth: str = "1985-04-12",
    gender: str = "female",
    commune: str | None = "10144",
    province: str = "01",
    cccd: str | None = None,
    bhyt: str | None = None,
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "resourceType": "Patient",
        "name": [{"family": family, "given": given}],
        "gender": gender,
        "birthDate": birth,
    }
    ext = [{"url": systems.EXT_PROVINCE, "valueCode": province}]
    if commune:
        ext.append({"url": systems.EXT_COMMUNE, "valueCode": commune})
    doc["address"] = [{"use": "home", "extension": ext}]
    idents = []
    if cccd:
        idents.append({"system": systems.CCCD, "value": cccd})
    if bhyt:
        idents.append({"system": systems.BHYT, "value": bhyt})
    if idents:
        doc["identifier"] = idents
    return doc


def test_normalise_vietnamese_names() -> None:
    assert normalise("Nguyễn Thị Ánh") == "nguyen thi anh"
    assert normalise("NGUYEN THI ANH") == "nguyen thi anh"
    assert normalise("Đặng  Văn   Đức") == "dang van duc"
    assert normalise("Trần-Thị Ngọc") == "tran thi ngoc"
    # decomposed input (NFD, as some keyboards send it) normalises the same way
    assert normalise("Nguye\u0302\u0303n") == "nguyen"


def test_same_person_with_and_without_diacritics_is_probable() -> None:
    a = person_of(patient("Nguyễn", ["Thị", "Ánh"]))
    b = person_of(patient("NGUYEN", ["THI", "ANH"]))
    assert score(a, b) >= PROBABLE
    assert grade(score(a, b)) == "probable"


def test_two_facilities_slightly_different_names() -> None:
    station = person_of(patient("Nguyễn", ["Thị", "Ánh"]))
    hospital = person_of(patient("Nguyễn", ["Thị", "Anh"]))  # the accent dropped
    assert score(station, hospital) >= PROBABLE
    typo = person_of(patient("Nguyễn", ["Thi", "Ánhh"]))
    assert score(station, typo) >= PROBABLE


def test_same_name_and_birthday_elsewhere_is_only_possible() -> None:
    hanoi = person_of(patient("Nguyễn", ["Văn", "Nam"], gender="male"))
    saigon = person_of(patient("Nguyễn", ["Văn", "Nam"], gender="male", province="79", commune="26734"))
    value = score(hanoi, saigon)
    assert POSSIBLE <= value < PROBABLE


def test_different_birth_year_is_no_match() -> None:
    a = person_of(patient("Lê", ["Văn", "Hùng"], birth="1970-01-01", gender="male"))
    b = person_of(patient("Lê", ["Văn", "Hùng"], birth="1990-06-06", gender="male"))
    assert score(a, b) < POSSIBLE


def test_day_month_transposed() -> None:
    a = person_of(patient("Phạm", ["Thu", "Hà"], birth="1985-04-12"))
    b = person_of(patient("Phạm", ["Thu", "Hà"], birth="1985-12-04"))
    assert score(a, b) >= POSSIBLE


def test_different_personal_ids_are_different_people() -> None:
    a = person_of(patient("Nguyễn", ["Thị", "Ánh"], cccd="001185012345"))
    b = person_of(patient("Nguyễn", ["Thị", "Ánh"], cccd="001185099999"))
    assert score(a, b) == 0.0


def test_same_social_insurance_number_is_strong() -> None:
    a = person_of(patient("Nguyễn", ["Thị", "Ánh"], bhyt="GD4010124987531", commune=None))
    b = person_of(patient("Nguyen", ["Thi", "Anh"], birth="1985", bhyt="HN2010124987531", commune=None))
    assert score(a, b) >= PROBABLE


def test_sex_differs_lowers_the_score() -> None:
    a = person_of(patient("Trần", ["Minh", "Anh"], gender="male"))
    b = person_of(patient("Trần", ["Minh", "Anh"], gender="female"))
    c = person_of(patient("Trần", ["Minh", "Anh"], gender="male"))
    assert score(a, b) < score(a, c)


def test_old_address_codes_compare_with_new_ones() -> None:
    # A record from before the 2025 reorganisation (Hà Giang, 02) and one after (Tuyên Quang, 08).
    old = person_of(patient("Giàng", ["A", "Páo"], gender="male", province="02", commune=None))
    new = person_of(patient("Giàng", ["A", "Páo"], gender="male", province="08", commune=None))
    assert old.province == new.province == "08"


def test_name_from_text_only() -> None:
    doc = {"resourceType": "Patient", "name": [{"text": "Hoàng Thị Mai"}], "birthDate": "2001-02-03"}
    p = person_of(doc)
    assert (p.family_key, p.given_key, p.name_key) == ("hoang", "mai", "hoang thi mai")
