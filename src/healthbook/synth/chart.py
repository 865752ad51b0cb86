"""The resources of one citizen's record, built as plain FHIR R4 dicts with deterministic ids."""

from __future__ import annotations

import random
from functools import lru_cache
from typing import Any

from healthbook.synth import systems as sy
from healthbook.synth.facilities import Facility, Network
from healthbook.synth.icd import CODES
from healthbook.synth.ids import AS_OF_DAY, day, rint, stamp, uuid5
from healthbook.synth.population import Person

Resource = dict[str, Any]


def _cc(system: str, code: str, display: str | None, text: str | None = None) -> dict[str, Any]:
    coding = {"system": system, "code": code}
    if display is not None:
        coding["display"] = display
    out: dict[str, Any] = {"coding": [coding]}
    if text is not None:
        out["text"] = text
    return out


# Shared constant parts (never mutated after construction).
# Displays are left out of the very frequent codings to keep 100 million resources on one disk.
CLASS = {
    "AMB": {"system": sy.V3_ACT_CODE, "code": "AMB"},
    "IMP": {"system": sy.V3_ACT_CODE, "code": "IMP"},
    "EMER": {"system": sy.V3_ACT_CODE, "code": "EMER"},
}
ACTIVE = _cc(sy.CONDITION_CLINICAL, "active", None)
RESOLVED = _cc(sy.CONDITION_CLINICAL, "resolved", None)
CONFIRMED = _cc(sy.CONDITION_VERIFICATION, "confirmed", None)
PROBLEM = [_cc(sy.CONDITION_CATEGORY, "problem-list-item", None)]
DIAGNOSIS = [_cc(sy.CONDITION_CATEGORY, "encounter-diagnosis", None)]
VITAL = [_cc(sy.OBSERVATION_CATEGORY, "vital-signs", None)]
LAB = [_cc(sy.OBSERVATION_CATEGORY, "laboratory", None)]
LAB_SERVICE = [_cc(sy.DIAGNOSTIC_SERVICE, "LAB", None)]
HIGH = [_cc(sy.OBSERVATION_INTERPRETATION, "H", None)]
LOW = [_cc(sy.OBSERVATION_INTERPRETATION, "L", None)]
MOTHER = [_cc(sy.V3_ROLE_CODE, "MTH", "mother", "Mẹ")]
BP_CODE = _cc(sy.LOINC, "85354-9", "Blood pressure panel with all children optional", "Huyết áp")
SYSTOLIC = _cc(sy.LOINC, "8480-6", "Systolic blood pressure", "Huyết áp tâm thu")
DIASTOLIC = _cc(sy.LOINC, "8462-4", "Diastolic blood pressure", "Huyết áp tâm trương")
_CODE_CACHE: dict[tuple[str, str, str | None, str | None], dict[str, Any]] = {}


def code_of(system: str, code: str, display: str | None, text: str | None = None) -> dict[str, Any]:
    """A shared CodeableConcept, built once per code."""
    key = (system, code, display, text)
    cc = _CODE_CACHE.get(key)
    if cc is None:
        cc = _CODE_CACHE[key] = _cc(system, code, display, text)
    return cc


def icd_concept(code: str) -> dict[str, Any]:
    """ICD-10 (QĐ 4469) CodeableConcept with the Vietnamese name as display and text."""
    return code_of(sy.ICD10, code, CODES[code].name)


def quantity(value: float, unit: str, ucum: str) -> dict[str, Any]:
    """A UCUM Quantity."""
    return {"value": value, "unit": unit, "system": sy.UCUM, "code": ucum}


@lru_cache(maxsize=256)
def _range(low: float, high: float, unit: str) -> list[dict[str, Any]]:
    """A shared reference range (value and unit only)."""
    return [{"low": {"value": low, "unit": unit}, "high": {"value": high, "unit": unit}}]


