"""The health book as a FHIR document Bundle: a Composition with the four groups, then every entry."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from healthbook.book import narrative
from healthbook.book.dates import VIETNAM, show_date
from healthbook.book.labels import EMPTY_REASON, LIST_ORDER, LOINC, SECTIONS, Lang, word
from healthbook.book.person import patient_fields
from healthbook.book.record import Record, Resource
from healthbook.book.sections import Section, book_sections
from healthbook.book.values import human_name, identifier
from healthbook.identity.systems import CCCD

Key = tuple[str, str]
DOCUMENT_TYPE = {"system": LOINC, "code": "60591-5", "display": "Patient summary Document"}
LANGUAGE: Lang = "vi"
# Sections whose entries are purely newest first (the others group by kind or put appointments ahead first).
_BY_DATE = frozenset(
    {
        "history.allergies",
        "history.immunizations",
        "care.unlinked",
        "summary.documents",
        "summary.prescriptions",
        "summary.referrals",
    }
)


def server_device(base: str, version: str) -> Resource:
    """The author of every book: this server, as a Device whose id is fixed by its base URL."""
    device_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{base}#healthbook-server"))
    return {
        "resourceType": "Device",
        "id": device_id,
        "text": {
            "status": "generated",
            "div": f'<div xmlns="{narrative.XHTML}"><p>healthbook {_xml(version)}</p></div>',
        },
        "status": "active",
        "deviceName": [{"name": "healthbook", "type": "user-friendly-name"}],
        "type": {"text": "Máy chủ sổ sức khỏe điện tử (electronic health-book server)"},
        "version": [{"value": version}],
    }


def _xml(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class _Builder:
    """Turns the sections of one record into Composition.section elements."""

    def __init__(self, record: Record, patient: Resource, base: str) -> None:
        self.record = record
        self.patient = patient
        self.base = base

    def url(self, key: Key) -> str:
        return f"{self.base}/{key[0]}/{key[1]}"

    def section(self, sec: Section) -> dict[str, Any]:
        defn = SECTIONS[sec.key]
        encounter = self.record.by_key.get(sec.encounter) if sec.encounter else None
        out: dict[str, Any] = {
            "title": narrative.section_title(sec.key, encounter, self.record, LANGUAGE),
            "code": {"coding": [{"system": defn.system, "code": defn.code, "display": defn.display}]},
        }
        rows = narrative.lines(sec.refs, self.record, LANGUAGE)
        if sec.key == "administrative":
            fields = patient_fields(self.patient, self.record, LANGUAGE)
            div = narrative.administrative_div(fields, rows, LANGUAGE)
        elif sec.children:
            counts = [(self.title(c), len(c.all_refs())) for c in sec.children]
            div = narrative.contents_div(counts, LANGUAGE)
        elif rows:
            div = narrative.entries_div(rows, LANGUAGE)
        else:
            div = narrative.empty_div(LANGUAGE)
        out["text"] = {"status": "generated", "div": div}
        if sec.key in _BY_DATE and sec.refs:
            out["orderedBy"] = {
                "coding": [{"system": LIST_ORDER, "code": "event-date", "display": "Sorted by Event Date"}]
            }
        if sec.refs:
            out["entry"] = [{"reference": self.url(k)} for k in sec.refs if k in self.record.by_key]
        elif not sec.children:
            out["emptyReason"] = {
                "coding": [{"system": EMPTY_REASON, "code": "unavailable", "display": "Unavailable"}],
                "text": word("empty.short", LANGUAGE),
            }
        if sec.children:
            out["section"] = [self.section(c) for c in sec.children]
        return out

    def title(self, sec: Section) -> str:
        encounter = self.record.by_key.get(sec.encounter) if sec.encounter else None
        return narrative.section_title(sec.key, encounter, self.record, LANGUAGE)


def _instant(now: datetime) -> str:
    return now.astimezone(VIETNAM).isoformat(timespec="seconds")


def build_document(
    resources: Iterable[Resource],
    *,
    patient_id: str,
    base: str,
    now: datetime,
    version: str,
    document_id: str | None = None,
) -> dict[str, Any]:
    """The document Bundle of one patient's health book; `resources` is their compartment and what it cites."""
    record = Record(resources)
    patient = record.by_key.get(("Patient", patient_id))
    if patient is None:
        raise ValueError(f"the resources hold no Patient/{patient_id}")
    today = now.astimezone(VIETNAM).date().isoformat()
    sections = book_sections(record, patient, today=today)
    builder = _Builder(record, patient, base)
    device = server_device(base, version)
    device_url = f"urn:uuid:{device['id']}"
    doc_uuid = document_id or str(uuid.uuid4())
    name = human_name(patient.get("name"))
    composition: dict[str, Any] = {
        "resourceType": "Composition",
        "id": doc_uuid,
        "language": LANGUAGE,
        "text": {
            "status": "generated",
            "div": narrative.document_div(
                name, identifier(patient, CCCD), show_date(_instant(now)), LANGUAGE
            ),
        },
        "status": "final",
        "type": {"coding": [DOCUMENT_TYPE], "text": word("book", LANGUAGE)},
        "subject": {"reference": builder.url(("Patient", patient_id)), **({"display": name} if name else {})},
        "date": _instant(now),
        "author": [{"reference": device_url, "display": "healthbook"}],
        "title": word("book", LANGUAGE),
        "confidentiality": "N",
        "section": [builder.section(s) for s in sections],
    }
    cited = list(
        dict.fromkeys(
            k
            for k in [("Patient", patient_id), *(r for s in sections for r in s.all_refs())]
            if k in record.by_key
        )
    )
    keys = cited + [k for k in record.supporting(cited) if k not in cited]
    entries = [
        {"fullUrl": f"urn:uuid:{doc_uuid}", "resource": composition},
        *({"fullUrl": builder.url(k), "resource": record.by_key[k]} for k in keys),
        {"fullUrl": device_url, "resource": device},
    ]
    return {
        "resourceType": "Bundle",
        "id": doc_uuid,
        "language": LANGUAGE,
        "identifier": {"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{doc_uuid}"},
        "type": "document",
        "timestamp": _instant(now),
        "entry": entries,
    }
