"""The raw baseline: a bare Starlette app issuing healthbook's SQL for the four interactions, no FHIR work.

Same process model as healthbook (uvicorn workers, blocking driver calls in the thread pool), same
tables, same statements and transaction boundaries; what it leaves out is FastAPI, SQLAlchemy,
validation, JSON handling and search-index maintenance. Serve it with
`BENCH_DATABASE_URL=... uvicorn --app-dir bench baseline_app:create_app --factory`.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any, Protocol

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from healthbook.fhir.hashing import hash63

FHIR_JSON = "application/fhir+json; charset=utf-8"

READ = (
    "SELECT version_id, last_updated, deleted, content FROM resource "
    "WHERE patient_key = {p} AND res_type = {p} AND res_id = {p}"
)
INSERT_LOCATOR = "INSERT INTO resource_locator (res_type, res_id, patient_key) VALUES ({p}, {p}, {p})"
INSERT_VERSION = (
    "INSERT INTO resource_version (patient_key, res_type, res_id, version_id, last_updated, method, content) "
    "VALUES ({p}, {p}, {p}, {p}, {p}, {p}, {p})"
)
INSERT_CURRENT = (
    "INSERT INTO resource (patient_key, res_type, res_id, version_id, last_updated, deleted, content) "
    "VALUES ({p}, {p}, {p}, {p}, {p}, {p}, {p})"
)
UPDATE_CURRENT = (
    "UPDATE resource SET version_id = {p}, last_updated = {p}, deleted = {p}, content = {p} "
    "WHERE patient_key = {p} AND res_type = {p} AND res_id = {p}"
)
_MATCH = (
    "FROM resource WHERE resource.res_type = {p} AND resource.deleted = {false} AND "
    "(resource.patient_key, resource.res_type, resource.res_id) IN (SELECT idx_token.patient_key, "
    "idx_token.res_type, idx_token.res_id FROM idx_token WHERE idx_token.param = {p} AND "
    "idx_token.res_type = {p} AND idx_token.hash_code = {p} AND idx_token.hash_sys_code = {p})"
)
SEARCH_PAGE = (
    "SELECT resource.patient_key, resource.res_type, resource.res_id, resource.content "
    + _MATCH
    + " ORDER BY resource.res_type ASC, resource.res_id ASC LIMIT {p} OFFSET {p}"
)
SEARCH_COUNT = "SELECT count(*) " + _MATCH


Run = Callable[[str, tuple[Any, ...]], list[tuple[Any, ...]]]


class Backend(Protocol):
    """What the routes need from a database: a statement runner inside the right transaction."""

    def read(self) -> AbstractContextManager[Run]:
        """run(sql, params) -> rows, autocommit."""

    def write(self) -> AbstractContextManager[Run]:
        """run(sql, params) -> rows, in one write transaction."""

    def snapshot(self) -> AbstractContextManager[Run]:
        """run(sql, params) -> rows, in one consistent read transaction."""

    def sql(self, template: str) -> str:
        """The template with this driver's placeholders."""

    def for_update(self) -> str:
        """The row-lock suffix of the current-version SELECT in a write."""


