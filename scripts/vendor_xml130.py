"""Vendor the QĐ 4750 field tables for the XML130 importer (the ICD-10 list is healthbook.terminology's).

Usage: python scripts/vendor_xml130.py [SHARED_DATA_DIR]   (default: ../shared/data beside the repository)

Reads xml130-qd4750-fields.csv (see SOURCES.md there) and writes
src/healthbook/imports/xml130/data/fields.json. The field table keeps the
appendix's type and size, applies the QĐ 4750 corrections that the CSV states in words
("Đổi kiểu dữ liệu thành chuỗi", "Tăng kích thước tối đa lên N ký tự"), and adds the value kind the
importer checks (string, number, date, datetime, …), derived from the field name and size as below.
"""

from __future__ import annotations

import csv
import json
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "src/healthbook/imports/xml130/data"
DEFAULT_SHARED = ROOT.parent / "shared" / "data"

_TO_STRING = "Đổi kiểu dữ liệu thành chuỗi"
_GROW = re.compile(r"Tăng kích thước tối đa lên (\d+) ký tự")
_DATE_PREFIXES = ("NGAY", "THOI", "GT_THE_", "TU_NGAY", "DEN_NGAY", "BDDT_", "NGOAITRU_")
# Fields whose value is a ';'-separated list of dates (vn-standards §6.7; meaning texts of XML1).
_DATE_LISTS = {"NGAY_TAI_KHAM", "GT_THE_TU", "GT_THE_DEN"}
# Birth dates of 12 characters may carry 0000 for an unknown month/day or hour/minute (§6.7).
_BIRTH = {"NGAY_SINH"}
# The appointment time of XML14: 12 characters in the QĐ 4750 appendix, 8 in QĐ 3176-era tools (§6.10).
_DATE_OR_DATETIME = {"NGAY_HEN_KL"}
# Sizes that later decisions changed and that the importer accepts (§6.1, §6.10): MA_TTDV is string(255) in
# QĐ 3176-era tools; MUC_HUONG grows to 4 characters under QĐ 1931.
_LATER_SIZES = {"MA_TTDV": 255, "MUC_HUONG": 4}


def _kind(field: str, ftype: str, size: str) -> str:
    if field in _BIRTH and size == "12":
        return "birth"
    if field in _DATE_OR_DATETIME:
        return "date_or_datetime"
    if field in _DATE_LISTS:
        return "date_list"
    if field == "NAM_NAM_LIEN_TUC" or (field.startswith(_DATE_PREFIXES) and size in ("8", "12")):
        return "datetime" if size == "12" else "date"
    return "number" if ftype == "Số" else "string"


def fields(path: Path) -> dict[str, Any]:
    """The field tables by table name, in sheet order, with the 4750 corrections applied."""
    tables: dict[str, Any] = {}
    with path.open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            table = tables.setdefault(
                row["table"], {"title": row["table_title_vi"], "sheet": row["source_sheet"], "fields": []}
            )
            correction = row["correction_4750"]
            ftype = row["type"]
            size = row["size"]
            changes: list[str] = []
            if _TO_STRING in correction and ftype == "Số":
                ftype = "Chuỗi"
                changes.append("type")
            grown = _GROW.search(correction)
            if grown:
                size = grown.group(1)
                changes.append("size")
            field = row["field"]
            max_len = None if size == "n" else int(size)
            if field in _LATER_SIZES and max_len is not None:
                max_len = max(max_len, _LATER_SIZES[field])
            table["fields"].append(
                {
                    "field": field,
                    "order": row["order"],
                    "position": int(row["position"]),
                    "type_130": row["type"],
                    "type": ftype,
                    "size_130": row["size"],
                    "max_len": max_len,
                    "kind": _kind(field, ftype, size),
                    "changed_4750": changes,
                    "source_row": int(row["source_row"]),
                }
            )
    return tables


def main(shared: Path) -> None:
    """Write fields.json."""
    OUT.mkdir(parents=True, exist_ok=True)
    tables = fields(shared / "xml130-qd4750-fields.csv")
    (OUT / "fields.json").write_text(
        json.dumps(tables, ensure_ascii=False, indent=1, sort_keys=True) + "\n", encoding="utf-8"
    )
    n_fields = sum(len(t["fields"]) for t in tables.values())
    print(f"{n_fields} fields in {len(tables)} tables")  # noqa: T201


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_SHARED)
