"""Every generated resource passes the server's validation and loads through bulk import and transactions."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import orjson
from fastapi.testclient import TestClient

from healthbook.auth.subject import Caller
from healthbook.fhir.bulk.ndjson_import import Line, import_lines, lines_of
from healthbook.fhir.router import Services
from healthbook.fhir.validation import validate_resource
from healthbook.synth import writer
from healthbook.synth.generate import Config, Generator, demo_population

FHIR_JSON = {"content-type": "application/fhir+json"}


def test_every_resource_of_300_citizens_is_valid() -> None:
    gen = Generator(Config(300, 8))
    problems: Counter[str] = Counter()
    count = 0
    for res in gen.resources():
        count += 1
        for issue in validate_resource(res):
            if issue.severity in ("error", "fatal"):
                problems[f"{res['resourceType']}: {issue.diagnostics[:160]}"] += 1
    assert count > 300 * 50
    assert not problems, problems.most_common(5)


def test_ndjson_files_import_without_errors(services: Services, tmp_path: Path) -> None:
    config = Config(60, 9, frozenset({"46"}))
    summary = writer.write_ndjson(config, tmp_path, workers=1)

    def lines() -> Iterator[Line]:
        for path in sorted(tmp_path.glob("*.ndjson")):
            with path.open("rb") as handle:
                yield from lines_of(path.name, handle)

    errors: list[dict[str, object]] = []
    stats = import_lines(services.fhir, Caller.system("test"), lines(), errors=errors.append)
    assert not errors, errors[:2]
    assert stats.errors == 0
    assert stats.created == summary.resources
    assert stats.by_type == summary.by_type


def test_demo_population_streams_into_the_importer(services: Services) -> None:
    errors: list[dict[str, object]] = []
    docs = demo_population(20, 1)
    lines = (Line("demo", n, orjson.dumps(res)) for n, res in enumerate(docs, start=1))
    stats = import_lines(services.fhir, Caller.system("demo"), lines, errors=errors.append)
    assert not errors
    assert stats.by_type["Patient"] == 20


def test_bundles_load_as_transactions(client: TestClient, tmp_path: Path) -> None:
    config = Config(15, 10, frozenset({"12"}))
    writer.write_bundles(config, tmp_path, workers=1)
    shared = sorted((tmp_path / "facilities").glob("*.json"))
    citizens = sorted((tmp_path / "citizens").rglob("*.json"))
    assert shared
    assert len(citizens) == 15
    for path in [*shared, *citizens]:
        resp = client.post("/fhir", content=path.read_bytes(), headers=FHIR_JSON)
        assert resp.status_code == 200, resp.text[:500]
    first = orjson.loads(citizens[0].read_bytes())
    patient = first["entry"][0]["resource"]
    got = client.get(f"/fhir/Patient/{patient['id']}")
    assert got.status_code == 200
    assert got.json()["name"] == patient["name"]
    everything = client.get(f"/fhir/Encounter?subject=Patient/{patient['id']}&_summary=count")
    assert everything.status_code == 200
    assert everything.json()["total"] == sum(
        e["resource"]["resourceType"] == "Encounter" for e in first["entry"]
    )


def test_load_demo_stores_everything_and_names_people_to_try(services: Services) -> None:
    from healthbook.synth.demo import load_demo

    loaded = load_demo(services.fhir, citizens=30, seed=2)
    assert not loaded.errors
    assert loaded.stats.by_type["Patient"] == 30
    assert loaded.showcase
    for person in loaded.showcase:
        assert len(person.cccd) == 12
        assert services.fhir.read(Caller.system("t"), "Patient", person.patient_id) is not None
