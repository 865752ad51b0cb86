"""The search planner: parsed clauses to SQL over the index tables and `resource` (both backends).

Shape of every search (docs/architecture.md, "Search"):

* **Keys first.** A key query selects the owner keys (patient_key, res_type, res_id) of the matches,
  ordered and limited. When a clause is met by single index rows (token, string, reference, date…), the
  key query reads those rows (the *driver*) in the order of an index, so that `LIMIT` stops early; it does
  not read `resource`: index rows exist only for live resources, because a write replaces them and a
  delete removes them in the same transaction. Otherwise it reads `resource` (live rows of the types).
* **Other clauses** are uncorrelated semi-joins `(patient_key, res_type, res_id) IN (index rows)`, which
  Citus accepts; chains and `_has` nest the same shape one level down. The only correlated subqueries
  (sort keys, the multi-valued date case) are correlated on patient_key.
* **Content for the page only**: the page joins `resource` on its primary key for the keys of the page.
* **Keyset paging** for the default order and for `_sort` on one date parameter: a page continues after
  (or before) the position of a row, so page n costs what page 1 costs. Other sorts use OFFSET.
"""

from __future__ import annotations

import functools
import math
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, replace
from typing import Any, ParamSpec, TypeVar

from sqlalchemy import (
    ColumnElement,
    FromClause,
    Select,
    Table,
    and_,
    exists,
    false,
    func,
    literal,
    not_,
    or_,
    select,
    true,
    tuple_,
    union_all,
)
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import UnaryExpression

from healthbook.db.dialect import estimate_rows, keys_in, prefix_match, range_reaches
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
from healthbook.fhir.store.schema import INDEX_TABLES, resource, resource_locator

Key = tuple[str, str, str]  # patient_key, res_type, res_id
PageRow = tuple[str, str, str, str | None]  # the key and the content


# ---- owners and conditions -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Own:
    """The owner key columns of a FROM item; `row` is set when that item is a resource row."""

    pk: ColumnElement[Any]
    type: ColumnElement[Any]
    id: ColumnElement[Any]
    row: FromClause | None = None
    src: FromClause | None = None  # the FROM item the columns belong to

    def key(self) -> ColumnElement[Any]:
        """(patient_key, res_type, res_id) as a row value."""
        return tuple_(self.pk, self.type, self.id)


def _own(t: FromClause, *, is_resource: bool = False) -> Own:
    return Own(t.c.patient_key, t.c.res_type, t.c.res_id, t if is_resource else None, t)


@dataclass(frozen=True, slots=True)
class RowCond:
    """A condition that single index rows meet: a resource matches when one of its rows does.

    `alias` is this condition's own alias of the index table and `cond` is built on it (parameter and
    resource types included), so the same object serves as the driver of a key query or as a semi-join.
    """

    table: str
    code: str
    alias: FromClause
    cond: ColumnElement[bool]
    rank: int  # driver preference, lowest first
    # Alternatives whose rows together are exactly the rows of `cond`, each of which an index reads in
    # the default order (a page of the default order merges them instead of sorting all the rows).
    branches: tuple[RowCond, ...] = ()
    chain: Clause | None = None  # a branch of the rows referring to the Patients this chain selects

    def rows(self) -> Select[Any]:
        """The owner keys of the rows that meet the condition."""
        t = self.alias
        return select(t.c.patient_key, t.c.res_type, t.c.res_id).where(self.cond)

    def on(self, own: Own) -> ColumnElement[bool]:
        """The owner is among them."""
        return own.key().in_(self.rows())

    def probe(self, own: Own) -> ColumnElement[bool]:
        """The owner has a row, checked row by row of the outer scan (see _walks_dates)."""
        t = self.alias
        return _per_row(
            [self.cond, t.c.patient_key == own.pk, t.c.res_type == own.type, t.c.res_id == own.id]
        )


def _per_row(where: Sequence[ColumnElement[bool]]) -> ColumnElement[bool]:
    """A row meeting `where` exists, checked once per row of the outer scan (one index probe each)."""
    found = exists(select(literal(1)).where(*where).offset(0))
    # `IS TRUE` keeps PostgreSQL from turning the EXISTS into a semi-join, and OFFSET 0 from turning it
    # into a hashed subplan of every matching row.
    return found.is_(true())


@dataclass(frozen=True, slots=True)
class OwnerCond:
    """A condition on the owner (negations, _id, _lastUpdated, _has, compartments)."""

    build: Callable[[Own], ColumnElement[bool]]

    def on(self, own: Own) -> ColumnElement[bool]:
        """The condition for these owner columns."""
        return self.build(own)


Cond = RowCond | OwnerCond


def _in_types(col: ColumnElement[Any], types: Sequence[str]) -> ColumnElement[bool]:
    return col == types[0] if len(types) == 1 else col.in_(types)


# Aliases are built once and reused: building one sets up a proxy per column, which is much of the Python
# time of a search. Statements are immutable, so an alias may appear in any number of statements, but
# at most once per statement: each statement set (a page and its segments, a count) numbers its aliases
# afresh per table.
_POOL: dict[str, list[FromClause]] = {}
_POOL_LOCK = threading.Lock()
_NUMBERS: ContextVar[dict[str, int] | None] = ContextVar("search_alias_numbers", default=None)


def _alias(table: Table) -> FromClause:
    numbers = _NUMBERS.get()
    if numbers is None:
        return table.alias()
    n = numbers.get(table.name, 0)
    numbers[table.name] = n + 1
    pool = _POOL.get(table.name)
    if pool is None or len(pool) <= n:
        with _POOL_LOCK:
            pool = _POOL.setdefault(table.name, [])
            while len(pool) <= n:
                pool.append(table.alias(f"{table.name}_{len(pool) + 1}"))
    return pool[n]


@contextmanager
def _statements() -> Iterator[None]:
    """Number the aliases of the statements built inside afresh (nested uses share the numbering)."""
    if _NUMBERS.get() is not None:
        yield
        return
    token = _NUMBERS.set({})
    try:
        yield
    finally:
        _NUMBERS.reset(token)


_P = ParamSpec("_P")
_T = TypeVar("_T")


def _statement_set(fn: Callable[_P, _T]) -> Callable[_P, _T]:
    """Build the statements of fn with their own alias numbering."""

    @functools.wraps(fn)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _T:
        with _statements():
            return fn(*args, **kwargs)

    return wrapper


# What the caller may see, as a condition on owner columns (access control); None: everything. Every FROM
# item of matches goes through _source, so chains, _has, counts and pages are filtered alike.
_ACCESS: ContextVar[Callable[[Own], ColumnElement[bool]] | None] = ContextVar("search_access", default=None)


@contextmanager
def restricted(condition: Callable[[Own], ColumnElement[bool]] | None) -> Iterator[None]:
    """Build and run the statements inside for a caller who sees only what `condition` admits."""
    token = _ACCESS.set(condition)
    try:
        yield
    finally:
        _ACCESS.reset(token)


def is_restricted() -> bool:
    """Whether the statements being built are for a restricted caller."""
    return _ACCESS.get() is not None


