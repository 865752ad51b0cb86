"""The XML130 import service: files -> episodes -> FHIR resources, written in chunks through the batch layer.

Per chunk of episodes: the shared resources they refer to (patients, facilities, staff) are looked up with
one search per kind, then one transaction maps, validates and writes every episode of the chunk. An
episode is validated completely before any of its resources is queued, so a rejected episode leaves
nothing behind; if the transaction itself fails (a concurrent writer took an id), the chunk is retried and
then written episode by episode. Re-importing an episode replaces its resources under the same ids (new
versions, history kept) and deletes those a corrected episode no longer has; an unchanged episode is
recognised by the content digest kept in its Provenance and skipped.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import IO, Any

import orjson
from sqlalchemy.exc import DataError, IntegrityError

from healthbook.auth.subject import Caller
from healthbook.config import Settings
from healthbook.errors import HealthbookError
from healthbook.fhir.compartment import patient_key
from healthbook.fhir.http import Prefer
from healthbook.fhir.search.service import SearchService
from healthbook.fhir.service import FhirService
from healthbook.fhir.timeutil import now_us, to_instant
from healthbook.fhir.upsert import Upsert, check, upserting
from healthbook.identity.identifiers import check_facility_code
from healthbook.imports.xml130 import codes as cs
from healthbook.imports.xml130 import patients
from healthbook.imports.xml130.episode import Episode, assemble
from healthbook.imports.xml130.ids import episode_id, shared_id
from healthbook.imports.xml130.issues import EpisodeReport, FileReport, Problem, error, warning
from healthbook.imports.xml130.mappers import Needs, map_episode, needs
from healthbook.imports.xml130.mappers.birth import child_resource
from healthbook.imports.xml130.mappers.common import Refs, Resource, when
from healthbook.imports.xml130.mappers.summary import patient_resource, person
from healthbook.imports.xml130.source import Limits, Submission, SubmissionRefused

SHARED_TYPES = frozenset({"Patient", "Organization", "Practitioner"})
LOOKUP_BATCH = 200  # identifiers per search
Key = tuple[str, str, str]  # (resource type, identifier system, value)
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
class SharedCache:
    """Ids of shared resources by identifier, for one import run; pending = created in the open chunk."""

    found: dict[Key, list[str]] = field(default_factory=dict)
    pending: dict[Key, str] = field(default_factory=dict)

    def ids(self, key: Key) -> list[str]:
        """Known ids for the identifier (pending creations included)."""
        if key in self.pending:
            return [self.pending[key]]
        return self.found.get(key, [])

    def commit(self) -> None:
        """The chunk was written: its creations are now found."""
        for key, rid in self.pending.items():
            self.found[key] = [rid]
        self.pending.clear()

    def rollback(self) -> None:
        """The chunk was not written: forget its creations."""
        self.pending.clear()


class Xml130Importer:
    """Imports GIAMDINHHS files; the CLI and POST /fhir/$import-xml130 both call import_source."""

    def __init__(self, fhir: FhirService, search: SearchService, settings: Settings):
        self.fhir = fhir
        self.search = search
        self.limits = Limits(settings.xml130_max_bytes, settings.xml130_max_table_bytes)
        self.chunk_size = settings.xml130_chunk_episodes
        self.cache = SharedCache()
        self._chunk: list[_Item] = []  # episodes read but not yet written (they may span files)
        self._in_chunk: set[tuple[str, str]] = set()

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
        self._flush(caller, chunk)

    # ---- chunks --------------------------------------------------------------------------------------

    def _flush(self, caller: Caller, chunk: list[_Item]) -> None:
        if not chunk:
            return
        for _attempt in range(2):
            try:
                self._write(caller, chunk)
                self.cache.commit()
                return
            except (IntegrityError, DataError, HealthbookError):
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
        self._prefetch(caller, [i.needs for i in chunk if i.needs is not None])
        with upserting(self.fhir, caller) as up:
            prov_keys = [
                ("Provenance", episode_id(i.episode.facility, i.episode.ma_lk, "Provenance")) for i in chunk
            ]
            previous = up.current(prov_keys)
            # A newborn's resources have a Provenance of their own (in the child's record), listed by the
            # episode's main one: read those too, so that a corrected episode can delete what it withdrew.
            nested = sorted({t for prov in previous.values() for t in _targets(prov) if t[0] == "Provenance"})
            below = up.current(nested) if nested else {}
            plans: list[tuple[_Item, list[dict[str, Any]], set[tuple[str, str]]]] = []
            for item, prov_key in zip(chunk, prov_keys, strict=True):
                prov = previous.get(prov_key)
                old: set[tuple[str, str]] = set()
                if prov is not None:
                    old = _targets(prov)
                    for t in sorted(old):
                        if t in below:
                            old |= _targets(below[t])
                plan = self._plan(item, prov, old)
                if plan is not None:
                    plans.append(plan)
            keys = [(b["resourceType"], b["id"]) for _, bodies, _ in plans for b in bodies]
            known = up.existing(keys)
            for item, bodies, old in plans:
                self._store(up, item, bodies, old, known)

    def _plan(
        self, item: _Item, previous: dict[str, Any] | None, old_targets: set[tuple[str, str]]
    ) -> tuple[_Item, list[dict[str, Any]], set[tuple[str, str]]] | None:
        """Map and check one episode; None when it is rejected or unchanged."""
        ep, er = item.episode, item.report
        assert item.needs is not None
        refs, created, problems = self._refs(ep, item.needs)
        er.problems.extend(problems)
        digest = _digest(ep, refs)
        if previous is not None and _previous_digest(previous) == digest:
            er.status = "unchanged"
            return None
        try:
            ctx = map_episode(ep, refs)
        except Exception as exc:  # a mapper bug must not cost the other episodes
            er.problems.append(error("exception", f"the episode could not be mapped ({type(exc).__name__})"))
            return None
        er.problems.extend(ctx.problems)
        resources = [r for _, r in created] + ctx.out
        resources.extend(_provenances(ep, refs, ctx.out, digest))
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
        return item, bodies, old_targets

    def _store(
        self,
        up: Upsert,
        item: _Item,
        bodies: list[dict[str, Any]],
        old: set[tuple[str, str]],
        known: set[Any],
    ) -> None:
        er = item.report
        changed = 0
        encounter_new = False
        for body in bodies:
            key = (body["resourceType"], body["id"])
            outcome = up.put(body, known=key in known)
            known.add(key)
            if outcome != "unchanged":
                changed += 1
            if key[0] == "Encounter" and outcome == "created":
                encounter_new = True
        new_targets = {(b["resourceType"], b["id"]) for b in bodies}
        for res_type, res_id in sorted(old - new_targets):
            if res_type not in SHARED_TYPES and up.delete(res_type, res_id):
                changed += 1
        er.resources = changed
        er.status = "created" if encounter_new else "updated" if changed else "unchanged"

    # ---- shared resources ----------------------------------------------------------------------------

    def _prefetch(self, caller: Caller, all_needs: list[Needs]) -> None:
        wanted: dict[str, set[tuple[str, str]]] = {
            "Patient": set(),
            "Organization": set(),
            "Practitioner": set(),
        }
        for n in all_needs:
            for who in (n.patient, *n.children.values()):
                wanted["Patient"].update(patients.lookup_keys(who))
            wanted["Organization"].update((cs.FACILITY, c) for c in n.facilities)
            wanted["Practitioner"].update((cs.CERTIFICATE, c) for c in n.staff)
        for res_type, keys in wanted.items():
            todo = sorted(k for k in keys if self._unknown((res_type, k[0], k[1])))
            for start in range(0, len(todo), LOOKUP_BATCH):
                batch = todo[start : start + LOOKUP_BATCH]
                found = self._find(caller, res_type, batch)
                for k in batch:
                    self.cache.found[(res_type, k[0], k[1])] = sorted(found.get(k, []))

    def _unknown(self, key: Key) -> bool:
        return key not in self.cache.found and key not in self.cache.pending

    def _find(
        self, caller: Caller, res_type: str, keys: list[tuple[str, str]]
    ) -> dict[tuple[str, str], list[str]]:
        """Current resources carrying any of these identifiers, through the search service."""
        wanted = set(keys)
        out: dict[tuple[str, str], list[str]] = {}
        value = ",".join(f"{_escape(s)}|{_escape(v)}" for s, v in keys)
        offset, count = 0, 1000
        while True:
            pairs = [
                ("identifier", value),
                ("_count", str(count)),
                ("_page_offset", str(offset)),
                ("_total", "none"),
            ]
            body = self.search.search_bundle(caller, res_type, pairs, base="", prefer=Prefer())
            entries = orjson.loads(body).get("entry", [])
            for entry in entries:
                res = entry.get("resource", {})
                for ident in res.get("identifier", []):
                    k = (ident.get("system"), ident.get("value"))
                    if k in wanted and res["id"] not in out.setdefault(k, []):
                        out[k].append(res["id"])
            if len(entries) < count:
                return out
            offset += count

    def _refs(self, ep: Episode, n: Needs) -> tuple[Refs, list[tuple[list[Key], Resource]], list[Problem]]:
        """Ids of the episode's patient, facilities, staff and newborns; the shared resources to create."""
        created: list[tuple[list[Key], Resource]] = []
        problems: list[Problem] = []
        organizations: dict[str, str] = {}
        for code in n.facilities:
            key: Key = ("Organization", cs.FACILITY, code)
            ids = self.cache.ids(key)
            if ids:
                organizations[code] = ids[0]
                continue
            refused = [p for p in check_facility_code(code) if p.severity == "error"]
            if refused:
                problems.append(warning("business-rule", f"{refused[0].text}; the facility is not linked",
                                        field="MA_CSKCB", value=code))  # fmt: skip
                continue
            oid = shared_id("Organization", cs.FACILITY, code)
            organizations[code] = oid
            created.append(([key], {
                "resourceType": "Organization", "id": oid, "active": True,
                "identifier": [{"system": cs.FACILITY, "value": code}],
                "name": f"Cơ sở khám bệnh, chữa bệnh {code}",
            }))  # fmt: skip
        practitioners: dict[str, str] = {}
        for code, name in n.staff.items():
            key = ("Practitioner", cs.CERTIFICATE, code)
            ids = self.cache.ids(key)
            if ids:
                practitioners[code] = ids[0]
                continue
            pid = shared_id("Practitioner", cs.CERTIFICATE, code)
            practitioners[code] = pid
            res: Resource = {"resourceType": "Practitioner", "id": pid, "active": True,
                             "identifier": [{"system": cs.CERTIFICATE, "value": code}]}  # fmt: skip
            if name:
                res["name"] = [{"text": name}]
            created.append(([key], res))

        def lookup(k: tuple[str, str]) -> list[str]:
            return self.cache.ids(("Patient", k[0], k[1]))

        match = patients.resolve(n.patient, lookup)
        if match.created:
            body = patient_resource(match.patient_id, ep, n.patient, organizations)
            keys = patients.lookup_keys(n.patient) or [("episode", n.patient.fallback)]
            created.append(([("Patient", k[0], k[1]) for k in keys], body))
        refs = Refs(match.patient_id, organizations, practitioners)
        for row_number, child in n.children.items():
            found = patients.resolve(child, lookup)
            refs.children[row_number] = found.patient_id
            if found.created:
                row = next(r for r in ep.table("XML9") if r.number == row_number)
                keys = patients.lookup_keys(child) or [("episode", child.fallback)]
                child_body = child_resource(found.patient_id, ep, row, child)
                if all(r["id"] != found.patient_id for _, r in created):
                    created.append(([("Patient", k[0], k[1]) for k in keys], child_body))
        return refs, created, problems


