"""The XML130 import service: files -> episodes -> FHIR resources, written in chunks through the batch layer.

Per chunk of episodes: the shared resources they refer to (patients, facilities, staff) are looked up with
one search per kind, every episode is mapped and validated completely (a rejected episode leaves nothing
behind), the new shared resources are created in a short transaction of their own (their ids derive from
their identifiers, so parallel importers meeting the same patient write it once), then one transaction
writes every episode of the chunk. If that transaction fails (a concurrent writer took an id), the chunk is
retried and then written episode by episode. Re-importing an episode replaces its resources under the same
ids (new versions, history kept) and deletes those a corrected episode no longer has; an unchanged episode is
recognised by the content digest kept in its Provenance and skipped.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Set
from dataclasses import dataclass
from typing import IO, Any

from sqlalchemy.exc import DataError, IntegrityError, OperationalError

from healthbook.auth.subject import Caller
from healthbook.config import Settings
from healthbook.db.dialect import deadlocked
from healthbook.errors import HealthbookError
from healthbook.fhir import compartment
from healthbook.fhir.audit import book_accesses
from healthbook.fhir.search.service import SearchService
from healthbook.fhir.service import FhirService
from healthbook.fhir.upsert import Upsert, check, current, upserting
from healthbook.imports.xml130 import provenance as prov
from healthbook.imports.xml130.episode import Episode, assemble
from healthbook.imports.xml130.issues import EpisodeReport, FileReport, Problem, error, warning
from healthbook.imports.xml130.mappers import Needs, map_episode, needs
from healthbook.imports.xml130.mappers.summary import person
from healthbook.imports.xml130.shared import SharedResolver
from healthbook.imports.xml130.source import Limits, Submission, SubmissionRefused

SHARED_TYPES = frozenset({"Patient", "Organization", "Practitioner"})
Source = str | os.PathLike[str] | IO[bytes] | bytes
Progress = Callable[[FileReport, int, int], None]  # (report so far, HOSO done, HOSO in the file)


@dataclass
class _Item:
    """An episode of the current chunk and its report (base = problems found before writing)."""

    episode: Episode
    report: EpisodeReport
    base: int
    needs: Needs | None = None


@dataclass
class _Plan:
    """What one episode writes: its own resources, and the shared ones it is the first to need."""

    item: _Item
    bodies: list[dict[str, Any]]
    shared: list[dict[str, Any]]
    old: set[tuple[str, str]]  # what its previous submission wrote (a correction deletes what it withdrew)


class Xml130Importer:
    """Imports GIAMDINHHS files; the CLI and POST /fhir/$import-xml130 both call import_source."""

    def __init__(self, fhir: FhirService, search: SearchService, settings: Settings):
        self.fhir = fhir
        self.search = search
        self.limits = Limits(settings.xml130_max_bytes, settings.xml130_max_table_bytes)
        self.chunk_size = settings.xml130_chunk_episodes
        self.shared = SharedResolver(search)
        self.cache = self.shared.cache
        self._chunk: list[_Item] = []  # episodes read but not yet written (they may span files)
        self._in_chunk: set[tuple[str, str]] = set()
        self._submitter: Caller | None = None  # the authenticated facility whose writes the trail records

    # ---- files ---------------------------------------------------------------------------------------

    def import_source(
        self,
        caller: Caller,
        source: Source,
        name: str,
        *,
        on_progress: Progress | None = None,
        keep_open: bool = False,
    ) -> FileReport:
        """Import one submission; the report lists every episode's outcome and problems.

        keep_open leaves the last episodes in the open chunk, to be written with those of the next file
        (import_files); the report is complete once drain() has run.
        """
        self.fhir.policy.check(caller, "import", None)
        report = FileReport(name)
        try:
            sub = Submission(source, self.limits, name)
            header = sub.check()
        except SubmissionRefused as exc:
            report.refused = True
            report.problems.append(exc.problem())
            return report
        report.macskcb = header.macskcb
        if caller.authenticated and caller.facility != header.macskcb:
            report.refused = True
            report.problems.append(
                error(
                    "forbidden",
                    "a facility imports only its own submissions: MACSKCB is not the caller's facility code",
                    table="THONGTINDONVI",
                    field="MACSKCB",
                    value=header.macskcb,
                )
            )
            return report
        report.problems.extend(header.problems)
        first_seen: dict[tuple[str, str], int] = {}
        try:
            for hoso in sub.episodes():
                er = EpisodeReport(hoso.position, hoso.line)
                report.episodes.append(er)
                try:
                    episode, ma_lk, problems = assemble(hoso, header.macskcb)
                except Exception as exc:  # a reader bug must not cost the other episodes
                    er.problems.append(
                        error("exception", f"the episode could not be read ({type(exc).__name__})")
                    )
                    continue
                er.ma_lk = ma_lk
                er.problems.extend(problems)
                if episode is None:
                    continue
                key = (episode.facility, episode.ma_lk)
                if key in first_seen:
                    er.problems.append(
                        warning("duplicate", f"the same episode (MA_LK) was already in HOSO {first_seen[key]} of "
                                "this file; this later one replaces it", table="XML1", field="MA_LK",
                                value=episode.ma_lk)
                    )  # fmt: skip
                first_seen.setdefault(key, hoso.position)
                if key in self._in_chunk:
                    self.drain(caller)  # the earlier occurrence is written first; this one updates it
                self._chunk.append(_Item(episode, er, len(er.problems)))
                self._in_chunk.add(key)
                if len(self._chunk) >= self.chunk_size:
                    self.drain(caller)
                    if on_progress is not None:
                        on_progress(report, hoso.position, header.count)
        except SubmissionRefused as exc:  # cannot happen after check() passed, unless the file changed
            report.problems.append(exc.problem())
        if not keep_open:
            self.drain(caller)
        if on_progress is not None:
            on_progress(report, len(report.episodes), header.count)
        return report

    def import_files(
        self, caller: Caller, paths: Iterable[str | os.PathLike[str]], *, on_progress: Progress | None = None
    ) -> list[FileReport]:
        """Import several files in order; small files share chunks, and all share the lookups."""
        reports = [
            self.import_source(caller, p, os.path.basename(p), on_progress=on_progress, keep_open=True)
            for p in paths
        ]
        self.drain(caller)
        return reports

    def drain(self, caller: Caller) -> None:
        """Write the open chunk (its episodes' reports get their final status)."""
        chunk, self._chunk, self._in_chunk = self._chunk, [], set()
        # A facility's own file (checked per file above) is written whole: its Organizations,
        # Practitioners and episodes are the file's, attributed to its MACSKCB. The audit trail still
        # records the facility as the writer of every book the chunk touched.
        self._submitter = caller if caller.authenticated else None
        self._flush(Caller.system("xml130") if caller.authenticated else caller, chunk)

    # ---- chunks --------------------------------------------------------------------------------------

    def _flush(self, caller: Caller, chunk: list[_Item]) -> None:
        if not chunk:
            return
        for _attempt in range(2):
            try:
                self._write(caller, chunk)
                self.cache.commit()
                return
            except (IntegrityError, DataError, HealthbookError, OperationalError) as exc:
                if isinstance(exc, OperationalError) and not deadlocked(exc):
                    raise
                self.cache.rollback()
                self._reset(chunk)
        for item in chunk:  # one at a time, so that one unstorable episode does not block the others
            try:
                self._write(caller, [item])
                self.cache.commit()
            except (IntegrityError, DataError, HealthbookError) as exc:
                self.cache.rollback()
                self._reset([item])
                cause = exc.orig if isinstance(exc, IntegrityError | DataError) else exc
                item.report.problems.append(
                    error("conflict", f"the episode could not be stored ({type(cause).__name__}); retry it")
                )

    @staticmethod
    def _reset(items: list[_Item]) -> None:
        for item in items:
            del item.report.problems[item.base :]
            item.report.status = "rejected"
            item.report.resources = 0

    def _write(self, caller: Caller, chunk: list[_Item]) -> None:
        for item in chunk:
            who, problems = person(item.episode)
            item.needs = needs(item.episode, who)
            item.report.problems.extend(problems)
        self.shared.prefetch(caller, [i.needs for i in chunk if i.needs is not None])
        prov_keys = [("Provenance", prov.provenance_id(i.episode)) for i in chunk]
        previous = current(self.fhir, prov_keys)
        # A newborn's resources have a Provenance of their own (in the child's record), listed by the
        # episode's main one: read those too, so that a corrected episode can delete what it withdrew.
        nested = sorted({t for doc in previous.values() for t in prov.targets(doc) if t[0] == "Provenance"})
        below = current(self.fhir, nested) if nested else {}
        plans: list[_Plan] = []
        for item, prov_key in zip(chunk, prov_keys, strict=True):
            stored = previous.get(prov_key)
            old: set[tuple[str, str]] = set()
            if stored is not None:
                old = prov.targets(stored)
                for t in sorted(old):
                    if t in below:
                        old |= prov.targets(below[t])
            plan = self._plan(item, stored, old)
            if plan is not None:
                plans.append(plan)
        made, books = self._create_shared(caller, [b for p in plans for b in p.shared])
        self.cache.commit()
        with upserting(self.fhir, caller) as up:
            keys = [(b["resourceType"], b["id"]) for p in plans for b in p.bodies]
            known = up.existing(keys)
            for plan in plans:
                self._store(up, plan, known, made)
            self._record(up, (b for p in plans for b in p.bodies), recorded=books)

    def _create_shared(
        self, caller: Caller, bodies: list[dict[str, Any]]
    ) -> tuple[set[tuple[str, str]], set[str]]:
        """New patients, facilities and staff, committed before the episodes in a short transaction of their own.

        Their ids derive from their identifiers, so two importers (--jobs) that meet the same patient create
        the same record: the one that comes second finds it and writes nothing. Were they created inside the
        episodes' transaction, the second would wait for the first's whole chunk and then redo its own.
        Should the episodes' transaction then fail, these records stay (a patient known from a submission
        is true data); the retry finds them.
        """
        if not bodies:
            return set(), set()
        # In one order for every importer, so that two of them never wait for each other's locks in a cycle.
        bodies = sorted(bodies, key=lambda b: (b["resourceType"], b["id"]))
        keys = [(b["resourceType"], b["id"]) for b in bodies]
        for attempt in range(3):
            try:
                with upserting(self.fhir, caller) as up:
                    known = up.existing(keys)
                    live = up.live([k for k in keys if k in known])
                    # A deleted record under the same id (the search did not find it) is brought back.
                    new = [(b, k) for b, k in zip(bodies, keys, strict=True) if k not in live]
                    for body, key in new:
                        up.put(body, known=key in known)
                    books = self._record(up, [b for b, _ in new])
                return {k for _, k in new}, books
            except (IntegrityError, HealthbookError, OperationalError) as exc:
                retryable = not isinstance(exc, OperationalError) or deadlocked(exc)
                if attempt == 2 or not retryable:  # the chunk's retry handles the rest
                    raise
        raise AssertionError("unreachable")

    def _record(
        self, up: Upsert, bodies: Iterable[dict[str, Any]], *, recorded: Set[str] = frozenset()
    ) -> set[str]:
        """The audit trail names the submitting facility as the writer of every book these bodies touch.

        recorded: books already recorded for this chunk (by its shared resources' transaction).
        """
        if self._submitter is None:
            return set()
        books = {k for b in bodies if (k := compartment.patient_key(b)) and k not in recorded}
        accesses = book_accesses(books, "$import-xml130", None)
        self.fhir.audit.record(self._submitter, accesses, up.conn)
        return {a.patient_key for a in accesses}

    def _plan(
        self, item: _Item, previous: dict[str, Any] | None, old_targets: set[tuple[str, str]]
    ) -> _Plan | None:
        """Map and check one episode; None when it is rejected or unchanged."""
        ep, er = item.episode, item.report
        assert item.needs is not None
        refs, created, problems = self.shared.refs(ep, item.needs)
        er.problems.extend(problems)
        digest = prov.digest(ep, refs)
        if previous is not None and prov.previous_digest(previous) == digest:
            er.status = "unchanged"
            return None
        try:
            ctx = map_episode(ep, refs)
        except Exception as exc:  # a mapper bug must not cost the other episodes
            er.problems.append(error("exception", f"the episode could not be mapped ({type(exc).__name__})"))
            return None
        er.problems.extend(ctx.problems)
        resources = [r for _, r in created] + ctx.out
        resources.extend(prov.provenances(ep, refs, ctx.out, digest))
        bodies: list[dict[str, Any]] = []
        invalid: list[Problem] = []
        for res in resources:
            try:
                body, _warnings = check(self.fhir, res)
            except HealthbookError as exc:
                for issue in exc.issues[:5]:
                    if issue.severity in ("error", "fatal"):
                        invalid.append(error(issue.code, f"the {res['resourceType']} made from it is refused: "
                                             f"{issue.diagnostics}"))  # fmt: skip
                continue
            bodies.append(body)
        if invalid:
            er.problems.extend(invalid)
            return None
        for keys, res in created:
            for key in keys:
                self.cache.pending[key] = res["id"]
        new = {res["id"] for _, res in created}
        shared = [b for b in bodies if b["id"] in new and b["resourceType"] in SHARED_TYPES]
        own = [b for b in bodies if not (b["id"] in new and b["resourceType"] in SHARED_TYPES)]
        return _Plan(item, own, shared, old_targets)

    def _store(self, up: Upsert, plan: _Plan, known: set[Any], made: set[tuple[str, str]]) -> None:
        er = plan.item.report
        changed = sum(1 for b in plan.shared if (b["resourceType"], b["id"]) in made)
        encounter_new = False
        for body in plan.bodies:
            key = (body["resourceType"], body["id"])
            outcome = up.put(body, known=key in known)
            known.add(key)
            if outcome != "unchanged":
                changed += 1
            if key[0] == "Encounter" and outcome == "created":
                encounter_new = True
        new_targets = {(b["resourceType"], b["id"]) for b in (*plan.bodies, *plan.shared)}
        for res_type, res_id in sorted(plan.old - new_targets):
            if res_type not in SHARED_TYPES and up.delete(res_type, res_id):
                changed += 1
        er.resources = changed
        er.status = "created" if encounter_new else "updated" if changed else "unchanged"
