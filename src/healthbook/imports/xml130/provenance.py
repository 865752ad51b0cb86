"""Provenance of an episode: where its resources came from, the content digest, what to delete on a correction."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from healthbook.fhir.compartment import patient_key
from healthbook.fhir.timeutil import now_us, to_instant
from healthbook.imports.xml130 import codes as cs
from healthbook.imports.xml130.episode import Episode
from healthbook.imports.xml130.ids import episode_id
from healthbook.imports.xml130.mappers.common import Refs, Resource, when


def provenance_id(ep: Episode) -> str:
    """The id of an episode's main Provenance."""
    return episode_id(ep.facility, ep.ma_lk, "Provenance")


def digest(ep: Episode, refs: Refs) -> str:
    """The episode's content digest, with the shared resources it was linked to (a new link is a change)."""
    h = hashlib.sha256(ep.digest.encode())
    h.update(orjson.dumps([refs.patient, sorted(refs.organizations.items()), sorted(refs.practitioners.items()),
                           sorted(refs.children.items())]))  # fmt: skip
    return h.hexdigest()


def previous_digest(prov: dict[str, Any]) -> str | None:
    """The digest a stored Provenance recorded."""
    for entity in prov.get("entity", []):
        for ext in entity.get("extension", []):
            if ext.get("url") == cs.EXT_CONTENT_HASH:
                value = ext.get("valueString")
                return value if isinstance(value, str) else None
    return None


def targets(prov: dict[str, Any]) -> set[tuple[str, str]]:
    """(type, id) of what a stored Provenance lists."""
    out: set[tuple[str, str]] = set()
    for t in prov.get("target", []):
        ref = t.get("reference", "")
        res_type, _, res_id = ref.partition("/")
        if res_id:
            out.add((res_type, res_id))
    return out


def provenances(ep: Episode, refs: Refs, resources: list[Resource], digest: str) -> list[Resource]:
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