def _escape(value: str) -> str:
    """A token for a search value: the \\ , $ | characters escaped (search.html#escaping)."""
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("$", "\\$").replace("|", "\\|")


def _digest(ep: Episode, refs: Refs) -> str:
    h = hashlib.sha256(ep.digest.encode())
    h.update(orjson.dumps([refs.patient, sorted(refs.organizations.items()), sorted(refs.practitioners.items()),
                           sorted(refs.children.items())]))  # fmt: skip
    return h.hexdigest()


def _previous_digest(prov: dict[str, Any]) -> str | None:
    for entity in prov.get("entity", []):
        for ext in entity.get("extension", []):
            if ext.get("url") == cs.EXT_CONTENT_HASH:
                value = ext.get("valueString")
                return value if isinstance(value, str) else None
    return None


def _targets(prov: dict[str, Any]) -> set[tuple[str, str]]:
    out: set[tuple[str, str]] = set()
    for t in prov.get("target", []):
        ref = t.get("reference", "")
        res_type, _, res_id = ref.partition("/")
        if res_id:
            out.add((res_type, res_id))
    return out


def _provenances(ep: Episode, refs: Refs, resources: list[Resource], digest: str) -> list[Resource]:
    """Where the episode's resources came from; their target lists drive deletion on a corrected re-import.

    One Provenance in the patient's record lists the patient's resources (and holds the content digest); a
    newborn's resources (XML9) get one in the child's record, which the first lists: a Provenance pulls what
    it names into a record's $everything, and the child's birth weight is not the mother's.
    """
    children = set(refs.children.values())
    own: list[Resource] = []
    by_child: dict[str, list[Resource]] = {}
    for r in resources:
        key = patient_key(r)
        if key in children and key != refs.patient:
            by_child.setdefault(key, []).append(r)
        else:
            own.append(r)
    nested = [_provenance(ep, refs, child, found, None) for child, found in sorted(by_child.items())]
    main = _provenance(ep, refs, refs.patient, own + nested, digest)
    return [main, *nested]


