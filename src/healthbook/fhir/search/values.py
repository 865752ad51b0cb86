"""Value semantics shared by indexing and querying: string folding, date ranges, number precision."""

from __future__ import annotations

import calendar
import re
import unicodedata
from decimal import Decimal, InvalidOperation
from functools import lru_cache

from healthbook.fhir.timeutil import parse_instant_us

MIN_US = -(2**62)
MAX_US = 2**62
_DATE = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2})(T.*)?)?)?$")
_FOLD = str.maketrans({"đ": "d", "Đ": "d", "ø": "o", "ß": "ss", "æ": "ae", "ł": "l"})


@lru_cache(maxsize=65536)
def fold(text: str) -> str:
    """Case- and accent-insensitive form: 'Nguyễn Thị Ánh' -> 'nguyen thi anh'."""
    decomposed = unicodedata.normalize("NFD", text.translate(_FOLD))
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(stripped.lower().split())


def date_range(text: str) -> tuple[int, int]:
    """The [first, last] microsecond a date/dateTime/instant of any precision covers."""
    m = _DATE.match(text.strip())
    if not m:
        raise ValueError(f"'{text}' is not a valid date")
    year, month, day, time_part = m.groups()
    y = int(year)
    if month is None:
        return parse_instant_us(f"{y:04d}-01-01T00:00:00Z"), parse_instant_us(
            f"{y + 1:04d}-01-01T00:00:00Z"
        ) - 1
    mo = int(month)
    if not 1 <= mo <= 12:
        raise ValueError(f"'{text}' has an invalid month")
    if day is None:
        last = calendar.monthrange(y, mo)[1]
        return (
            parse_instant_us(f"{y:04d}-{mo:02d}-01T00:00:00Z"),
            parse_instant_us(f"{y:04d}-{mo:02d}-{last:02d}T23:59:59.999999Z"),
        )
    d = int(day)
    if not 1 <= d <= calendar.monthrange(y, mo)[1]:
        raise ValueError(f"'{text}' has an invalid day")
    if time_part is None:
        start = parse_instant_us(f"{y:04d}-{mo:02d}-{d:02d}T00:00:00Z")
        return start, start + 86_400_000_000 - 1
    start = parse_instant_us(text.strip())
    tm = re.match(r"T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?", time_part)
    if not tm:
        raise ValueError(f"'{text}' has an invalid time")
    if tm.group(3) is None:
        return start, start + 60_000_000 - 1
    if tm.group(4) is None:
        return start, start + 1_000_000 - 1
    digits = len(tm.group(4))
    return start, start + max(1, 10 ** max(0, 6 - digits)) - 1


def number_range(text: str) -> tuple[float, float, float]:
    """(value, low, high) of a search number with its implicit precision: 1.5 -> [1.45, 1.55)."""
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise ValueError(f"'{text}' is not a number") from None
    if not value.is_finite():
        raise ValueError(f"'{text}' is not a finite number")
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int)
    half = Decimal(5).scaleb(exponent - 1)
    return float(value), float(value - half), float(value + half)
