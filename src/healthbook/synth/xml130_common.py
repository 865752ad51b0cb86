"""What the XML130 renderer of the synthetic population shares: synthetic code tables, episodes, formats."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from healthbook.identity.ethnicity import SYNTH_GROUP_CODES

Resource = dict[str, Any]
Row = dict[str, str | None]
NGAYLAP = "20260630"
DONATION = "Hiến máu tình nguyện"

# ATC -> (MA_THUOC, TEN_THUOC, HAM_LUONG, DON_VI_TINH, DANG_BAO_CHE, DON_GIA): synthetic codes in the DMDC shape.
DRUGS: dict[str, tuple[str, str, str, str, str, int]] = {
    "C08CA01": ("40.520", "Amlodipin", "5mg", "viên", "Viên nén", 350),
    "C09CA01": ("40.536", "Losartan", "50mg", "viên", "Viên nén bao phim", 1200),
    "C09AA02": ("40.512", "Enalapril", "5mg", "viên", "Viên nén", 400),
    "C09AA04": ("40.534", "Perindopril", "5mg", "viên", "Viên nén", 2500),
    "C03AA03": ("40.545", "Hydroclorothiazid", "25mg", "viên", "Viên nén", 300),
    "A10BA02": ("40.678", "Metformin", "500mg", "viên", "Viên nén bao phim", 450),
    "A10BB09": ("40.673", "Gliclazid", "30mg", "viên", "Viên nén giải phóng kéo dài", 1800),
    "C10AA05": ("40.557", "Atorvastatin", "10mg", "viên", "Viên nén bao phim", 900),
    "N02BE01": ("40.48", "Paracetamol", "500mg", "viên", "Viên nén", 250),
    "J01CA04": ("40.153", "Amoxicilin", "500mg", "viên", "Viên nang", 900),
    "J01DC02": ("40.172", "Cefuroxim", "250mg", "viên", "Viên nén bao phim", 3200),
    "A02BC01": ("40.677", "Omeprazol", "20mg", "viên", "Viên nang", 600),
    "R06AX13": ("40.85", "Loratadin", "10mg", "viên", "Viên nén", 300),
    "M01AC06": ("40.33", "Meloxicam", "7,5mg", "viên", "Viên nén", 500),
    "R03CC02": ("40.996", "Salbutamol", "2mg", "viên", "Viên nén", 200),
    "A07CA": ("40.1021", "Oresol 245", "", "gói", "Thuốc bột pha dung dịch uống", 1800),
    "A12CB01": ("40.1049", "Kẽm gluconat", "10mg", "gói", "Thuốc cốm", 1500),
    "B03AD02": ("40.822", "Sắt fumarat + acid folic", "", "viên", "Viên nén bao phim", 700),
    "A12AA04": ("40.1036", "Calci carbonat", "500mg", "viên", "Viên nén", 600),
}
# LOINC -> (MA_DICH_VU, TEN_DICH_VU, MA_CHI_SO, DON_GIA): synthetic service and index codes, real test names.
LAB_SERVICES: dict[str, tuple[str, str, str, int]] = {
    "4548-4": ("23.0083.1523", "Định lượng HbA1c", "HBA1C", 101000),
    "14771-0": ("23.0075.1494", "Định lượng Glucose", "GLU", 21500),
    "14647-2": ("23.0041.1506", "Định lượng Cholesterol toàn phần", "CHOL", 26900),
    "14927-8": ("23.0158.1506", "Định lượng Triglycerid", "TG", 26900),
    "14646-4": ("23.0084.1506", "Định lượng HDL-C", "HDL", 26900),
    "22748-8": ("23.0112.1506", "Định lượng LDL-C", "LDL", 26900),
    "14682-9": ("23.0051.1494", "Định lượng Creatinin", "CREA", 21500),
    "718-7": ("22.0120.1370", "Định lượng huyết sắc tố (Hemoglobin)", "HGB", 40000),
}
EXAM = {"tram-y-te": ("03.1900", 18500), "khu-vuc": ("02.1896", 30500)}
EXAM_HOSPITAL = ("01.1895", 45000)
BED = ("K03.1917", "Giường Nội khoa loại 1 hạng II", 221000)
DELIVERY = {
    "177184002": ("13.0060.0620", "Đỡ đẻ thường ngôi chỏm", "73.59", 675000),
    "11466000": ("12.0297.0591", "Phẫu thuật lấy thai lần đầu", "74.1", 2700000),
}
LEVEL_RATE = {"1": 100, "2": 100, "3": 95, "4": 80, "5": 100}
ETHNIC = SYNTH_GROUP_CODES


@dataclass
class Episode:
    """One HOSO: the facility, the episode key, its start (for ordering) and its tables."""

    facility: str
    ma_lk: str
    start: str
    tables: list[tuple[str, bytes]] = field(default_factory=list)


def compact(value: str | None) -> str | None:
    """A FHIR date or dateTime as yyyymmdd or yyyymmddHHMM."""
    if not value:
        return None
    digits = value[:10].replace("-", "")
    return digits + value[11:16].replace(":", "") if len(value) > 10 else digits


def money(value: float) -> str:
    """An amount as written in the XML: whole numbers without decimals, else 2 decimals."""
    return str(int(value)) if value == int(value) else f"{value:.2f}"


def num(value: Any) -> str:
    """A quantity as text (15.0 -> 15)."""
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def ref_id(ref: dict[str, Any] | None) -> str:
    """The id of a Reference (Type/id)."""
    return str((ref or {}).get("reference", "")).split("/", 1)[-1]


def birth_weight(record: list[Resource]) -> str | None:
    """A newborn's birth weight (grams) from its own record."""
    for r in record:
        if r["resourceType"] == "Observation" and r["code"]["coding"][0]["code"] == "8339-4":
            return num(r["valueQuantity"]["value"])
    return None


def iso(ordinal: int) -> str:
    """A day ordinal as YYYY-MM-DD."""
    return dt.date.fromordinal(ordinal).isoformat()
