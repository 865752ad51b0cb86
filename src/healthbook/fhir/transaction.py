"""Transaction and batch bundles (http.html#transaction): all-or-nothing, or entry by entry."""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any, cast
from urllib.parse import parse_qsl, urlsplit

import orjson
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError, OperationalError

from healthbook.auth.subject import Caller
from healthbook.db.dialect import deadlocked
from healthbook.db.engine import Database
from healthbook.errors import BadRequest, Conflict, HealthbookError, NotFound, PreconditionFailed
from healthbook.fhir import jsonio, patching
from healthbook.fhir.audit import Collector, read_access
from healthbook.fhir.http import Prefer, reject_nul
from healthbook.fhir.outcomes import Issue, operation_outcome
from healthbook.fhir.search.service import SearchService
from healthbook.fhir.service import FhirService, WriteResult, check_id, check_type, parse_etag
from healthbook.fhir.store.batch import batching, pending
from healthbook.fhir.store.sql_repository import StoredVersion, prefetch_locators
from healthbook.fhir.timeutil import now_us, to_instant

METHODS = ("DELETE", "POST", "PUT", "PATCH", "GET", "HEAD")
ORDER = {m: n for n, m in enumerate(METHODS)}
MAX_ENTRIES = 20_000
_STATUS_TEXT = {200: "200 OK", 201: "201 Created", 204: "204 No Content"}


@dataclass
class Entry:
    """One request of the bundle, checked and normalised."""

    index: int
    method: str
    url: str
    res_type: str
    res_id: str | None
    query: str | None
    full_url: str | None
    resource: Any
    if_match: str | None
    if_none_exist: str | None
    response: dict[str, Any] | None = None
    outcome: list[Issue] = field(default_factory=list)


def _fail(index: int, message: str, where: str = "") -> BadRequest:
    return BadRequest(f"Bundle.entry[{index}]: {message}", expression=f"Bundle.entry[{index}]{where}")


def _parse_url(index: int, url: str) -> tuple[str, str | None, str | None]:
    """'Patient/1', 'Patient', 'Patient?x=y', or an absolute URL of this server -> (type, id, query)."""
    parts = urlsplit(url)
    path = parts.path.strip("/")
    if "/fhir/" in f"/{path}":
        path = f"/{path}".split("/fhir/", 1)[1]
    segments = [s for s in path.split("/") if s]
    if not segments:
        raise _fail(index, f"request.url '{url[:80]}' names no resource type", ".request.url")
    res_type = segments[0]
    res_id = segments[1] if len(segments) > 1 else None
    return res_type, res_id, parts.query or None


def parse_entries(bundle: Any) -> tuple[str, list[Entry]]:
    """Check the envelope of a transaction or batch bundle and normalise its entries."""
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise BadRequest(
            "POST to the base URL takes a Bundle of type transaction or batch", expression="Bundle"
        )
    kind = bundle.get("type")
    if kind not in ("transaction", "batch"):
        raise BadRequest(
            f"Bundle.type must be transaction or batch, not '{str(kind)[:40]}'", expression="Bundle.type"
        )
    raw_entries = bundle.get("entry", [])
    if not isinstance(raw_entries, list):
        raise BadRequest("Bundle.entry must be an array", expression="Bundle.entry")
    if len(raw_entries) > MAX_ENTRIES:
        raise BadRequest(f"A bundle may hold at most {MAX_ENTRIES} entries", expression="Bundle.entry")
    entries = []
    for i, raw in enumerate(raw_entries):
        if not isinstance(raw, dict):
            raise _fail(i, "entry must be an object")
        request = raw.get("request")
        if not isinstance(request, dict):
            raise _fail(i, "entry.request is required", ".request")
        method = request.get("method")
        url = request.get("url")
        if method not in METHODS:
            raise _fail(
                i,
                f"request.method '{str(method)[:20]}' is not one of {', '.join(METHODS)}",
                ".request.method",
            )
        if not isinstance(url, str) or not url:
            raise _fail(i, "request.url is required", ".request.url")
        res_type, res_id, query = _parse_url(i, url)
        resource = raw.get("resource")
        if method in ("POST", "PUT", "PATCH") and not isinstance(resource, dict):
            raise _fail(i, f"a {method} entry needs a resource", ".resource")
        full_url = raw.get("fullUrl") if isinstance(raw.get("fullUrl"), str) else None
        entries.append(
            Entry(
                i, method, url, res_type, res_id, query, full_url, resource,
                request.get("ifMatch"), request.get("ifNoneExist"),
            )
        )  # fmt: skip
    return kind, entries


