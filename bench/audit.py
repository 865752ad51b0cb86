"""What the audit trail costs a read: the same reads by an in-process caller (not recorded) and by an
authenticated health worker (one hash-chained event each), on SQLite and PostgreSQL, as a ratio.

Run `.venv/bin/python bench/audit.py` (about a minute); it prints one line per database.
"""

from __future__ import annotations

import statistics
import tempfile
import time

from healthbook.app import build_services
from healthbook.auth.scopes import parse_scopes
from healthbook.auth.subject import Caller, Role
from healthbook.config import Settings
from healthbook.db.migrate import upgrade
from healthbook.fhir.audit import NoAudit
from healthbook.fhir.router import Services
from healthbook.testing.postgres import TempPostgres

READS = 2000
SYSTEM = Caller.system("bench-audit")
WORKER = Caller(
    subject="bench-worker",
    issuer="https://idp.example",
    role=Role.HEALTH_WORKER,
    facility="01001",
    scopes=parse_scopes("user/*.cruds"),
)


def load(services: Services) -> list[str]:
    """20 patients with an Encounter at the worker's facility and 10 Observations each."""
    fhir = services.fhir
    fhir.update(SYSTEM, "Organization", "org", {"resourceType": "Organization", "id": "org",
        "identifier": [{"system": "http://fhir.ehealth.gov.vn/core/sid/provider-code", "value": "01001"}]})  # fmt: skip
    ids = []
    for p in range(20):
        pid = f"p{p}"
        fhir.update(SYSTEM, "Patient", pid, {"resourceType": "Patient", "id": pid})
        fhir.update(SYSTEM, "Encounter", f"e{p}", {"resourceType": "Encounter", "id": f"e{p}", "status": "finished",
            "class": {"code": "AMB"}, "subject": {"reference": f"Patient/{pid}"},
            "serviceProvider": {"reference": "Organization/org"}})  # fmt: skip
        for o in range(10):
            oid = f"o{p}-{o}"
            fhir.update(SYSTEM, "Observation", oid, {"resourceType": "Observation", "id": oid, "status": "final",
                "code": {"text": "bp"}, "subject": {"reference": f"Patient/{pid}"},
                "encounter": {"reference": f"Encounter/e{p}"}})  # fmt: skip
            ids.append(oid)
    return ids


def per_read_us(services: Services, caller: Caller, ids: list[str]) -> float:
    """Median of 5 rounds of READS reads, in microseconds per read."""
    rounds = []
    for _ in range(5):
        start = time.perf_counter()
        for n in range(READS // 5):
            services.fhir.read(caller, "Observation", ids[n % len(ids)])
        rounds.append((time.perf_counter() - start) / (READS // 5) * 1e6)
    return statistics.median(rounds)


def run(name: str, url: str) -> None:
    settings = Settings(database_url=url, auth="required")
    services = build_services(settings)
    upgrade(services.fhir.db)
    ids = load(services)
    per_read_us(services, SYSTEM, ids)  # warm up
    plain = per_read_us(services, SYSTEM, ids)
    trail = services.fhir.audit
    services.fhir.audit = NoAudit()
    restricted = per_read_us(services, WORKER, ids)
    services.fhir.audit = trail
    audited = per_read_us(services, WORKER, ids)
    assert services.audit is not None
    report = services.audit.verify()
    services.fhir.db.dispose()
    print(  # noqa: T201 - the benchmark's output
        f"{name}: read by an in-process tool {plain:.0f} µs; by a health worker {restricted:.0f} µs "
        f"without the trail (access control ×{restricted / plain:.2f}), {audited:.0f} µs with it "
        f"(trail ×{audited / restricted:.2f}); {report.events:,} events in {report.books} chains "
        f"verified, {len(report.breaks)} breaks"
    )


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        run("SQLite", f"sqlite:///{tmp}/audit.db")
    pg = TempPostgres()
    pg.start()
    try:
        run("PostgreSQL", pg.create_database("bench_audit"))
    finally:
        pg.stop()


if __name__ == "__main__":
    main()
