"""Which Patient an episode belongs to: by CCCD, else by BHYT card, else a new one.

This is the one place that decides it, so that the identity package's matching can take it over. The service
prefetches the identifiers of a whole chunk of episodes (lookup_keys) and passes a lookup over them; the
identity rules of healthbook.identity (personal ID number layout against the birth date, BHYT card layout)
decide which identifiers a new Patient may carry.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from healthbook.identity.identifiers import check_bhyt, check_cccd, check_cmnd
from healthbook.imports.xml130 import codes as cs
from healthbook.imports.xml130.ids import shared_id
from healthbook.imports.xml130.issues import Problem, warning

Key = tuple[str, str]  # (identifier system, value)
Lookup = Callable[[Key], list[str]]  # ids of the Patients that carry the identifier
_PASSPORT_VN = re.compile(r"[A-Z][0-9]{7,8}")


@dataclass(frozen=True)
class Person:
    """What an episode says about who the patient is."""

    identity: Key | None  # SO_CCCD as CCCD, CMND, passport or another document number: the first lookup key
    cards: tuple[str, ...] = ()  # valid MA_THE_BHYT cards, one or several: the next lookup keys
    local: Key | None = None  # MA_BN (facility-scoped: never looked up, only the basis of a new Patient's id)
    fallback: str = ""  # basis of the id of a new Patient that has no identifier at all
    identity_valid: bool = True  # False: SO_CCCD breaks the identity rules; a new Patient does not carry it


@dataclass
class Match:
    """The Patient found or to be created."""

    patient_id: str
    created: bool
    problems: list[Problem] = field(default_factory=list)


def lookup_keys(person: Person) -> list[Key]:
    """Identifiers to look up, strongest first: CCCD (or other identity document), then the BHYT cards."""
    keys: list[Key] = []
    if person.identity is not None:
        keys.append(person.identity)
    keys.extend((cs.BHYT, card) for card in person.cards)
    return keys


def resolve(person: Person, lookup: Lookup) -> Match:
    """The Patient with the first identifier that matches; a new id (derived from the identifier) otherwise."""
    keys = lookup_keys(person)
    for key in keys:
        found = sorted(set(lookup(key)))
        if found:
            problems: list[Problem] = []
            if len(found) > 1:
                problems.append(
                    warning("multiple-matches", f"{len(found)} Patients carry this identifier "
                            f"({', '.join(found[:3])}); the episode is linked to {found[0]}",
                            table="XML1", field=_field(key[0]), value=key[1])
                )  # fmt: skip
            return Match(found[0], False, problems)
    basis = keys[0] if keys else person.local or ("episode", person.fallback)
    return Match(shared_id("Patient", *basis), True)


def _field(system: str) -> str:
    return "MA_THE_BHYT" if system == cs.BHYT else "SO_CCCD"


def identity_key(
    raw: str | None, *, gender: str | None, birth: str | None
) -> tuple[Key | None, bool, list[Problem]]:
    """SO_CCCD as an identifier, whether a new Patient may carry it, and what was noticed.

    12 digits are the personal ID number (checked against the birth year, vn-standards §1); 10–11 digits are
    one that lost its leading zeros (QĐ 130 typed it a number); 9 digits the old CMND; a letter and 7–8
    digits a passport; anything else (a VNeID account) another document number.
    """
    if not raw:
        return None, True, []
    value = raw.strip().upper()
    where: dict[str, Any] = {"table": "XML1", "row": 1, "field": "SO_CCCD", "value": raw}
    problems: list[Problem] = []
    if value.isdigit() and 10 <= len(value) <= 12:
        number = value.zfill(12)
        if number != value:
            problems.append(warning("value", f"read as '{number}' (leading zeros lost, as when QĐ 130 typed it a "
                                    "number)", **where))  # fmt: skip
        found = check_cccd(number, gender=gender, birth_date=birth)
        errors = [p for p in found if p.severity == "error"]
        for p in found:
            if p.severity != "error":
                problems.append(warning("business-rule", p.text, **where))
        if errors:
            problems.append(warning("business-rule", f"{errors[0].text}; a new Patient is created without this "
                                    "number (it is still looked up)", **where))  # fmt: skip
        return (cs.CCCD, number), not errors, problems
    if value.isdigit() and len(value) == 9 and not check_cmnd(value):
        return (cs.CMND, value), True, problems
    if _PASSPORT_VN.fullmatch(value):
        return (cs.PASSPORT, value), True, problems
    return (cs.OTHER_ID, raw.strip()), True, problems


def valid_cards(cards: list[str]) -> tuple[tuple[str, ...], list[Problem]]:
    """The cards that pass the BHYT layout rules; the others are dropped with a warning."""
    kept: list[str] = []
    problems: list[Problem] = []
    for card in cards:
        found = check_bhyt(card)
        errors = [p for p in found if p.severity == "error"]
        where: dict[str, Any] = {"table": "XML1", "row": 1, "field": "MA_THE_BHYT", "value": card}
        if errors:
            problems.append(warning("business-rule", f"{errors[0].text}; the card is not used", **where))
            continue
        problems.extend(warning("business-rule", p.text, **where) for p in found)
        kept.append(card)
    return tuple(kept), problems


def identifiers(person: Person, cards: list[dict[str, Any]], facility: str) -> list[dict[str, Any]]:
    """The identifiers a new Patient gets: identity document, BHYT cards (with validity), MA_BN."""
    out: list[dict[str, Any]] = []
    if person.identity is not None and person.identity_valid:
        entry: dict[str, Any] = {"system": person.identity[0], "value": person.identity[1]}
        if person.identity[0] == cs.CCCD:
            entry["use"] = "official"
        out.append(entry)
    out.extend(cards)
    if person.local is not None:
        out.append({"use": "secondary", "system": cs.PATIENT_CODE, "value": person.local[1].split("/", 1)[1],
                    "assigner": {"identifier": {"system": cs.FACILITY, "value": facility}}})  # fmt: skip
    return out
