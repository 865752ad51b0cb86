"""What every mapper shares: deterministic ids, references, XML130 dates and numbers as FHIR values."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from healthbook.fhir.jsonio import FhirDecimal
from healthbook.imports.xml130 import codes as cs
from healthbook.imports.xml130.episode import Episode
from healthbook.imports.xml130.ids import episode_id
from healthbook.imports.xml130.issues import Problem, warning
from healthbook.imports.xml130.tables import Row

Resource = dict[str, Any]
_NUMBER = re.compile(r"^[+-]?\d+(?:\.\d+)?$")
TZ = "+07:00"  # XML130 times are Vietnam local time


@dataclass
class Refs:
    """Shared resources resolved before mapping: the patient and the facilities and staff by code."""

    patient: str
    organizations: dict[str, str] = field(default_factory=dict)  # facility code -> Organization id
    practitioners: dict[str, str] = field(default_factory=dict)  # practising certificate -> Practitioner id
    children: dict[int, str] = field(default_factory=dict)  # XML9 row -> the newborn's Patient id


class Context:
    """The state of mapping one episode: its ids, references and the resources made so far."""

    def __init__(self, episode: Episode, refs: Refs):
        self.episode = episode
        self.refs = refs
        self.out: list[Resource] = []
        self.problems: list[Problem] = []
        self.encounter_id = self.id("Encounter")
        self.subject = {"reference": f"Patient/{refs.patient}"}
        self.encounter = {"reference": f"Encounter/{self.encounter_id}"}
        self.conditions: dict[str, str] = {}  # ICD-10 code -> Condition id of this episode

    def id(self, *parts: str) -> str:
        """The logical id of one resource of this episode (MACSKCB + MA_LK + what it is)."""
        return episode_id(self.episode.facility, self.episode.ma_lk, *parts)

    def add(self, resource: Resource) -> Resource:
        """Keep a resource of the episode."""
        self.out.append(resource)
        return resource

    def org(self, code: str | None) -> dict[str, str] | None:
        """Reference to the Organization of a facility code."""
        if not code or code not in self.refs.organizations:
            return None
        return {"reference": f"Organization/{self.refs.organizations[code]}"}

    def practitioner(self, raw: str | None) -> dict[str, str] | None:
        """Reference to the first practitioner of a MA_BAC_SI-like value."""
        for code in practitioner_codes(raw):
            if code in self.refs.practitioners:
                return {"reference": f"Practitioner/{self.refs.practitioners[code]}"}
        return None

    def practitioners(self, raw: str | None) -> list[dict[str, str]]:
        """References to every practitioner of a ';'-separated value."""
        return [
            {"reference": f"Practitioner/{self.refs.practitioners[c]}"}
            for c in practitioner_codes(raw)
            if c in self.refs.practitioners
        ]

    def warn(self, message: str, row: Row | None = None, name: str | None = None) -> None:
        """A warning about a value of a row."""
        self.problems.append(
            warning(
                "value",
                message,
                table=row.table if row else None,
                row=row.number if row else None,
                field=name,
                value=row.get(name) if row and name else None,
            )
        )


def practitioner_codes(raw: str | None) -> list[str]:
    """'CCHN1;CCHN2(NV01)' -> ['CCHN1', 'CCHN2']: practising-certificate numbers, staff codes in () dropped."""
    if not raw:
        return []
    out: list[str] = []
    for part in raw.split(";"):
        code = part.split("(", 1)[0].strip()
        if code and code not in out:
            out.append(code)
    return out


def when(value: str | None) -> str | None:
    """yyyymmddHHMM -> a FHIR dateTime in Vietnam time; yyyymmdd -> a FHIR date."""
    if not value:
        return None
    if len(value) >= 12:
        return f"{value[:4]}-{value[4:6]}-{value[6:8]}T{value[8:10]}:{value[10:12]}:00{TZ}"
    return f"{value[:4]}-{value[4:6]}-{value[6:8]}"


def instant(value: str) -> str:
    """yyyymmddHHMM as a FHIR instant (Vietnam time)."""
    return f"{value[:4]}-{value[4:6]}-{value[6:8]}T{value[8:10]}:{value[10:12]}:00{TZ}"


def day_bounds(value: str) -> tuple[str, str]:
    """The first and last instant of a yyyymmdd day."""
    d = f"{value[:4]}-{value[4:6]}-{value[6:8]}"
    return f"{d}T00:00:00{TZ}", f"{d}T23:59:59{TZ}"


def birth(value: str) -> tuple[str, str | None]:
    """NGAY_SINH (12 digits, 0000 for unknown parts; or 8) -> (birthDate, birthTime dateTime or None)."""
    year, month, day = value[:4], value[4:6], value[6:8]
    if month == "00" or day == "00":
        return (year if month == "00" else f"{year}-{month}"), None
    date = f"{year}-{month}-{day}"
    if len(value) == 12 and value[8:] != "0000":
        return date, f"{date}T{value[8:10]}:{value[10:12]}:00{TZ}"
    return date, None


def decimal(text: str | None) -> FhirDecimal | int | None:
    """A number as written ('12.50' keeps its precision), None when it is not a plain number."""
    if not text or not _NUMBER.match(text):
        return None
    if "." not in text:
        return int(text)
    return FhirDecimal(text.lstrip("+"))


def concept(system: str, code: str, display: str | None = None, text: str | None = None) -> dict[str, Any]:
    """A CodeableConcept with one coding."""
    coding: dict[str, Any] = {"system": system, "code": code}
    if display:
        coding["display"] = display
    out: dict[str, Any] = {"coding": [coding]}
    if text:
        out["text"] = text
    return out


def loinc(code: tuple[str, str], text: str | None = None) -> dict[str, Any]:
    """A LOINC CodeableConcept (code, Vietnamese text)."""
    return concept(cs.LOINC, code[0], None, text or code[1])


def quantity(value: FhirDecimal | int, unit: str | None) -> dict[str, Any]:
    """A Quantity; UCUM system and code when the unit is one of the known Vietnamese spellings."""
    out: dict[str, Any] = {"value": value}
    if unit:
        out["unit"] = unit
        ucum = cs.UCUM_UNITS.get(unit.strip())
        if ucum is not None:
            out["system"] = cs.UCUM
            out["code"] = ucum
    return out


def labelled(pairs: list[tuple[str, str | None]]) -> str:
    """'Label: value' lines of the values that are present."""
    return "\n".join(f"{label}: {value}" for label, value in pairs if value)


def identifier(system: str, value: str, **extra: Any) -> dict[str, Any]:
    """An Identifier."""
    return {"system": system, "value": value, **extra}
