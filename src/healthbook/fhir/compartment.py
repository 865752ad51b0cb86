"""The patient compartment: which Patient a resource belongs to, i.e. its patient_key (shard key)."""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache
from typing import Any

from healthbook.fhir.definitions import load_json
from healthbook.fhir.fhirpath import CompiledPath, compile_path

# Resources outside every patient compartment share one pseudo key per type; '~' cannot occur in an id.
NO_PATIENT_PREFIX = "~"


def pseudo_key(res_type: str) -> str:
    """The patient_key of resources of this type that belong to no patient."""
    return NO_PATIENT_PREFIX + res_type


@cache
def _member_paths(res_type: str) -> tuple[CompiledPath, ...]:
    codes = compartment_params("Patient", res_type)
    exprs: dict[str, str] = {}
    for sp in load_json("searchparams.json"):
        if res_type in sp["base"] and sp["code"] in codes and sp.get("expression"):
            exprs[sp["code"]] = sp["expression"]
    return tuple(compile_path(exprs[c]) for c in codes if c in exprs)


def compartment_params(compartment: str, res_type: str) -> list[str]:
    """Search parameters that put a `res_type` resource into a compartment of type `compartment`."""
    definitions: dict[str, dict[str, list[str]]] = load_json("compartments.json")
    return definitions.get(compartment, {}).get(res_type, [])


@cache
def member_params(compartment: str, types: tuple[str, ...]) -> tuple[str, ...]:
    """Sorted parameters that put any of `types` into a compartment (computed once per request shape)."""
    return tuple(sorted({p for t in types for p in compartment_params(compartment, t)}))


def compartment_names() -> frozenset[str]:
    """Compartment types defined by R4 (Patient, Encounter, RelatedPerson, Practitioner, Device)."""
    definitions: dict[str, dict[str, list[str]]] = load_json("compartments.json")
    return frozenset(definitions)


def patient_ids(resource: dict[str, Any]) -> list[str]:
    """Ids of the local Patients whose compartment holds this resource, in definition order."""
    return list(dict.fromkeys(_patient_refs(resource)))


def _patient_refs(resource: dict[str, Any]) -> Iterator[str]:
    rtype = resource.get("resourceType")
    if not isinstance(rtype, str):
        return
    for path in _member_paths(rtype):
        for node in path.evaluate(resource):
            ref = node.value.get("reference") if isinstance(node.value, dict) else None
            if isinstance(ref, str) and ref.startswith("Patient/"):
                pid = ref[len("Patient/") :].split("/", 1)[0]
                if pid:
                    yield pid


def patient_key(resource: dict[str, Any]) -> str:
    """The shard key: the Patient's own id, the first Patient it belongs to, or the type's pseudo key."""
    rtype = str(resource.get("resourceType"))
    if rtype == "Patient":
        return str(resource["id"])
    return next(_patient_refs(resource), None) or pseudo_key(rtype)