class SqliteBackend:
    """One sqlite3 connection per thread, with healthbook's pragmas and BEGIN IMMEDIATE for writes."""

    def __init__(self, path: str):
        self.path = path
        self.local = threading.local()
        self.synchronous = os.environ.get("HEALTHBOOK_SQLITE_SYNCHRONOUS", "FULL").upper()

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self.local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, timeout=30, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={self.synchronous}")
            conn.execute("PRAGMA busy_timeout=30000")
            conn.execute("PRAGMA foreign_keys=ON")
            self.local.conn = conn
        return conn

    def _runner(self, conn: sqlite3.Connection) -> Run:
        def run(sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
            return conn.execute(sql, params).fetchall()

        return run

    @contextmanager
    def read(self) -> Iterator[Run]:
        """Autocommit: each statement on its own."""
        yield self._runner(self._conn())

    @contextmanager
    def _tx(self, begin: str) -> Iterator[Run]:
        conn = self._conn()
        conn.execute(begin)
        try:
            yield self._runner(conn)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def write(self) -> AbstractContextManager[Run]:
        """BEGIN IMMEDIATE … COMMIT."""
        return self._tx("BEGIN IMMEDIATE")

    def snapshot(self) -> AbstractContextManager[Run]:
        """BEGIN DEFERRED … COMMIT."""
        return self._tx("BEGIN DEFERRED")

    def sql(self, template: str) -> str:
        """qmark placeholders."""
        return template.format(p="?", false="0")

    def for_update(self) -> str:
        """SQLite writers are serial already."""
        return ""


class PostgresBackend:
    """A psycopg 3 pool of autocommit connections; transactions are explicit BEGIN … COMMIT."""

    def __init__(self, url: str, size: int):
        from psycopg_pool import ConnectionPool

        kwargs = {"autocommit": True, "options": "-c jit=off"}  # as healthbook's connections (db/dialect.py)
        self.pool = ConnectionPool(url, min_size=size, max_size=size, kwargs=kwargs, open=True)

    @contextmanager
    def _tx(self, begin: str | None) -> Iterator[Run]:
        with self.pool.connection() as conn:

            def run(sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
                cur = conn.execute(sql, params)
                return cur.fetchall() if cur.description is not None else []

            if begin is None:
                yield run
                return
            conn.execute(begin)
            try:
                yield run
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def read(self) -> AbstractContextManager[Run]:
        """Autocommit."""
        return self._tx(None)

    def write(self) -> AbstractContextManager[Run]:
        """A READ COMMITTED transaction, like SQLAlchemy's default."""
        return self._tx("BEGIN")

    def snapshot(self) -> AbstractContextManager[Run]:
        """REPEATABLE READ, as healthbook's search uses."""
        return self._tx("BEGIN ISOLATION LEVEL REPEATABLE READ")

    def sql(self, template: str) -> str:
        """pyformat placeholders."""
        return template.format(p="%s", false="false")

    def for_update(self) -> str:
        """Lock the current row as healthbook's update does."""
        return " FOR UPDATE"


def _backend(url: str) -> Backend:
    if url.startswith("sqlite:///"):
        return SqliteBackend(url[len("sqlite:///") :])
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresBackend(url, int(os.environ.get("HEALTHBOOK_POOL_SIZE", "20")))
    raise ValueError("BENCH_DATABASE_URL must be sqlite:////path or postgresql://…")


def _now_us() -> int:
    return time.time_ns() // 1000


def create_app() -> Starlette:
    """The baseline app, on the database named by BENCH_DATABASE_URL."""
    db = _backend(os.environ["BENCH_DATABASE_URL"])
    q_read = db.sql(READ)
    q_read_lock = db.sql(READ) + db.for_update()
    q_locator, q_version = db.sql(INSERT_LOCATOR), db.sql(INSERT_VERSION)
    q_insert, q_update = db.sql(INSERT_CURRENT), db.sql(UPDATE_CURRENT)
    q_page, q_count = db.sql(SEARCH_PAGE), db.sql(SEARCH_COUNT)

    def do_read(res_id: str) -> list[tuple[Any, ...]]:
        with db.read() as run:
            return run(q_read, (res_id, "Patient", res_id))

    def do_create(content: str) -> str:
        res_id, ts = str(uuid.uuid4()), _now_us()
        with db.write() as run:
            run(q_locator, ("Patient", res_id, res_id))
            run(q_version, (res_id, "Patient", res_id, 1, ts, "POST", content))
            run(q_insert, (res_id, "Patient", res_id, 1, ts, False, content))
        return res_id

    def do_update(res_id: str, content: str) -> int | None:
        with db.write() as run:
            rows = run(q_read_lock, (res_id, "Patient", res_id))
            if not rows:
                return None
            vid, ts = int(rows[0][0]) + 1, max(_now_us(), int(rows[0][1]) + 1)
            run(q_version, (res_id, "Patient", res_id, vid, ts, "PUT", content))
            run(q_update, (vid, ts, False, content, res_id, "Patient", res_id))
        return vid

    def do_search(code_key: int, key: int) -> tuple[list[tuple[Any, ...]], int]:
        with db.snapshot() as run:
            rows = run(q_page, ("Patient", "identifier", "Patient", code_key, key, 51, 0))
            total = int(run(q_count, ("Patient", "identifier", "Patient", code_key, key))[0][0])
        return rows, total

    async def metadata(request: Request) -> Response:
        return Response(b'{"resourceType":"CapabilityStatement"}', media_type=FHIR_JSON)

    async def read(request: Request) -> Response:
        rows = await run_in_threadpool(do_read, request.path_params["res_id"])
        if not rows or rows[0][2]:
            return Response(b"{}", 404, media_type=FHIR_JSON)
        return Response(rows[0][3], media_type=FHIR_JSON, headers={"ETag": f'W/"{rows[0][0]}"'})

    async def create(request: Request) -> Response:
        body = (await request.body()).decode()
        res_id = await run_in_threadpool(do_create, body)
        location = f"{request.base_url}fhir/Patient/{res_id}/_history/1"
        return Response(body, 201, media_type=FHIR_JSON, headers={"Location": location, "ETag": 'W/"1"'})

    async def update(request: Request) -> Response:
        body = (await request.body()).decode()
        vid = await run_in_threadpool(do_update, request.path_params["res_id"], body)
        if vid is None:
            return Response(b"{}", 404, media_type=FHIR_JSON)
        return Response(body, 200, media_type=FHIR_JSON, headers={"ETag": f'W/"{vid}"'})

    async def search(request: Request) -> Response:
        system, _, value = request.query_params.get("identifier", "").partition("|")
        code_key, key = hash63("Patient", "identifier", value), hash63("Patient", "identifier", system, value)
        rows, total = await run_in_threadpool(do_search, code_key, key)
        entries = ",".join(f'{{"resource":{r[3]},"search":{{"mode":"match"}}}}' for r in rows)
        body = f'{{"resourceType":"Bundle","type":"searchset","total":{total},"entry":[{entries}]}}'
        return Response(body, media_type=FHIR_JSON)

    return Starlette(
        routes=[
            Route("/fhir/metadata", metadata),
            Route("/fhir/Patient/{res_id}", read, methods=["GET"]),
            Route("/fhir/Patient/{res_id}", update, methods=["PUT"]),
            Route("/fhir/Patient", create, methods=["POST"]),
            Route("/fhir/Patient", search, methods=["GET"]),
        ]
    )
