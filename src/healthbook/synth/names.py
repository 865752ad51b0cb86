"""Vietnamese personal names by region, generation and ethnic group, with correct diacritics."""

from __future__ import annotations

import bisect
import itertools
import random
from dataclasses import dataclass

# Family names with relative frequencies per region (north, central, south); Hoàng/Huỳnh and Vũ/Võ are the
# same names, written and spread differently between the north and the south.
_FAMILY: list[tuple[str, int, int, int]] = [
    ("Nguyễn", 380, 360, 390), ("Trần", 110, 110, 110), ("Lê", 90, 110, 95), ("Phạm", 80, 60, 60),
    ("Hoàng", 60, 40, 5), ("Huỳnh", 2, 20, 65), ("Phan", 30, 60, 45), ("Vũ", 50, 10, 5), ("Võ", 3, 50, 45),
    ("Đặng", 25, 20, 20), ("Bùi", 30, 15, 15), ("Đỗ", 25, 10, 12), ("Hồ", 5, 40, 15), ("Ngô", 15, 12, 12),
    ("Dương", 12, 8, 10), ("Lý", 4, 2, 8), ("Đinh", 15, 10, 5), ("Đào", 12, 5, 5), ("Trương", 6, 12, 14),
    ("Lâm", 3, 4, 12), ("Mai", 8, 6, 6), ("Tô", 5, 2, 4), ("Hà", 10, 6, 3), ("Tạ", 5, 2, 2),
    ("Lương", 6, 5, 4), ("Cao", 6, 6, 5), ("Chu", 5, 1, 1), ("Kiều", 3, 1, 1), ("Thái", 2, 4, 4),
    ("Quách", 2, 1, 3), ("Lưu", 4, 2, 3), ("Phùng", 5, 1, 1), ("Trịnh", 10, 4, 3), ("Đoàn", 6, 6, 5),
    ("Văn", 1, 3, 2), ("Tăng", 1, 1, 3), ("Châu", 0, 2, 5), ("Triệu", 3, 1, 1), ("Nghiêm", 2, 0, 0),
    ("Khúc", 1, 0, 0),
]  # fmt: skip

