"""Query shapes of the search benchmark, parameter values drawn from the data, and the HTTP client loop."""

from __future__ import annotations

import datetime as dt
import http.client
import math
import random
import re
import statistics
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import orjson

LOINC = "http://loinc.org"
TIMEOUT = 60.0  # seconds; a slower answer counts as a failure (status 0)
MAX_INCLUDED = 1000  # healthbook.fhir.search.includes.MAX_INCLUDED: more included resources answer 400
_DIGITS = re.compile(r"\d+$")


@dataclass(slots=True)
class Pools:
    """Values seen in the data, to draw query parameters from (lists keep their frequency)."""

    obs_codes: list[str] = field(default_factory=list)  # LOINC code of every Observation
    obs_days: list[str] = field(default_factory=list)  # effective day of every Observation
    patients: list[str] = field(default_factory=list)
    families: list[str] = field(default_factory=list)  # family name (without Synthea's digits) per Patient
    obs_per_patient: Counter[str] = field(default_factory=Counter)


def collect(docs: Iterable[dict[str, Any]]) -> Pools:
    """Scan resources once for the parameter pools."""
    pools = Pools()
    for doc in docs:
        rtype = doc.get("resourceType")
        if rtype == "Patient":
            pools.patients.append(doc["id"])
            for name in doc.get("name", [])[:1]:
                family = _DIGITS.sub("", name.get("family", ""))
                if family:
                    pools.families.append(family)
        elif rtype == "Observation":
            for coding in doc.get("code", {}).get("coding", []):
                if coding.get("system") == LOINC and coding.get("code"):
                    pools.obs_codes.append(coding["code"])
                    break
            when = doc.get("effectiveDateTime")
            if isinstance(when, str) and len(when) >= 10:
                pools.obs_days.append(when[:10])
            ref = doc.get("subject", {}).get("reference", "")
            if ref.startswith("Patient/"):
                pools.obs_per_patient[ref[8:]] += 1
    return pools


@dataclass(frozen=True, slots=True)
class Shape:
    """One query shape: its name, its target class and how to draw one request path."""

    name: str
    example: str
    kind: str  # "simple" (p50 < 10 ms, p99 < 50 ms) or "complex" (p99 < 150 ms)
    draw: Callable[[random.Random, Pools], str]


def _code(rng: random.Random, p: Pools) -> str:
    return quote(f"{LOINC}|{rng.choice(p.obs_codes)}", safe="")


def _date(rng: random.Random, p: Pools) -> str:
    day = dt.date.fromisoformat(rng.choice(p.obs_days))
    return f"Observation?date=ge{day.isoformat()}&date=lt{(day + dt.timedelta(days=7)).isoformat()}"


def _revinclude_patient(rng: random.Random, p: Pools) -> str:
    while True:
        pid = rng.choice(p.patients)
        if p.obs_per_patient[pid] < MAX_INCLUDED:
            return pid


SHAPES: list[Shape] = [
    Shape(
        "token",
        "Observation?code=http://loinc.org|X",
        "simple",
        lambda r, p: "Observation?code=" + _code(r, p),
    ),
    Shape(
        "string", "Patient?name=FAMILY", "simple", lambda r, p: "Patient?name=" + quote(r.choice(p.families))
    ),
    Shape("date range", "Observation?date=geD&date=ltD+7d", "simple", _date),
    Shape(
        "reference",
        "Observation?subject=Patient/ID",
        "simple",
        lambda r, p: f"Observation?subject=Patient/{r.choice(p.patients)}",
    ),
    Shape(
        "chained",
        "Observation?subject:Patient.name=FAMILY",
        "complex",
        lambda r, p: f"Observation?subject:Patient.name={quote(r.choice(p.families))}",
    ),
    Shape(
        "_has",
        "Patient?_has:Observation:subject:code=X",
        "complex",
        lambda r, p: f"Patient?_has:Observation:subject:code={_code(r, p)}",
    ),
    Shape(
        "_include",
        "Observation?code=X&_include=Observation:subject",
        "complex",
        lambda r, p: f"Observation?code={_code(r, p)}&_include=Observation:subject",
    ),
    Shape(
        "_revinclude",
        "Patient?_id=ID&_revinclude=Observation:subject",
        "complex",
        lambda r, p: f"Patient?_id={_revinclude_patient(r, p)}&_revinclude=Observation:subject",
    ),
    Shape(
        "_sort",
        "Observation?code=X&_sort=-date",
        "simple",
        lambda r, p: f"Observation?code={_code(r, p)}&_sort=-date",
    ),
    Shape(
        "_total=accurate",
        "Observation?code=X&_total=accurate",
        "simple",
        lambda r, p: f"Observation?code={_code(r, p)}&_total=accurate",
    ),
]


