"""Patient/$everything (patient-operation-everything): one patient's compartment plus what it references.

Served from the patient's own shard key; members filed under another patient (a resource that
belongs to two compartments) are found through the reference index.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson
from sqlalchemy import false, select, tuple_
from sqlalchemy.engine import Connection

from healthbook.auth.subject import Caller
from healthbook.errors import BadRequest, NotFound
from healthbook.fhir import bundles
from healthbook.fhir.audit import book_accesses
from healthbook.fhir.compartment import member_params
from healthbook.fhir.search.sql import visible
from healthbook.fhir.service import FhirService, check_id
from healthbook.fhir.store import sql_repository as store
from healthbook.fhir.store.schema import INDEX_TABLES, resource
from healthbook.fhir.timeutil import parse_instant_us
from healthbook.fhir.validation import resource_types

Row = store.CurrentRow
MAX_PATIENTS = 100


@dataclass(frozen=True, slots=True)
class EverythingQuery:
    """The operation's parameters, checked."""

    patient_ids: tuple[str, ...]
    types: frozenset[str] | None
    since_us: int | None
    count: int
    offset: int


def parse_query(
    patient_ids: list[str], types: str | None, since: str | None, count: int, offset: int
) -> EverythingQuery:
    """Check _type, _since and the patient ids."""
    for pid in patient_ids:
        check_id(pid)
    if len(patient_ids) > MAX_PATIENTS:
        raise BadRequest(f"$everything takes at most {MAX_PATIENTS} patients at once", expression="_id")
    wanted = None
    if types:
        wanted = frozenset(t.strip() for t in types.split(",") if t.strip())
        unknown = sorted(wanted - resource_types())
        if unknown:
            raise BadRequest(
                f"_type names unknown resource types: {', '.join(unknown)[:200]}", expression="_type"
            )
    since_us = None
    if since:
        try:
            since_us = parse_instant_us(since)
        except ValueError:
            raise BadRequest(f"_since '{since[:40]}' is not a valid instant", expression="_since") from None
    return EverythingQuery(tuple(patient_ids), wanted, since_us, count, offset)


def _own_shard(conn: Connection, pid: str, q: EverythingQuery) -> list[Row]:
    r = resource.c
    stmt = select(r.patient_key, r.res_type, r.res_id, r.last_updated, r.content).where(
        r.patient_key == pid, r.deleted == false()
    )
    if q.since_us is not None:
        stmt = stmt.where(r.last_updated >= q.since_us)
    return [(x[0], x[1], x[2], x[3], x[4]) for x in conn.execute(stmt)]


def _other_members(conn: Connection, pid: str) -> set[tuple[str, str, str]]:
    """Compartment members filed under another patient_key (they reference this patient too)."""
    ref = INDEX_TABLES["reference"].c
    params = member_params("Patient", tuple(sorted(resource_types())))
    stmt = select(ref.patient_key, ref.res_type, ref.res_id).where(
        ref.target_type == "Patient", ref.target_id == pid, ref.param.in_(params), ref.patient_key != pid
    )
    return {(x[0], x[1], x[2]) for x in conn.execute(stmt)}


def _referenced(conn: Connection, pid: str) -> set[tuple[str, str]]:
    """(type, id) of resources referenced from the patient's shard (practitioners, organisations…)."""
    ref = INDEX_TABLES["reference"].c
    stmt = (
        select(ref.target_type, ref.target_id)
        .where(ref.patient_key == pid, ref.target_id.is_not(None), ref.target_type.is_not(None))
        .distinct()
    )
    return {(x[0], x[1]) for x in conn.execute(stmt)}


