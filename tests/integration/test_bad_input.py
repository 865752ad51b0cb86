"""Hostile and malformed requests: each gets the right 4xx with an OperationOutcome, never a 5xx,
and leaves every store table exactly as it was."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from healthbook.fhir.router import Services

from .conftest import outcome, table_counts

FHIR_JSON = {"Content-Type": "application/fhir+json"}
PATIENT = b'{"resourceType":"Patient","id":"p1","gender":"male"}'


pytestmark = pytest.mark.xdist_group("bad_input")  # one worker: the module database is set up once


@pytest.fixture(scope="module")
def existing(module_client: TestClient) -> dict[str, Any]:
    """Patient/p1 at version 1 in the module database."""
    resp = module_client.put("/fhir/Patient/p1", content=PATIENT, headers=FHIR_JSON)
    assert resp.status_code in (200, 201), resp.text
    out: dict[str, Any] = resp.json()
    return out


@pytest.fixture
def hostile(
    existing: dict[str, Any], module_client: TestClient, module_services: Services
) -> Iterator[TestClient]:
    """The module client, asserting at the end that no table changed and Patient/p1 is as it was."""
    before = table_counts(module_services.fhir.db)
    yield module_client
    assert table_counts(module_services.fhir.db) == before, "the database changed"
    assert module_client.get("/fhir/Patient/p1").json() == existing


def send(
    client: TestClient, method: str, path: str, body: bytes | None, headers: dict[str, str] | None = None
) -> Any:
    return client.request(method, path, content=body, headers={**FHIR_JSON, **(headers or {})})


# ---- bodies that are not a FHIR resource ------------------------------------------------------

NOT_A_RESOURCE = {
    "malformed": (b'{"resourceType": "Patient", "gender": ', {"invalid", "structure"}),
    "trailing-garbage": (b'{"resourceType":"Patient"} x', {"invalid", "structure"}),
    "empty": (b"", {"invalid", "structure", "required"}),
    "whitespace": (b"  \n ", {"invalid", "structure", "required"}),
    "array": (b'[{"resourceType":"Patient"}]', {"invalid", "structure"}),
    "string": (b'"Patient"', {"invalid", "structure"}),
    "number": (b"42", {"invalid", "structure"}),
    "null": (b"null", {"invalid", "structure"}),
    "nan": (b'{"resourceType":"Observation","status":"final","code":{},"valueQuantity":{"value":NaN}}', None),
    "infinity": (
        b'{"resourceType":"Observation","status":"final","code":{},"valueQuantity":{"value":Infinity}}',
        None,
    ),
    "nan-lossy-path": (b'{"resourceType":"Observation","valueQuantity":{"value":NaN},"x":1.50}', None),
    "invalid-utf8": (
        b'{"resourceType":"Patient","name":[{"family":"\xff\xfeNg"}]}',
        {"invalid", "structure"},
    ),
    "invalid-utf8-lossy-path": (b'{"resourceType":"Patient","name":[{"family":"\xc3\x28"}],"x":1.50}', None),
    "utf16": ('{"resourceType":"Patient"}'.encode("utf-16"), None),
    "deep-arrays": (b"[" * 100_000, {"invalid", "structure"}),
    "deep-arrays-closed": (b"[" * 100_000 + b"]" * 100_000, {"invalid", "structure"}),
    "deep-objects": (b'{"a":' * 50_000 + b"1" + b"}" * 50_000, {"invalid", "structure"}),
    "deep-in-resource": (
        b'{"resourceType":"Patient","extension":' + b"[" * 5000 + b"]" * 5000 + b"}",
        {"invalid", "structure"},
    ),
    "deep-lossy-path": (b'{"x":1.50,"y":' + b"[" * 100_000 + b"]" * 100_000 + b"}", {"invalid", "structure"}),
}


@pytest.mark.parametrize("case", list(NOT_A_RESOURCE))
def test_create_rejects_body(hostile: TestClient, case: str) -> None:
    body, codes = NOT_A_RESOURCE[case]
    outcome(send(hostile, "POST", "/fhir/Patient", body), {400, 422}, codes)


@pytest.mark.parametrize("case", list(NOT_A_RESOURCE))
def test_update_rejects_body(hostile: TestClient, case: str) -> None:
    body, codes = NOT_A_RESOURCE[case]
    outcome(send(hostile, "PUT", "/fhir/Patient/p1", body), {400, 422}, codes)


@pytest.mark.parametrize("case", ["malformed", "empty", "string", "null", "deep-arrays", "invalid-utf8"])
def test_patch_rejects_body(hostile: TestClient, case: str) -> None:
    body, _ = NOT_A_RESOURCE[case]
    resp = send(hostile, "PATCH", "/fhir/Patient/p1", body, {"Content-Type": "application/json-patch+json"})
    outcome(resp, {400, 422})


ILLEGAL_CHARS = [
    pytest.param(b'{"resourceType":"Patient","name":[{"family":"a\\u0000b"}]}', id="nul-char"),
    pytest.param(b'{"resourceType":"Patient","name":[{"family":"a\\u0007b"}]}', id="control-char"),
    pytest.param(b'{"resourceType":"Patient","name":[{"family":"\\ud800"}]}', id="lone-surrogate"),
    pytest.param(
        b'{"resourceType":"Patient","name":[{"family":"\\ud800"}],'
        b'"extension":[{"url":"http://example.org/x","valueDecimal":1.50}]}',
        id="lone-surrogate-lossy",
    ),
]


@pytest.mark.parametrize("body", ILLEGAL_CHARS)
def test_illegal_characters_are_rejected(hostile: TestClient, body: bytes) -> None:
    """FHIR strings hold no characters below U+0020 except tab, CR, LF (datatypes.html#string)."""
    outcome(send(hostile, "POST", "/fhir/Patient", body), {400, 422})


@pytest.mark.parametrize(
    ("body", "expression"),
    [
        pytest.param(
            b'{"resourceType":"Patient","multipleBirthInteger":99999999999999999999999}',
            "Patient.multipleBirthInteger",
            id="huge-integer",
        ),
        pytest.param(
            b'{"resourceType":"Patient","multipleBirthInteger":2147483648}',
            "Patient.multipleBirthInteger",
            id="int32-overflow",
        ),
        pytest.param(
            b'{"resourceType":"Patient","multipleBirthInteger":1.5}',
            "Patient.multipleBirthInteger",
            id="decimal-for-integer",
        ),
        pytest.param(b'{"resourceType":"Patient","gender":"robot"}', "Patient.gender", id="bad-code"),
        pytest.param(
            b'{"resourceType":"Patient","birthDate":"1990-02-30"}', "Patient.birthDate", id="bad-date"
        ),
        pytest.param(
            b'{"resourceType":"Patient","gender":["male"]}', "Patient.gender", id="array-for-scalar"
        ),
        pytest.param(b'{"resourceType":"Patient","gender":""}', "Patient.gender", id="empty-string"),
        pytest.param(
            b'{"resourceType":"Patient","name":{"family":"x"}}', "Patient.name", id="object-for-array"
        ),
        pytest.param(b'{"resourceType":"Patient","name":[]}', "Patient.name", id="empty-array"),
        pytest.param(
            b'{"resourceType":"Patient","active":"true"}', "Patient.active", id="string-for-boolean"
        ),
        pytest.param(b'{"resourceType":"Patient","colour":"blue"}', "Patient.colour", id="unknown-element"),
    ],
)
def test_invalid_content_is_422_with_its_path(hostile: TestClient, body: bytes, expression: str) -> None:
    """Content that parses but breaks the R4 definitions: 422 naming the element (http.html#update)."""
    for resp in (
        send(hostile, "POST", "/fhir/Patient", body),
        send(hostile, "PUT", "/fhir/Patient/p1", body.replace(b'"Patient",', b'"Patient","id":"p1",', 1)),
    ):
        issues = outcome(resp, 422)["issue"]
        assert issues[0]["severity"] in ("error", "fatal")
        assert issues[0]["code"] in ("invalid", "structure", "required", "value", "invariant", "code-invalid")
        paths = [e for i in issues for e in i.get("expression", [])]
        assert any(e == expression or e.startswith(expression + ".") for e in paths), paths


@pytest.mark.parametrize(
    "number",
    [
        b"1e999999",
        b"-1e999999",
        b"1e-999999",
        b"1" + b"0" * 5000,
        b"0." + b"0" * 5000 + b"1",
        b"123456789012345678901234.5",
    ],
)
def test_huge_numbers_are_kept_or_rejected_never_a_crash(client: TestClient, number: bytes) -> None:
    body = (
        b'{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueQuantity":{"value":'
        + number
        + b"}}"
    )
    resp = send(client, "POST", "/fhir/Observation", body)
    if resp.status_code == 201:
        text = client.get(f"/fhir/Observation/{resp.json()['id']}").content
        assert b'"value":' + number + b"}" in text
        search = client.get("/fhir/Observation", params={"value-quantity": "gt0"})
        assert search.status_code == 200
    else:
        outcome(resp, {400, 422})


# ---- headers ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "ctype", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data", ""]
)
def test_wrong_content_type_is_415(hostile: TestClient, ctype: str) -> None:
    body = b'{"resourceType":"Patient"}'
    outcome(
        hostile.post("/fhir/Patient", content=body, headers={"Content-Type": ctype}), 415, "not-supported"
    )
    outcome(
        hostile.put("/fhir/Patient/p1", content=PATIENT, headers={"Content-Type": ctype}),
        415,
        "not-supported",
    )


