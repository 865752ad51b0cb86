"""Personal ID numbers, BHYT card numbers and phone numbers that are unique by construction."""

from __future__ import annotations

import random
from functools import lru_cache

from healthbook.synth import geo
from healthbook.synth.ids import ERA_2025, Permutation

# Beneficiary categories of the BHYT card (vn-standards §3.1) with their benefit level.
CATEGORY_LEVEL = {
    "TE": 1,
    "CC": 1,
    "HN": 2,
    "BT": 2,
    "HT": 3,
    "CN": 3,
    "HS": 4,
    "SV": 4,
    "DN": 4,
    "HC": 4,
    "GD": 4,
}
CATEGORY_NAMES = {
    "TE": "Trẻ em dưới 6 tuổi",
    "CC": "Người có công với cách mạng",
    "HN": "Người thuộc hộ nghèo",
    "BT": "Người hưởng trợ cấp bảo trợ xã hội",
    "HT": "Người hưởng lương hưu",
    "CN": "Người thuộc hộ cận nghèo",
    "HS": "Học sinh",
    "SV": "Sinh viên",
    "DN": "Người lao động trong doanh nghiệp",
    "HC": "Cán bộ, công chức, viên chức",
    "GD": "Người tham gia theo hộ gia đình",
}
_MOBILE = (
    "032", "033", "034", "035", "036", "037", "038", "039", "056", "058", "059", "070", "076",
    "077", "078", "079", "081", "082", "083", "084", "085", "086", "088", "089", "090", "091",
    "093", "094", "096", "097", "098",
)  # fmt: skip
CCCD_UNIQUE_UP_TO = 1_000_000  # citizens with one seed whose numbers are guaranteed distinct


@lru_cache(maxsize=4)
def _perm6(seed: int) -> Permutation:
    return Permutation(seed, 1000, "cccd")


@lru_cache(maxsize=4)
def _perm8(seed: int) -> Permutation:
    return Permutation(seed, 10000, "bhxh")


def century_sex_digit(year: int, female: bool) -> int:
    """Digit 4 of the personal ID number (vn-standards §1.3): 0/1 for 1900-1999, 2/3 for 2000-2099, ..."""
    return (year // 100 - 19) * 2 + int(female)


def birth_province_code(rng: random.Random, birth_day: int, home: geo.Province, picker: geo.Picker) -> str:
    """The 3-digit registration code: a pre-2025 province before 01/07/2025, a 2025 province from then on."""
    if birth_day >= ERA_2025:
        return "0" + home.code
    province = home if rng.random() < 0.85 else picker.any_province(rng)
    return "0" + rng.choice(geo.LEGACY_CODES[province.code])


def cccd(seed: int, index: int, province3: str, year: int, female: bool) -> str:
    """12 digits: province, century/sex, 2 year digits, 6 digits from a keyed permutation of the index."""
    serial = _perm6(seed)(index % CCCD_UNIQUE_UP_TO)
    return f"{province3}{century_sex_digit(year, female)}{year % 100:02d}{serial:06d}"


def social_insurance_number(seed: int, index: int, province: str) -> str:
    """The 10-digit social-insurance number: province code and 8 digits unique per citizen (up to 10^8)."""
    return f"{province}{_perm8(seed)(index % 100_000_000):08d}"


def bhyt_card(category: str, province: str, bhxh: str) -> str:
    """15 characters: category (2 letters), benefit level, issuing province (2 digits), insurance number."""
    return f"{category}{CATEGORY_LEVEL[category]}{province}{bhxh}"


def bhyt_category(rng: random.Random, age: int, poor_share: float) -> str:
    """The beneficiary category of an insured person of this age."""
    if age < 6:
        return "TE"
    if age < 18:
        return "HN" if rng.random() < poor_share else "HS"
    u = rng.random()
    if age >= 60:
        return (
            "HT"
            if u < 0.35
            else "CC"
            if u < 0.40
            else "BT"
            if u < 0.50
            else "HN"
            if u < 0.5 + poor_share
            else "GD"
        )
    if age <= 22 and u < 0.4:
        return "SV"
    if u < poor_share:
        return "HN"
    if u < poor_share + 0.04:
        return "CN"
    if u < poor_share + 0.44:
        return "DN"
    if u < poor_share + 0.52:
        return "HC"
    return "GD"


def phone(rng: random.Random) -> str:
    """A Vietnamese mobile number (10 digits)."""
    return f"{rng.choice(_MOBILE)}{rng.randrange(10**7):07d}"
