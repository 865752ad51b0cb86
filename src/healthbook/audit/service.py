"""The audit trail: records every access of authenticated callers, lists it to those who may read it, verifies it.

Recorded: what the engine reports through its AuditSink (reads, vreads, instance history, searches, writes,
$everything and $summary, $export, break-glass), for callers authenticated by an access token. In-process
tools (CLI, importers, the demo loader) and the anonymous caller of a server with auth off are not
recorded per record: they run with the database's own privileges.
"""

from __future__ import annotations

import heapq
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy.engine import Connection

from healthbook.access.service import AccessService
from healthbook.audit import chain
from healthbook.audit import repository as repo
from healthbook.audit.query import PARAMS, cursor, parse
from healthbook.audit.resource import DEFAULT_PURPOSE, TRAIL_DETAILS, action_of, audit_event
from healthbook.auth.subject import Caller, Role
from healthbook.db.engine import Database, before_commit, transaction_state
from healthbook.errors import Forbidden, MethodNotAllowed, NotFound
from healthbook.fhir import bundles
from healthbook.fhir.audit import Access
from healthbook.fhir.outcomes import Issue, operation_outcome
from healthbook.fhir.service import FhirService, check_id
from healthbook.fhir.timeutil import now_us


@dataclass(slots=True)
class VerifyReport:
    """What `healthbook audit verify` found."""

    books: int = 0
    events: int = 0
    breaks: list[chain.Break] = field(default_factory=list)
    anchor: str = ""


