"""Field checks driven by the QĐ 4750 field table: types, sizes, dates, codes, and the accepted variants."""

from __future__ import annotations

import csv
import importlib.util
import json
import unicodedata
from pathlib import Path
from typing import Any

import pytest

from healthbook.imports.xml130 import fields, icd
from healthbook.imports.xml130.episode import Episode, assemble
from healthbook.imports.xml130.issues import Problem
from healthbook.imports.xml130.source import Limits, Submission
from healthbook.testing import xml130 as sample

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
ROOT = Path(__file__).resolve().parents[2]


def _assemble(rows: sample.Rows) -> tuple[Episode | None, list[Problem]]:
    sub = Submission(sample.submission(rows), Limits(10**8, 10**7), "t.xml")
    header = sub.check()
    (hoso,) = list(sub.episodes())
    episode, _, problems = assemble(hoso, header.macskcb)
    return episode, problems


def _problem(table: str, row: int = 0, **values: Any) -> list[Problem]:
    _, problems = _assemble(sample.variant(sample.episode_rows(), table, row, **values))
    return [p for p in problems if p.field in values or p.field is None]


@pytest.mark.skipif(not SHARED.is_dir(), reason="the shared QĐ 4750 / 4469 files are not present")
def test_the_vendored_field_table_is_the_shared_csv() -> None:
    spec = importlib.util.spec_from_file_location("vendor_xml130", ROOT / "scripts" / "vendor_xml130.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.fields(SHARED / "xml130-qd4750-fields.csv") == json.loads(
        (fields.DATA / "fields.json").read_text(encoding="utf-8")
    )
    with (SHARED / "xml130-qd4750-fields.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert sum(len(t.fields) for t in fields.tables().values()) == len(rows) == 481


@pytest.mark.skipif(not SHARED.is_dir(), reason="the shared QĐ 4469 file is not present")
def test_icd_names_come_from_qd_4469() -> None:
    with (SHARED / "icd10-vn-qd4469.csv").open(encoding="utf-8") as handle:
        row = next(r for r in csv.DictReader(handle) if r["code"] == "J18.9")
    found = icd.lookup("j189")
    assert found is not None and found.name == unicodedata.normalize("NFC", row["name_vi"])
    assert icd.lookup("Z34.0") is not None and icd.lookup("Z34.0").not_principal  # type: ignore[union-attr]
    assert icd.lookup("N76.0").sex == "F"  # type: ignore[union-attr]
    assert icd.lookup("X99.99") is None


def test_the_4750_corrections_are_applied() -> None:
    x1 = fields.spec("XML1").fields
    assert (x1["SO_CCCD"].kind, x1["SO_CCCD"].max_len, x1["SO_CCCD"].numeric_130) == ("string", 15, True)
    assert x1["MA_DOITUONG_KCB"].max_len == 4 and x1["MA_LOAI_KCB"].kind == "string"
    assert fields.spec("XML2").fields["MA_KHOA"].max_len == 50
    assert fields.spec("XML3").fields["MA_KHOA"].max_len == 50
    assert fields.spec("XML8").fields["MA_TTDV"].max_len == 255  # string(255) of QĐ 3176-era tools
    assert fields.spec("XML14").fields["NGAY_HEN_KL"].kind == "date_or_datetime"
    assert x1["NGAY_TAI_KHAM"].kind == "date_list" and x1["NGAY_SINH"].kind == "birth"
    assert x1["NHOM_MAU"].max_len == 5 and fields.spec("XML2").fields["NGAY_TH_YL"].kind == "datetime"
    assert set(fields.tables()) == {"CHECKIN", *(f"XML{n}" for n in range(1, 16))}


def test_the_sample_episode_has_no_problem() -> None:
    episode, problems = _assemble(sample.episode_rows())
    assert episode is not None and problems == []


@pytest.mark.parametrize(
    ("table", "field", "value", "text"),
    [
        ("XML1", "NGAY_VAO", "202302301200", "not a possible date"),
        ("XML1", "NGAY_VAO", "202306012500", "not a possible time"),
        ("XML1", "NGAY_VAO", "20230601", "12 digits"),
        ("XML1", "GT_THE_TU", "20230231", "not a possible date"),
        ("XML1", "NGAY_TAI_KHAM", "20260611;20261311", "not a possible date"),
        ("XML1", "NGAY_SINH", "199013020000", "not a possible date"),
        ("XML2", "NGAY_YL", "2026060110", "12 digits"),
        ("XML14", "NGAY_HEN_KL", "2026061108", "12 digits"),
        ("XML9", "NGAYSINH_NND", "19900230", "not a possible date"),
    ],
)
def test_impossible_dates_are_errors(table: str, field: str, value: str, text: str) -> None:
    problems = _problem(table, **{field: value})
    assert problems and problems[0].is_error and text in problems[0].message
    assert (problems[0].table, problems[0].field, problems[0].value) == (table, field, value)


def test_dates_that_contradict_each_other_are_errors() -> None:
    (p,) = _problem("XML1", NGAY_RA="202605311000")
    assert p.is_error and "before NGAY_VAO" in p.message
    (p,) = _problem("XML1", NGAY_SINH="202607010000")
    assert p.is_error and "after NGAY_VAO" in p.message


@pytest.mark.parametrize(
    ("table", "field", "value", "code"),
    [
        ("XML1", "HO_TEN", "A" * 256, "too-long"),
        ("XML1", "MA_BENH_CHINH", "J18.9000", "value"),
        ("XML1", "MA_KHOA", "K" * 51, "too-long"),
        ("XML1", "MA_CSKCB", "010011", "too-long"),
        ("XML2", "SO_LUONG", "1,5", "value"),
        ("XML2", "SO_LUONG", "mười", "value"),
        ("XML2", "DON_GIA", "1234567890123456", "too-long"),
        ("XML1", "SO_NGAY_DTRI", "4a", "value"),
        ("XML1", "GIOI_TINH", "4", "code-invalid"),
        ("XML1", "KET_QUA_DTRI", "9", "code-invalid"),
        ("XML1", "MA_LOAI_RV", "0", "code-invalid"),
        ("XML1", "MA_LOAI_KCB", "17", "code-invalid"),
        ("XML13", "MA_LYDO_CT", "4", "code-invalid"),
        ("XML1", "MA_BENH_CHINH", "XYZ", "value"),
        ("XML1", "MA_BENH_KT", "I10;??", "value"),
        ("XML1", "HO_TEN", "A\x07B", "structure"),  # not even well-formed XML 1.0: the table is unreadable
    ],
)
def test_wrong_types_sizes_and_codes_are_errors(table: str, field: str, value: str, code: str) -> None:
    problems = _problem(table, **{field: value})
    assert problems, f"{field}={value!r} passed"
    assert problems[0].is_error and problems[0].code == code
    if code != "structure":
        assert (problems[0].table, problems[0].row, problems[0].field) == (table, 1, field)


@pytest.mark.parametrize(
    ("table", "field", "value"),
    [
        ("XML1", "MA_BENH_CHINH", "J18.9;I10"),
        ("XML1", "MA_BENH_CHINH", "J18.9 I10"),
        ("XML1", "MA_CSKCB", "01001,0"),
        ("XML1", "SO_CCCD", "001190123456;0"),
        ("XML3", "MA_DICH_VU", "22.0120;1370"),
        ("XML13", "MA_NOI_DEN", "01904;01"),
    ],
)
def test_several_codes_in_a_single_code_field_are_errors(table: str, field: str, value: str) -> None:
    (p,) = _problem(table, **{field: value})
    assert p.is_error and "several codes" in p.message and p.value == value


def test_a_missing_required_field_is_an_error() -> None:
    (p,) = _problem("XML1", HO_TEN=None)
    assert p.is_error and p.code == "required" and p.field == "HO_TEN"
    problems = [q for q in _assemble(sample.variant(sample.episode_rows(), "XML2", 0, MA_THUOC=None,
                                                    TEN_THUOC=None))[1] if q.is_error]  # fmt: skip
    assert problems[0].field == "MA_THUOC or TEN_THUOC"


def test_unknown_fields_are_warnings_once_per_table() -> None:
    rows = sample.episode_rows()
    for r in rows["XML2"]:
        r["MA_RIENG_CUA_BENH_VIEN"] = "x"
    episode, problems = _assemble(rows)
    assert episode is not None
    (p,) = [p for p in problems if p.field == "MA_RIENG_CUA_BENH_VIEN"]
    assert p.severity == "warning" and p.table == "XML2"


@pytest.mark.parametrize("value", ["202606110800", "20260611"])
def test_both_forms_of_ngay_hen_kl_are_accepted(value: str) -> None:
    episode, problems = _assemble(sample.variant(sample.episode_rows(), "XML14", NGAY_HEN_KL=value))
    assert episode is not None and problems == []
    assert episode.table("XML14")[0].get("NGAY_HEN_KL") == value


@pytest.mark.parametrize("value", ["199000000000", "199003000000", "199001020930"])
def test_birth_dates_with_unknown_parts_are_accepted(value: str) -> None:
    episode, problems = _assemble(sample.variant(sample.episode_rows(), "XML1", NGAY_SINH=value))
    assert episode is not None and problems == []


def test_qd130_variants_are_read_with_warnings() -> None:
    rows = sample.variant(sample.episode_rows(), "XML1", MA_LOAI_KCB="3", MA_DANTOC="1", KET_QUA_DTRI="8",
                          MA_DOITUONG_KCB="1.10", NGAY_SINH="19900102", MA_TTDV="x" * 200)  # fmt: skip
    episode, problems = _assemble(rows)
    assert episode is not None
    s = episode.summary
    assert (s.get("MA_LOAI_KCB"), s.get("MA_DANTOC"), s.get("KET_QUA_DTRI")) == ("03", "01", "8")
    assert sorted(p.field or "" for p in problems) == ["MA_DANTOC", "MA_LOAI_KCB", "NGAY_SINH"]
    assert all(not p.is_error for p in problems)


def test_a_field_given_twice_or_with_elements_is_an_error() -> None:
    rows = sample.episode_rows()
    rows["XML2"][0]["TEN_THUOC"] = "<b>x</b>"  # escaped text is fine
    episode, problems = _assemble(rows)
    assert episode is not None and problems == []
