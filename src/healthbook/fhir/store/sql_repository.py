"""All SQL of the resource store: prepared statements over the resource, version and locator tables."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, bindparam, delete, false, func, insert, literal, select, tuple_, update
from sqlalchemy.engine import Connection
from sqlalchemy.sql import Select

from healthbook.db.dialect import keys_in
from healthbook.fhir.store.batch import UPDATE_CURRENT as _UPDATE_CURRENT
from healthbook.fhir.store.batch import flush_if_pending, pending
from healthbook.fhir.store.schema import INDEX_TABLES, resource, resource_locator, resource_version


@dataclass(frozen=True, slots=True)
class StoredVersion:
    """One version of a resource as stored (content is canonical JSON, None for a deletion)."""

    patient_key: str
    res_type: str
    res_id: str
    version_id: int
    last_updated: int
    deleted: bool
    content: str | None
    method: str = ""


_r, _v, _l = resource.c, resource_version.c, resource_locator.c

_LOCATE = select(_l.patient_key).where(_l.res_type == bindparam("t"), _l.res_id == bindparam("i"))
_CURRENT = select(_r.version_id, _r.last_updated, _r.deleted, _r.content).where(
    _r.patient_key == bindparam("pk"), _r.res_type == bindparam("t"), _r.res_id == bindparam("i")
)
_CURRENT_FOR_UPDATE = _CURRENT.with_for_update()
_VERSION = select(_v.last_updated, _v.method, _v.content).where(
    _v.patient_key == bindparam("pk"),
    _v.res_type == bindparam("t"),
    _v.res_id == bindparam("i"),
    _v.version_id == bindparam("v"),
)
_INSERT_LOCATOR = insert(resource_locator)
_UPDATE_LOCATOR = (
    update(resource_locator)
    .where(_l.res_type == bindparam("t"), _l.res_id == bindparam("i"))
    .values(patient_key=bindparam("pk"))
)
_INSERT_VERSION = insert(resource_version)
_INSERT_CURRENT = insert(resource)


def locate(conn: Connection, res_type: str, res_id: str) -> str | None:
    """The patient_key a logical id is stored under, or None if it was never written."""
    queue = pending(conn)
    if queue is not None and (res_type, res_id) in queue.located and (res_type, res_id) not in queue.keys:
        return queue.located[(res_type, res_id)]
    flush_if_pending(conn, res_type, res_id)
    return conn.execute(_LOCATE, {"t": res_type, "i": res_id}).scalar_one_or_none()


def forget_located(conn: Connection, res_type: str, res_id: str) -> bool:
    """Drop a prefetched answer that turned out stale; True when there was one to drop."""
    queue = pending(conn)
    return queue is not None and queue.located.pop((res_type, res_id), None) is not None


def prefetch_locators(conn: Connection, keys: Iterable[tuple[str, str]]) -> None:
    """Look up many logical ids in a few queries, for the locate() calls of the open batch that follow."""
    queue = pending(conn)
    if queue is None:
        return
    todo = sorted({k for k in keys if k not in queue.located and k not in queue.keys})
    for start in range(0, len(todo), 500):
        chunk = todo[start : start + 500]
        stmt = select(_l.res_type, _l.res_id, _l.patient_key).where(tuple_(_l.res_type, _l.res_id).in_(chunk))
        found = {(r[0], r[1]): r[2] for r in conn.execute(stmt)}
        for key in chunk:
            queue.located[key] = found.get(key)


def current(
    conn: Connection, patient_key: str, res_type: str, res_id: str, *, for_update: bool = False
) -> StoredVersion | None:
    """The current version (a tombstone if deleted); locks the row for the transaction if asked."""
    flush_if_pending(conn, res_type, res_id)
    stmt = _CURRENT_FOR_UPDATE if for_update and conn.dialect.name != "sqlite" else _CURRENT
    row = conn.execute(stmt, {"pk": patient_key, "t": res_type, "i": res_id}).first()
    if row is None:
        return None
    return StoredVersion(patient_key, res_type, res_id, row[0], row[1], bool(row[2]), row[3])


def version(
    conn: Connection, patient_key: str, res_type: str, res_id: str, version_id: int
) -> StoredVersion | None:
    """One historical version."""
    row = conn.execute(_VERSION, {"pk": patient_key, "t": res_type, "i": res_id, "v": version_id}).first()
    if row is None:
        return None
    return StoredVersion(
        patient_key, res_type, res_id, version_id, row[0], row[1] == "DELETE", row[2], method=row[1]
    )


def write(conn: Connection, rec: StoredVersion, *, is_new: bool) -> None:
    """Append a version and make it current, in the caller's transaction."""
    params = {
        "patient_key": rec.patient_key,
        "res_type": rec.res_type,
        "res_id": rec.res_id,
        "version_id": rec.version_id,
        "last_updated": rec.last_updated,
    }
    queue = pending(conn)
    if queue is not None:
        queue.keys.add((rec.res_type, rec.res_id))
        queue.latest[(rec.res_type, rec.res_id)] = None if rec.deleted else rec.content
        queue.versions.append({**params, "method": rec.method, "content": rec.content})
        if is_new:
            queue.new_current.append({**params, "deleted": rec.deleted, "content": rec.content})
        else:
            queue.updated_current.append(
                {"pk": rec.patient_key, "t": rec.res_type, "i": rec.res_id, "v": rec.version_id,
                 "ts": rec.last_updated, "del": rec.deleted, "c": rec.content}
            )  # fmt: skip
        return
    conn.execute(_INSERT_VERSION, {**params, "method": rec.method, "content": rec.content})
    if is_new:
        conn.execute(_INSERT_CURRENT, {**params, "deleted": rec.deleted, "content": rec.content})
    else:
        conn.execute(
            _UPDATE_CURRENT,
            {
                "pk": rec.patient_key,
                "t": rec.res_type,
                "i": rec.res_id,
                "v": rec.version_id,
                "ts": rec.last_updated,
                "del": rec.deleted,
                "c": rec.content,
            },
        )


