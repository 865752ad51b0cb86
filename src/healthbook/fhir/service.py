"""The FHIR interactions (http.html) as service calls: rules here, SQL in store/, HTTP in router."""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_plus

import orjson
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from healthbook.auth.subject import AccessPolicy, Caller
from healthbook.db.dialect import lock_key
from healthbook.db.engine import Database
from healthbook.errors import (
    BadRequest,
    Gone,
    HealthbookError,
    MethodNotAllowed,
    NotFound,
    PreconditionFailed,
    Unprocessable,
)
from healthbook.fhir import compartment, jsonio
from healthbook.fhir.audit import (
    MINOR_FAILURE,
    Access,
    AuditSink,
    NoAudit,
    book_accesses,
    personal,
    read_access,
)
from healthbook.fhir.hashing import hash63
from healthbook.fhir.outcomes import Issue, has_errors
from healthbook.fhir.patching import Patch
from healthbook.fhir.search.sql import restricted, visible
from healthbook.fhir.store import sql_repository as store
from healthbook.fhir.store.sql_repository import StoredVersion
from healthbook.fhir.timeutil import now_us, to_instant
from healthbook.fhir.validation import resource_types, validate_resource

ID_RE = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")

# Called inside the write transaction after a version is stored: (connection, stored version,
# parsed resource or None for a deletion, previous patient_key or None).
WriteHook = Callable[[Connection, StoredVersion, dict[str, Any] | None, str | None], None]
# Domain rules on a resource body (profiles); errors among the issues make the write a 422.
BodyCheck = Callable[[dict[str, Any]], list[Issue]]
# Runs in the write transaction before anything of the resource is written; raising refuses the write.
PreWriteHook = Callable[[Connection, dict[str, Any], str], None]
# Runs in the write transaction once the stored form is known: (connection, caller, patient_key of the new
# content, new content or None for a deletion, current version or None); raising refuses the write.
WriteGuard = Callable[[Connection, Caller, str, dict[str, Any] | None, StoredVersion | None], None]
# Finds (patient_key, type, id) of current resources matching a search query string.
Matcher = Callable[[Connection, str, str], list[tuple[str, str, str]]]


@dataclass(slots=True)
class WriteResult:
    """What a write did: the stored version, the HTTP status it deserves, and any warnings."""

    stored: StoredVersion
    status: int
    issues: list[Issue] = field(default_factory=list)
    changed: bool = True  # False when an update carried the current content again


def check_type(res_type: str) -> None:
    """Unknown resource types answer 404, like an unknown URL."""
    if res_type not in resource_types():
        raise NotFound(f"Unknown resource type '{res_type}'")


def check_id(res_id: str) -> None:
    """Logical ids follow the FHIR id datatype."""
    if not ID_RE.match(res_id):
        raise BadRequest(f"'{res_id[:80]}' is not a valid FHIR id ([A-Za-z0-9-.]{{1,64}})")


def parse_version(vid: str) -> int:
    """Version ids are positive integers on this server."""
    if not vid.isdigit() or len(vid) > 18 or int(vid) < 1:
        raise NotFound(f"Unknown version '{vid[:40]}'")
    return int(vid)


def parse_etag(etag: str) -> int:
    """Accept W/"3", "3" and 3 as the version in If-Match."""
    text = etag.strip()
    if text.startswith("W/"):
        text = text[2:]
    text = text.strip('"')
    if not text.isdigit() or len(text) > 18:
        raise BadRequest(f"If-Match value '{etag[:40]}' is not a version ETag like W/\"3\"")
    return int(text)


def _strip_meta(content: str | None) -> Any:
    if content is None:
        return None
    value = jsonio.loads(content)
    meta = value.get("meta")
    if isinstance(meta, dict):
        meta = {k: v for k, v in meta.items() if k not in ("versionId", "lastUpdated")}
        if meta:
            value["meta"] = meta
        else:
            value.pop("meta")
    return value


def _decimal_text(obj: Any) -> Any:
    if isinstance(obj, jsonio.FhirDecimal):
        return orjson.Fragment(obj.text)
    raise TypeError(f"cannot serialise {type(obj).__name__}")


