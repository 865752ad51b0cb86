"""Clinical dates of resources, and how the book writes them (dd/mm/yyyy, Vietnam time)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

# Vietnam has used UTC+7 all year since 1975; dates with a time are shown as they fell there.
VIETNAM = timezone(timedelta(hours=7))
_DATE = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?$")
_DATETIME = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?(Z|[+-]\d{2}:\d{2})?$"
)

# Element paths holding the date a resource is about, most telling first ("a.b" walks into objects).
CLINICAL_DATE: dict[str, tuple[str, ...]] = {
    "Encounter": ("period.start", "period.end"),
    "Condition": ("onsetDateTime", "onsetPeriod.start", "recordedDate", "abatementDateTime"),
    "AllergyIntolerance": ("onsetDateTime", "onsetPeriod.start", "recordedDate", "lastOccurrence"),
    "Immunization": ("occurrenceDateTime", "recorded"),
    "Observation": ("effectiveDateTime", "effectivePeriod.start", "effectiveInstant", "issued"),
    "DiagnosticReport": ("effectiveDateTime", "effectivePeriod.start", "issued"),
    "Procedure": ("performedDateTime", "performedPeriod.start"),
    "MedicationRequest": ("authoredOn",),
    "MedicationDispense": ("whenHandedOver", "whenPrepared"),
    "MedicationStatement": ("effectiveDateTime", "effectivePeriod.start", "dateAsserted"),
    "MedicationAdministration": ("effectiveDateTime", "effectivePeriod.start"),
    "ServiceRequest": ("authoredOn", "occurrenceDateTime", "occurrencePeriod.start"),
    "Task": ("authoredOn", "executionPeriod.start", "lastModified"),
    "Appointment": ("start", "created"),
    "DocumentReference": ("context.period.start", "date"),
    "Composition": ("date",),
    "Coverage": ("period.start",),
    "EpisodeOfCare": ("period.start",),
}


def value_at(resource: dict[str, Any], path: str) -> Any:
    """The value at a dotted path of objects (no arrays), or None."""
    node: Any = resource
    for name in path.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(name)
    return node


def clinical_date(resource: dict[str, Any]) -> str | None:
    """The FHIR date or dateTime that the resource is about, or None when it has none."""
    for path in CLINICAL_DATE.get(str(resource.get("resourceType")), ()):
        value = value_at(resource, path)
        if isinstance(value, str) and value:
            return value
    return None


def _local(text: str) -> datetime | None:
    m = _DATETIME.match(text)
    if not m:
        return None
    year, month, day, hour, minute, second, zone = m.groups()
    try:
        dt = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second or 0))
    except ValueError:
        return None
    if zone is None:
        return dt  # no zone: shown as written
    if zone == "Z":
        return dt.replace(tzinfo=UTC).astimezone(VIETNAM)
    sign = 1 if zone[0] == "+" else -1
    offset = timezone(sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6])))
    return dt.replace(tzinfo=offset).astimezone(VIETNAM)


def show_date(value: str | None) -> str:
    """dd/mm/yyyy (or mm/yyyy, yyyy for partial dates); '' when absent, the text itself when unreadable."""
    if not value:
        return ""
    m = _DATE.match(value)
    if m:
        year, month, day = m.groups()
        return "/".join(p for p in (day, month, year) if p)
    dt = _local(value)
    return dt.strftime("%d/%m/%Y") if dt is not None else value


def show_time(value: str | None) -> str:
    """hh:mm in Vietnam time for a dateTime with a time; '' otherwise."""
    dt = _local(value) if value else None
    return dt.strftime("%H:%M") if dt is not None else ""


def sort_key(value: str | None) -> str:
    """A key that orders FHIR dates and dateTimes chronologically (missing dates first)."""
    if not value:
        return ""
    dt = _local(value)
    if dt is not None:
        return dt.strftime("%Y-%m-%dT%H:%M:%S")
    return value