def access_conditions(own: Own) -> list[ColumnElement[bool]]:
    """The access condition on these owner columns, if the statement is built for a restricted caller."""
    condition = _ACCESS.get()
    return [] if condition is None else [condition(own)]


def _index_alias(table_type: str) -> FromClause:
    return _alias(INDEX_TABLES[table_type])


def _rows_of(table_type: str, types: tuple[str, ...], code: str) -> Select[Any]:
    """Owner keys of every row of a parameter (for :missing and :not)."""
    t = _index_alias(table_type)
    return select(t.c.patient_key, t.c.res_type, t.c.res_id).where(
        t.c.param == code, _in_types(t.c.res_type, types)
    )


# ---- values ----------------------------------------------------------------------------------------------


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _token_value(
    t: FromClause, c: Clause, types: tuple[str, ...], value: str, suffix: str = ""
) -> ColumnElement[bool]:
    pcode = c.param.code + suffix
    if c.modifier == "of-type":
        parts = split_pipes(value)
        if len(parts) != 3 or not parts[1] or not parts[2]:
            raise BadRequest(
                f"'{value[:80]}' is not type-system|type-code|value for '{c.raw_name}'", expression=c.raw_name
            )
        kind = f"{parts[0]}|{parts[1]}"
        return or_(*(_sys_code(t, rtype, pcode, kind, parts[2]) for rtype in types))
    system, code = split_pipe(value)
    if c.modifier == "text":
        pattern = f"{_like_escape(unescape(value).lower())}%"
        return t.c.display.is_not(None) & func.lower(t.c.display).like(pattern, escape="\\")
    hashes: list[ColumnElement[bool]] = []
    for rtype in types:
        if system is None:
            hashes.append(t.c.hash_code == hash63(rtype, pcode, code))
        elif code == "":
            hashes.append(t.c.hash_sys == hash63(rtype, pcode, system))
        else:
            hashes.append(_sys_code(t, rtype, pcode, system, code))
    return or_(*hashes)


def _sys_code(t: FromClause, rtype: str, pcode: str, system: str, code: str) -> ColumnElement[bool]:
    """system|code: seek the code's hash, compare the (system, code) hash in the same index entry."""
    return (t.c.hash_code == hash63(rtype, pcode, code)) & (
        t.c.hash_sys_code == hash63(rtype, pcode, system, code)
    )


def _string_value(t: FromClause, c: Clause, value: str) -> ColumnElement[bool]:
    text = unescape(value)
    if c.modifier == "exact":
        return t.c.value_exact == text
    if c.modifier == "contains":
        return t.c.value_norm.like(f"%{_like_escape(fold(text))}%", escape="\\")
    return prefix_match(t.c.value_norm, fold(text))


def _reference_value(t: FromClause, c: Clause, value: str) -> ColumnElement[bool]:
    ref = unescape(value)
    if c.modifier and c.modifier[:1].isupper():
        return (t.c.target_type == c.modifier) & (t.c.target_id == ref)
    if "://" in ref or ref.startswith("urn:"):
        parts = ref.rstrip("/").split("/")
        cond = t.c.target_url == ref
        if len(parts) >= 2 and parts[-2][:1].isupper():
            cond = cond | ((t.c.target_type == parts[-2]) & (t.c.target_id == parts[-1]))
        return cond
    parts = ref.split("/")
    if len(parts) == 2 and parts[0][:1].isupper():
        return (t.c.target_type == parts[0]) & (t.c.target_id == parts[1])
    if len(parts) == 1:
        cond = t.c.target_id == ref
        return cond & t.c.target_type.in_(c.param.targets) if c.param.targets else cond
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


def _date_row(prefix: str, lo: Any, hi: Any, slo: int, shi: int) -> ColumnElement[bool]:
    if prefix == "ap":
        return and_(lo <= shi, hi >= slo)
    return range_condition(prefix, lo, hi, slo, shi)


def _date_bounds(prefix: str, slo: int, shi: int) -> tuple[int | None, int | None]:
    """(B, A): every row meeting the prefix has an end >= B and an end <= A (None: no such bound).

    So a resource with a matching row has envelope env_high >= B and env_low <= A (the envelope spans
    all ends of all its rows of the parameter), which an index on the envelope can seek.
    """
    return {
        "eq": (slo, shi),
        "ap": (slo, shi),
        "ne": (None, None),
        "gt": (shi + 1, None),
        "ge": (slo, None),
        "sa": (shi + 1, None),
        "lt": (None, slo - 1),
        "le": (None, shi),
        "eb": (None, slo - 1),
    }[prefix]


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


def _number_value(t: FromClause, c: Clause, value: str) -> ColumnElement[bool]:
    prefix, text = split_prefix(value)
    return number_condition(prefix, t.c.low, text, c.raw_name)


def _quantity_value(t: FromClause, c: Clause, value: str) -> ColumnElement[bool]:
    prefix, rest = split_prefix(value)
    parts = rest.split("|")
    if len(parts) not in (1, 3):
        raise BadRequest(
            f"'{value[:60]}' is not number|system|code for '{c.raw_name}'", expression=c.raw_name
        )
    cond = number_condition(prefix, t.c.low, parts[0], c.raw_name)
    if len(parts) == 3:
        system, code = parts[1], parts[2]
        if code:
            cond = cond & (t.c.code == code)
        if system:
            cond = cond & (t.c.system == system)
    return cond


def _uri_value(t: FromClause, c: Clause, value: str) -> ColumnElement[bool]:
    uri = unescape(value)
    if c.modifier == "below":
        return t.c.uri.like(f"{_like_escape(uri)}%", escape="\\")
    if c.modifier == "above":
        prefixes = [uri[:i] for i in range(len(uri), 0, -1) if i == len(uri) or uri[i] == "/"]
        return t.c.uri.in_(prefixes)
    return t.c.uri == uri


_VALUE: dict[str, Callable[[FromClause, Clause, str], ColumnElement[bool]]] = {
    "string": _string_value,
    "reference": _reference_value,
    "number": _number_value,
    "quantity": _quantity_value,
    "uri": _uri_value,
}
_RANK = {"reference": 0, "string": 2, "uri": 2, "quantity": 3, "number": 3}


# ---- clauses to conditions -------------------------------------------------------------------------------


def _row_cond(
    table: str,
    code: str,
    types: tuple[str, ...],
    value: Callable[[FromClause], ColumnElement[bool]],
    rank: int,
    *,
    hashed: bool = False,
) -> RowCond:
    """`hashed`: the value compares hashes of (type, parameter, ...), which imply both, so they are left
    out: the index then answers alone, and the planner's estimate is not divided by them again."""
    t = _index_alias(table)
    if hashed:
        return RowCond(table, code, t, value(t), rank)
    cond = and_(t.c.param == code, _in_types(t.c.res_type, types), value(t))
    return RowCond(table, code, t, cond, rank)


