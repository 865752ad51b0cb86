"""The search planner: parsed clauses to one SQL query over resource + index tables (both backends).

Every per-clause condition is an uncorrelated semi-join `(patient_key, type, id) IN (index rows)`,
which Citus accepts; chains and _has nest the same shape one level down.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import ColumnElement, FromClause, Select, and_, false, func, not_, or_, select, true, tuple_
from sqlalchemy.sql.elements import UnaryExpression

from healthbook.errors import BadRequest
from healthbook.fhir.hashing import hash63
from healthbook.fhir.search.composite import composite_value_condition, composites_for
from healthbook.fhir.search.query import (
    Clause,
    ParsedQuery,
    common_params,
    split_pipe,
    split_pipes,
    split_prefix,
    unescape,
)
from healthbook.fhir.search.values import date_range, fold, number_range
from healthbook.fhir.store.schema import INDEX_TABLES, resource

_RESOURCE = resource


def _owner_in(
    r: FromClause, table_type: str, types: tuple[str, ...], param: str, cond: ColumnElement[bool] | None
) -> ColumnElement[bool]:
    """(patient_key, type, id) of r IN (index rows of `param` satisfying cond)."""
    t = INDEX_TABLES[table_type]
    where = [t.c.param == param]
    where.append(t.c.res_type == types[0] if len(types) == 1 else t.c.res_type.in_(types))
    if cond is not None:
        where.append(cond)
    sub = select(t.c.patient_key, t.c.res_type, t.c.res_id).where(*where)
    return tuple_(r.c.patient_key, r.c.res_type, r.c.res_id).in_(sub)


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _token_value(c: Clause, types: tuple[str, ...], value: str, suffix: str = "") -> ColumnElement[bool]:
    t = INDEX_TABLES["token"].c
    pcode = c.param.code + suffix
    if c.modifier == "of-type":
        parts = split_pipes(value)
        if len(parts) != 3 or not parts[1] or not parts[2]:
            raise BadRequest(
                f"'{value[:80]}' is not type-system|type-code|value for '{c.raw_name}'", expression=c.raw_name
            )
        kind = f"{parts[0]}|{parts[1]}"
        return or_(*(t.hash_sys_code == hash63(rtype, pcode, kind, parts[2]) for rtype in types))
    system, code = split_pipe(value)
    if c.modifier == "text":
        pattern = f"{_like_escape(unescape(value).lower())}%"
        return t.display.is_not(None) & func.lower(t.display).like(pattern, escape="\\")
    hashes: list[ColumnElement[bool]] = []
    for rtype in types:
        if system is None:
            hashes.append(t.hash_code == hash63(rtype, pcode, code))
        elif code == "":
            hashes.append(t.hash_sys == hash63(rtype, pcode, system))
        else:
            hashes.append(t.hash_sys_code == hash63(rtype, pcode, system, code))
    return or_(*hashes)


def _string_value(c: Clause, value: str) -> ColumnElement[bool]:
    t = INDEX_TABLES["string"].c
    text = unescape(value)
    if c.modifier == "exact":
        return t.value_exact == text
    folded = _like_escape(fold(text))
    if c.modifier == "contains":
        return t.value_norm.like(f"%{folded}%", escape="\\")
    return t.value_norm.like(f"{folded}%", escape="\\")


def _reference_value(c: Clause, value: str) -> ColumnElement[bool]:
    t = INDEX_TABLES["reference"].c
    ref = unescape(value)
    if c.modifier and c.modifier[:1].isupper():
        return (t.target_type == c.modifier) & (t.target_id == ref)
    if "://" in ref or ref.startswith("urn:"):
        parts = ref.rstrip("/").split("/")
        cond = t.target_url == ref
        if len(parts) >= 2 and parts[-2][:1].isupper():
            cond = cond | ((t.target_type == parts[-2]) & (t.target_id == parts[-1]))
        return cond
    parts = ref.split("/")
    if len(parts) == 2 and parts[0][:1].isupper():
        return (t.target_type == parts[0]) & (t.target_id == parts[1])
    if len(parts) == 1:
        cond = t.target_id == ref
        return cond & t.target_type.in_(c.param.targets) if c.param.targets else cond
    raise BadRequest(f"'{ref[:80]}' is not a valid reference for '{c.raw_name}'", expression=c.raw_name)


def range_condition(prefix: str, lo: Any, hi: Any, slo: Any, shi: Any) -> ColumnElement[bool]:
    """Compare a stored range [lo, hi] with a search range [slo, shi] (search.html prefixes)."""
    eq = and_(lo >= slo, hi <= shi)
    conds: dict[str, ColumnElement[bool]] = {
        "eq": eq,
        "ne": not_(eq),
        "gt": hi > shi,
        "lt": lo < slo,
        "ge": or_(hi > shi, eq),
        "le": or_(lo < slo, eq),
        "sa": lo > shi,
        "eb": hi < slo,
    }
    return conds[prefix]


def _date_search_range(c: Clause, value: str) -> tuple[str, int, int]:
    prefix, text = split_prefix(value)
    if " " in text and "T" in text:
        text = text.replace(" ", "+")  # an unencoded '+' of a time zone arrives as a space
    try:
        slo, shi = date_range(text)
    except (ValueError, OverflowError):
        raise BadRequest(
            f"'{value[:60]}' is not a valid date for '{c.raw_name}'", expression=c.raw_name
        ) from None
    if prefix == "ap":
        now = time.time_ns() // 1000
        spread = max(abs(now - slo) // 10, 86_400_000_000)
        return "ap", slo - spread, shi + spread
    return prefix, slo, shi


def _date_value(c: Clause, value: str) -> ColumnElement[bool]:
    t = INDEX_TABLES["date"].c
    prefix, slo, shi = _date_search_range(c, value)
    if prefix == "ap":
        return and_(t.low <= shi, t.high >= slo)
    return range_condition(prefix, t.low, t.high, slo, shi)


def number_condition(prefix: str, col: Any, text: str, name: str) -> ColumnElement[bool]:
    """A stored exact number against a search number with implicit precision (1.5 = [1.45, 1.55))."""
    try:
        value, low, high = number_range(text)
    except ValueError:
        raise BadRequest(f"'{text[:60]}' is not a valid number for '{name}'", expression=name) from None
    if prefix == "eq":
        return and_(col >= low, col < high)
    if prefix == "ne":
        return or_(col < low, col >= high)
    if prefix == "ap":
        spread = abs(value) * 0.1
        return and_(col >= value - spread, col <= value + spread)
    # sa/eb follow search.html's prefix rule on ranges: the value lies beyond the whole implicit range of
    # the search number (sa100 = from 100.5 up), unlike gt/lt, which compare with the number exactly.
    ops: dict[str, ColumnElement[bool]] = {
        "gt": col > value,
        "sa": col >= high,
        "lt": col < value,
        "eb": col < low,
        "ge": col >= value,
        "le": col <= value,
    }
    return ops[prefix]


def _number_value(c: Clause, value: str) -> ColumnElement[bool]:
    prefix, text = split_prefix(value)
    return number_condition(prefix, INDEX_TABLES["number"].c.low, text, c.raw_name)


def _quantity_value(c: Clause, value: str) -> ColumnElement[bool]:
    t = INDEX_TABLES["quantity"].c
    prefix, rest = split_prefix(value)
    parts = rest.split("|")
    if len(parts) not in (1, 3):
        raise BadRequest(
            f"'{value[:60]}' is not number|system|code for '{c.raw_name}'", expression=c.raw_name
        )
    cond = number_condition(prefix, t.low, parts[0], c.raw_name)
    if len(parts) == 3:
        system, code = parts[1], parts[2]
        if code:
            cond = cond & (t.code == code)
        if system:
            cond = cond & (t.system == system)
    return cond


def _uri_value(c: Clause, value: str) -> ColumnElement[bool]:
    t = INDEX_TABLES["uri"].c
    uri = unescape(value)
    if c.modifier == "below":
        return t.uri.like(f"{_like_escape(uri)}%", escape="\\")
    if c.modifier == "above":
        prefixes = [uri[:i] for i in range(len(uri), 0, -1) if i == len(uri) or uri[i] == "/"]
        return t.uri.in_(prefixes)
    return t.uri == uri


_VALUE = {
    "string": _string_value,
    "reference": _reference_value,
    "date": _date_value,
    "number": _number_value,
    "quantity": _quantity_value,
    "uri": _uri_value,
}


def _native(r: FromClause, c: Clause) -> ColumnElement[bool]:
    if c.param.code == "_id":
        if c.modifier == "missing":
            return false() if c.values == ("true",) else true()
        return r.c.res_id.in_([unescape(v) for v in c.values])
    conds = []
    for value in c.values:
        prefix, slo, shi = _date_search_range(c, value)
        if prefix == "ap":
            conds.append(and_(r.c.last_updated >= slo, r.c.last_updated <= shi))
        else:
            conds.append(range_condition(prefix, r.c.last_updated, r.c.last_updated, slo, shi))
    return or_(*conds)


def _live(types: tuple[str, ...], clause: Clause) -> tuple[FromClause, Select[str, str]]:
    """Keys (type, id) of live resources of `types` satisfying `clause` (one level down)."""
    r2 = _RESOURCE.alias()
    type_cond = r2.c.res_type == types[0] if len(types) == 1 else r2.c.res_type.in_(types)
    return r2, select(r2.c.res_type, r2.c.res_id).where(
        type_cond, r2.c.deleted == false(), clause_condition(r2, clause, types)
    )


def _chain(r: FromClause, c: Clause, types: tuple[str, ...]) -> ColumnElement[bool]:
    assert c.chain is not None
    ref = INDEX_TABLES["reference"].c
    if c.has is not None:
        # _has: r is the target of a reference held by a matching source resource.
        source, code = c.has
        r3 = _RESOURCE.alias()
        src = select(r3.c.patient_key, r3.c.res_type, r3.c.res_id).where(
            r3.c.res_type == source, r3.c.deleted == false(), clause_condition(r3, c.chain, (source,))
        )
        holders = select(ref.target_type, ref.target_id).where(
            ref.res_type == source,
            ref.param == code,
            tuple_(ref.patient_key, ref.res_type, ref.res_id).in_(src),
        )
        return tuple_(r.c.res_type, r.c.res_id).in_(holders)
    _, targets = _live(c.chain_types, c.chain)
    cond = tuple_(ref.target_type, ref.target_id).in_(targets)
    return _owner_in(r, "reference", types, c.param.code, cond)


def clause_condition(r: FromClause, c: Clause, types: tuple[str, ...]) -> ColumnElement[bool]:
    """The WHERE condition of one clause on resource alias r (its values OR-ed)."""
    if c.chain is not None:
        return _chain(r, c, types)
    if c.param.code in ("_id", "_lastUpdated"):
        return _native(r, c)
    table = c.param.type
    if c.modifier == "missing":
        present = _owner_in(r, table, types, c.param.code, None)
        return not_(present) if c.values == ("true",) else present
    if c.modifier in ("identifier", "of-type"):
        suffix = ":" + c.modifier
        cond = or_(*(_token_value(c, types, v, suffix) for v in c.values))
        return _owner_in(r, "token", types, c.param.code + suffix, cond)
    if table == "composite":
        t = INDEX_TABLES["composite"]
        definition = composites_for(types[0])[c.param.code]
        cond = or_(*(composite_value_condition(t, types, definition, v, c.raw_name) for v in c.values))
        return _owner_in(r, table, types, c.param.code, cond)
    if table == "token":
        cond = or_(*(_token_value(c, types, v) for v in c.values))
        inside = _owner_in(r, table, types, c.param.code, cond)
        return not_(inside) if c.modifier == "not" else inside
    value_fn = _VALUE[table]
    return _owner_in(r, table, types, c.param.code, or_(*(value_fn(c, v) for v in c.values)))


def compartment_condition(
    r: FromClause, types: tuple[str, ...], params: list[str], target: tuple[str, str]
) -> ColumnElement[bool]:
    """Membership of a compartment: any of the compartment's reference parameters points at target."""
    ref = INDEX_TABLES["reference"].c
    sub = select(ref.patient_key, ref.res_type, ref.res_id).where(
        ref.res_type.in_(types),
        ref.param.in_(params),
        ref.target_type == target[0],
        ref.target_id == target[1],
    )
    return tuple_(r.c.patient_key, r.c.res_type, r.c.res_id).in_(sub)


