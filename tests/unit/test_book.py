"""The health book without a database: sections, narratives, facilities, dates, the page's view and template."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest
from lxml import etree

from healthbook.book.dates import show_date, show_time
from healthbook.book.document import build_document
from healthbook.book.labels import BOOK_SECTION, LOINC, SECTIONS
from healthbook.book.record import Record, references
from healthbook.fhir.validation import validate_resource
from healthbook.web.router import render
from healthbook.web.view import book_view
from tests.book_samples import BHXH, HOSPITAL, HOSTILE, STATION, clinical, facilities, patient

BASE = "https://hb.example.vn/fhir"
NOW = datetime(2026, 12, 2, 3, 0, tzinfo=UTC)
XHTML = "{http://www.w3.org/1999/xhtml}"


def _document(resources: list[dict[str, Any]], pid: str = "p1") -> dict[str, Any]:
    return build_document(resources, patient_id=pid, base=BASE, now=NOW, version="test", document_id="doc-1")


@pytest.fixture(scope="module")
def full() -> dict[str, Any]:
    return _document([patient("p1"), *clinical("p1"), *facilities("p1")])


def _sections(doc: dict[str, Any]) -> list[dict[str, Any]]:
    sections: list[dict[str, Any]] = doc["entry"][0]["resource"]["section"]
    return sections


def _walk(sections: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for sec in sections:
        out.append(sec)
        out += _walk(sec.get("section", []))
    return out


def _by_code(doc: dict[str, Any], code: str) -> dict[str, Any]:
    return next(s for s in _walk(_sections(doc)) if s["code"]["coding"][0]["code"] == code)


def _entry_ids(section: dict[str, Any]) -> list[str]:
    return [e["reference"].removeprefix(BASE + "/") for e in section.get("entry", [])]


def _text(section: dict[str, Any]) -> str:
    return "".join(etree.fromstring(section["text"]["div"]).itertext())


def test_document_bundle_shape(full: dict[str, Any]) -> None:
    assert full["type"] == "document"
    assert full["identifier"] == {"system": "urn:ietf:rfc:3986", "value": "urn:uuid:doc-1"}
    assert full["timestamp"] == "2026-12-02T10:00:00+07:00"
    comp = full["entry"][0]["resource"]
    assert comp["resourceType"] == "Composition"
    assert comp["status"] == "final"
    assert comp["type"]["coding"] == [
        {"system": LOINC, "code": "60591-5", "display": "Patient summary Document"}
    ]
    assert comp["title"] == "Sổ sức khỏe điện tử"
    assert comp["subject"]["reference"] == f"{BASE}/Patient/p1"
    assert comp["date"] == full["timestamp"]
    author = comp["author"][0]["reference"]
    device = next(e["resource"] for e in full["entry"] if e["fullUrl"] == author)
    assert device["resourceType"] == "Device"
    assert [e.get("severity") for e in validate_resource(full) if e.severity in ("error", "fatal")] == []


def test_full_urls_are_unique_and_every_reference_resolves(full: dict[str, Any]) -> None:
    urls = [e["fullUrl"] for e in full["entry"]]
    assert len(urls) == len(set(urls))
    for entry in full["entry"][1:]:
        res = entry["resource"]
        if entry["fullUrl"].startswith("http"):
            assert entry["fullUrl"] == f"{BASE}/{res['resourceType']}/{res['id']}"
    comp = full["entry"][0]["resource"]
    cited = [comp["subject"]["reference"], comp["author"][0]["reference"]]
    cited += [e["reference"] for s in _walk(comp["section"]) for e in s.get("entry", [])]
    assert set(cited) <= set(urls)
    # References inside the entries resolve too (relative ones against the server base).
    held = {f"{r['resourceType']}/{r['id']}" for r in (e["resource"] for e in full["entry"])}
    inner = {ref for e in full["entry"][1:] for ref in references(e["resource"])}
    assert inner <= held, inner - held


def test_four_groups_with_codes_titles_and_subsections(full: dict[str, Any]) -> None:
    top = _sections(full)
    assert [(s["code"]["coding"][0]["system"], s["title"]) for s in top] == [
        (BOOK_SECTION, "Thông tin hành chính"),
        (BOOK_SECTION, "Tiền sử"),
        (BOOK_SECTION, "Các lần khám chữa bệnh"),
        (BOOK_SECTION, "Tóm tắt hồ sơ"),
    ]
    assert [s["code"]["coding"][0]["code"] for s in top[1]["section"]] == ["11450-4", "48765-2", "11369-6"]
    care = [s["code"]["coding"][0]["code"] for s in top[2]["section"]]
    assert care == ["8716-3", "care-episode", "care-unlinked"]
    assert [s["code"]["coding"][0]["code"] for s in top[3]["section"]] == [
        "34133-9",
        "10160-0",
        "18776-5",
        "57133-1",
    ]
    for sec in _walk(top):
        assert sec["text"]["status"] == "generated"
        assert "emptyReason" not in sec, sec["title"]


def test_administrative_fields(full: dict[str, Any]) -> None:
    tree = etree.fromstring(_by_code(full, "administrative")["text"]["div"])
    fields = {
        "".join(tr[0].itertext()): "".join(tr[1].itertext())
        for tr in tree.findall(f"{XHTML}table/{XHTML}tbody/{XHTML}tr")
    }
    assert fields["Họ và tên"] == "Nguyễn Thị Ánh"
    assert fields["Ngày sinh"] == "12/04/1990"
    assert fields["Số định danh cá nhân (CCCD)"] == "001190012345"
    assert fields["Số thẻ BHYT"] == "GD4011234567890 (hiệu lực 01/01/2026 – 31/12/2026)"
    assert fields["Dân tộc"] == "Kinh" and fields["Quốc tịch"] == "Việt Nam"
    assert fields["Nơi đăng ký khám chữa bệnh ban đầu"] == STATION
    assert fields["Nghề nghiệp"] == "Chưa có dữ liệu"  # missing fields say so


def test_entries_of_each_group(full: dict[str, Any]) -> None:
    admin = _entry_ids(_by_code(full, "administrative"))
    assert admin == ["Patient/p1", "Coverage/p1-bhyt", "Organization/p1-station"]
    assert _entry_ids(_by_code(full, "11450-4")) == [
        "Condition/p1-htn"
    ]  # the resolved visit diagnosis is not
    assert _entry_ids(_by_code(full, "48765-2")) == ["AllergyIntolerance/p1-allergy"]
    assert _entry_ids(_by_code(full, "11369-6")) == ["Immunization/p1-vaccine"]
    indicators = _entry_ids(_by_code(full, "8716-3"))
    assert indicators == [
        "Observation/p1-abo",
        "Observation/p1-height",
        "Observation/p1-weight",
        "Observation/p1-bp",
    ]
    episode = _entry_ids(_by_code(full, "care-episode"))
    assert episode[0] == "Encounter/p1-enc"
    assert episode[1] == "Condition/p1-dx"  # the main diagnosis first
    for ref in ("Procedure/p1-endoscopy", "MedicationRequest/p1-rx", "MedicationDispense/p1-dispense"):
        assert ref in episode
    assert episode.index("DiagnosticReport/p1-report") + 1 == episode.index("Observation/p1-glucose")
    assert _entry_ids(_by_code(full, "care-unlinked")) == ["MedicationStatement/p1-statement"]
    assert _entry_ids(_by_code(full, "34133-9")) == ["DocumentReference/p1-xml8"]
    assert _entry_ids(_by_code(full, "10160-0")) == ["MedicationRequest/p1-rx"]
    assert _entry_ids(_by_code(full, "18776-5")) == ["Appointment/p1-next", "Appointment/p1-past"]
    assert _entry_ids(_by_code(full, "57133-1")) == ["Task/p1-referral-task", "ServiceRequest/p1-referral"]


def test_withdrawn_resources_are_left_out(full: dict[str, Any]) -> None:
    assert all(e["resource"].get("id") != "p1-error" for e in full["entry"])


def test_every_entry_names_its_facility_and_date(full: dict[str, Any]) -> None:
    expected = {
        "Condition/p1-htn": (STATION, "01/05/2020"),  # recorder -> PractitionerRole -> station
        "AllergyIntolerance/p1-allergy": (STATION, "05/01/2019"),
        "Immunization/p1-vaccine": (STATION, "13/04/1990"),  # 20:00 UTC is the next day in Vietnam
        "Observation/p1-height": (HOSPITAL, "10/03/2025"),  # via the Encounter
        "DocumentReference/p1-xml8": (HOSPITAL, "12/03/2025"),
        "Appointment/p1-next": (STATION, "15/01/2099"),
        "ServiceRequest/p1-referral": (STATION, "01/03/2025"),  # from the requester, not the destination
        "Coverage/p1-bhyt": (BHXH, "01/01/2026"),
    }
    rows = {}
    for sec in _walk(_sections(full)):
        if sec.get("entry"):
            tree = etree.fromstring(sec["text"]["div"])
            body_rows = tree.findall(f".//{XHTML}tbody/{XHTML}tr")
            data_rows = [r for r in body_rows if len(r) == 4]
            assert len(data_rows) == len(sec["entry"]), sec["title"]
            for ref, row in zip(_entry_ids(sec), data_rows, strict=True):
                cells = ["".join(c.itertext()) for c in row]
                assert cells[2] and cells[3], (ref, cells)
                rows[ref] = (cells[2], cells[3])
    for ref, want in expected.items():
        assert rows[ref] == want, ref


def test_narratives_are_well_formed_xhtml(full: dict[str, Any]) -> None:
    for sec in [full["entry"][0]["resource"], *_walk(_sections(full))]:
        div = sec["text"]["div"]
        tree = etree.fromstring(div)
        assert tree.tag == f"{XHTML}div"
        assert not tree.findall(f".//{XHTML}script")
    assert "Bệnh lý tăng huyết áp" in _text(_by_code(full, "11450-4"))
    assert "7,2 mmol/L · cao · tham chiếu 3,9–6,1" in _text(_by_code(full, "care-episode"))
    assert "135/85 mmHg" in _text(_by_code(full, "8716-3"))
    assert "Chẩn đoán chính: R51 – Đau đầu" in _text(_by_code(full, "care-episode"))


def test_hostile_names_are_escaped() -> None:
    doc = _document([patient("p2", name=HOSTILE), *facilities("p2")], pid="p2")
    admin = _by_code(doc, "administrative")["text"]["div"]
    assert "<script>" not in admin
    assert '&lt;script&gt;alert("x")&lt;/script&gt; Ánh &amp; &lt;b&gt;Co&lt;/b&gt;' in admin
    assert HOSTILE in _text(_by_code(doc, "administrative"))  # the text survives, as text
    html = render("book.html", 200, "vi", view=book_view(doc, "vi", fhir_url=BASE)).body.decode()
    assert "<script>" not in html
    assert "&lt;script&gt;" in html


def test_empty_patient_has_every_section_marked_empty() -> None:
    doc = _document([patient("p3"), *facilities("p3")], pid="p3")
    top = _sections(doc)
    assert _entry_ids(top[0])[0] == "Patient/p3"
    assert "emptyReason" in top[2] and "section" not in top[2]  # no care episodes at all
    for sec in [*top[1]["section"], top[2], *top[3]["section"]]:
        assert sec["emptyReason"]["coding"][0]["code"] == "unavailable"
        assert "entry" not in sec
        assert _text(sec) == "Chưa có dữ liệu nào được gửi đến sổ."
    assert [i for i in validate_resource(doc) if i.severity == "error"] == []


def test_unknown_patient_is_an_error() -> None:
    with pytest.raises(ValueError, match="Patient/nobody"):
        _document([patient("p4")], pid="nobody")


def test_page_view_agrees_with_the_document(full: dict[str, Any]) -> None:
    view = book_view(full, "vi", fhir_url=BASE)
    assert [s.title for s in view.sections] == [s["title"] for s in _sections(full)]
    for sec_view, sec in zip(view.sections[1].children, _sections(full)[1]["section"], strict=True):
        assert [f"{r.kind}: {r.text}" for r in sec_view.rows] == [
            "".join(tr[0].itertext())
            for tr in etree.fromstring(sec["text"]["div"]).findall(f".//{XHTML}tbody/{XHTML}tr")
        ]
    english = book_view(full, "en", fhir_url=BASE)
    assert [s.title for s in english.sections] == [
        SECTIONS[k].en for k in ("administrative", "history", "care", "summary")
    ]
    assert english.sections[1].children[1].rows[0].kind == "Allergy"
    assert english.gender == "Female" and view.gender == "Nữ"


def test_page_template_in_both_languages(full: dict[str, Any]) -> None:
    vi = render("book.html", 200, "vi", view=book_view(full, "vi", fhir_url=BASE))
    html = vi.body.decode()
    assert '<html lang="vi">' in html
    assert "Thông tin hành chính" in html and "Nguyễn Thị Ánh" in html
    assert 'href="?lang=en"' in html
    assert "@media print" in html and "@media (max-width" in html
    assert not re.search(r"<(script|link|img|iframe)\b", html)
    assert "10/03/2025" in html and "2025-03-10" not in html
    assert vi.headers["content-security-policy"].startswith("default-src 'none'")
    en = render("book.html", 200, "en", view=book_view(full, "en", fhir_url=BASE)).body.decode()
    assert '<html lang="en">' in en and "Administrative information" in en and 'href="?lang=vi"' in en


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("2025-03-10", "10/03/2025"),
        ("2025-03", "03/2025"),
        ("2025", "2025"),
        ("2025-03-10T23:30:00+07:00", "10/03/2025"),
        ("2025-03-10T17:30:00Z", "11/03/2025"),
        ("2025-03-10T08:00:00", "10/03/2025"),
        (None, ""),
    ],
)
def test_dates_are_day_month_year_in_vietnam_time(value: str | None, shown: str) -> None:
    assert show_date(value) == shown


def test_times() -> None:
    assert show_time("2099-01-15T02:00:00Z") == "09:00"
    assert show_time("2099-01-15") == ""


def test_facility_falls_back_to_reference_display_and_unknown() -> None:
    record = Record(
        [
            {
                "resourceType": "Observation",
                "id": "o",
                "performer": [{"reference": "Organization/x", "display": "Phòng khám A"}],
            }
        ]
    )
    assert record.facility(record.by_key[("Observation", "o")]) == "Phòng khám A"
    lonely = Record([{"resourceType": "Procedure", "id": "p"}])
    assert lonely.facility(lonely.by_key[("Procedure", "p")]) is None
