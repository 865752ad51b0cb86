"""Importing XML130 files on SQLite and PostgreSQL: storage, idempotency, corrections, errors, volume."""

from __future__ import annotations

import base64
import contextlib
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy.exc import IntegrityError

from healthbook.auth.subject import Caller
from healthbook.errors import Gone
from healthbook.fhir.http import Prefer
from healthbook.fhir.router import Services
from healthbook.fhir.service import history
from healthbook.fhir.upsert import Upsert
from healthbook.imports.xml130 import codes as cs
from healthbook.imports.xml130 import render
from healthbook.imports.xml130.ids import episode_id
from healthbook.imports.xml130.issues import FileReport
from healthbook.imports.xml130.service import Xml130Importer
from healthbook.testing import xml130 as sample
from tests.integration.conftest import TableCounts, table_counts

CALLER = Caller.system("test-xml130")


def _importer(services: Services) -> Xml130Importer:
    return Xml130Importer(services.fhir, services.search, services.settings)


def _import(services: Services, data: bytes, name: str = "test.xml") -> FileReport:
    return _importer(services).import_source(CALLER, data, name)


def _search(services: Services, res_type: str, **params: str) -> list[dict[str, Any]]:
    body = services.search.search_bundle(CALLER, res_type, [*params.items(), ("_count", "1000")], base="",
                                         prefer=Prefer())  # fmt: skip
    return [e["resource"] for e in orjson.loads(body).get("entry", []) if e["search"]["mode"] == "match"]


def _encounter(services: Services, ma_lk: str, facility: str = "01001") -> dict[str, Any]:
    (enc,) = _search(services, "Encounter", identifier=f"{cs.EPISODE}/{facility}|{ma_lk}")
    return enc


def _counts(services: Services) -> TableCounts:
    return table_counts(services.fhir.db)


def _types(services: Services) -> Counter[str]:
    page = history(
        services.fhir, CALLER, res_type=None, res_id=None, since=None, until=None, offset=0, count=0
    )
    out: Counter[str] = Counter()
    total = page.total
    for offset in range(0, total, 1000):
        chunk = history(services.fhir, CALLER, res_type=None, res_id=None, since=None, until=None,
                        offset=offset, count=1000)  # fmt: skip
        out.update(v.res_type for v in chunk.versions if not v.deleted)
    return out


def test_an_episode_is_stored_and_appears_in_the_patients_record(services: Services) -> None:
    report = _import(services, sample.submission(sample.episode_rows()))
    assert report.summary().startswith("test.xml: 1 episodes (MACSKCB 01001): 1 created")
    (ep,) = report.episodes
    assert ep.status == "created" and ep.problems == [] and ep.resources > 30
    (patient,) = _search(services, "Patient", identifier=f"{cs.CCCD}|001190123456")
    assert _search(services, "Patient", identifier=f"{cs.BHYT}|DN4010123456789")[0]["id"] == patient["id"]
    enc = _encounter(services, "LK0001")
    assert enc["subject"] == {"reference": f"Patient/{patient['id']}"}
    conditions = _search(services, "Condition", subject=f"Patient/{patient['id']}")
    assert {c["code"].get("coding", [{}])[0].get("code") for c in conditions} >= {"O82.0", "O99.0", "D50.9"}
    labs = _search(services, "Observation", subject=f"Patient/{patient['id']}", code="10*9/L") or _search(
        services, "Observation", patient=patient["id"], category="laboratory"
    )
    assert any(o.get("valueQuantity", {}).get("code") == "g/L" for o in labs)
    (org,) = _search(services, "Organization", identifier=f"{cs.FACILITY}|01904")
    (sr,) = _search(services, "ServiceRequest", patient=patient["id"])
    assert sr["performer"] == [{"reference": f"Organization/{org['id']}"}]
    appointments = _search(services, "Appointment", patient=patient["id"])
    assert sorted(a["start"][:10] for a in appointments) == ["2026-06-11", "2026-07-11"]
    (child,) = _search(services, "Patient", identifier=f"{cs.BHYT}|TE1010999888777")
    (mother,) = _search(services, "RelatedPerson", patient=child["id"])
    assert {"system": cs.CCCD, "value": "001190123456"} in mother["identifier"]
    (prov,) = _search(services, "Provenance", target=f"Encounter/{enc['id']}")
    assert prov["entity"][0]["what"]["identifier"]["value"] == "LK0001"


