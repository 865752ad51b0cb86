"""Vietnamese identifiers: the hard cases of the personal ID number, BHYT cards, CMND and passports."""

from __future__ import annotations

import pytest

from healthbook.identity.identifiers import (
    cccd_birth_year,
    cccd_sex,
    check_bhyt,
    check_cccd,
    check_cmnd,
    check_facility_code,
    check_passport,
)


def errors(problems: list) -> list[str]:  # type: ignore[type-arg]
    return [p.en for p in problems if p.severity == "error"]


def warnings(problems: list) -> list[str]:  # type: ignore[type-arg]
    return [p.en for p in problems if p.severity == "warning"]


@pytest.mark.parametrize(
    ("number", "year", "sex"),
    [
        ("001099012345", 1999, "male"),  # digit 4 = 0: male, 1900–1999
        ("001199012345", 1999, "female"),  # 1: female, 1900–1999
        ("001200012345", 2000, "male"),  # 2: male, 2000–2099
        ("001300012345", 2000, "female"),  # 3: female, 2000–2099
        ("079315000001", 2015, "female"),  # the reference's example: digit 4 = 3, digits 5–6 = 15
        ("001000000000", 1900, "male"),
    ],
)
def test_century_and_sex_digit(number: str, year: int, sex: str) -> None:
    assert cccd_birth_year(number) == year
    assert cccd_sex(number) == sex


def test_woman_born_1999_and_2000_at_the_century_boundary() -> None:
    assert check_cccd("001199012345", gender="female", birth_date="1999-12-31") == []
    assert check_cccd("001300012345", gender="female", birth_date="2000-01-01") == []
    # the 1999 number cannot belong to someone born in 2000, nor the 2000 one to 1999
    assert errors(check_cccd("001199012345", gender="female", birth_date="2000-01-01"))
    assert errors(check_cccd("001300012345", gender="female", birth_date="1999-12-31"))
    # the century digit, not only the two year digits, decides: 0/1 mean 19xx
    assert errors(check_cccd("001100012345", gender="female", birth_date="2000-05-05"))


def test_leading_zeros_are_kept_and_required() -> None:
    assert check_cccd("001199012345") == []
    too_short = check_cccd("1199012345")  # the zeros lost by a spreadsheet
    assert errors(too_short) and "12 digits" in too_short[0].en
    assert "12 chữ số" in too_short[0].vi


@pytest.mark.parametrize("bad", ["00119901234a", "0011990123456", "", "001 199 012 345", "٠٠١١٩٩٠١٢٣٤٥"])
def test_not_twelve_ascii_digits(bad: str) -> None:
    assert errors(check_cccd(bad))


def test_province_code_must_exist() -> None:
    assert errors(check_cccd("003199012345"))  # 003 was never a province code
    assert errors(check_cccd("100199012345"))  # not of the form 0xx
    assert check_cccd("002199012345") == []  # Hà Giang, a province before 2025


def test_province_code_valid_for_its_era() -> None:
    # Hà Giang (002) merged into Tuyên Quang on 01/07/2025: no birth can be registered there since.
    assert check_cccd("002324000001", gender="female", birth_date="2024-03-01") == []
    assert check_cccd("002325000001", gender="female", birth_date="2025-06-30") == []
    era = errors(check_cccd("002325000001", gender="female", birth_date="2025-09-01"))
    assert era and "34 new provinces" in era[0]
    assert check_cccd("008325000001", gender="female", birth_date="2025-09-01") == []  # Tuyên Quang


def test_sex_mismatch_warns_but_is_kept() -> None:
    problems = check_cccd("001099012345", gender="female", birth_date="1999-01-01")
    assert errors(problems) == []
    assert warnings(problems) and "re-issuing" in warnings(problems)[0]
    assert check_cccd("001099012345", gender="unknown", birth_date="1999-01-01") == []


def test_future_birth_year_rejected() -> None:
    assert errors(check_cccd("001399012345"))  # 2099


def test_partial_birth_dates() -> None:
    assert check_cccd("001199012345", birth_date="1999") == []
    assert check_cccd("001199012345", birth_date="1999-07") == []
    assert errors(check_cccd("001199012345", birth_date="1998"))


def test_no_check_digit_is_invented() -> None:
    # Every serial is accepted: the last six digits carry no checksum.
    for serial in ("000000", "123456", "999999", "000001"):
        assert check_cccd(f"001199{serial}") == []


def test_bhyt_card() -> None:
    assert check_bhyt("GD4010124987531") == []
    assert check_bhyt("0124987531") == []  # the 10-digit social-insurance number alone
    assert errors(check_bhyt("GD6010124987531"))  # benefit level 1–5 only
    assert errors(check_bhyt("GD4000124987531"))  # province 00
    assert errors(check_bhyt("gd4010124987531"))  # lower case
    assert errors(check_bhyt("GD401012498753"))  # 14 characters
    unknown = check_bhyt("ZZ4010124987531")
    assert errors(unknown) == [] and warnings(unknown)


def test_cmnd_and_passports() -> None:
    assert check_cmnd("123456789") == []
    assert check_cmnd("012345678901") == []
    assert errors(check_cmnd("12345678"))
    assert check_passport("C1234567", vietnamese=True) == []
    assert check_passport("P12345678", vietnamese=True) == []
    assert errors(check_passport("1234567", vietnamese=True))
    assert check_passport("X1234567Z", vietnamese=False) == []
    assert errors(check_passport("ab", vietnamese=False))


def test_facility_code() -> None:
    assert check_facility_code("01901") == []
    assert check_facility_code("02001") == []  # a Hà Giang facility keeps its pre-2025 code
    assert errors(check_facility_code("0190"))
    assert errors(check_facility_code("03001"))  # 03 is no province


def test_messages_are_bilingual() -> None:
    (problem,) = check_cccd("123")
    assert " / " in problem.text and problem.text.startswith(problem.vi)