def test_body_over_the_limit_is_413(small_client: TestClient) -> None:
    small_client.put("/fhir/Patient/p1", content=PATIENT, headers=FHIR_JSON)
    before = small_client.get("/fhir/_history", params={"_count": "0"}).json()["total"]
    big = b'{"resourceType":"Patient","name":[{"family":"' + b"x" * 2000 + b'"}]}'
    outcome(small_client.post("/fhir/Patient", content=big, headers=FHIR_JSON), 413, "too-costly")
    outcome(small_client.put("/fhir/Patient/p1", content=big, headers=FHIR_JSON), 413, "too-costly")

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit holds while streaming
        yield big[:600]
        yield big[600:]

    outcome(small_client.post("/fhir/Patient", content=chunks(), headers=FHIR_JSON), 413, "too-costly")
    outcome(
        small_client.post("/fhir/Patient", content=b"{}", headers={**FHIR_JSON, "Content-Length": "999999"}),
        {400, 413},
    )
    assert small_client.get("/fhir/_history", params={"_count": "0"}).json()["total"] == before
    assert (
        small_client.post(
            "/fhir/Patient", content=b'{"resourceType":"Patient"}', headers=FHIR_JSON
        ).status_code
        == 201
    )


def test_duplicated_prefer_headers_are_not_an_error(client: TestClient) -> None:
    headers = [
        ("Prefer", "return=OperationOutcome"),
        ("Prefer", "return=minimal"),
        ("Prefer", "handling=bogus"),
    ]
    resp = client.request(
        "POST", "/fhir/Patient", content=b'{"resourceType":"Patient"}', headers=[*headers, *FHIR_JSON.items()]
    )
    assert resp.status_code == 201
    assert resp.json()["resourceType"] == "OperationOutcome"