def test_reimporting_the_same_file_changes_nothing(services: Services) -> None:
    data = sample.submission(sample.episode_rows("A"), sample.episode_rows("B"))
    first = _import(services, data)
    before = _counts(services)
    again = _import(services, data)  # a new importer: nothing cached
    assert [e.status for e in first.episodes] == ["created", "created"]
    assert [e.status for e in again.episodes] == ["unchanged", "unchanged"]
    assert _counts(services) == before
    enc = _encounter(services, "A")
    assert enc["meta"]["versionId"] == "1"


def test_a_corrected_submission_replaces_the_episode_keeping_history(services: Services) -> None:
    rows = sample.episode_rows()
    _import(services, sample.submission(rows))
    enc = _encounter(services, "LK0001")
    drug_id = episode_id("01001", "LK0001", "MedicationRequest", "1")
    transport_id = episode_id("01001", "LK0001", "ChargeItem", "XML2", "2")
    services.fhir.read(CALLER, "ChargeItem", transport_id)
    corrected = sample.variant(rows, "XML2", 0, SO_LUONG="60")
    corrected["XML2"].pop(1)  # the transport line is withdrawn
    corrected["XML1"][0]["MA_BENH_KT"] = "O99.0"  # D50.9 withdrawn too
    report = _import(services, sample.submission(corrected))
    (ep,) = report.episodes
    assert ep.status == "updated" and ep.resources >= 3
    drug = services.fhir.read(CALLER, "MedicationRequest", drug_id)
    assert drug.version_id == 2 and b'"value":60' in (drug.content or "").encode()
    old = services.fhir.vread(CALLER, "MedicationRequest", drug_id, "1")
    assert b'"value":30' in (old.content or "").encode()
    with pytest.raises(Gone):
        services.fhir.read(CALLER, "ChargeItem", transport_id)
    with pytest.raises(Gone):
        services.fhir.read(CALLER, "Condition", episode_id("01001", "LK0001", "Condition", "kt", "D50.9"))
    assert _encounter(services, "LK0001")["id"] == enc["id"]
    assert len(_search(services, "Encounter", identifier=f"{cs.EPISODE}/01001|LK0001")) == 1


def test_a_withdrawn_birth_certificate_removes_the_newborns_resources(services: Services) -> None:
    rows = sample.episode_rows()
    _import(services, sample.submission(rows))
    (child,) = _search(services, "Patient", identifier=f"{cs.BHYT}|TE1010999888777")
    assert len(_search(services, "RelatedPerson", patient=child["id"])) == 1
    rows.pop("XML9")
    report = _import(services, sample.submission(rows))
    assert report.episodes[0].status == "updated"
    assert _search(services, "RelatedPerson", patient=child["id"]) == []
    assert _search(services, "Observation", subject=f"Patient/{child['id']}") == []
    assert _search(services, "Provenance", patient=child["id"]) == []
    services.fhir.read(CALLER, "Patient", child["id"])  # shared: the child's record itself stays


def test_a_duplicated_episode_in_one_file_is_stored_once_the_later_winning(services: Services) -> None:
    first = sample.episode_rows("DUP")
    later = sample.variant(first, "XML2", 0, SO_LUONG="90")
    report = _import(services, sample.submission(first, sample.episode_rows("OTHER"), later))
    assert [e.status for e in report.episodes] == ["created", "created", "updated"]
    dup = report.episodes[2].problems
    assert [p.code for p in dup] == ["duplicate"] and "HOSO 1" in dup[0].message
    assert len(_search(services, "Encounter", identifier=f"{cs.EPISODE}/01001|DUP")) == 1
    drug = services.fhir.read(
        CALLER, "MedicationRequest", episode_id("01001", "DUP", "MedicationRequest", "1")
    )
    assert drug.version_id == 2 and b'"value":90' in (drug.content or "").encode()


