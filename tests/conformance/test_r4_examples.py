"""Every official R4 example goes in through the API and reads back unchanged (both databases).

Examples that are themselves invalid per the specification are listed, with the reason, in
tests/unit/test_validation_examples.py (KNOWN_INVALID); they must be rejected with an
OperationOutcome that names the offending element.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from healthbook.app import build_services, create_app
from healthbook.config import Settings
from healthbook.db.engine import Database
from healthbook.db.migrate import upgrade
from healthbook.testing.postgres import TempPostgres
from tests.conftest import fetch_examples
from tests.unit.test_validation_examples import DEFINITION_PREFIXES, KNOWN_INVALID

DEFINITIONAL = DEFINITION_PREFIXES
H = {"content-type": "application/fhir+json"}
pytestmark = pytest.mark.slow


def example_files(package: Path) -> list[Path]:
    """The ~730 example resources of the package (definitional resources excluded)."""
    return [
        p
        for p in sorted(package.glob("*.json"))
        if p.name != "package.json" and not p.name.startswith(DEFINITIONAL) and not p.name.startswith(".")
    ]


def _exact(text: str | bytes) -> Any:
    return json.loads(text, parse_float=Decimal)


def _without_server_meta(doc: dict[str, Any]) -> dict[str, Any]:
    out = dict(doc)
    meta = {k: v for k, v in (out.get("meta") or {}).items() if k not in ("versionId", "lastUpdated")}
    if meta:
        out["meta"] = meta
    else:
        out.pop("meta", None)
    return out


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def conformance_client(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient]:
    """One database per backend holding all examples (bodies up to 64 MiB: Bundle-resources is 35 MB)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('conformance') / 'examples.db'}"
    else:
        server: TempPostgres = request.getfixturevalue("pg_server")
        url = server.create_database(f"conformance_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}")
    settings = Settings(database_url=url, max_body_bytes=64 * 1024 * 1024, pool_size=2)
    db = Database(settings)
    upgrade(db)
    services = build_services(settings, db)
    with TestClient(create_app(settings, services)) as client:
        yield client
    db.dispose()


EXAMPLES = example_files(fetch_examples())


def test_examples_are_all_there() -> None:
    assert len(EXAMPLES) >= 700
    assert set(KNOWN_INVALID) - {"package.json"} <= {p.name for p in EXAMPLES}


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_round_trip(conformance_client: TestClient, path: Path) -> None:
    raw = path.read_bytes()
    original = _exact(raw)
    url = f"/fhir/{original['resourceType']}/{original['id']}"
    response = conformance_client.put(url, content=raw, headers=H)
    if path.name in KNOWN_INVALID:
        assert response.status_code in (400, 422), response.text
        outcome = response.json()
        assert outcome["resourceType"] == "OperationOutcome"
        assert any(issue.get("expression") for issue in outcome["issue"]), outcome
        assert conformance_client.get(url).status_code == 404
        return
    assert response.status_code in (200, 201), response.text[:2000]
    stored = conformance_client.get(url)
    assert stored.status_code == 200
    assert _without_server_meta(_exact(stored.content)) == _without_server_meta(original)
