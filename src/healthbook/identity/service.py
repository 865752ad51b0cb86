"""One health book per citizen: the number register, matching on every write, $match, $merge and undo."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection

from healthbook.auth.subject import AccessPolicy, Caller
from healthbook.db.dialect import lock_key
from healthbook.errors import BadRequest, Conflict, NotFound
from healthbook.fhir import jsonio
from healthbook.fhir.hashing import hash63
from healthbook.fhir.outcomes import Issue, operation_outcome
from healthbook.fhir.service import FhirService
from healthbook.fhir.store import sql_repository as store
from healthbook.fhir.timeutil import now_us
from healthbook.identity import repository as repo
from healthbook.identity import systems
from healthbook.identity.matching import POSSIBLE, PROBABLE, grade, person_of, score
from healthbook.identity.profiles import check_resource

MATCH_DEFAULT_COUNT = 10
MATCH_MAX_COUNT = 100

# Merges rewrite records on behalf of the operator whose right to merge was checked at the entry point.
_INTERNAL = Caller.system("identity-merge")


def current_numbers(doc: dict[str, Any]) -> list[str]:
    """Personal identification numbers a Patient carries as in use (not `old`, no end date)."""
    return [
        i["value"]
        for i in _list(doc.get("identifier"))
        if isinstance(i, dict)
        and i.get("system") == systems.CCCD
        and isinstance(i.get("value"), str)
        and i.get("use") != "old"
        and not (isinstance(i.get("period"), dict) and i["period"].get("end"))
    ]


def old_numbers(doc: dict[str, Any]) -> list[str]:
    """Numbers the record itself lists as cancelled (use old or an end date)."""
    now = set(current_numbers(doc))
    return [
        i["value"]
        for i in _list(doc.get("identifier"))
        if isinstance(i, dict)
        and i.get("system") == systems.CCCD
        and isinstance(i.get("value"), str)
        and i["value"] not in now
    ]


def replaced_by(doc: dict[str, Any]) -> str | None:
    """The id of the Patient a merged-away record points to."""
    for link in _list(doc.get("link")):
        if isinstance(link, dict) and link.get("type") == "replaced-by":
            ref = (link.get("other") or {}).get("reference")
            if isinstance(ref, str) and ref.startswith("Patient/"):
                return ref.removeprefix("Patient/")
    return None


@dataclass(frozen=True)
class Match:
    """One candidate of $match."""

    res_id: str
    content: str
    score: float
    grade: str


class IdentityService:
    """Keeps the register and the matching index in step with Patient writes and answers the operations."""

    def __init__(self, fhir: FhirService, policy: AccessPolicy):
        self.fhir = fhir
        self.policy = policy

    def install(self) -> None:
        """Hook into every write of the FHIR service (API, transactions, bulk import, importers)."""
        self.fhir.body_checks.append(check_resource)
        self.fhir.body_checks.append(_one_current_number)
        self.fhir.pre_write_hooks.append(self.pre_write)
        self.fhir.write_hooks.append(self.on_write)

    # ---- hooks -------------------------------------------------------------------------------

    def pre_write(self, conn: Connection, doc: dict[str, Any], res_id: str) -> None:
        """Refuse a Patient whose personal identification number belongs to another health book."""
        if doc.get("resourceType") != "Patient":
            return
        numbers = current_numbers(doc)
        for n, ident in enumerate(_list(doc.get("identifier"))):
            value = ident.get("value") if isinstance(ident, dict) else None
            if value not in numbers or ident.get("system") != systems.CCCD:
                continue
            # Two facilities registering one citizen at the same moment: the second waits, then sees the first.
            lock_key(conn, hash63("identity-number", value))
            row = repo.number(conn, systems.CCCD, value)
            if row is None or row.res_id == res_id:
                continue
            owner = store.current(conn, row.patient_key, "Patient", row.res_id)
            if owner is None or owner.deleted:
                continue  # the book that held it was deleted: the person may be registered again
            state_vi = "đã bị hủy và không cấp lại cho người khác" if row.status != "current" else "đang dùng"
            state_en = "was cancelled and is never re-issued" if row.status != "current" else "is in use"
            raise Conflict(
                f"Số định danh cá nhân {value} {state_vi} cho sổ sức khỏe Patient/{row.res_id}; mỗi công dân "
                f"chỉ có một sổ: hãy cập nhật sổ đó (PUT) hoặc tạo có điều kiện (If-None-Exist: "
                f"identifier={systems.CCCD}|{value}) / Personal ID number {value} {state_en} for the health "
                f"book Patient/{row.res_id}; one book per citizen: update that record or use a conditional create",
                expression=f"Patient.identifier[{n}].value",
            )

    def on_write(
        self, conn: Connection, stored: store.StoredVersion, doc: dict[str, Any] | None, old_key: str | None
    ) -> None:
        """Register numbers, refresh the matching row and flag likely duplicates of a written Patient."""
        if stored.res_type != "Patient":
            return
        key, pid, ts = stored.patient_key, stored.res_id, stored.last_updated
        if doc is None:
            repo.drop_person(conn, key, pid)
            repo.clear_duplicates(conn, key, pid)
            for row in repo.numbers_of(conn, key, pid):
                repo.cancel_number(conn, row.system, row.value, ts, "record deleted")
            return
        numbers = current_numbers(doc)
        first = stored.version_id == 1  # a new book: nothing registered or flagged for it yet
        for value in numbers:
            if first:
                repo.restore_number(
                    conn, repo.NumberRow(systems.CCCD, value, key, pid, "current", ts, None, None)
                )
            else:
                repo.register_number(conn, systems.CCCD, value, key, pid, ts)
        for value in old_numbers(doc):
            if repo.number(conn, systems.CCCD, value) is None:
                repo.register_number(conn, systems.CCCD, value, key, pid, ts)
                repo.cancel_number(conn, systems.CCCD, value, ts, "listed as old")
        if not first:
            for row in repo.numbers_of(conn, key, pid):
                if row.status == "current" and row.value not in numbers:
                    repo.cancel_number(conn, row.system, row.value, ts, "no longer on the record")
        person = person_of(doc)
        active = doc.get("active") is not False and replaced_by(doc) is None
        repo.save_person(conn, key, pid, person, active)
        if not first:
            repo.clear_duplicates(conn, key, pid)
        if not active:
            return
        for other_key, other_id, other in repo.candidates(conn, person, exclude=pid):
            similarity = score(person, other)
            if similarity >= PROBABLE:
                repo.flag_duplicate(conn, (key, pid), (other_key, other_id), similarity, ts)

    # ---- $match ------------------------------------------------------------------------------

    def match(self, caller: Caller, params: Any) -> dict[str, Any]:
        """Patient/$match: candidates for a Patient, best first, graded certain/probable/possible."""
        self.policy.check(caller, "identity", "Patient")
        doc, only_certain, count = _match_params(params)
        person = person_of(doc)
        found: dict[str, Match] = {}
        with self.fhir.db.read() as conn:
            for value in current_numbers(doc) + old_numbers(doc):
                row = repo.number(conn, systems.CCCD, value)
                if row is not None:
                    cur = store.current(conn, row.patient_key, "Patient", row.res_id)
                    if cur is not None and not cur.deleted and cur.content:
                        found[row.res_id] = Match(row.res_id, cur.content, 1.0, "certain")
            if not only_certain:
                for other_key, other_id, other in repo.candidates(conn, person, exclude=None):
                    similarity = score(person, other)
                    if other_id in found or similarity < POSSIBLE:
                        continue
                    cur = store.current(conn, other_key, "Patient", other_id)
                    if cur is not None and not cur.deleted and cur.content:
                        found[other_id] = Match(other_id, cur.content, similarity, grade(similarity))
        ranked = sorted(found.values(), key=lambda m: (-m.score, m.res_id))[:count]
        return {
            "resourceType": "Bundle",
            "type": "searchset",
            "total": len(ranked),
            "entry": [
                {
                    "fullUrl": f"Patient/{m.res_id}",
                    "resource": jsonio.loads(m.content),
                    "search": {
                        "mode": "match",
                        "score": m.score,
                        "extension": [
                            {
                                "url": "http://hl7.org/fhir/StructureDefinition/match-grade",
                                "valueCode": m.grade,
                            }
                        ],
                    },
                }
                for m in ranked
            ],
        }

    def match_number(self, value: str) -> str | None:
        """The Patient id a personal identification number (current, cancelled or merged) resolves to."""
        with self.fhir.db.read() as conn:
            row = repo.number(conn, systems.CCCD, value)
            if row is None:
                return None
            cur = store.current(conn, row.patient_key, "Patient", row.res_id)
            if cur is None or cur.deleted:
                return None
            return row.res_id

    def duplicates(self, caller: Caller, res_id: str | None = None) -> list[repo.DuplicateRow]:
        """Open likely-duplicate flags (all, or those of one Patient)."""
        self.policy.check(caller, "identity", "Patient")
        with self.fhir.db.read() as conn:
            return repo.duplicates(conn, res_id=res_id)

    def not_duplicate(self, caller: Caller, a: str, b: str) -> None:
        """A person ruled two flagged records to be different citizens: the flag closes for good."""
        self.policy.check(caller, "identity", "Patient")
        with self.fhir.db.write() as conn:
            repo.set_duplicate_status(conn, a, b, "distinct")

    # ---- $merge and its undo -----------------------------------------------------------------

    def merge(
        self, caller: Caller, source_id: str, target_id: str, *, preview: bool = False
    ) -> dict[str, Any]:
        """Move every compartment resource of `source` to `target`; source becomes replaced-by target."""
        self.policy.check(caller, "identity", "Patient")
        if source_id == target_id:
            raise BadRequest(
                "Source and target are the same Patient / Hai hồ sơ là một", expression="source-patient"
            )
        with self.fhir.db.write() as conn:
            source = self._patient(conn, source_id, "source-patient")
            target = self._patient(conn, target_id, "target-patient")
            for doc, name in ((source, "source-patient"), (target, "target-patient")):
                if replaced_by(doc) is not None:
                    raise Conflict(
                        f"Patient/{doc['id']} đã được gộp vào hồ sơ khác / has already been merged into another "
                        "record",
                        expression=name,
                    )
            moved = self._compartment(conn, source_id)
            if preview:
                return _merge_result(target, len(moved), None, preview=True)
            ts = now_us()
            numbers = [row.__dict__ for row in repo.numbers_of(conn, source_id, source_id)]
            status = "merged" if current_numbers(target) else "current"
            repo.reassign_numbers(conn, (source_id, source_id), (target_id, target_id), status, ts, "merged")
            for rtype, rid in moved:
                self._repoint(conn, rtype, rid, source_id, target_id)
            added = _absorb(target, source, keep_number=status == "current")
            new_target = self._write(conn, target)
            self._write(conn, _retire(source, target_id))
            repo.set_duplicate_status(conn, source_id, target_id, "merged")
            merge_id = str(uuid.uuid4())
            record = {"resources": moved, "numbers": numbers, "source": _bare(source), "added": added}
            repo.save_merge(conn, (target_id, target_id), merge_id, source_id, record, ts)
        return _merge_result(new_target, len(moved), merge_id)

    def unmerge(self, caller: Caller, merge_id: str) -> dict[str, Any]:
        """Undo a merge: the moved resources go back, both Patients are as before, numbers too."""
        self.policy.check(caller, "identity", "Patient")
        with self.fhir.db.write() as conn:
            row = repo.merge(conn, merge_id)
            if row is None:
                raise NotFound(f"No merge {merge_id[:64]} / Không có lần gộp này")
            if row.undone is not None:
                raise Conflict("This merge was already undone / Lần gộp này đã được hoàn tác")
            source_id, target_id = row.source_id, row.patient_key
            ts = now_us()
            for n in row.record["numbers"]:
                repo.restore_number(conn, repo.NumberRow(**n))
            target = self._patient(conn, target_id, "target-patient")
            added = row.record["added"]
            target["identifier"] = [
                i for i in _list(target.get("identifier")) if i not in added["identifier"]
            ]
            target["link"] = [link for link in _list(target.get("link")) if link not in added["link"]]
            for key in ("identifier", "link"):
                if not target[key]:
                    del target[key]
            for rtype, rid in row.record["resources"]:
                self._repoint(conn, rtype, rid, target_id, source_id)
            self._write(conn, target)
            self._write(conn, dict(row.record["source"]))
            repo.set_duplicate_status(conn, source_id, target_id, "distinct")
            repo.mark_undone(conn, row, ts)
        return {
            "resourceType": "Parameters",
            "parameter": [
                {
                    "name": "outcome",
                    "resource": operation_outcome(
                        [Issue("information", "informational", f"Merge {merge_id} undone / Đã hoàn tác")]
                    ),
                }
            ],
        }

    def _patient(self, conn: Connection, pid: str, name: str) -> dict[str, Any]:
        cur = store.current(conn, pid, "Patient", pid, for_update=True)
        if cur is None or cur.deleted or cur.content is None:
            raise NotFound(f"Patient/{pid[:64]} is not known / Không có hồ sơ này", expression=name)
        doc: dict[str, Any] = jsonio.loads(cur.content)
        return doc

    def _compartment(self, conn: Connection, pid: str) -> list[tuple[str, str]]:
        keys = set(store.keys_of_patient(conn, pid))
        keys.update((t, i) for _k, t, i in store.referencing(conn, "Patient", pid))
        keys.discard(("Patient", pid))
        return sorted(keys)

    def _repoint(self, conn: Connection, rtype: str, rid: str, old: str, new: str) -> None:
        key = store.locate(conn, rtype, rid)
        cur = store.current(conn, key, rtype, rid, for_update=True) if key else None
        if cur is None or cur.deleted or cur.content is None:
            return
        doc = _rewrite(jsonio.loads(cur.content), f"Patient/{old}", f"Patient/{new}")
        self._write(conn, doc)

    def _write(self, conn: Connection, doc: dict[str, Any]) -> dict[str, Any]:
        body, _ = self.fhir._checked_body(doc["resourceType"], _bare(doc), doc["id"])
        result = self.fhir._put(conn, _INTERNAL, body, doc["id"], None, "PUT")
        out: dict[str, Any] = jsonio.loads(result.stored.content or "{}")
        return out


def _one_current_number(doc: dict[str, Any]) -> list[Issue]:
    """A citizen has one personal identification number at a time; older ones are marked `old`."""
    if doc.get("resourceType") != "Patient" or len(set(current_numbers(doc))) <= 1:
        return []
    return [
        Issue(
            "error",
            "business-rule",
            "Một người chỉ có một số định danh cá nhân đang dùng; đánh dấu số cũ là use=old / A person has one "
            "personal ID number in use at a time; mark the earlier one use=old",
            "Patient.identifier",
        )
    ]


def _match_params(params: Any) -> tuple[dict[str, Any], bool, int]:
    if not isinstance(params, dict) or params.get("resourceType") != "Parameters":
        raise BadRequest("The body of $match must be a Parameters resource", expression="Parameters")
    doc: dict[str, Any] | None = None
    only_certain, count = False, MATCH_DEFAULT_COUNT
    for n, p in enumerate(_list(params.get("parameter"))):
        if not isinstance(p, dict):
            continue
        name = p.get("name")
        if name == "resource":
            doc = p.get("resource") if isinstance(p.get("resource"), dict) else None
        elif name == "onlyCertainMatches":
            only_certain = p.get("valueBoolean") is True
        elif name == "count":
            raw = p.get("valueInteger")
            if not isinstance(raw, int) or isinstance(raw, bool) or raw < 1:
                raise BadRequest("count must be a positive integer", expression=f"Parameters.parameter[{n}]")
            count = min(raw, MATCH_MAX_COUNT)
    if doc is None or doc.get("resourceType") != "Patient":
        raise BadRequest(
            "$match needs a parameter 'resource' holding a Patient", expression="Parameters.parameter"
        )
    return doc, only_certain, count


def _merge_result(
    target: dict[str, Any], moved: int, merge_id: str | None, *, preview: bool = False
) -> dict[str, Any]:
    what = "would move" if preview else "moved"
    vi = "sẽ chuyển" if preview else "đã chuyển"
    parts: list[dict[str, Any]] = [
        {
            "name": "outcome",
            "resource": operation_outcome(
                [Issue("information", "informational", f"{vi} {moved} tài nguyên / {what} {moved} resources")]
            ),
        },
        {"name": "result", "resource": target},
    ]
    if merge_id is not None:
        parts.append({"name": "merge-id", "valueString": merge_id})
    return {"resourceType": "Parameters", "parameter": parts}


def _absorb(target: dict[str, Any], source: dict[str, Any], *, keep_number: bool) -> dict[str, list[Any]]:
    """Give the survivor the source's identifiers (as old, except a number it lacked) and a link."""
    have = {(i.get("system"), i.get("value")) for i in _list(target.get("identifier")) if isinstance(i, dict)}
    added: dict[str, list[Any]] = {"identifier": [], "link": []}
    for ident in _list(source.get("identifier")):
        if not isinstance(ident, dict) or (ident.get("system"), ident.get("value")) in have:
            continue
        copy = dict(ident)
        if not (keep_number and ident.get("system") == systems.CCCD and ident.get("use") != "old"):
            copy["use"] = "old"
        added["identifier"].append(copy)
    link = {"other": {"reference": f"Patient/{source['id']}"}, "type": "replaces"}
    added["link"].append(link)
    target["identifier"] = [*_list(target.get("identifier")), *added["identifier"]]
    target["link"] = [*_list(target.get("link")), link]
    if not target["identifier"]:
        del target["identifier"]
    return added


