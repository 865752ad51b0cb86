"""Timestamps: stored as integer microseconds (UTC), shown as FHIR instants and HTTP dates."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_INSTANT = re.compile(
    r"^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?"
    r"(Z|[+-]\d{2}:\d{2})?)?)?)?$"
)


def now_us() -> int:
    """Current time in microseconds since the epoch."""
    return time.time_ns() // 1000


def to_datetime(us: int) -> datetime:
    """Microseconds to an aware UTC datetime."""
    return _EPOCH + timedelta(microseconds=us)


def to_instant(us: int) -> str:
    """FHIR instant with microseconds, e.g. 2026-12-02T06:30:00.123456Z."""
    return to_datetime(us).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def to_http_date(us: int) -> str:
    """RFC 7231 date for Last-Modified."""
    return format_datetime(to_datetime(us).replace(microsecond=0), usegmt=True)


def parse_instant_us(text: str) -> int:
    """Parse a FHIR instant/dateTime (any precision; missing zone means UTC) to its first microsecond."""
    m = _INSTANT.match(text.strip())
    if not m:
        raise ValueError(f"'{text}' is not a valid date/time")
    year, month, day, hour, minute, second, frac, zone = m.groups()
    if hour is not None and zone is None and len(text.strip()) > 16:
        zone = "Z"
    dt = datetime(
        int(year),
        int(month or 1),
        int(day or 1),
        int(hour or 0),
        int(minute or 0),
        int(second or 0),
        int((frac or "0")[:6].ljust(6, "0")),
        tzinfo=UTC,
    )
    if zone and zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        dt -= sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
    return int((dt - _EPOCH) / timedelta(microseconds=1))
