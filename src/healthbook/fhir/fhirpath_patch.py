"""FHIRPath Patch (R4 fhirpatch.html): a Parameters resource of add, insert, delete, replace and move.

Paths are evaluated by fhirpathpy on the resource being patched; each selected node carries its location
(`Patient.name[0].given[1]`), which is walked together with the R4 element tables to find the JSON
property, its list position, its choice type and its primitive `_name` companion (kept aligned). Values
are a `value[x]` or, for anonymous and complex types, nested parts that are assembled with the element
tables. The caller validates the patched resource: a value of the wrong type fails there.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import fhirpathpy
from fhirpathpy.engine.nodes import ResourceNode

from healthbook.errors import BadRequest, Unprocessable
from healthbook.fhir.fhirpath_general import MODEL as FHIRPATH_MODEL
from healthbook.fhir.fhirpath_general import FHIRPathSyntaxError, check_syntax, no_trace
from healthbook.fhir.validation.model import (
    K_COMPLEX,
    K_PRIMITIVE,
    K_RESOURCE,
    K_UNDERSCORE,
    Element,
    Table,
    load_model,
)

KINDS = ("add", "insert", "delete", "replace", "move")
NEEDS = {
    "add": ("path", "name", "value"),
    "insert": ("path", "value", "index"),
    "delete": ("path",),
    "replace": ("path", "value"),
    "move": ("path", "source", "destination"),
}
PART_NAMES = frozenset(("type", "path", "name", "value", "index", "source", "destination"))
MAX_OPERATIONS = 100
MAX_PATH = 2000
_SEGMENT = re.compile(r"^([A-Za-z][A-Za-z0-9]*)(?:\[(\d+)\])?$")
_LAST_MEMBER = re.compile(r"^(.+)\.\s*([A-Za-z][A-Za-z0-9]*)\s*$", re.DOTALL)
_PROTECTED = frozenset(("id", "resourceType"))
# Element names that are FHIRPath operators (Narrative.div): after a dot they can only be a member.
_KEYWORD_MEMBER = re.compile(r"\.(\s*)(div|mod)\b(?!\s*\()")
_LITERAL = re.compile(r"'(?:[^'\\]|\\.)*'|`(?:[^`\\]|\\.)*`")


@dataclass(frozen=True)
class Typed:
    """A `value[x]` (or `resource`) of a part: the JSON value, its type suffix and its `_` companion."""

    suffix: str  # "HumanName", "String"; "" for a resource
    json: Any
    ext: Any = None


@dataclass(frozen=True)
class Parts:
    """A value given as named parts, to assemble into a complex or backbone element."""

    items: tuple[tuple[str, Typed | Parts, str], ...]  # (element name, value, location in the Parameters)


@dataclass(frozen=True)
class Operation:
    """One parsed `operation` parameter."""

    kind: str
    path: str
    where: str  # "Parameters.parameter[2]", for error locations
    name: str | None = None
    value: Typed | Parts | None = None
    index: int | None = None
    source: int | None = None
    destination: int | None = None


@dataclass
class Spot:
    """Where a selected element lives: the JSON object holding it, its property and list position."""

    parent: dict[str, Any] | None  # None for the resource itself
    owner: Table | None  # the element table of the parent
    key: str
    index: int | None
    element: Element | None
    value: Any
    table: Table | None  # the element table of the value, when it is complex or a resource


# ---- parsing the Parameters ----------------------------------------------------------------------


def parse(body: Any) -> list[Operation]:
    """The operations of a FHIRPath Patch Parameters resource; BadRequest naming the faulty part."""
    if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
        raise BadRequest(
            "A FHIRPath Patch is a Parameters resource (send JSON Patch as application/json-patch+json)"
        )
    params = body.get("parameter", [])
    if not isinstance(params, list):
        raise BadRequest("Parameters.parameter must be an array", expression="Parameters.parameter")
    if len(params) > MAX_OPERATIONS:
        raise BadRequest(f"A FHIRPath Patch may hold at most {MAX_OPERATIONS} operations")
    return [_operation(p, f"Parameters.parameter[{n}]") for n, p in enumerate(params)]


def _operation(param: Any, where: str) -> Operation:
    if not isinstance(param, dict) or param.get("name") != "operation":
        raise BadRequest("Each parameter of a FHIRPath Patch must be named 'operation'", expression=where)
    parts = param.get("part")
    if not isinstance(parts, list):
        raise BadRequest("The operation has no parts", expression=f"{where}.part")
    found: dict[str, tuple[dict[str, Any], str]] = {}
    for n, part in enumerate(parts):
        at = f"{where}.part[{n}]"
        name = part.get("name") if isinstance(part, dict) else None
        if name not in PART_NAMES:
            raise BadRequest(
                f"Unknown operation part {str(name)[:40]!r} (expected one of {', '.join(sorted(PART_NAMES))})",
                expression=at,
            )
        if name in found:
            raise BadRequest(f"The operation part '{name}' is given twice", expression=at)
        found[str(name)] = (part, at)
    kind = _primitive(found, "type", "valueCode", str, where)
    if kind not in KINDS:
        at = found["type"][1] if "type" in found else where
        raise BadRequest(f"The operation type must be one of {', '.join(KINDS)}", expression=at)
    for need in NEEDS[kind]:
        if need not in found:
            raise BadRequest(f"A '{kind}' operation needs a '{need}' part", expression=where)
    path = _primitive(found, "path", "valueString", str, where)
    assert isinstance(path, str)
    path_at = found["path"][1]
    if not path.strip() or len(path) > MAX_PATH:
        raise BadRequest(
            f"The path must be a FHIRPath expression of 1 to {MAX_PATH} characters", expression=path_at
        )
    path = _member_keywords(path)
    try:
        check_syntax(path)
    except FHIRPathSyntaxError as exc:
        raise BadRequest(f"The path is not valid FHIRPath: {exc}", expression=path_at) from None
    value = None
    if "value" in NEEDS[kind]:
        part, at = found["value"]
        value = _value(part, at)
    name = _primitive(found, "name", "valueString", str, where) if kind == "add" else None
    index, source, destination = (
        _primitive(found, key, "valueInteger", int, where) if key in NEEDS[kind] else None
        for key in ("index", "source", "destination")
    )
    return Operation(
        kind, path, where, name if isinstance(name, str) else None, value,
        index if isinstance(index, int) else None,
        source if isinstance(source, int) else None,
        destination if isinstance(destination, int) else None,
    )  # fmt: skip


def _member_keywords(path: str) -> str:
    """`Patient.text.div` as `Patient.text.`div``: the official patch cases name the narrative so."""
    out, last = [], 0
    for literal in _LITERAL.finditer(path):
        out.append(_KEYWORD_MEMBER.sub(r".\1`\2`", path[last : literal.start()]))
        out.append(literal.group())
        last = literal.end()
    out.append(_KEYWORD_MEMBER.sub(r".\1`\2`", path[last:]))
    return "".join(out)


def _primitive(
    found: dict[str, tuple[dict[str, Any], str]], name: str, key: str, kind: type, where: str
) -> Any:
    if name not in found:
        return None
    part, at = found[name]
    value = part.get(key)
    if not isinstance(value, kind) or isinstance(value, bool) or (isinstance(value, int) and value < 0):
        what = "a non-negative valueInteger" if kind is int else key
        raise BadRequest(f"The '{name}' part needs {what}", expression=f"{at}.{key}")
    if kind is str and not value:
        raise BadRequest(f"The '{name}' part is empty", expression=f"{at}.{key}")
    return value


def _value(part: dict[str, Any], at: str) -> Typed | Parts:
    """A part's value: one `value[x]`, a `resource`, or nested parts."""
    typed = [k for k in part if k.startswith("value") and len(k) > 5 and k[5].isupper()]
    has_parts = "part" in part
    if len(typed) + ("resource" in part) + has_parts != 1:
        raise BadRequest("A value part needs exactly one of value[x], resource or part", expression=at)
    if "resource" in part:
        if not isinstance(part["resource"], dict):
            raise BadRequest("The resource of a value part must be an object", expression=f"{at}.resource")
        return Typed("", part["resource"])
    if typed:
        key = typed[0]
        return Typed(key[5:], part[key], part.get("_" + key))
    items = part["part"]
    if not isinstance(items, list) or not items:
        raise BadRequest("The value parts must be a non-empty array", expression=f"{at}.part")
    out: list[tuple[str, Typed | Parts, str]] = []
    for n, sub in enumerate(items):
        sub_at = f"{at}.part[{n}]"
        name = sub.get("name") if isinstance(sub, dict) else None
        if not isinstance(name, str) or not name:
            raise BadRequest("Each value part needs a name: the element it fills", expression=sub_at)
        out.append((name, _value(sub, sub_at), sub_at))
    return Parts(tuple(out))