def test_garbage_prefer_is_ignored(client: TestClient) -> None:
    resp = send(
        client, "POST", "/fhir/Patient", b'{"resourceType":"Patient"}', {"Prefer": ";;=,=return==,\x7f"}
    )
    assert resp.status_code == 201
    assert resp.json()["resourceType"] == "Patient"


# ---- URL: types, ids, versions --------------------------------------------------------------


def test_resource_type_differs_from_url(hostile: TestClient) -> None:
    body = b'{"resourceType":"Observation","status":"final","code":{}}'
    for resp in (
        send(hostile, "POST", "/fhir/Patient", body),
        send(hostile, "PUT", "/fhir/Patient/p1", body),
    ):
        issue = outcome(resp, 400, "invalid")["issue"][0]
        assert "resourceType" in issue.get("expression", ["resourceType"])[0]
    outcome(send(hostile, "POST", "/fhir/Patient", b'{"gender":"male"}'), 400, {"invalid", "required"})


def test_body_id_differs_from_url(hostile: TestClient) -> None:
    body = b'{"resourceType":"Patient","id":"p2","gender":"female"}'
    issue = outcome(send(hostile, "PUT", "/fhir/Patient/p1", body), 400, "invalid")["issue"][0]
    assert issue["expression"] == ["Patient.id"]
    issue = outcome(send(hostile, "PUT", "/fhir/Patient/p1", b'{"resourceType":"Patient"}'), 400)["issue"][0]
    assert issue["expression"] == ["Patient.id"]
    outcome(send(hostile, "PUT", "/fhir/Patient/p1", b'{"resourceType":"Patient","id":1}'), 400)