def _walk_references(value: Any, fix: Callable[[str], str | None]) -> None:
    """Rewrite every Reference.reference (and nested ones in contained resources) in place."""
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            ref = node.get("reference")
            if isinstance(ref, str):
                new = fix(ref)
                if new is not None:
                    node["reference"] = new
            stack.extend(v for v in node.values() if isinstance(v, dict | list))
        elif isinstance(node, list):
            stack.extend(v for v in node if isinstance(v, dict | list))


def _response(
    stored: StoredVersion | None, status: int, base: str, *, location: bool = True
) -> dict[str, Any]:
    out: dict[str, Any] = {"status": _STATUS_TEXT.get(status, str(status))}
    if stored is not None:
        if location:
            out["location"] = f"{stored.res_type}/{stored.res_id}/_history/{stored.version_id}"
        out["etag"] = f'W/"{stored.version_id}"'
        out["lastModified"] = to_instant(stored.last_updated)
    return out


class _OnConnection:
    """Stands in for the Database so that a search entry runs on the bundle's own connection.

    A GET inside a transaction must see what the earlier steps of the same transaction wrote.
    """

    def __init__(self, conn: Connection):
        self.conn = conn

    @contextmanager
    def snapshot(self) -> Iterator[Connection]:
        queue = pending(self.conn)
        if queue is not None:
            queue.flush(self.conn)
        yield self.conn

    read = snapshot  # a single-statement search reads on the same connection too