def _canonical(value: Any) -> bytes:
    """Key-order independent JSON text that keeps decimal precision: 1.50 and 1.5 differ (datatypes.html)."""
    return orjson.dumps(value, default=_decimal_text, option=orjson.OPT_SORT_KEYS)


log = logging.getLogger("healthbook")

# StoredVersion.method → restful-interaction code of the audit trail.
_WRITE_INTERACTIONS = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}


def checked_body(
    res_type: str, body: Any, res_id: str | None, checks: Sequence[BodyCheck]
) -> tuple[dict[str, Any], list[Issue]]:
    """Validate a body for a write (a pure function, so bulk loads can run it in other processes)."""
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object holding a FHIR resource")
    if body.get("resourceType") != res_type:
        raise BadRequest(
            f"resourceType '{str(body.get('resourceType'))[:64]}' does not match the URL type '{res_type}'",
            expression="resourceType",
        )
    if res_id is not None:
        if "id" not in body:
            raise BadRequest("The resource in an update must carry its id", expression=f"{res_type}.id")
        if body["id"] != res_id:
            raise BadRequest(
                f"Resource id '{str(body['id'])[:64]}' does not match the URL id '{res_id}'",
                expression=f"{res_type}.id",
            )
    issues = validate_resource(body)
    if not has_errors(issues):
        for check in checks:
            issues = [*issues, *check(body)]
    if has_errors(issues):
        raise Unprocessable("The resource is not valid", issues=issues)
    if res_id is None:
        body = {k: v for k, v in body.items() if k != "id"}
    return body, [i for i in issues if not has_errors([i])]


