"""SQL of access control: grants and hidden records (parameterised, per patient_key)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import and_, delete, insert, or_, select
from sqlalchemy.engine import Connection

from healthbook.access.models import access_grant, access_hidden
from healthbook.db.dialect import prefix_match, upsert

_g = access_grant.c
_h = access_hidden.c


def granted_books(
    conn: Connection, grantees: Sequence[str], now: int, limit: int, *, sees_hidden: bool = False
) -> list[str]:
    """Distinct books with a valid grant for these grantee names (one that sees hidden records), at most `limit`."""
    stmt = select(_g.patient_key).where(_g.grantee.in_(list(grantees)), _valid(now))
    if sees_hidden:
        stmt = stmt.where(_g.sees_hidden)
    stmt = stmt.group_by(_g.patient_key).limit(limit)
    return [r[0] for r in conn.execute(stmt)]


def _valid(now: int) -> Any:
    return and_(
        or_(_g.valid_from.is_(None), _g.valid_from <= now), or_(_g.valid_to.is_(None), _g.valid_to > now)
    )


def book_grants(
    conn: Connection, patient_key: str, grantees: Sequence[str], now: int, res_type: str, res_id: str
) -> list[tuple[str, bool, int | None, int | None, bool]]:
    """The valid grants of these grantee names on one book that cover a record's type, with whether a
    consent hides that record: (res_type, sees_hidden, data_from, data_to, hidden), in one statement."""
    hidden = (
        select(_h.consent_id)
        .where(_h.patient_key == patient_key, _h.res_type == res_type, _h.res_id == res_id)
        .exists()
    )
    stmt = select(_g.res_type, _g.sees_hidden, _g.data_from, _g.data_to, hidden).where(
        _g.patient_key == patient_key,
        _g.grantee.in_(list(grantees)),
        _g.res_type.in_(["*", res_type]),
        _valid(now),
    )
    return [(r[0], bool(r[1]), r[2], r[3], bool(r[4])) for r in conn.execute(stmt)]


def emergency_books(conn: Connection, grantee: str, books: Sequence[str], now: int) -> set[str]:
    """Which of these books the grantee reads under a valid break-glass grant."""
    stmt = select(_g.patient_key).where(
        _g.patient_key.in_(list(books)),
        _g.grantee == grantee,
        prefix_match(_g.grant_id, "break-glass:"),
        _valid(now),
    )
    return {r[0] for r in conn.execute(stmt)}


def has_grant(
    conn: Connection, patient_key: str, grantees: Sequence[str], now: int, *, sees_hidden: bool = False
) -> bool:
    """Whether one of these grantee names holds a valid grant on this book (one that sees hidden records)."""
    stmt = select(_g.grant_id).where(
        _g.patient_key == patient_key, _g.grantee.in_(list(grantees)), _valid(now)
    )
    if sees_hidden:
        stmt = stmt.where(_g.sees_hidden)
    return conn.execute(stmt.limit(1)).first() is not None


_VALUE_COLUMNS = ("sees_hidden", "valid_from", "valid_to", "data_from", "data_to", "purpose")


def put_grants(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Insert grants (every column given), replacing a grant of the same key (patient, grantee, id, type)."""
    if not rows:
        return
    stmt = upsert(conn, access_grant)
    stmt = stmt.on_conflict_do_update(
        index_elements=["patient_key", "grantee", "grant_id", "res_type"],
        set_={k: stmt.excluded[k] for k in _VALUE_COLUMNS},
    )
    conn.execute(stmt, list(rows))  # one statement, compiled once (executemany)


def drop_grants(
    conn: Connection, patient_keys: Sequence[str], grant_id: str, *, prefix: bool = False
) -> None:
    """Remove a grant (or every grant whose id starts with `grant_id`) from these books."""
    which = prefix_match(_g.grant_id, grant_id) if prefix else _g.grant_id == grant_id
    conn.execute(delete(access_grant).where(_g.patient_key.in_(list(patient_keys)), which))


def grants_of(conn: Connection, patient_key: str, grant_id: str) -> list[str]:
    """The grantee names of one grant of a book."""
    stmt = select(_g.grantee).where(_g.patient_key == patient_key, _g.grant_id == grant_id)
    return [r[0] for r in conn.execute(stmt)]


def hide(conn: Connection, patient_key: str, records: Sequence[tuple[str, str]], consent_id: str) -> None:
    """Mark records of a book hidden by a consent (already hidden by it: unchanged)."""
    rows = [
        {"patient_key": patient_key, "res_type": t, "res_id": i, "consent_id": consent_id} for t, i in records
    ]
    if rows:
        stmt = upsert(conn, access_hidden).values(rows)
        conn.execute(stmt.on_conflict_do_nothing())


def unhide(conn: Connection, patient_keys: Sequence[str], consent_id: str) -> None:
    """Forget what a consent hid."""
    conn.execute(
        delete(access_hidden).where(_h.patient_key.in_(list(patient_keys)), _h.consent_id == consent_id)
    )


def hidden_encounters(conn: Connection, patient_key: str) -> dict[str, list[str]]:
    """The hidden Encounters of a book, with the consents that hide each."""
    stmt = select(_h.res_id, _h.consent_id).where(_h.patient_key == patient_key, _h.res_type == "Encounter")
    found: dict[str, list[str]] = {}
    for rid, consent in conn.execute(stmt):
        found.setdefault(rid, []).append(consent)
    return found


def hidden_in(conn: Connection, patient_key: str) -> set[tuple[str, str]]:
    """Every hidden record of a book."""
    stmt = select(_h.res_type, _h.res_id).where(_h.patient_key == patient_key)
    return {(r[0], r[1]) for r in conn.execute(stmt)}


def add_grant(conn: Connection, row: dict[str, Any]) -> None:
    """Insert one new grant (a break-glass declaration: its id is fresh)."""
    conn.execute(insert(access_grant).values(**row))
