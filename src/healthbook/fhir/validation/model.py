"""Loads the vendored R4 definitions once and turns them into per-type lookup tables for the validator."""

from __future__ import annotations

import gzip
import json
import threading
from pathlib import Path
from typing import Any

from healthbook.fhir.validation.primitives import PrimitiveCheck, build_checks

DEFINITIONS = Path(__file__).resolve().parent.parent / "definitions" / "r4"
DATA_FILE = DEFINITIONS / "elements.json.gz"

# The concrete R4 resource types; a small file read at import, so this needs no full model load.
RESOURCE_TYPES: frozenset[str] = frozenset(
    json.loads((DEFINITIONS / "resource-types.json").read_text(encoding="utf-8"))
)

# Element kinds: what the validator does with the JSON value of a property.
K_PRIMITIVE = 0
K_COMPLEX = 1
K_RESOURCE = 2
K_UNDERSCORE = 3  # the "_name" companion of a primitive, holding its id and extensions
K_RESOURCE_TYPE = 4  # the "resourceType" property of a resource

# Datatypes whose content rules go beyond their element tables.
S_NONE = 0
S_REFERENCE = 1
S_CODING = 2
S_CODEABLE_CONCEPT = 3
S_EXTENSION = 4
_SPECIAL = {
    "Reference": S_REFERENCE,
    "Coding": S_CODING,
    "CodeableConcept": S_CODEABLE_CONCEPT,
    "Extension": S_EXTENSION,
}

FLAG_ATTR = 1


class Table:
    """The allowed JSON properties of one resource, datatype or backbone element."""

    __slots__ = ("elements", "is_resource", "key", "required", "special")

    def __init__(self, key: str) -> None:
        self.key = key
        self.elements: dict[str, Element] = {}
        self.required: tuple[tuple[str, int, tuple[str, ...]], ...] = ()  # (definition path, min, JSON names)
        self.special = _SPECIAL.get(key, S_NONE)
        self.is_resource = False


def _not_primitive(value: Any) -> str | None:
    """Placeholder check of non-primitive elements (never called by the validator)."""
    return "is not a primitive element"


_NO_TABLE = Table("")


class Element:
    """One JSON property name of a table, with everything needed to check its value."""

    __slots__ = (
        "all_codes",
        "base",
        "check",
        "choice",
        "codes",
        "is_array",
        "kind",
        "max",
        "name",
        "path",
        "rare",
        "table",
        "targets",
        "type",
        "value_set",
    )

    def __init__(self, name: str, path: str, max_: int, kind: int, type_: str) -> None:
        self.name = name  # the JSON property name, e.g. "valueQuantity"
        self.path = path  # the definition path, e.g. "Observation.value[x]"
        self.max = max_  # -1 for "*"
        self.is_array = max_ != 1 and max_ != 0
        self.kind = kind
        self.type = type_
        self.table: Table = _NO_TABLE  # the child table of complex elements
        self.check: PrimitiveCheck = _not_primitive  # the value check of primitive elements
        self.value_set: str | None = None
        self.codes: dict[str, frozenset[str]] | None = None
        self.all_codes: frozenset[str] | None = None
        self.targets: frozenset[str] | None = None
        self.choice: str | None = None  # the choice element ("value[x]") this property is one form of
        self.base: Element | None = None  # for "_name": the primitive element it belongs to
        self.rare = max_ == 0  # set too for choices: lets the validator skip both tests in one


class Model:
    """All lookup tables of the R4 definitions."""

    __slots__ = ("element_table", "resource_types", "resources", "tables")

    def __init__(self, data: dict[str, Any]) -> None:
        self.resource_types: frozenset[str] = frozenset(data["resourceTypes"])
        if self.resource_types != RESOURCE_TYPES:
            raise ValueError(
                "elements.json.gz and resource-types.json disagree; re-run vendor_definitions.py"
            )
        checks = build_checks(data["primitives"])
        extensible = {name for name, info in data["primitives"].items() if info.get("extensions", True)}
        profiles: dict[str, str] = data.get("profiles", {})
        value_sets = {
            url: {system: frozenset(codes) for system, codes in systems.items()}
            for url, systems in data["valueSets"].items()
        }
        rows_by_key: dict[str, list[list[Any]]] = data["types"]
        self.tables: dict[str, Table] = {key: Table(key) for key in rows_by_key}
        for key, rows in rows_by_key.items():
            self._fill(self.tables[key], rows, checks, extensible, profiles, value_sets)
        self.element_table = self.tables["Element"]
        self.resources: dict[str, Table] = {}
        for name in self.resource_types:
            table = self.tables[name]
            table.is_resource = True
            table.elements["resourceType"] = Element(
                "resourceType", f"{name}.resourceType", 1, K_RESOURCE_TYPE, ""
            )
            self.resources[name] = table

    def _fill(
        self,
        table: Table,
        rows: list[list[Any]],
        checks: dict[str, PrimitiveCheck],
        extensible: set[str],
        profiles: dict[str, str],
        value_sets: dict[str, dict[str, frozenset[str]]],
    ) -> None:
        """Create the Elements of one table, expanding choice types into their JSON names."""
        required: list[tuple[str, int, tuple[str, ...]]] = []
        for name, min_, max_, types, binding, flags, targets in rows:
            path = f"{table.key}.{name}"
            choice = name.endswith("[x]")
            names: list[str] = []
            for type_ in types:
                json_name = name[:-3] + _upper_first(profiles.get(type_, type_)) if choice else name
                el = self._element(json_name, path, max_, type_, checks)
                if binding is not None and binding in value_sets:
                    el.value_set = binding
                    el.codes = value_sets[binding]
                    el.all_codes = frozenset().union(*el.codes.values())
                if targets is not None and all(t in self.resource_types for t in targets):
                    el.targets = frozenset(targets)
                if choice:
                    el.choice = path
                    el.rare = True
                table.elements[json_name] = el
                names.append(json_name)
                if el.kind == K_PRIMITIVE and not flags & FLAG_ATTR and type_ in extensible:
                    companion = Element("_" + json_name, path, max_, K_UNDERSCORE, type_)
                    companion.base = el
                    companion.choice = el.choice
                    companion.rare = el.rare
                    table.elements[companion.name] = companion
                    names.append(companion.name)
            if min_ > 0 and names:
                required.append((path, min_, tuple(names)))
        table.required = tuple(required)

    def _element(
        self, json_name: str, path: str, max_: int, type_: str, checks: dict[str, PrimitiveCheck]
    ) -> Element:
        """Resolve one type code to a primitive check, a child table or a contained resource."""
        if type_ in checks:
            el = Element(json_name, path, max_, K_PRIMITIVE, type_)
            el.check = checks[type_]
        elif type_ == "Resource":
            el = Element(json_name, path, max_, K_RESOURCE, type_)
        elif type_ in self.tables:
            el = Element(json_name, path, max_, K_COMPLEX, type_)
            el.table = self.tables[type_]
        else:
            raise ValueError(f"{path}: no definition for type {type_!r}")
        return el


def _upper_first(text: str) -> str:
    """Choice-type JSON names capitalise the type: value[x] + dateTime -> valueDateTime."""
    return text[:1].upper() + text[1:]


def _read_data() -> dict[str, Any]:
    """Read the vendored definitions file."""
    data: dict[str, Any] = json.loads(gzip.decompress(DATA_FILE.read_bytes()))
    return data


_lock = threading.Lock()
_model: Model | None = None


def load_model() -> Model:
    """Load and index the vendored definitions on first use; later calls return the same object."""
    global _model
    if _model is None:
        with _lock:
            if _model is None:
                _model = Model(_read_data())
    return _model
