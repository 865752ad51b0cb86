"""Read-only SQL of the reports: streamed, one patient's resources at a time, on a snapshot."""

from __future__ import annotations

from collections.abc import Iterator

from sqlalchemy import Connection, and_, false, select

from healthbook.fhir.store.schema import INDEX_TABLES, resource, resource_locator
from healthbook.identity.models import identity_duplicate

FETCH = 2000
_r = resource.c


def by_patient(conn: Connection) -> Iterator[tuple[str, list[tuple[str, str, str]]]]:
    """(patient_key, [(type, id, content)]) for every patient key, streamed in key order."""
    stmt = (
        select(_r.patient_key, _r.res_type, _r.res_id, _r.content)
        .where(_r.deleted == false())
        .order_by(_r.patient_key, _r.res_type, _r.res_id)
    )
    result = conn.execution_options(stream_results=True, yield_per=FETCH).execute(stmt)
    key: str | None = None
    group: list[tuple[str, str, str]] = []
    try:
        for pk, rtype, rid, content in result:
            if pk != key:
                if key is not None:
                    yield key, group
                key, group = pk, []
            group.append((rtype, rid, content))
        if key is not None:
            yield key, group
    finally:
        result.close()


def organizations(conn: Connection) -> list[tuple[str, str]]:
    """(id, content) of every live Organization (the facilities: a small table)."""
    stmt = select(_r.res_id, _r.content).where(_r.res_type == "Organization", _r.deleted == false())
    return [(x[0], x[1]) for x in conn.execute(stmt)]


def dangling_references(conn: Connection) -> set[tuple[str, str, str]]:
    """(patient_key, type, id) of live resources with a reference to something never stored or deleted."""
    ref = INDEX_TABLES["reference"].c
    loc = resource_locator.c
    target = resource.alias("target")
    stmt = (
        select(ref.patient_key, ref.res_type, ref.res_id)
        .select_from(
            INDEX_TABLES["reference"]
            .outerjoin(resource_locator, and_(loc.res_type == ref.target_type, loc.res_id == ref.target_id))
            .outerjoin(
                target,
                and_(
                    target.c.patient_key == loc.patient_key,
                    target.c.res_type == loc.res_type,
                    target.c.res_id == loc.res_id,
                ),
            )
        )
        .where(
            ref.target_type.is_not(None),
            ref.target_id.is_not(None),
            (loc.res_id.is_(None)) | (target.c.deleted.is_(True)),
        )
        .distinct()
    )
    return {(x[0], x[1], x[2]) for x in conn.execute(stmt)}


def open_duplicates(conn: Connection) -> set[str]:
    """Ids of Patients in an open likely-duplicate pair."""
    d = identity_duplicate.c
    out: set[str] = set()
    for a, b in conn.execute(select(d.res_id, d.other_id).where(d.status == "open")):
        out.update((a, b))
    return out