def _plan(
    types: tuple[str, ...], clauses: Sequence[Clause], conn: Connection | None = None, size: int = 51
) -> list[Cond]:
    """The conditions of AND-ed clauses; the plain date clauses of one parameter become one condition."""
    conds: list[Cond] = []
    dates: dict[str, list[Clause]] = {}
    for c in clauses:
        if (
            c.chain is None
            and c.param.type == "date"
            and c.modifier is None
            and c.param.code != "_lastUpdated"
        ):
            dates.setdefault(c.param.code, []).append(c)
        else:
            conds.append(_cond(c, types, conn, size))
    conds.extend(_date_cond(code, group, types) for code, group in dates.items())
    return conds


def _cond(c: Clause, types: tuple[str, ...], conn: Connection | None = None, size: int = 51) -> Cond:
    if c.has is not None:
        return _has_cond(c, types, conn, size)
    if c.chain is not None:
        targets = _match_select(c.chain_types, [c.chain], owner=False)
        cond = _row_cond(
            "reference", c.param.code, types, lambda t: tuple_(t.c.target_type, t.c.target_id).in_(targets), 4
        )
        if c.chain_types == ("Patient",):
            return replace(cond, branches=_patient_chain_branches(c, types))
        return cond
    if c.param.code == "_id":
        if c.modifier == "missing":
            present = c.values != ("true",)
            return OwnerCond(lambda own: true() if present else false())
        ids = [unescape(v) for v in c.values]
        return OwnerCond(lambda own: own.id.in_(ids))
    if c.param.code == "_lastUpdated":
        return _last_updated_cond(c, types)
    table = c.param.type
    if c.modifier == "missing":
        present_rows = _rows_of(table, types, c.param.code)
        missing = c.values == ("true",)
        return OwnerCond(
            lambda own: not_(own.key().in_(present_rows)) if missing else own.key().in_(present_rows)
        )
    if c.modifier in ("identifier", "of-type"):
        suffix = ":" + c.modifier
        return _row_cond(
            "token",
            c.param.code + suffix,
            types,
            lambda t: or_(*(_token_value(t, c, types, v, suffix) for v in c.values)),
            0 if len(c.values) == 1 else 1,
            hashed=True,
        )
    if table == "composite":
        definition = composites_for(types[0])[c.param.code]
        return _row_cond(
            "composite",
            c.param.code,
            types,
            lambda t: or_(
                *(composite_value_condition(t, types, definition, v, c.raw_name) for v in c.values)
            ),
            2,
        )
    if table == "token":
        rank = 4 if c.modifier == "text" else 0 if len(c.values) == 1 else 1
        inside = _row_cond(
            "token",
            c.param.code,
            types,
            lambda t: or_(*(_token_value(t, c, types, v) for v in c.values)),
            rank,
            hashed=c.modifier != "text",
        )
        if c.modifier == "not":
            return OwnerCond(lambda own: not_(inside.on(own)))
        return inside
    value_fn = _VALUE[table]
    rank = _RANK[table] + (1 if table == "reference" and len(c.values) > 1 else 0)
    return _row_cond(table, c.param.code, types, lambda t: or_(*(value_fn(t, c, v) for v in c.values)), rank)


def _patient_chain_branches(c: Clause, types: tuple[str, ...]) -> tuple[RowCond, RowCond]:
    """A chain to Patients as two branches of the reference rows, each in the default order.

    A Patient's id is its patient_key, and a resource referring to a Patient is nearly always stored
    under that Patient's key: those rows are the Patient's own rows of the owner index, in (patient_key,
    type, id) order. The others (held under another patient's key) are the partial index's. A page may
    read the own rows Patient by Patient instead (_chain_walk).
    """
    assert c.chain is not None
    code = c.param.code

    own_ids = _match_ids(c)
    foreign_ids = _match_ids(c)
    own_rows = _row_cond(
        "reference",
        code,
        types,
        lambda t: and_(
            t.c.target_type == "Patient", t.c.target_id == t.c.patient_key, t.c.patient_key.in_(own_ids)
        ),
        4,
    )
    foreign_rows = _row_cond(
        "reference",
        code,
        types,
        lambda t: and_(
            t.c.target_type == "Patient", t.c.patient_key != t.c.target_id, t.c.target_id.in_(foreign_ids)
        ),
        4,
    )
    return replace(own_rows, chain=c), foreign_rows


def _match_ids(c: Clause) -> Select[Any]:
    """The ids of the Patients a chain's inner clause selects."""
    assert c.chain is not None
    _, own, where, _ = _source(("Patient",), _plan(("Patient",), [c.chain]))
    return select(own.id).where(*where)


CHAIN_WALK_MIN = 200  # index rows of the inner clause (counted up to there) below which a chain is joined
_ESTIMATES: dict[tuple[str, ...], tuple[float, int]] = {}  # (database URL, what) -> (when, rows)


def _estimated(conn: Connection, what: tuple[str, ...], stmt: Select[Any]) -> int:
    """The planner's row estimate for stmt (0 on SQLite), kept a minute: table sizes move slowly."""
    key = (str(conn.engine.url), *what)
    now = time.monotonic()
    known = _ESTIMATES.get(key)
    if known is not None and now - known[0] < 60:
        return known[1]
    value = estimate_rows(conn, stmt) or 0
    _ESTIMATES[key] = (now, value)
    return value


def _patients(conn: Connection) -> int:
    """About how many Patients there are."""
    r = resource
    live = select(r.c.res_id).where(r.c.res_type == "Patient", r.c.deleted == false())
    return _estimated(conn, ("Patient",), live)


def _walked_branches(
    conn: Connection,
    branches: tuple[RowCond, ...],
    types: tuple[str, ...],
    position: tuple[Any, ...] | None,
    desc: bool,
    n: int,
) -> tuple[RowCond, ...]:
    """The branches of a chain to Patients (own rows, foreign rows) for a page that walks the own rows.

    The foreign rows are joined to every match, which the walk avoids: when the searched types hold no
    reference to a Patient under another patient's key for this parameter (one probe of the partial
    index), that branch is left out.
    """
    own, foreign = branches
    walked = _chain_walk(conn, own, types, position, desc, n)
    if walked is None:
        return branches
    t = _index_alias("reference")
    held = select(literal(1)).where(
        t.c.param == own.code,
        _in_types(t.c.res_type, types),
        t.c.target_type == "Patient",
        t.c.patient_key != t.c.target_id,
    )
    if conn.execute(held.limit(1)).first() is None:
        return (walked,)
    return walked, foreign