# Middle names: (name, weight before 1975, weight 1975-1999, weight from 2000).
_MIDDLE_M = [
    ("Văn", 60, 40, 12), ("Đức", 8, 10, 10), ("Minh", 4, 10, 16), ("Quốc", 3, 6, 8), ("Hữu", 8, 6, 3),
    ("Công", 5, 5, 3), ("Thanh", 5, 6, 4), ("Xuân", 4, 3, 1), ("Đình", 6, 4, 2), ("Quang", 4, 6, 6),
    ("Ngọc", 3, 3, 1), ("Trung", 2, 3, 2), ("Gia", 0, 2, 12), ("Bảo", 0, 2, 10), ("Hoàng", 1, 4, 6),
    ("Tuấn", 1, 3, 3), ("Thành", 3, 3, 2), ("Nhật", 0, 2, 6), ("Anh", 1, 2, 6), ("Tấn", 4, 4, 2),
]  # fmt: skip
_MIDDLE_F = [
    ("Thị", 75, 50, 18), ("Ngọc", 5, 8, 10), ("Thu", 3, 8, 5), ("Thanh", 3, 6, 4), ("Thùy", 1, 5, 6),
    ("Minh", 1, 4, 8), ("Phương", 1, 4, 6), ("Khánh", 0, 2, 8), ("Bảo", 0, 2, 9), ("Hồng", 3, 3, 2),
    ("Kim", 3, 3, 3), ("Diệu", 0, 2, 3), ("Hoài", 1, 2, 2), ("Bích", 2, 3, 1), ("Mỹ", 2, 4, 4),
    ("Hà", 0, 1, 4), ("Gia", 0, 0, 6), ("Tuệ", 0, 0, 3), ("Quỳnh", 0, 2, 4), ("Cẩm", 1, 2, 2),
]  # fmt: skip
_GIVEN_M = [
    ("Hùng", 8, 6, 1), ("Dũng", 7, 7, 2), ("Sơn", 6, 5, 1), ("Bình", 6, 4, 2), ("Thắng", 6, 5, 1),
    ("Lợi", 4, 2, 0), ("Chiến", 4, 2, 0), ("Tiến", 4, 4, 2), ("Quang", 4, 3, 2), ("Vinh", 4, 3, 1),
    ("Thanh", 5, 3, 1), ("Hải", 4, 6, 3), ("Tuấn", 3, 8, 3), ("Anh", 3, 7, 8), ("Nam", 3, 6, 6),
    ("Long", 3, 5, 5), ("Minh", 3, 6, 8), ("Phúc", 2, 3, 7), ("Quân", 1, 4, 7), ("Huy", 1, 5, 8),
    ("Khang", 0, 1, 7), ("Khôi", 0, 1, 7), ("Bảo", 0, 1, 5), ("Đức", 3, 5, 4), ("Tùng", 2, 5, 2),
    ("Việt", 2, 4, 3), ("Thành", 4, 5, 3), ("Tâm", 3, 3, 2), ("Lộc", 3, 3, 3), ("Tài", 3, 3, 2),
    ("Đạt", 1, 5, 5), ("Khoa", 0, 3, 5), ("Nghĩa", 3, 3, 1), ("Toàn", 2, 3, 1), ("Phong", 2, 4, 4),
    ("Kiên", 1, 3, 2), ("Lâm", 1, 2, 5), ("Hưng", 2, 3, 4), ("Thịnh", 1, 3, 3), ("Nhân", 2, 3, 3),
    ("Duy", 1, 4, 4), ("An", 1, 2, 8), ("Đăng", 0, 1, 5), ("Hiếu", 2, 5, 3), ("Cường", 4, 5, 1),
    ("Trung", 4, 4, 2), ("Phát", 1, 2, 4),
]  # fmt: skip
_GIVEN_F = [
    ("Lan", 8, 4, 1), ("Hoa", 7, 3, 1), ("Hồng", 7, 3, 0), ("Cúc", 5, 1, 0), ("Liên", 5, 2, 0),
    ("Nga", 5, 4, 1), ("Tuyết", 4, 3, 0), ("Xuân", 4, 2, 1), ("Thu", 4, 3, 1), ("Hạnh", 4, 4, 1),
    ("Hương", 5, 7, 2), ("Mai", 4, 5, 3), ("Hà", 3, 6, 3), ("Hằng", 2, 6, 2), ("Thủy", 3, 6, 1),
    ("Huyền", 1, 6, 3), ("Dung", 3, 4, 1), ("Yến", 2, 4, 2), ("Loan", 3, 3, 0), ("Hiền", 2, 4, 2),
    ("Vân", 3, 4, 2), ("Oanh", 3, 3, 1), ("Trinh", 1, 3, 2), ("Ánh", 2, 4, 3), ("Thảo", 1, 6, 5),
    ("Trang", 1, 7, 4), ("Linh", 1, 6, 9), ("Ngọc", 2, 4, 4), ("Nhung", 2, 4, 1), ("Phương", 2, 5, 3),
    ("Quỳnh", 1, 4, 4), ("Ly", 0, 3, 3), ("Nhi", 0, 2, 9), ("Vy", 0, 1, 9), ("Châu", 1, 2, 4),
    ("Anh", 1, 4, 9), ("Giang", 1, 4, 3), ("Thư", 0, 2, 8), ("Ngân", 0, 2, 6), ("Như", 1, 2, 5),
    ("Uyên", 0, 2, 5), ("Trâm", 0, 2, 4), ("Hân", 0, 0, 7), ("Chi", 0, 1, 6), ("My", 0, 1, 6),
    ("An", 0, 1, 7), ("Tâm", 2, 2, 3),
]  # fmt: skip

# Ethnic minorities with their own naming patterns (only the larger groups of the provinces below).
_HMONG_FAMILY = ["Giàng", "Vàng", "Sùng", "Lù", "Thào", "Lý", "Mùa", "Hạng", "Sình", "Vừ", "Hầu", "Chảo"]
_HMONG_M = ["Páo", "Dế", "Lử", "Chứ", "Sính", "Pó", "Tủa", "Chinh", "Lồng", "Nủ", "Sử", "Vàng", "Dình", "Cở"]
_HMONG_F = ["Mỷ", "Dở", "Xúa", "Pà", "Mai", "Chư", "Sua", "Dua", "Mang", "Súa", "Chá", "Dế", "Say", "Pằng"]
_THAI_FAMILY = ["Lò", "Lường", "Quàng", "Cầm", "Tòng", "Vì", "Hà", "Lù", "Mè", "Điêu", "Bạc", "Lê"]
_THAI_M = ["Khăm", "Piệng", "Xiêng", "Ún", "Ọn", "Ính", "Panh", "Thoa", "Chăn", "Sương", "Tuấn", "Hùng"]
_THAI_F = ["Xuân", "Ỏn", "Ban", "Thoa", "Phương", "Hoa", "Lả", "Ính", "Bua", "Hương", "Bích", "Khăm"]
_TAY_FAMILY = ["Hoàng", "Nông", "Lương", "Vi", "Lục", "Ma", "Bế", "Hà", "Đàm", "Triệu", "Lâm", "Mông", "Hứa"]
_EDE_FAMILY = ["Niê", "Êban", "Mlô", "Ksơr", "Byă", "Adrơng", "Buôn Krông", "Hmok", "Ayŭn", "Kbuôr"]
_EDE_M = ["Ngông", "Bhin", "Khu", "Jút", "Thơ", "Dhăm", "Wai", "Tlang", "Nuê", "Blin"]
_EDE_F = ["Hen", "Blin", "Nga", "Dơk", "Yim", "Lan", "Ruê", "Wen", "Mai", "Tlăm"]

