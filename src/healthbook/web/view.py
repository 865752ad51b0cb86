"""The health-book page's content, read from the $summary document so that page and document agree."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from healthbook.book import narrative
from healthbook.book.dates import show_date, show_time
from healthbook.book.describe import Line, describe
from healthbook.book.labels import BY_CODE, Lang, word
from healthbook.book.person import patient_fields
from healthbook.book.record import Record, Resource, split_ref
from healthbook.book.values import human_name, identifier
from healthbook.identity.systems import CCCD
from healthbook.synth.systems import SYNTH_TAG

SYNTHETIC_TAG = (SYNTH_TAG["system"], SYNTH_TAG["code"])


@dataclass
class SectionView:
    """One section of the page: a heading, its lines (or fields) and subsections."""

    anchor: str
    key: str
    title: str
    rows: list[Line] = field(default_factory=list)
    fields: list[tuple[str, str]] = field(default_factory=list)
    children: list[SectionView] = field(default_factory=list)
    empty: bool = False


@dataclass
class BookView:
    """Everything the page template shows, in one language."""

    lang: Lang
    name: str
    cccd: str
    birth: str
    gender: str
    made: str
    document_id: str
    fhir_url: str
    synthetic: bool
    several: bool
    sections: list[SectionView]


class _Reader:
    """Walks the Composition of a document Bundle and resolves its entries."""

    def __init__(self, document: dict[str, Any], lang: Lang) -> None:
        entries = [e for e in document.get("entry") or [] if isinstance(e, dict)]
        self.by_url: dict[str, Resource] = {str(e.get("fullUrl")): e["resource"] for e in entries}
        self.record = Record(e["resource"] for e in entries[1:])
        self.composition: Resource = entries[0]["resource"]
        self.lang = lang

    def resolve(self, ref: Any) -> Resource | None:
        value = ref.get("reference") if isinstance(ref, dict) else None
        if not isinstance(value, str):
            return None
        found = self.by_url.get(value)
        if found is None:
            key = split_ref(value)
            found = self.record.by_key.get(key) if key is not None else None
        return found

    def section(self, sec: dict[str, Any], anchor: str, patient: Resource) -> SectionView:
        coding = ((sec.get("code") or {}).get("coding") or [{}])[0]
        defn = BY_CODE.get((str(coding.get("system")), str(coding.get("code"))))
        key = defn.key if defn is not None else "other"
        targets = [t for t in (self.resolve(e) for e in sec.get("entry") or []) if t is not None]
        encounter = targets[0] if key == "care.episode" and targets else None
        title = (
            narrative.section_title(key, encounter, self.record, self.lang) if defn else str(sec.get("title"))
        )
        view = SectionView(anchor, key, title, rows=[describe(t, self.record, self.lang) for t in targets])
        if key == "administrative":
            view.fields = patient_fields(patient, self.record, self.lang)
        view.children = [
            self.section(child, f"{anchor}-{n}", patient)
            for n, child in enumerate(sec.get("section") or [], 1)
        ]
        view.empty = "emptyReason" in sec
        return view


def book_view(document: dict[str, Any], lang: Lang, *, fhir_url: str, several: bool = False) -> BookView:
    """The page of a $summary document in one language."""
    reader = _Reader(document, lang)
    comp = reader.composition
    patient = reader.resolve(comp.get("subject")) or {}
    tags = {(t.get("system"), t.get("code")) for t in (patient.get("meta") or {}).get("tag") or []}
    gender = patient.get("gender")
    made = comp.get("date") if isinstance(comp.get("date"), str) else None
    return BookView(
        lang=lang,
        name=human_name(patient.get("name")),
        cccd=identifier(patient, CCCD),
        birth=show_date(patient.get("birthDate")),
        gender=word(f"g.{gender}", lang) if isinstance(gender, str) else "",
        made=f"{show_date(made)} {show_time(made)}".strip(),
        document_id=str((document.get("identifier") or {}).get("value", "")),
        fhir_url=fhir_url,
        synthetic=SYNTHETIC_TAG in tags,
        several=several,
        sections=[reader.section(s, f"s{n}", patient) for n, s in enumerate(comp.get("section") or [], 1)],
    )
