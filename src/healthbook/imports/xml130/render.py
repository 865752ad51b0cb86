"""Writing the format: table documents and the GIAMDINHHS wrapper (for the synthetic generator and tests)."""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping, Sequence
from xml.sax.saxutils import escape

from healthbook.imports.xml130 import fields

DECLARATION = b'<?xml version="1.0" encoding="utf-8"?>\n'
Row = Mapping[str, str | None]


def _row(name: str, row: Row, order: list[str], all_fields: bool) -> str:
    names = order + [k for k in row if k not in order]
    parts = []
    for n in names:
        value = row.get(n)
        if value is None or value == "":
            if all_fields and n in order:
                parts.append(f"<{n}/>")
            continue
        parts.append(f"<{n}>{escape(str(value))}</{n}>")
    return f"<{name}>{''.join(parts)}</{name}>"


def table_document(table: str, rows: Sequence[Row], *, all_fields: bool = True) -> bytes:
    """One table as CV 1245 lays it out: root, list element where the table has one, a row element per row."""
    root, row_name = fields.ROOTS[table]
    order = fields.field_names(table)
    if table in fields.SINGLE_ROW:
        body = "".join(_row(root, r, order, all_fields) for r in rows[:1])
        return DECLARATION + body.encode("utf-8")
    inner = "".join(_row(row_name, r, order, all_fields) for r in rows)
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
