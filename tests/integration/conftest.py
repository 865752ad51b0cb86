"""Fixtures of the integration tests: request helpers, table counts, and a real server subprocess."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, text

from healthbook.config import Settings
from healthbook.db.engine import Database
from healthbook.fhir.router import Services
from healthbook.fhir.store.schema import metadata
from healthbook.testing.audit import AUDIT_TABLES, wipe

ROOT = Path(__file__).resolve().parents[2]
HEALTHBOOK = Path(sys.executable).with_name("healthbook")

TableCounts = dict[str, int]


def table_counts(db: Database) -> TableCounts:
    """Rows in every table of the store (resources, versions, locators, search indexes)."""
    with db.read() as conn:
        return {
            t.name: int(conn.execute(select(func.count()).select_from(t)).scalar_one())
            for t in metadata.sorted_tables
        }


@pytest.fixture
def counts(services: Services) -> Callable[[], TableCounts]:
    """A function returning the current row count of every store table."""
    return lambda: table_counts(services.fhir.db)


@pytest.fixture
def unchanged(counts: Callable[[], TableCounts]) -> Iterator[None]:
    """Asserts at teardown that the test left every store table as it found it."""
    before = counts()
    yield
    assert counts() == before, "the database changed"


def truncate(url: str) -> None:
    """Empty every store table of a migrated database."""
    db = Database(Settings(database_url=url))
    try:
        with db.write() as conn:
            for table in reversed(metadata.sorted_tables):
                if table.name not in AUDIT_TABLES:
                    conn.execute(text(f"DELETE FROM {table.name}"))
            wipe(conn)  # our own fixed table names
    finally:
        db.dispose()


def outcome(
    resp: httpx.Response, status: int | set[int], code: str | set[str] | None = None
) -> dict[str, Any]:
    """Assert that `resp` is an OperationOutcome with that status (and first issue code)."""
    statuses = {status} if isinstance(status, int) else status
    assert resp.status_code in statuses, (resp.status_code, resp.text[:500])
    assert resp.headers["content-type"].startswith("application/fhir+json"), resp.headers.get("content-type")
    body = resp.json()
    assert body["resourceType"] == "OperationOutcome", body
    assert body["issue"], body
    if code is not None:
        codes = {code} if isinstance(code, str) else code
        assert body["issue"][0]["code"] in codes, body["issue"][0]
    out: dict[str, Any] = body
    return out


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProcess:
    """`healthbook serve` as a child process on its own port, which a test may SIGKILL and restart."""

    def __init__(self, database_url: str, workdir: Path, env: dict[str, str] | None = None):
        self.database_url = database_url
        self.workdir = workdir
        self.extra_env = env or {}
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = workdir / "server.log"

    @property
    def base(self) -> str:
        """FHIR base URL of the running server."""
        return f"http://127.0.0.1:{self.port}/fhir"

    def start(self, timeout: float = 120.0) -> None:
        """Start the server and wait until /fhir/metadata answers."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("HEALTHBOOK_")}
        env["HEALTHBOOK_DATABASE_URL"] = self.database_url
        env["HEALTHBOOK_AUTH"] = "off"  # the tests that want tokens say so in `env`
        if env.get("PYTHONPATH"):
            # `PYTHONPATH=src pytest` from a work tree must still hold in the server's own directory.
            parts = env["PYTHONPATH"].split(os.pathsep)
            env["PYTHONPATH"] = os.pathsep.join(str(Path(p).resolve()) for p in parts if p)
        env.update(self.extra_env)
        cmd = [str(HEALTHBOOK), "serve", "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(cmd, cwd=self.workdir, env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"server exited with {self.proc.returncode}: {self.log.read_text()[-2000:]}"
                )
            try:
                if httpx.get(f"{self.base}/metadata", timeout=30).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"server did not come up: {self.log.read_text()[-2000:]}")
            time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL: no shutdown handlers, no flushing, like a power cut of the process."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        """Terminate the server if it is still running."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def server_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated, empty database for a server subprocess: a SQLite file or the worker's PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'server.db'}"
    url = str(request.getfixturevalue("pg_url"))
    truncate(url)
    return url


@pytest.fixture
def server(server_url: str, tmp_path: Path) -> Iterator[ServerProcess]:
    """A running `healthbook serve` on the database under test."""
    proc = ServerProcess(server_url, tmp_path)
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture
def small_client(db_url: str) -> Iterator[TestClient]:
    """An API client whose body limit is 1000 bytes."""
    from healthbook.app import build_services, create_app

    settings = Settings(database_url=db_url, pool_size=5, max_body_bytes=1000)
    svc = build_services(settings)
    with TestClient(create_app(settings, svc)) as c:
        yield c
    svc.fhir.db.dispose()


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def module_db_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A migrated database of its own for one test module (for read-mostly modules: fewer set-ups)."""
    from healthbook.db.migrate import upgrade

    server = None
    name = f"hb_module_{uuid.uuid4().hex[:12]}"
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('module-db') / 'test.db'}"
    else:
        server = request.getfixturevalue("pg_server")
        url = server.create_database(name)
    db = Database(Settings(database_url=url))
    upgrade(db)
    db.dispose()
    yield url
    if server is not None:
        with psycopg.connect(server.admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # a name made above


@pytest.fixture(scope="module")
def module_services(module_db_url: str) -> Iterator[Services]:
    """Services on the module's own database."""
    from healthbook.app import build_services

    svc = build_services(Settings(database_url=module_db_url, pool_size=5))
    yield svc
    svc.fhir.db.dispose()


@pytest.fixture(scope="module")
def module_client(module_services: Services) -> Iterator[TestClient]:
    """An API client on the module's own database, shared by the tests of the module."""
    from healthbook.app import create_app

    with TestClient(create_app(module_services.settings, module_services)) as c:
        yield c


@pytest.fixture(scope="module")
def module_server(module_db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One running `healthbook serve` per module and backend, on the module's own database."""
    proc = ServerProcess(module_db_url, tmp_path_factory.mktemp("server"))
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture
def secured(settings: Settings) -> Iterator[tuple[TestClient, Services]]:
    """A server with access control on, holding the access-test population (loaded in-process, unaudited)."""
    from healthbook.app import build_services, create_app
    from tests.integration import access_population as pop

    config = pop.settings_with_auth(settings)
    services = build_services(config)
    pop.load(services)
    with TestClient(create_app(config, services)) as client:
        yield client, services
    services.fhir.db.dispose()
