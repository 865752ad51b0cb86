"""Search as a service: index maintenance on every write, and searchset bundles for the API."""

from __future__ import annotations

from functools import cache
from typing import Any
from urllib.parse import parse_qsl

import orjson
from sqlalchemy import ColumnElement, bindparam, delete, insert, or_
from sqlalchemy.engine import Connection

from healthbook.auth.subject import AccessPolicy, Caller
from healthbook.config import Settings
from healthbook.db.engine import Database
from healthbook.errors import BadRequest
from healthbook.fhir import bundles, jsonio
from healthbook.fhir.capability import SearchParamInfo
from healthbook.fhir.compartment import compartment_names, member_params
from healthbook.fhir.definitions import load_json
from healthbook.fhir.http import Prefer
from healthbook.fhir.outcomes import Issue, operation_outcome
from healthbook.fhir.search import sql
from healthbook.fhir.search.composite import composites_for
from healthbook.fhir.search.extract import extract
from healthbook.fhir.search.includes import included, parse_specs
from healthbook.fhir.search.query import ParsedQuery, parse
from healthbook.fhir.search.registry import indexed_params, params_for
from healthbook.fhir.service import check_id, check_type
from healthbook.fhir.store.batch import pending
from healthbook.fhir.store.schema import INDEX_TABLES, resource
from healthbook.fhir.store.sql_repository import StoredVersion
from healthbook.fhir.validation import resource_types

SUMMARY_MODES = ("true", "false", "text", "data", "count")
_DELETE_OWNER = {
    ptype: delete(table).where(
        table.c.patient_key == bindparam("pk"),
        table.c.res_type == bindparam("t"),
        table.c.res_id == bindparam("i"),
    )
    for ptype, table in INDEX_TABLES.items()
}


