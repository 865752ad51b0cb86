"""SQL of the identity tables; every statement runs on the caller's connection (inside its transaction)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, and_, delete, or_, select, union, update

from healthbook.db.dialect import upsert
from healthbook.identity.matching import Person
from healthbook.identity.models import identity_duplicate, identity_merge, identity_number, identity_person

_n, _p, _d, _m = identity_number.c, identity_person.c, identity_duplicate.c, identity_merge.c
CANDIDATE_LIMIT = 200  # per blocking pass: a common name on a common day stays bounded


@dataclass(frozen=True)
class NumberRow:
    """Who a personal identification number belongs to, and whether it is still in use."""

    system: str
    value: str
    patient_key: str
    res_id: str
    status: str
    since: int
    until: int | None
    reason: str | None


def number(conn: Connection, system: str, value: str) -> NumberRow | None:
    """The register row of a number, if it was ever seen."""
    row = conn.execute(select(identity_number).where(_n.system == system, _n.value == value)).first()
    return NumberRow(*row) if row is not None else None


def numbers_of(conn: Connection, patient_key: str, res_id: str) -> list[NumberRow]:
    """Every number registered to one Patient, current and cancelled."""
    rows = conn.execute(
        select(identity_number)
        .where(_n.patient_key == patient_key, _n.res_id == res_id)
        .order_by(_n.since, _n.value)
    )
    return [NumberRow(*r) for r in rows]


def register_number(
    conn: Connection, system: str, value: str, patient_key: str, res_id: str, ts: int
) -> None:
    """Record a number as the current one of this Patient (the pre-write check allowed it)."""
    row = number(conn, system, value)
    if row is not None and row.status == "current" and row.res_id == res_id:
        return
    restore_number(conn, NumberRow(system, value, patient_key, res_id, "current", ts, None, None))


def restore_number(conn: Connection, row: NumberRow) -> None:
    """Write a register row exactly as given (registration, and the undo of a merge)."""
    values = {
        "patient_key": row.patient_key,
        "res_id": row.res_id,
        "status": row.status,
        "since": row.since,
        "until": row.until,
        "reason": row.reason,
    }
    stmt = upsert(conn, identity_number).values(system=row.system, value=row.value, **values)
    conn.execute(stmt.on_conflict_do_update(index_elements=[_n.system, _n.value], set_=values))


def cancel_number(conn: Connection, system: str, value: str, ts: int, reason: str) -> None:
    """Mark a number no longer in use; it stays mapped to its person for ever."""
    conn.execute(
        update(identity_number)
        .where(_n.system == system, _n.value == value, _n.status == "current")
        .values(status="cancelled", until=ts, reason=reason)
    )


def reassign_numbers(
    conn: Connection, old: tuple[str, str], new: tuple[str, str], status: str, ts: int, reason: str | None
) -> list[str]:
    """Point every number of one Patient at another (merge and its undo); returns the values moved."""
    rows = conn.execute(
        select(_n.value).where(_n.patient_key == old[0], _n.res_id == old[1]).order_by(_n.value)
    ).all()
    conn.execute(
        update(identity_number)
        .where(_n.patient_key == old[0], _n.res_id == old[1])
        .values(patient_key=new[0], res_id=new[1], status=status, until=ts if status != "current" else None,
                reason=reason)
    )  # fmt: skip
    return [r[0] for r in rows]


def save_person(conn: Connection, patient_key: str, res_id: str, person: Person, active: bool) -> None:
    """Insert or refresh the matching-index row of a Patient."""
    values = {
        "name_key": person.name_key[:200],
        "family_key": person.family_key[:64],
        "given_key": person.given_key[:64],
        "birth_date": person.birth_date,
        "birth_year": person.birth_year,
        "gender": person.gender[:16],
        "cccd": person.cccd[:16],
        "ssn": person.ssn[:16],
        "province": person.province[:4],
        "commune": person.commune[:8],
        "active": "1" if active else "0",
    }
    stmt = upsert(conn, identity_person).values(patient_key=patient_key, res_id=res_id, **values)
    conn.execute(stmt.on_conflict_do_update(index_elements=[_p.patient_key, _p.res_id], set_=values))


def drop_person(conn: Connection, patient_key: str, res_id: str) -> None:
    """Forget a deleted Patient in the matching index (its numbers stay registered)."""
    conn.execute(delete(identity_person).where(_p.patient_key == patient_key, _p.res_id == res_id))


def candidates(conn: Connection, person: Person, exclude: str | None) -> list[tuple[str, str, Person]]:
    """Active Patients sharing a blocking key with `person`: same birth day and a name part, same
    name and birth year, or the same social-insurance number."""
    passes = []
    if person.birth_date and person.given_key:
        passes.append(and_(_p.birth_date == person.birth_date, _p.given_key == person.given_key))
    if person.birth_date and person.family_key:
        passes.append(and_(_p.birth_date == person.birth_date, _p.family_key == person.family_key))
    if person.name_key:
        passes.append(and_(_p.name_key == person.name_key[:200], _p.birth_year == person.birth_year))
    if person.ssn:
        passes.append(_p.ssn == person.ssn)
    if not passes:
        return []
    found: dict[tuple[str, str], Person] = {}
    # One statement: each arm seeks its own index, and the union stays bounded per arm.
    arms = [select(identity_person).where(c, _p.active == "1").limit(CANDIDATE_LIMIT) for c in passes]
    stmt = arms[0] if len(arms) == 1 else union(*(a.subquery().select() for a in arms))
    for row in conn.execute(stmt).mappings():
        if row["res_id"] == exclude:
            continue
        found[(row["patient_key"], row["res_id"])] = Person(
            name_key=row["name_key"],
            family_key=row["family_key"],
            given_key=row["given_key"],
            birth_date=row["birth_date"],
            gender=row["gender"],
            cccd=row["cccd"],
            ssn=row["ssn"],
            province=row["province"],
            commune=row["commune"],
        )
    return [(k[0], k[1], p) for k, p in found.items()]


def flag_duplicate(
    conn: Connection, mine: tuple[str, str], other: tuple[str, str], score: float, ts: int
) -> None:
    """Record (or refresh) a likely duplicate pair; a pair someone ruled out stays ruled out."""
    stmt = upsert(conn, identity_duplicate).values(
        patient_key=mine[0], res_id=mine[1], other_key=other[0], other_id=other[1], score=score,
        status="open", found=ts,
    )  # fmt: skip
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[_d.patient_key, _d.res_id, _d.other_key, _d.other_id],
            set_={"score": score},
        )
    )


def clear_duplicates(conn: Connection, patient_key: str, res_id: str) -> None:
    """Drop the open flags raised for a Patient before it is matched again."""
    conn.execute(
        delete(identity_duplicate).where(
            _d.patient_key == patient_key, _d.res_id == res_id, _d.status == "open"
        )
    )


def set_duplicate_status(conn: Connection, a: str, b: str, status: str) -> None:
    """Close the flags between two Patients (merged, or ruled distinct by a person)."""
    conn.execute(
        update(identity_duplicate)
        .where(or_(and_(_d.res_id == a, _d.other_id == b), and_(_d.res_id == b, _d.other_id == a)))
        .values(status=status)
    )


@dataclass(frozen=True)
class DuplicateRow:
    """One flagged pair."""

    patient_key: str
    res_id: str
    other_key: str
    other_id: str
    score: float
    status: str
    found: int


def duplicates(conn: Connection, *, res_id: str | None = None, status: str = "open") -> list[DuplicateRow]:
    """Flagged pairs, newest first (all of them, or those involving one Patient)."""
    stmt = select(identity_duplicate).where(_d.status == status)
    if res_id is not None:
        stmt = stmt.where(or_(_d.res_id == res_id, _d.other_id == res_id))
    return [DuplicateRow(*r) for r in conn.execute(stmt.order_by(_d.found.desc(), _d.res_id))]


def save_merge(
    conn: Connection, target: tuple[str, str], merge_id: str, source_id: str, record: dict[str, Any], ts: int
) -> None:
    """Log a merge with what it moved and both Patients as they were, for the undo."""
    conn.execute(
        identity_merge.insert().values(
            patient_key=target[0],
            merge_id=merge_id,
            source_id=source_id,
            record=json.dumps(record),
            created=ts,
        )
    )


@dataclass(frozen=True)
class MergeRow:
    """A logged merge."""

    patient_key: str
    merge_id: str
    source_id: str
    record: dict[str, Any]
    created: int
    undone: int | None


def merge(conn: Connection, merge_id: str) -> MergeRow | None:
    """A logged merge by its id."""
    row = conn.execute(select(identity_merge).where(_m.merge_id == merge_id)).first()
    if row is None:
        return None
    return MergeRow(row[0], row[1], row[2], json.loads(row[3]), row[4], row[5])


def mark_undone(conn: Connection, row: MergeRow, ts: int) -> None:
    """Remember that a merge was undone (it cannot be undone twice)."""
    conn.execute(
        update(identity_merge)
        .where(_m.patient_key == row.patient_key, _m.merge_id == row.merge_id)
        .values(undone=ts)
    )
