"""POST /fhir/$import-xml130 and `healthbook import xml130`: both answer with per-episode issues, never 5xx."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from healthbook.config import Settings, get_settings
from healthbook.fhir.router import Services
from healthbook.imports.xml130 import codes as cs
from healthbook.testing import xml130 as sample
from tests.integration.conftest import outcome
from tests.unit.test_xml130_source import BILLION_LAUGHS

URL = "/fhir/$import-xml130"
XML = {"Content-Type": "application/xml"}


def test_a_submission_is_imported_and_summarised(client: TestClient) -> None:
    bad = sample.variant(sample.episode_rows("BAD"), "XML1", NGAY_VAO="202302301200")
    body = sample.submission(sample.episode_rows("GOOD"), bad)
    resp = client.post(
        URL, content=body, headers={**XML, "Content-Disposition": 'attachment; filename="day.xml"'}
    )
    doc = outcome(resp, 200, "informational")
    assert doc["issue"][0]["diagnostics"].startswith("day.xml: 2 episodes (MACSKCB 01001): 1 created")
    (err,) = [i for i in doc["issue"] if i["severity"] == "error"]
    assert err["code"] == "value" and err["expression"] == ["XML1[1].NGAY_VAO"]
    assert "HOSO 2 (MA_LK 'BAD')" in err["diagnostics"] and "'202302301200'" in err["diagnostics"]
    assert err["location"] == ["/GIAMDINHHS/THONGTINHOSO/DANHSACHHOSO/HOSO[2]"]
    found = client.get("/fhir/Encounter", params={"identifier": f"{cs.EPISODE}/01001|GOOD"}).json()
    assert found["total"] == 1
    again = outcome(client.post(URL, content=body, headers=XML), 200)
    assert "0 created, 0 updated, 1 unchanged, 1 rejected" in again["issue"][0]["diagnostics"]


@pytest.mark.parametrize(
    ("body", "status", "code", "text"),
    [
        (b'<?xml version="1.0"?><Bundle/>', 400, "invalid", "not a GIAMDINHHS submission"),
        (b'{"resourceType": "Bundle"}', 400, "invalid", "not an XML document"),
        (BILLION_LAUGHS, 400, "security", "DOCTYPE"),
        (b"<GIAMDINHHS><THONGTINDONVI>", 400, "invalid", "not well-formed"),
    ],
    ids=["bundle", "json", "laughs", "truncated"],
)
def test_files_that_are_not_submissions_are_refused_with_4xx(
    client: TestClient, body: bytes, status: int, code: str, text: str
) -> None:
    doc = outcome(client.post(URL, content=body, headers=XML), status)
    (err,) = [i for i in doc["issue"] if i["severity"] == "error"]
    assert err["code"] == code and text in err["diagnostics"]


def test_every_episode_rejected_answers_422(client: TestClient) -> None:
    bad = sample.variant(sample.episode_rows(), "XML1", MA_BENH_CHINH="J18.9;I10")
    doc = outcome(client.post(URL, content=sample.submission(bad), headers=XML), 422)
    assert any("several codes" in i["diagnostics"] for i in doc["issue"])


def test_wrong_media_type_and_empty_body(client: TestClient) -> None:
    outcome(client.post(URL, content=b"{}", headers={"Content-Type": "application/fhir+json"}), 415)
    outcome(client.post(URL, content=b"", headers=XML), 400)


@pytest.fixture
def small_limit(services: Services) -> Iterator[TestClient]:
    from healthbook.app import create_app

    settings = Settings(database_url=services.settings.database_url, pool_size=5, xml130_max_bytes=2000)
    with TestClient(
        create_app(settings, Services(settings, services.fhir, services.search, services.bulk))
    ) as c:
        yield c


def test_a_body_over_the_limit_answers_413(small_limit: TestClient) -> None:
    doc = outcome(small_limit.post(URL, content=sample.submission(sample.episode_rows()), headers=XML), 413)
    assert "over the limit of 2000 bytes" in doc["issue"][0]["diagnostics"]


def test_the_cli_imports_files_and_folders(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from healthbook.cli.main import app

    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.xml").write_bytes(sample.submission(sample.episode_rows("A")))
    bad = sample.variant(sample.episode_rows("B"), "XML2", 0, SO_LUONG="1,5")
    (tmp_path / "b.xml").write_bytes(sample.submission(bad, sample.episode_rows("C")))
    (tmp_path / "x.xml").write_bytes(b"<Bundle/>")
    monkeypatch.setenv("HEALTHBOOK_DATABASE_URL", db_url)
    get_settings.cache_clear()
    report = tmp_path / "report.json"
    try:
        result = CliRunner().invoke(app, ["import", "xml130", "--report", str(report), str(folder),
                                          str(tmp_path / "b.xml"), str(tmp_path / "x.xml")])  # fmt: skip
        again = CliRunner().invoke(app, ["import", "xml130", "--report", str(report), str(folder)])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 1, result.output
    text = " ".join(result.output.split())
    assert "3 file(s) (1 refused), 3 episodes: 2 stored, 1 rejected" in text
    assert "b.xml:2: HOSO 1 (MA_LK 'B'): XML2 row 1, SO_LUONG = '1,5'" in text
    assert "x.xml: not a GIAMDINHHS submission" in text or "x.xml" in text
    doc = orjson.loads(report.read_bytes())
    assert doc["resourceType"] == "OperationOutcome" and again.exit_code == 0
    assert "1 file(s), 1 episodes: 1 stored" in " ".join(again.output.split())


def test_an_imported_file_appears_in_the_health_book(client: TestClient) -> None:
    """The issue's 'done when': diagnoses, drugs, lab values, referral and follow-up date in $summary."""
    outcome(client.post(URL, content=sample.submission(sample.episode_rows()), headers=XML), 200)
    resp = client.get("/fhir/Patient/$summary", params={"identifier": f"{cs.CCCD}|001190123456"})
    assert resp.status_code == 200, resp.text[:500]
    book = resp.json()
    entries = [e["resource"] for e in book["entry"]]
    kinds = {r["resourceType"] for r in entries}
    assert {
        "Encounter",
        "Condition",
        "MedicationRequest",
        "Observation",
        "ServiceRequest",
        "Appointment",
    } <= kinds
    codes = {
        c["code"].get("coding", [{}])[0].get("code") for c in entries if c["resourceType"] == "Condition"
    }
    assert {"O82.0", "O99.0", "D50.9"} <= codes
    labs = {o["code"].get("text"): o.get("valueQuantity", {}).get("value") for o in entries
            if o["resourceType"] == "Observation"}  # fmt: skip
    assert labs["Huyết sắc tố"] == 98
    assert any(r["resourceType"] == "MedicationRequest" and "Sắt fumarat" in r["medicationCodeableConcept"]["text"]
               for r in entries)  # fmt: skip
    assert sorted(a["start"][:10] for a in entries if a["resourceType"] == "Appointment") == [
        "2026-06-11", "2026-07-11"]  # fmt: skip
    narrative = orjson.dumps(book["entry"][0]["resource"]).decode()
    assert "Chuyển tuyến đến cơ sở 01904" in narrative and "11/07/2026" in narrative
    # The newborn's birth weight and certificate are the child's, not the mother's.
    assert not any(r["resourceType"] == "RelatedPerson" for r in entries)
    assert "8339-4" not in orjson.dumps(entries).decode()