def _chain_walk(
    conn: Connection,
    branch: RowCond,
    types: tuple[str, ...],
    position: tuple[Any, ...] | None,
    desc: bool,
    n: int,
) -> RowCond | None:
    """The own rows of a chain to Patients for a page: those of the first n matching Patients in order.

    Joining reads every row that refers to a matching Patient, which grows with the matches (114,086
    Observations of the 5,310 Patients named Nguyễn at 1M resources: 65 ms). Every matching Patient
    with a referring row gives the page at least one row, so the page's rows are among those of the
    first n such Patients from the page's position, found by reading the Patients in id order and
    checking each (about n / share matched Patients: 2.5 ms for Nguyễn). The walk costs ∝ n·P/M for P
    Patients and M matches (index rows of the inner clause, counted up to the bound), the join ∝ M:
    measured at 1M, the walk pays from M ≈ sqrt(2·n·P). None: join (always on SQLite).
    """
    c = branch.chain
    assert c is not None and c.chain is not None
    if conn.dialect.name != "postgresql":
        return None
    cap = max(CHAIN_WALK_MIN, math.isqrt(2 * n * _patients(conn)))
    capped = select(func.count()).select_from(_match_ids(c).limit(cap).subquery())
    if int(conn.execute(capped).scalar_one()) < cap:
        return None
    _, own, where, _ = _source(("Patient",), _plan(("Patient",), [c.chain]))
    p = _alias(resource)
    held = _index_alias("reference")
    code = c.param.code
    walk = [
        p.c.res_type == "Patient",
        _per_row([*where, own.pk == p.c.patient_key, own.id == p.c.res_id]),
        _per_row(
            [
                held.c.param == code,
                _in_types(held.c.res_type, types),
                held.c.target_type == "Patient",
                held.c.target_id == p.c.res_id,
                held.c.patient_key == p.c.patient_key,
            ]
        ),
    ]
    if position is not None:
        walk.append(p.c.res_id <= position[0] if desc else p.c.res_id >= position[0])
    first = select(p.c.patient_key).where(*walk).order_by(_direction(p.c.res_id, desc)).limit(n)
    return _row_cond(
        "reference",
        code,
        types,
        lambda t: and_(
            t.c.target_type == "Patient", t.c.target_id == t.c.patient_key, t.c.patient_key.in_(first)
        ),
        4,
    )


def _last_updated_cond(c: Clause, types: tuple[str, ...]) -> OwnerCond:
    ranges = [_date_search_range(c, v) for v in c.values]

    def on(col: ColumnElement[Any]) -> ColumnElement[bool]:
        return or_(*(_date_row(p, col, col, lo, hi) for p, lo, hi in ranges))

    def build(own: Own) -> ColumnElement[bool]:
        if own.row is not None:
            return on(own.row.c.last_updated)
        r = _alias(resource)
        live = select(r.c.patient_key, r.c.res_type, r.c.res_id).where(
            _in_types(r.c.res_type, types), r.c.deleted == false(), on(r.c.last_updated)
        )
        return own.key().in_(live)

    return OwnerCond(build)


def _date_cond(code: str, group: list[Clause], types: tuple[str, ...]) -> RowCond:
    """All plain clauses of one date parameter, as one probe of the envelope index plus exact checks.

    Each clause alone is met by a single row, but two clauses (date=ge…&date=lt…) may be met by different
    rows of a resource with several values. The envelope [env_low, env_high] of a resource's rows for
    the parameter bounds all its rows, so one seek on it finds every candidate. A candidate row that
    meets every clause itself settles the match; otherwise, for a resource with several distinct values
    (the row differs from the envelope), each clause is checked on all its rows.
    """
    parsed = [[_date_search_range(c, v) for v in c.values] for c in group]
    lower: list[int] = []
    upper: list[int] = []
    for values in parsed:
        bounds = [_date_bounds(p, lo, hi) for p, lo, hi in values]
        if all(b[0] is not None for b in bounds):
            lower.append(min(b[0] for b in bounds if b[0] is not None))
        if all(b[1] is not None for b in bounds):
            upper.append(max(b[1] for b in bounds if b[1] is not None))
    low_bound = max(lower) if lower else None
    high_bound = min(upper) if upper else None
    t = _index_alias("date")
    base: list[ColumnElement[bool]] = [t.c.param == code, _in_types(t.c.res_type, types)]
    if low_bound is not None and high_bound is not None:
        base.append(range_reaches(t.c.env_low, t.c.env_high, low_bound, high_bound))
    elif low_bound is not None:
        base.append(t.c.env_high >= low_bound)
    elif high_bound is not None:
        base.append(t.c.env_low <= high_bound)

    def matches(a: FromClause, values: list[tuple[str, int, int]]) -> ColumnElement[bool]:
        return or_(*(_date_row(p, a.c.low, a.c.high, lo, hi) for p, lo, hi in values))

    same_row = and_(*(matches(t, values) for values in parsed))
    if len(parsed) == 1:
        return RowCond("date", code, t, and_(*base, same_row), 3)
    per_clause = []
    for values in parsed:
        t2 = _index_alias("date")
        per_clause.append(
            select(literal(1))
            .where(
                t2.c.patient_key == t.c.patient_key,
                t2.c.res_type == t.c.res_type,
                t2.c.res_id == t.c.res_id,
                t2.c.param == code,
                matches(t2, values),
            )
            .exists()
        )
    several = or_(t.c.env_low != t.c.low, t.c.env_high != t.c.high)
    return RowCond("date", code, t, and_(*base, or_(same_row, and_(several, *per_clause))), 3)


def _has_cond(c: Clause, types: tuple[str, ...], conn: Connection | None = None, size: int = 51) -> OwnerCond:
    """_has: the resource is the target of a reference held by a matching source resource.

    The targets are collected first (a materialized CTE: O(matching sources)), except for Patients when
    a page is read and the sources are many: then each Patient in order is checked in its own shard
    (O(page)), see _has_per_patient.
    """
    assert c.has is not None and c.chain is not None
    source, code = c.has
    if types == ("Patient",) and conn is not None:
        walk = _has_per_patient(c, source, code, conn, size)
        if walk is not None:
            return walk
    sources = _match_select((source,), [c.chain], owner=True)
    ref = _index_alias("reference")
    where = [
        ref.c.res_type == source,
        ref.c.param == code,
        _in_types(ref.c.target_type, types),
        tuple_(ref.c.patient_key, ref.c.res_type, ref.c.res_id).in_(sources),
    ]
    if types == ("Patient",):
        # A Patient is stored under its own id as patient_key: the target is its full primary key.
        found = select(ref.c.target_id, ref.c.target_type, ref.c.target_id.label("id")).where(*where)
    else:
        loc = _alias(resource_locator)
        targets = select(ref.c.target_type, ref.c.target_id).where(*where)
        found = select(loc.c.patient_key, loc.c.res_type, loc.c.res_id).where(
            tuple_(loc.c.res_type, loc.c.res_id).in_(targets)
        )
    # Computed once, first: the planner's estimates for nested semi-joins are far too low, and it would
    # rather probe every resource of the searched type than collect the few targets.
    holders = found.cte().prefix_with("MATERIALIZED")
    keys = select(*holders.c)
    return OwnerCond(lambda own: own.key().in_(keys))


HAS_PER_PATIENT_FROM = 200  # matching sources (at least) from which _has checks Patient by Patient


