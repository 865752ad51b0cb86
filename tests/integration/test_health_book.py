"""Patient/$summary and the /so-suc-khoe page over a synthetic population plus hand-built records, both databases."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from lxml import etree

from healthbook.app import build_services, create_app
from healthbook.auth.subject import SystemOnlyPolicy
from healthbook.config import Settings
from healthbook.fhir.router import Services
from healthbook.fhir.validation import validate_resource
from healthbook.identity.systems import CCCD
from healthbook.synth.demo import load_demo
from tests.book_samples import HOSTILE, clinical, facilities, patient, transaction

from .conftest import outcome

pytestmark = pytest.mark.xdist_group("health_book")  # one worker: the module database is loaded once

FHIR_JSON = {"content-type": "application/fhir+json"}
FULL_CCCD = "001190012345"
EMPTY_CCCD = "001190012346"
HOSTILE_CCCD = "001190012347"


@dataclass
class Book:
    """The module's server: a client with the pages on, and the people loaded."""

    client: TestClient
    services: Services
    synth_id: str  # a synthetic citizen with hand-built records added to every group
    synth_cccd: str


def _walk(sections: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for sec in sections:
        yield sec
        yield from _walk(sec.get("section", []))


def _sections(doc: dict[str, Any]) -> list[dict[str, Any]]:
    sections: list[dict[str, Any]] = doc["entry"][0]["resource"]["section"]
    return sections


def _ids(doc: dict[str, Any]) -> set[str]:
    return {f"{e['resource']['resourceType']}/{e['resource'].get('id')}" for e in doc["entry"]}


def _put(client: TestClient, resources: list[dict[str, Any]]) -> None:
    resp = client.post("/fhir", json=transaction(resources), headers=FHIR_JSON)
    assert resp.status_code == 200, resp.text[:800]


@pytest.fixture(scope="module")
def book(module_db_url: str) -> Iterator[Book]:
    settings = Settings(database_url=module_db_url, pool_size=5, book_pages=True)
    services = build_services(settings)
    loaded = load_demo(services.fhir, citizens=16, seed=5)
    assert loaded.stats.errors == 0, loaded.errors[:2]
    person = loaded.showcase[0]
    with TestClient(create_app(settings, services)) as client:
        _put(client, facilities("hb"))
        _put(client, clinical(person.patient_id, prefix="hb"))
        _put(client, [patient("full", cccd=FULL_CCCD, prefix="hb"), *clinical("full", prefix="hb")])
        _put(client, [patient("empty", cccd=EMPTY_CCCD, name="Trần Văn Trống", prefix="hb")])
        _put(client, [patient("hostile", cccd=HOSTILE_CCCD, name=HOSTILE, prefix="hb")])
        yield Book(client, services, person.patient_id, person.cccd)
    services.fhir.db.dispose()


def _summary(book: Book, pid: str) -> dict[str, Any]:
    resp = book.client.get(f"/fhir/Patient/{pid}/$summary")
    assert resp.status_code == 200, resp.text[:800]
    assert resp.headers["content-type"].startswith("application/fhir+json")
    doc: dict[str, Any] = resp.json()
    return doc


def test_synthetic_citizen_has_data_in_every_group(book: Book) -> None:
    doc = _summary(book, book.synth_id)
    assert doc["type"] == "document" and doc["entry"][0]["resource"]["resourceType"] == "Composition"
    assert [i for i in validate_resource(doc) if i.severity in ("error", "fatal")] == []
    sections = list(_walk(_sections(doc)))
    assert not [s["title"] for s in sections if "emptyReason" in s]
    episodes = [s for s in sections if s["code"]["coding"][0]["code"] == "care-episode"]
    assert len(episodes) >= 3  # the synthetic visits, and the hand-built one
    types = {e["resource"]["resourceType"] for e in doc["entry"]}
    assert {"Coverage", "Condition", "Encounter", "Observation", "MedicationRequest", "Appointment"} <= types
    # Every entry names a facility: staff are resolved through their PractitionerRole by search.
    for sec in sections:
        if sec.get("entry"):
            text = "".join(etree.fromstring(sec["text"]["div"]).itertext())
            assert "Không rõ cơ sở" not in text, sec["title"]


def test_document_round_trips_through_post_bundle(book: Book) -> None:
    doc = _summary(book, "full")
    resp = book.client.post("/fhir/Bundle", json=doc, headers=FHIR_JSON)
    assert resp.status_code == 201, resp.text[:1000]
    path = "/fhir" + resp.headers["location"].split("/fhir", 1)[1].rsplit("/_history", 1)[0]
    stored = book.client.get(path).json()
    assert stored["type"] == "document"
    assert stored["identifier"] == doc["identifier"]
    assert [e["fullUrl"] for e in stored["entry"]] == [e["fullUrl"] for e in doc["entry"]]
    broken = {**doc, "entry": doc["entry"][1:]}  # no Composition first (bdl-11)
    outcome(book.client.post("/fhir/Bundle", json=broken, headers=FHIR_JSON), 422)


def test_hand_built_record_fills_every_subsection(book: Book) -> None:
    doc = _summary(book, "full")
    codes = {s["code"]["coding"][0]["code"]: s for s in _walk(_sections(doc))}
    for code in ("48765-2", "11369-6", "8716-3", "34133-9", "10160-0", "18776-5", "57133-1"):
        assert codes[code].get("entry"), code
    ids = _ids(doc)
    for ref in ("Task/full-referral-task", "MedicationDispense/full-dispense", "DocumentReference/full-xml8"):
        assert ref in ids
    assert "Condition/full-error" not in ids  # entered-in-error


def test_empty_patient(book: Book) -> None:
    doc = _summary(book, "empty")
    top = _sections(doc)
    assert top[0]["entry"][0]["reference"].endswith("/Patient/empty")
    empty = [s for s in _walk(top[1:]) if "emptyReason" in s]
    assert {s["code"]["coding"][0]["code"] for s in empty} >= {
        "48765-2",
        "11369-6",
        "care-episodes",
        "57133-1",
    }
    assert all(s["emptyReason"]["coding"][0]["code"] == "unavailable" and "entry" not in s for s in empty)


def test_unknown_and_bad_patients(book: Book) -> None:
    outcome(book.client.get("/fhir/Patient/nobody/$summary"), 404, "not-found")
    outcome(book.client.get("/fhir/Patient/bad$id!/$summary"), 400)


def test_deleted_resources_are_not_shown(book: Book) -> None:
    _put(
        book.client,
        [
            patient("gone", cccd="001190012348", name="Lê Thị Mất", prefix="hb"),
            *clinical("gone", prefix="hb"),
        ],
    )
    assert "AllergyIntolerance/gone-allergy" in _ids(_summary(book, "gone"))
    assert book.client.delete("/fhir/AllergyIntolerance/gone-allergy").status_code in (200, 204)
    assert book.client.delete("/fhir/Appointment/gone-next").status_code in (200, 204)
    doc = _summary(book, "gone")
    assert "AllergyIntolerance/gone-allergy" not in _ids(doc)
    assert "Appointment/gone-next" not in _ids(doc)
    allergies = next(s for s in _walk(_sections(doc)) if s["code"]["coding"][0]["code"] == "48765-2")
    assert "emptyReason" in allergies
    assert book.client.delete("/fhir/Patient/gone").status_code in (200, 204)
    outcome(book.client.get("/fhir/Patient/gone/$summary"), 404, "not-found")


def test_type_level_post_and_parameters(book: Book) -> None:
    client = book.client
    by_id = client.get("/fhir/Patient/$summary", params={"identifier": f"{CCCD}|{FULL_CCCD}"})
    assert by_id.status_code == 200, by_id.text[:500]
    assert by_id.json()["entry"][0]["resource"]["subject"]["reference"].endswith("/Patient/full")
    params = {
        "resourceType": "Parameters",
        "parameter": [{"name": "identifier", "valueString": f"{CCCD}|{FULL_CCCD}"}],
    }
    posted = client.post("/fhir/Patient/$summary", json=params, headers=FHIR_JSON)
    assert posted.status_code == 200
    assert client.post("/fhir/Patient/full/$summary").status_code == 200
    outcome(client.get("/fhir/Patient/$summary"), 400)
    outcome(client.get("/fhir/Patient/$summary", params={"identifier": f"{CCCD}|999999999999"}), 404)
    outcome(
        client.get(
            "/fhir/Patient/full/$summary",
            params={"profile": "http://hl7.org/fhir/uv/ips/StructureDefinition/Bundle-uv-ips"},
        ),
        400,
    )
    bad = {"resourceType": "Parameters", "parameter": [{"name": "nonsense", "valueString": "x"}]}
    outcome(client.post("/fhir/Patient/full/$summary", json=bad, headers=FHIR_JSON), 400)


def test_capability_statement_lists_summary(book: Book) -> None:
    cs = book.client.get("/fhir/metadata").json()
    patient_res = next(r for r in cs["rest"][0]["resource"] if r["type"] == "Patient")
    ops = {o["name"]: o["definition"] for o in patient_res["operation"]}
    assert ops["summary"] == "http://hl7.org/fhir/uv/ips/OperationDefinition/summary"


def test_summary_follows_the_everything_access_policy(book: Book) -> None:
    settings = Settings(database_url=book.services.settings.database_url, pool_size=2, book_pages=True)
    services = build_services(settings)
    services.fhir.policy = services.search.policy = SystemOnlyPolicy()
    try:
        with TestClient(create_app(settings, services)) as locked:
            outcome(locked.get("/fhir/Patient/full/$everything"), 403, "forbidden")
            outcome(locked.get("/fhir/Patient/full/$summary"), 403, "forbidden")
            page = locked.get(f"/so-suc-khoe/{FULL_CCCD}")
            assert page.status_code == 403 and "Không có quyền" in page.text
    finally:
        services.fhir.db.dispose()


# ---- the page ------------------------------------------------------------------------------------


def test_page_shows_the_book_in_vietnamese_and_english(book: Book) -> None:
    page = book.client.get(f"/so-suc-khoe/{FULL_CCCD}")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["cache-control"] == "no-store"
    assert "script-src" not in page.headers["content-security-policy"]
    html = page.text
    for text in (
        "Thông tin hành chính",
        "Tiền sử",
        "Các lần khám chữa bệnh",
        "Tóm tắt hồ sơ",
        "Nguyễn Thị Ánh",
    ):
        assert text in html
    assert "Penicillin" in html and "13/04/1990" in html and "Bệnh viện Đa khoa tỉnh Hà Nam" in html
    assert 'href="?lang=en"' in html
    english = book.client.get(f"/so-suc-khoe/{FULL_CCCD}", params={"lang": "en"}).text
    assert '<html lang="en">' in english and "Care episodes" in english and 'href="?lang=vi"' in english


def test_page_matches_the_document(book: Book) -> None:
    doc = _summary(book, "full")
    html = book.client.get(f"/so-suc-khoe/{FULL_CCCD}").text
    for sec in _walk(_sections(doc)):
        assert sec["title"] in html
        for tr in etree.fromstring(sec["text"]["div"]).iter("{http://www.w3.org/1999/xhtml}tr"):
            cells = ["".join(td.itertext()) for td in tr if td.tag.endswith("td")]
            for cell in cells[1:]:
                assert cell.replace("&", "&amp;") in html, cell


def test_synthetic_citizen_page(book: Book) -> None:
    page = book.client.get(f"/so-suc-khoe/{book.synth_cccd}")
    assert page.status_code == 200
    assert "Dữ liệu mô phỏng" in page.text  # the synthetic-data tag is shown


def test_hostile_name_is_escaped_on_the_page(book: Book) -> None:
    html = book.client.get(f"/so-suc-khoe/{HOSTILE_CCCD}").text
    assert "<script>" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; Ánh &amp; &lt;b&gt;Co&lt;/b&gt;" in html


def test_unknown_and_malformed_numbers_look_the_same(book: Book) -> None:
    unknown = book.client.get("/so-suc-khoe/079099999999")
    malformed = book.client.get("/so-suc-khoe/12345")
    letters = book.client.get("/so-suc-khoe/00119001234a")
    for resp in (unknown, malformed, letters):
        assert resp.status_code == 404
        assert "Không tìm thấy sổ sức khỏe" in resp.text and "Health book not found" in resp.text
    assert unknown.text == malformed.text == letters.text
    mine = book.client.get("/so-suc-khoe/")  # the list of the books one may open, not a book
    assert mine.status_code == 200 and "Sổ sức khỏe bạn được xem" in mine.text


def test_pages_can_be_switched_off(book: Book) -> None:
    assert Settings(database_url=book.services.settings.database_url).book_pages is True  # the default
    settings = Settings(database_url=book.services.settings.database_url, pool_size=2, book_pages=False)
    services = build_services(settings)
    try:
        with TestClient(create_app(settings, services)) as off:
            page = off.get(f"/so-suc-khoe/{FULL_CCCD}")
            assert page.status_code == 404
            assert "chưa được bật" in page.text and "not enabled" in page.text
            assert "Nguyễn Thị Ánh" not in page.text
            assert off.get("/fhir/Patient/full/$summary").status_code == 200  # the API follows $everything
    finally:
        services.fhir.db.dispose()


def test_setting_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEALTHBOOK_BOOK_PAGES", "true")
    assert Settings().book_pages is True
    monkeypatch.setenv("HEALTHBOOK_BOOK_PAGES", "false")
    assert Settings().book_pages is False