def where_clause(
    r: FromClause, query: ParsedQuery, extra: list[ColumnElement[bool]] | None = None
) -> ColumnElement[bool]:
    """All clauses AND-ed, restricted to live resources of the searched types."""
    types = query.types
    conds: list[ColumnElement[bool]] = [
        r.c.res_type == types[0] if len(types) == 1 else r.c.res_type.in_(types)
    ]
    conds.append(r.c.deleted == false())
    conds.extend(clause_condition(r, c, types) for c in query.clauses)
    conds.extend(extra or [])
    return and_(*conds)


def sort_columns(r: FromClause, query: ParsedQuery) -> list[UnaryExpression[Any] | ColumnElement[Any]]:
    """ORDER BY for _sort (several keys, '-' for descending), ending in a unique tiebreak."""
    order: list[UnaryExpression[Any] | ColumnElement[Any]] = []
    known = common_params(query.types)
    for spec in query.controls.get("_sort", []):
        for key in spec.split(","):
            key = key.strip()
            if not key:
                continue
            desc = key.startswith("-")
            name = key.lstrip("-")
            if name == "_id":
                col: Any = r.c.res_id
            elif name == "_lastUpdated":
                col = r.c.last_updated
            else:
                param = known.get(name)
                if param is None or not param.indexed or param.type == "reference":
                    raise BadRequest(f"Cannot sort by '{name[:64]}'", expression="_sort")
                col = _sort_key(r, param.type, param.code, desc)
            order.append(col.desc() if desc else col.asc())
    order += [r.c.res_type.asc(), r.c.res_id.asc()]
    return order