def _has_per_patient(c: Clause, source: str, code: str, conn: Connection, size: int) -> OwnerCond | None:
    """_has on Patients as a check per Patient, when the matching sources are many.

    A Patient matches when a source resource that meets the inner clause references it. Nearly always
    that source lives under the Patient's own key (it is in the Patient's compartment): one seek of the
    inner clause's index rows at (value, patient_key) and one probe of the reference finds it, in the
    Patient's shard. The other holders (a reference to a Patient from a resource stored under another
    patient's key) are in a small partial index and are checked exactly. Walking the Patients in order,
    a page stops after a page's worth, whatever the number of sources; with few sources, collecting
    the targets first is cheaper, hence the count (bounded) that chooses. The walk reads about
    size / (share of Patients with a source) Patients, so the bound grows with the Patients P:
    max(HAS_PER_PATIENT_FROM, sqrt(size·P/4)). Measured at 1M (15,280 Patients, ms walked / joined,
    `Patient?_has:Observation:subject:code=…`): 211 sources 7.3 / 4.2, 2,251: 2.9 / 18.3, 20,060: 2.8 / 129.
    """
    assert c.chain is not None
    first = _plan((source,), [c.chain])
    second = _plan((source,), [c.chain])
    rows = [x for x in first if isinstance(x, RowCond)]
    if not rows:
        return None
    driver = min(rows, key=lambda x: x.rank)
    _, own_s, where_s, _ = _source((source,), first, driver)
    cap = max(HAS_PER_PATIENT_FROM, math.isqrt(size * _patients(conn) // 4))
    many = select(func.count()).select_from(select(own_s.pk).where(*where_s).limit(cap).subquery())
    if conn.execute(many).scalar_one() < cap:
        return None
    driver2 = min((x for x in second if isinstance(x, RowCond)), key=lambda x: x.rank)
    d, d2 = driver.alias, driver2.alias

    def same_owner(a: FromClause, b: FromClause) -> list[ColumnElement[bool]]:
        return [a.c.patient_key == b.c.patient_key, a.c.res_type == b.c.res_type, a.c.res_id == b.c.res_id]

    def build(own: Own) -> ColumnElement[bool]:
        outer = [own.src] if own.src is not None else []
        ref = _index_alias("reference")
        holds = (
            select(literal(1))
            .where(
                *same_owner(ref, d),
                ref.c.param == code,
                ref.c.target_type == "Patient",
                ref.c.target_id == own.id,
            )
            .correlate(d, *outer)  # two levels down: name them, or own's table would join here afresh
            .offset(0)  # OFFSET keeps the EXISTS a per-row check (it is not turned into a hash of all rows)
            .exists()
        )
        in_shard = (
            select(literal(1))
            .where(
                driver.cond,
                d.c.patient_key == own.pk,
                *(x.on(_own(d)) for x in first if x is not driver),
                *access_conditions(_own(d)),
                holds,
            )
            .correlate(*outer)
            .offset(0)
            .exists()
        )
        ref2 = _index_alias("reference")
        meets = (
            select(literal(1))
            .where(
                driver2.cond,
                *same_owner(d2, ref2),
                *(x.on(_own(d2)) for x in second if x is not driver2),
                *access_conditions(_own(d2)),
            )
            .correlate(ref2)
            .offset(0)
            .exists()
        )
        foreign = select(ref2.c.target_id, ref2.c.target_type, ref2.c.target_id.label("id")).where(
            ref2.c.target_type == "Patient",
            ref2.c.patient_key != ref2.c.target_id,
            ref2.c.res_type == source,
            ref2.c.param == code,
            meets,
        )
        return or_(in_shard, own.key().in_(foreign))

    return OwnerCond(build)


def _compartment_cond(types: tuple[str, ...], compartment: Compartment) -> Cond:
    """Membership of a compartment: a member parameter points at the compartment's resource."""
    ref = _index_alias("reference")
    cond = and_(
        _in_types(ref.c.res_type, types),
        ref.c.param.in_(compartment.params),
        ref.c.target_type == compartment.name,
        ref.c.target_id == compartment.id,
    )
    if compartment.name != "Patient":
        return RowCond("reference", "", ref, cond, 1)
    members = select(ref.c.patient_key, ref.c.res_type, ref.c.res_id).where(cond)
    # Most members live under the patient's own shard key; the union keeps the others.
    r = _alias(resource)
    same_key = select(r.c.patient_key, r.c.res_type, r.c.res_id).where(
        r.c.patient_key == compartment.id, _in_types(r.c.res_type, types)
    )
    union = members.union_all(same_key)
    return OwnerCond(lambda own: own.key().in_(union))


@dataclass(frozen=True, slots=True)
class Compartment:
    """A compartment search: its type, id and the member parameters of the searched types."""

    name: str
    id: str
    params: tuple[str, ...]


def _source(
    types: tuple[str, ...], conds: Sequence[Cond], driver: RowCond | None = None, *, probe: bool = False
) -> tuple[FromClause, Own, list[ColumnElement[bool]], bool]:
    """FROM, owner columns and WHERE of the matches, and whether an owner may occur on several rows.

    `probe`: the other row conditions are checked per driver row (RowCond.probe), not joined.
    """
    if driver is None:
        driver = _driver(conds)
    if driver is None:
        r = _alias(resource)
        own = _own(r, is_resource=True)
        where = [_in_types(r.c.res_type, types), r.c.deleted == false(), *(c.on(own) for c in conds)]
        return r, own, [*where, *access_conditions(own)], False
    own = _own(driver.alias)
    others = [
        c.probe(own) if probe and isinstance(c, RowCond) else c.on(own) for c in conds if c is not driver
    ]
    return driver.alias, own, [driver.cond, *others, *access_conditions(own)], True


def _match_select(types: tuple[str, ...], clauses: Sequence[Clause], *, owner: bool) -> Select[Any]:
    """(patient_key,) res_type, res_id of the live resources of `types` meeting all clauses (a set)."""
    _, own, where, _ = _source(types, _plan(types, clauses))
    cols = [own.pk, own.type, own.id] if owner else [own.type, own.id]
    return select(*cols).where(*where)


def _conds(
    query: ParsedQuery, compartment: Compartment | None, conn: Connection | None = None, size: int = 51
) -> list[Cond]:
    """The conditions of a query; `conn` lets _has look at the data to choose its plan for a page of
    `size` rows (pages only)."""
    conds = _plan(query.types, query.clauses, conn, size)
    if compartment is not None:
        conds.append(_compartment_cond(query.types, compartment))
    return conds


# ---- ordering ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Order:
    """How matches are ordered: `default` (type, id), `date` (one date parameter) or `general`."""

    kind: str
    keys: tuple[tuple[str, bool], ...] = ()  # (parameter, descending) per _sort key
    ptypes: tuple[str, ...] = ()  # parameter type per key ("" for _id and _lastUpdated)

    @property
    def keyset(self) -> bool:
        """Whether pages continue from a position (else from an offset)."""
        return self.kind in ("default", "date")


def order_of(query: ParsedQuery) -> Order:
    """The ordering _sort asks for (several keys, '-' for descending); missing values sort last."""
    keys: list[tuple[str, bool]] = []
    ptypes: list[str] = []
    known = common_params(query.types)
    for spec in query.controls.get("_sort", []):
        for raw in spec.split(","):
            key = raw.strip()
            if not key:
                continue
            desc = key.startswith("-")
            name = key.lstrip("-")
            if name in ("_id", "_lastUpdated"):
                ptypes.append("")
            else:
                param = known.get(name)
                if param is None or not param.indexed or param.type == "reference":
                    raise BadRequest(f"Cannot sort by '{name[:64]}'", expression="_sort")
                ptypes.append(param.type)
            keys.append((name, desc))
    if not keys:
        return Order("default")
    if len(keys) == 1 and ptypes[0] == "date":
        return Order("date", tuple(keys), tuple(ptypes))
    return Order("general", tuple(keys), tuple(ptypes))


_SORT_COLUMN = {
    "string": "value_norm",
    "number": "low",
    "quantity": "low",
    "token": "code",
    "uri": "uri",
}


def _sort_value(own: Own, name: str, ptype: str, desc: bool) -> ColumnElement[Any]:
    """The sort key of one owner: the smallest value ascending, the largest descending."""
    if name == "_id":
        return own.id
    if name == "_lastUpdated":
        if own.row is not None:
            return own.row.c.last_updated
        r = _alias(resource)
        return (
            select(r.c.last_updated)
            .where(r.c.patient_key == own.pk, r.c.res_type == own.type, r.c.res_id == own.id)
            .scalar_subquery()
        )
    t = _index_alias(ptype)
    column = (t.c.env_high if desc else t.c.env_low) if ptype == "date" else t.c[_SORT_COLUMN[ptype]]
    agg = func.max(column) if desc else func.min(column)
    return (
        select(agg)
        .where(
            t.c.patient_key == own.pk,
            t.c.res_type == own.type,
            t.c.res_id == own.id,
            t.c.param == name,
        )
        .scalar_subquery()
    )


def _direction(col: ColumnElement[Any], desc: bool) -> UnaryExpression[Any]:
    return col.desc() if desc else col.asc()


def _after(cols: Sequence[ColumnElement[Any]], values: Sequence[Any], desc: bool) -> ColumnElement[bool]:
    """Rows strictly after `values` in the order (all columns in one direction)."""
    left = cols[0] if len(cols) == 1 else tuple_(*cols)
    right = literal(values[0]) if len(values) == 1 else tuple_(*(literal(v) for v in values))
    return left < right if desc else left > right


# ---- key queries -------------------------------------------------------------------------------------------

KEY_COLUMNS = ("patient_key", "res_type", "res_id")


@dataclass(frozen=True, slots=True)
class KeyQuery:
    """A key query, the order of its columns (label, descending, nulls last) and its kind of position.

    kind: "default" (positions (patient_key, res_type, res_id)), "date" ((0, value, patient_key, res_type,
    res_id)), "missing" ((1, None, patient_key, res_type, res_id): the resources without a value of the
    date sort), "general" (none).
    """

    stmt: Select[Any]
    order: tuple[tuple[str, bool, bool], ...]
    kind: str = "default"

    def position(self, row: Any) -> tuple[Any, ...] | None:
        """The position of a row of the page statement."""
        if self.kind == "default":
            return (row[0], row[1], row[2])
        if self.kind == "date":
            return (0, row[4], row[0], row[1], row[2])
        if self.kind == "missing":
            return (1, None, row[0], row[1], row[2])
        return None


def _key_order(own: Own, types: tuple[str, ...]) -> list[ColumnElement[Any]]:
    """The default order, (patient_key, res_type, res_id): the order of the index rows after the value.

    A Patient's patient_key is its id, so Patients read from `resource` are ordered by id alone, which
    the (res_type, res_id) index gives (the same order).
    """
    if own.row is not None and types == ("Patient",):
        return [own.id]
    return [own.pk, own.type, own.id]


def _keys(
    types: tuple[str, ...],
    conds: Sequence[Cond],
    *,
    desc: bool,
    position: tuple[Any, ...] | None,
    offset: int,
    limit: int,
    kind: str = "default",
    conn: Connection | None = None,
) -> KeyQuery:
    """Matches in the default order, all ascending or all descending; positions (pk, type, id).

    `conn` (pages only) lets a chain look at the data to choose its plan (_chain_walk).
    """
    driver = _driver(conds)
    if driver is not None and driver.branches:
        return _merged_keys(
            types,
            conds,
            driver,
            desc=desc,
            position=position,
            offset=offset,
            limit=limit,
            kind=kind,
            conn=conn,
        )
    _, own, where, several = _source(types, conds)
    order = _key_order(own, types)
    if position is not None:
        values = [position[2]] if len(order) == 1 else list(position)
        where.append(_after(order, values, desc))
    stmt = select(own.pk.label("patient_key"), own.type.label("res_type"), own.id.label("res_id")).where(
        *where
    )
    if several:
        stmt = stmt.group_by(own.pk, own.type, own.id)
    stmt = stmt.order_by(*(_direction(col, desc) for col in order))
    spec = tuple((name, desc, False) for name in ("patient_key", "res_type", "res_id"))
    if len(order) == 1:
        spec = (("res_id", desc, False),)
    return KeyQuery(stmt.offset(offset or None).limit(limit), spec, kind)


def _merged_keys(
    types: tuple[str, ...],
    conds: Sequence[Cond],
    driver: RowCond,
    *,
    desc: bool,
    position: tuple[Any, ...] | None,
    offset: int,
    limit: int,
    kind: str,
    conn: Connection | None,
) -> KeyQuery:
    """_keys for a driver with branches: each branch's first rows in order, merged (UNION ALL).

    With `conn` (a page), a chain's branch alone in the query may be walked (_chain_walk); with other
    conditions or for a restricted caller, a Patient of the walk might contribute no row, so it is not.
    """
    others = [c for c in conds if c is not driver]
    branches = driver.branches
    if conn is not None and branches[0].chain is not None and not others and not is_restricted():
        branches = _walked_branches(conn, branches, types, position, desc, offset + limit)
    parts = []
    for branch in branches:
        _, own, where, _ = _source(types, others, branch)
        order = [own.pk, own.type, own.id]
        if position is not None:
            where.append(_after(order, list(position), desc))
        part = (
            select(own.pk.label("patient_key"), own.type.label("res_type"), own.id.label("res_id"))
            .where(*where)
            .order_by(*(_direction(col, desc) for col in order))
            .limit(offset + limit)
        )
        parts.append(select(*part.subquery().c))
    merged = union_all(*parts).subquery()
    cols = [merged.c.patient_key, merged.c.res_type, merged.c.res_id]
    stmt = (
        select(*cols)
        .group_by(*cols)
        .order_by(*(_direction(col, desc) for col in cols))
        .offset(offset or None)
        .limit(limit)
    )
    spec = tuple((name, desc, False) for name in KEY_COLUMNS)
    return KeyQuery(stmt, spec, kind)


def _driver(conds: Sequence[Cond]) -> RowCond | None:
    """The condition whose index rows a key query reads (the lowest rank)."""
    rows = [c for c in conds if isinstance(c, RowCond)]
    return min(rows, key=lambda c: c.rank) if rows else None


def _date_keys(
    types: tuple[str, ...],
    conds: Sequence[Cond],
    code: str,
    *,
    sort_desc: bool,
    desc: bool,
    position: tuple[Any, ...] | None,
    limit: int,
    walk: bool = False,
) -> KeyQuery:
    """Resources with a value of date parameter `code`, by their envelope end, then (pk, type, id).

    The key is env_low for an ascending sort and env_high for a descending one (the smallest and the
    largest value); `desc` is the direction this statement reads in; positions (value, pk, type, id).
    `walk`: read the dates in order and check the other conditions row by row (_walks_dates).
    """
    driver = _date_driver(types, conds, code)
    _, own, where, _ = _source(types, conds, driver, probe=walk)
    value = driver.alias.c.env_high if sort_desc else driver.alias.c.env_low
    order = [value, own.pk, own.type, own.id]
    if position is not None:
        where.append(_after(order, list(position), desc))
    stmt = (
        select(
            own.pk.label("patient_key"), own.type.label("res_type"), own.id.label("res_id"), value.label("s")
        )
        .where(*where)
        .group_by(*order)
        .order_by(*(_direction(col, desc) for col in order))
        .limit(limit)
    )
    spec = tuple((name, desc, False) for name in ("s", "patient_key", "res_type", "res_id"))
    return KeyQuery(stmt, spec, "date")


def _date_driver(types: tuple[str, ...], conds: Sequence[Cond], code: str) -> RowCond:
    """The condition on date parameter `code` (a new one, "has a value", when the query has none)."""
    found = next((c for c in conds if isinstance(c, RowCond) and c.table == "date" and c.code == code), None)
    if found is not None:
        return found
    t = _index_alias("date")
    return RowCond("date", code, t, and_(t.c.param == code, _in_types(t.c.res_type, types)), 3)


WALK_MIN_MATCHES = 1000


def _walks_dates(
    conn: Connection, types: tuple[str, ...], conds: Sequence[Cond], code: str, n: int = 51
) -> bool:
    """Whether a date-sorted page should read the dates in order and check the other conditions per row.

    PostgreSQL underestimates how many index rows of another table the semi-join of two multi-column
    keys keeps (it multiplies the selectivities of patient_key and res_id), so for a frequent code it
    may join all its matches to their dates and sort them (55 ms for 6,882 matches at 1M resources)
    where reading the dates newest first stops after a few hundred rows (6 ms). The walk reads about
    n / (share of the dates matched) rows, so it pays only when the matches M are many against the D
    date rows: measured at 1M (D = 321,179, n = 51), 2,251 matches took 16 ms walked and 10 ms joined,
    211 took 276 ms walked: the walk pays from about sqrt(n·D/2) matches. So every other condition must
    be an index-row condition with at least max(WALK_MIN_MATCHES, sqrt(n·D')) rows (a capped count),
    where D' is the planner's estimate of D (about half of it: it takes res_type and param as
    independent); otherwise the planner's join stays.
    """
    if conn.dialect.name != "postgresql":
        return False
    driver = _date_driver(types, conds, code)
    others = [c for c in conds if c is not driver]
    if not others or not all(isinstance(c, RowCond) for c in others):
        return False
    rows = _estimated(conn, ("date", code, *types), _rows_of("date", types, code))
    cap = max(WALK_MIN_MATCHES, math.isqrt(n * rows))
    for c in others:
        assert isinstance(c, RowCond)
        capped = select(func.count()).select_from(c.rows().limit(cap).subquery())
        if int(conn.execute(capped).scalar_one()) < cap:
            return False
    return True


def _without_date(types: tuple[str, ...], conds: Sequence[Cond], code: str) -> list[Cond] | None:
    """The conditions plus "no value of `code`" (None when a condition on `code` rules that out)."""
    if any(isinstance(c, RowCond) and c.table == "date" and c.code == code for c in conds):
        return None
    present = _rows_of("date", types, code)
    return [*conds, OwnerCond(lambda own: not_(own.key().in_(present)))]


def _general_keys(
    types: tuple[str, ...], conds: Sequence[Cond], order: Order, *, offset: int, limit: int
) -> KeyQuery:
    _, own, where, several = _source(types, conds)
    labels = [
        _sort_value(own, name, ptype, desc).label(f"s{i}")
        for i, ((name, desc), ptype) in enumerate(zip(order.keys, order.ptypes, strict=True))
    ]
    stmt = select(own.pk.label("patient_key"), own.type.label("res_type"), own.id.label("res_id"), *labels)
    stmt = stmt.where(*where)
    if several:
        stmt = stmt.group_by(own.pk, own.type, own.id)
    directions = [d for _, d in order.keys]
    stmt = stmt.order_by(
        *(_direction(label, d).nulls_last() for label, d in zip(labels, directions, strict=True)),
        own.pk.asc(),
        own.type.asc(),
        own.id.asc(),
    )
    spec = (
        *tuple((f"s{i}", d, True) for i, d in enumerate(directions)),
        ("patient_key", False, False),
        ("res_type", False, False),
        ("res_id", False, False),
    )
    return KeyQuery(stmt.offset(offset or None).limit(limit), spec, "general")


def _with_content(keys: KeyQuery) -> Select[Any]:
    """The page: content of the keys, joined on the primary key, in the keys' order."""
    r = resource  # the key query inside uses aliases only
    if all(name in KEY_COLUMNS for name, _, _ in keys.order):
        # Ordered by the key itself: a semi-join, which is cheaper to build than a derived table.
        return (
            select(r.c.patient_key, r.c.res_type, r.c.res_id, r.c.content)
            .where(tuple_(r.c.patient_key, r.c.res_type, r.c.res_id).in_(keys.stmt))
            .order_by(*(_direction(r.c[name], desc) for name, desc, _ in keys.order))
        )
    k = keys.stmt.subquery()
    extra = [k.c[name] for name, _, _ in keys.order if name not in KEY_COLUMNS]
    order = []
    for name, desc, nulls_last in keys.order:
        term = _direction(k.c[name], desc)
        order.append(term.nulls_last() if nulls_last else term)
    return (
        select(r.c.patient_key, r.c.res_type, r.c.res_id, r.c.content, *extra)
        .select_from(
            r.join(
                k,
                and_(
                    r.c.patient_key == k.c.patient_key,
                    r.c.res_type == k.c.res_type,
                    r.c.res_id == k.c.res_id,
                ),
            )
        )
        .order_by(*order)
    )


# ---- pages, counts, matches ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PageResult:
    """The rows of a page with the positions of its ends (keyset paging) and whether more rows follow."""

    rows: list[PageRow]
    first: tuple[Any, ...] | None
    last: tuple[Any, ...] | None
    more: bool  # rows exist beyond the page in the direction it was read
    keyset: bool = True  # False: the page was read from an offset (positions are None)


@_statement_set
def fetch_page(
    conn: Connection,
    query: ParsedQuery,
    *,
    limit: int,
    offset: int = 0,
    after: tuple[Any, ...] | None = None,
    before: tuple[Any, ...] | None = None,
    compartment: Compartment | None = None,
) -> PageResult:
    """Run the page: `limit` matches after (or before) a position, or from an offset.

    A position is (patient_key, res_type, res_id) for the default order and (segment, value, patient_key,
    res_type, res_id) for a date sort (segment 1, the resources without a value, has value None);
    positions come from earlier pages.
    """
    order = order_of(query)
    conds = _conds(query, compartment, conn if order.kind == "default" else None, limit + 1)
    types = query.types
    backward = before is not None
    position = before if backward else after
    if order.kind == "general" or (order.kind == "date" and offset):
        if position is not None:
            raise BadRequest("The paging position does not belong to this search", expression="_page")
        generic = order if order.kind == "general" else Order("general", order.keys, order.ptypes)
        return _run(
            conn,
            [lambda n: _general_keys(types, conds, generic, offset=offset, limit=n)],
            limit,
            False,
            general=True,
        )
    if order.kind == "default":
        if position is not None and (len(position) != 3 or position[1] not in types):
            raise BadRequest("The paging position does not belong to this search", expression="_page")
        return _run(
            conn,
            [
                lambda n: _keys(
                    types, conds, desc=backward, position=position, offset=offset, limit=n, conn=conn
                )
            ],
            limit,
            backward,
        )
    code, desc = order.keys[0]
    reading_desc = desc != backward
    without = _without_date(types, conds, code)

    def with_value(pos: tuple[Any, ...] | None, n: int) -> KeyQuery:
        walk = _walks_dates(conn, types, conds, code, n)  # a page has at most one such step
        return _date_keys(
            types, conds, code, sort_desc=desc, desc=reading_desc, position=pos, limit=n, walk=walk
        )

    def without_value(pos: tuple[Any, ...] | None, n: int) -> KeyQuery | None:
        if without is None:
            return None
        return _keys(types, without, desc=reading_desc, position=pos, offset=0, limit=n, kind="missing")

    steps: list[Callable[[int], KeyQuery | None]]
    if position is None:
        steps = [lambda n: with_value(None, n), lambda n: without_value(None, n)]
    elif _date_position(position, types) == 0:
        inner = position[1:]
        steps = [lambda n: with_value(inner, n)]
        if not backward:
            steps.append(lambda n: without_value(None, n))
    else:
        inner = position[2:]
        steps = [lambda n: without_value(inner, n)]
        if backward:
            steps.append(lambda n: with_value(None, n))
    return _run(conn, steps, limit, backward)


def _date_position(position: tuple[Any, ...], types: tuple[str, ...]) -> int:
    ok = (
        len(position) == 5
        and position[0] in (0, 1)
        and position[3] in types
        and (isinstance(position[1], int) if position[0] == 0 else position[1] is None)
    )
    if not ok:
        raise BadRequest("The paging position does not belong to this search", expression="_page")
    return int(position[0])


def _run(
    conn: Connection,
    steps: Sequence[Callable[[int], KeyQuery | None]],
    limit: int,
    backward: bool,
    *,
    general: bool = False,
) -> PageResult:
    """Run key queries in turn until limit + 1 rows are there (the extra one only tells `more`)."""
    rows: list[PageRow] = []
    positions: list[tuple[Any, ...] | None] = []
    for step in steps:
        wanted = limit + 1 - len(rows)
        if wanted <= 0:
            break
        key = step(wanted)
        if key is None:
            continue
        for row in conn.execute(_with_content(key)):
            rows.append((row[0], row[1], row[2], row[3]))
            positions.append(key.position(row))
    more = len(rows) > limit
    rows, positions = rows[:limit], positions[:limit]
    if backward:
        rows.reverse()
        positions.reverse()
    if general:
        return PageResult(rows, None, None, more, keyset=False)
    return PageResult(rows, positions[0] if positions else None, positions[-1] if positions else None, more)


@_statement_set
def page_query(
    query: ParsedQuery, *, offset: int, limit: int, compartment: Compartment | None = None
) -> Select[Any]:
    """The first statement of a page (what EXPLAIN should look at)."""
    order = order_of(query)
    conds = _conds(query, compartment)
    if order.kind == "default":
        return _with_content(_keys(query.types, conds, desc=False, position=None, offset=offset, limit=limit))
    if order.kind == "date" and not offset:
        code, desc = order.keys[0]
        keys = _date_keys(query.types, conds, code, sort_desc=desc, desc=desc, position=None, limit=limit)
        return _with_content(keys)
    generic = Order("general", order.keys, order.ptypes)
    return _with_content(_general_keys(query.types, conds, generic, offset=offset, limit=limit))


@_statement_set
def count_query(query: ParsedQuery, compartment: Compartment | None = None) -> Select[Any]:
    """How many resources match."""
    source, own, where, several = _source(query.types, _conds(query, compartment))
    if several:
        # Grouped in the order of the index keys after the value (patient_key, res_type, res_id), so that
        # PostgreSQL counts a sorted index scan group by group instead of hashing every match.
        inner = select(own.type, own.id, own.pk).where(*where).group_by(own.pk, own.type, own.id).subquery()
        return select(func.count()).select_from(inner)
    return select(func.count()).select_from(source).where(*where)


@_statement_set
def estimate_query(query: ParsedQuery, compartment: Compartment | None = None) -> Select[Any]:
    """The matching rows before duplicates are removed: what the planner's estimate is asked about."""
    _, own, where, _ = _source(query.types, _conds(query, compartment))
    return select(own.pk).where(*where)


@_statement_set
def ids_query(query: ParsedQuery, limit: int) -> Select[Any]:
    """Keys of matches, for conditional interactions (each resource once)."""
    _, own, where, several = _source(query.types, _conds(query, None))
    stmt = select(own.pk, own.type, own.id).where(*where)
    if several:
        stmt = stmt.group_by(own.pk, own.type, own.id)
    return stmt.limit(limit)


@_statement_set
def where_clause(r: FromClause, query: ParsedQuery) -> ColumnElement[bool]:
    """All clauses AND-ed on resource rows `r`, restricted to live resources of the searched types."""
    own = _own(r, is_resource=True)
    conds = _plan(query.types, query.clauses)
    return and_(_in_types(r.c.res_type, query.types), r.c.deleted == false(), *(c.on(own) for c in conds))


def visible(
    conn: Connection, keys: Sequence[Key], condition: Callable[[Own], ColumnElement[bool]] | None
) -> set[Key]:
    """Which of these resources (deleted ones included) a restricted caller may see; all when unrestricted."""
    if condition is None:
        return set(keys)
    out: set[Key] = set()
    r = resource
    own = Own(r.c.patient_key, r.c.res_type, r.c.res_id, r, r)
    unique = sorted(set(keys))
    for start in range(0, len(unique), 500):
        chunk = unique[start : start + 500]
        stmt = select(r.c.patient_key, r.c.res_type, r.c.res_id).where(
            keys_in(conn, [r.c.patient_key, r.c.res_type, r.c.res_id], chunk), condition(own)
        )
        out.update((x[0], x[1], x[2]) for x in conn.execute(stmt))
    return out