def _retire(source: dict[str, Any], target_id: str) -> dict[str, Any]:
    """The merged-away record: inactive, pointing to the survivor, its numbers marked old."""
    doc = dict(source)
    doc["active"] = False
    doc["link"] = [
        *_list(source.get("link")),
        {"other": {"reference": f"Patient/{target_id}"}, "type": "replaced-by"},
    ]
    if "identifier" in doc:
        doc["identifier"] = [{**i, "use": "old"} if isinstance(i, dict) else i for i in doc["identifier"]]
    return doc


def _rewrite(value: Any, old: str, new: str) -> Any:
    """Every reference to `old` (relative, absolute or versioned) made to point to `new`."""
    if isinstance(value, list):
        return [_rewrite(v, old, new) for v in value]
    if not isinstance(value, dict):
        return value
    out = {k: _rewrite(v, old, new) for k, v in value.items()}
    ref = out.get("reference")
    if isinstance(ref, str):
        base = ref.split("/_history/")[0]
        if base == old or base.endswith("/" + old):
            out["reference"] = base[: len(base) - len(old)] + new
    return out


def _bare(doc: dict[str, Any]) -> dict[str, Any]:
    """The resource without server-managed meta (versionId, lastUpdated), ready to be written again."""
    out = dict(doc)
    meta = {k: v for k, v in (out.get("meta") or {}).items() if k not in ("versionId", "lastUpdated")}
    if meta:
        out["meta"] = meta
    else:
        out.pop("meta", None)
    return out


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []
