"""The search planner: parsed clauses to one SQL query over resource + index tables (both backends)."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, false, func, not_, or_, select, true, tuple_
from sqlalchemy.sql.elements import UnaryExpression

from healthbook.errors import BadRequest
from healthbook.fhir.hashing import hash63
from healthbook.fhir.search.query import Clause, ParsedQuery, split_pipe, split_prefix, unescape
from healthbook.fhir.search.values import date_range, fold, number_range
from healthbook.fhir.store.schema import INDEX_TABLES, resource

_r = resource.c


def _owner_in(table_type: str, types: tuple[str, ...], param: str, cond: ColumnElement[bool] | None) -> ColumnElement[bool]:
    """(patient_key, type, id) IN (index rows of `param` satisfying cond): an uncorrelated semi-join."""
    t = INDEX_TABLES[table_type]
    where = [t.c.param == param]
    where.append(t.c.res_type == types[0] if len(types) == 1 else t.c.res_type.in_(types))
    if cond is not None:
        where.append(cond)
    sub = select(t.c.patient_key, t.c.res_type, t.c.res_id).where(*where)
    return tuple_(_r.patient_key, _r.res_type, _r.res_id).in_(sub)


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _token_value(c: Clause, types: tuple[str, ...], value: str) -> ColumnElement[bool]:
    t = INDEX_TABLES["token"].c
    system, code = split_pipe(value)
    if c.modifier == "text":
        return t.display.is_not(None) & func.lower(t.display).like(f"{_like_escape(unescape(value).lower())}%", escape="\\")
    hashes: list[ColumnElement[bool]] = []
    for rtype in types:
        if system is None:
            hashes.append(t.hash_code == hash63(rtype, c.param.code, code))
        elif code == "":
            hashes.append(t.hash_sys == hash63(rtype, c.param.code, system))
        else:
            hashes.append(t.hash_sys_code == hash63(rtype, c.param.code, system, code))
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
    if len(parts) == 2:
        return (t.target_type == parts[0]) & (t.target_id == parts[1])
    if len(parts) == 1:
        targets = c.param.targets
        cond = t.target_id == ref
        return cond & t.target_type.in_(targets) if targets else cond
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
    try:
        slo, shi = date_range(text)
    except (ValueError, OverflowError):
        raise BadRequest(f"'{value[:60]}' is not a valid date for '{c.raw_name}'", expression=c.raw_name) from None
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


def _number_condition(prefix: str, col: Any, text: str, name: str) -> ColumnElement[bool]:
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
    ops: dict[str, ColumnElement[bool]] = {
        "gt": col > value,
        "sa": col > value,
        "lt": col < value,
        "eb": col < value,
        "ge": col >= value,
        "le": col <= value,
    }
    return ops[prefix]


def _number_value(c: Clause, value: str) -> ColumnElement[bool]:
    prefix, text = split_prefix(value)
    return _number_condition(prefix, INDEX_TABLES["number"].c.low, text, c.raw_name)


def _quantity_value(c: Clause, value: str) -> ColumnElement[bool]:
    t = INDEX_TABLES["quantity"].c
    prefix, rest = split_prefix(value)
    parts = rest.split("|")
    if len(parts) not in (1, 3):
        raise BadRequest(f"'{value[:60]}' is not number|system|code for '{c.raw_name}'", expression=c.raw_name)
    cond = _number_condition(prefix, t.low, parts[0], c.raw_name)
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


def _native(c: Clause) -> ColumnElement[bool]:
    if c.param.code == "_id":
        if c.modifier == "missing":
            return false() if c.values == ("true",) else true()
        return _r.res_id.in_([unescape(v) for v in c.values])
    conds = []
    for value in c.values:
        prefix, slo, shi = _date_search_range(c, value)
        if prefix == "ap":
            conds.append(and_(_r.last_updated >= slo, _r.last_updated <= shi))
        else:
            conds.append(range_condition(prefix, _r.last_updated, _r.last_updated, slo, shi))
    return or_(*conds)


def clause_condition(c: Clause, types: tuple[str, ...]) -> ColumnElement[bool]:
    """The WHERE condition of one clause (its values OR-ed)."""
    if c.param.code in ("_id", "_lastUpdated"):
        return _native(c)
    table = c.param.type
    if c.modifier == "missing":
        present = _owner_in(table, types, c.param.code, None)
        return not_(present) if c.values == ("true",) else present
    if table == "token":
        cond = or_(*(_token_value(c, types, v) for v in c.values))
        inside = _owner_in(table, types, c.param.code, cond)
        return not_(inside) if c.modifier == "not" else inside
    value_fn = _VALUE[table]
    return _owner_in(table, types, c.param.code, or_(*(value_fn(c, v) for v in c.values)))


def where_clause(query: ParsedQuery) -> ColumnElement[bool]:
    """All clauses AND-ed, restricted to live resources of the searched types."""
    types = query.types
    conds: list[ColumnElement[bool]] = [_r.res_type == types[0] if len(types) == 1 else _r.res_type.in_(types)]
    conds.append(_r.deleted == false())
    conds.extend(clause_condition(c, types) for c in query.clauses)
    return and_(*conds)


def sort_columns(query: ParsedQuery) -> list[UnaryExpression[Any] | ColumnElement[Any]]:
    """ORDER BY for _sort (several keys, '-' for descending), ending in a unique tiebreak."""
    order: list[UnaryExpression[Any] | ColumnElement[Any]] = []
    from healthbook.fhir.search.query import common_params

    known = common_params(query.types)
    for spec in query.controls.get("_sort", []):
        for key in spec.split(","):
            key = key.strip()
            if not key:
                continue
            desc = key.startswith("-")
            name = key.lstrip("-")
            if name == "_id":
                col: Any = _r.res_id
            elif name == "_lastUpdated":
                col = _r.last_updated
            else:
                param = known.get(name)
                if param is None or not param.indexed or param.type not in ("date", "string", "number", "token", "quantity", "uri"):
                    raise BadRequest(f"Cannot sort by '{name}'", expression="_sort")
                col = _sort_key(param.type, param.code, desc)
            order.append(col.desc() if desc else col.asc())
    order += [_r.res_type.asc(), _r.res_id.asc()]
    return order


def _sort_key(ptype: str, code: str, desc: bool) -> Any:
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
            t.c.patient_key == _r.patient_key,
            t.c.res_type == _r.res_type,
            t.c.res_id == _r.res_id,
            t.c.param == code,
        )
        .scalar_subquery()
    )


def page_query(query: ParsedQuery, *, offset: int, limit: int) -> Select[tuple[str, str, str, str | None]]:
    """The page of matches, content included."""
    return (
        select(_r.patient_key, _r.res_type, _r.res_id, _r.content)
        .where(where_clause(query))
        .order_by(*sort_columns(query))
        .offset(offset)
        .limit(limit)
    )


def count_query(query: ParsedQuery) -> Select[tuple[int]]:
    """How many resources match."""
    return select(func.count()).select_from(resource).where(where_clause(query))


def ids_query(query: ParsedQuery, limit: int) -> Select[tuple[str, str, str]]:
    """Keys of matches, for conditional interactions."""
    return select(_r.patient_key, _r.res_type, _r.res_id).where(where_clause(query)).limit(limit)
