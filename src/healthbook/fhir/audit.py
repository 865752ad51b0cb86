"""What the engine tells the audit trail: which health book was touched, how, by whom, with what outcome.

The trail itself (tables, hash chain, AuditEvent) is the `healthbook.audit` package; the engine only
reports accesses through an `AuditSink`, so that it runs without one (NoAudit) in tools and unit tests.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy.engine import Connection

from healthbook.auth.subject import Caller
from healthbook.fhir.compartment import NO_PATIENT_PREFIX

SUCCESS = "0"
MINOR_FAILURE = "4"  # refused or not found: the caller saw nothing of the record


@dataclass(frozen=True, slots=True)
class Access:
    """One interaction with one health book (patient_key), as the audit trail records it."""

    patient_key: str
    interaction: str  # FHIR restful-interaction code ("read", "search-type", "create"…) or "$operation"
    res_type: str | None = None
    res_id: str | None = None
    outcome: str = SUCCESS
    query: str | None = None  # parameter names only, never values ("Observation?code&date")
    purpose: str | None = None  # v3 ActReason code when the interaction itself implies it (break-glass)


class AuditSink(Protocol):
    """Receives accesses; `conn` given: inside that write transaction, else in a transaction of its own."""

    def wants(self, caller: Caller) -> bool:
        """Whether accesses of this caller are recorded (callers skip collecting them otherwise)."""

    def record(self, caller: Caller, accesses: Sequence[Access], conn: Connection | None = None) -> None:
        """Append the accesses to the trail; raising makes the interaction fail."""


class NoAudit:
    """The sink of an engine without an audit trail."""

    def wants(self, caller: Caller) -> bool:
        """Nothing is recorded."""
        return False

    def record(self, caller: Caller, accesses: Sequence[Access], conn: Connection | None = None) -> None:
        """Nothing is recorded."""


class Collector:
    """A sink that keeps the accesses for the caller to record later, on the connection it chooses."""

    def __init__(self, sink: AuditSink):
        self.sink = sink
        self.accesses: list[Access] = []

    def wants(self, caller: Caller) -> bool:
        """As the sink it collects for."""
        return self.sink.wants(caller)

    def record(self, caller: Caller, accesses: Sequence[Access], conn: Connection | None = None) -> None:
        """Keep them (see flush)."""
        self.accesses.extend(accesses)

    def flush(self, caller: Caller, conn: Connection | None = None) -> None:
        """Hand what was kept to the sink: inside `conn`'s transaction, or in one of its own."""
        if self.accesses:
            self.sink.record(caller, self.accesses, conn)
            self.accesses = []


def personal(patient_key: str) -> bool:
    """Whether a patient_key is a health book (not the shared pseudo key of Organizations and the like)."""
    return not patient_key.startswith(NO_PATIENT_PREFIX)


def read_access(
    patient_key: str, interaction: str, res_type: str, res_id: str, *, seen: bool
) -> Access | None:
    """The access of reading one record (outcome 4 when the caller was shown nothing); None off the books."""
    if not personal(patient_key):
        return None
    return Access(patient_key, interaction, res_type, res_id, SUCCESS if seen else MINOR_FAILURE)


def book_accesses(
    keys: Iterable[str],
    interaction: str,
    res_type: str | None,
    *,
    query: str | None = None,
    res_id: str | None = None,
) -> list[Access]:
    """One access per distinct health book among `keys`, in key order (the order locks are taken in)."""
    return [
        Access(key, interaction, res_type, res_id, query=query)
        for key in sorted({k for k in keys if personal(k)})
    ]


def query_names(res_type: str | None, names: Iterable[str]) -> str:
    """A search as the trail keeps it: the type and the parameter names, without any value."""
    distinct = sorted({n for n in names if n})
    return f"{res_type or ''}?{'&'.join(distinct)}"[:1000]


_PATIENT_REF = re.compile(r"(?<![A-Za-z])Patient/([A-Za-z0-9\-.]{1,64})")
_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
MAX_NAMED = 1000


def named_books(
    res_type: str | None, pairs: Iterable[tuple[str, str]], compartment: tuple[str, str] | None
) -> set[str]:
    """The books a search names (its Patient compartment, Patient/… values, patient=, Patient?_id=).

    Such a search reads those books even when it returns none of their records (a count, an empty
    result, _has over shared Organizations), so the trail records them too; at most MAX_NAMED.
    """
    found: set[str] = set()
    if compartment is not None and compartment[0] == "Patient":
        found.add(compartment[1])
    for name, value in pairs:
        found.update(_PATIENT_REF.findall(value))
        base = name.split(":")[0].split(".")[0]
        if base == "patient" or (res_type == "Patient" and base == "_id"):
            found.update(v for v in value.split(",") if _ID.fullmatch(v))
        if len(found) >= MAX_NAMED:
            break
    return set(sorted(found)[:MAX_NAMED])
