"""`healthbook audit verify|list`: a clear message and exit code for bad input, the chains checked."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from healthbook.auth.subject import Caller, Role
from healthbook.cli.main import app
from healthbook.config import get_settings
from healthbook.fhir.audit import Access
from healthbook.fhir.router import Services

WORKER = Caller(subject="w", issuer="https://idp.example", role=Role.HEALTH_WORKER, facility="01001")


@pytest.fixture
def cli_env(services: Services, monkeypatch: pytest.MonkeyPatch) -> Iterator[Services]:
    monkeypatch.setenv("HEALTHBOOK_DATABASE_URL", services.settings.database_url)
    get_settings.cache_clear()
    yield services
    get_settings.cache_clear()  # the next test reads its own environment


def test_verify_and_list(cli_env: Services) -> None:
    assert cli_env.audit is not None
    cli_env.audit.record(WORKER, [Access("book-1", "read", "Observation", "o1")])
    runner = CliRunner()
    done = runner.invoke(app, ["audit", "verify"])
    assert done.exit_code == 0, done.output
    assert "1 books, 1 events checked" in done.output and "Every chain holds" in done.output
    listed = runner.invoke(app, ["audit", "list", "--patient", "book-1"])
    assert listed.exit_code == 0 and "01001" in listed.output, listed.output


@pytest.mark.parametrize("args", [["list", "--patient", "bad id"], ["verify", "--patient", "a b"]])
def test_bad_ids_are_refused_with_a_message(cli_env: Services, args: list[str]) -> None:
    done = CliRunner().invoke(app, ["audit", *args])
    assert done.exit_code == 2 and "not a valid FHIR id" in done.output, done.output