@pytest.mark.parametrize(
    "rtype", ["Foo", "patient", "PATIENT", "Resource", "DomainResource", "Element", "Quantity"]
)
def test_unknown_resource_type_is_404(hostile: TestClient, rtype: str) -> None:
    body = b'{"resourceType":"' + rtype.encode() + b'","id":"p1"}'
    outcome(hostile.get(f"/fhir/{rtype}/p1"), 404, "not-found")
    outcome(hostile.get(f"/fhir/{rtype}"), 404, "not-found")
    outcome(hostile.get(f"/fhir/{rtype}/_history"), 404, "not-found")
    outcome(hostile.get(f"/fhir/{rtype}/p1/_history/1"), 404, "not-found")
    outcome(send(hostile, "POST", f"/fhir/{rtype}", body), 404, "not-found")
    outcome(send(hostile, "PUT", f"/fhir/{rtype}/p1", body), 404, "not-found")
    outcome(hostile.delete(f"/fhir/{rtype}/p1"), 404, "not-found")


BAD_IDS = ["a" * 65, "a_b", "a b", "a%b", "ä", "a:b", "a,b", "a'b", "1';DROP TABLE resource;--", "a%09b", "*"]


@pytest.mark.parametrize("rid", BAD_IDS)
def test_invalid_id(hostile: TestClient, rid: str) -> None:
    body = ('{"resourceType":"Patient","id":"' + rid + '"}').encode()
    outcome(hostile.get(f"/fhir/Patient/{rid}"), {400, 404})
    outcome(hostile.get(f"/fhir/Patient/{rid}/_history"), {400, 404})
    outcome(hostile.get(f"/fhir/Patient/{rid}/_history/1"), {400, 404})
    outcome(send(hostile, "PUT", f"/fhir/Patient/{rid}", body), 400, "invalid")
    outcome(hostile.delete(f"/fhir/Patient/{rid}"), {400, 404})
    resp = send(
        hostile, "PATCH", f"/fhir/Patient/{rid}", b"[]", {"Content-Type": "application/json-patch+json"}
    )
    outcome(resp, {400, 404})


def test_longest_valid_id_is_accepted(client: TestClient) -> None:
    rid = "A-b.9" + "x" * 59
    body = ('{"resourceType":"Patient","id":"' + rid + '"}').encode()
    assert send(client, "PUT", f"/fhir/Patient/{rid}", body).status_code == 201
    assert client.get(f"/fhir/Patient/{rid}").json()["id"] == rid


@pytest.mark.parametrize("vid", ["2", "0", "-1", "abc", "1.0", "99999999999999999999999", " 1", "1;DROP"])
def test_unknown_or_malformed_version(hostile: TestClient, vid: str) -> None:
    outcome(hostile.get(f"/fhir/Patient/p1/_history/{vid}"), {400, 404})


