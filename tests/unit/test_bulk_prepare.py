"""The database-free preparation of bulk-import lines, in this process and in worker processes."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from healthbook.fhir import jsonio
from healthbook.fhir.bulk.prepare import Line, Prepared, Preparer, prepare
from healthbook.fhir.compartment import patient_key
from healthbook.fhir.outcomes import Issue
from healthbook.fhir.search.extract import extract
from healthbook.identity.profiles import check_resource
from healthbook.synth.demo import demo_population


def population() -> list[dict[str, Any]]:
    """A small synthetic population with the facilities it uses (every resource type the demo makes)."""
    return list(demo_population(12, 5))


def lines(docs: list[dict[str, Any]]) -> list[Line]:
    return [Line("pop.ndjson", n, orjson.dumps(d)) for n, d in enumerate(docs, start=1)]


def test_prepared_rows_are_those_of_the_stored_version() -> None:
    # The stored version adds meta.versionId and meta.lastUpdated; no extracted parameter may read them,
    # or rows made ahead of the write would differ from the index hook's.
    for line in lines(population()):
        got = prepare(line, [check_resource])
        assert got.doc is not None and not got.issues, got.issues
        meta = {
            **(got.doc.get("meta") or {}),
            "versionId": "7",
            "lastUpdated": "2026-12-03T10:00:00.123+07:00",
        }
        stored = {**got.doc, "meta": meta}
        owner = {
            "patient_key": patient_key(stored),
            "res_type": stored["resourceType"],
            "res_id": stored["id"],
        }
        assert got.key == owner["patient_key"]
        want = {ptype: [{**owner, **row} for row in rows] for ptype, rows in extract(stored).items()}
        assert got.rows == want, line.number


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b'{"resourceType": "Patient", ', "Malformed JSON"),
        (b'["a"]', "not a JSON object"),
        (b'{"id": "x"}', "no resourceType"),
        (b'{"resourceType": "NotAType"}', "NotAType"),
        (b'{"resourceType": "Patient", "id": "bad id!"}', "id"),
        (b'{"resourceType": "Patient", "id": 7}', "id must be a string"),
        (b'{"resourceType": "Patient", "birthDate": "yesterday"}', "birthDate"),
        (b"[" * 300 + b"]" * 300, "JSON"),
    ],
)
def test_a_bad_line_is_prepared_as_its_issues(data: bytes, why: str) -> None:
    got = prepare(Line("f.ndjson", 4, data), [])
    assert got.doc is None and got.rows is None
    assert got.issues and all(i.severity == "error" for i in got.issues)
    assert why in " ".join(f"{i.diagnostics} {i.expression}" for i in got.issues)


def test_a_line_without_id_gets_one_from_its_content() -> None:
    data = b'{"resourceType": "Patient", "gender": "male"}'
    one, two = prepare(Line("a", 1, data), []), prepare(Line("b", 9, data), [])
    assert one.doc is not None and two.doc is not None
    assert one.doc["id"] == two.doc["id"]  # re-running the file finds the same resource


def test_workers_prepare_chunks_in_order_and_like_this_process() -> None:
    docs = population()
    chunks = [lines(docs)[i : i + 150] for i in range(0, len(docs), 150)]
    chunks.append([Line("bad.ndjson", 1, b"{"), *lines(docs[:3])])
    here = Preparer([check_resource], 0)
    expected = [here.submit(c).result() for c in chunks]
    assert here.workers == 0
    pool = Preparer([check_resource], 2)
    try:
        futures = [pool.submit(c) for c in chunks]
        assert pool._pool is not None  # started with the second chunk: the load proved big
        got = [f.result() for f in futures]
    finally:
        pool.close()
    assert got == expected
    # Decimals keep their text through the workers (1.50 stays 1.50): compare the JSON, not floats.
    assert [[jsonio.dumps(p.doc) for p in c] for c in got] == [
        [jsonio.dumps(p.doc) for p in c] for c in expected
    ]
    assert [p.number for p in got[-1]] == [1, 1, 2, 3]
    assert got[-1][0].doc is None and "Malformed JSON" in got[-1][0].issues[0].diagnostics


def test_a_single_chunk_starts_no_worker() -> None:
    pool = Preparer([], 2)
    try:
        result = pool.submit(lines(population()[:5])).result()
        assert pool._pool is None
        assert all(isinstance(p, Prepared) and p.doc is not None for p in result)
    finally:
        pool.close()


def test_checks_that_cannot_travel_keep_the_work_in_this_process() -> None:
    seen: list[str] = []

    def local_check(doc: dict[str, Any]) -> list[Issue]:  # a closure: not picklable
        seen.append(doc["resourceType"])
        return []

    pool = Preparer([local_check], 2)
    assert pool.workers == 0
    for _ in range(2):
        pool.submit(lines(population()[:2])).result()
    pool.close()
    assert len(seen) == 4


def test_one_pool_per_process_at_a_time() -> None:
    first, second = Preparer([], 2), Preparer([], 2)
    try:
        for _ in range(2):
            first.submit(lines(population()[:3])).result()
        for _ in range(2):
            second.submit(lines(population()[:3])).result()
        assert first._pool is not None and second._pool is None and second.workers == 0
    finally:
        first.close()
        second.close()
    third = Preparer([], 2)  # the slot is free again
    try:
        for _ in range(2):
            third.submit(lines(population()[:3])).result()
        assert third._pool is not None
    finally:
        third.close()
