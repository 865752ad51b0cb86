"""The hash chain of one book's audit trail: pure functions, so that verification needs no trust in SQL."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

GENESIS = "0" * 64
# The columns a link's hash covers, in a fixed order (everything but the hash itself).
FIELDS = (
    "patient_key",
    "seq",
    "event_id",
    "recorded",
    "interaction",
    "res_type",
    "res_id",
    "outcome",
    "purpose",
    "agent_role",
    "agent_subject",
    "agent_issuer",
    "agent_user",
    "agent_facility",
    "agent_client",
    "query",
    "request_id",
    "prev_hash",
)


def digest(row: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON array of the covered fields (prev_hash included)."""
    payload = orjson.dumps([row[name] for name in FIELDS])
    return hashlib.sha256(payload).hexdigest()


@dataclass(frozen=True, slots=True)
class Break:
    """Where a chain stops being trustworthy, and why."""

    patient_key: str
    seq: int
    reason: str


def verify(patient_key: str, rows: Iterable[Mapping[str, Any]], head: tuple[int, str] | None) -> Break | None:
    """The first break of one book's chain (rows in seq order), or None when every link and the head hold."""
    prev, expected_seq = GENESIS, 1
    for row in rows:
        seq = int(row["seq"])
        if row["patient_key"] != patient_key:
            return Break(patient_key, seq, "row of another book")
        if seq != expected_seq:
            return Break(patient_key, expected_seq, f"link {expected_seq} missing (next is {seq})")
        if row["prev_hash"] != prev:
            return Break(patient_key, seq, "does not follow the previous link")
        if digest(row) != row["hash"]:
            return Break(patient_key, seq, "altered (hash mismatch)")
        prev, expected_seq = row["hash"], seq + 1
    last = expected_seq - 1
    if head is None:
        return Break(patient_key, last, "no chain head") if last else None
    if head != (last, prev):
        return Break(patient_key, last, f"chain ends at {last} but its head says {head[0]}")
    return None


def anchor(heads: Iterable[tuple[str, int, str]]) -> str:
    """One digest over every chain head (given in patient_key order), to publish or keep elsewhere."""
    h = hashlib.sha256()
    for key, seq, link in heads:
        h.update(orjson.dumps([key, seq, link]))
    return h.hexdigest()
