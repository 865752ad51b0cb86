"""Reading a GIAMDINHHS submission safely: no DTD, no entities, no network, bounded sizes, streamed.

The file is read twice with lxml's iterparse: a first pass checks that it is a well-formed GIAMDINHHS
document within the limits (so that a broken file is refused before anything is written), the second
yields one HOSO (episode) at a time with its FILEHOSO tables decoded from base64 and parsed.
"""

from __future__ import annotations

import base64
import binascii
import io
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from lxml import etree

from healthbook.imports.xml130 import fields
from healthbook.imports.xml130.issues import Problem, error, warning

ROOT = "GIAMDINHHS"
_B64_STRIP = b" \t\r\n"


class SubmissionRefused(Exception):
    """The file as a whole is not accepted: not GIAMDINHHS, over the size limit, malformed or hostile."""

    def __init__(self, message: str, *, code: str = "invalid", line: int | None = None, status: int = 400):
        super().__init__(message)
        self.message = message
        self.code = code
        self.line = line
        self.status = status

    def problem(self) -> Problem:
        """As a file-level problem."""
        return Problem("error", self.code, self.message, line=self.line)


@dataclass(frozen=True, slots=True)
class Limits:
    """Size limits of one submission (bytes)."""

    max_file_bytes: int
    max_table_bytes: int


@dataclass
class TableDoc:
    """One FILEHOSO: its table type and the parsed table document (None when it could not be read)."""

    table: str | None  # normalised LOAIHOSO (XML1 … XML15, CHECKIN), None when unknown
    raw_type: str  # LOAIHOSO as written
    position: int  # FILEHOSO number within the HOSO, from 1
    line: int | None
    content: bytes = b""  # the decoded document
    root: Any = None  # lxml element of the parsed document


@dataclass
class Hoso:
    """One HOSO element: the tables of one episode, and what went wrong reading them."""

    position: int
    line: int | None
    files: list[TableDoc] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


@dataclass
class Header:
    """What the wrapper says about the submission."""

    macskcb: str
    ngaylap: str | None
    declared: int | None  # SOLUONGHOSO
    count: int  # HOSO elements found
    problems: list[Problem] = field(default_factory=list)


def _parser() -> etree.XMLParser:
    # Entities are never expanded and no DTD is loaded; documents with a DOCTYPE are refused anyway.
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )


def _local(tag: Any) -> str:
    if not isinstance(tag, str):
        return ""  # comments, processing instructions, entities
    return tag.rsplit("}", 1)[-1] if tag.startswith("{") else tag


def _has_doctype(elem: Any) -> bool:
    info = elem.getroottree().docinfo
    return bool(info.doctype) or info.internalDTD is not None or info.externalDTD is not None


def _text(elem: Any) -> str:
    """The text of a leaf element (CDATA included), stripped; '' when empty."""
    value = elem.text
    return value.strip() if isinstance(value, str) else ""


def _release(elem: Any) -> None:
    """Free a finished element and its earlier siblings (iterparse keeps them otherwise)."""
    elem.clear()
    parent = elem.getparent()
    if parent is not None:
        while elem.getprevious() is not None:
            del parent[0]


def _child(elem: Any, name: str) -> Any:
    for c in elem:
        if _local(c.tag) == name:
            return c
    return None


