"""Shared resources of episodes — patients, facilities, staff — found by identifier or created once per run."""

from __future__ import annotations

from dataclasses import dataclass, field

import orjson

from healthbook.auth.subject import Caller
from healthbook.fhir.http import Prefer
from healthbook.fhir.search.service import SearchService
from healthbook.identity.identifiers import check_facility_code
from healthbook.identity.service import replaced_by
from healthbook.imports.xml130 import codes as cs
from healthbook.imports.xml130 import patients
from healthbook.imports.xml130.episode import Episode
from healthbook.imports.xml130.ids import shared_id
from healthbook.imports.xml130.issues import Problem, warning
from healthbook.imports.xml130.mappers import Needs
from healthbook.imports.xml130.mappers.birth import child_resource
from healthbook.imports.xml130.mappers.common import Refs, Resource
from healthbook.imports.xml130.mappers.summary import patient_resource

LOOKUP_BATCH = 200  # identifiers per search
Key = tuple[str, str, str]  # (resource type, identifier system, value)
Created = list[tuple[list[Key], Resource]]  # new shared resources, with every identifier they answer to


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


class SharedResolver:
    """Finds shared resources for chunks of episodes (one search per kind and chunk) and plans new ones."""

    def __init__(self, search: SearchService) -> None:
        self.search = search
        self.cache = SharedCache()

    def prefetch(self, caller: Caller, all_needs: list[Needs]) -> None:
        """Look up every identifier of these episodes that the run has not seen yet."""
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
                # A record merged into another one (identity $merge) stands for the one it was merged into.
                rid = replaced_by(res) or res["id"] if res_type == "Patient" else res["id"]
                for ident in res.get("identifier", []):
                    k = (ident.get("system"), ident.get("value"))
                    if k in wanted and rid not in out.setdefault(k, []):
                        out[k].append(rid)
            if len(entries) < count:
                return out
            offset += count

    def refs(self, ep: Episode, n: Needs) -> tuple[Refs, list[tuple[list[Key], Resource]], list[Problem]]:
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
