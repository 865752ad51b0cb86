"""_include and _revinclude (with :iterate and *): resources pulled in beside the matches."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select, tuple_
from sqlalchemy.engine import Connection

from healthbook.errors import BadRequest
from healthbook.fhir.search.registry import params_for
from healthbook.fhir.store import sql_repository as store
from healthbook.fhir.store.schema import INDEX_TABLES
from healthbook.fhir.validation import resource_types

Key = tuple[str, str]  # (type, id)
MAX_INCLUDED = 1000
MAX_ROUNDS = 5


@dataclass(frozen=True, slots=True)
class IncludeSpec:
    """Source type, reference parameter (None for *), optional target type, iterate flag."""

    source: str
    param: str | None
    target: str | None
    iterate: bool


def parse_specs(values: list[str], name: str) -> list[IncludeSpec]:
    """Parse Type:param[:target] or Type:* values of _include/_revinclude(:iterate)."""
    specs = []
    for raw in values:
        parts = raw.split(":")
        if len(parts) not in (2, 3) or parts[0] not in resource_types():
            raise BadRequest(f"{name}={raw[:80]} is not Type:parameter[:targetType]", expression=name)
        source, param = parts[0], parts[1]
        target = parts[2] if len(parts) == 3 else None
        if param != "*":
            definition = params_for(source).get(param)
            if definition is None or definition.type != "reference":
                raise BadRequest(
                    f"{name}: '{param}' is not a reference parameter of {source}", expression=name
                )
        if target is not None and target not in resource_types():
            raise BadRequest(f"{name}: '{target}' is not a resource type", expression=name)
        specs.append(IncludeSpec(source, None if param == "*" else param, target, name.endswith(":iterate")))
    return specs


def _forward(conn: Connection, spec: IncludeSpec, owners: list[tuple[str, str, str]]) -> set[Key]:
    ref = INDEX_TABLES["reference"].c
    mine = [o for o in owners if o[1] == spec.source]
    if not mine:
        return set()
    stmt = select(ref.target_type, ref.target_id).where(
        tuple_(ref.patient_key, ref.res_type, ref.res_id).in_(mine), ref.target_id.is_not(None)
    )
    if spec.param is not None:
        stmt = stmt.where(ref.param == spec.param)
    if spec.target is not None:
        stmt = stmt.where(ref.target_type == spec.target)
    return {(r[0], r[1]) for r in conn.execute(stmt) if r[0] is not None}


def _reverse(conn: Connection, spec: IncludeSpec, keys: list[Key]) -> set[tuple[str, str, str]]:
    ref = INDEX_TABLES["reference"].c
    if spec.target is not None:
        keys = [k for k in keys if k[0] == spec.target]
    if not keys:
        return set()
    stmt = select(ref.patient_key, ref.res_type, ref.res_id).where(
        ref.res_type == spec.source, tuple_(ref.target_type, ref.target_id).in_(keys)
    )
    if spec.param is not None:
        stmt = stmt.where(ref.param == spec.param)
    return {(r[0], r[1], r[2]) for r in conn.execute(stmt)}


def _fetch_by_key(conn: Connection, keys: set[Key]) -> list[tuple[str, str, str, str | None]]:
    return [(x[0], x[1], x[2], x[4]) for x in store.current_by_key(conn, sorted(keys))]


def _fetch_by_owner(
    conn: Connection, owners: set[tuple[str, str, str]]
) -> list[tuple[str, str, str, str | None]]:
    return [(x[0], x[1], x[2], x[4]) for x in store.current_by_owner(conn, sorted(owners))]


def included(
    conn: Connection,
    matches: list[tuple[str, str, str]],
    includes: list[IncludeSpec],
    revincludes: list[IncludeSpec],
) -> list[tuple[str, str, str, str | None]]:
    """Rows to add with search.mode=include; iterate specs run again over what was added."""
    seen: set[Key] = {(m[1], m[2]) for m in matches}
    out: list[tuple[str, str, str, str | None]] = []
    frontier = list(matches)
    for round_no in range(MAX_ROUNDS):
        wanted_keys: set[Key] = set()
        wanted_owners: set[tuple[str, str, str]] = set()
        for spec in includes:
            if round_no == 0 or spec.iterate:
                wanted_keys |= _forward(conn, spec, frontier)
        for spec in revincludes:
            if round_no == 0 or spec.iterate:
                wanted_owners |= _reverse(conn, spec, [(f[1], f[2]) for f in frontier])
        rows = _fetch_by_key(conn, {k for k in wanted_keys if k not in seen})
        rows += _fetch_by_owner(conn, {o for o in wanted_owners if (o[1], o[2]) not in seen})
        fresh = []
        for row in rows:
            if (row[1], row[2]) not in seen:
                seen.add((row[1], row[2]))
                fresh.append(row)
        if not fresh:
            break
        out.extend(fresh)
        if len(out) >= MAX_INCLUDED:
            raise BadRequest(
                f"_include/_revinclude would add more than {MAX_INCLUDED} resources; page smaller"
            )
        frontier = [(f[0], f[1], f[2]) for f in fresh]
        if not any(s.iterate for s in [*includes, *revincludes]):
            break
    return out
