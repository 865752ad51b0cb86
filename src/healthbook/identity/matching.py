"""Patient matching: normalised Vietnamese names, comparison weights and the documented thresholds.

Pure functions (no database), so that every weight is unit-tested. docs/identity.md explains the
scores; the thresholds below are the ones it documents.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from rapidfuzz.distance import JaroWinkler
from rapidfuzz.fuzz import token_sort_ratio

from healthbook.identity import systems
from healthbook.identity.admin_units import units

# Thresholds on the 0–1 score (docs/identity.md).
PROBABLE = 0.85  # flagged as a likely duplicate; $match grade "probable"
POSSIBLE = 0.70  # shown by $match as "possible"; not flagged
# Weights of the fields (they add up to 1).
W_NAME, W_BIRTH, W_SEX, W_ADDRESS = 0.40, 0.30, 0.10, 0.20

_SPACE = re.compile(r"[^a-z0-9]+")


def normalise(text: str) -> str:
    """Lower case, no diacritics, đ → d, single spaces: "Nguyễn Thị Ánh" and "NGUYEN THI ANH" agree."""
    decomposed = unicodedata.normalize("NFD", text.replace("đ", "d").replace("Đ", "D"))
    bare = "".join(ch for ch in decomposed if not unicodedata.combining(ch)).lower()
    return _SPACE.sub(" ", bare).strip()


@dataclass(frozen=True)
class Person:
    """The fields of a Patient that matching compares, normalised."""

    name_key: str
    family_key: str
    given_key: str
    birth_date: str
    gender: str
    cccd: str
    ssn: str
    province: str
    commune: str

    @property
    def birth_year(self) -> str:
        """The year part of the birth date ("" when unknown)."""
        return self.birth_date[:4]


def person_of(doc: dict[str, Any]) -> Person:
    """Extract the matching fields of a Patient resource (official name and home address first)."""
    family, given, full = _name(doc)
    cccd = ssn = ""
    for ident in _list(doc.get("identifier")):
        if (
            not isinstance(ident, dict)
            or ident.get("use") == "old"
            or not isinstance(ident.get("value"), str)
        ):
            continue
        if ident.get("system") == systems.CCCD and not cccd:
            cccd = ident["value"]
        elif ident.get("system") == systems.BHYT and not ssn:
            ssn = ident["value"][-10:]
    province, commune = _address(doc)
    birth = doc.get("birthDate")
    gender = doc.get("gender")
    return Person(
        name_key=full,
        family_key=family,
        given_key=given,
        birth_date=birth[:10] if isinstance(birth, str) else "",
        gender=gender if isinstance(gender, str) else "",
        cccd=cccd,
        ssn=ssn,
        province=province,
        commune=commune,
    )


def _name(doc: dict[str, Any]) -> tuple[str, str, str]:
    names = [n for n in _list(doc.get("name")) if isinstance(n, dict)]
    names.sort(key=lambda n: 0 if n.get("use") == "official" else 1 if n.get("use") in (None, "usual") else 2)
    for n in names:
        family = str(n["family"]) if isinstance(n.get("family"), str) else ""
        given = [g for g in _list(n.get("given")) if isinstance(g, str)]
        text = n.get("text") if isinstance(n.get("text"), str) else ""
        full = normalise(text) if text else normalise(" ".join([family, *given]))
        if not full:
            continue
        words = full.split()
        family_key = normalise(family) if family else words[0]
        given_key = normalise(given[-1]) if given else words[-1]
        return family_key, given_key, full
    return "", "", ""


def _address(doc: dict[str, Any]) -> tuple[str, str]:
    addresses = [a for a in _list(doc.get("address")) if isinstance(a, dict)]
    addresses.sort(key=lambda a: 0 if a.get("use") == "home" else 1)
    u = units()
    for addr in addresses:
        codes = {
            e.get("url"): e.get("valueCode")
            for e in _list(addr.get("extension"))
            if isinstance(e, dict) and isinstance(e.get("valueCode"), str)
        }
        province = codes.get(systems.EXT_PROVINCE)
        commune = codes.get(systems.EXT_COMMUNE) or ""
        if province:
            current = u.current_province(province) or province
            if commune and commune not in u.communes_2025 and commune in u.commune_successor:
                commune = u.commune_successor[commune]
            return current, commune
    return "", ""


def score(a: Person, b: Person) -> float:
    """Similarity 0–1 of two people; two different personal ID numbers mean two different people."""
    if a.cccd and b.cccd:
        return 1.0 if a.cccd == b.cccd else 0.0
    if not a.name_key or not b.name_key:
        return 0.0
    name = max(JaroWinkler.similarity(a.name_key, b.name_key), token_sort_ratio(a.name_key, b.name_key) / 100)
    total = W_NAME * name + W_BIRTH * _birth(a.birth_date, b.birth_date)
    total += W_SEX * (0.5 if not a.gender or not b.gender else 1.0 if a.gender == b.gender else 0.0)
    if a.commune and b.commune:
        total += W_ADDRESS * (1.0 if a.commune == b.commune else 0.5 if a.province == b.province else 0.0)
    elif a.province and b.province:
        total += W_ADDRESS * (0.75 if a.province == b.province else 0.0)
    else:
        total += W_ADDRESS * 0.5
    if _years_apart(a.birth_year, b.birth_year) > 1:
        total *= 0.6  # same name a generation apart: parent and child, not one person
    if a.ssn and b.ssn:
        # The social-insurance number is personal for life: equal numbers nearly settle it.
        total = max(total, 0.95) if a.ssn == b.ssn else total * 0.8
    return round(min(total, 1.0), 4)


def _birth(a: str, b: str) -> float:
    if not a or not b:
        return 0.3
    if a == b:
        return 1.0
    if len(a) == len(b) == 10 and a[:4] == b[:4]:
        transposed = a[5:7] == b[8:10] and a[8:10] == b[5:7]
        one_part = a[5:7] == b[5:7] or a[8:10] == b[8:10]
        return 0.6 if transposed else 0.4 if one_part else 0.2
    if a[:4] == b[:4]:
        return 0.5  # one of them is year-only or year-month
    return 0.0


def _years_apart(a: str, b: str) -> int:
    if len(a) == len(b) == 4 and a.isdigit() and b.isdigit():
        return abs(int(a) - int(b))
    return 0


def grade(value: float, by_number: bool = False) -> str:
    """The $match grade (http://hl7.org/fhir/StructureDefinition/match-grade) of a score."""
    if by_number:
        return "certain"
    if value >= PROBABLE:
        return "probable"
    if value >= POSSIBLE:
        return "possible"
    return "certainly-not"


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []
