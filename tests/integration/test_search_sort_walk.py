"""A date sort of a frequent code reads the dates in order (PostgreSQL) and pages exactly like the join."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import orjson
import pytest
from fastapi.testclient import TestClient

from healthbook.app import Services
from healthbook.auth.subject import Caller
from healthbook.fhir.bulk.ndjson_import import Line, import_lines
from healthbook.fhir.search import sql
from healthbook.fhir.search.query import parse

FREQUENT, RARE = "2345-7", "1558-6"
COUNT = sql.WALK_MIN_MATCHES + 150  # enough for the frequent code to be walked


def observations() -> Iterator[dict[str, Any]]:
    rng = random.Random(7)
    for n in range(COUNT):
        code = RARE if n % 40 == 0 else FREQUENT
        doc: dict[str, Any] = {
            "resourceType": "Observation",
            "id": f"walk-{n}",
            "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
            "subject": {"reference": f"Patient/p{n % 37}"},
        }
        if n % 17:  # some have no date: they come after the dated ones
            day = rng.randrange(1, 29)
            doc["effectiveDateTime"] = f"2024-{rng.randrange(1, 13):02d}-{day:02d}" if n % 5 else "2024"
        yield doc


@pytest.fixture
def loaded(services: Services, client: TestClient) -> TestClient:
    lines = (Line("walk", n, orjson.dumps(d)) for n, d in enumerate(observations(), start=1))
    stats = import_lines(services.fhir, Caller.system("test"), lines, errors=lambda e: None)
    assert stats.errors == 0
    return client


def all_pages(client: TestClient, query: str) -> list[str]:
    ids: list[str] = []
    url: str | None = f"/fhir/Observation?{query}&_count=97"
    while url:
        bundle = client.get(url).json()
        ids += [e["resource"]["id"] for e in bundle.get("entry", [])]
        url = next((link["url"] for link in bundle["link"] if link["relation"] == "next"), None)
        if url:
            parts = urlsplit(url)
            url = f"{parts.path}?{parts.query}"
    return ids


@pytest.mark.parametrize("order", ["-date", "date"])
def test_the_walk_pages_like_the_join(
    loaded: TestClient, services: Services, monkeypatch: pytest.MonkeyPatch, order: str
) -> None:
    query = f"code=http://loinc.org|{FREQUENT}&_sort={order}"
    walked = all_pages(loaded, query)
    monkeypatch.setattr(sql, "WALK_MIN_MATCHES", 10**9)  # never walk: the planner's join
    joined = all_pages(loaded, query)
    assert walked == joined
    assert (
        len(walked)
        == len(set(walked))
        == sum(1 for d in observations() if "2345-7" in orjson.dumps(d).decode())
    )


def test_the_walk_is_chosen_for_frequent_codes_only(loaded: TestClient, services: Services) -> None:
    postgres = services.fhir.db.engine.dialect.name == "postgresql"
    with services.fhir.db.read() as conn:
        for code, many in ((FREQUENT, True), (RARE, False)):
            parsed = parse(
                ("Observation",), parse_qsl(f"code=http://loinc.org|{code}&_sort=-date"), strict=True
            )
            conds = sql._conds(parsed, None)
            assert sql._walks_dates(conn, ("Observation",), conds, "date") is (many and postgres), code
        both = parse(
            ("Observation",),
            [("code", f"http://loinc.org|{FREQUENT}"), ("subject", "Patient/p3")],
            strict=True,
        )
        assert not sql._walks_dates(conn, ("Observation",), sql._conds(both, None), "date")  # p3: few


def test_the_walk_bound_grows_with_the_dates(
    loaded: TestClient, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Among a hundred million dates, 1,121 matches are too rare to walk for (sqrt(51 × 10⁸) ≈ 71,000)."""
    postgres = services.fhir.db.engine.dialect.name == "postgresql"
    parsed = parse(("Observation",), parse_qsl(f"code=http://loinc.org|{FREQUENT}&_sort=-date"), strict=True)
    with services.fhir.db.read() as conn:
        conds = sql._conds(parsed, None)
        assert sql._walks_dates(conn, ("Observation",), conds, "date") is postgres
        monkeypatch.setattr(sql, "_estimated", lambda conn, what, stmt: 10**8)
        assert not sql._walks_dates(conn, ("Observation",), conds, "date")
