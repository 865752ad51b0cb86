"""Form checks for Reference.reference: relative, absolute, local, urn:uuid/urn:oid and conditional."""

from __future__ import annotations

import re

from healthbook.fhir.validation.primitives import show

_ID = r"[A-Za-z0-9\-.]{1,64}"
_RELATIVE = re.compile(rf"([A-Za-z]{{1,64}})/{_ID}(?:/_history/{_ID})?", re.ASCII)
_CONDITIONAL = re.compile(r"([A-Za-z]{1,64})\?\S*", re.ASCII)
_ABSOLUTE = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://\S+", re.ASCII)
_LOCAL = re.compile(rf"#(?:{_ID})?", re.ASCII)
_HEX = "[0-9a-fA-F]"
_UUID = re.compile(rf"urn:uuid:{_HEX}{{8}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{12}}", re.ASCII)
_OID = re.compile(r"urn:oid:[0-2](?:\.(?:0|[1-9][0-9]*))+", re.ASCII)


def reference_problem(
    ref: str, resource_types: frozenset[str], targets: frozenset[str] | None, conditional: bool
) -> str | None:
    """Return what is wrong with a reference string (completing "Element x ..."), or None when it is fine.

    Relative references must name a known resource type, one of targets when the element restricts them;
    conditional references (Type?query) are accepted only where the caller allows them (transactions).
    """
    first = ref[:1]
    if first == "#":
        return None if _LOCAL.fullmatch(ref) else f"has malformed local reference {show(ref)}"
    if ref.startswith("urn:"):
        if _UUID.fullmatch(ref) or _OID.fullmatch(ref):
            return None
        return f"has {show(ref)}, which is not a valid urn:uuid: or urn:oid: reference"
    m = _RELATIVE.fullmatch(ref)
    if m is None and conditional:
        m = _CONDITIONAL.fullmatch(ref)
    if m is None:
        if "://" in ref:
            return None if _ABSOLUTE.fullmatch(ref) else f"has malformed absolute reference {show(ref)}"
        return (
            f"has {show(ref)}, which is not a reference of the form Type/id, Type/id/_history/vid, "
            "an absolute URL, #id, urn:uuid: or urn:oid:"
        )
    rtype = m.group(1)
    if rtype not in resource_types:
        return f"refers to unknown resource type '{rtype}'"
    if targets is not None and rtype not in targets:
        return f"refers to {rtype}, but only {'|'.join(sorted(targets))} may be referenced here"
    return None