class Submission:
    """A GIAMDINHHS file opened for import: check() reads the header, episodes() streams the HOSO."""

    def __init__(self, source: str | os.PathLike[str] | IO[bytes] | bytes, limits: Limits, name: str):
        self.name = name
        self.limits = limits
        if isinstance(source, bytes):
            self._data: bytes | None = source
            self._path: str | os.PathLike[str] | None = None
            self._stream: IO[bytes] | None = None
            size = len(source)
        elif isinstance(source, str | os.PathLike):
            self._data, self._path, self._stream = None, source, None
            size = os.stat(source).st_size
        else:
            self._data, self._path, self._stream = None, None, source
            source.seek(0, io.SEEK_END)
            size = source.tell()
        self.size = size
        if size > limits.max_file_bytes:
            raise SubmissionRefused(
                f"the file has {size} bytes, over the limit of {limits.max_file_bytes} bytes "
                "(HEALTHBOOK_XML130_MAX_BYTES)",
                code="too-costly",
                status=413,
            )
        if size == 0:
            raise SubmissionRefused("the file is empty")

    def _source(self) -> Any:
        if self._data is not None:
            return io.BytesIO(self._data)
        if self._path is not None:
            return os.fspath(self._path)
        assert self._stream is not None
        self._stream.seek(0)
        return self._stream

    def _iter(self, tag: tuple[str, ...] | None = None) -> Iterator[tuple[str, Any]]:
        events = etree.iterparse(
            self._source(),
            events=("start", "end"),
            resolve_entities=False,
            no_network=True,
            load_dtd=False,
            dtd_validation=False,
            huge_tree=False,
            remove_comments=True,
            remove_pis=True,
        )
        first = True
        try:
            for event, elem in events:
                if first:
                    first = False
                    if _has_doctype(elem):
                        raise SubmissionRefused(
                            "the file declares a DOCTYPE: DTDs and entity declarations are not accepted",
                            code="security",
                            line=elem.sourceline,
                        )
                    if _local(elem.tag) != ROOT:
                        raise SubmissionRefused(
                            f"not a GIAMDINHHS submission: the root element is <{_local(elem.tag)[:60]}>, "
                            f"not <{ROOT}> (QĐ 4750 / CV 1245 §3.4)",
                            line=elem.sourceline,
                        )
                yield event, elem
        except etree.XMLSyntaxError as exc:
            line = exc.lineno if isinstance(exc.lineno, int) else None
            msg = str(exc.msg if hasattr(exc, "msg") else exc)
            if "huge" in msg.lower() or "too long" in msg.lower():
                raise SubmissionRefused(
                    f"an element is too large to be read safely ({msg})", code="too-costly", line=line
                ) from None
            if first:
                raise SubmissionRefused(f"not an XML document: {msg}", line=line) from None
            raise SubmissionRefused(f"the file is not well-formed XML: {msg}", line=line) from None

    def check(self) -> Header:
        """First pass: root element, MACSKCB, NGAYLAP, SOLUONGHOSO and the number of HOSO."""
        macskcb: str | None = None
        ngaylap: str | None = None
        declared_raw: str | None = None
        count = 0
        depth = 0
        path: list[str] = []
        problems: list[Problem] = []
        for event, elem in self._iter():
            if event == "start":
                path.append(_local(elem.tag))
                depth += 1
                continue
            name = path.pop()
            depth -= 1
            parent = path[-1] if path else ""
            if name == "MACSKCB" and parent == "THONGTINDONVI":
                macskcb = _text(elem)
            elif name == "NGAYLAP" and parent == "THONGTINHOSO":
                ngaylap = _text(elem) or None
            elif name == "SOLUONGHOSO" and parent == "THONGTINHOSO":
                declared_raw = _text(elem)
            elif name == "HOSO":
                count += 1
                _release(elem)  # keep memory flat: HOSO contents are read in the second pass
        if not macskcb:
            raise SubmissionRefused("THONGTINDONVI/MACSKCB (the facility code) is missing or empty")
        if len(macskcb) != 5:
            problems.append(
                warning("value", "the facility code should have 5 characters", field="MACSKCB", value=macskcb)
            )
        declared = None
        if declared_raw:
            if declared_raw.isdigit():
                declared = int(declared_raw)
                if declared != count:
                    problems.append(
                        warning(
                            "value", f"the file holds {count} HOSO", field="SOLUONGHOSO", value=declared_raw
                        )
                    )
            else:
                problems.append(warning("value", "not a number", field="SOLUONGHOSO", value=declared_raw))
        if count == 0:
            problems.append(warning("required", "the file holds no HOSO (episode)"))
        return Header(macskcb, ngaylap, declared, count, problems)

    def episodes(self) -> Iterator[Hoso]:
        """Second pass: each HOSO with its tables decoded and parsed (problems recorded, never raised)."""
        position = 0
        in_hoso = False
        for event, elem in self._iter():
            name = _local(elem.tag)
            if event == "start":
                if name == "HOSO":
                    in_hoso = True
                continue
            if name == "HOSO" and in_hoso:
                in_hoso = False
                position += 1
                yield self._hoso(elem, position)
                _release(elem)

    def _hoso(self, elem: Any, position: int) -> Hoso:
        hoso = Hoso(position, elem.sourceline)
        n = 0
        for child in elem:
            name = _local(child.tag)
            if name != "FILEHOSO":
                if name:
                    hoso.problems.append(
                        warning(
                            "structure",
                            f"unexpected element <{name[:60]}> in HOSO ignored",
                            line=child.sourceline,
                        )
                    )
                continue
            n += 1
            hoso.files.append(self._file(child, n, hoso.problems))
        if not hoso.files:
            hoso.problems.append(error("required", "the HOSO holds no FILEHOSO", line=hoso.line))
        return hoso

    def _file(self, elem: Any, position: int, problems: list[Problem]) -> TableDoc:
        type_elem = _child(elem, "LOAIHOSO")
        content_elem = _child(elem, "NOIDUNGFILE")
        raw_type = _text(type_elem) if type_elem is not None else ""
        table = fields.normalise_type(raw_type)
        doc = TableDoc(table, raw_type, position, elem.sourceline)
        label = table or raw_type or f"FILEHOSO {position}"
        if type_elem is None or not raw_type:
            problems.append(error("required", f"FILEHOSO {position} has no LOAIHOSO", line=elem.sourceline))
            return doc
        if table is None:
            problems.append(
                error(
                    "not-supported",
                    "unknown table type (LOAIHOSO must be XML1 … XML15 or the check-in table)",
                    field="LOAIHOSO",
                    value=raw_type,
                    line=elem.sourceline,
                )
            )
            return doc
        if content_elem is None:
            problems.append(error("required", "NOIDUNGFILE is missing", table=label, line=elem.sourceline))
            return doc
        inner = [c for c in content_elem if _local(c.tag)]
        if inner:
            # Some senders embed the table document itself instead of its base64 text.
            problems.append(
                warning("structure", "NOIDUNGFILE holds XML elements instead of base64 text; read as is",
                        table=label, line=content_elem.sourceline)
            )  # fmt: skip
            doc.content = etree.tostring(inner[0], encoding="utf-8")
        else:
            decoded = self._decode(content_elem, label, problems)
            if decoded is None:
                return doc
            doc.content = decoded
        doc.root = self._parse_table(doc.content, label, content_elem.sourceline, problems)
        return doc

    def _decode(self, elem: Any, label: str, problems: list[Problem]) -> bytes | None:
        text = elem.text if isinstance(elem.text, str) else ""
        raw = text.encode("ascii", errors="replace").translate(None, _B64_STRIP)
        line = elem.sourceline
        if not raw:
            problems.append(error("required", "NOIDUNGFILE is empty", table=label, line=line))
            return None
        limit = self.limits.max_table_bytes
        if len(raw) * 3 // 4 > limit:
            problems.append(
                error("too-costly", f"the table is over the limit of {limit} bytes", table=label, line=line)
            )
            return None
        if len(raw) % 4:
            if len(raw) % 4 == 1:
                problems.append(
                    error("value", "NOIDUNGFILE is not valid base64 (its length is not possible)", table=label,
                          value=raw[-8:].decode("ascii", "replace"), line=line)
                )  # fmt: skip
                return None
            raw += b"=" * (-len(raw) % 4)
            problems.append(
                warning(
                    "value",
                    "NOIDUNGFILE lacks its base64 padding ('='); decoded anyway",
                    table=label,
                    line=line,
                )
            )
        try:
            return base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError) as exc:
            bad = next((chr(b) for b in raw if chr(b) not in _B64_ALPHABET), None)
            detail = f"character {bad!r} is not base64" if bad else str(exc)
            problems.append(
                error("value", f"NOIDUNGFILE is not valid base64: {detail}", table=label, line=line)
            )
            return None

    def _parse_table(self, content: bytes, label: str, line: int | None, problems: list[Problem]) -> Any:
        try:
            root = etree.fromstring(content, _parser())
        except etree.XMLSyntaxError as exc:
            where = f" (line {exc.lineno} of the decoded document)" if isinstance(exc.lineno, int) else ""
            problems.append(
                error("structure", f"the decoded table is not well-formed XML: {exc.msg}{where}", table=label,
                      line=line)
            )  # fmt: skip
            return None
        if _has_doctype(root):
            problems.append(
                error("security", "the decoded table declares a DOCTYPE: DTDs and entities are not accepted",
                      table=label, line=line)
            )  # fmt: skip
            return None
        if next(root.iter(etree.Entity), None) is not None:
            problems.append(
                error("security", "the decoded table uses an entity reference", table=label, line=line)
            )
            return None
        return root


_B64_ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=")
