"""The audit trail without a database: the hash chain, the AuditEvent rendering, the search parameters."""

from __future__ import annotations

import pytest

from healthbook.audit import chain
from healthbook.audit.models import audit_event
from healthbook.audit.query import parse as _parse
from healthbook.audit.resource import ACTIONS
from healthbook.audit.resource import audit_event as render
from healthbook.errors import BadRequest
from healthbook.fhir.search.values import date_range
from healthbook.fhir.validation import validate_resource


def _row(**changes: object) -> dict[str, object]:
    row: dict[str, object] = {name: None for name in chain.FIELDS}
    row.update(
        patient_key="p1",
        seq=1,
        event_id="6f1c2c4e-4a59-4c1e-9a7a-2f9e4b1d0c11",
        recorded=1_764_000_000_000_000,
        interaction="read",
        res_type="Observation",
        res_id="o1",
        outcome="0",
        agent_subject="worker-1",
        prev_hash=chain.GENESIS,
    )
    row.update(changes)
    row["hash"] = chain.digest(row)
    return row


def _linked(n: int) -> list[dict[str, object]]:
    rows, prev = [], chain.GENESIS
    for seq in range(1, n + 1):
        row = _row(seq=seq, prev_hash=prev, res_id=f"o{seq}")
        rows.append(row)
        prev = str(row["hash"])
    return rows


def test_a_link_covers_every_column_but_its_own_hash() -> None:
    row = _row()
    assert chain.verify("p1", [row], (1, str(row["hash"]))) is None
    for name in chain.FIELDS:
        if name in ("patient_key", "seq", "prev_hash"):
            continue
        changed = {**row, name: "other"}
        assert chain.verify("p1", [changed], (1, str(row["hash"]))) is not None, name
    assert {c.name for c in audit_event.columns} == {*chain.FIELDS, "hash"}


def test_verify_names_the_first_broken_link() -> None:
    rows = _linked(4)
    head = (4, str(rows[-1]["hash"]))
    assert chain.verify("p1", rows, head) is None
    found = chain.verify("p1", [rows[0], rows[2], rows[3]], head)
    assert found is not None and (found.seq, found.reason) == (2, "link 2 missing (next is 3)")
    found = chain.verify("p1", rows[:3], head)
    assert found is not None and "head says 4" in found.reason
    found = chain.verify("p1", rows, None)
    assert found is not None and found.reason == "no chain head"
    assert chain.verify("p1", [], None) is None
    swapped = [rows[1], rows[0], *rows[2:]]
    assert chain.verify("p1", swapped, head) is not None


def test_anchor_depends_on_every_head() -> None:
    heads = [("a", 3, "x" * 64), ("b", 1, "y" * 64)]
    assert chain.anchor(heads) == chain.anchor(list(heads))
    assert chain.anchor(heads) != chain.anchor([("a", 3, "x" * 64), ("b", 2, "y" * 64)])
    assert chain.anchor(heads) != chain.anchor(heads[:1])


@pytest.mark.parametrize("interaction", sorted(ACTIONS))
def test_every_recorded_interaction_renders_a_valid_audit_event(interaction: str) -> None:
    row = _row(
        interaction=interaction,
        agent_role="health-worker",
        agent_issuer="https://vneid.example",
        agent_user="Practitioner/doc-1",
        agent_facility="01001",
        agent_client="his-app",
        purpose="TREAT",
        query="Observation?code&date",
        request_id="abc",
        outcome="4",
    )
    event = render(row, server="https://healthbook.example/fhir")
    errors = [i for i in validate_resource(event) if i.severity in ("error", "fatal")]
    assert errors == []
    assert event["action"] == ACTIONS[interaction]
    assert event["entity"][0]["what"] == {"reference": "Patient/p1"}


def test_search_parameters_and_their_errors() -> None:
    q = _parse(
        [("patient", "Patient/a,b"), ("date", "ge2026-01-01"), ("date", "lt2026-02"), ("_count", "5000")],
        strict=True,
    )
    assert q.patients == ["a", "b"] and q.count == 1000
    assert q.since == date_range("2026-01-01")[0] and q.before == date_range("2026-02")[0]
    day = _parse([("date", "2026-03-04")], strict=True)
    low, high = date_range("2026-03-04")
    assert (day.since, day.before) == (low, high + 1)
    assert _parse([("patient", "a,b"), ("patient", "b")], strict=True).patients == ["b"]
    assert _parse([("nope", "1")], strict=False).ignored == {"nope"}
    for bad in (
        [("nope", "1")],
        [("date", "2026-13-01")],
        [("action", "X")],
        [("outcome", "1")],
        [("_count", "x")],
        [("_page", "!!")],
        [("patient", "")],
        [("patient", ",".join(str(n) for n in range(101)))],
        [("subtype", "drop-table")],
    ):
        with pytest.raises(BadRequest):
            _parse(bad, strict=True)
