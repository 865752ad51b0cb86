"""The search planner's own constructs, checked on an in-memory SQLite against plain Python.

* prefix_match: `value starts with prefix`, code point by code point, wildcards literal;
* several date clauses of one parameter (one envelope probe plus exact checks) against the definition:
  a resource matches when, for every clause, one of its values meets one of the clause's values;
* the envelope bounds every matching row: a resource is never lost by the index probe.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Column, Integer, MetaData, Table, Text, create_engine, insert, select
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Engine

from healthbook.db.dialect import _successor, prefix_match, range_reaches
from healthbook.fhir.search import sql
from healthbook.fhir.search.extract import _envelope
from healthbook.fhir.search.query import parse
from healthbook.fhir.store.schema import idx_date

DAY = 86_400_000_000
JAN1 = 1_577_836_800_000_000  # 2020-01-01T00:00:00Z in microseconds
MAX_US = 2**62


@pytest.fixture
def engine() -> Iterator[Engine]:
    eng = create_engine("sqlite://")
    yield eng
    eng.dispose()


def test_successor() -> None:
    assert _successor("abc") == "abd"
    assert _successor("a\U0010ffff") == "b"
    assert _successor("\U0010ffff") is None
    assert _successor("a\ud7ff") == "a\ue000"  # no surrogates


WORDS = ["", "a", "ab", "abc", "abd", "ab%", "ab_c", "a\\b", "nguyen", "nguyễn", "z", "z\U0010ffff", "{", "é"]


@pytest.mark.parametrize("prefix", ["a", "ab", "ab%", "ab_", "a\\", "nguy", "z\U0010ffff", "é", ""])
def test_prefix_match_is_starts_with(engine: Engine, prefix: str) -> None:
    t = Table("words", MetaData(), Column("w", Text))
    t.create(engine)
    with engine.begin() as conn:
        conn.execute(insert(t), [{"w": w} for w in WORDS])
        got = sorted(r[0] for r in conn.execute(select(t.c.w).where(prefix_match(t.c.w, prefix))))
    assert got == sorted(w for w in WORDS if w.startswith(prefix))


def test_prefix_match_on_postgresql_is_an_escaped_like() -> None:
    t = Table("words", MetaData(), Column("w", Text))
    stmt = select(t.c.w).where(prefix_match(t.c.w, "a%_\\"))
    compiled = stmt.compile(dialect=postgresql.dialect())  # type: ignore[no-untyped-call]
    assert " LIKE " in str(compiled) and "ESCAPE '\\'" in str(compiled)
    assert "a\\%\\_\\\\%" in compiled.params.values()


def test_range_reaches_overlap_and_containment(engine: Engine) -> None:
    t = Table("r", MetaData(), Column("lo", Integer), Column("hi", Integer))
    t.create(engine)
    rows = [(lo, hi) for lo in range(8) for hi in range(lo, 8)]
    with engine.begin() as conn:
        conn.execute(insert(t), [{"lo": lo, "hi": hi} for lo, hi in rows])
        for up in range(8):
            for down in range(8):
                cond = range_reaches(t.c.lo, t.c.hi, up, down)
                got = sorted((r[0], r[1]) for r in conn.execute(select(t.c.lo, t.c.hi).where(cond)))
                assert got == sorted((lo, hi) for lo, hi in rows if hi >= up and lo <= down), (up, down)
    pg = str(range_reaches(t.c.lo, t.c.hi, 5, 2).compile(dialect=postgresql.dialect()))  # type: ignore[no-untyped-call]
    assert "@>" in pg
    pg = str(range_reaches(t.c.lo, t.c.hi, 2, 5).compile(dialect=postgresql.dialect()))  # type: ignore[no-untyped-call]
    assert "&&" in pg


# ---- several date clauses of one parameter -----------------------------------------------------------------

PREFIXES = ["", "eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap"]


def _meets(prefix: str, lo: int, hi: int, slo: int, shi: int) -> bool:
    """search.html's prefixes on a stored range [lo, hi] and a search range [slo, shi]."""
    eq = lo >= slo and hi <= shi
    return {
        "eq": eq,
        "ne": not eq,
        "gt": hi > shi,
        "lt": lo < slo,
        "ge": hi > shi or eq,
        "le": lo < slo or eq,
        "sa": lo > shi,
        "eb": hi < slo,
        "ap": lo <= shi and hi >= slo,
    }[prefix]


def _value(rng: random.Random) -> str:
    day = rng.randrange(1, 21)
    form = rng.randrange(4)
    if form == 0:
        return "2020-01"
    if form == 1:
        return f"2020-01-{day:02d}T{rng.randrange(24):02d}:00:00Z"
    return f"2020-01-{day:02d}"


def _rows(rng: random.Random) -> list[dict[str, Any]]:
    rows = []
    for _ in range(rng.randrange(1, 4)):
        low = JAN1 + rng.randrange(22) * DAY + rng.choice([0, 0, DAY // 3])
        kind = rng.random()
        if kind < 0.1:
            high = MAX_US  # a Period without end
        elif kind < 0.15:
            high = low - DAY  # a Period whose end is before its start
        else:
            high = low + rng.choice([1_000_000, DAY, 3 * DAY]) - 1
        rows.append({"param": "target-date", "low": low, "high": high})
    _envelope(rows)
    return rows


def test_date_clauses_match_the_definition(engine: Engine) -> None:
    rng = random.Random(20261202)
    idx_date.create(engine)
    resources: dict[str, list[dict[str, Any]]] = {f"g{i}": _rows(rng) for i in range(120)}
    with engine.begin() as conn:
        conn.execute(
            insert(idx_date),
            [
                {"patient_key": "p", "res_type": "Goal", "res_id": rid, **row}
                for rid, rows in resources.items()
                for row in rows
            ],
        )
    checked = 0
    for _ in range(200):
        pairs = []
        for _ in range(rng.randrange(1, 4)):
            values = ",".join(rng.choice(PREFIXES) + _value(rng) for _ in range(rng.randrange(1, 3)))
            pairs.append(("target-date", values))
        query = parse(("Goal",), pairs, strict=True)
        (cond,) = sql._plan(query.types, query.clauses)
        assert isinstance(cond, sql.RowCond)
        with engine.connect() as conn:
            got = {r[2] for r in conn.execute(cond.rows())}
        clauses = [[sql._date_search_range(c, v) for v in c.values] for c in query.clauses]
        expected = {
            rid
            for rid, rows in resources.items()
            if all(
                any(_meets(p, row["low"], row["high"], slo, shi) for row in rows for p, slo, shi in clause)
                for clause in clauses
            )
        }
        assert got == expected, pairs
        checked += bool(expected)
    assert checked > 50  # the draws are not all empty


def test_envelope_bounds_every_matching_row() -> None:
    rng = random.Random(7)
    for _ in range(2000):
        rows = _rows(rng)
        prefix = rng.choice(PREFIXES[1:])
        query = parse(("Goal",), [("target-date", prefix + _value(rng))], strict=True)
        (p, slo, shi) = sql._date_search_range(query.clauses[0], query.clauses[0].values[0])
        low_bound, high_bound = sql._date_bounds(p, slo, shi)
        for row in rows:
            if _meets(p, row["low"], row["high"], slo, shi):
                assert low_bound is None or row["env_high"] >= low_bound
                assert high_bound is None or row["env_low"] <= high_bound
