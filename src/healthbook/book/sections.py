"""Sorting a patient's resources into the four QĐ 1332 data groups and their subsections."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from healthbook.book.dates import sort_key
from healthbook.book.record import Record, Resource
from healthbook.book.values import observation_kind

Key = tuple[str, str]
MEDICATION_TYPES = (
    "MedicationRequest",
    "MedicationDispense",
    "MedicationStatement",
    "MedicationAdministration",
)
EPISODE_TYPES = (
    "Condition",
    "Observation",
    "DiagnosticReport",
    "Procedure",
    "Immunization",
    *MEDICATION_TYPES,
)
UNLINKED_TYPES = ("Observation", "DiagnosticReport", "Procedure", *MEDICATION_TYPES)
REFERRAL_CODES = frozenset({"3457005", "referral"})  # SNOMED CT "Patient referral"
ACTIVE_CLINICAL = frozenset({"active", "recurrence", "relapse"})
# The key indicators of QĐ 1332 III.3 (blood group, height, weight) and blood pressure, by LOINC code.
INDICATORS: tuple[frozenset[str], ...] = (
    frozenset({"882-1", "883-9", "34530-6"}),  # ABO (and Rh) group
    frozenset({"10331-7"}),  # Rh
    frozenset({"8302-2", "8306-3", "8308-9"}),  # body height
    frozenset({"29463-7", "3141-9"}),  # body weight
    frozenset({"39156-5"}),  # body mass index
    frozenset({"85354-9", "55284-4", "8480-6"}),  # blood pressure
)


@dataclass
class Section:
    """A section of the book: its kind (labels.SECTIONS key), entries and subsections."""

    key: str
    refs: list[Key] = field(default_factory=list)
    children: list[Section] = field(default_factory=list)
    encounter: Key | None = None  # the visit of a care.episode section

    def all_refs(self) -> list[Key]:
        """Entries of this section and of every subsection, in order."""
        out = list(self.refs)
        for child in self.children:
            out += child.all_refs()
        return out


def _key(res: Resource) -> Key:
    return str(res["resourceType"]), str(res["id"])


def live(res: Resource) -> bool:
    """False for what the source withdrew: entered-in-error resources and refuted conditions."""
    if res.get("status") == "entered-in-error":
        return False
    for name in ("verificationStatus", "clinicalStatus"):
        value = res.get(name)
        codes = {c.get("code") for c in (value or {}).get("coding") or [] if isinstance(c, dict)}
        if codes & {"entered-in-error", "refuted"}:
            return False
    return True


def _codes(res: Resource, *names: str) -> set[str]:
    out: set[str] = set()
    for name in names:
        value = res.get(name)
        for cc in value if isinstance(value, list) else [value]:
            for c in (cc or {}).get("coding") or [] if isinstance(cc, dict) else []:
                if isinstance(c, dict) and isinstance(c.get("code"), str):
                    out.add(c["code"])
    return out


def _texts(res: Resource, *names: str) -> str:
    out = []
    for name in names:
        value = res.get(name)
        for cc in value if isinstance(value, list) else [value]:
            if isinstance(cc, dict) and isinstance(cc.get("text"), str):
                out.append(cc["text"].lower())
    return " ".join(out)


class _Sorter:
    """Builds the sections of one record."""

    def __init__(self, record: Record, patient: Resource, today: str) -> None:
        self.record = record
        self.patient = patient
        self.today = today

    def live(self, *types: str) -> list[Resource]:
        return [r for r in self.record.of_type(*types) if live(r)]

    def newest_first(self, items: Iterable[Resource]) -> list[Key]:
        ordered = sorted(items, key=lambda r: (sort_key(self.record.date(r)), _key(r)), reverse=True)
        return [_key(r) for r in ordered]

    # ---- (a) administrative -------------------------------------------------------------------

    def administrative(self) -> Section:
        refs = [_key(self.patient)]
        coverages = sorted(
            self.live("Coverage"),
            key=lambda r: (r.get("status") == "active", sort_key(self.record.date(r)), _key(r)),
            reverse=True,
        )
        refs += [_key(c) for c in coverages]
        for name in ("generalPractitioner", "managingOrganization"):
            value = self.patient.get(name)
            for ref in value if isinstance(value, list) else [value]:
                target = self.record.get(ref)
                if target is not None and target.get("resourceType") == "PractitionerRole":
                    target = self.record.get(target.get("organization"))
                if target is not None and _key(target) not in refs:
                    refs.append(_key(target))
        refs += [_key(r) for r in self.live("RelatedPerson")]
        return Section("administrative", refs)

    # ---- (b) history ---------------------------------------------------------------------------

    def problems(self) -> list[Key]:
        chosen: dict[str, Resource] = {}
        for cond in sorted(
            self.live("Condition"),
            key=lambda r: ("problem-list-item" not in _codes(r, "category"), sort_key(self.record.date(r))),
        ):
            if (
                "problem-list-item" in _codes(cond, "category")
                or _codes(cond, "clinicalStatus") & ACTIVE_CLINICAL
            ):
                code = concept_key(cond)
                chosen.setdefault(code, cond)  # one line per disease: the problem-list entry, else the first
        return self.newest_first(chosen.values()) + self.newest_first(self.live("EpisodeOfCare"))

    def history(self) -> Section:
        return Section(
            "history",
            children=[
                Section("history.problems", self.problems()),
                Section("history.allergies", self.newest_first(self.live("AllergyIntolerance"))),
                Section("history.immunizations", self.newest_first(self.live("Immunization"))),
            ],
        )

    # ---- (c) care episodes ---------------------------------------------------------------------

    def indicators(self) -> list[Key]:
        observations = [o for o in self.live("Observation") if o.get("status") != "cancelled"]
        out = []
        for codes in INDICATORS:
            found = [o for o in observations if _codes(o, "code") & codes]
            if found:
                out.append(self.newest_first(found)[0])
        return out

    def episode(self, enc: Resource, members: list[Resource]) -> Section:
        diagnosis_order: dict[Key, int] = {}
        for n, diag in enumerate(enc.get("diagnosis") or []):
            target = self.record.get((diag or {}).get("condition")) if isinstance(diag, dict) else None
            if target is not None:
                rank = diag.get("rank") if isinstance(diag.get("rank"), int) else 1000 + n
                diagnosis_order[_key(target)] = rank
                if target not in members and live(target):
                    members.append(target)
        reports = [m for m in members if m["resourceType"] == "DiagnosticReport"]
        in_report: dict[Key, Resource] = {}
        for rep in reports:
            for ref in rep.get("result") or []:
                target = self.record.get(ref)
                if target is not None and live(target):
                    in_report[_key(target)] = rep
                    if target not in members:
                        members.append(target)

        def order(res: Resource) -> tuple[int, int, str, Key, bool, Key]:
            report = in_report.get(_key(res))
            anchor = report if report is not None else res
            group = 2 if report is not None else _episode_group(res)
            rank = diagnosis_order.get(_key(res), 999)
            date = sort_key(self.record.date(anchor))
            return (group, rank, date, _key(anchor), report is not None, _key(res))

        ordered = sorted(members, key=order)
        return Section("care.episode", [_key(enc), *(_key(m) for m in ordered)], encounter=_key(enc))

    def care(self) -> Section:
        encounters = {_key(e): e for e in self.live("Encounter")}
        members: dict[Key, list[Resource]] = {k: [] for k in encounters}
        unlinked = []
        for res in self.live(*EPISODE_TYPES):
            enc = self.record.encounter_of(res)
            if enc is not None and _key(enc) in members:
                members[_key(enc)].append(res)
            elif res["resourceType"] in UNLINKED_TYPES:
                unlinked.append(res)
        children = [Section("care.indicators", self.indicators())]
        for key in self.newest_first(encounters.values()):
            children.append(self.episode(encounters[key], members[key]))
        if unlinked:
            children.append(Section("care.unlinked", self.newest_first(unlinked)))
        return Section("care", children=children)

    # ---- (d) record summary --------------------------------------------------------------------

    def prescriptions(self) -> list[Key]:
        requests = [
            r for r in self.live("MedicationRequest") if r.get("status") not in ("cancelled", "draft")
        ]
        latest = max((sort_key(r.get("authoredOn"))[:10] for r in requests), default="")
        chosen = [
            r
            for r in requests
            if r.get("status") in ("active", "on-hold")
            or (latest and sort_key(r.get("authoredOn"))[:10] == latest)
        ]
        return self.newest_first(chosen)

    def appointments(self) -> list[Key]:
        items = self.live("Appointment")
        ahead = [a for a in items if sort_key(self.record.date(a))[:10] >= self.today]
        past = [a for a in items if a not in ahead]
        return list(reversed(self.newest_first(ahead))) + self.newest_first(past)

    def referrals(self) -> list[Key]:
        slips = [
            s
            for s in self.live("ServiceRequest")
            if _codes(s, "category", "code") & REFERRAL_CODES
            or "chuyển tuyến" in _texts(s, "category", "code")
        ]
        keys = {_key(s) for s in slips}
        tasks = []
        for task in self.live("Task"):
            focus = self.record.get(task.get("focus"))
            if (focus is not None and _key(focus) in keys) or _codes(task, "code") & REFERRAL_CODES:
                tasks.append(task)
        return self.newest_first([*slips, *tasks])

    def summary(self) -> Section:
        return Section(
            "summary",
            children=[
                Section(
                    "summary.documents", self.newest_first(self.live("DocumentReference", "Composition"))
                ),
                Section("summary.prescriptions", self.prescriptions()),
                Section("summary.appointments", self.appointments()),
                Section("summary.referrals", self.referrals()),
            ],
        )


def _episode_group(res: Resource) -> int:
    """Order inside a visit: diagnoses, vital signs, results, procedures, medicines, vaccinations."""
    rtype = res["resourceType"]
    if rtype == "Observation" and observation_kind(res) == "vital":
        return 1
    groups = {"Condition": 0, "DiagnosticReport": 2, "Observation": 2, "Procedure": 3, "Immunization": 5}
    return groups.get(rtype, 4)


def concept_key(res: Resource) -> str:
    """What makes two Conditions the same disease: the first code, else the text."""
    code = res.get("code") or {}
    for c in code.get("coding") or []:
        if isinstance(c, dict) and isinstance(c.get("code"), str):
            return f"{c.get('system')}|{c['code']}"
    return str(code.get("text") or res.get("id"))


def book_sections(record: Record, patient: Resource, *, today: str) -> list[Section]:
    """The four groups (a)–(d) of the book; `today` (yyyy-mm-dd) splits appointments ahead from past."""
    sorter = _Sorter(record, patient, today)
    care = sorter.care()
    if not any(c.refs for c in care.children):
        care.children = []
    return [sorter.administrative(), sorter.history(), care, sorter.summary()]
