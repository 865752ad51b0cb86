"""ICD-10 codes of QĐ 4469/QĐ-BYT with their Vietnamese names and the A2/A4 rules (healthbook.terminology)."""

from __future__ import annotations

import unicodedata
from typing import NamedTuple

from healthbook.terminology import icd10


class Icd(NamedTuple):
    """A code of the list: normalised code, Vietnamese name, not allowed as principal, one sex only."""

    code: str
    name: str
    not_principal: bool
    sex: str  # '', 'F' or 'M'


def normalise(raw: str) -> str:
    """'j18.9', 'J189', 'A17†' -> 'J18.9', 'J18.9', 'A17' (the dotted form of the list, no marker)."""
    return icd10.normalise(raw)


def lookup(raw: str) -> Icd | None:
    """The code of the QĐ 4469 list, or None when it is not in it."""
    found = icd10.lookup(raw)
    if found is None:
        return None
    name = unicodedata.normalize("NFC", found.name_vi)
    return Icd(found.code, name, found.not_principal, found.sex_only)
