"""Episode -> FHIR R4 resources. One module per group of tables; map_episode runs them in order."""

from __future__ import annotations

from dataclasses import dataclass, field

from healthbook.imports.xml130.episode import Episode
from healthbook.imports.xml130.mappers import birth, documents, medication, referral, services, summary
from healthbook.imports.xml130.mappers.common import Context, Refs, practitioner_codes
from healthbook.imports.xml130.patients import Person

MAX_PARTICIPANTS = 10


@dataclass
class Needs:
    """Shared resources an episode refers to, to be found (or created) before it is mapped."""

    patient: Person
    children: dict[int, Person] = field(default_factory=dict)  # XML9 row -> newborn
    facilities: list[str] = field(default_factory=list)  # 5-character facility codes
    staff: dict[str, str | None] = field(default_factory=dict)  # practising certificate -> name if known


_FACILITY_FIELDS = {
    "XML1": ("MA_CSKCB", "MA_NOI_DI", "MA_NOI_DEN"),
    "XML13": ("MA_CSKCB", "MA_NOI_DI", "MA_NOI_DEN"),
    "XML14": ("MA_CSKCB",),
}
_STAFF_FIELDS = {
    "XML2": ("MA_BAC_SI",),
    "XML3": ("MA_BAC_SI", "NGUOI_THUC_HIEN"),
    "XML4": ("MA_BS_DOC_KQ",),
    "XML5": ("NGUOI_THUC_HIEN",),
    "XML7": ("MA_BS",),
    "XML13": ("MA_BAC_SI",),
    "XML14": ("MA_BAC_SI",),
}


def needs(ep: Episode, patient: Person) -> Needs:
    """Everything shared that the episode's resources will reference."""
    out = Needs(patient)
    codes = [ep.facility]
    for table, names in _FACILITY_FIELDS.items():
        rows = [ep.summary] if table == "XML1" else ep.table(table)
        for row in rows:
            codes.extend(row.values[n] for n in names if row.get(n))
    registered = (ep.summary.get("MA_DKBD") or "").split(";")[0].strip()
    if registered:
        codes.append(registered)
    out.facilities = list(dict.fromkeys(codes))
    for table, names in _STAFF_FIELDS.items():
        for row in ep.table(table):
            for n in names:
                for code in practitioner_codes(row.get(n)):
                    if out.staff.get(code) is None:
                        out.staff[code] = row.get("TEN_BS") if table == "XML7" else None
    for row in ep.table("XML9"):
        out.children[row.number] = birth.newborn(ep, row)
    return out


def map_episode(ep: Episode, refs: Refs) -> Context:
    """Every resource of the episode (shared ones excluded) with the warnings found while mapping."""
    ctx = Context(ep, refs)
    diagnosis = summary.diagnoses(ctx)
    people = medication.drugs(ctx) + services.services(ctx)
    services.results(ctx)
    documents.notes(ctx)
    documents.discharge_papers(ctx)
    documents.record_summaries(ctx)
    birth.births(ctx)
    referral.referrals(ctx)
    booked = referral.appointments(ctx)
    summary.revisit_dates(ctx, booked)
    summary.measurements(ctx)
    documents.kept_tables(ctx)
    participants = list(dict.fromkeys(p["reference"] for p in people))[:MAX_PARTICIPANTS]
    summary.encounter(ctx, diagnosis, [{"reference": r} for r in participants])
    return ctx


__all__ = ["Context", "Needs", "Refs", "map_episode", "needs"]