def test_wrong_method_is_405(hostile: TestClient) -> None:
    outcome(send(hostile, "POST", "/fhir/Patient/p1", PATIENT), 405, "not-supported")
    outcome(send(hostile, "PUT", "/fhir/Patient/p1/_history/1", PATIENT), 405, "not-supported")
    outcome(hostile.delete("/fhir/Patient/p1/_history/1"), 405, "not-supported")
    outcome(hostile.delete("/fhir/metadata"), {404, 405})


# ---- search and history parameters ------------------------------------------------------------

SQLISH = [
    "' OR '1'='1",
    "1; DROP TABLE resource; --",
    "x' UNION SELECT content FROM resource --",
    "%",
    "_",
    "\\",
    "\x00",
]


@pytest.mark.parametrize("value", SQLISH)
def test_sql_looking_search_values_match_nothing(hostile: TestClient, value: str) -> None:
    for name in (
        "_id",
        "name",
        "family",
        "identifier",
        "gender",
        "birthdate",
        "general-practitioner",
        "telecom",
    ):
        resp = hostile.get("/fhir/Patient", params={name: value})
        if resp.status_code == 200:
            bundle = resp.json()
            assert bundle["resourceType"] == "Bundle"
            assert [e for e in bundle.get("entry", []) if e["search"]["mode"] == "match"] == [], (name, value)
        else:
            outcome(resp, 400)
    for name in ("_sort", "_count", "_summary", "_total", "_elements"):
        resp = hostile.get("/fhir/Patient", params={name: value})
        assert resp.status_code in (200, 400), (name, value, resp.status_code)


def test_sql_looking_if_none_exist_does_not_corrupt(client: TestClient) -> None:
    existing = send(client, "PUT", "/fhir/Patient/p1", PATIENT).json()
    resp = send(
        client, "POST", "/fhir/Patient", b'{"resourceType":"Patient"}', {"If-None-Exist": "_id=p1' OR '1'='1"}
    )
    assert resp.status_code == 201
    assert resp.json()["id"] != "p1"
    assert client.get("/fhir/Patient/p1").json() == existing


@pytest.mark.parametrize(
    ("params", "expression"),
    [
        ({"_count": "-5"}, "_count"),
        ({"_count": "many"}, "_count"),
        ({"_count": "1e3"}, "_count"),
        ({"_since": "not-a-date"}, "_since"),
        ({"_since": "2020-13-45"}, "_since"),
    ],
)
def test_bad_history_parameters(hostile: TestClient, params: dict[str, str], expression: str) -> None:
    issue = outcome(hostile.get("/fhir/_history", params=params), 400, "invalid")["issue"][0]
    assert issue["expression"] == [expression]


@pytest.mark.parametrize(
    "params",
    [
        {"_count": "-5"},
        {"_count": "x"},
        {"_summary": "everything"},
        {"_total": "lots"},
        {"birthdate": "yesterday"},
        {"gender:nonsense": "male"},
        {"name:missing": "perhaps"},
        {"_page_offset": "-1"},
    ],
)
def test_bad_search_parameters(hostile: TestClient, params: dict[str, str]) -> None:
    outcome(hostile.get("/fhir/Patient", params=params), 400)


def test_unknown_search_parameter_strict_is_400(hostile: TestClient) -> None:
    issue = outcome(
        hostile.get("/fhir/Patient", params={"no-such-param": "1"}, headers={"Prefer": "handling=strict"}),
        400,
    )["issue"][0]
    assert issue["expression"] == ["no-such-param"]
    lenient = hostile.get("/fhir/Patient", params={"no-such-param": "1"})
    assert lenient.status_code == 200


def test_huge_query_value(hostile: TestClient) -> None:
    resp = hostile.get("/fhir/Patient", params={"name": "x" * 20_000})
    assert resp.status_code in (200, 400, 414), resp.status_code
    resp = hostile.get("/fhir/Patient", params={"_id": ",".join(["a"] * 5000)})
    assert resp.status_code in (200, 400), resp.status_code
