"""Search as a service: index maintenance on every write, and searchset bundles for the API."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

import orjson
from sqlalchemy import bindparam, delete, insert, true
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from healthbook.auth.subject import AccessPolicy, Caller
from healthbook.config import Settings
from healthbook.db import dialect
from healthbook.db.engine import Database
from healthbook.errors import BadRequest, TooCostly
from healthbook.fhir import bundles, jsonio
from healthbook.fhir.audit import (
    MINOR_FAILURE,
    SUCCESS,
    Access,
    AuditSink,
    NoAudit,
    book_accesses,
    named_books,
    query_names,
)
from healthbook.fhir.capability import SearchParamInfo
from healthbook.fhir.compartment import compartment_names, member_params
from healthbook.fhir.definitions import load_json
from healthbook.fhir.http import Prefer
from healthbook.fhir.outcomes import Issue, operation_outcome
from healthbook.fhir.search import sql
from healthbook.fhir.search.composite import composites_for
from healthbook.fhir.search.extract import Row, extract, owned
from healthbook.fhir.search.includes import included, parse_specs
from healthbook.fhir.search.query import ParsedQuery, parse
from healthbook.fhir.search.registry import indexed_params, params_for
from healthbook.fhir.service import check_id, check_type
from healthbook.fhir.store.batch import pending
from healthbook.fhir.store.schema import INDEX_TABLES
from healthbook.fhir.store.sql_repository import StoredVersion
from healthbook.fhir.validation import resource_types

if TYPE_CHECKING:
    from healthbook.auth.subject import Condition

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
        self.audit: AuditSink = NoAudit()

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
                ready = queue.ready_rows.pop((stored.res_type, stored.res_id), None)
                made = (
                    ready[1]
                    if ready is not None and ready[0] == stored.patient_key
                    else self._rows(stored, doc)
                )
                for ptype, rows in made.items():
                    queue.index_rows.setdefault(ptype, []).extend(rows)
            return
        if old_key is not None:
            params = {"pk": old_key, "t": stored.res_type, "i": stored.res_id}
            for ptype in _index_types(stored.res_type):
                conn.execute(_DELETE_OWNER[ptype], params)
        if doc is None:
            return
        for ptype, rows in self._rows(stored, doc).items():
            conn.execute(insert(INDEX_TABLES[ptype]), rows)

    @staticmethod
    def _rows(stored: StoredVersion, doc: dict[str, Any]) -> dict[str, list[Row]]:
        return owned(extract(doc), stored.patient_key, stored.res_type, stored.res_id)

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
        """Run a type-, system- or compartment-level search and return the searchset Bundle.

        Bundle.total: `_total=accurate` counts every match; `estimate` gives the planner's estimate on
        PostgreSQL (never below what the pages have shown) and the exact count on SQLite; without
        `_total` (and with `none`) no count runs, and the total is given only when the whole result is
        on the first page, where it is known for free. `_summary=count` always counts exactly.
        """
        types = self._types(res_type, pairs)
        for t in types:
            self.policy.check(caller, "search", t)
        parsed = parse(types, pairs, strict=prefer.handling == "strict")
        count = self._count(parsed)
        offset = self._int_control(parsed, "_page_offset", 0)
        after, before = _decode_page(parsed.control("_page"))
        summary = parsed.control("_summary")
        if summary is not None and summary not in SUMMARY_MODES:
            raise BadRequest(f"_summary must be one of {', '.join(SUMMARY_MODES)}", expression="_summary")
        total_mode = parsed.control("_total")
        if total_mode is not None and total_mode not in ("none", "estimate", "accurate"):
            raise BadRequest("_total must be none, estimate or accurate", expression="_total")
        includes = parse_specs(parsed.controls.get("_include", []), "_include")
        includes += parse_specs(parsed.controls.get("_include:iterate", []), "_include:iterate")
        revincludes = parse_specs(parsed.controls.get("_revinclude", []), "_revinclude")
        revincludes += parse_specs(parsed.controls.get("_revinclude:iterate", []), "_revinclude:iterate")
        scope = self._compartment(types, compartment)
        if summary == "count":
            count = 0
        order = sql.order_of(parsed)
        # One statement needs no snapshot: autocommit saves the BEGIN/COMMIT round trips.
        single = not (includes or revincludes) and total_mode in (None, "none") and order.kind != "date"
        try:
            with (
                self.db.read() if single else self.db.snapshot() as conn,
                self.restricted(conn, caller) as condition,
            ):
                page = sql.PageResult([], None, None, False)
                if count:
                    page = sql.fetch_page(
                        conn,
                        parsed,
                        limit=count,
                        offset=offset,
                        after=after,
                        before=before,
                        compartment=scope,
                    )
                rows = page.rows
                extra_rows = []
                if rows and (includes or revincludes):
                    extra_rows = included(conn, [(r[0], r[1], r[2]) for r in rows], includes, revincludes)
                whole = bool(count) and not (offset or after or before or page.more)
                total = self._total(conn, parsed, scope, summary, total_mode, page, whole=whole)
                named = self._named(conn, caller, condition, res_type, pairs, compartment)
        except DBAPIError as exc:
            if dialect.is_statement_timeout(exc):
                raise TooCostly(
                    f"The search took longer than the server's limit of "
                    f"{self.settings.statement_timeout_ms / 1000:g} s; narrow it down (more selective "
                    "parameters, a smaller _count, no _total=accurate)"
                ) from None
            raise
        if self.audit.wants(caller):
            what = "search-system" if res_type is None else "search-type"
            unknown = set(parsed.ignored)  # only names the server understood: nothing planted by the caller
            names = query_names(res_type, (name for name, _ in pairs if name not in unknown))
            keys = [r[0] for r in rows] + [r[0] for r in extra_rows]  # the books whose records it saw
            accesses = book_accesses(keys, what, res_type, query=names)
            shown = {a.patient_key for a in accesses}
            accesses += [
                Access(book, what, res_type, outcome=SUCCESS if seen else MINOR_FAILURE, query=names)
                for book, seen in sorted(named.items())
                if book not in shown
            ]
            self.audit.record(caller, accesses)
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
        links = self._links(base, path, pairs, offset, count, page, after=after, before=before)
        return bundles.bundle("searchset", entries, links, total=total)

    def _named(
        self,
        conn: Connection,
        caller: Caller,
        condition: Condition | None,
        res_type: str | None,
        pairs: list[tuple[str, str]],
        compartment: tuple[str, str] | None,
    ) -> dict[str, bool]:
        """The books the search names, and whether the caller may see each (for the audit trail)."""
        if not self.audit.wants(caller):
            return {}
        keys = [(b, "Patient", b) for b in sorted(named_books(res_type, pairs, compartment))]
        if not keys:
            return {}
        # Only books that exist: a search naming made-up ids must not start chains for them.
        existing = sql.visible(conn, keys, lambda _own: true())
        seen = sql.visible(conn, sorted(existing), condition) if condition is not None else existing
        return {k[0]: k in seen for k in existing}

    @contextmanager
    def restricted(self, conn: Connection, caller: Caller) -> Iterator[Condition | None]:
        """Statements built inside see only what the caller may see (access control); yields the condition."""
        condition = self.policy.condition(conn, caller)
        with sql.restricted(condition):
            yield condition

    def _total(
        self,
        conn: Connection,
        parsed: ParsedQuery,
        scope: sql.Compartment | None,
        summary: str | None,
        mode: str | None,
        page: sql.PageResult,
        *,
        whole: bool,
    ) -> int | None:
        """Bundle.total for the _total mode (see search_bundle); `whole`: this page is the whole result."""
        if whole and mode != "none":
            return len(page.rows)
        if summary == "count" or mode == "accurate":
            return int(conn.execute(sql.count_query(parsed, scope)).scalar_one())
        if mode == "estimate" and sql.is_restricted():
            # The planner's estimate is drawn from every record, seen or not: a restricted caller gets
            # the exact count of what it may see instead.
            return int(conn.execute(sql.count_query(parsed, scope)).scalar_one())
        if mode == "estimate":
            estimate = dialect.estimate_rows(conn, sql.estimate_query(parsed, scope))
            if estimate is None:
                return int(conn.execute(sql.count_query(parsed, scope)).scalar_one())
            return max(estimate, len(page.rows) + (1 if page.more else 0))
        return None

    def _compartment(
        self, types: tuple[str, ...], compartment: tuple[str, str] | None
    ) -> sql.Compartment | None:
        if compartment is None:
            return None
        name, cid = compartment
        if name not in compartment_names():
            raise BadRequest(f"'{name}' is not a compartment type")
        check_id(cid)
        params = member_params(name, types)
        if not params:
            raise BadRequest(f"{types[0]} resources are never in a {name} compartment")
        return sql.Compartment(name, cid, params)

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
        offset: int,
        count: int,
        page: sql.PageResult,
        *,
        after: tuple[Any, ...] | None,
        before: tuple[Any, ...] | None,
    ) -> list[tuple[str, str]]:
        """self, first, previous and next: positions for keyset orders, offsets for the others."""
        keep = [
            (k, v) for k, v in pairs if k not in ("_page_offset", "_page", "_count", "_format", "_pretty")
        ]
        keep.append(("_count", str(count)))

        def url(extra: list[tuple[str, str]]) -> str:
            return bundles.page_url(base, path, _group([*keep, *extra]))

        here: list[tuple[str, str]] = [("_page_offset", str(offset))] if offset else []
        if after is not None:
            here.append(("_page", _encode_page("a", after)))
        elif before is not None:
            here.append(("_page", _encode_page("b", before)))
        links = [("self", url(here)), ("first", url([]))]
        if not count:
            return links
        if not page.keyset:
            if offset > 0:
                links.append(("previous", url([("_page_offset", str(max(0, offset - count)))])))
            if page.more:
                links.append(("next", url([("_page_offset", str(offset + count))])))
            return links
        backward = before is not None
        if page.first is not None and (page.more if backward else (after is not None or offset > 0)):
            links.append(("previous", url([("_page", _encode_page("b", page.first))])))
        elif page.first is None and (after is not None or offset > 0):
            links.append(("previous", url([])))
        if page.last is not None and (backward or page.more):
            links.append(("next", url([("_page", _encode_page("a", page.last))])))
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


def _encode_page(direction: str, position: tuple[Any, ...]) -> str:
    """An opaque `_page` value: a direction (a: after, b: before) and a row position."""
    raw = orjson.dumps([direction, *position])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_page(token: str | None) -> tuple[tuple[Any, ...] | None, tuple[Any, ...] | None]:
    """(after, before) positions of a `_page` value; malformed values are a 400."""
    if token is None:
        return None, None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        value = orjson.loads(raw)
    except (ValueError, orjson.JSONDecodeError):
        raise BadRequest("_page is not a paging position of this server", expression="_page") from None
    ok = (
        isinstance(value, list)
        and len(value) in (4, 6)
        and value[0] in ("a", "b")
        and all(v is None or (isinstance(v, str | int) and not isinstance(v, bool)) for v in value[1:])
    )
    if not ok:
        raise BadRequest("_page is not a paging position of this server", expression="_page")
    position = tuple(value[1:])
    return (position, None) if value[0] == "a" else (None, position)


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
