"""SQL of the audit trail: append under the chain head's row lock, list, fetch, walk (parameterised)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from sqlalchemy import Select, and_, insert, or_, select, update
from sqlalchemy.engine import Connection

from healthbook.audit import chain
from healthbook.audit.models import audit_event, audit_head
from healthbook.audit.resource import ACTIONS
from healthbook.db.dialect import binary_text, upsert

_e = audit_event.c
_h = audit_head.c


def _head(conn: Connection, patient_key: str) -> tuple[int, str]:
    """The book's chain head, locked until commit (created at the genesis link if new)."""
    stmt = select(_h.seq, _h.hash).where(_h.patient_key == patient_key).with_for_update()
    row = conn.execute(stmt).first()
    if row is None:
        start = upsert(conn, audit_head).values(patient_key=patient_key, seq=0, hash=chain.GENESIS)
        conn.execute(start.on_conflict_do_nothing(index_elements=["patient_key"]))
        row = conn.execute(stmt).one()
    return int(row[0]), str(row[1])


def append(conn: Connection, events: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Link each event (patient_key and fields, without seq/hashes) to its book's chain; the rows written.

    Heads are locked in patient_key order, so that two transactions touching the same books cannot
    deadlock on them.
    """
    written: list[dict[str, Any]] = []
    heads: dict[str, tuple[int, str]] = {}
    for event in sorted(events, key=lambda e: str(e["patient_key"])):
        key = str(event["patient_key"])
        seq, prev = heads.get(key) or _head(conn, key)
        row = {**event, "seq": seq + 1, "prev_hash": prev}
        row["hash"] = chain.digest(row)
        written.append(row)
        heads[key] = (row["seq"], row["hash"])
    if written:
        conn.execute(insert(audit_event), written)
        for key, (seq, link) in heads.items():
            conn.execute(update(audit_head).where(_h.patient_key == key).values(seq=seq, hash=link))
    return written


def page(
    conn: Connection,
    *,
    books: Sequence[str] | None,
    since: int | None,
    before: int | None,
    actions: Sequence[str] | None,
    outcomes: Sequence[str] | None,
    interactions: Sequence[str] | None,
    after: tuple[int, str, int] | None,
    limit: int,
) -> list[dict[str, Any]]:
    """Events newest first; `books` None = every book; `after` = (recorded, patient_key, seq) of the last row shown."""
    stmt = select(audit_event)
    if books is not None:
        stmt = stmt.where(_e.patient_key.in_(list(books)))
    if since is not None:
        stmt = stmt.where(_e.recorded >= since)
    if before is not None:
        stmt = stmt.where(_e.recorded < before)
    if outcomes:
        stmt = stmt.where(_e.outcome.in_(list(outcomes)))
    if interactions:
        stmt = stmt.where(_e.interaction.in_(list(interactions)))
    if actions:
        stmt = stmt.where(_e.interaction.in_(sorted(_interactions_of(actions))))
    if after is not None:
        rec, key, seq = after
        stmt = stmt.where(
            or_(
                _e.recorded < rec,
                and_(_e.recorded == rec, _e.patient_key > key),
                and_(_e.recorded == rec, _e.patient_key == key, _e.seq < seq),
            )
        )
    stmt = stmt.order_by(_e.recorded.desc(), _e.patient_key, _e.seq.desc()).limit(limit)
    return [dict(r) for r in conn.execute(stmt).mappings()]


def _interactions_of(actions: Sequence[str]) -> set[str]:
    wanted = set(actions)
    return {name for name, action in ACTIONS.items() if action in wanted}


def by_id(conn: Connection, event_id: str) -> dict[str, Any] | None:
    """One event by its AuditEvent id."""
    row = conn.execute(select(audit_event).where(_e.event_id == event_id).limit(1)).mappings().first()
    return None if row is None else dict(row)


def heads(conn: Connection, batch: int = 500) -> Iterator[tuple[str, int, str]]:
    """Every chain head (book, seq, hash), in code-point order of patient_key (Python's, for merging)."""
    stmt = select(_h.patient_key, _h.seq, _h.hash)
    for r in _by_book(conn, stmt, _h.patient_key, batch):
        yield str(r[0]), int(r[1]), str(r[2])


def books_with_events(conn: Connection, batch: int = 500) -> Iterator[str]:
    """Books with at least one event, in the order of heads() (a head may be missing: verify reports it)."""
    stmt = select(_e.patient_key).group_by(_e.patient_key)
    for r in _by_book(conn, stmt, _e.patient_key, batch):
        yield str(r[0])


def _by_book(conn: Connection, stmt: Select[Any], key: Any, batch: int) -> Iterator[Sequence[Any]]:
    """The rows of `stmt` (patient_key first) in code-point order of `key`, fetched in keyset pages."""
    after = ""
    while True:
        rows = list(
            conn.execute(stmt.where(binary_text(key) > after).order_by(binary_text(key)).limit(batch))
        )
        yield from rows
        if len(rows) < batch:
            return
        after = str(rows[-1][0])


def events_of(conn: Connection, patient_key: str, batch: int = 1000) -> Iterator[dict[str, Any]]:
    """One book's events in chain order."""
    after = 0
    while True:
        rows = [
            dict(r)
            for r in conn.execute(
                select(audit_event)
                .where(_e.patient_key == patient_key, _e.seq > after)
                .order_by(_e.seq)
                .limit(batch)
            ).mappings()
        ]
        yield from rows
        if len(rows) < batch:
            return
        after = int(rows[-1]["seq"])


def head_of(conn: Connection, patient_key: str) -> tuple[int, str] | None:
    """The stored head of one book's chain."""
    row = conn.execute(select(_h.seq, _h.hash).where(_h.patient_key == patient_key)).first()
    return None if row is None else (int(row[0]), str(row[1]))
