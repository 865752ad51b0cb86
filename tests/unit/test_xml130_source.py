"""Reading GIAMDINHHS files: the wrapper, base64, inner documents, hostile inputs and the 130/4750/3176 variants."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from healthbook.imports.xml130 import render
from healthbook.imports.xml130.episode import assemble
from healthbook.imports.xml130.issues import Problem
from healthbook.imports.xml130.source import Hoso, Limits, Submission, SubmissionRefused
from healthbook.testing import xml130 as sample

LIMITS = Limits(max_file_bytes=4 * 1024 * 1024, max_table_bytes=256 * 1024)


def _read(data: bytes, limits: Limits = LIMITS) -> tuple[list[Hoso], list[Problem]]:
    sub = Submission(data, limits, "test.xml")
    header = sub.check()
    return list(sub.episodes()), header.problems


def _episode_problems(data: bytes) -> list[Problem]:
    hosos, _ = _read(data)
    assert len(hosos) == 1
    _, _, problems = assemble(hosos[0], "01001")
    return problems


def _errors(problems: list[Problem]) -> list[Problem]:
    return [p for p in problems if p.is_error]


def _hoso(*files: tuple[str, bytes]) -> bytes:
    parts = b"".join(
        b"<FILEHOSO><LOAIHOSO>" + t.encode() + b"</LOAIHOSO><NOIDUNGFILE>" + c + b"</NOIDUNGFILE></FILEHOSO>"
        for t, c in files
    )
    return b"<HOSO>" + parts + b"</HOSO>"


def _b64(doc: bytes) -> bytes:
    return base64.b64encode(doc)


def _xml1(**values: str | None) -> bytes:
    rows = sample.variant(sample.episode_rows(), "XML1", **values)
    return render.table_document("XML1", rows["XML1"])


def test_a_valid_file_reads_into_its_episodes() -> None:
    data = sample.submission(sample.episode_rows("A"), sample.episode_rows("B"))
    hosos, problems = _read(data)
    assert problems == []
    assert [h.position for h in hosos] == [1, 2]
    episode, ma_lk, problems = assemble(hosos[1], "01001")
    assert episode is not None and ma_lk == "B" and _errors(problems) == []
    assert sorted(episode.rows) == ["XML13", "XML14", "XML2", "XML3", "XML4", "XML5", "XML7", "XML8", "XML9"]
    assert [d.table for d in episode.kept] == ["XML15"]


def test_a_file_that_is_not_giamdinhhs_is_refused() -> None:
    with pytest.raises(SubmissionRefused, match="root element is <Bundle>"):
        Submission(b'<?xml version="1.0"?><Bundle><x/></Bundle>', LIMITS, "x").check()
    with pytest.raises(SubmissionRefused, match="not an XML document"):
        Submission(b'{"resourceType": "Bundle"}', LIMITS, "x").check()
    with pytest.raises(SubmissionRefused, match="empty"):
        Submission(b"", LIMITS, "x")


def test_a_malformed_file_is_refused_with_its_line() -> None:
    data = sample.submission(sample.episode_rows()).replace(b"</DANHSACHHOSO>", b"\n\n</DANHSACH>")
    with pytest.raises(SubmissionRefused) as exc:
        Submission(data, LIMITS, "x").check()
    assert "not well-formed" in exc.value.message and exc.value.line is not None and exc.value.line >= 3


def test_a_file_over_the_limit_is_refused_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "big.xml"
    path.write_bytes(b"<GIAMDINHHS>" + b" " * 2000 + b"</GIAMDINHHS>")
    with pytest.raises(SubmissionRefused) as exc:
        Submission(path, Limits(1000, 1000), "big.xml")
    assert exc.value.status == 413 and "over the limit of 1000 bytes" in exc.value.message


def test_missing_macskcb_is_refused() -> None:
    data = sample.submission(sample.episode_rows()).replace(b"<MACSKCB>01001</MACSKCB>", b"<MACSKCB/>")
    with pytest.raises(SubmissionRefused, match="MACSKCB"):
        Submission(data, LIMITS, "x").check()


def test_soluonghoso_that_disagrees_is_a_warning() -> None:
    data = sample.submission(sample.episode_rows()).replace(b"<SOLUONGHOSO>1<", b"<SOLUONGHOSO>3<")
    _, problems = _read(data)
    assert [p.field for p in problems] == ["SOLUONGHOSO"] and not problems[0].is_error


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE GIAMDINHHS [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol9 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
]>
<GIAMDINHHS><THONGTINDONVI><MACSKCB>&lol9;</MACSKCB></THONGTINDONVI></GIAMDINHHS>"""
EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE GIAMDINHHS [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<GIAMDINHHS><THONGTINDONVI><MACSKCB>&xxe;</MACSKCB></THONGTINDONVI></GIAMDINHHS>"""
EXTERNAL_DTD = b"""<?xml version="1.0"?>
<!DOCTYPE GIAMDINHHS SYSTEM "http://127.0.0.1:9/evil.dtd">
<GIAMDINHHS><THONGTINDONVI><MACSKCB>01001</MACSKCB></THONGTINDONVI></GIAMDINHHS>"""


@pytest.mark.parametrize(
    "data", [BILLION_LAUGHS, EXTERNAL_ENTITY, EXTERNAL_DTD], ids=["laughs", "xxe", "dtd"]
)
def test_documents_with_a_doctype_are_refused(data: bytes) -> None:
    with pytest.raises(SubmissionRefused) as exc:
        Submission(data, LIMITS, "x").check()
    assert exc.value.code == "security" and "DOCTYPE" in exc.value.message


def test_a_hostile_inner_document_rejects_only_its_episode() -> None:
    inner = b'<?xml version="1.0"?><!DOCTYPE TONG_HOP [<!ENTITY x SYSTEM "file:///etc/passwd">]><TONG_HOP><MA_LK>&x;</MA_LK></TONG_HOP>'
    good = render.hoso(sample.tables(sample.episode_rows("GOOD")))
    data = render.submission("01001", [_hoso(("XML1", _b64(inner))), good])
    hosos, _ = _read(data)
    bad_problems = assemble(hosos[0], "01001")[2]
    assert any(p.code == "security" and "DOCTYPE" in p.message for p in bad_problems)
    assert assemble(hosos[1], "01001")[0] is not None


def test_huge_base64_is_refused_cleanly() -> None:
    huge = b"A" * (11 * 1024 * 1024)  # a text node over libxml2's 10 MB limit
    data = render.submission("01001", [_hoso(("XML1", huge))])
    with pytest.raises(SubmissionRefused) as exc:
        Submission(data, Limits(64 * 1024 * 1024, 1024), "x").check()
    assert exc.value.code == "too-costly"


def test_a_table_over_a_small_table_limit_is_refused() -> None:
    data = render.submission("01001", [_hoso(("XML1", _b64(_xml1())))])
    hosos, _ = _read(data, Limits(LIMITS.max_file_bytes, 100))
    problems = assemble(hosos[0], "01001")[2]
    assert next(p.code for p in problems if p.is_error) == "too-costly"


def test_invalid_base64_is_an_error_of_the_table() -> None:
    problems = _episode_problems(
        render.submission("01001", [_hoso(("XML1", b"PFRPTkdfSE9QPjwv*/VE9OR19IT1A+"))])
    )
    err = _errors(problems)[0]
    assert err.table == "XML1" and "not valid base64" in err.message and "'*'" in err.message


def test_base64_with_line_breaks_and_missing_padding_is_read() -> None:
    text = _b64(_xml1()).rstrip(b"=")
    wrapped = b"\n".join(text[i : i + 76] for i in range(0, len(text), 76))
    problems = _episode_problems(render.submission("01001", [_hoso(("XML1", wrapped))]))
    assert _errors(problems) == []


def test_malformed_inner_xml_is_an_error_with_its_line() -> None:
    broken = b'<?xml version="1.0"?>\n<TONG_HOP>\n<MA_LK>X</MA_LK>\n<HO_TEN>A</TONG_HOP>'
    problems = _episode_problems(render.submission("01001", [_hoso(("XML1", _b64(broken)))]))
    err = _errors(problems)[0]
    assert err.table == "XML1" and "not well-formed" in err.message and "line 4" in err.message


def test_an_unknown_table_type_is_an_error() -> None:
    files = [*sample.tables(sample.episode_rows()), ("XML99", b"<X/>")]
    problems = _episode_problems(render.submission("01001", [render.hoso(files)]))
    err = _errors(problems)[0]
    assert err.field == "LOAIHOSO" and err.value == "XML99" and "unknown table" in err.message


def test_loaihoso_variants_are_understood() -> None:
    files = [("xml01", render.table_document("XML1", sample.episode_rows()["XML1"]))]
    hosos, _ = _read(render.submission("01001", [render.hoso(files)]))
    assert hosos[0].files[0].table == "XML1"


def test_an_episode_without_xml1_is_an_error_naming_its_ma_lk() -> None:
    rows = sample.episode_rows("NO-SUMMARY")
    files = [t for t in sample.tables(rows) if t[0] != "XML1"]
    problems = _episode_problems(render.submission("01001", [render.hoso(files)]))
    err = _errors(problems)[0]
    assert err.table == "XML1" and "MA_LK 'NO-SUMMARY' has no XML1" in err.message


def test_rows_whose_ma_lk_has_no_xml1_are_errors() -> None:
    rows = sample.variant(sample.episode_rows("A"), "XML2", 0, MA_LK="OTHER")
    problems = _episode_problems(sample.submission(rows))
    err = _errors(problems)[0]
    assert (err.table, err.row, err.field, err.value) == ("XML2", 1, "MA_LK", "OTHER")
    assert "has no XML1" in err.message


def test_embedded_xml_instead_of_base64_is_read_with_a_warning() -> None:
    doc = _xml1().split(b"?>", 1)[1]
    data = render.submission("01001", [b"<HOSO><FILEHOSO><LOAIHOSO>XML1</LOAIHOSO><NOIDUNGFILE>" + doc +
                                       b"</NOIDUNGFILE></FILEHOSO></HOSO>"])  # fmt: skip
    problems = _episode_problems(data)
    assert _errors(problems) == [] and any("instead of base64" in p.message for p in problems)


def test_a_namespaced_wrapper_and_cdata_values_are_accepted() -> None:
    doc = _xml1().replace(b"<HO_TEN>Nguy\xe1\xbb\x85n Th\xe1\xbb\x8b Hoa</HO_TEN>",
                          b"<HO_TEN><![CDATA[Nguy\xe1\xbb\x85n Th\xe1\xbb\x8b Hoa]]></HO_TEN>")  # fmt: skip
    data = render.submission("01001", [_hoso(("XML1", _b64(doc)))])
    data = data.replace(b"<GIAMDINHHS ", b'<GIAMDINHHS xmlns="urn:bhxh:giamdinh" ')
    hosos, _ = _read(data)
    episode, _, _problems = assemble(hosos[0], "01001")
    assert episode is not None and episode.summary.get("HO_TEN") == "Nguyễn Thị Hoa"


def test_lines_point_at_the_hoso_in_the_file() -> None:
    data = sample.submission(sample.episode_rows("A"), sample.episode_rows("B"))
    hosos, _ = _read(data)
    assert hosos[0].line == 2 and hosos[1].line == 3
