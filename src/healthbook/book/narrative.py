"""Section titles and XHTML narratives (FHIR narrative rules: one xhtml div, every value escaped)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from xml.etree.ElementTree import Element, SubElement, tostring

from healthbook.book.dates import show_date
from healthbook.book.describe import Line, describe
from healthbook.book.labels import SECTIONS, Lang, word
from healthbook.book.record import Record, Resource
from healthbook.book.values import first_concept

XHTML = "http://www.w3.org/1999/xhtml"
Key = tuple[str, str]


def section_title(key: str, encounter: Resource | None, record: Record, lang: Lang) -> str:
    """The heading of a section; a visit's heading is its date, facility and kind of visit."""
    if key == "care.episode" and encounter is not None:
        date = show_date(record.date(encounter))
        facility = record.facility(encounter) or word("unknown.facility", lang)
        kind = first_concept(encounter.get("type")) or word("k.Encounter", lang)
        return " · ".join(p for p in (date, facility, kind) if p)
    return SECTIONS[key].title(lang)


def lines(keys: Iterable[Key], record: Record, lang: Lang) -> list[Line]:
    """The book lines of the entries the record holds, in entry order."""
    out = []
    for key in keys:
        res = record.by_key.get(key)
        if res is not None:
            out.append(describe(res, record, lang))
    return out


def _root() -> Element:
    div = Element("div")
    div.set("xmlns", XHTML)
    return div


def _text(parent: Element, tag: str, text: str) -> Element:
    """A child element holding text; ElementTree escapes &, < and > (and quotes in attributes)."""
    child = SubElement(parent, tag)
    child.text = text
    return child


def _serialise(div: Element) -> str:
    return tostring(div, encoding="unicode", short_empty_elements=False)


def _table(parent: Element, rows: Sequence[Line], lang: Lang) -> None:
    table = SubElement(parent, "table")
    head = SubElement(SubElement(table, "thead"), "tr")
    for col in ("col.what", "col.detail", "col.facility", "col.date"):
        _text(head, "th", word(col, lang))
    body = SubElement(table, "tbody")
    for line in rows:
        tr = SubElement(body, "tr")
        what = SubElement(tr, "td")
        _text(what, "b", line.kind)
        _text(what, "span", f": {line.text}")
        for value in (line.detail, line.facility, line.date):
            _text(tr, "td", value or "—")


def entries_div(rows: Sequence[Line], lang: Lang) -> str:
    """Narrative of a section with entries: one table row per entry, with facility and date."""
    div = _root()
    _table(div, rows, lang)
    return _serialise(div)


def empty_div(lang: Lang) -> str:
    """Narrative of a section that has no entries."""
    div = _root()
    _text(div, "p", word("empty", lang))
    return _serialise(div)


def administrative_div(fields: Sequence[tuple[str, str]], rows: Sequence[Line], lang: Lang) -> str:
    """Narrative of group (a): the citizen's fields, then the entries (card, facility, relatives)."""
    div = _root()
    table = SubElement(div, "table")
    body = SubElement(table, "tbody")
    for label, value in fields:
        tr = SubElement(body, "tr")
        _text(tr, "th", label)
        _text(tr, "td", value)
    _table(div, rows, lang)
    return _serialise(div)


def contents_div(children: Sequence[tuple[str, int]], lang: Lang) -> str:
    """Narrative of a group made of subsections: their titles and how many entries each holds."""
    div = _root()
    ul = SubElement(div, "ul")
    for title, count in children:
        _text(
            ul,
            "li",
            f"{title}: {count} {word('items', lang)}" if count else f"{title}: {word('empty.short', lang)}",
        )
    return _serialise(div)


def document_div(name: str, cccd: str, date: str, lang: Lang) -> str:
    """Narrative of the Composition itself: whose book it is and when it was made."""
    div = _root()
    _text(
        div, "p", " · ".join(p for p in (word("book", lang), name, f"CCCD {cccd}" if cccd else "", date) if p)
    )
    return _serialise(div)
