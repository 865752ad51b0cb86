"""The two PATCH formats of R4 (http.html#patch) as one callable: JSON Patch and FHIRPath Patch.

Both REST and bundle entries parse the patch before touching the database (a malformed patch is a 400)
and apply it to the current content inside the write transaction (a patch that does not fit it is a 422).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jsonpatch
import jsonpointer

from healthbook.errors import BadRequest, Unprocessable
from healthbook.fhir import fhirpath_patch

JSON_PATCH = "application/json-patch+json"
JSON_PATCH_OPS = ("add", "remove", "replace", "move", "copy", "test")

# Applies a parsed patch to a resource's current content and returns the patched content.
Patch = Callable[[dict[str, Any]], dict[str, Any]]


def parse(body: Any, media_type: str) -> Patch:
    """The patch in a body sent as `media_type`: JSON Patch, or FHIRPath Patch for FHIR JSON.

    An array sent as plain application/json can only be a JSON Patch, and is taken as one.
    """
    if media_type == JSON_PATCH or (media_type == "application/json" and isinstance(body, list)):
        return json_patch(body)
    return fhirpath(body)


def fhirpath(body: Any) -> Patch:
    """A FHIRPath Patch Parameters resource, checked now, applied later."""
    ops = fhirpath_patch.parse(body)
    return lambda resource: fhirpath_patch.apply(ops, resource)


def json_patch(body: Any) -> Patch:
    """A JSON Patch document (RFC 6902), checked now, applied later; id and resourceType stay."""
    if not isinstance(body, list):
        raise BadRequest(
            "A JSON Patch document must be a JSON array of operations "
            "(send a FHIRPath Patch Parameters resource as application/fhir+json)"
        )
    for n, op in enumerate(body):
        if not isinstance(op, dict) or op.get("op") not in JSON_PATCH_OPS:
            raise BadRequest(f"JSON Patch operation {n} is not a valid operation object", expression=f"[{n}]")
        path = op.get("path")
        if not isinstance(path, str):
            raise BadRequest(f"JSON Patch operation {n} has no path", expression=f"[{n}].path")
        for key in ("path", "from") if op["op"] == "move" else ("path",) if op["op"] != "test" else ():
            where = op.get(key)
            if isinstance(where, str) and where.split("/")[1:2] in (["id"], ["resourceType"]):
                raise Unprocessable(
                    f"JSON Patch operation {n} may not change {where}", expression=f"[{n}].{key}"
                )
    try:
        ops = jsonpatch.JsonPatch(body)
    except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as exc:
        raise BadRequest(f"Invalid JSON Patch: {exc}") from None

    def apply(resource: dict[str, Any]) -> dict[str, Any]:
        try:
            patched: dict[str, Any] = ops.apply(resource)
        except (
            jsonpatch.JsonPatchException,
            jsonpointer.JsonPointerException,
            LookupError,
            TypeError,
        ) as exc:
            raise Unprocessable(f"JSON Patch cannot be applied: {exc}") from None
        return patched

    return apply