# ---- applying --------------------------------------------------------------------------------------


def apply(operations: list[Operation], resource: dict[str, Any]) -> dict[str, Any]:
    """Apply the operations in order to `resource` (changed in place, and returned)."""
    for op in operations:
        _APPLY[op.kind](op, resource)
    _prune(resource)
    return resource


def _prune(obj: dict[str, Any]) -> bool:
    """Drop the objects and lists a delete left empty (FHIR JSON has none); True if `obj` is empty.

    In a `_name` companion list an emptied item becomes null, to stay aligned with its values.
    """
    for key in list(obj):
        value = obj[key]
        if isinstance(value, dict) and _prune(value):
            del obj[key]
        elif isinstance(value, list):
            companion = key.startswith("_")
            kept = [
                None if companion and isinstance(item, dict) and _prune(item) else item
                for item in value
                if companion or not (isinstance(item, dict) and _prune(item))
            ]
            if not kept or (companion and all(item is None for item in kept)):
                del obj[key]
            else:
                value[:] = kept
    return not obj


def _fail(op: Operation, message: str) -> Unprocessable:
    return Unprocessable(f"{op.kind} '{op.path[:120]}': {message}", expression=op.where)


@lru_cache(maxsize=256)
def _compiled(path: str) -> Any:
    options = {"returnRawData": True, "traceFn": no_trace}
    return fhirpathpy.compile(path, model=FHIRPATH_MODEL, options=options)


