"""ICD-10 codes of QĐ 4469/QĐ-BYT with their Vietnamese names and the A2/A4 rules (vendored list)."""

from __future__ import annotations

import gzip
import json
from functools import cache
from typing import NamedTuple

from healthbook.imports.xml130.fields import DATA


class Icd(NamedTuple):
    """A code of the list: normalised code, Vietnamese name, not allowed as principal, one sex only."""

    code: str
    name: str
    not_principal: bool
    sex: str  # '', 'F' or 'M'


@cache
def _codes() -> dict[str, list[str]]:
    data: dict[str, list[str]] = json.loads(gzip.decompress((DATA / "icd10-vn.json.gz").read_bytes()))
    return data


def normalise(raw: str) -> str:
    """'j18.9', 'J189', 'A17†' -> 'J18.9', 'J18.9', 'A17' (the dotted form of the list, no marker)."""
    code = raw.strip().upper().rstrip("†*+")
    if "." not in code and len(code) > 3:
        code = f"{code[:3]}.{code[3:]}"
    return code


def lookup(raw: str) -> Icd | None:
    """The code of the QĐ 4469 list, or None when it is not in it."""
    code = normalise(raw)
    found = _codes().get(code)
    if found is None:
        return None
    name, flags = found
    return Icd(code, name, "P" in flags, "F" if "F" in flags else "M" if "M" in flags else "")