def test_a_bad_episode_is_reported_and_the_others_are_stored(services: Services) -> None:
    good_a, good_c = sample.episode_rows("A"), sample.episode_rows("C")
    bad = sample.variant(sample.episode_rows("B"), "XML2", 0, SO_LUONG="1,5")
    report = _import(services, sample.submission(good_a, bad, good_c))
    assert [e.status for e in report.episodes] == ["created", "rejected", "created"]
    (problem,) = report.episodes[1].problems
    assert (problem.table, problem.row, problem.field, problem.value) == ("XML2", 1, "SO_LUONG", "1,5")
    assert report.episodes[1].ma_lk == "B" and report.episodes[1].line == 3
    assert _search(services, "Encounter", identifier=f"{cs.EPISODE}/01001|B") == []
    with pytest.raises(Exception, match="not known"):
        services.fhir.read(CALLER, "Provenance", episode_id("01001", "B", "Provenance"))


def test_an_episode_that_maps_to_invalid_fhir_leaves_nothing_behind(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    from healthbook.imports.xml130.mappers import documents

    original = documents.kept_tables

    def broken(ctx: Any) -> None:
        original(ctx)
        if ctx.episode.ma_lk == "B":
            ctx.add({"resourceType": "Observation", "id": ctx.id("bad"), "status": "nonsense"})

    monkeypatch.setattr("healthbook.imports.xml130.mappers.documents.kept_tables", broken)
    before = _counts(services)
    report = _import(services, sample.submission(sample.episode_rows("B")))
    assert report.episodes[0].status == "rejected" and "is refused" in report.episodes[0].problems[0].message
    assert _counts(services) == before  # not even the new Patient, Organizations or Practitioners


def test_a_storage_failure_of_one_episode_does_not_block_the_chunk(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    poisoned = episode_id("01001", "B", "Encounter")
    real_put = Upsert.put

    def put(self: Upsert, body: dict[str, Any], *, known: bool) -> str:
        if body["id"] == poisoned:
            raise IntegrityError("insert", {}, Exception("duplicate key"))
        return real_put(self, body, known=known)

    monkeypatch.setattr(Upsert, "put", put)
    report = _import(services, sample.submission(*(sample.episode_rows(k) for k in "ABC")))
    assert [e.status for e in report.episodes] == ["created", "rejected", "created"]
    assert report.episodes[1].problems[-1].code == "conflict"
    assert _search(services, "Encounter", identifier=f"{cs.EPISODE}/01001|B") == []
    assert len(_search(services, "Encounter", identifier=f"{cs.EPISODE}/01001|C")) == 1


def test_existing_patients_are_found_by_cccd_then_by_bhyt(services: Services) -> None:
    by_cccd = {"resourceType": "Patient", "id": "known-cccd",
               "identifier": [{"system": cs.CCCD, "value": "001190123456"}]}  # fmt: skip
    by_card = {"resourceType": "Patient", "id": "known-card",
               "identifier": [{"system": cs.BHYT, "value": "HS4010000000001"}]}  # fmt: skip
    services.fhir.update(CALLER, "Patient", "known-cccd", by_cccd)
    services.fhir.update(CALLER, "Patient", "known-card", by_card)
    other = sample.variant(sample.episode_rows("CARD"), "XML1", SO_CCCD=None, MA_THE_BHYT="HS4010000000001")
    report = _import(services, sample.submission(sample.episode_rows("CCCD"), other))
    assert all(not e.rejected for e in report.episodes)
    assert _encounter(services, "CCCD")["subject"] == {"reference": "Patient/known-cccd"}
    assert _encounter(services, "CARD")["subject"] == {"reference": "Patient/known-card"}
    assert services.fhir.read(CALLER, "Patient", "known-cccd").version_id == 1  # found, not modified
    mothers = {p["id"] for p in _search(services, "Patient", identifier=f"{cs.CCCD}|001190123456")}
    assert mothers == {"known-cccd"}


def test_a_patient_merged_into_another_record_resolves_to_that_record(services: Services) -> None:
    source = {"resourceType": "Patient", "id": "merged-away", "name": [{"text": "Nguyễn Thị Hoa"}],
              "identifier": [{"system": cs.CCCD, "value": "001190123456"}]}  # fmt: skip
    target = {"resourceType": "Patient", "id": "kept", "name": [{"text": "Nguyễn Thị Hoa"}]}
    services.fhir.update(CALLER, "Patient", "merged-away", source)
    services.fhir.update(CALLER, "Patient", "kept", target)
    services.identity.merge(CALLER, "merged-away", "kept")
    _import(services, sample.submission(sample.episode_rows("AFTER-MERGE")))
    assert _encounter(services, "AFTER-MERGE")["subject"] == {"reference": "Patient/kept"}


def test_patients_facilities_and_staff_are_shared_between_episodes_and_files(services: Services) -> None:
    _import(services, sample.submission(sample.episode_rows("A"), sample.episode_rows("B")), "a.xml")
    _import(services, sample.submission(sample.episode_rows("C")), "b.xml")
    kinds = _types(services)
    assert kinds["Encounter"] == 3
    assert kinds["Patient"] == 2  # the mother, and one newborn (the same MA_THE_TAM in every episode)
    assert kinds["Organization"] == 3 and kinds["Practitioner"] == 4
    assert len(_search(services, "Organization", identifier=f"{cs.FACILITY}|01001")) == 1


def test_a_second_importer_meeting_the_same_new_patient_writes_it_once(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--jobs: another worker commits the same new patient, facilities and staff between our lookup and write."""
    first, second = _importer(services), _importer(services)
    looked_up = second.shared.prefetch
    lookups: list[int] = []

    def prefetch(caller: Caller, all_needs: Any) -> None:
        lookups.append(1)
        looked_up(caller, all_needs)  # nothing found yet: the chunk plans to create them
        if not _search(services, "Patient", identifier=f"{cs.CCCD}|001190123456"):
            first.import_source(CALLER, sample.submission(sample.episode_rows("FIRST")), "first.xml")

    monkeypatch.setattr(second.shared, "prefetch", prefetch)
    report = second.import_source(CALLER, sample.submission(sample.episode_rows("SECOND")), "second.xml")
    assert [e.status for e in report.episodes] == ["created"]
    assert not [p for e in report.episodes for p in e.problems if p.severity == "error"]
    assert len(lookups) == 1  # the chunk was not rolled back and redone
    (mother,) = _search(services, "Patient", identifier=f"{cs.CCCD}|001190123456")
    assert services.fhir.read(CALLER, "Patient", mother["id"]).version_id == 1  # written once, by the first
    for ma_lk in ("FIRST", "SECOND"):
        assert _encounter(services, ma_lk)["subject"] == {"reference": f"Patient/{mother['id']}"}
    kinds = _types(services)
    assert kinds["Patient"] == 2 and kinds["Organization"] == 3 and kinds["Practitioner"] == 4


def test_a_deleted_patient_met_again_is_brought_back(services: Services) -> None:
    _import(services, sample.submission(sample.episode_rows("FIRST")))
    (mother,) = _search(services, "Patient", identifier=f"{cs.CCCD}|001190123456")
    services.fhir.delete(CALLER, "Patient", mother["id"])
    report = _import(services, sample.submission(sample.episode_rows("SECOND")))
    assert [e.status for e in report.episodes] == ["created"]
    assert _encounter(services, "SECOND")["subject"] == {"reference": f"Patient/{mother['id']}"}
    back = services.fhir.read(CALLER, "Patient", mother["id"])  # not 410: a new, live version
    assert not back.deleted and back.version_id == 3


def test_importers_creating_the_same_patients_in_opposite_orders_do_not_deadlock(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--jobs: both workers hold one new Patient and want the other's (identity and id locks)."""
    if services.fhir.db.is_sqlite:
        pytest.skip("SQLite takes one writer at a time")
    bodies = [
        {"resourceType": "Patient", "id": f"dl-{n}", "identifier": [{"system": cs.CCCD, "value": n}],
         "name": [{"family": "Lê", "given": ["An"]}]}
        for n in ("001190000001", "001190000002")
    ]  # fmt: skip
    barrier = threading.Barrier(2)
    put = Upsert.put
    first = threading.local()

    def put_then_wait(self: Upsert, body: dict[str, Any], *, known: bool) -> str:
        out = put(self, body, known=known)
        if not getattr(first, "done", False):
            first.done = True
            with contextlib.suppress(threading.BrokenBarrierError):
                barrier.wait(timeout=5)  # each importer has written its first patient
        return out

    monkeypatch.setattr(Upsert, "put", put_then_wait)
    errors: list[BaseException] = []

    def run(order: list[dict[str, Any]]) -> None:
        try:
            _importer(services)._create_shared(CALLER, order)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(o,)) for o in (bodies, bodies[::-1])]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    for body in bodies:
        assert services.fhir.read(CALLER, "Patient", body["id"]).version_id == 1


def test_files_that_are_not_submissions_are_refused(services: Services) -> None:
    before = _counts(services)
    report = _import(services, b'<?xml version="1.0"?><Bundle/>', "bundle.xml")
    assert report.refused and "not a GIAMDINHHS submission" in report.problems[0].message
    assert _counts(services) == before


def _visits(count: int) -> bytes:
    """A facility's day: `count` outpatient visits of different patients (summary, drugs, exam fee)."""
    template = sample.episode_rows()
    episodes = []
    for n in range(count):
        x1 = {**template["XML1"][0], "MA_LK": f"V{n:05d}", "SO_CCCD": f"001190{n:06d}", "MA_BN": f"BN{n}",
              "MA_THE_BHYT": f"DN40101{n:08d}", "HO_TEN": f"Nguyễn Văn Khách {n}", "MA_LOAI_KCB": "01",
              "NGAY_RA": "202606010900", "MA_BENH_KT": "I10", "NGAY_TAI_KHAM": "", "NHOM_MAU": "", "CAN_NANG": "",
              "MA_NOI_DI": "", "MA_NOI_DEN": "", "GIAY_CHUYEN_TUYEN": "", "CHAN_DOAN_VAO": ""}  # fmt: skip
        drug = {**template["XML2"][0], "MA_LK": x1["MA_LK"], "NGAY_TH_YL": ""}
        exam = {"MA_LK": x1["MA_LK"], "STT": "1", "MA_DICH_VU": "02.1896", "TEN_DICH_VU": "Khám Nội",
                "MA_NHOM": "13", "SO_LUONG": "1", "DON_GIA_BV": "30500", "NGAY_YL": "202606010830"}  # fmt: skip
        tables = [("XML1", render.table_document("XML1", [x1])), ("XML2", render.table_document("XML2", [drug])),
                  ("XML3", render.table_document("XML3", [exam]))]  # fmt: skip
        episodes.append(render.hoso(tables))
    return render.submission("01001", episodes)


@pytest.mark.slow
def test_a_2000_episode_file(services: Services) -> None:
    data = _visits(2000)
    report = _import(services, data, "day.xml")
    assert len(report.episodes) == 2000 and report.count("created") == 2000, report.summary()
    kinds = _types(services)
    assert kinds["Encounter"] == 2000 and kinds["Patient"] == 2000 and kinds["Provenance"] == 2000
    assert kinds["MedicationRequest"] == 2000 and kinds["ChargeItem"] == 2000
    before = _counts(services)
    again = _import(services, data, "day.xml")
    assert again.count("unchanged") == 2000 and _counts(services) == before


def test_a_generated_population_imports_cleanly(services: Services, tmp_path: Path) -> None:
    from healthbook.synth import writer
    from healthbook.synth.generate import Config

    writer.write_xml130(Config(40, 9, years=3), tmp_path, 1)
    importer = _importer(services)
    reports = importer.import_files(CALLER, sorted(tmp_path.rglob("*.xml")))
    episodes = sum(len(r.episodes) for r in reports)
    assert episodes > 100 and all(e.status == "created" for r in reports for e in r.episodes)
    kinds = _types(services)
    # one Provenance per episode, and one more in each newborn's record
    assert kinds["Encounter"] == episodes and kinds["Provenance"] == episodes + kinds["RelatedPerson"]
    patients = {e["subject"]["reference"] for e in _search(services, "Encounter", _count="1000")}
    assert 0 < len(patients) <= 40 + kinds["Patient"]


def test_the_original_content_of_other_tables_is_kept(services: Services) -> None:
    _import(services, sample.submission(sample.episode_rows()))
    (doc,) = _search(services, "DocumentReference", type=f"{cs.TABLE}|XML15")
    content = base64.b64decode(doc["content"][0]["attachment"]["data"])
    assert b"<PHANLOAI_LAO_VITRI>1</PHANLOAI_LAO_VITRI>" in content
