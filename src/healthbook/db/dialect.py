"""The one place where SQLite and PostgreSQL differ: URLs, connection set-up, locking, upserts, and the
few search constructs whose best SQL is not the same on both (range overlap, prefix match, long key
lists, estimates)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from sqlalchemy import BigInteger, Boolean, Table, Text, event, func, literal, select, tuple_
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.postgresql.dml import Insert as PgInsert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.dialects.sqlite.dml import Insert as SqliteInsert
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ClauseElement, ColumnElement
from sqlalchemy.sql.functions import FunctionElement


def normalise_url(url: str) -> str:
    """Map user-facing URLs (postgresql://, postgres://) to the psycopg 3 driver."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def is_sqlite(engine: Engine | Connection) -> bool:
    """True for the embedded SQLite backend."""
    return engine.dialect.name == "sqlite"


def engine_options(
    url: str,
    *,
    pool_size: int,
    busy_timeout_ms: int,
    statement_timeout_ms: int = 0,
    parallel_workers: int | None = None,
    jit: bool = False,
) -> dict[str, Any]:
    """create_engine() keyword arguments for the backend behind `url`.

    PostgreSQL: psycopg never prepares statements (`prepare_threshold=None`), so every search is planned
    with its own values (a custom plan). With prepared statements PostgreSQL switches to a generic plan
    after five runs, which estimates one row for every `res_type`/`param` condition and was measured
    up to 100 times slower for _has and date ranges. `statement_timeout_ms` (0 = none) bounds every
    statement on the server; see `unbounded()` for the few that must run longer. `parallel_workers` sets
    max_parallel_workers_per_gather (None: the server's setting). `jit` sets PostgreSQL's JIT compilation,
    off by default: it starts above a plan *cost*, and the cost of a branch a search never runs (the
    fallback of a per-Patient _has walk) made a 1 ms statement spend 358 ms compiling, at 1M resources.
    On Citus, set jit on the workers' databases too: connection options are the coordinator session's.
    """
    if url.startswith("sqlite"):
        # The driver's own transaction handling is switched off: we emit BEGIN ourselves (see below).
        return {
            "connect_args": {
                "isolation_level": None,
                "timeout": busy_timeout_ms / 1000,
                "check_same_thread": False,
            }
        }
    connect_args: dict[str, Any] = {"prepare_threshold": None}
    options = []
    if statement_timeout_ms > 0:
        options.append(f"-c statement_timeout={int(statement_timeout_ms)}")
    if parallel_workers is not None:
        options.append(f"-c max_parallel_workers_per_gather={int(parallel_workers)}")
    options.append(f"-c jit={'on' if jit else 'off'}")
    connect_args["options"] = " ".join(options)
    return {
        "pool_size": pool_size,
        "max_overflow": pool_size,
        "pool_pre_ping": False,
        "pool_recycle": 3600,
        "connect_args": connect_args,
    }


def unbounded(conn: Connection) -> None:
    """Lift the statement timeout until the end of the current transaction (migrations, bulk export)."""
    if not is_sqlite(conn):
        conn.exec_driver_sql("SET LOCAL statement_timeout = 0")


def is_statement_timeout(exc: BaseException) -> bool:
    """Whether a database error is a statement cancelled by statement_timeout (SQLSTATE 57014)."""
    if not isinstance(exc, DBAPIError):
        return False
    return getattr(exc.orig, "sqlstate", None) == "57014"


def tune_engine(engine: Engine) -> None:
    """PostgreSQL: executemany becomes one multi-row INSERT instead of a statement per row."""
    if not is_sqlite(engine):
        engine.dialect.use_insertmanyvalues_wo_returning = True


def install_sqlite_hooks(engine: Engine, *, synchronous: str, busy_timeout_ms: int) -> None:
    """WAL journal, foreign keys and BEGIN IMMEDIATE for writers, so concurrent writers queue, not fail."""
    if not is_sqlite(engine):
        return
    if synchronous.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
        raise ValueError(f"invalid SQLite synchronous setting {synchronous!r}")

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA synchronous={synchronous.upper()}")
        cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = conn.info.pop("healthbook_begin", "DEFERRED")
        if conn.get_execution_options().get("isolation_level") == "AUTOCOMMIT":
            return
        conn.exec_driver_sql(f"BEGIN {mode}")


def relax_durability(conn: Connection) -> None:
    """Commit the coming write transaction without waiting for the disk (called before its BEGIN).

    PostgreSQL: synchronous_commit off for the transaction (lost only if the database server itself
    crashes within ~0.6 s; never half-written). SQLite (WAL): synchronous NORMAL until restore_durability.
    """
    if is_sqlite(conn):
        _sqlite_pragma(conn, "PRAGMA synchronous=NORMAL")  # outside any transaction, as SQLite wants
    else:
        conn.info["healthbook_relaxed"] = True


def after_begin_relaxed(conn: Connection) -> None:
    """The PostgreSQL half of relax_durability: it applies inside the transaction."""
    if conn.info.pop("healthbook_relaxed", False):
        conn.exec_driver_sql("SET LOCAL synchronous_commit TO off")


def restore_durability(conn: Connection, synchronous: str) -> None:
    """Undo relax_durability on a connection going back to the pool (SQLite; PostgreSQL needs nothing)."""
    if is_sqlite(conn):
        if synchronous.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise ValueError(f"invalid SQLite synchronous setting {synchronous!r}")
        _sqlite_pragma(conn, f"PRAGMA synchronous={synchronous.upper()}")


def _sqlite_pragma(conn: Connection, statement: str) -> None:
    """A PRAGMA on the DBAPI connection itself (SQLAlchemy would open a transaction around it)."""
    raw = conn.connection.driver_connection
    assert raw is not None
    raw.execute(statement)


def mark_write(conn: Connection) -> None:
    """Ask for a write transaction on the next BEGIN (SQLite: IMMEDIATE; PostgreSQL: no-op)."""
    conn.info["healthbook_begin"] = "IMMEDIATE"


def upsert(conn: Connection | Engine, table: Table) -> SqliteInsert | PgInsert:
    """An INSERT that the caller can turn into ON CONFLICT DO UPDATE/NOTHING for this backend."""
    if is_sqlite(conn):
        return sqlite_insert(table)
    return pg_insert(table)


def keys_in(
    conn: Connection | Engine, columns: Sequence[ColumnElement[Any]], keys: Sequence[Sequence[Any]]
) -> ColumnElement[bool]:
    """(columns) IN (keys), for long lists of composite keys.

    PostgreSQL: one text array per column, unnested (three parameters whatever the length: planning a
    row-value IN list of hundreds of tuples took longer than running it, and the statement is cached
    once); SQLite: the row values themselves.
    """
    if is_sqlite(conn):
        return tuple_(*columns).in_([tuple(k) for k in keys])
    arrays = [
        func.unnest(literal([str(k[i]) for k in keys], postgresql.ARRAY(Text()))) for i in range(len(columns))
    ]
    return tuple_(*columns).in_(select(*arrays))


def lock_key(conn: Connection, key: int) -> None:
    """Serialise writers on one logical key until commit (SQLite writers are already serial)."""
    if not is_sqlite(conn):
        conn.exec_driver_sql("SELECT pg_advisory_xact_lock(%(k)s)", {"k": key})


# ---- search constructs ---------------------------------------------------------------------------------


class _RangeCondition(FunctionElement[bool]):
    type = Boolean()
    inherit_cache = True
    _is_implicitly_boolean = True  # a condition: no "= 1" on SQLite

    def __init__(self, lo_col: ColumnElement[int], hi_col: ColumnElement[int], low: int, high: int):
        super().__init__(lo_col, hi_col, literal(low, BigInteger()), literal(high, BigInteger()))


class _RangeOverlaps(_RangeCondition):
    """[lo_col, hi_col] overlaps [low, high]."""

    name = "range_overlaps"
    inherit_cache = True


class _RangeContains(_RangeCondition):
    """[lo_col, hi_col] contains [low, high]."""

    name = "range_contains"
    inherit_cache = True


def range_reaches(
    lo_col: ColumnElement[int], hi_col: ColumnElement[int], up: int, down: int
) -> ColumnElement[bool]:
    """The integer range [lo_col, hi_col] reaches up to `up` and down to `down`: hi_col >= up, lo_col <= down.

    When up <= down that is an overlap with [up, down], otherwise the range contains [down, up].
    PostgreSQL: `int8range(lo_col, hi_col, '[]') && int8range(up, down, '[]')` (or `@>`), which the GiST
    index on that expression answers in one probe, as a B-tree cannot; elsewhere the two comparisons.
    Callers guarantee lo_col <= hi_col. (Two classes, not a flag: the SQL differs, so must the cache key.)
    """
    if up <= down:
        return _RangeOverlaps(lo_col, hi_col, up, down)
    return _RangeContains(lo_col, hi_col, down, up)


def _args(element: FunctionElement[Any], compiler: SQLCompiler, **kw: Any) -> list[str]:
    return [compiler.process(arg, **kw) for arg in element.clauses]


@compiles(_RangeOverlaps)
def _overlaps_default(element: _RangeOverlaps, compiler: SQLCompiler, **kw: Any) -> str:
    lo_col, hi_col, low, high = _args(element, compiler, **kw)
    return f"({lo_col} <= {high} AND {hi_col} >= {low})"


@compiles(_RangeContains)
def _contains_default(element: _RangeContains, compiler: SQLCompiler, **kw: Any) -> str:
    lo_col, hi_col, low, high = _args(element, compiler, **kw)
    return f"({lo_col} <= {low} AND {hi_col} >= {high})"


@compiles(_RangeOverlaps, "postgresql")
def _overlaps_pg(element: _RangeOverlaps, compiler: SQLCompiler, **kw: Any) -> str:
    lo_col, hi_col, low, high = _args(element, compiler, **kw)
    return f"int8range({lo_col}, {hi_col}, '[]') && int8range({low}, {high}, '[]')"


@compiles(_RangeContains, "postgresql")
def _contains_pg(element: _RangeContains, compiler: SQLCompiler, **kw: Any) -> str:
    lo_col, hi_col, low, high = _args(element, compiler, **kw)
    return f"int8range({lo_col}, {hi_col}, '[]') @> int8range({low}, {high}, '[]')"


class prefix_match(FunctionElement[bool]):
    """col starts with prefix, compared code point by code point (case-sensitive, no wildcards).

    PostgreSQL: `col LIKE 'prefix%'` (wildcards escaped), which a text_pattern_ops index answers whatever
    the database collation; SQLite: `col >= prefix AND col < successor` (BINARY collation), because its
    LIKE ignores ASCII case and so cannot use an index.
    """

    type = Boolean()
    inherit_cache = True
    name = "prefix_match"
    _is_implicitly_boolean = True

    def __init__(self, col: ColumnElement[str], prefix: str):
        escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        upper = _successor(prefix)
        args: list[Any] = [col, literal(prefix), literal(escaped + "%")]
        if upper is not None:
            args.append(literal(upper))
        super().__init__(*args)


def _successor(prefix: str) -> str | None:
    """The smallest string above every string that starts with prefix (None: there is no such string)."""
    chars = list(prefix)
    while chars:
        code = ord(chars[-1])
        if code < 0x10FFFF:
            code += 1
            if 0xD800 <= code <= 0xDFFF:  # surrogates cannot be stored: skip over them
                code = 0xE000
            chars[-1] = chr(code)
            return "".join(chars)
        chars.pop()
    return None


@compiles(prefix_match)
def _prefix_match_default(element: prefix_match, compiler: SQLCompiler, **kw: Any) -> str:
    col, prefix, _, *upper = _args(element, compiler, **kw)
    if not upper:
        return f"{col} >= {prefix}"
    return f"({col} >= {prefix} AND {col} < {upper[0]})"


@compiles(prefix_match, "postgresql")
def _prefix_match_pg(element: prefix_match, compiler: SQLCompiler, **kw: Any) -> str:
    col, _, pattern, *_ = _args(element, compiler, **kw)
    return f"{col} LIKE {pattern} ESCAPE '\\'"


def estimate_rows(conn: Connection, stmt: ClauseElement) -> int | None:
    """The planner's row estimate for a SELECT (PostgreSQL), None where there is none (SQLite)."""
    if is_sqlite(conn):
        return None
    compiled = stmt.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
    raw = conn.exec_driver_sql(f"EXPLAIN (FORMAT JSON) {compiled}", compiled.params).scalar_one()
    plan = orjson.loads(raw) if isinstance(raw, str | bytes) else raw
    return int(plan[0]["Plan"]["Plan Rows"])


# ---- append-only tables ------------------------------------------------------------------------------


def append_only_ddl(conn: Connection, table: str) -> list[str]:
    """Statements making a table refuse UPDATE and DELETE (the audit trail); `table` is our own name.

    PostgreSQL: row triggers for UPDATE and DELETE and a statement trigger for TRUNCATE, raising an
    exception (the table owner can still drop them: the hash chains and their anchor show what was done
    then); SQLite: RAISE(ABORT) (it has no TRUNCATE).
    """
    message = f"{table} is append-only"
    if is_sqlite(conn):
        return [
            f"CREATE TRIGGER {table}_no_{op.lower()} BEFORE {op} ON {table} "
            f"BEGIN SELECT RAISE(ABORT, '{message}'); END"
            for op in ("UPDATE", "DELETE")
        ]
    return [
        f"CREATE FUNCTION {table}_refuse() RETURNS trigger LANGUAGE plpgsql AS "
        f"$$ BEGIN RAISE EXCEPTION '{message}' USING ERRCODE = 'insufficient_privilege'; END $$",
        f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
        f"FOR EACH ROW EXECUTE FUNCTION {table}_refuse()",
        f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
        f"FOR EACH STATEMENT EXECUTE FUNCTION {table}_refuse()",
    ]


def drop_append_only_ddl(conn: Connection, table: str) -> list[str]:
    """The statements undoing append_only_ddl (downgrade)."""
    if is_sqlite(conn):
        return [f"DROP TRIGGER IF EXISTS {table}_no_{op}" for op in ("update", "delete")]
    return [
        f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}",
        f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}",
        f"DROP FUNCTION IF EXISTS {table}_refuse()",
    ]


class binary_text(FunctionElement[str]):
    """A text column compared and ordered by code point (Python's order): COLLATE "C" on PostgreSQL."""

    inherit_cache = True

    def __init__(self, col: ColumnElement[str]):
        super().__init__(col)
        self.type = col.type


@compiles(binary_text)
def _binary_default(element: binary_text, compiler: SQLCompiler, **kw: Any) -> str:
    return str(compiler.process(next(iter(element.clauses)), **kw))  # SQLite compares text by bytes already


@compiles(binary_text, "postgresql")
def _binary_pg(element: binary_text, compiler: SQLCompiler, **kw: Any) -> str:
    return f'({compiler.process(next(iter(element.clauses)), **kw)} COLLATE "C")'


def deadlocked(exc: OperationalError) -> bool:
    """PostgreSQL chose this transaction as a deadlock's victim (SQLSTATE 40P01): running it again is safe."""
    return getattr(exc.orig, "sqlstate", None) == "40P01"