@cache
def _index_types(res_type: str) -> tuple[str, ...]:
    """Index tables that can hold rows of this resource type (token always: :identifier, :of-type)."""
    kinds = {p.type for p in indexed_params(res_type)} | {"token"}
    if composites_for(res_type):
        kinds.add("composite")
    return tuple(k for k in INDEX_TABLES if k in kinds)


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
        queue = pending(conn)
        if queue is not None:
            if old_key is not None:
                queue.index_deletes.append((old_key, stored.res_type, stored.res_id))
            if doc is not None:
                owner = {
                    "patient_key": stored.patient_key,
                    "res_type": stored.res_type,
                    "res_id": stored.res_id,
                }
                for ptype, rows in extract(doc).items():
                    queue.index_rows.setdefault(ptype, []).extend({**owner, **row} for row in rows)
            return
        if old_key is not None:
            params = {"pk": old_key, "t": stored.res_type, "i": stored.res_id}
            for ptype in _index_types(stored.res_type):
                conn.execute(_DELETE_OWNER[ptype], params)
        if doc is None:
            return
        owner = {"patient_key": stored.patient_key, "res_type": stored.res_type, "res_id": stored.res_id}
        for ptype, rows in extract(doc).items():
            conn.execute(insert(INDEX_TABLES[ptype]), [{**owner, **row} for row in rows])

    # ---- conditional interactions -------------------------------------------------------------

    def match(self, conn: Connection, res_type: str, query_string: str) -> list[tuple[str, str, str]]:
        """Keys of current resources matching a conditional query; strict about unknown parameters."""
        queue = pending(conn)
        if queue is not None:
            queue.flush(conn)  # queued writes of the same bundle must be searchable
        pairs = parse_qsl(query_string, keep_blank_values=True)
        parsed = parse((res_type,), pairs, strict=True)
        if not parsed.clauses:
            raise BadRequest("The conditional criteria contain no usable search parameter")
        rows = conn.execute(sql.ids_query(parsed, limit=2)).all()
        return [(r[0], r[1], r[2]) for r in rows]

    # ---- search interaction -------------------------------------------------------------------

    def search_bundle(
        self,
        caller: Caller,
        res_type: str | None,
        pairs: list[tuple[str, str]],
        *,
        base: str,
        prefer: Prefer,
        compartment: tuple[str, str] | None = None,
    ) -> bytes:
        """Run a type-, system- or compartment-level search and return the searchset Bundle."""
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
        includes = parse_specs(parsed.controls.get("_include", []), "_include")
        includes += parse_specs(parsed.controls.get("_include:iterate", []), "_include:iterate")
        revincludes = parse_specs(parsed.controls.get("_revinclude", []), "_revinclude")
        revincludes += parse_specs(parsed.controls.get("_revinclude:iterate", []), "_revinclude:iterate")
        extra = self._compartment(types, compartment)
        if summary == "count":
            count = 0
        with self.db.snapshot() as conn:
            rows = (
                conn.execute(sql.page_query(parsed, offset=offset, limit=count + 1, extra=extra)).all()
                if count
                else []
            )
            has_next = len(rows) > count
            rows = rows[:count]
            extra_rows = []
            if rows and (includes or revincludes):
                extra_rows = included(conn, [(r[0], r[1], r[2]) for r in rows], includes, revincludes)
            total = None
            if total_mode != "none" or summary == "count":
                if offset == 0 and count and not has_next:
                    total = len(rows)  # the whole result is on this page: no count query needed
                else:
                    total = int(conn.execute(sql.count_query(parsed, extra)).scalar_one())
        entries = [self._entry(base, r[1], r[2], r[3], parsed, summary, "match") for r in rows]
        entries += [self._entry(base, r[1], r[2], r[3], parsed, summary, "include") for r in extra_rows]
        if parsed.ignored:
            text = "Ignored unknown or unsupported search parameters: " + ", ".join(
                sorted(set(parsed.ignored))
            )
            outcome = operation_outcome([Issue("warning", "not-supported", text)])
            entries.append({"resource": outcome, "search": {"mode": "outcome"}})
        if compartment is not None:
            path = f"/{compartment[0]}/{compartment[1]}/{res_type}"
        else:
            path = f"/{res_type}" if res_type else ""
        links = self._links(base, path, pairs, parsed, offset, count, has_next)
        return bundles.bundle("searchset", entries, links, total=total)

    def _compartment(
        self, types: tuple[str, ...], compartment: tuple[str, str] | None
    ) -> list[ColumnElement[bool]]:
        if compartment is None:
            return []
        name, cid = compartment
        if name not in compartment_names():
            raise BadRequest(f"'{name}' is not a compartment type")
        check_id(cid)
        params = list(member_params(name, types))
        if not params:
            raise BadRequest(f"{types[0]} resources are never in a {name} compartment")
        conds = [sql.compartment_condition(resource, types, params, (name, cid))]
        if name == "Patient":
            # Most members live under the patient's own shard key; the OR keeps the others.
            conds = [or_(resource.c.patient_key == cid, conds[0])]
        return conds

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
        self,
        base: str,
        rtype: str,
        rid: str,
        content: str | None,
        parsed: ParsedQuery,
        summary: str | None,
        mode: str,
    ) -> dict[str, Any]:
        elements = parsed.control("_elements")
        res: Any = orjson.Fragment(content or "{}")
        if elements or summary in ("true", "text", "data"):
            res = _subset(jsonio.loads(content or "{}"), elements, summary)
        return {"fullUrl": f"{base}/{rtype}/{rid}", "resource": res, "search": {"mode": mode}}

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
        composites = composites_for(res_type)
        return [
            (p.code, p.type, p.documentation)
            for p in params_for(res_type).values()
            if p.indexed or p.code in ("_id", "_lastUpdated") or p.code in composites
        ]

    def capability_notes(self) -> list[str]:
        """Honest limits of the current search implementation."""
        return [
            "Search: token, string, reference, date, number, quantity and uri parameters with",
            "prefixes; modifiers :missing :not :text :exact :contains :below :above (uri)",
            ":of-type :identifier :[type];",
            "two-component composite parameters, chained parameters, _has,",
            "_include and _revinclude (with :iterate and *),",
            "_sort, _count, _total, _summary and _elements; compartment search.",
        ]


def _group(pairs: list[tuple[str, str]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for k, v in pairs:
        out.setdefault(k, []).append(v)
    return out


def _element_name(key: str, names: frozenset[str]) -> bool:
    """Whether a JSON key is one of the element names (valueQuantity counts as value)."""
    if key in names:
        return True
    bare = key[1:] if key.startswith("_") else key
    if bare in names:
        return True
    return any(bare.startswith(n) and bare[len(n) : len(n) + 1].isupper() for n in names)


def _subset(resource: dict[str, Any], elements: str | None, summary: str | None) -> dict[str, Any]:
    """_elements and _summary=true|text|data: keep the asked-for top-level elements, tag SUBSETTED."""
    mandatory = frozenset({"resourceType", "id", "meta"})
    rtype = str(resource.get("resourceType"))
    summary_names = frozenset(load_json("summary-elements.json").get(rtype, []))
    if elements:
        wanted = frozenset(e.strip().split(".")[-1] for e in elements.split(",") if e.strip())
        out = {k: v for k, v in resource.items() if k in mandatory or _element_name(k, wanted)}
    elif summary == "text":
        out = {
            k: v
            for k, v in resource.items()
            if k in mandatory or k == "text" or _element_name(k, summary_names)
        }
    elif summary == "true":
        out = {k: v for k, v in resource.items() if k in mandatory or _element_name(k, summary_names)}
    else:
        out = {k: v for k, v in resource.items() if k != "text"}
    meta = dict(out.get("meta") or {})
    tags = list(meta.get("tag") or [])
    tags.append({"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "SUBSETTED"})
    meta["tag"] = tags
    out["meta"] = meta
    return out