def _select(op: Operation, resource: dict[str, Any], path: str | None = None) -> list[Spot]:
    """The distinct elements of the resource the path selects, located."""
    try:
        nodes = _compiled(path or op.path)(resource, None)
    except Exception as exc:  # any engine failure is the patch's fault
        raise _fail(op, f"the path cannot be evaluated ({type(exc).__name__})") from None
    spots: dict[str, Spot] = {}
    for node in nodes if isinstance(nodes, list) else [nodes]:
        if isinstance(node, ResourceNode) and node.data is resource:
            spots.setdefault("", _root(resource))
            continue
        where = node.propName if isinstance(node, ResourceNode) else None
        if not isinstance(where, str):
            raise _fail(op, "the path selects a computed value, not an element of the resource")
        if where not in spots:
            spots[where] = _locate(op, resource, where)
    return list(spots.values())


def _root(resource: dict[str, Any]) -> Spot:
    return Spot(
        None, None, "", None, None, resource, load_model().resources.get(str(resource["resourceType"]))
    )


def _locate(op: Operation, resource: dict[str, Any], where: str) -> Spot:
    """Walk a node location such as `Patient.name[0].given[1]` down the JSON and the element tables."""
    segments = where.split(".")
    if segments[0] != resource.get("resourceType"):
        raise _fail(op, "the path leaves the resource being patched")
    spot = _root(resource)
    for segment in segments[1:]:
        match = _SEGMENT.match(segment)
        obj, table = spot.value, spot.table
        if spot.element is not None and spot.element.kind == K_PRIMITIVE and spot.parent is not None:
            # Into a primitive's id or extension: they live in its `_name` companion.
            obj, table = spot.parent.get("_" + spot.key), load_model().element_table
            if spot.index is not None:
                obj = obj[spot.index] if isinstance(obj, list) and spot.index < len(obj) else None
        if match is None or not isinstance(obj, dict) or table is None:
            raise _fail(op, f"cannot locate {where}")
        name, idx = match.group(1), match.group(2)
        key = _json_key(obj, table, name)
        element = table.elements.get(key) if key else None
        if key is None or element is None:
            raise _fail(op, f"cannot locate {where}")
        value = obj.get(key)
        index = int(idx) if idx is not None else None
        if index is not None:
            value = value[index] if isinstance(value, list) and index < len(value) else None
        spot = Spot(obj, table, key, index, element, value, _table_of(element, value))
    return spot


def _json_key(obj: dict[str, Any], table: Table, name: str) -> str | None:
    """The JSON property of element `name` in `obj`: itself, or the present form of a choice."""
    if name in obj or f"_{name}" in obj:
        return name
    choice = f"{table.key}.{name}[x]"
    for key in obj:
        el = table.elements.get(key)
        if el is not None and el.choice == choice and el.kind != K_UNDERSCORE:
            return key
    for key in obj:  # a choice primitive present only through its _companion
        el = table.elements.get(key)
        if el is not None and el.choice == choice and el.base is not None:
            return el.base.name
    return None


def _table_of(element: Element, value: Any) -> Table | None:
    if element.kind == K_COMPLEX:
        return element.table
    if element.kind == K_RESOURCE and isinstance(value, dict):
        return load_model().resources.get(str(value.get("resourceType")))
    return None


def _one(op: Operation, spots: list[Spot]) -> Spot:
    if len(spots) != 1:
        found = "nothing" if not spots else f"{len(spots)} elements"
        raise _fail(op, f"the path must select one element, it selects {found}")
    return spots[0]


