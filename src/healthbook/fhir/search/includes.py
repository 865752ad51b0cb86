"""_include and _revinclude (with :iterate and *): resources pulled in beside the matches."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, false, select, tuple_
from sqlalchemy.engine import Connection

from healthbook.db.dialect import keys_in
from healthbook.errors import BadRequest
from healthbook.fhir.search.registry import params_for
from healthbook.fhir.search.sql import Own, access_conditions
from healthbook.fhir.store.schema import INDEX_TABLES, resource, resource_locator
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


Row = tuple[str, str, str, str | None]  # patient_key, type, id, content


def _live(stmt_keys: Select[Any]) -> Select[Any]:
    """Live resources whose primary key is among the keys the statement selects."""
    r = resource
    own = Own(r.c.patient_key, r.c.res_type, r.c.res_id, r, r)
    return select(r.c.patient_key, r.c.res_type, r.c.res_id, r.c.content).where(
        tuple_(r.c.patient_key, r.c.res_type, r.c.res_id).in_(stmt_keys),
        r.c.deleted == false(),
        *access_conditions(own),
    )


def _forward(conn: Connection, spec: IncludeSpec, owners: list[tuple[str, str, str]]) -> list[Row]:
    """The resources referenced by `owners` through spec (one statement: references, locator, rows)."""
    mine = [o for o in owners if o[1] == spec.source]
    if not mine:
        return []
    ref = INDEX_TABLES["reference"].alias()
    targets = select(ref.c.target_type, ref.c.target_id).where(
        keys_in(conn, [ref.c.patient_key, ref.c.res_type, ref.c.res_id], mine), ref.c.target_id.is_not(None)
    )
    if spec.param is not None:
        targets = targets.where(ref.c.param == spec.param)
    if spec.target is not None:
        targets = targets.where(ref.c.target_type == spec.target)
    loc = resource_locator.alias()
    located = select(loc.c.patient_key, loc.c.res_type, loc.c.res_id).where(
        tuple_(loc.c.res_type, loc.c.res_id).in_(targets)
    )
    return [(x[0], x[1], x[2], x[3]) for x in conn.execute(_live(located))]


def _reverse(conn: Connection, spec: IncludeSpec, keys: list[Key]) -> list[Row]:
    """The resources of spec.source that reference one of `keys` through spec (one statement)."""
    if spec.target is not None:
        keys = [k for k in keys if k[0] == spec.target]
    if not keys:
        return []
    ref = INDEX_TABLES["reference"].alias()
    holders = select(ref.c.patient_key, ref.c.res_type, ref.c.res_id).where(
        ref.c.res_type == spec.source, keys_in(conn, [ref.c.target_type, ref.c.target_id], keys)
    )
    if spec.param is not None:
        holders = holders.where(ref.c.param == spec.param)
    return [(x[0], x[1], x[2], x[3]) for x in conn.execute(_live(holders))]


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
        rows: list[Row] = []
        for spec in includes:
            if round_no == 0 or spec.iterate:
                rows += _forward(conn, spec, frontier)
        for spec in revincludes:
            if round_no == 0 or spec.iterate:
                rows += _reverse(conn, spec, [(f[1], f[2]) for f in frontier])
        rows.sort(key=lambda row: (row[1], row[2]))
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