def _provenance(
    ep: Episode, refs: Refs, patient: str, resources: list[Resource], digest: str | None
) -> Resource:
    s = ep.summary
    period = {"start": when(s.get("NGAY_VAO"))}
    if s.get("NGAY_RA"):
        period["end"] = when(s.get("NGAY_RA"))
    facility = refs.organizations.get(ep.facility)
    entity: dict[str, Any] = {
        "role": "source",
        "what": {"identifier": {"system": f"{cs.EPISODE}/{ep.facility}", "value": ep.ma_lk},
                 "display": f"Hồ sơ XML 130, cơ sở {ep.facility}, MA_LK {ep.ma_lk}"},
    }  # fmt: skip
    if digest is not None:
        entity["extension"] = [{"url": cs.EXT_CONTENT_HASH, "valueString": digest}]
    parts = ("Provenance",) if patient == refs.patient else ("Provenance", patient)
    return {
        "resourceType": "Provenance",
        "id": episode_id(ep.facility, ep.ma_lk, *parts),
        "target": [{"reference": f"Patient/{patient}"}]
        + [{"reference": f"{r['resourceType']}/{r['id']}"} for r in resources],
        "occurredPeriod": period,
        "recorded": to_instant(now_us()),
        "agent": [{
            "type": {"coding": [{"system": cs.PROVENANCE_ROLE, "code": "author"}]},
            "who": {"reference": f"Organization/{facility}"} if facility else {"display": ep.facility},
        }],
        "entity": [entity],
    }  # fmt: skip
