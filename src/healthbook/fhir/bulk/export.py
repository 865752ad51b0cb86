"""Bulk NDJSON export: one streaming pass per type, memory flat whatever the database size."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl

from sqlalchemy import ColumnElement, false, not_, or_, select, tuple_
from sqlalchemy.engine import Connection

from healthbook.auth.subject import Caller
from healthbook.errors import BadRequest, NotFound
from healthbook.fhir import jsonio
from healthbook.fhir.audit import book_accesses, personal
from healthbook.fhir.compartment import NO_PATIENT_PREFIX, compartment_params
from healthbook.fhir.search import sql
from healthbook.fhir.search.query import parse
from healthbook.fhir.service import FhirService, check_id
from healthbook.fhir.store.schema import INDEX_TABLES, resource
from healthbook.fhir.timeutil import parse_instant_us
from healthbook.fhir.validation import resource_types

LINES_PER_FILE = 100_000
FETCH = 2000


@dataclass(frozen=True, slots=True)
class ExportRequest:
    """What to export: level (system, patient, group), types, _since and _typeFilter queries."""

    level: str  # system | patient | group
    group_id: str | None
    types: tuple[str, ...]
    since_us: int | None
    type_filters: dict[str, tuple[str, ...]]


@dataclass(frozen=True, slots=True)
class OutputFile:
    """One NDJSON file of the export."""

    type: str
    path: Path
    count: int


def parse_request(
    level: str, group_id: str | None, types: str | None, since: str | None, type_filters: list[str]
) -> ExportRequest:
    """Check the kick-off parameters (Bulk Data Access IG v2)."""
    if group_id is not None:
        check_id(group_id)
    if types:
        wanted = tuple(dict.fromkeys(t.strip() for t in types.split(",") if t.strip()))
        unknown = [t for t in wanted if t not in resource_types()]
        if unknown:
            raise BadRequest(
                f"_type names unknown resource types: {', '.join(unknown)[:200]}", expression="_type"
            )
    elif level == "system":
        wanted = tuple(sorted(resource_types()))
    else:
        wanted = tuple(
            sorted(t for t in resource_types() if compartment_params("Patient", t) or t == "Patient")
        )
    since_us = None
    if since:
        try:
            since_us = parse_instant_us(since)
        except ValueError:
            raise BadRequest(f"_since '{since[:40]}' is not a valid instant", expression="_since") from None
    filters: dict[str, list[str]] = {}
    for item in type_filters:
        for one in item.split(","):
            rtype, sep, query = one.partition("?")
            if not sep or rtype not in resource_types():
                raise BadRequest(f"_typeFilter '{one[:80]}' is not Type?query", expression="_typeFilter")
            parse((rtype,), parse_qsl(query, keep_blank_values=True), strict=True)  # reject bad filters now
            filters.setdefault(rtype, []).append(query)
    return ExportRequest(level, group_id, wanted, since_us, {k: tuple(v) for k, v in filters.items()})


def _group_members(conn: Connection, fhir: FhirService, group_id: str) -> list[str]:
    group = fhir._current(conn, "Group", group_id)
    if group is None or group.deleted or group.content is None:
        raise NotFound(f"Group/{group_id} is not known")
    doc = jsonio.loads(group.content)
    members = []
    for member in doc.get("member", []) or []:
        ref = (member.get("entity") or {}).get("reference", "") if isinstance(member, dict) else ""
        if isinstance(ref, str) and ref.startswith("Patient/"):
            members.append(ref.split("/", 1)[1])
    return members


def group_members(fhir: FhirService, group_id: str) -> list[str]:
    """The member patient ids of a Group; NotFound if there is no such Group."""
    with fhir.db.read() as conn:
        return _group_members(conn, fhir, group_id)


def _scope(
    conn: Connection, fhir: FhirService, req: ExportRequest
) -> Callable[[str], list[ColumnElement[bool]]]:
    """Per resource type, the conditions that keep an export to its patients' compartments."""
    r = resource.c
    if req.level == "patient":
        return lambda rtype: [not_(r.patient_key.startswith(NO_PATIENT_PREFIX))]
    if req.level == "group":
        assert req.group_id is not None
        members = _group_members(conn, fhir, req.group_id)
        ref = INDEX_TABLES["reference"].c

        def in_group(rtype: str) -> list[ColumnElement[bool]]:
            # Filed under a member, or in a member's compartment while filed under another patient
            # (a resource in two compartments lives under the first patient it names).
            params = compartment_params("Patient", rtype)
            if not members:
                return [false()]
            if not params:
                return [r.patient_key.in_(members)]
            also = select(ref.patient_key, ref.res_type, ref.res_id).where(
                ref.res_type == rtype,
                ref.target_type == "Patient",
                ref.target_id.in_(members),
                ref.param.in_(params),
            )
            return [or_(r.patient_key.in_(members), tuple_(r.patient_key, r.res_type, r.res_id).in_(also))]

        return in_group
    return lambda rtype: []