class FhirService:
    """Create, read, update, patch, delete and history over the store, one transaction each."""

    def __init__(self, db: Database, policy: AccessPolicy):
        self.db = db
        self.policy = policy
        self.write_hooks: list[WriteHook] = []
        self.body_checks: list[BodyCheck] = []
        self.pre_write_hooks: list[PreWriteHook] = []
        self.write_guards: list[WriteGuard] = []
        self.matcher: Matcher | None = None
        self.audit: AuditSink = NoAudit()
        self.immutable_types: set[str] = set()  # created once, never changed nor deleted (AuditEvent)

    # ---- reads -------------------------------------------------------------------------------

    def read(self, caller: Caller, res_type: str, res_id: str) -> StoredVersion:
        """Current version; 404 if never written, 410 if deleted."""
        check_type(res_type)
        self.policy.check(caller, "read", res_type)
        check_id(res_id)
        with self.db.read() as conn:
            cur = self._current(conn, res_type, res_id)
            seen = cur is not None and self._visible(conn, caller, cur)
        if cur is not None:
            self._audit_read(caller, "read", cur, seen and not cur.deleted)
        if cur is None or not seen:
            raise NotFound(f"{res_type}/{res_id} is not known")  # as if what is not seen did not exist
        if cur.deleted:
            raise error_with_version(Gone(f"{res_type}/{res_id} was deleted"), cur)
        return cur

    def vread(self, caller: Caller, res_type: str, res_id: str, vid: str) -> StoredVersion:
        """One version; 404 if it does not exist, 410 if that version is a deletion."""
        check_type(res_type)
        self.policy.check(caller, "vread", res_type)
        check_id(res_id)
        version_id = parse_version(vid)
        with self.db.read() as conn:
            key = self._key_of(conn, res_type, res_id)
            ver = store.version(conn, key, res_type, res_id, version_id) if key else None
            seen = ver is not None and self._visible(conn, caller, ver)
        if ver is not None:
            self._audit_read(caller, "vread", ver, seen and not ver.deleted)
        if ver is None or not seen:
            raise NotFound(f"{res_type}/{res_id}/_history/{vid} is not known")
        if ver.deleted:
            raise Gone(f"{res_type}/{res_id} version {vid} is a deletion")
        return ver

    def _audit_read(
        self,
        caller: Caller,
        interaction: str,
        stored: StoredVersion,
        ok: bool,
        conn: Connection | None = None,
    ) -> None:
        """Record a read of a health book, refused ones too (outcome 4: the caller was shown nothing)."""
        if self.audit.wants(caller):
            access = read_access(stored.patient_key, interaction, stored.res_type, stored.res_id, seen=ok)
            if access is not None:
                self.audit.record(caller, [access], conn)

    def _audit_write(
        self, conn: Connection, caller: Caller, stored: StoredVersion, old_key: str | None
    ) -> None:
        """Record a write in its transaction (undone with it): both books when the record changed patient."""
        if not self.audit.wants(caller):
            return
        interaction = _WRITE_INTERACTIONS.get(stored.method or "", "update")
        keys = sorted({k for k in (stored.patient_key, old_key) if k is not None and personal(k)})
        accesses = [Access(k, interaction, stored.res_type, stored.res_id) for k in keys]
        if accesses:
            self.audit.record(caller, accesses, conn)

    def _visible(self, conn: Connection, caller: Caller, stored: StoredVersion) -> bool:
        """Whether the caller may see this resource (its current state decides for every version)."""
        quick = self.policy.sees(conn, caller, stored.patient_key, stored.res_type, stored.res_id)
        if quick is not None:
            return quick
        condition = self.policy.condition(conn, caller)
        key = (stored.patient_key, stored.res_type, stored.res_id)
        return condition is None or bool(visible(conn, [key], condition))

    def _key_of(self, conn: Connection, res_type: str, res_id: str) -> str | None:
        if res_type == "Patient":
            return res_id
        return store.locate(conn, res_type, res_id)

    def _current(
        self, conn: Connection, res_type: str, res_id: str, *, lock: bool = False
    ) -> StoredVersion | None:
        key = self._key_of(conn, res_type, res_id)
        cur = store.current(conn, key, res_type, res_id, for_update=lock) if key else None
        if cur is None and key is not None and store.forget_located(conn, res_type, res_id):
            return self._current(conn, res_type, res_id, lock=lock)  # moved since the bundle's prefetch
        return cur

    # ---- writes ------------------------------------------------------------------------------

    def create(
        self, caller: Caller, res_type: str, body: Any, *, if_none_exist: str | None = None
    ) -> WriteResult:
        """POST: a new resource with a server-assigned id; If-None-Exist makes it conditional."""
        check_type(res_type)
        self.policy.check(caller, "create", res_type)
        resource, warnings = self._checked_body(res_type, body, None)
        with self.writing(caller) as conn:
            if if_none_exist is not None:
                found = self._match(conn, res_type, if_none_exist, lock=True, caller=caller)
                if len(found) > 1:
                    raise PreconditionFailed(f"If-None-Exist matched {len(found)} resources")
                if found:
                    existing = store.current(conn, *found[0])
                    if existing is not None and not self._visible(conn, caller, existing):
                        raise PreconditionFailed("If-None-Exist matched a record this caller may not see")
                    if existing is not None:
                        self._audit_read(caller, "read", existing, True, conn)  # answered with it
                        return WriteResult(existing, 200, warnings)
            res_id = str(uuid.uuid4())
            stored = self._store(conn, caller, resource, res_id, None, "POST")
        return WriteResult(stored, 201, warnings)

    def update(
        self, caller: Caller, res_type: str, res_id: str, body: Any, *, if_match: str | None = None
    ) -> WriteResult:
        """PUT: a new version, or update-as-create with the client's id."""
        check_type(res_type)
        self.policy.check(caller, "update", res_type)
        check_id(res_id)
        resource, warnings = self._checked_body(res_type, body, res_id)
        expected = parse_etag(if_match) if if_match is not None else None
        return self._retry(
            caller, lambda conn: self._put(conn, caller, resource, res_id, expected, "PUT"), warnings
        )

    def conditional_update(
        self, caller: Caller, res_type: str, query: str, body: Any, *, if_match: str | None = None
    ) -> WriteResult:
        """PUT with search criteria: create if none match, update the one that matches, 412 if several."""
        check_type(res_type)
        self.policy.check(caller, "update", res_type)
        body_id = body.get("id") if isinstance(body, dict) else None
        resource, warnings = self._checked_body(res_type, body, body_id if isinstance(body_id, str) else None)
        expected = parse_etag(if_match) if if_match is not None else None

        def run(conn: Connection) -> WriteResult:
            found = self._match(conn, res_type, query, lock=True, caller=caller)
            if len(found) > 1:
                raise PreconditionFailed(f"The conditional update criteria matched {len(found)} resources")
            if found:
                target = found[0][2]
                if body_id is not None and body_id != target:
                    raise BadRequest(
                        f"Resource id '{body_id}' differs from the matching resource '{target}'",
                        expression=f"{res_type}.id",
                    )
                return self._put(conn, caller, resource, target, expected, "PUT")
            new_id = body_id if isinstance(body_id, str) else str(uuid.uuid4())
            return self._put(conn, caller, resource, new_id, expected, "PUT")

        return self._retry(caller, run, warnings)

    def patch(
        self, caller: Caller, res_type: str, res_id: str, ops: Patch, *, if_match: str | None = None
    ) -> WriteResult:
        """PATCH with a parsed patch (patching.parse); the patched resource must still be valid."""
        check_type(res_type)
        self.policy.check(caller, "patch", res_type)
        check_id(res_id)
        expected = parse_etag(if_match) if if_match is not None else None

        def run(conn: Connection) -> WriteResult:
            cur = self._current(conn, res_type, res_id, lock=True)
            if cur is None or not self._visible(conn, caller, cur):
                raise NotFound(f"{res_type}/{res_id} is not known")  # a test op must not probe it either
            if cur.deleted or cur.content is None:
                raise Gone(f"{res_type}/{res_id} was deleted")
            patched = ops(jsonio.loads(cur.content))
            resource, issues = self._checked_body(res_type, patched, res_id)
            result = self._put(conn, caller, resource, res_id, expected, "PATCH")
            result.issues.extend(issues)
            return result

        return self._retry(caller, run, [])

    def delete(self, caller: Caller, res_type: str, res_id: str) -> StoredVersion | None:
        """DELETE: a tombstone version; deleting what does not exist (any more) is not an error."""
        check_type(res_type)
        self.policy.check(caller, "delete", res_type)
        check_id(res_id)
        with self.writing(caller) as conn:
            return self._delete(conn, caller, res_type, res_id)

    def conditional_delete(self, caller: Caller, res_type: str, query: str) -> StoredVersion | None:
        """DELETE with criteria: removes the single match; 412 when several match."""
        check_type(res_type)
        self.policy.check(caller, "delete", res_type)
        with self.writing(caller) as conn:
            found = self._match(conn, res_type, query, lock=True, caller=caller)
            if len(found) > 1:
                raise PreconditionFailed(f"The conditional delete criteria matched {len(found)} resources")
            return self._delete(conn, caller, res_type, found[0][2]) if found else None

    # ---- internals ---------------------------------------------------------------------------

    def _match(
        self, conn: Connection, res_type: str, query: str, *, lock: bool, caller: Caller | None = None
    ) -> list[tuple[str, str, str]]:
        """Keys matching conditional criteria: among what `caller` may see, except for Patients.

        A Patient is matched on the whole database (one health book per citizen: a facility must find a
        citizen's book to record care for him or her); for other types an invisible record does not
        match, so the answer tells nothing about what the caller may not see. Without a caller (in-process
        maintenance) everything matches.
        """
        if not query.strip():
            raise BadRequest("Conditional interaction without search criteria")
        if "\x00" in unquote_plus(query):
            raise BadRequest("The conditional criteria contain a NUL character")
        if self.matcher is None:
            raise BadRequest("Search is not available on this server")
        if lock:
            # Two conditional writes with the same criteria must not both see "no match".
            lock_key(conn, hash63(res_type, query))
        if caller is None or res_type == "Patient":
            return self.matcher(conn, res_type, query)
        with restricted(self.policy.condition(conn, caller)):
            return self.matcher(conn, res_type, query)

    def _checked_body(
        self, res_type: str, body: Any, res_id: str | None
    ) -> tuple[dict[str, Any], list[Issue]]:
        return checked_body(res_type, body, res_id, self.body_checks)

    def _retry(
        self, caller: Caller, run: Callable[[Connection], WriteResult], warnings: list[Issue]
    ) -> WriteResult:
        """Two writers creating the same id race on the locator key; the loser retries as an update."""
        for attempt in range(3):
            try:
                with self.writing(caller) as conn:
                    result = run(conn)
                result.issues = warnings + result.issues
                return result
            except IntegrityError:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _put(
        self,
        conn: Connection,
        caller: Caller,
        resource: dict[str, Any],
        res_id: str,
        expected: int | None,
        method: str,
    ) -> WriteResult:
        res_type = resource["resourceType"]
        cur = self._current(conn, res_type, res_id, lock=True)
        if cur is not None and not cur.deleted and not self._visible(conn, caller, cur):
            # No id in the message: a Patient reached by criteria must not be named to this caller.
            raise NotFound(f"No {res_type} this caller may see is the target of this write")
        if expected is not None and (cur is None or cur.deleted or cur.version_id != expected):
            have = "no current version" if cur is None or cur.deleted else f"version {cur.version_id}"
            raise PreconditionFailed(
                f"If-Match asked for version {expected} of {res_type}/{res_id}, found {have}"
            )
        if (
            cur is not None
            and not cur.deleted
            and _canonical(_strip_meta(cur.content))
            == _canonical(_strip_meta(jsonio.dumps({**resource, "id": res_id}).decode()))
        ):
            # Answering with the record is a write attempt all the same.
            self._guard(conn, caller, cur.patient_key, None, cur, _WRITE_INTERACTIONS.get(method, "update"))
            self._audit_read(caller, "read", cur, True, conn)
            return WriteResult(cur, 200, changed=False)  # nothing changed: no new version
        if cur is not None and not cur.deleted and self._immutable(caller, res_type):
            raise MethodNotAllowed(f"{res_type}/{res_id} is recorded once and never changes")
        stored = self._store(conn, caller, resource, res_id, cur, method)
        return WriteResult(stored, 201 if cur is None or cur.deleted else 200)

    @contextmanager
    def writing(self, caller: Caller) -> Iterator[Connection]:
        """A write transaction; writes the guards refused are recorded after the rollback (outcome 4)."""
        try:
            with self.db.write() as conn:
                yield conn
        except HealthbookError as exc:
            if exc.refused and self.audit.wants(caller):
                try:
                    self.audit.record(caller, exc.refused)  # its own transaction: the write's was undone
                except Exception as failure:  # the client is told of the refusal, not of the trail
                    log.error("refused write not recorded in the audit trail: %s", type(failure).__name__)
            raise

    def _guard(
        self,
        conn: Connection,
        caller: Caller,
        key: str,
        doc: dict[str, Any] | None,
        cur: StoredVersion | None,
        interaction: str,
        res_id: str | None = None,
    ) -> None:
        """Run the write guards; a refusal notes the attempt on the error for the audit trail."""
        try:
            for guard in self.write_guards:
                guard(conn, caller, key, doc, cur)
        except HealthbookError as exc:
            res_type = str((doc or {}).get("resourceType") or (cur.res_type if cur else ""))
            rid = res_id or (cur.res_id if cur else None)
            books = {key, *([cur.patient_key] if cur is not None else [])}  # where it is and would go
            for book in sorted(b for b in books if personal(b)):
                exc.refused.append(Access(book, interaction, res_type or None, rid, MINOR_FAILURE))
            raise

    def _immutable(self, caller: Caller, res_type: str) -> bool:
        """Immutable for every caller but in-process maintenance (a Patient merge re-points references)."""
        return res_type in self.immutable_types and not caller.in_process

    def _delete(self, conn: Connection, caller: Caller, res_type: str, res_id: str) -> StoredVersion | None:
        if self._immutable(caller, res_type):
            raise MethodNotAllowed(f"{res_type} resources are never deleted")
        cur = self._current(conn, res_type, res_id, lock=True)
        if cur is None or cur.deleted or not self._visible(conn, caller, cur):
            return None  # what the caller may not see is, for it, not there
        self._guard(conn, caller, cur.patient_key, None, cur, "delete")
        ts = max(now_us(), cur.last_updated + 1)
        tomb = StoredVersion(cur.patient_key, res_type, res_id, cur.version_id + 1, ts, True, None, "DELETE")
        store.write(conn, tomb, is_new=False)
        for hook in self.write_hooks:
            hook(conn, tomb, None, cur.patient_key)
        self._audit_write(conn, caller, tomb, None)
        return tomb

    def _store(
        self,
        conn: Connection,
        caller: Caller,
        resource: dict[str, Any],
        res_id: str,
        cur: StoredVersion | None,
        method: str,
    ) -> StoredVersion:
        res_type = resource["resourceType"]
        for pre in self.pre_write_hooks:
            pre(conn, resource, res_id)
        ts = now_us() if cur is None else max(now_us(), cur.last_updated + 1)
        vid = 1 if cur is None else cur.version_id + 1
        meta = dict(resource.get("meta") or {})
        meta["versionId"] = str(vid)
        meta["lastUpdated"] = to_instant(ts)
        doc: dict[str, Any] = {"resourceType": res_type, "id": res_id, "meta": meta}
        for key, value in resource.items():
            doc.setdefault(key, value)
        key = compartment.patient_key(doc)
        self._guard(conn, caller, key, doc, cur, _WRITE_INTERACTIONS.get(method, "update"), res_id)
        if cur is None:
            store.add_locator(conn, res_type, res_id, key)
        elif cur.patient_key != key:
            store.move(conn, res_type, res_id, cur.patient_key, key)
        stored = StoredVersion(key, res_type, res_id, vid, ts, False, jsonio.dumps(doc).decode(), method)
        store.write(conn, stored, is_new=cur is None)
        for hook in self.write_hooks:
            hook(conn, stored, doc, cur.patient_key if cur else None)
        self._audit_write(conn, caller, stored, cur.patient_key if cur else None)
        return stored