def _referenced_by(conn: Connection, owners: list[tuple[str, str, str]]) -> set[tuple[str, str]]:
    """(type, id) of resources referenced from these resources (patient_key, type, id)."""
    ref = INDEX_TABLES["reference"].c
    out: set[tuple[str, str]] = set()
    for start in range(0, len(owners), 500):
        stmt = (
            select(ref.target_type, ref.target_id)
            .where(
                tuple_(ref.patient_key, ref.res_type, ref.res_id).in_(owners[start : start + 500]),
                ref.target_id.is_not(None),
                ref.target_type.is_not(None),
            )
            .distinct()
        )
        out.update((x[0], x[1]) for x in conn.execute(stmt))
    return out


def everything(
    service: FhirService, caller: Caller, q: EverythingQuery, *, interaction: str = "$everything"
) -> tuple[list[Row], int]:
    """The page of rows and the total number of resources in the result; `interaction` names it in the trail."""
    for _pid in q.patient_ids:
        service.policy.check(caller, "everything", "Patient")
    rows: dict[tuple[str, str], Row] = {}
    with service.db.snapshot() as conn:
        for pid in q.patient_ids:
            own = _own_shard(conn, pid, q)
            if not any(row[1] == "Patient" and row[2] == pid for row in own):
                patient = service._current(conn, "Patient", pid)
                if patient is None or patient.deleted:
                    raise NotFound(f"Patient/{pid} is not known")
            for row in own:
                rows[(row[1], row[2])] = row
            others = {o for o in _other_members(conn, pid) if (o[1], o[2]) not in rows}
            # What the members reference, wherever they are filed; other patients' own Patient
            # resources are no supporting data of this record (a Group or CareTeam names them).
            refs = {
                k
                for k in _referenced(conn, pid) | _referenced_by(conn, sorted(others))
                if k not in rows and (k[0] != "Patient" or k[1] in q.patient_ids)
            }
            fetched = store.current_by_owner(conn, sorted(others)) + store.current_by_key(conn, sorted(refs))
            for row in fetched:
                if q.since_us is None or row[3] >= q.since_us:
                    rows[(row[1], row[2])] = row
        condition = service.policy.condition(conn, caller)
        if condition is not None:
            seen = visible(conn, [(r[0], r[1], r[2]) for r in rows.values()], condition)
            rows = {k: r for k, r in rows.items() if (r[0], r[1], r[2]) in seen}
            for pid in q.patient_ids:
                if ("Patient", pid) not in rows:
                    raise NotFound(f"Patient/{pid} is not known")
    selected = [row for row in rows.values() if q.types is None or row[1] in q.types]
    # The patients first, then by type and id: a stable order for paging.
    selected.sort(key=lambda row: (row[1] != "Patient", row[1], row[2]))
    page = selected[q.offset : q.offset + q.count]
    if service.audit.wants(caller):
        # Every book asked for was opened, whatever page is served; other books only if shown.
        keys = [*q.patient_ids, *(r[0] for r in page)]
        service.audit.record(caller, book_accesses(keys, interaction, "Patient"))
    return page, len(selected)


def everything_bundle(
    service: FhirService, caller: Caller, q: EverythingQuery, *, base: str, path: str, params: dict[str, str]
) -> bytes:
    """The searchset Bundle of $everything with paging links."""
    page, total = everything(service, caller, q)

    entries = [
        {
            "fullUrl": f"{base}/{row[1]}/{row[2]}",
            "resource": orjson.Fragment(row[4] or "{}"),
            "search": {"mode": "match"},
        }
        for row in page
    ]
    keep = {k: v for k, v in params.items() if k not in ("_page_offset",)}
    keep["_count"] = str(q.count)
    links = [("self", bundles.page_url(base, path, {**keep, "_page_offset": str(q.offset)}))]
    if q.offset > 0:
        links.append(
            (
                "previous",
                bundles.page_url(base, path, {**keep, "_page_offset": str(max(0, q.offset - q.count))}),
            )
        )
    if q.offset + q.count < total:
        links.append(
            ("next", bundles.page_url(base, path, {**keep, "_page_offset": str(q.offset + q.count)}))
        )
    return bundles.bundle("searchset", entries, links, total=total)