@lru_cache(maxsize=1024)
def _dosage(drug: tuple[str, str, str, int], supply: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Shared dosage and dispense parts of a prescription."""
    _, _, how, per_day = drug
    unit = "gói" if "(gói" in drug[1] else "viên"
    ucum = "{packet}" if unit == "gói" else "{tbl}"
    dosage = [{"text": how, "timing": {"repeat": {"frequency": per_day, "period": 1, "periodUnit": "d"}}}]
    dispense = {
        "quantity": quantity(per_day * supply, unit, ucum),
        "expectedSupplyDuration": {"value": supply, "unit": "ngày", "system": sy.UCUM, "code": "d"},
    }
    return dosage, dispense


class Chart:
    """Collects the resources of one person; every id is uuid5(seed, index, kind, counter)."""

    __slots__ = ("n", "net", "out", "person", "prefix", "ref", "rng", "start", "station")

    def __init__(
        self, person: Person, net: Network, rng: random.Random, namespace: bytes, start: int
    ) -> None:
        self.person = person
        self.start = start  # first day of the record's history
        self.net = net
        self.rng = rng
        self.out: list[Resource] = []
        self.n = 0
        self.ref = {"reference": f"Patient/{person.id}"}
        self.station = net.station[person.commune.code]
        # uuid5(seed, index) keeps its first 80 bits (version and variant included); a counter fills the rest.
        self.prefix = uuid5(namespace, f"{person.index}:record")[:24]

    def new_id(self, kind: str) -> str:
        """The next id of this person's record: unique per citizen and seed, the same on every run."""
        self.n += 1
        return f"{self.prefix}{self.n:012x}"

    def doctor(self, fac: Facility) -> str:
        """A doctor (even staff positions) of the facility."""
        return fac.staff[2 * rint(self.rng, (len(fac.staff) + 1) // 2)]

    def nurse(self, fac: Facility) -> str:
        """A nurse or midwife (odd staff positions) of the facility."""
        return fac.staff[1 + 2 * rint(self.rng, len(fac.staff) // 2)]

    # --- encounters and conditions ---------------------------------------------------------------
    def encounter(
        self,
        fac: Facility,
        on: int,
        kind: str,
        text: str,
        *,
        cls: str = "AMB",
        nights: int = 0,
        episode: str | None = None,
        based_on: str | None = None,
        appointment: str | None = None,
        practitioner: str | None = None,
    ) -> tuple[str, int, str]:
        """A finished encounter; returns (id, minute of the day it started, practitioner id)."""
        eid = self.new_id("Encounter")
        minute = 7 * 60 + rint(self.rng, 16 * 60 - 7 * 60)
        prac = practitioner or self.doctor(fac)
        if nights:
            end = stamp(on + nights, (8 * 60 + rint(self.rng, 11 * 60 - 8 * 60)))
        else:
            end = stamp(on, minute + 10 + rint(self.rng, 40))
        enc: Resource = {
            "resourceType": "Encounter",
            "id": eid,
            "status": "finished",
            "class": CLASS[cls],
            "type": [{"text": text}],
            "subject": self.ref,
            "participant": [{"individual": {"reference": f"Practitioner/{prac}"}}],
            "period": {"start": stamp(on, minute), "end": end},
            "serviceProvider": {"reference": f"Organization/{fac.id}"},
        }
        if episode is not None:
            enc["episodeOfCare"] = [{"reference": f"EpisodeOfCare/{episode}"}]
        if based_on is not None:
            enc["basedOn"] = [{"reference": f"ServiceRequest/{based_on}"}]
        if appointment is not None:
            enc["appointment"] = [{"reference": f"Appointment/{appointment}"}]
        self.out.append(enc)
        return eid, minute, prac

    def condition(
        self, code: str, on: int, encounter: str | None, *, chronic: bool = False, until: int | None = None
    ) -> str:
        """A diagnosis (resolved after `until`) or a problem-list condition (active while chronic)."""
        cid = self.new_id("Condition")
        res: Resource = {
            "resourceType": "Condition",
            "id": cid,
            "clinicalStatus": ACTIVE if until is None or until > AS_OF_DAY else RESOLVED,
            "verificationStatus": CONFIRMED,
            "category": PROBLEM if chronic else DIAGNOSIS,
            "code": icd_concept(code),
            "subject": self.ref,
            "onsetDateTime": day(on),
        }
        if encounter is not None:
            res["encounter"] = {"reference": f"Encounter/{encounter}"}
        if until is not None and until <= AS_OF_DAY:
            res["abatementDateTime"] = day(until)
        self.out.append(res)
        return cid

    # --- observations and reports ----------------------------------------------------------------
    def vital(self, code: dict[str, Any], value: dict[str, Any], on: int, minute: int, encounter: str) -> str:
        """A vital-sign observation with a Quantity value."""
        oid = self.new_id("Observation")
        self.out.append(
            {
                "resourceType": "Observation",
                "id": oid,
                "status": "final",
                "category": VITAL,
                "code": code,
                "subject": self.ref,
                "encounter": {"reference": f"Encounter/{encounter}"},
                "effectiveDateTime": stamp(on, minute),
                "valueQuantity": value,
            }
        )
        return oid

    def blood_pressure(self, systolic: int, diastolic: int, on: int, minute: int, encounter: str) -> str:
        """Blood pressure with systolic (8480-6) and diastolic (8462-4) components."""
        oid = self.new_id("Observation")
        self.out.append(
            {
                "resourceType": "Observation",
                "id": oid,
                "status": "final",
                "category": VITAL,
                "code": BP_CODE,
                "subject": self.ref,
                "encounter": {"reference": f"Encounter/{encounter}"},
                "effectiveDateTime": stamp(on, minute),
                "component": [
                    {"code": SYSTOLIC, "valueQuantity": quantity(systolic, "mmHg", "mm[Hg]")},
                    {"code": DIASTOLIC, "valueQuantity": quantity(diastolic, "mmHg", "mm[Hg]")},
                ],
            }
        )
        return oid

    def lab(
        self, test: tuple[str, str, str, str, float, float], value: float, on: int, encounter: str
    ) -> str:
        """A laboratory result; test = (LOINC, Vietnamese name, unit, UCUM code, reference low, high)."""
        loinc, name, unit, ucum, low, high = test
        oid = self.new_id("Observation")
        res: Resource = {
            "resourceType": "Observation",
            "id": oid,
            "status": "final",
            "category": LAB,
            "code": code_of(sy.LOINC, loinc, None, name),
            "subject": self.ref,
            "encounter": {"reference": f"Encounter/{encounter}"},
            "effectiveDateTime": stamp(on, 9 * 60),
            "valueQuantity": quantity(value, unit, ucum),
            "referenceRange": _range(low, high, unit),
        }
        if value > high:
            res["interpretation"] = HIGH
        elif value < low:
            res["interpretation"] = LOW
        self.out.append(res)
        return oid

    def report(self, code: dict[str, Any], results: list[str], on: int, encounter: str, fac: Facility) -> str:
        """A laboratory DiagnosticReport grouping results."""
        rid = self.new_id("DiagnosticReport")
        self.out.append(
            {
                "resourceType": "DiagnosticReport",
                "id": rid,
                "status": "final",
                "category": LAB_SERVICE,
                "code": code,
                "subject": self.ref,
                "encounter": {"reference": f"Encounter/{encounter}"},
                "effectiveDateTime": stamp(on, 9 * 60),
                "issued": stamp(on, 14 * 60),
                "performer": [{"reference": f"Organization/{fac.id}"}],
                "result": [{"reference": f"Observation/{r}"} for r in results],
            }
        )
        return rid

    # --- medication, referral, appointment, episode ----------------------------------------------
    def prescribe(
        self, drug: tuple[str, str, str, int], on: int, supply: int, encounter: str, prac: str
    ) -> str:
        """A prescription: drug = (ATC code, Vietnamese/INN text, dosage text, tablets a day)."""
        atc, text = drug[0], drug[1]
        dosage, dispense = _dosage(drug, supply)
        mid = self.new_id("MedicationRequest")
        self.out.append(
            {
                "resourceType": "MedicationRequest",
                "id": mid,
                "status": "active" if on + supply > AS_OF_DAY else "completed",
                "intent": "order",
                "medicationCodeableConcept": code_of(sy.ATC, atc, None, text),
                "subject": self.ref,
                "encounter": {"reference": f"Encounter/{encounter}"},
                "authoredOn": day(on),
                "requester": {"reference": f"Practitioner/{prac}"},
                "dosageInstruction": dosage,
                "dispenseRequest": dispense,
            }
        )
        return mid

    def referral(self, src: Facility, dst: Facility, on: int, encounter: str, prac: str, reason: str) -> str:
        """A referral (giấy chuyển tuyến) from one facility to a higher level."""
        sid = self.new_id("ServiceRequest")
        self.out.append(
            {
                "resourceType": "ServiceRequest",
                "id": sid,
                "identifier": [{"system": sy.SYNTH_ID, "value": f"CT-{src.code}-{sid[:8]}"}],
                "status": "completed",
                "intent": "order",
                "category": [code_of(sy.SNOMED, "3457005", "Patient referral", "Chuyển tuyến")],
                "code": {"text": f"Chuyển tuyến đến {dst.name}"},
                "subject": self.ref,
                "encounter": {"reference": f"Encounter/{encounter}"},
                "authoredOn": stamp(on, 11 * 60),
                "requester": {"reference": f"Practitioner/{prac}"},
                "performer": [{"reference": f"Organization/{dst.id}"}],
                "reasonReference": [{"reference": f"Condition/{reason}"}],
            }
        )
        return sid

    def appointment(self, fac: Facility, on: int, text: str, based_on: str | None = None) -> str:
        """A follow-up appointment (giấy hẹn khám lại): fulfilled when in the past, booked when ahead."""
        aid = self.new_id("Appointment")
        minute = 7 * 60 + 30 * rint(self.rng, 16)
        res: Resource = {
            "resourceType": "Appointment",
            "id": aid,
            "status": "fulfilled" if on <= AS_OF_DAY else "booked",
            "description": text,
            "start": stamp(on, minute),
            "end": stamp(on, minute + 30),
            "participant": [
                {"actor": self.ref, "status": "accepted"},
                {"actor": {"reference": f"Practitioner/{self.doctor(fac)}"}, "status": "accepted"},
            ],
        }
        if based_on is not None:
            res["basedOn"] = [{"reference": f"ServiceRequest/{based_on}"}]
        self.out.append(res)
        return aid

    def episode(self, text: str, start: int, condition: str) -> str:
        """An episode of chronic care at the commune station."""
        eid = self.new_id("EpisodeOfCare")
        self.out.append(
            {
                "resourceType": "EpisodeOfCare",
                "id": eid,
                "status": "active",
                "type": [{"text": text}],
                "diagnosis": [{"condition": {"reference": f"Condition/{condition}"}}],
                "patient": self.ref,
                "managingOrganization": {"reference": f"Organization/{self.station.id}"},
                "period": {"start": day(start)},
            }
        )
        return eid

    def procedure(self, code: dict[str, Any], on: int, encounter: str, prac: str, reason: str | None) -> str:
        """A completed procedure (delivery, blood donation)."""
        pid = self.new_id("Procedure")
        res: Resource = {
            "resourceType": "Procedure",
            "id": pid,
            "status": "completed",
            "code": code,
            "subject": self.ref,
            "encounter": {"reference": f"Encounter/{encounter}"},
            "performedDateTime": stamp(on, 10 * 60),
            "performer": [{"actor": {"reference": f"Practitioner/{prac}"}}],
        }
        if reason is not None:
            res["reasonCode"] = [icd_concept(reason)]
        self.out.append(res)
        return pid
