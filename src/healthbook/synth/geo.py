"""The 2025 administrative units (34 provinces, 3,321 communes) of vietnamadminunits, with weights."""

from __future__ import annotations

import bisect
import importlib.metadata
import itertools
import random
import sqlite3
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

# Approximate population in thousands of each 2025 province: the 2024 GSO estimates of its pre-merger members,
# added up (Nghị quyết 202/2025/QH15 lists the members). See docs/synth.md; good to a few percent.
PROVINCE_POPULATION: dict[str, int] = {
    "01": 8720, "04": 573, "08": 1865, "11": 640, "12": 494, "14": 1328, "15": 1778, "19": 1799,
    "20": 803, "22": 1380, "24": 3620, "25": 4020, "31": 4665, "33": 3567, "37": 4412, "38": 4324,
    "40": 3831, "42": 1623, "44": 1870, "46": 1433, "48": 3065, "51": 2161, "52": 3583, "56": 2243,
    "66": 3347, "68": 3872, "75": 4491, "79": 14002, "80": 3254, "82": 4370, "86": 4257, "91": 4952,
    "92": 4199, "96": 2606,
}  # fmt: skip

# The pre-2025 provinces (GSO codes) that each 2025 province was formed from; the old codes stay valid in
# personal ID numbers of people whose birth was registered before 01/07/2025 (vn-standards §2.1, §2.3).
LEGACY_CODES: dict[str, tuple[str, ...]] = {
    "01": ("01",), "04": ("04",), "08": ("02", "08"), "11": ("11",), "12": ("12",), "14": ("14",),
    "15": ("10", "15"), "19": ("06", "19"), "20": ("20",), "22": ("22",), "24": ("24", "27"),
    "25": ("17", "25", "26"), "31": ("30", "31"), "33": ("33", "34"), "37": ("35", "36", "37"), "38": ("38",),
    "40": ("40",), "42": ("42",), "44": ("44", "45"), "46": ("46",), "48": ("48", "49"), "51": ("51", "62"),
    "52": ("52", "64"), "56": ("56", "58"), "66": ("54", "66"), "68": ("60", "67", "68"), "75": ("70", "75"),
    "79": ("74", "77", "79"), "80": ("72", "80"), "82": ("82", "87"), "86": ("83", "84", "86"),
    "91": ("89", "91"), "92": ("92", "93", "94"), "96": ("95", "96"),
}  # fmt: skip

NORTH = frozenset(["01", "04", "08", "11", "12", "14", "15", "19", "20", "22", "24", "25", "31", "33", "37"])
CENTRAL = frozenset(["38", "40", "42", "44", "46", "48", "51", "52", "56", "66", "68"])
MOUNTAIN = frozenset(["04", "08", "11", "12", "14", "15", "19", "20"])

# Relative population density of a commune by type: urban wards are denser than rural communes.
_TYPE_WEIGHT = {"Phường": 2.5, "Xã": 1.0, "Đặc khu": 0.3}
# Special zones with (almost) no civilian population: no residents and no health station.
_UNINHABITED = frozenset({"Đặc khu Hoàng Sa"})
_SMALL = {
    "Đặc khu Trường Sa": 0.02,
    "Đặc khu Bạch Long Vĩ": 0.05,
    "Đặc khu Cồn Cỏ": 0.05,
    "Đặc khu Thổ Châu": 0.05,
}
_LARGE = {"Đặc khu Phú Quốc": 3.0, "Đặc khu Vân Đồn": 1.0}


@dataclass(frozen=True, slots=True)
class Commune:
    """A commune-level unit of 2025 (xã, phường, đặc khu)."""

    code: str  # 5 digits
    name: str  # "Phường Hồng Hà"
    short: str  # "Hồng Hà"
    kind: str  # "Phường", "Xã" or "Đặc khu"
    province: str  # 2-digit code
    rank: int  # position within the province, from 0


@dataclass(frozen=True, slots=True)
class Province:
    """A province-level unit of 2025 with its communes."""

    code: str
    name: str  # "Thành phố Hà Nội"
    short: str  # "Hà Nội"
    communes: tuple[Commune, ...]

    @property
    def region(self) -> str:
        """north, central or south, for names and street styles."""
        return "north" if self.code in NORTH else "central" if self.code in CENTRAL else "south"


def dataset_path() -> Path:
    """dataset.db of vietnamadminunits, found without importing the package (which pulls shapely)."""
    dist = importlib.metadata.distribution("vietnamadminunits")
    return Path(str(dist.locate_file("vietnamadminunits/data/dataset.db")))


@lru_cache(maxsize=1)
def provinces() -> tuple[Province, ...]:
    """All 34 provinces in code order, each with its inhabited communes in code order."""
    uri = dataset_path().as_uri() + "?mode=ro&immutable=1"
    with sqlite3.connect(uri, uri=True) as conn:
        rows = conn.execute(
            "SELECT provinceCode, province, provinceShort, wardCode, ward, wardShort, wardType"
            " FROM admin_units ORDER BY provinceCode, wardCode"
        ).fetchall()
    out = []
    for code, group in itertools.groupby(rows, key=lambda r: str(r[0])):
        members = [r for r in group if r[4] not in _UNINHABITED]
        communes = tuple(
            Commune(str(r[3]), str(r[4]), str(r[5]), str(r[6]), code, n) for n, r in enumerate(members)
        )
        out.append(Province(code, str(members[0][1]), str(members[0][2]), communes))
    return tuple(out)


@lru_cache(maxsize=1)
def by_code() -> dict[str, Province]:
    """Provinces by 2-digit code."""
    return {p.code: p for p in provinces()}


def commune_weight(c: Commune) -> float:
    """Relative population of a commune within its province."""
    return _SMALL.get(c.name) or _LARGE.get(c.name) or _TYPE_WEIGHT.get(c.kind, 1.0)


class Picker:
    """Draws provinces and communes in proportion to population (cumulative weights, bisect)."""

    def __init__(self, only: frozenset[str] | None = None) -> None:
        self.provinces = [p for p in provinces() if only is None or p.code in only]
        if not self.provinces:
            raise ValueError("no province selected")
        self._cum = list(itertools.accumulate(PROVINCE_POPULATION[p.code] for p in self.provinces))
        self._communes: dict[str, tuple[tuple[Commune, ...], list[float]]] = {}
        for p in self.provinces:
            self._communes[p.code] = (
                p.communes,
                list(itertools.accumulate(commune_weight(c) for c in p.communes)),
            )
        self._all = [p for p in provinces()]
        self._all_cum = list(itertools.accumulate(PROVINCE_POPULATION[p.code] for p in self._all))

    def province(self, rng: random.Random) -> Province:
        """A province of the selection, weighted by population."""
        return self.provinces[bisect.bisect(self._cum, rng.random() * self._cum[-1])]

    def any_province(self, rng: random.Random) -> Province:
        """Any province of the country (a birthplace elsewhere), weighted by population."""
        return self._all[bisect.bisect(self._all_cum, rng.random() * self._all_cum[-1])]

    def commune(self, rng: random.Random, province: Province) -> Commune:
        """A commune of the province, weighted by type."""
        communes, cum = self._communes[province.code]
        return communes[bisect.bisect(cum, rng.random() * cum[-1])]