def _protect(op: Operation, parent: dict[str, Any] | None, key: str, resource: dict[str, Any]) -> None:
    if parent is None:
        raise _fail(op, "the resource itself cannot be deleted, replaced or moved")
    if parent is resource and key in _PROTECTED:
        raise _fail(op, f"{key} cannot be changed by a patch")


def _build(op: Operation, table: Table, name: str, value: Typed | Parts) -> tuple[str, Element, Any, Any]:
    """(JSON key, element, JSON value, `_` companion) for element `name` of `table` set to `value`."""
    key, element = _resolve(op, table, name, value)
    if isinstance(value, Typed):
        return key, element, value.json, value.ext
    if element.kind != K_COMPLEX:
        raise _fail(op, f"{table.key}.{name} takes a value, not parts")
    return key, element, _assemble(op, element.table, value), None


def _resolve(op: Operation, table: Table, name: str, value: Typed | Parts) -> tuple[str, Element]:
    """The JSON property for `name`: a choice (value[x]) takes the type of the value (valueString)."""
    if isinstance(value, Typed) and value.suffix:
        element = table.elements.get(name + value.suffix)
        if (
            element is not None
            and element.choice == f"{table.key}.{name}[x]"
            and element.kind != K_UNDERSCORE
        ):
            return name + value.suffix, element
    element = table.elements.get(name)
    if element is None or element.kind == K_UNDERSCORE:
        raise _fail(op, f"{table.key} has no element '{name}' for this value")
    if isinstance(value, Typed) and not _fits(element.type, value.suffix):
        given = f"value{value.suffix}" if value.suffix else "a resource"
        raise _fail(op, f"{table.key}.{name} is of type {element.type}, the value is {given}")
    return name, element


_QUANTITIES = frozenset({"Age", "Count", "Distance", "Duration", "MoneyQuantity", "SimpleQuantity"})
# Primitives written as JSON strings: one may carry another (valueString for a code, or for the
# narrative's xhtml, which has no value[x]); the validator then checks the format of the result.
_TEXTUAL = frozenset(
    {
        *("base64Binary", "canonical", "code", "date", "dateTime", "id", "instant", "markdown"),
        *("oid", "string", "time", "uri", "url", "uuid", "xhtml"),
    }
)


def _fits(element_type: str, suffix: str) -> bool:
    """Whether a value[x] of this type suffix (or a resource, suffix "") may fill the element."""
    if not suffix:
        return element_type == "Resource"
    given = suffix[:1].lower() + suffix[1:]
    if element_type in (suffix, given):
        return True
    if element_type == "Quantity":
        return suffix in _QUANTITIES
    return element_type in _TEXTUAL and given in _TEXTUAL


def _assemble(op: Operation, table: Table, parts: Parts) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value, _at in parts.items:
        key, element, json, ext = _build(op, table, name, value)
        if element.is_array:
            _insert(out, key, len(out.get(key, [])), json, ext)
        elif key in out:
            raise _fail(op, f"{table.key}.{name} takes a single value, the parts give it twice")
        else:
            _set(out, key, json, ext)
    return out


def _set(obj: dict[str, Any], key: str, value: Any, ext: Any) -> None:
    obj[key] = value
    if ext is not None:
        obj["_" + key] = ext
    else:
        obj.pop("_" + key, None)


def _insert(obj: dict[str, Any], key: str, index: int, value: Any, ext: Any) -> None:
    items = obj.setdefault(key, [])
    companion = obj.get("_" + key)
    if ext is not None and not isinstance(companion, list):
        companion = obj["_" + key] = [None] * len(items)
    if isinstance(companion, list):
        companion.insert(index, ext)
    items.insert(index, value)


def _remove(obj: dict[str, Any], key: str, index: int) -> tuple[Any, Any]:
    items = obj.get(key)
    companion = obj.get("_" + key)
    value = items.pop(index) if isinstance(items, list) and index < len(items) else None
    ext = companion.pop(index) if isinstance(companion, list) and index < len(companion) else None
    if isinstance(items, list) and not items:
        del obj[key]
    if isinstance(companion, list) and all(c is None for c in companion):
        del obj["_" + key]
    return value, ext


def _collection(op: Operation, resource: dict[str, Any]) -> tuple[dict[str, Any], Table, str]:
    """The list a path names (insert, move): from its items, or from its parent when it is still empty."""
    spots = _select(op, resource)
    if spots:
        first = spots[0]
        if first.parent is None or first.owner is None or first.index is None:
            raise _fail(op, "the path does not select a list")
        if any(s.parent is not first.parent or s.key != first.key for s in spots):
            raise _fail(op, "the path selects elements of more than one list")
        return first.parent, first.owner, first.key
    member = _LAST_MEMBER.match(op.path)
    if member is None:
        raise _fail(op, "the path selects nothing")
    parent = _one(op, _select(op, resource, member.group(1)))
    name = member.group(2)
    element = parent.table.elements.get(name) if parent.table is not None else None
    if not isinstance(parent.value, dict) or parent.table is None or element is None or not element.is_array:
        raise _fail(op, "the path does not name a list")
    return parent.value, parent.table, name


