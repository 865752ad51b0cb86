"""Which Patient an episode belongs to: by CCCD, else by BHYT card, else by the facility's patient number, else new.

This is the one place that decides it, so that the matching of the identity work can replace it later. The
service prefetches the identifiers of a whole chunk of episodes (lookup_keys) and passes a lookup over them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from healthbook.imports.xml130 import codes as cs
from healthbook.imports.xml130.ids import shared_id
from healthbook.imports.xml130.issues import Problem, warning

Key = tuple[str, str]  # (identifier system, value)
Lookup = Callable[[Key], list[str]]  # ids of the Patients that carry the identifier


@dataclass(frozen=True)
class Person:
    """What an episode says about who the patient is."""

    identity: Key | None  # SO_CCCD as CCCD, CMND or another document number
    cards: tuple[str, ...] = ()  # MA_THE_BHYT, one or several
    local: Key | None = None  # MA_BN under the facility's system
    fallback: str = ""  # used for the id of a new Patient that has no identifier at all


@dataclass
class Match:
    """The Patient found or to be created."""

    patient_id: str
    created: bool
    problems: list[Problem] = field(default_factory=list)


def lookup_keys(person: Person) -> list[Key]:
    """Identifiers to look up, strongest first: CCCD (or other identity document), BHYT cards, MA_BN."""
    keys: list[Key] = []
    if person.identity is not None:
        keys.append(person.identity)
    keys.extend((cs.BHYT, card) for card in person.cards)
    if person.local is not None:
        keys.append(person.local)
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
    basis = keys[0] if keys else ("episode", person.fallback)
    return Match(shared_id("Patient", *basis), True)


def _field(system: str) -> str:
    return {cs.BHYT: "MA_THE_BHYT", cs.CCCD: "SO_CCCD", cs.CMND: "SO_CCCD", cs.OTHER_ID: "SO_CCCD"}.get(
        system, "MA_BN"
    )


def identity_key(raw: str | None) -> tuple[Key | None, list[Problem]]:
    """SO_CCCD as an identifier: 12 digits CCCD, 9 digits CMND, anything else another document number."""
    if not raw:
        return None, []
    value = raw.strip()
    if value.isdigit() and len(value) == 12:
        return (cs.CCCD, value), []
    if value.isdigit() and len(value) == 9:
        return (cs.CMND, value), []
    if value.isdigit() and 9 < len(value) < 12:
        padded = value.zfill(12)
        note = warning("value", f"read as CCCD '{padded}' (leading zeros lost, as when QĐ 130 typed it a number)",
                       table="XML1", field="SO_CCCD", value=raw)  # fmt: skip
        return (cs.CCCD, padded), [note]
    return (cs.OTHER_ID, value), []


def identifiers(person: Person, cards: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The identifiers a new Patient gets: identity document, BHYT cards (with validity), MA_BN."""
    out: list[dict[str, Any]] = []
    if person.identity is not None:
        entry: dict[str, Any] = {"system": person.identity[0], "value": person.identity[1]}
        if person.identity[0] == cs.CCCD:
            entry["use"] = "official"
        out.append(entry)
    out.extend(cards)
    if person.local is not None:
        out.append({"use": "secondary", "system": person.local[0], "value": person.local[1]})
    return out