def error_with_version(exc: HealthbookError, stored: StoredVersion) -> HealthbookError:
    """Attach the ETag of the deletion to a 410 answer."""
    exc.headers["ETag"] = f'W/"{stored.version_id}"'
    return exc


def outcome_issues(result: WriteResult) -> Sequence[Issue]:
    """Issues to show for Prefer: return=OperationOutcome."""
    return result.issues


@dataclass(frozen=True, slots=True)
class HistoryPage:
    """One page of a history query plus what is needed to link the neighbouring pages."""

    versions: Sequence[StoredVersion]
    total: int
    offset: int
    count: int
    until: int


def history(
    service: FhirService,
    caller: Caller,
    *,
    res_type: str | None,
    res_id: str | None,
    since: int | None,
    until: int | None,
    offset: int,
    count: int,
) -> HistoryPage:
    """History at instance, type or system level, newest first, in stable pages."""
    if res_type is not None:
        check_type(res_type)
    level = "history-system" if res_type is None else "history-type" if res_id is None else "history-instance"
    service.policy.check(caller, level, res_type)
    if res_id is not None:
        check_id(res_id)
    bound = until if until is not None else now_us()
    with service.db.snapshot() as conn:
        key = None
        if res_type is not None and res_id is not None:
            # The locator, not the Patient shortcut of _key_of: an unknown Patient id must answer 404.
            key = store.locate(conn, res_type, res_id)
            condition = service.policy.condition(conn, caller) if key is not None else None
            if key is None or (
                condition is not None and not visible(conn, [(key, res_type, res_id)], condition)
            ):
                raise NotFound(f"{res_type}/{res_id} is not known")
        args: dict[str, Any] = {
            "res_type": res_type,
            "res_id": res_id,
            "patient_key": key,
            "since": since,
            "until": bound,
        }
        total = store.history_count(conn, **args)
        versions = store.history(conn, **args, offset=offset, limit=count) if count else []
    if service.audit.wants(caller):
        found = book_accesses((v.patient_key for v in versions), level, res_type, res_id=res_id)
        if key is not None and not found and personal(key):
            found = [Access(key, level, res_type, res_id)]  # a page past the end still looked
        service.audit.record(caller, found)
    return HistoryPage(versions, total, offset, count, bound)
