"""What the web pages ask of the FHIR services: a citizen's book by personal identification number."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from healthbook.auth.subject import Caller
from healthbook.book.dates import show_date, show_time
from healthbook.book.labels import Lang, word
from healthbook.errors import NotFound
from healthbook.fhir.operations.summary import patients_with_identifier, search_resources, summary_document
from healthbook.fhir.router import Services
from healthbook.fhir.timeutil import to_instant
from healthbook.identity.systems import CCCD, FACILITY_CODE

PERSONAL_ID = re.compile(r"[0-9]{12}", re.ASCII)


@dataclass(frozen=True, slots=True)
class FoundBook:
    """A citizen's $summary document, and whether other records carry the same number."""

    document: dict[str, Any]
    patient_id: str
    several: bool


def _replaced(patient: dict[str, Any]) -> bool:
    return any(
        isinstance(link, dict) and link.get("type") == "replaced-by" for link in patient.get("link") or []
    )


def book_by_personal_id(
    services: Services, caller: Caller, personal_id: str, *, base: str
) -> FoundBook | None:
    """The book of the Patient with this CCCD; None for a malformed or unknown number (never which)."""
    if not PERSONAL_ID.fullmatch(personal_id):
        return None
    found = patients_with_identifier(services.search, caller, CCCD, personal_id)
    if not found:
        return None
    survivors = [p for p in found if not _replaced(p)]
    chosen = (survivors or found)[0]
    try:
        document = summary_document(services.fhir, services.search, caller, str(chosen["id"]), base=base)
    except NotFound:
        return None
    return FoundBook(document, str(chosen["id"]), several=len(survivors) > 1)


@dataclass(frozen=True, slots=True)
class BookLink:
    """One health book the caller may open: whose, and where."""

    name: str
    born: str
    href: str


def books_of(services: Services, caller: Caller, prefix: str) -> list[BookLink]:
    """The books (with a personal identification number) this caller may view, at most 50."""
    found = search_resources(services.search, caller, "Patient", [("_count", "50"), ("_sort", "name")])
    out = []
    for patient in found:
        cccd = next(
            (
                i.get("value")
                for i in patient.get("identifier") or []
                if isinstance(i, dict) and i.get("system") == CCCD and i.get("use") != "old"
            ),
            None,
        )
        if not isinstance(cccd, str) or _replaced(patient):
            continue
        names = patient.get("name") or [{}]
        first = names[0] if isinstance(names, list) and names else {}
        text = first.get("text") or " ".join([first.get("family", ""), *first.get("given", [])]).strip()
        out.append(
            BookLink(text or str(patient.get("id")), str(patient.get("birthDate", "")), f"{prefix}/{cccd}")
        )
    return out


@dataclass(frozen=True, slots=True)
class LogLine:
    """One access to a book as its page shows it: when, who (role, facility), what, refused or not."""

    when: str
    role: str
    facility: str
    interaction: str
    what: str
    refused: bool


def _type_words(res_type: str | None, lang: Lang) -> str:
    """What kind of record, in words; the type name itself when the book has no word for it."""
    if not res_type or res_type == "Patient":
        return ""
    key = f"rtype.{res_type}"
    text = word(key, lang)
    return res_type if text == key else text


def access_log(
    services: Services, caller: Caller, patient_id: str, lang: Lang = "vi"
) -> list[LogLine] | None:
    """The latest accesses to a book, for its owner (and guardians); None for anyone else."""
    if services.audit is None:
        return None
    rows = services.audit.recent(caller, patient_id)
    if rows is None:
        return None
    codes = sorted({str(r["agent_facility"]) for r in rows if r["agent_facility"]})
    names = _facility_names(services, caller, codes)
    return [
        LogLine(
            when=_when(int(r["recorded"])),
            role=str(r["agent_role"] or ""),
            facility=names.get(str(r["agent_facility"]), str(r["agent_facility"] or "")),
            interaction=str(r["interaction"]),
            what=_type_words(r["res_type"], lang),
            refused=r["outcome"] != "0",
        )
        for r in rows
    ]


def _when(us: int) -> str:
    instant = to_instant(us)
    return f"{show_date(instant)} {show_time(instant)}"


def _facility_names(services: Services, caller: Caller, codes: list[str]) -> dict[str, str]:
    """Facility code → Organization name, for the codes in the log (shared records: anyone sees them)."""
    if not codes:
        return {}
    wanted = ",".join(f"{FACILITY_CODE}|{c}" for c in codes)
    found = search_resources(
        services.search, caller, "Organization", [("identifier", wanted), ("_count", "100")]
    )
    names: dict[str, str] = {}
    for org in found:
        for ident in org.get("identifier") or []:
            if (
                isinstance(ident, dict)
                and ident.get("system") == FACILITY_CODE
                and isinstance(org.get("name"), str)
            ):
                names.setdefault(str(ident.get("value")), f"{org['name']} ({ident.get('value')})")
    return names
