"""Structural validation of FHIR R4 JSON resources against the element tables of the official definitions."""

from __future__ import annotations

from typing import Any

from healthbook.fhir.outcomes import Issue
from healthbook.fhir.validation.model import (
    K_COMPLEX,
    K_PRIMITIVE,
    K_RESOURCE,
    K_UNDERSCORE,
    RESOURCE_TYPES,
    S_CODEABLE_CONCEPT,
    S_CODING,
    S_EXTENSION,
    S_NONE,
    S_REFERENCE,
    Element,
    Model,
    Table,
    load_model,
)
from healthbook.fhir.validation.primitives import json_kind, show
from healthbook.fhir.validation.references import reference_problem
from healthbook.fhir.validation.rules import (
    coding_problem,
    contained_problems,
    document_problems,
    extension_problem,
    section_problems,
)

MAX_DEPTH = 200  # nested JSON objects; far beyond real resources, well within Python's recursion limit
MAX_ISSUES = 500  # stop collecting once the answer is clearly "invalid"

_BATCH_TYPES = ("transaction", "batch")
# Resource-level invariants that the element tables cannot express.
_INVARIANTS = {"Bundle": document_problems, "Composition": section_problems}


class _TooManyIssues(Exception):
    """Raised internally to stop walking a hopeless document."""


