"""Rebuilding the search indexes in resumable batches (after search definitions change)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

import orjson
from sqlalchemy import delete, false, func, insert, select, tuple_
from sqlalchemy.engine import Connection

from healthbook.auth.subject import AccessPolicy, Caller
from healthbook.db.engine import Database
from healthbook.fhir import jsonio
from healthbook.fhir.definitions import R4_DIR
from healthbook.fhir.search.extract import extract, owned
from healthbook.fhir.store.schema import INDEX_TABLES, maintenance_state, resource

CHECKPOINT = "reindex.checkpoint"
FINGERPRINT = "index.fingerprint"
# Bump when extraction changes in a way that makes existing index rows wrong.
EXTRACTOR_VERSION = "4"


def definitions_fingerprint() -> str:
    """Identifies the search definitions and extractor the index rows were built with."""
    digest = hashlib.sha256(EXTRACTOR_VERSION.encode())
    for name in ("searchparams.json", "compartments.json"):
        digest.update((R4_DIR / name).read_bytes())
    return digest.hexdigest()[:32]


def _stored_fingerprint(conn: Connection) -> str | None:
    value = conn.execute(
        select(maintenance_state.c.value).where(maintenance_state.c.name == FINGERPRINT)
    ).scalar()
    return str(value) if value is not None else None


def _save_fingerprint(conn: Connection) -> None:
    conn.execute(delete(maintenance_state).where(maintenance_state.c.name == FINGERPRINT))
    conn.execute(insert(maintenance_state).values(name=FINGERPRINT, value=definitions_fingerprint()))


def index_is_current(db: Database) -> bool:
    """False when the index was built from other definitions (run `healthbook db reindex`).

    A database that never recorded a fingerprint adopts the current one: its rows were written
    by this code.
    """
    with db.write() as conn:
        stored = _stored_fingerprint(conn)
        if stored is None:
            _save_fingerprint(conn)
            return True
        return stored == definitions_fingerprint()


@dataclass(frozen=True, slots=True)
class ReindexProgress:
    """How far a reindex run is."""

    done: int
    total: int
    finished: bool


def _checkpoint(conn: Connection) -> tuple[str, str, str] | None:
    raw = conn.execute(
        select(maintenance_state.c.value).where(maintenance_state.c.name == CHECKPOINT)
    ).scalar()
    if raw is None:
        return None
    key = orjson.loads(raw)
    return (key[0], key[1], key[2])


def _save(conn: Connection, key: tuple[str, str, str] | None) -> None:
    conn.execute(delete(maintenance_state).where(maintenance_state.c.name == CHECKPOINT))
    if key is not None:
        conn.execute(
            insert(maintenance_state).values(name=CHECKPOINT, value=orjson.dumps(list(key)).decode())
        )


def reindex(
    db: Database,
    policy: AccessPolicy,
    caller: Caller,
    *,
    batch_size: int = 500,
    restart: bool = False,
    on_progress: Callable[[ReindexProgress], None] | None = None,
) -> ReindexProgress:
    """Re-extract every live resource's index rows, committing a checkpoint after each batch."""
    policy.check(caller, "reindex", None)
    r = resource.c
    with db.write() as conn:
        if restart:
            _save(conn, None)
        start = _checkpoint(conn)
        total = int(
            conn.execute(select(func.count()).select_from(resource).where(r.deleted == false())).scalar_one()
        )
        done = 0
        if start is not None:
            done = int(
                conn.execute(
                    select(func.count())
                    .select_from(resource)
                    .where(r.deleted == false(), tuple_(r.patient_key, r.res_type, r.res_id) <= start)
                ).scalar_one()
            )
    last = start
    while True:
        with db.write() as conn:
            stmt = select(r.patient_key, r.res_type, r.res_id, r.content).where(r.deleted == false())
            if last is not None:
                stmt = stmt.where(tuple_(r.patient_key, r.res_type, r.res_id) > last)
            rows = conn.execute(stmt.order_by(r.patient_key, r.res_type, r.res_id).limit(batch_size)).all()
            if not rows:
                _save(conn, None)
                _save_fingerprint(conn)
                progress = ReindexProgress(done, total, True)
                break
            for pk, rtype, rid, content in rows:
                for table in INDEX_TABLES.values():
                    c = table.c
                    conn.execute(
                        delete(table).where(c.patient_key == pk, c.res_type == rtype, c.res_id == rid)
                    )
                made = owned(extract(jsonio.loads(content or "{}")), pk, rtype, rid)
                for ptype, index_rows in made.items():
                    conn.execute(insert(INDEX_TABLES[ptype]), index_rows)
            last = (rows[-1][0], rows[-1][1], rows[-1][2])
            _save(conn, last)
            done += len(rows)
        if on_progress is not None:
            on_progress(ReindexProgress(done, max(total, done), False))
    if on_progress is not None:
        on_progress(progress)
    return progress


__all__ = ["ReindexProgress", "reindex"]
