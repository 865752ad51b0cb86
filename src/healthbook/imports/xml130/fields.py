"""The QĐ 4750 field tables (vendored from the official appendix by scripts/vendor_xml130.py)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

DATA = Path(__file__).parent / "data"

# LOAIHOSO values of the tables (vn-standards §6.2); XML0 is the check-in table, sent to its own endpoint.
MAPPED = ("XML1", "XML2", "XML3", "XML4", "XML5", "XML7", "XML8", "XML9", "XML13", "XML14")
KEPT = ("CHECKIN", "XML6", "XML10", "XML11", "XML12", "XML15")  # stored as DocumentReference
# Root and row elements of each table (CV 1245/BHXH-CNTT §3.5, vn-standards §6.2; XML12 is not in it).
ROOTS = {
    "CHECKIN": ("CHI_TIEU_TRANG_THAI_KCB", "TRANG_THAI_KCB"),
    "XML1": ("TONG_HOP", "TONG_HOP"),
    "XML2": ("CHITIEU_CHITIET_THUOC", "CHI_TIET_THUOC"),
    "XML3": ("CHITIEU_CHITIET_DVKT_VTYT", "CHI_TIET_DVKT"),
    "XML4": ("CHITIEU_CHITIET_DICHVUCANLAMSANG", "CHI_TIET_CLS"),
    "XML5": ("CHITIEU_CHITIET_DIENBIENLAMSANG", "CHI_TIET_DIEN_BIEN_BENH"),
    "XML6": (
        "CHI_TIEU_HO_SO_BENH_AN_CHAM_SOC_VA_DIEU_TRI_HIV_AIDS",
        "HO_SO_BENH_AN_CHAM_SOC_VA_DIEU_TRI_HIV_AIDS",
    ),
    "XML7": ("CHI_TIEU_DU_LIEU_GIAY_RA_VIEN", "CHI_TIEU_DU_LIEU_GIAY_RA_VIEN"),
    "XML8": ("CHI_TIEU_DU_LIEU_TOM_TAT_HO_SO_BENH_AN", "CHI_TIEU_DU_LIEU_TOM_TAT_HO_SO_BENH_AN"),
    "XML9": ("CHI_TIEU_DU_LIEU_GIAY_CHUNG_SINH", "DU_LIEU_GIAY_CHUNG_SINH"),
    "XML10": ("CHI_TIEU_DU_LIEU_GIAY_NGHI_DUONG_THAI", "CHI_TIEU_DU_LIEU_GIAY_NGHI_DUONG_THAI"),
    "XML11": (
        "CHI_TIEU_DU_LIEU_GIAY_CHUNG_NHAN_NGHI_VIEC_HUONG_BAO_HIEM_XA_HOI",
        "CHI_TIEU_DU_LIEU_GIAY_CHUNG_NHAN_NGHI_VIEC_HUONG_BAO_HIEM_XA_HOI",
    ),
    "XML13": ("CHI_TIEU_GIAYCHUYENTUYEN", "CHI_TIEU_GIAYCHUYENTUYEN"),
    "XML14": ("CHI_TIEU_GIAYHEN_KHAMLAI", "CHI_TIEU_GIAYHEN_KHAMLAI"),
    "XML15": ("CHI_TIEU_DIEUTRI_BENHLAO", "CHITIET_DIEUTRI_BENHLAO"),
}
# The list element between root and rows, where the table has one (CV 1245).
LISTS = {
    "CHECKIN": "DSACH_TRANG_THAI_KCB",
    "XML2": "DSACH_CHI_TIET_THUOC",
    "XML3": "DSACH_CHI_TIET_DVKT",
    "XML4": "DSACH_CHI_TIET_CLS",
    "XML5": "DSACH_CHI_TIET_DIEN_BIEN_BENH",
    "XML9": "DSACH_GIAYCHUNGSINH",
    "XML15": "DSACH_CHITIET_DIEUTRI_BENHLAO",
}
SINGLE_ROW = ("XML1", "XML7", "XML8", "XML13", "XML14")  # one row per episode (XML7: one per child)


@dataclass(frozen=True, slots=True)
class Field:
    """One element of a table, with the checks of the appendix as amended by QĐ 4750."""

    table: str
    name: str
    position: int
    kind: str  # string | number | date | datetime | birth | date_or_datetime | date_list
    max_len: int | None  # characters (digits for numbers); None = no limit ("n")
    numeric_130: bool  # typed "Số" by QĐ 130: a 130-era file may have lost leading zeros
    source_row: int


@dataclass(frozen=True, slots=True)
class TableSpec:
    """One table: its title in the appendix and its fields by name."""

    name: str
    title: str
    fields: dict[str, Field]


@cache
def tables() -> dict[str, TableSpec]:
    """Every table of the appendix (CHECKIN, XML1 … XML15), loaded once."""
    raw = json.loads((DATA / "fields.json").read_text(encoding="utf-8"))
    out: dict[str, TableSpec] = {}
    for name, table in raw.items():
        specs = {
            f["field"]: Field(
                name,
                f["field"],
                f["position"],
                f["kind"],
                f["max_len"],
                f["type_130"] == "Số",
                f["source_row"],
            )
            for f in table["fields"]
        }
        out[name] = TableSpec(name, table["title"], specs)
    return out


def spec(table: str) -> TableSpec:
    """The spec of a known table."""
    return tables()[table]


def field_names(table: str) -> list[str]:
    """Element names of a table in appendix order (what a generator writes)."""
    return [f.name for f in sorted(spec(table).fields.values(), key=lambda f: f.position)]


def normalise_type(raw: str) -> str | None:
    """LOAIHOSO as written ('XML1', 'xml01', ' XML13 ', 'XML0', 'CHECKIN') -> table name, None if unknown."""
    text = raw.strip().upper()
    if text in ("CHECKIN", "CHECK-IN", "XML0", "XML00"):
        return "CHECKIN"
    if text.startswith("XML") and text[3:].isdigit():
        name = f"XML{int(text[3:])}"
        return name if name in tables() else None
    return None
