"""Shared fixtures: a PostgreSQL server started by the suite, and API clients on both databases."""

from __future__ import annotations

import fcntl
import os
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from healthbook.app import build_services, create_app
from healthbook.config import Settings
from healthbook.db.engine import Database
from healthbook.db.migrate import upgrade
from healthbook.fhir.router import Services
from healthbook.fhir.store.schema import metadata
from healthbook.testing.audit import AUDIT_TABLES, wipe
from healthbook.testing.postgres import TempPostgres

# Access control is on by default; the tests of the engine run as the anonymous development caller, and
# the access-control tests turn it on in their own settings.
os.environ["HEALTHBOOK_AUTH"] = "off"

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache"
EXAMPLES_PACKAGE = "hl7.fhir.r4.examples@4.0.1"


@pytest.fixture(scope="session")
def pg_server() -> Iterator[TempPostgres]:
    """One PostgreSQL cluster for the whole run (per xdist worker)."""
    server = TempPostgres()
    server.start()
    yield server
    server.stop()


def _worker() -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


def migrated_database(server: TempPostgres, prefix: str) -> str:
    """A new database of this worker in the test cluster, at the head revision."""
    url = server.create_database(f"{prefix}_{_worker()}")
    db = Database(Settings(database_url=url))
    upgrade(db)
    db.dispose()
    return url


@pytest.fixture(scope="session")
def pg_url(pg_server: TempPostgres) -> str:
    """A migrated database of this worker."""
    return migrated_database(pg_server, "hb")


def _truncate(db: Database) -> None:
    with db.write() as conn:
        for table in reversed(metadata.sorted_tables):
            if table.name not in AUDIT_TABLES:
                conn.execute(text(f"DELETE FROM {table.name}"))
        wipe(conn)  # fixed table names from our own schema


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty, migrated database on each backend."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'test.db'}"
        db = Database(Settings(database_url=url))
        upgrade(db)
        db.dispose()
        return url
    url = str(request.getfixturevalue("pg_url"))
    db = Database(Settings(database_url=url))
    _truncate(db)
    db.dispose()
    return url


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    """Settings for the database under test (bulk files in the test's own folder, not the working tree)."""
    return Settings(database_url=db_url, pool_size=5, bulk_dir=str(tmp_path / "bulk-data"))


@pytest.fixture
def services(settings: Settings) -> Iterator[Services]:
    """Wired services on the database under test."""
    svc = build_services(settings)
    yield svc
    svc.fhir.db.dispose()


@pytest.fixture
def client(settings: Settings, services: Services) -> Iterator[TestClient]:
    """An API client on the database under test."""
    with TestClient(create_app(settings, services)) as c:
        yield c


def fetch_examples() -> Path:
    """The official R4 examples package, fetched from npm once and cached in .cache/."""
    target = CACHE / "hl7.fhir.r4.examples-4.0.1"
    CACHE.mkdir(exist_ok=True)
    with open(CACHE / "examples.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # xdist workers fetch once between them
        if not (target / "package" / "package.json").exists():
            subprocess.run(
                ["npm", "pack", EXAMPLES_PACKAGE, "--silent"], cwd=CACHE, check=True, capture_output=True
            )
            target.mkdir(exist_ok=True)
            with tarfile.open(CACHE / "hl7.fhir.r4.examples-4.0.1.tgz") as tar:
                tar.extractall(target, filter="data")
    return target / "package"


@pytest.fixture(scope="session")
def examples_dir() -> Path:
    """Directory of the unpacked official examples."""
    return fetch_examples()
