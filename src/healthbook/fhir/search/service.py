"""Search as a service: index maintenance on every write, and searchset bundles for the API."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

import orjson
from sqlalchemy import delete, insert
from sqlalchemy.engine import Connection

from healthbook.auth.subject import AccessPolicy, Caller
from healthbook.config import Settings
from healthbook.db.engine import Database
from healthbook.errors import BadRequest
from healthbook.fhir import bundles, jsonio
from healthbook.fhir.capability import SearchParamInfo
from healthbook.fhir.http import Prefer
from healthbook.fhir.outcomes import Issue, operation_outcome
from healthbook.fhir.search import sql
from healthbook.fhir.search.extract import extract
from healthbook.fhir.search.query import ParsedQuery, parse
from healthbook.fhir.search.registry import params_for
from healthbook.fhir.service import check_type
from healthbook.fhir.store.schema import INDEX_TABLES
from healthbook.fhir.store.sql_repository import StoredVersion
from healthbook.fhir.validation import resource_types

SUMMARY_MODES = ("true", "false", "text", "data", "count")


class SearchService:
    """Keeps the index tables in step with the resources and answers search interactions."""

    def __init__(self, db: Database, policy: AccessPolicy, settings: Settings):
        self.db = db
        self.policy = policy
        self.settings = settings

    # ---- indexing (runs inside the write transaction) -----------------------------------------

    def index_hook(
        self, conn: Connection, stored: StoredVersion, doc: dict[str, Any] | None, old_key: str | None
    ) -> None:
        """Replace the index rows of a resource: delete the old ones, insert the new ones."""
        if old_key is not None:
            for table in INDEX_TABLES.values():
                c = table.c
                conn.execute(
                    delete(table).where(
                        c.patient_key == old_key, c.res_type == stored.res_type, c.res_id == stored.res_id
                    )
                )
        if doc is None:
            return
        owner = {"patient_key": stored.patient_key, "res_type": stored.res_type, "res_id": stored.res_id}
        for ptype, rows in extract(doc).items():
            conn.execute(insert(INDEX_TABLES[ptype]), [{**owner, **row} for row in rows])

    # ---- conditional interactions -------------------------------------------------------------

    def match(self, conn: Connection, res_type: str, query_string: str) -> list[tuple[str, str, str]]:
        """Keys of current resources matching a conditional query; strict about unknown parameters."""
        pairs = parse_qsl(query_string, keep_blank_values=True)
        parsed = parse((res_type,), pairs, strict=True)
        if not parsed.clauses:
            raise BadRequest("The conditional criteria contain no usable search parameter")
        rows = conn.execute(sql.ids_query(parsed, limit=2)).all()
        return [(r[0], r[1], r[2]) for r in rows]

    # ---- search interaction -------------------------------------------------------------------

    def search_bundle(
        self, caller: Caller, res_type: str | None, pairs: list[tuple[str, str]], *, base: str, prefer: Prefer
    ) -> bytes:
        """Run a type- or system-level search and return the searchset Bundle."""
        types = self._types(res_type, pairs)
        for t in types:
            self.policy.check(caller, "search", t)
        parsed = parse(types, pairs, strict=prefer.handling == "strict")
        count = self._count(parsed)
        offset = self._int_control(parsed, "_page_offset", 0)
        summary = parsed.control("_summary")
        if summary is not None and summary not in SUMMARY_MODES:
            raise BadRequest(f"_summary must be one of {', '.join(SUMMARY_MODES)}", expression="_summary")
        total_mode = parsed.control("_total") or "accurate"
        if total_mode not in ("none", "estimate", "accurate"):
            raise BadRequest("_total must be none, estimate or accurate", expression="_total")
        if summary == "count":
            count = 0
        with self.db.snapshot() as conn:
            rows = conn.execute(sql.page_query(parsed, offset=offset, limit=count + 1)).all() if count else []
            total = None
            if total_mode != "none" or summary == "count":
                total = int(conn.execute(sql.count_query(parsed)).scalar_one())
        has_next = len(rows) > count
        rows = rows[:count]
        entries = [self._entry(base, r[1], r[2], r[3], parsed, summary) for r in rows]
        if parsed.ignored:
            text = "Ignored unknown or unsupported search parameters: " + ", ".join(sorted(set(parsed.ignored)))
            outcome = operation_outcome([Issue("warning", "not-supported", text)])
            entries.append({"resource": outcome, "search": {"mode": "outcome"}})
        path = f"/{res_type}" if res_type else ""
        links = self._links(base, path, pairs, parsed, offset, count, has_next)
        return bundles.bundle("searchset", entries, links, total=total)

    def _types(self, res_type: str | None, pairs: list[tuple[str, str]]) -> tuple[str, ...]:
        if res_type is not None:
            check_type(res_type)
            return (res_type,)
        requested = [t.strip() for name, v in pairs if name == "_type" for t in v.split(",") if t.strip()]
        if not requested:
            return tuple(sorted(resource_types()))
        for t in requested:
            if t not in resource_types():
                raise BadRequest(f"_type '{t[:64]}' is not a resource type", expression="_type")
        return tuple(dict.fromkeys(requested))

    def _int_control(self, parsed: ParsedQuery, name: str, default: int) -> int:
        raw = parsed.control(name)
        if raw is None:
            return default
        if not raw.isdigit() or len(raw) > 12:
            raise BadRequest(f"{name} must be a non-negative integer", expression=name)
        return int(raw)

    def _count(self, parsed: ParsedQuery) -> int:
        count = self._int_control(parsed, "_count", self.settings.default_page_size)
        return min(count, self.settings.max_page_size)

    def _entry(
        self, base: str, rtype: str, rid: str, content: str | None, parsed: ParsedQuery, summary: str | None
    ) -> dict[str, Any]:
        elements = parsed.control("_elements")
        resource: Any = orjson.Fragment(content or "{}")
        if elements or summary in ("text", "data"):
            resource = _subset(jsonio.loads(content or "{}"), elements, summary)
        return {"fullUrl": f"{base}/{rtype}/{rid}", "resource": resource, "search": {"mode": "match"}}

    def _links(
        self,
        base: str,
        path: str,
        pairs: list[tuple[str, str]],
        parsed: ParsedQuery,
        offset: int,
        count: int,
        has_next: bool,
    ) -> list[tuple[str, str]]:
        keep = [(k, v) for k, v in pairs if k not in ("_page_offset", "_count", "_format", "_pretty")]
        keep.append(("_count", str(count)))

        def url(off: int) -> str:
            return bundles.page_url(base, path, _group([*keep, ("_page_offset", str(off))]))

        links = [("self", url(offset)), ("first", url(0))]
        if offset > 0 and count:
            links.append(("previous", url(max(0, offset - count))))
        if has_next and count:
            links.append(("next", url(offset + count)))
        return links

    # ---- capability ---------------------------------------------------------------------------

    def capability_params(self, res_type: str) -> SearchParamInfo:
        """Search parameters this server really answers for the type."""
        return [
            (p.code, p.type, p.documentation)
            for p in params_for(res_type).values()
            if p.indexed or p.code in ("_id", "_lastUpdated")
        ]

    def capability_notes(self) -> list[str]:
        """Honest limits of the current search implementation."""
        return [
            "Search: token, string, reference, date, number, quantity and uri parameters with",
            "prefixes; modifiers :missing :not :text :exact :contains :below :above :[type];",
            "_sort, _count, _total, _summary=count|text|data and _elements.",
            "Chaining, _has, _include/_revinclude and composite parameters are not supported yet.",
        ]


def _group(pairs: list[tuple[str, str]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for k, v in pairs:
        out.setdefault(k, []).append(v)
    return out


def _subset(resource: dict[str, Any], elements: str | None, summary: str | None) -> dict[str, Any]:
    """_elements and _summary=text|data: keep the asked-for top-level elements, tag SUBSETTED."""
    mandatory = {"resourceType", "id", "meta"}
    if elements:
        wanted = {e.strip().split(".")[-1] for e in elements.split(",") if e.strip()}
        out = {k: v for k, v in resource.items() if k in mandatory or k in wanted}
    elif summary == "text":
        out = {k: v for k, v in resource.items() if k in mandatory or k == "text"}
    else:
        out = {k: v for k, v in resource.items() if k != "text"}
    meta = dict(out.get("meta") or {})
    tags = list(meta.get("tag") or [])
    tags.append({"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "SUBSETTED"})
    meta["tag"] = tags
    out["meta"] = meta
    return out
