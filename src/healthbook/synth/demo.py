"""Loading the demo population into the server through the bulk importer, and people worth showing."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from healthbook.auth.subject import Caller
from healthbook.fhir.bulk.ndjson_import import ImportStats, Line, import_lines
from healthbook.fhir.http import Prefer
from healthbook.fhir.search.service import SearchService
from healthbook.fhir.service import FhirService, history
from healthbook.synth import systems
from healthbook.synth.generate import demo_population

DEMO_CITIZENS = 2000


@dataclass(frozen=True)
class Showcase:
    """A citizen to try in the demo: why they are interesting, their CCCD, name and Patient id."""

    why: str
    cccd: str
    name: str
    patient_id: str


@dataclass
class DemoLoad:
    """What load_demo stored and whom to show."""

    stats: ImportStats
    errors: list[dict[str, Any]] = field(default_factory=list)
    showcase: list[Showcase] = field(default_factory=list)


_WHY = {
    "I10": "tăng huyết áp, tái khám định kỳ (hypertension follow-up)",
    "E11.9": "đái tháo đường, xét nghiệm HbA1c (diabetes, HbA1c)",
    "O80.0": "sinh con, khám thai (pregnancy and delivery)",
    "Immunization": "trẻ em, tiêm chủng mở rộng (child vaccinations)",
}


def load_demo(
    fhir: FhirService,
    citizens: int = DEMO_CITIZENS,
    seed: int = 1,
    on_progress: Callable[[ImportStats], None] | None = None,
    workers: int = 0,
) -> DemoLoad:
    """Stream demo_population into import_lines (validated, indexed, chunked commits)."""
    result = DemoLoad(ImportStats())
    found: dict[str, Showcase] = {}
    patient: dict[str, Any] = {}

    def lines() -> Iterator[Line]:
        nonlocal patient
        for n, res in enumerate(demo_population(citizens, seed), start=1):
            rtype = res["resourceType"]
            if rtype == "Patient":
                patient = res
            elif rtype in ("Condition", "Immunization") and patient:
                key = res["code"]["coding"][0]["code"] if rtype == "Condition" else rtype
                if key in _WHY and key not in found:
                    found[key] = _showcase(key, patient)
            yield Line("demo", n, orjson.dumps(res))

    result.stats = import_lines(
        fhir,
        Caller.system("demo"),
        lines(),
        errors=result.errors.append,
        on_progress=on_progress,
        workers=workers,
    )
    result.showcase = [found[k] for k in _WHY if k in found]
    return result


def _showcase(key: str, patient: dict[str, Any]) -> Showcase:
    cccd = next(i["value"] for i in patient["identifier"] if i["system"] == systems.CCCD)
    return Showcase(_WHY[key], cccd, patient["name"][0]["text"], patient["id"])


def stored_count(fhir: FhirService) -> int:
    """How many resource versions the database holds: zero means the demo must be built."""
    stored = history(
        fhir, Caller.system("demo"), res_type=None, res_id=None, since=None, until=None, offset=0, count=0
    )
    return stored.total


def find_showcase(fhir: FhirService, search: SearchService) -> list[Showcase]:
    """People worth showing in an existing demo database, found by search as a user would."""
    caller = Caller.system("demo")
    queries = {
        key: ("Immunization", [("_count", "1")])
        if key == "Immunization"
        else ("Condition", [("code", f"{systems.ICD10}|{key}"), ("_count", "1")])
        for key in _WHY
    }
    found: list[Showcase] = []
    for key, (rtype, pairs) in queries.items():
        bundle = orjson.loads(search.search_bundle(caller, rtype, pairs, base="", prefer=Prefer()))
        for entry in bundle.get("entry", []):
            ref = entry["resource"].get("subject" if rtype == "Condition" else "patient", {}).get("reference")
            if ref and ref.startswith("Patient/"):
                stored = fhir.read(caller, "Patient", ref.removeprefix("Patient/"))
                found.append(_showcase(key, orjson.loads(stored.content or "{}")))
    return found