class BundleProcessor:
    """Runs transaction and batch bundles against the FHIR and search services."""

    def __init__(self, fhir: FhirService, search: SearchService):
        self.fhir = fhir
        self.search = search

    def process(self, caller: Caller, bundle: Any, *, base: str, prefer: Prefer) -> bytes:
        """Answer a transaction-response or batch-response Bundle."""
        kind, entries = parse_entries(bundle)
        if kind == "transaction":
            self._transaction(caller, entries, base=base, prefer=prefer)
        else:
            full_urls = {e.full_url for e in entries if e.full_url}
            for entry in entries:
                self._batch_entry(caller, entry, full_urls, base=base, prefer=prefer)
        out_entries = []
        for e in entries:
            item: dict[str, Any] = {"response": e.response or {"status": "500"}}
            if e.full_url:
                item["fullUrl"] = e.full_url
            res = item["response"].pop("_resource", None)
            if res is not None:
                item["resource"] = res
            out_entries.append(item)
        doc = {
            "resourceType": "Bundle",
            "type": f"{kind}-response",
            "timestamp": to_instant(now_us()),
            "entry": out_entries,
        }
        return jsonio.dumps(doc)

    # ---- transaction -------------------------------------------------------------------------

    def _transaction(self, caller: Caller, entries: list[Entry], *, base: str, prefer: Prefer) -> None:
        for entry in entries:
            try:
                check_type(entry.res_type)
                self.fhir.policy.check(caller, _interaction(entry), entry.res_type)
            except HealthbookError as exc:
                exc.issues = [_at_entry(i, entry.index, ".request.url") for i in exc.issues]
                raise
        self._check_duplicates(entries)
        for attempt in range(2):
            try:
                with self.fhir.writing(caller) as conn, batching(conn, copy=True):
                    self._run_transaction(conn, caller, entries, base=base, prefer=prefer)
                return
            except (IntegrityError, OperationalError) as exc:
                if isinstance(exc, OperationalError) and not deadlocked(exc):
                    raise
                if attempt == 1:
                    raise Conflict("The transaction collided with a concurrent write; retry it") from None

    def _check_duplicates(self, entries: list[Entry]) -> None:
        seen_full: set[str] = set()
        seen_target: set[tuple[str, str]] = set()
        for e in entries:
            if e.full_url:
                if e.full_url in seen_full and e.method in ("POST", "PUT"):
                    raise _fail(e.index, f"fullUrl '{e.full_url[:80]}' occurs twice", ".fullUrl")
                seen_full.add(e.full_url)
            if e.method in ("PUT", "DELETE", "PATCH") and e.res_id:
                key = (e.res_type, e.res_id)
                if key in seen_target:
                    raise _fail(
                        e.index, f"{e.res_type}/{e.res_id} is the target of two entries", ".request.url"
                    )
                seen_target.add(key)

    def _run_transaction(
        self, conn: Connection, caller: Caller, entries: list[Entry], *, base: str, prefer: Prefer
    ) -> None:
        ids: dict[str, str] = {}  # fullUrl -> Type/id
        for e in entries:
            try:
                self._assign_id(conn, caller, e)
            except HealthbookError as exc:
                where = ".request.ifNoneExist" if e.method == "POST" else ".request.url"
                exc.issues = [_at_entry(i, e.index, where) for i in exc.issues]
                raise
            if e.full_url and e.res_id and e.method in ("POST", "PUT"):
                ids[e.full_url] = f"{e.res_type}/{e.res_id}"
        self._check_overlaps(entries)
        # One query for the ids the PUT entries address, not one per entry. Only PUT: a stale answer (a
        # concurrent writer created or moved the id since) ends in a duplicate id and the retry below;
        # DELETE and PATCH look their target up when they run.
        prefetch_locators(conn, [(e.res_type, e.res_id) for e in entries
                                 if e.method == "PUT" and e.res_id and e.res_type != "Patient"])  # fmt: skip
        self._rewrite_references(conn, caller, entries, ids)
        for e in sorted(entries, key=lambda x: (ORDER[x.method], x.index)):
            try:
                self._execute(conn, caller, e, base=base, prefer=prefer)
            except HealthbookError as exc:
                exc.issues = [_at_entry(i, e.index) for i in exc.issues]
                raise

    def _check_overlaps(self, entries: list[Entry]) -> None:
        """Resolved identities of the DELETE, POST and PUT/PATCH steps must not overlap (#trules)."""
        changed: dict[tuple[str, str], int] = {}
        reused: list[Entry] = []
        for e in entries:
            if e.res_id is None or e.method not in ("DELETE", "POST", "PUT", "PATCH"):
                continue
            if e.method == "POST" and e.response is not None and e.response.get("_existing"):
                reused.append(e)
                continue
            key = (e.res_type, e.res_id)
            if key in changed:
                where = ".request.ifNoneExist" if e.if_none_exist else ".request.url"
                raise _fail(
                    e.index, f"{e.res_type}/{e.res_id} is also the target of entry {changed[key]}", where
                )
            changed[key] = e.index
        for e in reused:
            key = (e.res_type, e.res_id or "")
            if key in changed:
                raise _fail(
                    e.index,
                    f"ifNoneExist matched {e.res_type}/{e.res_id}, which entry {changed[key]} changes",
                    ".request.ifNoneExist",
                )

    def _assign_id(self, conn: Connection, caller: Caller, e: Entry) -> None:
        if e.method == "POST":
            e.res_id = None
            if e.if_none_exist:
                found = self.fhir._match(conn, e.res_type, e.if_none_exist, lock=True, caller=caller)
                if len(found) > 1:
                    raise PreconditionFailed(
                        f"Bundle.entry[{e.index}]: ifNoneExist matched {len(found)} resources",
                        expression=f"Bundle.entry[{e.index}].request.ifNoneExist",
                    )
                if found:
                    e.res_id = found[0][2]
                    e.response = {"status": "200 OK", "_existing": True}
                    return
            e.res_id = str(uuid.uuid4())
        elif e.method in ("PUT", "DELETE", "PATCH") and e.res_id is None:
            if not e.query:
                raise _fail(e.index, f"{e.method} needs Type/id or Type?criteria", ".request.url")
            found = self.fhir._match(conn, e.res_type, e.query, lock=True, caller=caller)
            if len(found) > 1:
                raise PreconditionFailed(
                    f"Bundle.entry[{e.index}]: the criteria matched {len(found)} resources",
                    expression=f"Bundle.entry[{e.index}].request.url",
                )
            if found:
                e.res_id = found[0][2]
            elif e.method == "PUT":
                body_id = e.resource.get("id") if isinstance(e.resource, dict) else None
                e.res_id = body_id if isinstance(body_id, str) else str(uuid.uuid4())
        if e.res_id is not None:
            try:
                check_id(e.res_id)
            except HealthbookError as exc:
                raise _fail(e.index, exc.message, ".request.url") from None

    def _rewrite_references(
        self, conn: Connection, caller: Caller, entries: list[Entry], ids: dict[str, str]
    ) -> None:
        cache: dict[str, str] = {}

        def fix(ref: str, index: int) -> str | None:
            if ref in ids:
                return ids[ref]
            if ref.startswith("urn:uuid:") or ref.startswith("urn:oid:"):
                raise _fail(index, f"reference '{ref[:80]}' is not the fullUrl of any entry", ".resource")
            head, sep, query = ref.partition("?")
            if sep and "/" not in head and head[:1].isupper():
                if ref not in cache:
                    # Among what the caller sees (Patients: the whole database, one book per citizen).
                    found = self.fhir._match(conn, head, query, lock=False, caller=caller)
                    if len(found) != 1:
                        raise PreconditionFailed(
                            f"Bundle.entry[{index}]: conditional reference '{ref[:80]}' "
                            f"matched {len(found)} resources",
                            expression=f"Bundle.entry[{index}].resource",
                        )
                    cache[ref] = f"{head}/{found[0][2]}"
                return cache[ref]
            return None

        for e in entries:
            patch = e.method == "PATCH" and isinstance(e.resource, dict)
            if isinstance(e.resource, dict) and (
                e.method in ("POST", "PUT") or (patch and e.resource.get("resourceType") == "Parameters")
            ):
                try:
                    _walk_references(e.resource, partial(fix, index=e.index))
                except HealthbookError as exc:
                    exc.issues = [_at_entry(i, e.index, ".resource") for i in exc.issues]
                    raise

    def _execute(self, conn: Connection, caller: Caller, e: Entry, *, base: str, prefer: Prefer) -> None:
        fhir = self.fhir
        if e.method == "DELETE":
            if e.res_id is None:
                e.response = {"status": "204 No Content"}
                return
            tomb = fhir._delete(conn, caller, e.res_type, e.res_id)
            e.response = _response(tomb, 204, base, location=False) if tomb else {"status": "204 No Content"}
            return
        if e.method in ("GET", "HEAD"):
            # Recorded in the bundle's transaction: a second one would wait for it (SQLite has one writer).
            self._read_entry(conn, caller, e, base=base, prefer=prefer).flush(caller, conn)
            return
        if e.method == "POST" and e.response and e.response.pop("_existing", False):
            existing = fhir._current(conn, e.res_type, e.res_id or "")
            if existing is not None and not fhir._visible(conn, caller, existing):
                raise PreconditionFailed("ifNoneExist matched a record this caller may not see")
            if existing is not None:
                fhir._audit_read(caller, "read", existing, True, conn)  # answered with it
            e.response = _response(existing, 200, base)
            return
        assert e.res_id is not None
        if e.method == "PATCH":
            result = self._patch(conn, caller, e)
        else:
            resource = dict(e.resource)
            if e.method == "PUT" and resource.get("id") not in (None, e.res_id):
                raise _fail(
                    e.index,
                    f"resource id '{str(resource.get('id'))[:64]}' differs from the URL id",
                    ".resource.id",
                )
            resource["id"] = e.res_id
            body, _warnings = fhir._checked_body(e.res_type, resource, e.res_id)
            if e.method == "POST":
                stored = fhir._store(conn, caller, body, e.res_id, None, "POST")
                result = WriteResult(stored, 201)
            else:
                expected = parse_etag(e.if_match) if e.if_match else None
                result = fhir._put(conn, caller, body, e.res_id, expected, "PUT")
        e.response = _response(result.stored, result.status, base)
        if prefer.return_ == "representation" and result.stored.content is not None:
            e.response["_resource"] = orjson.Fragment(result.stored.content)

    def _patch(self, conn: Connection, caller: Caller, e: Entry) -> WriteResult:
        """PATCH inside a bundle: a FHIRPath Patch Parameters, or a Binary holding a JSON Patch."""
        ops = _entry_patch(e)
        cur = self.fhir._current(conn, e.res_type, e.res_id or "", lock=True)
        if cur is None or cur.deleted or cur.content is None or not self.fhir._visible(conn, caller, cur):
            raise NotFound(f"{e.res_type}/{e.res_id} is not known")
        body, _ = self.fhir._checked_body(e.res_type, ops(jsonio.loads(cur.content)), e.res_id)
        expected = parse_etag(e.if_match) if e.if_match else None
        return self.fhir._put(conn, caller, body, e.res_id or "", expected, "PATCH")

    def _read_entry(
        self, conn: Connection, caller: Caller, e: Entry, *, base: str, prefer: Prefer
    ) -> Collector:
        """Answer a GET entry; the accesses it made are returned, for the caller to record where it may."""
        audit = Collector(self.fhir.audit)
        self._read(conn, caller, e, audit, base=base, prefer=prefer)
        return audit

    def _read(
        self, conn: Connection, caller: Caller, e: Entry, audit: Collector, *, base: str, prefer: Prefer
    ) -> None:
        if e.res_id is not None:
            cur = self.fhir._current(conn, e.res_type, e.res_id)
            seen = cur is not None and self.fhir._visible(conn, caller, cur)
            if cur is not None and audit.wants(caller):
                access = read_access(
                    cur.patient_key, "read", e.res_type, e.res_id, seen=seen and not cur.deleted
                )
                audit.record(caller, [access] if access else [])
            if not seen:
                cur = None
            if cur is None or cur.deleted or cur.content is None:
                code = 410 if cur is not None else 404
                e.response = {
                    "status": f"{code}",
                    "outcome": operation_outcome(
                        [Issue("error", "not-found", f"{e.res_type}/{e.res_id} not found")]
                    ),
                }
                return
            e.response = _response(cur, 200, base, location=False)
            if e.method == "GET":
                e.response["_resource"] = orjson.Fragment(cur.content)
            return
        pairs = parse_qsl(e.query or "", keep_blank_values=True)
        reject_nul(pairs)
        searcher = SearchService(
            cast(Database, _OnConnection(conn)), self.search.policy, self.search.settings
        )
        searcher.audit = audit
        body = searcher.search_bundle(caller, e.res_type, pairs, base=base, prefer=prefer)
        e.response = {"status": "200 OK", "_resource": orjson.Fragment(body)}

    # ---- batch -------------------------------------------------------------------------------

    def _batch_entry(
        self, caller: Caller, e: Entry, full_urls: set[str], *, base: str, prefer: Prefer
    ) -> None:
        try:
            if e.method in ("POST", "PUT") and full_urls:
                _check_independent(e, full_urls)
            if e.method == "POST":
                result = self.fhir.create(caller, e.res_type, e.resource, if_none_exist=e.if_none_exist)
            elif e.method == "PUT" and e.res_id is not None:
                result = self.fhir.update(caller, e.res_type, e.res_id, e.resource, if_match=e.if_match)
            elif e.method == "PUT":
                result = self.fhir.conditional_update(
                    caller, e.res_type, e.query or "", e.resource, if_match=e.if_match
                )
            elif e.method == "DELETE":
                tomb = (
                    self.fhir.delete(caller, e.res_type, e.res_id)
                    if e.res_id is not None
                    else self.fhir.conditional_delete(caller, e.res_type, e.query or "")
                )
                e.response = (
                    _response(tomb, 204, base, location=False) if tomb else {"status": "204 No Content"}
                )
                return
            elif e.method == "PATCH":
                if e.res_id is None:
                    raise _fail(e.index, "PATCH needs Type/id", ".request.url")
                self.fhir.policy.check(caller, "patch", e.res_type)
                with self.fhir.writing(caller) as conn:
                    result = self._patch(conn, caller, e)
            else:
                check_type(e.res_type)
                self.fhir.policy.check(caller, "read" if e.res_id else "search", e.res_type)
                with self.fhir.db.read() as conn:
                    seen = self._read_entry(conn, caller, e, base=base, prefer=prefer)
                seen.flush(caller)  # after the read connection closed: a transaction of its own
                return
            e.response = _response(result.stored, result.status, base)
            if prefer.return_ == "representation" and result.stored.content is not None:
                e.response["_resource"] = orjson.Fragment(result.stored.content)
        except HealthbookError as exc:
            issues = [_at_entry(i, e.index) for i in exc.issues]
            e.response = {"status": str(exc.status_code), "outcome": operation_outcome(issues)}