def draw(shape: Shape, pools: Pools, count: int, seed: int) -> list[str]:
    """count request paths of one shape (same seed, same paths)."""
    rng = random.Random(f"{seed}:{shape.name}")
    return ["/fhir/" + shape.draw(rng, pools) for _ in range(count)]


@dataclass(slots=True)
class Sample:
    """One timed request."""

    path: str
    ms: float
    status: int
    entries: int
    total: int | None


class Client:
    """One keep-alive HTTP/1.1 connection to the server."""

    def __init__(self, port: int):
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)

    def get(self, path: str) -> Sample:
        """GET path; the time covers sending the request and reading the whole body."""
        start = time.perf_counter()
        try:
            self.conn.request("GET", path, headers={"Accept": "application/fhir+json"})
            resp = self.conn.getresponse()
            body = resp.read()
        except TimeoutError:
            self.conn.close()  # counted as a failed request (status 0) on a fresh connection
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=TIMEOUT)
            return Sample(path, (time.perf_counter() - start) * 1000, 0, 0, None)
        except (http.client.HTTPException, OSError):
            self.conn.close()
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=TIMEOUT)
            raise
        ms = (time.perf_counter() - start) * 1000
        entries, total = 0, None
        if resp.status == 200:
            doc = orjson.loads(body)
            entries = len(doc.get("entry", []))
            total = doc.get("total")
        return Sample(path, ms, resp.status, entries, total)

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(q / 100 * len(ordered))))
    return ordered[rank - 1]


@dataclass(slots=True)
class ShapeResult:
    """Latencies of one shape at one size."""

    name: str
    samples: list[Sample]
    db_ms_per_request: float = 0.0
    top_statements: list[tuple[float, int, str]] = field(default_factory=list)  # (mean ms, calls, query)
    matches: list[int] = field(default_factory=list)  # _summary=count of some of the requests (untimed)

    @property
    def ok(self) -> list[float]:
        """Latencies of the 200 answers."""
        return [s.ms for s in self.samples if s.status == 200]

    @property
    def errors(self) -> int:
        """Answers other than 200."""
        return sum(1 for s in self.samples if s.status != 200)

    def p(self, q: float) -> float:
        """Percentile of the successful latencies (NaN if none)."""
        ok = self.ok
        return percentile(ok, q) if ok else float("nan")

    def median_total(self) -> float:
        """Median number of matches: of the untimed `_summary=count` requests, else of Bundle.total."""
        totals = self.matches or [s.total for s in self.samples if s.total is not None]
        return statistics.median(totals) if totals else float("nan")

    def median_entries(self) -> float:
        """Median number of entries (matches and includes) per page."""
        return statistics.median([s.entries for s in self.samples]) if self.samples else float("nan")

    def median_sample(self) -> Sample:
        """The successful request whose latency is the median one."""
        ok = sorted((s for s in self.samples if s.status == 200), key=lambda s: s.ms)
        return ok[len(ok) // 2] if ok else self.samples[0]

    def as_dict(self) -> dict[str, Any]:
        """For the JSON record of a run."""
        return {
            "name": self.name,
            "p50": self.p(50),
            "p99": self.p(99),
            "errors": self.errors,
            "median_total": self.median_total(),
            "matches": self.matches,
            "median_entries": self.median_entries(),
            "db_ms_per_request": self.db_ms_per_request,
            "top_statements": self.top_statements,
            "samples": [[s.path, round(s.ms, 3), s.status, s.entries, s.total] for s in self.samples],
        }