class AuditTrail:
    """The AuditSink of the server, and the AuditEvent read interactions."""

    def __init__(
        self, db: Database, access: AccessService, *, server: str = "healthbook", durable_reads: bool = False
    ):
        self.db = db
        self.access = access
        self.server = server
        self.durable_reads = durable_reads

    def install(self, fhir: FhirService) -> None:
        """Report the engine's accesses here; keep submitted AuditEvents immutable and apart from the trail."""
        fhir.audit = self
        fhir.immutable_types.add("AuditEvent")
        fhir.pre_write_hooks.append(self._not_a_trail_id)
        fhir.body_checks.append(_no_trail_details)

    def _not_a_trail_id(self, conn: Connection, resource: dict[str, Any], res_id: str) -> None:
        """A submitted AuditEvent may not take the id of an event of the trail (it would hide behind it)."""
        if resource.get("resourceType") == "AuditEvent" and repo.by_id(conn, res_id) is not None:
            raise MethodNotAllowed(f"AuditEvent/{res_id} is an event of the server's audit trail")

    # ---- recording ----------------------------------------------------------------------------

    def wants(self, caller: Caller) -> bool:
        """Callers authenticated by a token are recorded."""
        return caller.authenticated

    def record(self, caller: Caller, accesses: Sequence[Access], conn: Connection | None = None) -> None:
        """Append one event per access, in `conn`'s transaction or in one of its own."""
        if not accesses or not self.wants(caller):
            return
        now = now_us()
        if conn is not None:
            # Appended when the transaction ends, all its events at once in book order: two transactions
            # writing to the same books in other orders then cannot deadlock on the chain heads.
            pending: list[dict[str, Any]] = transaction_state(conn).setdefault("audit", [])
            pending.extend(self._fields(caller, a, now) for a in self._purposes(conn, caller, accesses))
            before_commit(conn, "audit", _append_pending)
            return
        # A read's events: committed without waiting for the disk (README "Audit"), unless configured;
        # a refused write's like any write.
        durable = self.durable_reads or any(action_of(a.interaction) in ("C", "U", "D") for a in accesses)
        with self.db.write(durable=durable) as own:
            events = [self._fields(caller, a, now_us()) for a in self._purposes(own, caller, accesses)]
            repo.append(own, events)

    def _purposes(self, conn: Connection, caller: Caller, accesses: Sequence[Access]) -> Sequence[Access]:
        """A health worker's accesses to books opened by break-glass are for emergency treatment."""
        if caller.role is not Role.HEALTH_WORKER:
            return accesses
        emergency = self.access.emergency_books(conn, caller, sorted({a.patient_key for a in accesses}))
        if not emergency:
            return accesses
        return [
            replace(a, purpose="ETREAT") if a.patient_key in emergency and a.purpose is None else a
            for a in accesses
        ]

    @staticmethod
    def _fields(caller: Caller, access: Access, now: int) -> dict[str, Any]:
        role = caller.role.value if caller.role is not None else None
        purpose = access.purpose or caller.purpose or DEFAULT_PURPOSE.get(role or "")
        return {
            "patient_key": access.patient_key,
            "event_id": str(uuid.uuid4()),
            "recorded": now,
            "interaction": access.interaction,
            "res_type": access.res_type,
            "res_id": access.res_id,
            "outcome": access.outcome,
            "purpose": purpose[:64] if purpose else None,
            "agent_role": role,
            "agent_subject": caller.subject[:255],
            "agent_issuer": caller.issuer[:255] if caller.issuer else None,
            "agent_user": caller.fhir_user[:200] if caller.fhir_user else None,
            "agent_facility": caller.facility[:16] if caller.facility else None,
            "agent_client": caller.client_id[:200] if caller.client_id else None,
            "query": access.query,
            "request_id": caller.request_id,
        }

    # ---- reading ------------------------------------------------------------------------------

    def _books(self, caller: Caller, interaction: str) -> list[str] | None:
        """Whose trails the caller may read (None: every book)."""
        self.access.policy.check(caller, interaction, "AuditEvent")
        return self.access.audit_books(caller)

    def read(self, caller: Caller, event_id: str) -> dict[str, Any] | None:
        """One event of the trail; None when the trail has no such event (it may be a submitted record).

        An event of a book the caller may not read answers 404, as if it did not exist; a caller who
        reads no access log at all is not told whether the trail has it either.
        """
        check_id(event_id)
        with self.db.read() as conn:
            row = repo.by_id(conn, event_id)
        if row is None:
            return None
        try:
            books = self._books(caller, "read")
        except Forbidden:
            raise NotFound(f"AuditEvent/{event_id} is not known") from None
        if books is not None and row["patient_key"] not in books:
            raise NotFound(f"AuditEvent/{event_id} is not known")
        return audit_event(row, server=self.server)

    def search(self, caller: Caller, pairs: list[tuple[str, str]], *, base: str, strict: bool) -> bytes:
        """GET /AuditEvent: newest first, by patient, date, action, outcome, subtype; keyset pages."""
        books = self._books(caller, "search-type")
        query = parse(pairs, strict=strict)
        wanted = query.patients
        if wanted is not None:
            books = [b for b in wanted if books is None or b in books]
        with self.db.read() as conn:
            rows = repo.page(
                conn,
                books=books,
                since=query.since,
                before=query.before,
                actions=query.actions,
                outcomes=query.outcomes,
                interactions=query.subtypes,
                after=query.after,
                limit=query.count + 1,
            )
        more = len(rows) > query.count
        rows = rows[: query.count]
        entries: list[dict[str, Any]] = [
            {
                "fullUrl": f"{base}/AuditEvent/{r['event_id']}",
                "resource": audit_event(r, server=self.server),
                "search": {"mode": "match"},
            }
            for r in rows
        ]
        if query.ignored:
            text = "Ignored unknown or unsupported search parameters: " + ", ".join(sorted(query.ignored))
            outcome = operation_outcome([Issue("warning", "not-supported", text)])
            entries.append({"resource": outcome, "search": {"mode": "outcome"}})
        kept = [(k, v) for k, v in pairs if k in PARAMS and k != "_page"]
        links = [("self", bundles.page_url(base, "/AuditEvent", _multi(pairs)))]
        if more and rows:
            last = rows[-1]
            position = cursor((int(last["recorded"]), str(last["patient_key"]), int(last["seq"])))
            links.append(
                ("next", bundles.page_url(base, "/AuditEvent", _multi([*kept, ("_page", position)])))
            )
        total = len(rows) if not more and query.after is None else None
        return bundles.bundle("searchset", entries, links, total=total)

    def recent(self, caller: Caller, book: str, count: int = 20) -> list[dict[str, Any]] | None:
        """The newest events of one book for its pages; None when the caller reads no access log."""
        try:
            books = self._books(caller, "search-type")
        except Forbidden:
            return None
        if books is not None and book not in books:
            return None
        with self.db.read() as conn:
            return repo.page(
                conn,
                books=[book],
                since=None,
                before=None,
                actions=None,
                outcomes=None,
                interactions=None,
                after=None,
                limit=count,
            )

    # ---- verification -------------------------------------------------------------------------

    def verify(
        self, books: Sequence[str] | None = None, on_progress: Callable[[int], None] | None = None
    ) -> VerifyReport:
        """Recompute every chain (or those of `books`) and compare with the heads; an anchor over all heads."""
        report = VerifyReport()
        # One snapshot: appends running meanwhile are not half seen (a head ahead of its rows).
        with self.db.snapshot(unbounded=True) as conn:
            keys: Iterator[str] = iter(sorted(books)) if books is not None else _merged(conn)
            for key in keys:
                rows = list(repo.events_of(conn, key))
                found = chain.verify(key, rows, repo.head_of(conn, key))
                if found is not None:
                    report.breaks.append(found)
                report.books += 1
                report.events += len(rows)
                if on_progress is not None:
                    on_progress(report.books)
            report.anchor = chain.anchor(repo.heads(conn))
        return report


def _no_trail_details(body: dict[str, Any]) -> list[Issue]:
    """A submitted AuditEvent may not carry the details that mark the server's own trail events."""
    if body.get("resourceType") != "AuditEvent":
        return []
    issues = []
    for i, entity in enumerate(body.get("entity") or []):
        if not isinstance(entity, dict):
            continue
        for j, detail in enumerate(entity.get("detail") or []):
            if isinstance(detail, dict) and detail.get("type") in TRAIL_DETAILS:
                issues.append(
                    Issue(
                        "error",
                        "business-rule",
                        f"detail type '{detail['type']}' is reserved for the server's audit trail",
                        f"AuditEvent.entity[{i}].detail[{j}].type",
                    )
                )
    return issues


def _append_pending(conn: Connection) -> None:
    events = transaction_state(conn).pop("audit", [])
    if events:
        now = now_us()  # when chained, so that `recorded` follows the chain (and the commit order)
        repo.append(conn, [{**e, "recorded": now} for e in events])


def _merged(conn: Connection) -> Iterator[str]:
    """Books with a head or with events (either alone is a break), each once, in order."""
    heads = (key for key, _seq, _hash in repo.heads(conn))
    last = None
    for key in heapq.merge(heads, repo.books_with_events(conn)):
        if key != last:
            yield key
            last = key


def _multi(pairs: Sequence[tuple[str, str]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for k, v in pairs:
        out.setdefault(k, []).append(v)
    return out
