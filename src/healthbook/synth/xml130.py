"""XML130 output of the synthetic population: each care episode as the QĐ 4750 tables a facility would send.

The episodes are rendered from the FHIR records the generator makes (one citizen at a time, with the
block's mothers and newborns at hand), so the XML and the FHIR output describe the same care. Immunization
(TCMR, paid by the state programme) and blood donation are not BHYT claims and are left out, as in reality.
Codes of drugs, services and result indexes follow the shape of the DMDC lists but are synthetic; so are slip
numbers, record numbers and amounts. Everything is a pure function of the records: the same seed gives the
same bytes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

from healthbook.imports.xml130 import render
from healthbook.synth.facilities import Facility, Network
from healthbook.synth.population import Person
from healthbook.synth.xml130_common import DONATION, NGAYLAP, Episode, Resource, compact, ref_id
from healthbook.synth.xml130_episode import EpisodeBuilder


class Renderer:
    """Turns a block's citizens and records into episodes (what writer.write_xml130 files by facility)."""

    def __init__(self, net: Network) -> None:
        self.net = net
        self.facility: dict[str, Facility] = {f.id: f for f in net.facilities}
        self.staff: dict[
            str, tuple[Facility, str, str]
        ] = {}  # practitioner id -> facility, certificate, name
        for f in net.facilities:
            for n, (pid, (_, _, name)) in enumerate(zip(f.staff, f.staff_people, strict=True)):
                self.staff[pid] = (f, f"{f.code}/CCHN-{n + 1:04d}", name.text)

    def block(self, people: list[tuple[Person, list[Resource]]]) -> list[Episode]:
        """Every episode of the block's citizens, in citizen order."""
        newborns: dict[int, list[tuple[Person, list[Resource]]]] = {}
        for p, record in people:
            if p.mother is not None:
                newborns.setdefault(p.mother.index, []).append((p, record))
        out: list[Episode] = []
        for p, record in people:
            out.extend(Citizen(self, p, record, newborns.get(p.index, [])).episodes())
        return out

    def certificate(self, practitioner: str | None) -> str | None:
        """The practising-certificate number of a practitioner id."""
        found = self.staff.get(practitioner or "")
        return found[1] if found else None

    def head(self, fac: Facility) -> str:
        """MA_TTDV: the social-insurance number of the facility's head (synthetic, 10 digits)."""
        return fac.code[:2] + str(int(hashlib.sha1(fac.code.encode()).hexdigest()[:10], 16) % 10**8).zfill(8)


class Citizen:
    """One citizen's record, indexed by encounter."""

    def __init__(self, r: Renderer, p: Person, record: list[Resource], newborns: list[Any]) -> None:
        self.r, self.p, self.newborns = r, p, newborns
        self.by_enc: dict[str, list[Resource]] = {}
        self.by_id: dict[tuple[str, str], Resource] = {}
        self.encounters: list[Resource] = []
        self.blood: tuple[str, str] | None = None  # (date, group) of the first blood-group result
        for res in record:
            rtype = res["resourceType"]
            self.by_id[(rtype, res["id"])] = res
            if rtype == "Encounter":
                self.encounters.append(res)
            enc = ref_id(res.get("encounter")) if rtype != "Encounter" else ""
            if enc:
                self.by_enc.setdefault(enc, []).append(res)
            if rtype == "Observation" and res["code"]["coding"][0]["code"] == "882-1" and self.blood is None:
                self.blood = (compact(res["effectiveDateTime"]) or "", res["valueCodeableConcept"]["text"])
        self.chronic = [
            (compact(r["onsetDateTime"]) or "", r["code"]["coding"][0]["code"])
            for (rtype, _), r in self.by_id.items()
            if rtype == "Condition" and r["category"][0]["coding"][0]["code"] == "problem-list-item"
        ]
        self.issued: dict[str, list[Resource]] = {}  # encounter -> appointments issued there
        for res in record:
            if res["resourceType"] == "Appointment":
                issuer = self._issuer(res)
                if issuer:
                    self.issued.setdefault(issuer, []).append(res)

    def _issuer(self, appt: Resource) -> str | None:
        """The encounter that gave the appointment: the referral's destination visit, or the last visit there."""
        based = {ref_id(b) for b in appt.get("basedOn", [])}
        doctor = next(
            (ref_id(x["actor"]) for x in appt["participant"] if "Practitioner" in str(x["actor"])), ""
        )
        fac = self.r.staff.get(doctor, (None, "", ""))[0]
        best = None
        for enc in self.encounters:
            if based and based & {ref_id(b) for b in enc.get("basedOn", [])}:
                return str(enc["id"])
            same_place = not based and fac is not None and ref_id(enc.get("serviceProvider")) == fac.id
            if same_place and enc["period"]["start"] <= appt["start"] and enc["type"][0]["text"] != DONATION:
                best = str(enc["id"])
        return best

    def episodes(self) -> Iterator[Episode]:
        for enc in self.encounters:
            if enc["type"][0]["text"] == DONATION:
                continue
            yield EpisodeBuilder(self, enc).build()


def submission(macskcb: str, episodes: list[Episode]) -> bytes:
    """One GIAMDINHHS file of a facility's episodes, in the order given."""
    return render.submission(macskcb, [render.hoso(e.tables) for e in episodes], ngaylap=NGAYLAP)


__all__ = ["Citizen", "Episode", "Renderer", "compact", "submission"]