# Share of each group (kinh, tay, thai, hmong, ede) among residents of the 2025 provinces where minorities are
# large (approximate, from the 2019 census of their pre-merger members).
ETHNIC_MIX: dict[str, tuple[int, int, int, int, int]] = {
    "04": (18, 70, 0, 12, 0), "08": (45, 30, 0, 25, 0), "11": (20, 0, 40, 40, 0), "12": (15, 0, 40, 45, 0),
    "14": (18, 0, 62, 20, 0), "15": (55, 17, 5, 23, 0), "19": (68, 30, 0, 2, 0), "20": (18, 80, 0, 2, 0),
    "40": (88, 0, 9, 3, 0), "38": (90, 0, 10, 0, 0), "66": (80, 0, 0, 2, 18),
}  # fmt: skip
_ETHNIC = ("kinh", "tay", "thai", "hmong", "ede")


@dataclass(frozen=True, slots=True)
class Name:
    """A personal name: family, given parts and the text in the customary order."""

    family: str
    given: tuple[str, ...]
    text: str


class _Table:
    """Weighted choice with cumulative weights (bisect), for speed."""

    __slots__ = ("cum", "items")

    def __init__(self, items: list[str], weights: list[int]) -> None:
        pairs = [(i, w) for i, w in zip(items, weights, strict=True) if w > 0]
        self.items = [p[0] for p in pairs]
        self.cum = list(itertools.accumulate(p[1] for p in pairs))

    def pick(self, rng: random.Random) -> str:
        return self.items[bisect.bisect(self.cum, rng.random() * self.cum[-1])]


def _tables(rows: list[tuple[str, int, int, int]]) -> tuple[_Table, _Table, _Table]:
    names = [r[0] for r in rows]
    return (
        _Table(names, [r[1] for r in rows]),
        _Table(names, [r[2] for r in rows]),
        _Table(names, [r[3] for r in rows]),
    )


_FAMILY_T = dict(zip(("north", "central", "south"), _tables(_FAMILY), strict=True))
_MIDDLE_T = {"male": _tables(_MIDDLE_M), "female": _tables(_MIDDLE_F)}
_GIVEN_T = {"male": _tables(_GIVEN_M), "female": _tables(_GIVEN_F)}
_MIX_T = {code: _Table(list(_ETHNIC), list(mix)) for code, mix in ETHNIC_MIX.items()}


def _era(year: int) -> int:
    return 0 if year < 1975 else 1 if year < 2000 else 2


def ethnic_group(rng: random.Random, province: str) -> str:
    """The ethnic group of a household in a province (Kinh where minorities are few)."""
    table = _MIX_T.get(province)
    return "kinh" if table is None else table.pick(rng)


def family_name(rng: random.Random, region: str, group: str) -> str:
    """A family name for a new household."""
    if group == "hmong":
        return rng.choice(_HMONG_FAMILY)
    if group == "thai":
        return rng.choice(_THAI_FAMILY)
    if group == "tay":
        return rng.choice(_TAY_FAMILY)
    if group == "ede":
        return rng.choice(_EDE_FAMILY)
    return _FAMILY_T[region].pick(rng)


def person_name(rng: random.Random, family: str, gender: str, year: int, group: str) -> Name:
    """A full name; Kinh, Tày and Thái names read family-middle-given, Ê Đê names given-family."""
    female = gender == "female"
    if group == "ede":
        given = f"{'H' if female else 'Y'}'{rng.choice(_EDE_F if female else _EDE_M)}"
        if not female:
            given = given.replace("'", " ")
        return Name(family, (given,), f"{given} {family}")
    if group == "hmong":
        parts: tuple[str, ...] = ("Thị" if female else "A", rng.choice(_HMONG_F if female else _HMONG_M))
    elif group == "thai":
        parts = ("Thị" if female else "Văn", rng.choice(_THAI_F if female else _THAI_M))
    else:
        era = _era(year)
        middle = _MIDDLE_T[gender][era].pick(rng)
        given = _GIVEN_T[gender][era].pick(rng)
        while given == middle:
            given = _GIVEN_T[gender][era].pick(rng)
        parts = (middle, given)
        if era == 2 and rng.random() < 0.15:  # compound given names are common among the young: "Gia Bảo Anh"
            extra = _GIVEN_T[gender][era].pick(rng)
            if extra not in parts:
                parts = (middle, extra, given)
    return Name(family, parts, " ".join((family, *parts)))
