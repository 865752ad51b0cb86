"""Writing the format: table documents and the GIAMDINHHS wrapper (for the synthetic generator and tests)."""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping, Sequence
from functools import cache
from xml.sax.saxutils import escape

from healthbook.imports.xml130 import fields

DECLARATION = b'<?xml version="1.0" encoding="utf-8"?>\n'
Row = Mapping[str, str | None]


@cache
def _layout(table: str) -> tuple[tuple[tuple[str, str, str, str], ...], frozenset[str]]:
    """Per field: name, opening tag, closing tag, empty element; and the set of names."""
    names = fields.field_names(table)
    return tuple((n, f"<{n}>", f"</{n}>", f"<{n}/>") for n in names), frozenset(names)


def _text(value: object) -> str:
    text = str(value)
    return escape(text) if ("&" in text or "<" in text or ">" in text) else text


def _row(name: str, row: Row, table: str, all_fields: bool) -> str:
    layout, known = _layout(table)
    parts = [f"<{name}>"]
    for n, opening, closing, empty in layout:
        value = row.get(n)
        if value is None or value == "":
            if all_fields:
                parts.append(empty)
            continue
        text = value if isinstance(value, str) else str(value)
        if "&" in text or "<" in text or ">" in text:
            text = escape(text)
        parts.append(opening + text + closing)
    for n, value in row.items():
        if n not in known and value not in (None, ""):
            parts.append(f"<{n}>{_text(value)}</{n}>")
    parts.append(f"</{name}>")
    return "".join(parts)


def table_document(table: str, rows: Sequence[Row], *, all_fields: bool = True) -> bytes:
    """One table as CV 1245 lays it out: root, list element where the table has one, a row element per row."""
    root, row_name = fields.ROOTS[table]
    if table in fields.SINGLE_ROW:
        body = "".join(_row(root, r, table, all_fields) for r in rows[:1])
        return DECLARATION + body.encode("utf-8")
    inner = "".join(_row(row_name, r, table, all_fields) for r in rows)
    listed = fields.LISTS.get(table)
    if listed:
        inner = f"<{listed}>{inner}</{listed}>"
    return DECLARATION + f"<{root}>{inner}</{root}>".encode()


def hoso(tables: Iterable[tuple[str, bytes]]) -> bytes:
    """One HOSO element: a FILEHOSO per table with the document in base64."""
    files = b"".join(
        b"<FILEHOSO><LOAIHOSO>" + name.encode() + b"</LOAIHOSO><NOIDUNGFILE>"
        + base64.b64encode(doc) + b"</NOIDUNGFILE></FILEHOSO>"
        for name, doc in tables
    )  # fmt: skip
    return b"<HOSO>" + files + b"</HOSO>"


def submission(macskcb: str, episodes: Sequence[bytes], *, ngaylap: str = "") -> bytes:
    """The GIAMDINHHS wrapper (CV 1245 §3.4) around HOSO elements made by hoso()."""
    head = (
        '<GIAMDINHHS xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        'xmlns:xsd="http://www.w3.org/2001/XMLSchema">'
        f"<THONGTINDONVI><MACSKCB>{escape(macskcb)}</MACSKCB></THONGTINDONVI>"
        f"<THONGTINHOSO><NGAYLAP>{escape(ngaylap)}</NGAYLAP><SOLUONGHOSO>{len(episodes)}</SOLUONGHOSO>"
        "<DANHSACHHOSO>"
    ).encode()
    tail = b"</DANHSACHHOSO></THONGTINHOSO><CHUKYDONVI/></GIAMDINHHS>\n"
    return DECLARATION + head + b"\n".join(episodes) + tail