def _sort_key(r: FromClause, ptype: str, code: str, desc: bool) -> Any:
    t = INDEX_TABLES[ptype]
    column = {
        "date": t.c.get("high" if desc else "low"),
        "string": t.c.get("value_norm"),
        "number": t.c.get("low"),
        "quantity": t.c.get("low"),
        "token": t.c.get("code"),
        "uri": t.c.get("uri"),
    }[ptype]
    agg = func.max(column) if desc else func.min(column)
    return (
        select(agg)
        .where(
            t.c.patient_key == r.c.patient_key,
            t.c.res_type == r.c.res_type,
            t.c.res_id == r.c.res_id,
            t.c.param == code,
        )
        .scalar_subquery()
    )


def page_query(
    query: ParsedQuery, *, offset: int, limit: int, extra: list[ColumnElement[bool]] | None = None
) -> Select[str, str, str, str | None]:
    """The page of matches, content included."""
    r = _RESOURCE
    return (
        select(r.c.patient_key, r.c.res_type, r.c.res_id, r.c.content)
        .where(where_clause(r, query, extra))
        .order_by(*sort_columns(r, query))
        .offset(offset)
        .limit(limit)
    )


def count_query(query: ParsedQuery, extra: list[ColumnElement[bool]] | None = None) -> Select[int]:
    """How many resources match."""
    return select(func.count()).select_from(_RESOURCE).where(where_clause(_RESOURCE, query, extra))


def ids_query(query: ParsedQuery, limit: int) -> Select[str, str, str]:
    """Keys of matches, for conditional interactions."""
    r = _RESOURCE
    return select(r.c.patient_key, r.c.res_type, r.c.res_id).where(where_clause(r, query)).limit(limit)
