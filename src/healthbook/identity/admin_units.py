"""Time-versioned administrative units: the 63 provinces with districts before 01/07/2025, the 34 after.

The data are those of the MIT-licensed `vietnamadminunits` package (GSO codes; sapnhap.bando.com.vn for
the 2025 mapping), read once from its SQLite file. Old records keep their pre-2025 codes valid; every
old unit knows its 2025 successor so that reports can group old and new records together.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from dataclasses import dataclass
from functools import lru_cache
from importlib.util import find_spec
from pathlib import Path

REORGANISATION = dt.date(2025, 7, 1)  # two-level local government (vn-standards §2.2)


@dataclass(frozen=True)
class Unit:
    """One administrative unit in one era: 2-digit province, 3-digit district or 5-digit commune code."""

    code: str
    name: str
    level: str  # province | district | commune
    era: str  # 2025 | legacy
    province: str  # code of the province it belongs to (itself for a province)
    district: str | None = None  # legacy communes only

    @property
    def valid_from(self) -> dt.date | None:
        """First day of validity (None: before records began)."""
        return REORGANISATION if self.era == "2025" else None

    @property
    def valid_to(self) -> dt.date | None:
        """Last day of validity (None: still valid)."""
        return None if self.era == "2025" else REORGANISATION - dt.timedelta(days=1)


@dataclass(frozen=True)
class Units:
    """Lookup tables of both eras."""

    provinces_2025: dict[str, Unit]
    communes_2025: dict[str, Unit]
    provinces_legacy: dict[str, Unit]
    districts_legacy: dict[str, Unit]
    communes_legacy: dict[str, Unit]
    province_successor: dict[str, str]  # legacy province code → 2025 province code
    commune_successor: dict[str, str]  # legacy commune code → 2025 commune code

    def era_on(self, day: dt.date | None) -> str:
        """Which era a record dated `day` belongs to (no date: the current one)."""
        return "legacy" if day is not None and day < REORGANISATION else "2025"

    def province(self, code: str, era: str) -> Unit | None:
        """The province with this 2-digit code in an era."""
        return (self.provinces_2025 if era == "2025" else self.provinces_legacy).get(code)

    def commune(self, code: str, era: str) -> Unit | None:
        """The commune/ward with this 5-digit code in an era."""
        return (self.communes_2025 if era == "2025" else self.communes_legacy).get(code)

    def current_province(self, code: str) -> str | None:
        """The 2025 province that a province code of either era belongs to now."""
        if code in self.provinces_2025:
            return code
        return self.province_successor.get(code)


def _data_dir() -> Path:
    """The package's data folder, found without importing the package (it pulls in pandas)."""
    spec = find_spec("vietnamadminunits")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the vietnamadminunits package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


@lru_cache(maxsize=1)
def units() -> Units:
    """Load both eras from the vietnamadminunits data files (≈ 13,000 rows, ~0.1 s, once)."""
    data = _data_dir()
    conn = sqlite3.connect(f"file:{data / 'dataset.db'}?mode=ro", uri=True)
    try:
        new = conn.execute(
            "SELECT provinceCode, province, wardCode, ward, provinceKey, wardKey FROM admin_units"
        ).fetchall()
        old = conn.execute(
            "SELECT provinceCode, province, districtCode, district, wardCode, ward, provinceKey, "
            "districtKey, wardKey FROM admin_units_legacy"
        ).fetchall()
    finally:
        conn.close()
    p25: dict[str, Unit] = {}
    c25: dict[str, Unit] = {}
    new_keys: dict[str, str] = {}
    new_ward_keys: dict[tuple[str, str], str] = {}
    for pcode, pname, wcode, wname, pkey, wkey in new:
        p25.setdefault(pcode, Unit(pcode, pname, "province", "2025", pcode))
        c25[wcode] = Unit(wcode, wname, "commune", "2025", pcode)
        new_keys[pkey] = pcode
        new_ward_keys[(pkey, wkey)] = wcode
    pl: dict[str, Unit] = {}
    dl: dict[str, Unit] = {}
    cl: dict[str, Unit] = {}
    old_keys: dict[str, str] = {}
    old_ward_keys: dict[str, str] = {}
    for pcode, pname, dcode, dname, wcode, wname, pkey, dkey, wkey in old:
        pl.setdefault(pcode, Unit(pcode, pname, "province", "legacy", pcode))
        dl.setdefault(dcode, Unit(dcode, dname, "district", "legacy", pcode))
        cl[wcode] = Unit(wcode, wname, "commune", "legacy", pcode, dcode)
        old_keys[pkey] = pcode
        old_ward_keys[f"{pkey}_{dkey}_{wkey}"] = wcode
    conv = json.loads((data / "converter_2025.json").read_text(encoding="utf-8"))
    province_successor: dict[str, str] = {}
    for new_key, old_list in conv["DICT_PROVINCE"].items():
        for old_key in old_list:
            if old_key in old_keys and new_key in new_keys:
                province_successor[old_keys[old_key]] = new_keys[new_key]
    commune_successor: dict[str, str] = {}
    for new_pkey, wards in conv["DICT_PROVINCE_WARD_NO_DIVIDED"].items():
        for new_wkey, olds in wards.items():
            for full in olds:
                if full in old_ward_keys and (new_pkey, new_wkey) in new_ward_keys:
                    commune_successor[old_ward_keys[full]] = new_ward_keys[(new_pkey, new_wkey)]
    for new_pkey, divided in conv["DICT_PROVINCE_WARD_DIVIDED"].items():
        for full, parts in divided.items():
            default = next((p for p in parts if p.get("isDefaultNewWard")), parts[0] if parts else None)
            if default and full in old_ward_keys and (new_pkey, default["newWardKey"]) in new_ward_keys:
                commune_successor[old_ward_keys[full]] = new_ward_keys[(new_pkey, default["newWardKey"])]
    return Units(p25, c25, pl, dl, cl, province_successor, commune_successor)
