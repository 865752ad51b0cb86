"""Structural checks of Vietnamese personal identifiers (vn-standards §1, §3), explained in both languages.

Nothing here invents a check digit: the published layouts are all there is to check.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from healthbook.identity.admin_units import REORGANISATION, units

# 3-digit codes of the 34 provinces from 01/07/2025 (the 2-digit GSO code with a leading zero).
_NEW_ERA_CODES = frozenset(
    [
        "001",
        "004",
        "008",
        "011",
        "012",
        "014",
        "015",
        "019",
        "020",
        "022",
        "024",
        "025",
        "031",
        "033",
        "037",
        "038",
        "040",
        "042",
        "044",
        "046",
        "048",
        "051",
        "052",
        "056",
        "066",
        "068",
        "075",
        "079",
        "080",
        "082",
        "086",
        "091",
        "092",
        "096",
    ]
)
# Beneficiary categories of the BHYT card (QĐ 1351/QĐ-BHXH and its amendments).
BHYT_CATEGORIES = frozenset(
    [
        "DN",
        "HX",
        "CH",
        "NN",
        "TK",
        "HC",
        "XK",
        "CA",
        "QN",
        "CY",
        "HT",
        "TB",
        "NO",
        "XB",
        "TN",
        "CS",
        "XN",
        "MS",
        "HD",
        "TQ",
        "TA",
        "TY",
        "HG",
        "LS",
        "PV",
        "CC",
        "CK",
        "CB",
        "KC",
        "HN",
        "DT",
        "DK",
        "XD",
        "BT",
        "TS",
        "TC",
        "TE",
        "HK",
        "CN",
        "HS",
        "SV",
        "GB",
        "GD",
        "NX",
        "XV",
        "TL",
    ]
)
_CCCD = re.compile(r"[0-9]{12}")
_BHYT = re.compile(r"([A-Z]{2})([1-5])([0-9]{2})([0-9]{10})")
_SSN = re.compile(r"[0-9]{10}")
_CMND = re.compile(r"[0-9]{9}|[0-9]{12}")
_PASSPORT_VN = re.compile(r"[A-Z][0-9]{7,8}")
_PASSPORT = re.compile(r"[A-Z0-9]{5,20}")


@dataclass(frozen=True)
class Problem:
    """One finding: `error` rejects the resource, `warning` is reported and the resource is kept."""

    severity: str
    vi: str
    en: str

    @property
    def text(self) -> str:
        """Vietnamese first, English second, as the user interface speaks."""
        return f"{self.vi} / {self.en}"


def _err(vi: str, en: str) -> Problem:
    return Problem("error", vi, en)


def _warn(vi: str, en: str) -> Problem:
    return Problem("warning", vi, en)


def cccd_birth_year(value: str) -> int | None:
    """The birth year a well-formed personal ID number encodes (digit 4 = century and sex)."""
    if not _CCCD.fullmatch(value):
        return None
    return 1900 + 100 * (int(value[3]) // 2) + int(value[4:6])


def cccd_sex(value: str) -> str | None:
    """The sex at issuance: an even digit 4 is male, an odd one female."""
    if not _CCCD.fullmatch(value):
        return None
    return "female" if int(value[3]) % 2 else "male"


def check_cccd(value: str, *, gender: str | None = None, birth_date: str | None = None) -> list[Problem]:
    """The 12-digit personal identification number against its layout, the birth date and the sex."""
    if not _CCCD.fullmatch(value):
        return [
            _err(
                f"Số định danh cá nhân phải gồm đúng 12 chữ số (nhận được {len(value)} ký tự)",
                f"A personal identification number has exactly 12 digits (got {len(value)} characters)",
            )
        ]
    out: list[Problem] = []
    province = value[:3]
    if province[0] != "0" or province[1:] not in units().provinces_legacy:
        out.append(
            _err(
                f"Mã tỉnh nơi đăng ký khai sinh '{province}' (3 chữ số đầu) không phải mã tỉnh hợp lệ",
                f"'{province}' (first 3 digits) is not a province code of birth registration",
            )
        )
    year = cccd_birth_year(value)
    assert year is not None
    born = _date(birth_date)
    if year > dt.date.today().year:
        out.append(
            _err(
                f"Chữ số thứ 4 và năm sinh ({value[3]}, {value[4:6]}) cho năm sinh {year} trong tương lai",
                f"Digit 4 and the year digits ({value[3]}, {value[4:6]}) give birth year {year}, in the future",
            )
        )
    elif born is not None and born.year != year:
        out.append(
            _err(
                f"Số định danh cho năm sinh {year} (chữ số 4–6: {value[3:6]}) nhưng ngày sinh là {birth_date}",
                f"The number encodes birth year {year} (digits 4–6: {value[3:6]}) but birthDate is {birth_date}",
            )
        )
    if (
        born is not None
        and born >= REORGANISATION
        and province not in _NEW_ERA_CODES
        and not any(p.severity == "error" for p in out)
    ):
        out.append(
            _err(
                f"Người sinh từ 01/07/2025 được đăng ký khai sinh tại một trong 34 tỉnh mới; mã '{province}' "
                "là mã tỉnh cũ",
                f"A birth from 01/07/2025 is registered in one of the 34 new provinces; '{province}' is a "
                "pre-2025 province code",
            )
        )
    sex = cccd_sex(value)
    if gender in ("male", "female") and sex != gender:
        out.append(
            _warn(
                f"Chữ số thứ 4 ({value[3]}) ứng với giới tính {_VI_SEX[sex or '']} khi cấp số, khác với "
                f"giới tính {_VI_SEX[gender]} của hồ sơ (số có thể đã được cấp lại)",
                f"Digit 4 ({value[3]}) means {sex} at issuance but the record says {gender} "
                "(the number may need re-issuing)",
            )
        )
    return out


_VI_SEX = {"male": "nam", "female": "nữ", "": "?"}


def check_bhyt(value: str) -> list[Problem]:
    """The 15-character health-insurance card code, or the 10-digit social-insurance number alone."""
    if _SSN.fullmatch(value):
        return []
    m = _BHYT.fullmatch(value)
    if m is None:
        return [
            _err(
                "Mã thẻ BHYT gồm 15 ký tự: 2 chữ cái đối tượng, 1 chữ số mức hưởng (1–5), 2 chữ số mã tỉnh và "
                f"10 chữ số mã số BHXH (nhận được '{value[:20]}')",
                "A BHYT card code has 15 characters: 2 letters of beneficiary category, a benefit level 1–5, "
                f"2 digits of province and the 10-digit social-insurance number (got '{value[:20]}')",
            )
        ]
    category, _level, province, _ssn = m.groups()
    out: list[Problem] = []
    if province == "00":
        out.append(_err("Mã tỉnh trên thẻ BHYT không được là 00", "The card's province code cannot be 00"))
    if category not in BHYT_CATEGORIES:
        out.append(
            _warn(
                f"Mã đối tượng '{category}' không có trong danh mục đối tượng tham gia BHYT đã biết",
                f"Beneficiary category '{category}' is not one of the known BHYT categories",
            )
        )
    return out


def check_cmnd(value: str) -> list[Problem]:
    """The old identity card: 9 digits (or 12 digits for cards of 2012–2021)."""
    if _CMND.fullmatch(value):
        return []
    return [
        _err(
            f"Số CMND gồm 9 hoặc 12 chữ số (nhận được '{value[:20]}')",
            f"An old identity card (CMND) number has 9 or 12 digits (got '{value[:20]}')",
        )
    ]


def check_passport(value: str, vietnamese: bool) -> list[Problem]:
    """A passport number: Vietnamese ones are a letter and 7 or 8 digits."""
    pattern = _PASSPORT_VN if vietnamese else _PASSPORT
    if pattern.fullmatch(value):
        return []
    if vietnamese:
        return [
            _err(
                f"Số hộ chiếu Việt Nam gồm 1 chữ cái và 7 hoặc 8 chữ số (nhận được '{value[:20]}')",
                f"A Vietnamese passport number is a letter and 7 or 8 digits (got '{value[:20]}')",
            )
        ]
    return [
        _err(
            "Số hộ chiếu chỉ gồm 5–20 chữ cái in hoa và chữ số",
            "A passport number has 5–20 capital letters and digits",
        )
    ]


def check_facility_code(value: str) -> list[Problem]:
    """The 5-character facility code of QĐ 384/QĐ-BYT: 2-digit province and a 3-character serial."""
    if re.fullmatch(r"[0-9]{2}[0-9A-Z]{3}", value) is None:
        return [
            _err(
                f"Mã cơ sở khám chữa bệnh gồm 5 ký tự: 2 chữ số mã tỉnh và 3 ký tự (nhận được '{value[:20]}')",
                f"A facility code has 5 characters: 2 province digits and 3 more (got '{value[:20]}')",
            )
        ]
    if units().current_province(value[:2]) is None:
        return [
            _err(
                f"Hai chữ số đầu của mã cơ sở '{value}' không phải mã tỉnh",
                f"The first two digits of facility code '{value}' are not a province code",
            )
        ]
    return []


def _date(text: str | None) -> dt.date | None:
    """The day of a FHIR date; a year-only or year-month date counts from its first day."""
    if not text:
        return None
    try:
        parts = [int(p) for p in text[:10].split("-")]
        return dt.date(parts[0], parts[1] if len(parts) > 1 else 1, parts[2] if len(parts) > 2 else 1)
    except (ValueError, IndexError):
        return None