def export_ndjson(
    fhir: FhirService,
    caller: Caller,
    req: ExportRequest,
    out_dir: Path,
    *,
    on_progress: Callable[[str, int], None] | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> list[OutputFile]:
    """Write Type.ndjson (split every LINES_PER_FILE lines) for each type; returns the files."""
    for rtype in req.types:
        fhir.policy.check(caller, "export", rtype)
    out_dir.mkdir(parents=True, exist_ok=True)
    files: list[OutputFile] = []
    r = resource.c
    with fhir.db.snapshot(unbounded=True) as conn:
        scope = _scope(conn, fhir, req)
        condition = fhir.policy.condition(conn, caller)
        own = sql.Own(resource.c.patient_key, resource.c.res_type, resource.c.res_id, resource, resource)
        allowed = [] if condition is None else [condition(own)]
        for rtype in req.types:
            conds: list[ColumnElement[bool]] = [
                r.res_type == rtype,
                r.deleted == false(),
                *scope(rtype),
                *allowed,
            ]
            if req.since_us is not None:
                conds.append(r.last_updated >= req.since_us)
            queries = req.type_filters.get(rtype)
            if queries:
                parsed = [parse((rtype,), parse_qsl(q, keep_blank_values=True), strict=True) for q in queries]
                conds.append(or_(*(sql.where_clause(resource, p) for p in parsed)))
            stmt = select(r.content, r.patient_key).where(*conds)
            result = conn.execution_options(stream_results=True, yield_per=FETCH).execute(stmt)
            part, count, handle = 0, 0, None
            path = out_dir / f"{rtype}.ndjson"
            books = _Books(fhir, caller, rtype)
            try:
                for content, key in result:
                    books.add(key)
                    if handle is None or count >= LINES_PER_FILE:
                        if handle is not None:
                            handle.close()
                            files.append(OutputFile(rtype, path, count))
                        part += 1
                        path = out_dir / (f"{rtype}.ndjson" if part == 1 else f"{rtype}.{part}.ndjson")
                        handle = path.open("w", encoding="utf-8")
                        count = 0
                    handle.write(content)
                    handle.write("\n")
                    count += 1
                    if count % 10_000 == 0:
                        if cancelled is not None and cancelled():
                            return files
                        if on_progress is not None:
                            on_progress(rtype, count)
            finally:
                result.close()
                if handle is not None:
                    handle.close()
                    files.append(OutputFile(rtype, path, count))
                books.flush()  # also when cancelled: what was written out was read
            if on_progress is not None:
                on_progress(rtype, count)
    return files


class _Books:
    """The health books an export has written out, reported to the audit trail in batches."""

    BATCH = 1000

    def __init__(self, fhir: FhirService, caller: Caller, rtype: str):
        self.fhir = fhir
        self.caller = caller
        self.rtype = rtype
        self.on = fhir.audit.wants(caller)
        self.seen: set[str] = set()
        self.waiting: list[str] = []

    def add(self, key: str) -> None:
        """Note one exported resource's book."""
        if self.on and key not in self.seen and personal(key):
            self.seen.add(key)
            self.waiting.append(key)
            if len(self.waiting) >= self.BATCH:
                self.flush()

    def flush(self) -> None:
        """Record the books noted since the last flush."""
        if self.waiting:
            self.fhir.audit.record(self.caller, book_accesses(self.waiting, "$export", self.rtype))
            self.waiting = []
