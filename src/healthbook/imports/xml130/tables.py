"""Rows of a decoded table, each value checked against the field table: type, size, format, codes."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from healthbook.imports.xml130 import fields
from healthbook.imports.xml130.issues import Problem, error, warning

_NUMBER = re.compile(r"^[+-]?(\d*)(?:\.(\d+))?$")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SEPARATORS = re.compile(r"[;,]|\s")
ICD10 = re.compile(r"^[A-Z]\d\d(?:\.\d{1,2})?[†*+]?$|^[A-Z]\d{2,4}[†*+]?$")

# Fields that hold exactly one code: a list there is an error ("several codes in a single-code field").
SINGLE_CODES = frozenset(
    {
        "MA_BENH_CHINH", "MA_CSKCB", "MA_NOI_DI", "MA_NOI_DEN", "MA_LOAI_KCB", "MA_DOITUONG_KCB",
        "SO_CCCD", "GIOI_TINH", "GIOI_TINH_CON", "KET_QUA_DTRI", "MA_LOAI_RV", "MA_LYDO_CT", "MA_KHUVUC",
        "MA_QUOCTICH", "MA_DANTOC", "MA_THE_TAM", "MA_CHI_SO", "MA_VAT_TU", "SO_CCCD_NND",
        "MA_THE_NND", "MA_BHXH_NND", "MA_DANTOC_NND",
    }
)  # fmt: skip
# MA_DICH_VU is one code in XML3 and XML4 but a ';' list in XML2 (4750 correction).
SINGLE_CODE_TABLES = {"MA_DICH_VU": ("XML3", "XML4"), "MA_THUOC": ("XML2",)}

# Allowed codes of coded fields (vn-standards §6.7, §6.8).
CODES: dict[str, frozenset[str]] = {
    "GIOI_TINH": frozenset("123"),
    "GIOI_TINH_CON": frozenset("123"),
    "KET_QUA_DTRI": frozenset("12345678"),
    "MA_LOAI_RV": frozenset("12345"),
    "MA_LYDO_CT": frozenset("123"),
    "MA_KHUVUC": frozenset({"K1", "K2", "K3"}),
    "MA_DINH_CHI_THAI": frozenset("01"),
    "SINHCON_PHAUTHUAT": frozenset("01"),
    "SINHCON_DUOI32TUAN": frozenset("01"),
    "MA_LOAI_KCB": frozenset(f"{n:02d}" for n in range(1, 17)),  # 01-09 (QĐ 824), 10-16 (QĐ 1804/2026)
}
# Required fields by table (what the mapping needs); a tuple means "at least one of".
REQUIRED: dict[str, list[str | tuple[str, ...]]] = {
    "XML1": ["MA_LK", "HO_TEN", "NGAY_SINH", "GIOI_TINH", "NGAY_VAO", "MA_LOAI_KCB", "MA_BENH_CHINH"],
    "XML2": ["MA_LK", ("MA_THUOC", "TEN_THUOC")],
    "XML3": ["MA_LK", ("MA_DICH_VU", "MA_VAT_TU", "TEN_DICH_VU", "TEN_VAT_TU")],
    "XML4": ["MA_LK", ("MA_CHI_SO", "TEN_CHI_SO", "MA_DICH_VU")],
    "XML5": ["MA_LK", ("DIEN_BIEN_LS", "GIAI_DOAN_BENH", "HOI_CHAN", "PHAU_THUAT")],
    "XML7": ["MA_LK"],
    "XML8": ["MA_LK"],
    "XML9": ["MA_LK", ("HO_TEN_CON", "NGAY_SINH_CON")],
    "XML13": ["MA_LK", "MA_NOI_DEN"],
    "XML14": ["MA_LK", "NGAY_HEN_KL"],
}


@dataclass
class Row:
    """One row of a table: its non-empty values, normalised, by element name."""

    table: str
    number: int  # from 1, in document order
    values: dict[str, str]
    line: int | None = None  # line in the decoded document

    def get(self, name: str) -> str | None:
        """The value, or None when absent or empty."""
        return self.values.get(name)


@dataclass
class Table:
    """A decoded table: its rows and the problems found in them."""

    name: str
    rows: list[Row] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def _local(tag: Any) -> str:
    if not isinstance(tag, str):
        return ""
    return tag.rsplit("}", 1)[-1] if tag.startswith("{") else tag


def valid_date(text: str) -> dt.date | None:
    """yyyymmdd as a real calendar date (years 1900-2199), else None."""
    if len(text) != 8 or not text.isdigit():
        return None
    year, month, day = int(text[:4]), int(text[4:6]), int(text[6:])
    if not 1900 <= year <= 2199:
        return None
    try:
        return dt.date(year, month, day)
    except ValueError:
        return None


def valid_time(text: str) -> bool:
    """HHMM within a day."""
    return len(text) == 4 and text.isdigit() and int(text[:2]) < 24 and int(text[2:]) < 60


def _check_date(value: str) -> str | None:
    if len(value) != 8 or not value.isdigit():
        return "must be a date of 8 digits (yyyymmdd)"
    return None if valid_date(value) else "is not a possible date (yyyymmdd)"


def _check_datetime(value: str) -> str | None:
    if len(value) != 12 or not value.isdigit():
        return "must be a date-time of 12 digits (yyyymmddHHMM)"
    if valid_date(value[:8]) is None:
        return "is not a possible date (yyyymmddHHMM)"
    return None if valid_time(value[8:]) else "is not a possible time of day (yyyymmddHHMM)"


def _check_birth(value: str) -> str | None:
    """12 digits; 0000 for an unknown month and day, or for an unknown hour and minute (§6.7)."""
    if not value.isdigit() or len(value) not in (8, 12):
        return "must be a birth date of 12 digits (yyyymmddHHMM)"
    year, monthday = value[:4], value[4:8]
    if monthday == "0000" or (monthday[2:] == "00" and "01" <= monthday[:2] <= "12"):
        if not 1900 <= int(year) <= 2199:
            return "is not a possible year"
    elif valid_date(value[:8]) is None:
        return "is not a possible date (yyyymmddHHMM; 0000 for an unknown month and day)"
    if len(value) == 12 and not valid_time(value[8:]):
        return "is not a possible time of day (yyyymmddHHMM; 0000 when unknown)"
    return None


def _check_value(f: fields.Field, value: str) -> list[tuple[str, str, str]]:
    """(severity, code, message) for one value of a field."""
    out: list[tuple[str, str, str]] = []
    kind = f.kind
    if kind == "number":
        m = _NUMBER.match(value)
        if m is None or not (m.group(1) or m.group(2)):
            hint = " ('.' is the decimal separator)" if re.match(r"^[+-]?\d+,\d+$", value) else ""
            out.append(("error", "value", f"is not a number{hint}"))
        elif f.max_len is not None and len(m.group(1)) + len(m.group(2) or "") > f.max_len:
            out.append(("error", "too-long", f"has more than {f.max_len} digits"))
        return out
    problem: str | None = None
    if kind == "date":
        problem = _check_date(value)
    elif kind == "datetime":
        problem = _check_datetime(value)
    elif kind == "birth":
        problem = _check_birth(value)
        if problem is None and len(value) == 8:
            out.append(
                ("warning", "value", "has 8 digits; QĐ 130/4750 write 12 (yyyymmddHHMM); read as a date")
            )
    elif kind == "date_or_datetime":
        problem = _check_date(value) if len(value) == 8 else _check_datetime(value)
        if len(value) not in (8, 12):
            problem = "must have 12 digits (yyyymmddHHMM, QĐ 4750) or 8 (yyyymmdd, QĐ 3176)"
    elif kind == "date_list":
        for part in value.split(";"):
            part = part.strip()
            if part and _check_date(part) is not None:
                problem = f"holds {part[:20]!r}, which {_check_date(part)}"
                break
    if problem is not None:
        out.append(("error", "value", problem))
    if f.max_len is not None and len(value) > f.max_len:
        out.append(("error", "too-long", f"is longer than {f.max_len} characters"))
    return out


_FIXES: dict[str, Callable[[str], str | None]] = {}


def _pad(width: int) -> Callable[[str], str | None]:
    def fix(value: str) -> str | None:
        return value.zfill(width) if value.isdigit() and len(value) < width else None

    return fix


# QĐ 130 typed these as numbers, so 130-era files may have lost their leading zeros (§6.7).
_FIXES.update(
    {"MA_LOAI_KCB": _pad(2), "MA_DANTOC": _pad(2), "MA_DANTOC_NND": _pad(2), "MA_QUOCTICH": _pad(3),
     "MA_NGHE_NGHIEP": _pad(5)}
)  # fmt: skip


def _normalise(f: fields.Field, value: str, problems: list[Problem], where: dict[str, Any]) -> str:
    fix = _FIXES.get(f.name)
    if fix is not None:
        fixed = fix(value)
        if fixed is not None and fixed != value:
            problems.append(
                warning("value", f"read as '{fixed}' (leading zeros lost, as when QĐ 130 typed it a number)",
                        **where)
            )  # fmt: skip
            return fixed
    return value


@dataclass(frozen=True, slots=True)
class _Plan:
    """What to check for one field, worked out once: most values only need a length check."""

    field: fields.Field
    typed: bool  # not a plain string: _check_value applies
    coded: bool  # single-code, code-list or ICD-10 rules apply
    fix: Callable[[str], str | None] | None


@cache
def _plans(table: str) -> dict[str, _Plan]:
    out = {}
    for name, f in fields.spec(table).fields.items():
        coded = (
            name in SINGLE_CODES
            or table in SINGLE_CODE_TABLES.get(name, ())
            or name in CODES
            or name in ("MA_BENH_CHINH", "MA_BENH_KT")
        )
        out[name] = _Plan(f, f.kind != "string", coded, _FIXES.get(name))
    return out


def _tag(elem: Any) -> str:
    tag = elem.tag
    if type(tag) is not str:
        return ""
    return tag.rsplit("}", 1)[-1] if tag[:1] == "{" else tag


def read_table(name: str, root: Any, ma_lk: str | None = None) -> Table:
    """The rows of a parsed table document: elements that have a MA_LK child, root included."""
    table = Table(name)
    plans = _plans(name)
    problems = table.problems
    expected_root, expected_row = fields.ROOTS.get(name, (None, None))
    if expected_root and _tag(root) != expected_root:
        problems.append(
            warning("structure", f"root element <{_tag(root)[:60]}> (expected <{expected_root}>)", table=name)
        )
    row_elems = list(dict.fromkeys(m.getparent() for m in root.iter("{*}MA_LK") if m.getparent() is not None))
    if root.tag == "MA_LK":
        row_elems = []
    if not row_elems:
        problems.append(
            error("structure", "the table has no row (no element with a MA_LK child)", table=name)
        )
        return table
    unknown: dict[str, int] = {}
    for number, elem in enumerate(row_elems, start=1):
        if expected_row and elem is not root and _tag(elem) != expected_row:
            problems.append(
                warning("structure", f"row element <{_tag(elem)[:60]}> (expected <{expected_row}>)",
                        table=name, row=number)
            )  # fmt: skip
        values: dict[str, str] = {}
        row = Row(name, number, values, elem.sourceline)
        present: set[str] = set()
        for child in elem:
            tag = _tag(child)
            if not tag:
                continue
            plan = plans.get(tag)
            if plan is None:
                unknown.setdefault(tag, number)
                continue
            if len(child):
                problems.append(
                    error(
                        "structure",
                        "holds XML elements instead of a value",
                        table=name,
                        row=number,
                        field=tag,
                    )
                )
                continue
            text = child.text
            value = text.strip() if text else ""
            if not value:
                continue
            present.add(tag)
            if tag in values:
                problems.append(
                    Problem("error", "structure", "occurs twice in the row", name, number, tag, value)
                )
                continue
            if _CONTROL.search(value):
                problems.append(
                    Problem("error", "value", "contains a control character", name, number, tag, value)
                )
                continue
            if plan.fix is not None:
                value = _normalise(plan.field, value, problems, {"table": name, "row": number, "field": tag,
                                                                 "value": value})  # fmt: skip
            if plan.coded:
                where = {"table": name, "row": number, "field": tag, "value": value}
                if _check_codes(name, tag, value, problems, where):
                    continue
            bad = False
            if plan.typed:
                for severity, code, message in _check_value(plan.field, value):
                    problems.append(Problem(severity, code, message, name, number, tag, value))
                    bad = bad or severity == "error"
            elif plan.field.max_len is not None and len(value) > plan.field.max_len:
                message = f"is longer than {plan.field.max_len} characters"
                problems.append(Problem("error", "too-long", message, name, number, tag, value))
                bad = True
            if not bad:
                values[tag] = value
        _check_required(name, row, present, problems)
        if ma_lk is not None and values.get("MA_LK") not in (None, ma_lk):
            problems.append(
                error("invalid", f"MA_LK differs from XML1's '{ma_lk}': this row has no XML1",
                      table=name, row=number, field="MA_LK", value=values["MA_LK"])
            )  # fmt: skip
        table.rows.append(row)
    for tag, first in sorted(unknown.items()):
        problems.append(
            warning("not-supported", "is not a field of this table in QĐ 4750; ignored", table=name, row=first,
                    field=tag)
        )  # fmt: skip
    return table


def _check_codes(table: str, name: str, value: str, problems: list[Problem], where: dict[str, Any]) -> bool:
    """Single-code and code-list rules; True when the value is rejected."""
    single = name in SINGLE_CODES or table in SINGLE_CODE_TABLES.get(name, ())
    if single and _SEPARATORS.search(value):
        problems.append(error("value", "holds several codes, but the field takes exactly one", **where))
        return True
    allowed = CODES.get(name)
    if allowed is not None and value not in allowed:
        shown = ", ".join(sorted(allowed))
        problems.append(error("code-invalid", f"is not one of the codes {shown}", **where))
        return True
    if name in ("MA_BENH_CHINH", "MA_BENH_KT"):
        for code in split_codes(value)[0] if name == "MA_BENH_KT" else [value]:
            if not ICD10.match(code.upper()):
                problems.append(error("value", f"{code[:20]!r} is not an ICD-10 code", **where))
                return True
    return False


def split_codes(value: str) -> tuple[list[str], bool]:
    """A ';'-separated code list (',' tolerated: the second item says whether one was used)."""
    comma = "," in value
    parts = [p.strip() for p in re.split(r"[;,]", value)]
    return [p for p in parts if p], comma


def _check_required(table: str, row: Row, present: set[str], problems: list[Problem]) -> None:
    for need in REQUIRED.get(table, []):
        names = need if isinstance(need, tuple) else (need,)
        if not any(n in present for n in names):
            what = " or ".join(names)
            problems.append(
                error("required", "is required" if len(names) == 1 else "one of them is required",
                      table=table, row=row.number, field=what)
            )  # fmt: skip