def _check_independent(e: Entry, full_urls: set[str]) -> None:
    """Batch entries may not depend on each other (#brules): no references to another entry's fullUrl."""

    def fix(ref: str) -> str | None:
        if ref in full_urls and ref != e.full_url:
            raise _fail(e.index, f"reference '{ref[:80]}' points at another entry of the batch", ".resource")
        return None

    _walk_references(e.resource, fix)


def _entry_patch(e: Entry) -> patching.Patch:
    """The patch of a PATCH entry: a FHIRPath Patch Parameters, or a Binary of a JSON Patch document."""
    res = e.resource
    if res.get("resourceType") == "Parameters":
        return patching.fhirpath(res)
    if res.get("resourceType") != "Binary" or res.get("contentType") != patching.JSON_PATCH:
        raise _fail(
            e.index,
            f"PATCH entries take a FHIRPath Patch Parameters or a Binary of contentType {patching.JSON_PATCH}",
            ".resource",
        )
    try:
        ops = jsonio.loads(base64.b64decode(str(res.get("data", "")), validate=True))
    except (binascii.Error, ValueError):
        raise _fail(e.index, "Binary.data is not base64 of a JSON Patch document", ".resource.data") from None
    return patching.json_patch(ops)


def _interaction(e: Entry) -> str:
    return {"DELETE": "delete", "POST": "create", "PUT": "update", "PATCH": "patch"}.get(
        e.method, "read" if e.res_id else "search"
    )


def _at_entry(issue: Issue, index: int, where: str | None = None) -> Issue:
    """Re-anchor an issue's path inside Bundle.entry[index] (at `where` in the entry, if given)."""
    prefix = f"Bundle.entry[{index}]"
    expr = issue.expression
    if where is not None and not (expr or "").startswith("Bundle.entry["):
        new_expr = prefix + where
    elif expr is None:
        new_expr = prefix
    elif expr.startswith("Bundle.entry["):
        new_expr = expr
    else:
        head, dot, rest = expr.partition(".")
        new_expr = (
            f"{prefix}.resource" + (f".{rest}" if dot else "") if head[:1].isupper() else f"{prefix}.{expr}"
        )
    text = (
        issue.diagnostics
        if issue.diagnostics.startswith("Bundle.entry[")
        else f"{prefix}: {issue.diagnostics}"
    )
    return Issue(issue.severity, issue.code, text, new_expr)
