"""The SQL a search request runs (compiled with literal binds) and its EXPLAIN (ANALYZE, BUFFERS)."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

from sqlalchemy.dialects import postgresql
from sqlalchemy.sql.elements import ClauseElement

from healthbook.config import Settings
from healthbook.db.dialect import engine_options
from healthbook.fhir.search import sql
from healthbook.fhir.search.query import parse

DEFAULT_COUNT = 50


def literal(stmt: ClauseElement) -> str:
    """The statement with its values inlined."""
    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    compiled = stmt.compile(dialect=dialect, compile_kwargs={"literal_binds": True})
    return str(compiled).replace("%%", "%")  # pyformat escaping; the SQL runs without parameters


def statements(path: str) -> list[tuple[str, ClauseElement]]:
    """(label, statement) of the page query and, for _total=accurate, the count query of a GET path."""
    parts = urlsplit(path)
    res_type = parts.path.rstrip("/").rsplit("/", 1)[-1]
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    parsed = parse((res_type,), pairs, strict=False)
    page = sql.page_query(parsed, offset=0, limit=DEFAULT_COUNT + 1)
    out: list[tuple[str, ClauseElement]] = [("page query (page_query, LIMIT 51)", page)]
    if parsed.control("_total") == "accurate" or parsed.control("_summary") == "count":
        out.append(("count query (count_query, for Bundle.total)", sql.count_query(parsed)))
    return out


def session_options(url: str) -> str:
    """The session settings of the server's own connections (JIT, parallel workers), for a like plan."""
    settings = Settings(database_url=url)
    options = engine_options(
        url,
        pool_size=1,
        busy_timeout_ms=0,
        parallel_workers=settings.pg_parallel_workers,
        jit=settings.pg_jit,
    )
    return str(options["connect_args"]["options"])


def explain(url: str, statement: str) -> str:
    """EXPLAIN (ANALYZE, BUFFERS) text of one statement, run twice (the second, warm, plan is kept)."""
    import psycopg

    with psycopg.connect(url, autocommit=True, options=session_options(url)) as conn:
        conn.execute(f"EXPLAIN (ANALYZE, BUFFERS) {statement}")  # bench-internal SQL compiled above
        rows = conn.execute(f"EXPLAIN (ANALYZE, BUFFERS) {statement}").fetchall()
    return "\n".join(str(r[0]) for r in rows)