class _Run:
    """The state of one validation: the model and the issues found so far."""

    __slots__ = ("issues", "model", "transaction")

    def __init__(self, model: Model) -> None:
        self.model = model
        self.issues: list[Issue] = []
        # Above zero inside a transaction or batch Bundle, where conditional references (Type?query) occur.
        self.transaction = 0

    def add(self, code: str, diagnostics: str, expression: str, severity: str = "error") -> None:
        """Record an issue; abort the walk once there are too many."""
        self.issues.append(Issue(severity, code, diagnostics, expression))
        if len(self.issues) >= MAX_ISSUES:
            raise _TooManyIssues

    def resource(self, value: Any, path: str, depth: int, contained: bool = False) -> None:
        """Validate a whole resource, dispatching on its resourceType."""
        at = f" at {path}" if path else ""
        if type(value) is not dict:
            self.add(
                "structure",
                f"A resource must be a JSON object, not {json_kind(value)}{at}",
                path or "Resource",
            )
            return
        rtype = value.get("resourceType")
        if rtype is None:
            self.add("required", f"Missing 'resourceType' in the resource{at}", _join(path, "resourceType"))
            return
        table = self.model.resources.get(rtype) if type(rtype) is str else None
        if table is None:
            shown = show(rtype) if type(rtype) is str else json_kind(rtype)
            self.add("not-supported", f"Unknown resource type {shown}{at}", _join(path, "resourceType"))
            return
        path = path or rtype
        if contained:
            for problem in contained_problems(value, path):
                self.add(*problem)
        batch = rtype == "Bundle" and value.get("type") in _BATCH_TYPES
        self.transaction += batch
        try:
            self.obj(value, table, path, depth, None)
        finally:
            self.transaction -= batch
        if rtype in _INVARIANTS:
            for problem in _INVARIANTS[rtype](value, path):
                self.add(*problem)

    def obj(self, obj: dict[Any, Any], table: Table, path: str, depth: int, owner: Element | None) -> None:
        """Validate the properties of one JSON object against its table."""
        if depth > MAX_DEPTH:
            self.add("too-costly", f"Element {path} is nested more than {MAX_DEPTH} levels deep", path)
            return
        if not obj:
            self.add("structure", f"Element {path} is an empty object; empty objects are not allowed", path)
            return
        if len(obj) == 1 and "id" in obj and not table.is_resource and owner is not None:
            self.add(
                "invariant", f"Element {path} has only an id; it needs a value or children (ele-1)", path
            )
        elements = table.elements
        choices: dict[str, str] | None = None
        for key, value in obj.items():
            el = elements.get(key)
            if el is None:
                self.unknown(key, table, path)
                continue
            kind = el.kind
            if el.rare:
                if el.max == 0:
                    self.add(
                        "structure", f"Element '{key}' is not allowed in {table.key} (max 0)", f"{path}.{key}"
                    )
                    continue
                if el.choice is not None:
                    form = key[1:] if kind == K_UNDERSCORE else key
                    if choices is None:
                        choices = {el.choice: form}
                    elif choices.setdefault(el.choice, form) != form:
                        self.add(
                            "structure",
                            f"Element {el.path} appears as both '{choices[el.choice]}' and '{form}'",
                            f"{path}.{key}",
                        )
            if kind == K_PRIMITIVE:
                if el.is_array:
                    self.primitive_array(el, key, value, obj, path)
                else:
                    problem = el.check(value)
                    if problem is not None:
                        self.bad_primitive(el, value, f"{path}.{key}", problem)
                    elif el.all_codes is not None and value not in el.all_codes:
                        self.bad_code(el, value, f"{path}.{key}")
            elif kind == K_COMPLEX:
                if el.is_array:
                    if type(value) is list and value and (el.max < 0 or len(value) <= el.max):
                        sub = el.table
                        prefix = f"{path}.{key}["
                        for i, item in enumerate(value):
                            if type(item) is dict:
                                self.obj(item, sub, f"{prefix}{i}]", depth + 1, el)
                            else:
                                self.item(el, item, f"{prefix}{i}]", depth, key)
                    else:
                        self.misshapen(el, value, path, key, depth)
                elif type(value) is dict:
                    self.obj(value, el.table, f"{path}.{key}", depth + 1, el)
                else:
                    self.misshapen(el, value, path, key, depth)
            elif kind == K_RESOURCE:
                if not el.is_array and type(value) is not list:
                    self.item(el, value, f"{path}.{key}", depth, key)
                elif el.is_array and type(value) is list and value and (el.max < 0 or len(value) <= el.max):
                    for i, item in enumerate(value):
                        self.item(el, item, f"{path}.{key}[{i}]", depth, key)
                else:
                    self.misshapen(el, value, path, key, depth)
            elif kind == K_UNDERSCORE:
                self.companion(el, key, value, obj, path, depth)
        for def_path, min_, names in table.required:
            for name in names:
                if name in obj:
                    if min_ > 1:
                        self.enough(obj[name], min_, def_path, f"{path}.{name}")
                    break
            else:
                self.add(
                    "required",
                    f"Missing required element '{def_path}' (min {min_})",
                    f"{path}.{def_path.rpartition('.')[2]}",
                )
        special = table.special
        if special != S_NONE:
            if special == S_REFERENCE:
                self.reference(obj, path, owner)
            elif special == S_EXTENSION:
                ext_problem = extension_problem(obj, path, choices is not None)
                if ext_problem is not None:
                    self.add(*ext_problem)
            elif owner is not None and owner.codes is not None:
                self.bindings(obj, special, owner, path)

    def bindings(self, obj: dict[Any, Any], special: int, owner: Element, path: str) -> None:
        """Required bindings on a Coding, or on the codings of a CodeableConcept."""
        assert owner.codes is not None
        if special == S_CODING:
            codings: Any = [obj]
        elif special == S_CODEABLE_CONCEPT:
            codings = obj.get("coding")
            if type(codings) is not list:
                return
        else:
            return
        for i, coding in enumerate(codings):
            if type(coding) is dict:
                where = path if special == S_CODING else f"{path}.coding[{i}]"
                code_problem = coding_problem(coding, owner.codes, owner.value_set, where)
                if code_problem is not None:
                    self.add(*code_problem)

    def item(self, el: Element, value: Any, path: str, depth: int, key: str) -> None:
        """Validate one complex value or contained resource."""
        if el.kind == K_RESOURCE:
            self.resource(value, path, depth + 1, key == "contained")
        elif type(value) is dict:
            self.obj(value, el.table, path, depth + 1, el)
        else:
            self.add(
                "structure",
                f"Element {path} must be a JSON object ({el.type}), not {json_kind(value)}",
                path,
            )

    def misshapen(self, el: Element, value: Any, path: str, key: str, depth: int) -> None:
        """Report an array/single/empty/too-long mismatch of a complex element, then check what is there."""
        where = f"{path}.{key}"
        if not el.is_array:
            if type(value) is list:
                self.not_array(el, where)
            else:
                self.item(el, value, where, depth, key)
        elif type(value) is not list:
            self.add("structure", f"Element {el.path} must be an array (max {_max(el)})", where)
            self.item(el, value, where, depth, key)
        elif not value:
            self.add("structure", f"Element {where} is an empty array", where)
        else:
            self.too_many(el, len(value), where)
            for i, item in enumerate(value):
                self.item(el, item, f"{where}[{i}]", depth, key)

    def bad_primitive(self, el: Element, value: Any, where: str, problem: str) -> None:
        """Report a primitive value that failed its check, naming null and arrays specially."""
        if value is None:
            self.add("structure", f"Element {where} is null; null is not allowed", where)
        elif type(value) is list:
            self.not_array(el, where)
        else:
            self.add("value", f"Element {where} {problem}", where)

    def bad_code(self, el: Element, value: str, where: str) -> None:
        """Report a code outside the required value set."""
        self.add(
            "code-invalid",
            f"Element '{where}' has value {show(value)} that is not in the required value set {el.value_set}",
            where,
        )

    def primitive_array(self, el: Element, key: str, value: Any, obj: dict[Any, Any], path: str) -> None:
        """Check a repeating primitive; nulls are allowed only where the '_' array carries content."""
        if type(value) is not list:
            self.add("structure", f"Element {el.path} must be an array (max {_max(el)})", f"{path}.{key}")
            return
        if not value:
            self.add("structure", f"Element {path}.{key} is an empty array", f"{path}.{key}")
            return
        if 0 < el.max < len(value):
            self.too_many(el, len(value), f"{path}.{key}")
        check = el.check
        codes = el.all_codes
        companion: Any = None
        for i, item in enumerate(value):
            if item is None:
                if companion is None:
                    companion = obj.get("_" + key, ())
                if type(companion) is not list or i >= len(companion) or companion[i] is None:
                    where = f"{path}.{key}[{i}]"
                    self.add("structure", f"Element {where} is null without a matching '_{key}' entry", where)
                continue
            problem = check(item)
            if problem is not None:
                self.add("value", f"Element {path}.{key}[{i}] {problem}", f"{path}.{key}[{i}]")
            elif codes is not None and item not in codes:
                self.bad_code(el, item, f"{path}.{key}[{i}]")

    def companion(
        self, el: Element, key: str, value: Any, obj: dict[Any, Any], path: str, depth: int
    ) -> None:
        """Validate a '_name' property: id and extensions in an object, or an array aligned with values."""
        base = el.base
        assert base is not None
        name = base.name
        element_table = self.model.element_table
        if not base.is_array:
            if type(value) is dict:
                self.obj(value, element_table, f"{path}.{name}", depth + 1, None)
                if "extension" not in value and obj.get(name) is None:
                    self.only_id(f"{path}.{name}")
            else:
                where = f"{path}.{name}"
                self.add(
                    "structure", f"Element {path}.{key} must be a JSON object, not {json_kind(value)}", where
                )
            return
        if type(value) is not list:
            self.add(
                "structure", f"Element {path}.{key} must be an array aligned with '{name}'", f"{path}.{key}"
            )
            return
        if not value:
            self.add("structure", f"Element {path}.{key} is an empty array", f"{path}.{key}")
            return
        values = obj.get(name)
        if type(values) is list and len(values) != len(value):
            self.add(
                "structure",
                f"Arrays '{name}' ({len(values)} items) and '{key}' ({len(value)} items) in {path} "
                "must have the same length",
                f"{path}.{key}",
            )
        for i, item in enumerate(value):
            where = f"{path}.{name}[{i}]"
            if type(item) is dict:
                self.obj(item, element_table, where, depth + 1, None)
                if "extension" not in item and (
                    type(values) is not list or i >= len(values) or values[i] is None
                ):
                    self.only_id(where)
            elif item is None:
                if type(values) is not list:
                    self.add(
                        "structure",
                        f"Element {path}.{key}[{i}] is null and '{name}' has no value there",
                        where,
                    )
            else:
                self.add("structure", f"Element {path}.{key}[{i}] must be a JSON object or null", where)

    def only_id(self, where: str) -> None:
        """ele-1 for primitives: an id alone, without a value or extensions, is not an element."""
        self.add("invariant", f"Element {where} has neither a value nor extensions (ele-1)", where)

    def unknown(self, key: Any, table: Table, path: str) -> None:
        """Report a property that the definition does not have, with a hint where one helps."""
        if type(key) is not str:
            self.add("structure", f"A property name in {path} is {json_kind(key)}, not a string", path)
            return
        name = key if len(key) <= 80 else key[:77] + "..."
        where = "" if path == table.key else f" at {path}"
        if key.startswith("_") and key[1:] in table.elements:
            message = (
                f"Element '{name}' is not allowed in {table.key}{where}: '{key[1:]}' cannot have extensions"
            )
        elif key == "resourceType":
            message = f"Element 'resourceType' is not allowed in {table.key}{where}, which is not a resource"
        else:
            message = f"Unknown element '{name}' in {table.key}{where}"
        self.add("structure", message, f"{path}.{name}")

    def not_array(self, el: Element, where: str) -> None:
        """Report an array given for a single-valued element."""
        self.add("structure", f"Element {el.path} has max 1 and must not be an array", where)

    def enough(self, value: Any, min_: int, def_path: str, where: str) -> None:
        """Report fewer repetitions than a minimum above one requires."""
        if type(value) is list and len(value) < min_:
            self.add(
                "required",
                f"Element '{def_path}' has {len(value)} items, fewer than its min of {min_}",
                where,
            )

    def too_many(self, el: Element, count: int, where: str) -> None:
        """Report more repetitions than the definition allows."""
        self.add("structure", f"Element {el.path} has {count} items, more than its max of {el.max}", where)

    def reference(self, obj: dict[Any, Any], path: str, owner: Element | None) -> None:
        """Check the form of Reference.reference and, for relative references, the target type."""
        ref = obj.get("reference")
        if type(ref) is str and ref:
            targets = owner.targets if owner is not None else None
            problem = reference_problem(ref, self.model.resource_types, targets, self.transaction > 0)
            if problem is not None:
                where = path + ".reference"
                self.add("value", f"Element {where} {problem}", where)


def _join(path: str, name: str) -> str:
    """Child expression; the root resource has no path of its own yet."""
    return f"{path}.{name}" if path else name


def _max(el: Element) -> str:
    """Cardinality maximum as the definitions write it."""
    return "*" if el.max < 0 else str(el.max)


def validate_resource(resource: object) -> list[Issue]:
    """Return every problem found in a parsed JSON resource; an empty list means valid."""
    run = _Run(load_model())
    try:
        run.resource(resource, "", 0)
    except _TooManyIssues:
        run.issues.append(
            Issue(
                "error",
                "too-costly",
                f"Validation stopped after {MAX_ISSUES} issues",
                run.issues[-1].expression,
            )
        )
    except RecursionError:
        run.issues.append(Issue("error", "too-costly", "The resource is nested too deeply to validate", None))
    return run.issues


def resource_types() -> frozenset[str]:
    """All R4 resource type names (without loading the element tables)."""
    return RESOURCE_TYPES
