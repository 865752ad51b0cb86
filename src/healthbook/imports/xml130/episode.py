"""A HOSO as an episode: its XML1 summary row and the rows of its other tables, checked across tables."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from healthbook.imports.xml130 import fields
from healthbook.imports.xml130.issues import Problem, error, warning
from healthbook.imports.xml130.source import Hoso, TableDoc
from healthbook.imports.xml130.tables import Row, read_table

# Bump when the mapping changes: unchanged episodes are skipped by their digest, which includes it.
MAPPING_VERSION = "1"


@dataclass
class Episode:
    """One care episode of a facility (MACSKCB + MA_LK), ready for the mappers."""

    facility: str  # MA_CSKCB of XML1, else the wrapper's MACSKCB
    ma_lk: str
    position: int
    line: int | None
    summary: Row  # the XML1 row
    rows: dict[str, list[Row]] = field(default_factory=dict)  # XML2 … XML14 rows by table
    kept: list[TableDoc] = field(default_factory=list)  # tables stored as DocumentReference
    digest: str = ""

    def table(self, name: str) -> list[Row]:
        """The rows of a table (empty when it was not sent)."""
        return self.rows.get(name, [])


def _ma_lk_of(hoso: Hoso) -> str | None:
    """The MA_LK of any table of the HOSO, for reporting an episode that has no readable XML1."""
    for doc in hoso.files:
        if doc.root is None:
            continue
        for elem in doc.root.iter("MA_LK", "{*}MA_LK"):
            if isinstance(elem.text, str) and elem.text.strip():
                return elem.text.strip()
    return None


def assemble(hoso: Hoso, macskcb: str) -> tuple[Episode | None, str | None, list[Problem]]:
    """(episode or None when it has errors, its MA_LK if known, the problems found)."""
    problems = list(hoso.problems)
    summaries = [d for d in hoso.files if d.table == "XML1"]
    ma_lk = _ma_lk_of(hoso)
    if not summaries:
        what = f"MA_LK '{ma_lk}'" if ma_lk else "the HOSO"
        problems.append(error("required", f"{what} has no XML1 (summary table): every episode needs one",
                              table="XML1", line=hoso.line))  # fmt: skip
        return None, ma_lk, problems
    if len(summaries) > 1:
        problems.append(error("structure", "the HOSO holds several XML1 tables; one HOSO is one episode",
                              table="XML1", line=summaries[1].line))  # fmt: skip
    summary_doc = summaries[0]
    if summary_doc.root is None:
        return None, ma_lk, problems
    xml1 = read_table("XML1", summary_doc.root)
    problems.extend(_at_line(xml1.problems, summary_doc))
    if len(xml1.rows) != 1:
        if len(xml1.rows) > 1:
            problems.append(error("structure", f"XML1 holds {len(xml1.rows)} rows; it must hold one",
                                  table="XML1", line=summary_doc.line))  # fmt: skip
        return None, ma_lk, problems
    row = xml1.rows[0]
    ma_lk = row.get("MA_LK") or ma_lk
    if ma_lk is None:
        return None, None, problems
    facility = row.get("MA_CSKCB") or macskcb
    if row.get("MA_CSKCB") and row.get("MA_CSKCB") != macskcb:
        problems.append(warning("value", f"differs from the file's MACSKCB '{macskcb}'; the episode is "
                                "filed under its own MA_CSKCB", table="XML1", row=1, field="MA_CSKCB",
                                value=row.get("MA_CSKCB"), line=summary_doc.line))  # fmt: skip
    episode = Episode(facility, ma_lk, hoso.position, hoso.line, row)
    digest = hashlib.sha256(f"{MAPPING_VERSION}\x00{facility}\x00{ma_lk}".encode())
    for doc in hoso.files:
        digest.update(f"\x00{doc.table}\x00".encode())
        digest.update(doc.content)
        if doc is summary_doc or doc.root is None or doc.table is None or doc.table == "XML1":
            continue
        table = read_table(doc.table, doc.root, ma_lk)
        problems.extend(_at_line(table.problems, doc))
        if doc.table in fields.MAPPED:
            rows = episode.rows.setdefault(doc.table, [])
            for r in table.rows:
                r.number = len(rows) + 1
                rows.append(r)
        else:
            if doc.table == "XML12":
                problems.append(warning("not-supported", "XML12 is typed on the BHXH portal, not sent in "
                                        "files; kept as a document", table="XML12", line=doc.line))  # fmt: skip
            episode.kept.append(doc)
    episode.digest = digest.hexdigest()
    problems.extend(_cross_checks(episode))
    if any(p.is_error for p in problems):
        return None, ma_lk, problems
    return episode, ma_lk, problems


def _at_line(problems: list[Problem], doc: TableDoc) -> list[Problem]:
    """Attach the FILEHOSO's line in the submitted file to problems found inside its table."""
    return [
        p
        if p.line is not None
        else Problem(p.severity, p.code, p.message, p.table, p.row, p.field, p.value, doc.line)
        for p in problems
    ]


def _cross_checks(ep: Episode) -> list[Problem]:
    out: list[Problem] = []
    s = ep.summary
    start, end, birth = s.get("NGAY_VAO"), s.get("NGAY_RA"), s.get("NGAY_SINH")
    if start and end and end < start:
        out.append(
            error("value", f"is before NGAY_VAO ({start})", table="XML1", row=1, field="NGAY_RA", value=end)
        )
    if start and birth:
        day = birth[:8]
        later = day[:4] > start[:4] if day[4:8] == "0000" else day > start[:8]
        if later:
            out.append(error("value", f"is after NGAY_VAO ({start}): an impossible birth date", table="XML1",
                             row=1, field="NGAY_SINH", value=birth))  # fmt: skip
    cards = [c for c in (s.get("MA_THE_BHYT") or "").split(";") if c.strip()]
    for name in ("GT_THE_TU", "GT_THE_DEN"):
        dates = [d for d in (s.get(name) or "").split(";") if d.strip()]
        if cards and dates and len(dates) != len(cards):
            out.append(warning("value", f"lists {len(dates)} dates for {len(cards)} cards in MA_THE_BHYT",
                               table="XML1", row=1, field=name, value=s.get(name)))  # fmt: skip
    for rows in ep.rows.values():
        for r in rows:
            for name in ("NGAY_YL", "NGAY_TH_YL", "NGAY_KQ", "THOI_DIEM_DBLS"):
                v = r.get(name)
                if v and start and v[:8] < start[:8] and r.table != "XML4":
                    out.append(warning("value", f"is before NGAY_VAO ({start})", table=r.table, row=r.number,
                                       field=name, value=v))  # fmt: skip
    return out