def _add(op: Operation, resource: dict[str, Any]) -> None:
    spot = _one(op, _select(op, resource))
    if spot.element is not None and spot.element.kind == K_PRIMITIVE and spot.parent is not None:
        spot = _companion(spot)  # an extension (or id) of a primitive
    if not isinstance(spot.value, dict) or spot.table is None:
        raise _fail(op, "the path must select an element that has children")
    assert op.name is not None and op.value is not None
    key, element, value, ext = _build(op, spot.table, op.name, op.value)
    if spot.value is resource and key in _PROTECTED:
        raise _fail(op, f"{key} cannot be changed by a patch")
    if element.is_array:
        items = spot.value.get(key)
        _insert(spot.value, key, len(items) if isinstance(items, list) else 0, value, ext)
        return
    taken = [
        k for k in spot.value
        if k in (key, f"_{key}") or (element.choice is not None and spot.table.elements.get(k) is not None
                                     and spot.table.elements[k].choice == element.choice)
    ]  # fmt: skip
    if taken:
        raise _fail(op, f"{op.name} is already present (use replace)")
    _set(spot.value, key, value, ext)


def _companion(spot: Spot) -> Spot:
    """The `_name` object of a primitive, made (aligned with its list) if it has none yet."""
    assert spot.parent is not None
    key = "_" + spot.key
    if spot.index is None:
        holder = spot.parent.setdefault(key, {})
    else:
        items = spot.parent.get(spot.key)
        size = len(items) if isinstance(items, list) else 0
        companion = spot.parent.setdefault(key, [None] * size)
        holder = companion[spot.index] if spot.index < len(companion) else None
        if holder is None and spot.index < len(companion):
            holder = companion[spot.index] = {}
    return Spot(spot.parent, spot.owner, key, spot.index, None, holder, load_model().element_table)


def _insert_op(op: Operation, resource: dict[str, Any]) -> None:
    parent, table, key = _collection(op, resource)
    assert op.index is not None and op.value is not None
    items = parent.get(key)
    size = len(items) if isinstance(items, list) else 0
    if op.index > size:
        raise _fail(op, f"index {op.index} is beyond the end of the list ({size} items)")
    _, _, value, ext = _build(op, table, key, op.value)
    _insert(parent, key, op.index, value, ext)


def _delete(op: Operation, resource: dict[str, Any]) -> None:
    spots = _select(op, resource)
    if not spots:
        return  # "delete (if found)"
    spot = _one(op, spots)
    _protect(op, spot.parent, spot.key, resource)
    assert spot.parent is not None
    if spot.index is not None:
        _remove(spot.parent, spot.key, spot.index)
    else:
        spot.parent.pop(spot.key, None)
        spot.parent.pop("_" + spot.key, None)


def _replace(op: Operation, resource: dict[str, Any]) -> None:
    spot = _one(op, _select(op, resource))
    _protect(op, spot.parent, spot.key, resource)
    assert spot.parent is not None and spot.owner is not None and spot.element is not None
    assert op.value is not None
    name = spot.element.path.rsplit(".", 1)[1].removesuffix("[x]")
    key, _, value, ext = _build(op, spot.owner, name, op.value)
    if spot.index is not None:
        _remove(spot.parent, spot.key, spot.index)
        _insert(spot.parent, key, spot.index, value, ext)
        return
    if key != spot.key:  # a choice changing type: valueQuantity -> valueString
        spot.parent.pop(spot.key, None)
        spot.parent.pop("_" + spot.key, None)
    _set(spot.parent, key, value, ext)


def _move(op: Operation, resource: dict[str, Any]) -> None:
    parent, _, key = _collection(op, resource)
    assert op.source is not None and op.destination is not None
    items = parent.get(key)
    size = len(items) if isinstance(items, list) else 0
    for what, index in (("source", op.source), ("destination", op.destination)):
        if index >= size:
            raise _fail(op, f"{what} {index} is beyond the end of the list ({size} items)")
    value, ext = _remove(parent, key, op.source)
    _insert(parent, key, op.destination, value, ext)


_APPLY = {"add": _add, "insert": _insert_op, "delete": _delete, "replace": _replace, "move": _move}
