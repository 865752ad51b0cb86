"""The SQL a search request runs (compiled with literal binds) and its EXPLAIN (ANALYZE, BUFFERS)."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

from sqlalchemy.dialects import postgresql
from sqlalchemy.sql.elements import ClauseElement

from healthbook.fhir.search import sql
from healthbook.fhir.search.query import parse

DEFAULT_COUNT = 50


def literal(stmt: ClauseElement) -> str:
    """The statement with its values inlined."""
    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    compiled = stmt.compile(dialect=dialect, compile_kwargs={"literal_binds": True})
    return str(compiled).replace("%%", "%")  # pyformat escaping; the SQL runs without parameters


def statements(path: str) -> list[tuple[str, ClauseElement]]:
    """(label, statement) of the page query and, unless _total=none, the count query of a GET path."""
    parts = urlsplit(path)
    res_type = parts.path.rstrip("/").rsplit("/", 1)[-1]
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    parsed = parse((res_type,), pairs, strict=False)
    page = sql.page_query(parsed, offset=0, limit=DEFAULT_COUNT + 1)
    out: list[tuple[str, ClauseElement]] = [("page query (page_query, LIMIT 51)", page)]
    if (parsed.control("_total") or "accurate") != "none":
        out.append(("count query (count_query, for Bundle.total)", sql.count_query(parsed)))
    return out


def _quote(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"


def prepared(stmt: ClauseElement) -> tuple[str, str]:
    """(PREPARE body with $n parameters, EXECUTE argument list) as the server's driver binds them."""
    dialect = postgresql.dialect(paramstyle="numeric_dollar")  # type: ignore[no-untyped-call]
    compiled = stmt.compile(dialect=dialect)
    names: list[str] = getattr(compiled, "positiontup", None) or []
    args = ", ".join(_quote(compiled.params[n]) for n in names)
    return str(compiled), args


def explain_generic(url: str, stmt: ClauseElement) -> str:
    """EXPLAIN (ANALYZE, BUFFERS) EXECUTE of the statement prepared with plan_cache_mode=force_generic_plan.

    psycopg prepares a statement on its 5th execution on a connection and PostgreSQL switches a prepared
    statement to its generic plan after 5 more when that plan looks no dearer: this is the plan a warm
    server runs.
    """
    import psycopg

    body, args = prepared(stmt)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET plan_cache_mode = force_generic_plan")
        conn.execute(f"PREPARE bench_q AS {body}")  # bench-internal SQL compiled above
        conn.execute(f"EXPLAIN (ANALYZE, BUFFERS) EXECUTE bench_q({args})")
        rows = conn.execute(f"EXPLAIN (ANALYZE, BUFFERS) EXECUTE bench_q({args})").fetchall()
    return "\n".join(str(r[0]) for r in rows)


def explain(url: str, statement: str) -> str:
    """EXPLAIN (ANALYZE, BUFFERS) text of one statement, run twice (the second, warm, plan is kept)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"EXPLAIN (ANALYZE, BUFFERS) {statement}")  # bench-internal SQL compiled above
        rows = conn.execute(f"EXPLAIN (ANALYZE, BUFFERS) {statement}").fetchall()
    return "\n".join(str(r[0]) for r in rows)
