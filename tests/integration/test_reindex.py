"""`db reindex`: rebuilds the index tables, in batches that resume after an interruption."""

from __future__ import annotations

import pytest
from sqlalchemy import delete, func, select

from healthbook.auth.subject import Caller
from healthbook.fhir.router import Services
from healthbook.fhir.search.reindex import ReindexProgress, reindex
from healthbook.fhir.store.schema import INDEX_TABLES

CALLER = Caller.system("test")


def _patients(services: Services, n: int) -> None:
    for i in range(n):
        doc = {"resourceType": "Patient", "id": f"r{i:03d}", "gender": "female" if i % 2 else "male"}
        services.fhir.update(CALLER, "Patient", doc["id"], doc)


def _token_rows(services: Services) -> int:
    with services.fhir.db.read() as conn:
        return int(conn.execute(select(func.count()).select_from(INDEX_TABLES["token"])).scalar_one())


def test_reindex_rebuilds_lost_rows(services: Services) -> None:
    _patients(services, 25)
    before = _token_rows(services)
    with services.fhir.db.write() as conn:
        conn.execute(delete(INDEX_TABLES["token"]))
    assert _token_rows(services) == 0
    result = reindex(services.fhir.db, services.fhir.policy, CALLER, batch_size=7)
    assert result.finished and result.done == 25
    assert _token_rows(services) == before


def test_reindex_resumes_from_checkpoint(services: Services) -> None:
    _patients(services, 20)
    before = _token_rows(services)
    calls: list[ReindexProgress] = []

    def crash_after_two(p: ReindexProgress) -> None:
        calls.append(p)
        if len(calls) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        reindex(services.fhir.db, services.fhir.policy, CALLER, batch_size=5, on_progress=crash_after_two)
    seen: list[ReindexProgress] = []
    result = reindex(services.fhir.db, services.fhir.policy, CALLER, batch_size=5, on_progress=seen.append)
    assert seen[0].done == 15  # resumed after the two committed batches
    assert result.finished and result.done == 20
    assert _token_rows(services) == before
    again = reindex(services.fhir.db, services.fhir.policy, CALLER, batch_size=5)
    assert again.done == 20  # a finished run leaves no checkpoint behind


def test_reindex_needs_a_caller(services: Services) -> None:
    from healthbook.errors import Forbidden

    with pytest.raises(Forbidden):
        reindex(services.fhir.db, services.fhir.policy, None)  # type: ignore[arg-type]


def test_fingerprint_tracks_definitions(services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    from healthbook.fhir.search import reindex as module

    assert module.index_is_current(services.fhir.db)  # adopted on first look
    monkeypatch.setattr(module, "EXTRACTOR_VERSION", "changed")
    assert not module.index_is_current(services.fhir.db)
    reindex(services.fhir.db, services.fhir.policy, CALLER)
    assert module.index_is_current(services.fhir.db)