def add_locator(conn: Connection, res_type: str, res_id: str, patient_key: str) -> None:
    """Register a new logical id; a duplicate raises IntegrityError (the caller retries)."""
    queue = pending(conn)
    if queue is not None:
        queue.located.pop((res_type, res_id), None)
        queue.keys.add((res_type, res_id))
        queue.locators.append({"res_type": res_type, "res_id": res_id, "patient_key": patient_key})
        return
    conn.execute(_INSERT_LOCATOR, {"res_type": res_type, "res_id": res_id, "patient_key": patient_key})


def move(conn: Connection, res_type: str, res_id: str, old_key: str, new_key: str) -> None:
    """Re-home a resource and its history under another patient_key (delete + insert: Citus rule 7)."""
    queue = pending(conn)
    if queue is not None:
        queue.located.pop((res_type, res_id), None)
        queue.flush(conn)
    for table in (resource, resource_version):
        c = table.c
        cols = [col for col in table.columns if col.name != "patient_key"]
        src = select(literal(new_key), *cols).where(
            c.patient_key == old_key, c.res_type == res_type, c.res_id == res_id
        )
        conn.execute(insert(table).from_select(["patient_key", *[col.name for col in cols]], src))
        conn.execute(
            delete(table).where(and_(c.patient_key == old_key, c.res_type == res_type, c.res_id == res_id))
        )
    conn.execute(_UPDATE_LOCATOR, {"t": res_type, "i": res_id, "pk": new_key})


def _history_filter(
    stmt: Select[Any],
    *,
    res_type: str | None,
    res_id: str | None,
    patient_key: str | None,
    since: int | None,
    until: int,
) -> Select[Any]:
    stmt = stmt.where(_v.last_updated <= until)
    if patient_key is not None:
        stmt = stmt.where(_v.patient_key == patient_key)
    if res_type is not None:
        stmt = stmt.where(_v.res_type == res_type)
    if res_id is not None:
        stmt = stmt.where(_v.res_id == res_id)
    if since is not None:
        stmt = stmt.where(_v.last_updated >= since)
    return stmt


