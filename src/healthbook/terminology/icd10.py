"""The Vietnamese ICD-10 list of QĐ 4469/QĐ-BYT (28/10/2020), the list XML 130 cites for MA_BENH_*.

Loaded once from the vendored data file (scripts/vendor_icd10.py; provenance in data/SOURCES.md).
"""

from __future__ import annotations

import csv
import gzip
import io
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

SYSTEM = "http://hl7.org/fhir/sid/icd-10"
_DATA = Path(__file__).parent / "data" / "icd10-vn-qd4469.csv.gz"


@dataclass(frozen=True)
class Code:
    """One code of the list: the dotted form, names, and the validity rules the list states."""

    code: str
    name_vi: str
    name_en: str
    sex_only: str  # "F", "M" or ""
    not_principal: bool  # may not be the main diagnosis (appendix A2)


@lru_cache(maxsize=1)
def codes() -> dict[str, Code]:
    """Dotted code (A00.0) → entry; the first row wins where the list repeats a code with a marker."""
    text = gzip.decompress(_DATA.read_bytes()).decode("utf-8")
    out: dict[str, Code] = {}
    for row in csv.DictReader(io.StringIO(text)):
        out.setdefault(
            row["code"],
            Code(row["code"], row["name_vi"], row["name_en"], row["sex_only"], row["not_principal"] == "1"),
        )
    return out


def normalise(code: str) -> str:
    """The dotted form of a code written with or without the dot, markers or lower case (a000 → A00.0)."""
    bare = code.strip().upper().rstrip("†*+!").replace(".", "")
    return bare if len(bare) <= 3 else f"{bare[:3]}.{bare[3:]}"


def lookup(code: str) -> Code | None:
    """The entry of a code as facilities write it, or None when it is not in the list."""
    return codes().get(normalise(code))