def history(
    conn: Connection,
    *,
    res_type: str | None,
    res_id: str | None,
    patient_key: str | None,
    since: int | None,
    until: int,
    offset: int,
    limit: int,
) -> Sequence[StoredVersion]:
    """Versions newest first, bounded by `until` so that pages stay stable while writes go on."""
    base: Select[Any] = select(
        _v.patient_key, _v.res_type, _v.res_id, _v.version_id, _v.last_updated, _v.method, _v.content
    )
    stmt = _history_filter(
        base, res_type=res_type, res_id=res_id, patient_key=patient_key, since=since, until=until
    )
    stmt = stmt.order_by(_v.last_updated.desc(), _v.res_type, _v.res_id, _v.version_id.desc())
    rows = conn.execute(stmt.offset(offset).limit(limit)).all()
    return [StoredVersion(r[0], r[1], r[2], r[3], r[4], r[5] == "DELETE", r[6], method=r[5]) for r in rows]


def history_count(
    conn: Connection,
    *,
    res_type: str | None,
    res_id: str | None,
    patient_key: str | None,
    since: int | None,
    until: int,
) -> int:
    """How many versions the same history query spans."""
    stmt = select(func.count()).select_from(resource_version)
    stmt = _history_filter(
        stmt, res_type=res_type, res_id=res_id, patient_key=patient_key, since=since, until=until
    )
    return int(conn.execute(stmt).scalar_one())


CurrentRow = tuple[str, str, str, int, str | None]  # patient_key, type, id, last_updated, content


def current_by_owner(conn: Connection, owners: Sequence[tuple[str, str, str]]) -> list[CurrentRow]:
    """Live resources by full primary key (patient_key, type, id), in chunks."""
    out: list[CurrentRow] = []
    for start in range(0, len(owners), 1000):
        chunk = list(owners[start : start + 1000])
        stmt = select(_r.patient_key, _r.res_type, _r.res_id, _r.last_updated, _r.content).where(
            keys_in(conn, [_r.patient_key, _r.res_type, _r.res_id], chunk), _r.deleted == false()
        )
        out.extend((x[0], x[1], x[2], x[3], x[4]) for x in conn.execute(stmt))
    return out


def current_by_key(conn: Connection, keys: Sequence[tuple[str, str]]) -> list[CurrentRow]:
    """Live resources by (type, id): the locator gives each one's patient_key, then the primary key."""
    owners: list[tuple[str, str, str]] = [(k[1], k[0], k[1]) for k in keys if k[0] == "Patient"]
    others = [k for k in keys if k[0] != "Patient"]
    for start in range(0, len(others), 1000):
        chunk = others[start : start + 1000]
        stmt = select(_l.patient_key, _l.res_type, _l.res_id).where(
            keys_in(conn, [_l.res_type, _l.res_id], chunk)
        )
        owners.extend((x[0], x[1], x[2]) for x in conn.execute(stmt))
    return current_by_owner(conn, owners)


def keys_of_patient(conn: Connection, patient_key: str) -> list[tuple[str, str]]:
    """(type, id) of every live resource filed under one patient key (one shard)."""
    _flush_all(conn)
    stmt = select(_r.res_type, _r.res_id).where(_r.patient_key == patient_key, _r.deleted == false())
    return [(x[0], x[1]) for x in conn.execute(stmt.order_by(_r.res_type, _r.res_id))]


def live_of_type(conn: Connection, res_type: str, after: str, limit: int) -> list[tuple[str, str, int, str]]:
    """(patient_key, id, last_updated, content) of live resources of a type with id > after, in id order."""
    stmt = (
        select(_r.patient_key, _r.res_id, _r.last_updated, _r.content)
        .where(_r.res_type == res_type, _r.res_id > after, _r.deleted == false())
        .order_by(_r.res_id)
        .limit(limit)
    )
    return [(x[0], x[1], x[2], x[3]) for x in conn.execute(stmt)]


def referencing(conn: Connection, target_type: str, target_id: str) -> list[tuple[str, str, str]]:
    """(patient_key, type, id) of live resources whose indexed references point at one resource."""
    _flush_all(conn)
    ref = INDEX_TABLES["reference"].c
    stmt = (
        select(ref.patient_key, ref.res_type, ref.res_id)
        .where(ref.target_type == target_type, ref.target_id == target_id)
        .distinct()
    )
    return sorted((x[0], x[1], x[2]) for x in conn.execute(stmt))


def _flush_all(conn: Connection) -> None:
    queue = pending(conn)
    if queue is not None:
        queue.flush(conn)
