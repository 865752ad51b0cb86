"""Vendor the R4 element definitions the validator needs from the official npm package.

Usage: python scripts/vendor_definitions.py /path/to/hl7.fhir.r4.examples/package

Writes src/healthbook/fhir/definitions/r4/resource-types.json (the concrete resource types, cheap to load at
import time) and src/healthbook/fhir/definitions/r4/elements.json.gz with:

* ``resourceTypes``: every concrete R4 resource type;
* ``primitives``: for each primitive type its value regex (from the ``regex`` type extension), maxLength and
  whether it may carry extensions;
* ``profiles``: the base type of each profile that base definitions use as a type (SimpleQuantity);
* ``types``: one element table per resource, datatype, backbone element and referenced profile, each a list of
  ``[name, min, max, types, binding, flags, targets]`` rows (``max`` -1 for ``*``; ``types`` are type codes,
  or table keys containing a dot for backbone elements and content references; ``flags`` 1 = XML attribute, no
  ``_name``; ``targets`` the resource types a Reference may point to, null for any);
* ``valueSets``: ``{url: {system: [codes]}}`` for every required binding whose value set can be expanded fully
  from the code systems in the package.
"""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent.parent / "src/healthbook/fhir/definitions/r4"
FHIR_TYPE_EXT = "http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type"
REGEX_EXT = "http://hl7.org/fhir/StructureDefinition/regex"
SD_PREFIX = "http://hl7.org/fhir/StructureDefinition/"
FLAG_ATTR = 1

Json = dict[str, Any]


def load_all(package: Path, prefix: str) -> list[Json]:
    """Read every JSON file of one kind of definition."""
    return [json.loads(p.read_text(encoding="utf-8")) for p in sorted(package.glob(f"{prefix}-*.json"))]


def type_code(t: Json) -> str:
    """Map FHIRPath system types (ids, urls of extensions) to the FHIR primitive they stand for."""
    code: str = t["code"]
    if not code.startswith("http://hl7.org/fhirpath/System."):
        return code
    for ext in t.get("extension", []):
        if ext["url"] == FHIR_TYPE_EXT:
            return str(ext["valueUrl"])
    return "string"


def element_table(sd: Json, key: str, by_base: dict[str, str]) -> dict[str, list[list[Any]]]:
    """Build the element tables of one StructureDefinition: the root table under key, backbones by path."""
    elements = [e for e in sd["snapshot"]["element"] if ":" not in e["id"]]  # slices are profile detail
    root = elements[0]["path"]
    paths = {e["path"] for e in elements}
    tables: dict[str, list[list[Any]]] = {}

    def table_key(path: str) -> str:
        return key if path == root else key + path[len(root) :]

    for e in elements[1:]:
        path: str = e["path"]
        parent, _, name = path.rpartition(".")
        flags = (
            FLAG_ATTR
            if "xmlAttr" in e.get("representation", []) or "xhtml" in e.get("representation", [])
            else 0
        )
        targets: list[str] | None = None
        if "contentReference" in e:
            types = [table_key(e["contentReference"].lstrip("#"))]
        elif any(p.startswith(path + ".") for p in paths):
            types = [table_key(path)]
        else:
            types = []
            for t in e.get("type", []):
                if t["code"] == "Reference":
                    names = [p.removeprefix(SD_PREFIX) for p in t.get("targetProfile", [])]
                    if names and "Resource" not in names and all("/" not in n for n in names):
                        targets = sorted(names)
                code = type_code(t)
                if e.get("base", {}).get("path") == "Resource.id":
                    code = "id"
                profiles = [by_base[p] for p in t.get("profile", []) if p in by_base]
                types.extend(profiles or [code])
        binding = None
        b = e.get("binding")
        if b and b.get("strength") == "required" and b.get("valueSet"):
            binding = b["valueSet"].split("|")[0]
        max_ = -1 if e["max"] == "*" else int(e["max"])
        tables.setdefault(table_key(parent), []).append(
            [name, e["min"], max_, types, binding, flags, targets]
        )
    tables.setdefault(key, [])
    return tables


class Expander:
    """Expands value sets from the code systems and value sets in the package; None means 'cannot'."""

    def __init__(self, value_sets: list[Json], code_systems: list[Json]) -> None:
        self.vs = {v["url"]: v for v in value_sets}
        self.cs = {c["url"]: c for c in code_systems}
        self.cache: dict[str, dict[str, set[str]] | None] = {}

    def expand(self, url: str) -> dict[str, set[str]] | None:
        """Expand one value set (memoised, cycle-safe)."""
        url = url.split("|")[0]
        if url in self.cache:
            return self.cache[url]
        self.cache[url] = None
        vs = self.vs.get(url)
        result = self._expand(vs) if vs else None
        self.cache[url] = result
        return result

    def _expand(self, vs: Json) -> dict[str, set[str]] | None:
        compose = vs.get("compose")
        if not compose:
            return None
        out: dict[str, set[str]] = {}
        for inc in compose.get("include", []):
            part = self._part(inc)
            if part is None:
                return None
            for system, codes in part.items():
                out.setdefault(system, set()).update(codes)
        for exc in compose.get("exclude", []):
            part = self._part(exc)
            if part is None:
                return None
            for system, codes in part.items():
                out.get(system, set()).difference_update(codes)
        return out

    def _part(self, inc: Json) -> dict[str, set[str]] | None:
        sets: list[dict[str, set[str]]] = []
        for url in inc.get("valueSet", []):
            sub = self.expand(url)
            if sub is None:
                return None
            sets.append(sub)
        system = inc.get("system")
        if system:
            codes = self._system_codes(system, inc)
            if codes is None:
                return None
            sets.append({system: codes})
        if not sets:
            return None
        result = {s: set(c) for s, c in sets[0].items()}
        for other in sets[1:]:
            result = {s: c & other[s] for s, c in result.items() if s in other}
        return result

    def _system_codes(self, system: str, inc: Json) -> set[str] | None:
        if "concept" in inc and "filter" not in inc:
            return {c["code"] for c in inc["concept"]}
        cs = self.cs.get(system)
        if cs is None or cs.get("content") != "complete" or cs.get("caseSensitive") is False:
            return None
        tree: dict[str, list[str]] = {}
        all_codes: set[str] = set()

        def walk(concepts: list[Json], parent: str | None) -> None:
            for c in concepts:
                all_codes.add(c["code"])
                if parent is not None:
                    tree.setdefault(parent, []).append(c["code"])
                for prop in c.get("property", []):
                    if prop.get("code") in ("subsumedBy", "parent") and "valueCode" in prop:
                        tree.setdefault(prop["valueCode"], []).append(c["code"])
                walk(c.get("concept", []), c["code"])

        walk(cs.get("concept", []), None)
        if "concept" in inc:
            return {c["code"] for c in inc["concept"]} & all_codes
        codes = set(all_codes)
        for f in inc.get("filter", []):
            if f.get("property") != "concept" or f.get("op") not in ("is-a", "descendent-of"):
                return None
            below: set[str] = set()
            stack = list(tree.get(f["value"], []))
            while stack:
                code = stack.pop()
                if code not in below:
                    below.add(code)
                    stack.extend(tree.get(code, []))
            if f["op"] == "is-a":
                below.add(f["value"])
            codes &= below
        return codes


def primitive_info(sd: Json) -> Json:
    """Regex, maxLength and extensibility of one primitive type."""
    info: Json = {"regex": None, "maxLength": None, "extensions": True}
    for e in sd["snapshot"]["element"]:
        if e["path"].endswith(".value"):
            for t in e.get("type", []):
                for ext in t.get("extension", []):
                    if ext["url"] == REGEX_EXT:
                        info["regex"] = ext["valueString"]
            info["maxLength"] = e.get("maxLength")
        if e["path"].endswith(".extension") and e["max"] == "0":
            info["extensions"] = False
    return info


def build(package: Path) -> Json:
    """Derive the vendored tables from the package contents."""
    sds = [
        sd
        for sd in load_all(package, "StructureDefinition")
        if sd["kind"] in ("resource", "complex-type", "primitive-type") and "snapshot" in sd
    ]
    base = [sd for sd in sds if sd.get("derivation") != "constraint"]
    referenced = {
        p
        for sd in base
        for e in sd["snapshot"]["element"]
        for t in e.get("type", [])
        for p in t.get("profile", [])
    }
    profiles = [sd for sd in sds if sd.get("derivation") == "constraint" and sd["url"] in referenced]
    by_base = {sd["url"]: sd["id"] for sd in profiles}
    resource_types = sorted(
        sd["type"]
        for sd in base
        if sd["kind"] == "resource" and not sd.get("abstract") and sd.get("derivation")
    )
    primitives = {sd["type"]: primitive_info(sd) for sd in base if sd["kind"] == "primitive-type"}
    types: dict[str, list[list[Any]]] = {}
    for sd in base:
        if sd["kind"] == "primitive-type" or sd["type"] in ("Resource", "DomainResource"):
            continue
        types.update(element_table(sd, sd["type"], by_base))
    for sd in profiles:
        types.update(element_table(sd, sd["id"], by_base))
    expander = Expander(load_all(package, "ValueSet"), load_all(package, "CodeSystem"))
    value_sets: dict[str, dict[str, list[str]]] = {}
    for rows in types.values():
        for row in rows:
            url = row[4]
            if url is None:
                continue
            expansion = expander.expand(url)
            if expansion is None or not any(expansion.values()):
                row[4] = None
                continue
            value_sets[url] = {s: sorted(c) for s, c in sorted(expansion.items()) if c}
    return {
        "fhirVersion": "4.0.1",
        "resourceTypes": resource_types,
        "primitives": primitives,
        "profiles": {sd["id"]: sd["type"] for sd in profiles},
        "types": types,
        "valueSets": value_sets,
    }


def main(package: Path) -> None:
    """Write elements.json.gz and resource-types.json."""
    data = build(package)
    OUT.mkdir(parents=True, exist_ok=True)
    raw = json.dumps(data, separators=(",", ":"), sort_keys=True).encode()
    (OUT / "elements.json.gz").write_bytes(gzip.compress(raw, compresslevel=9, mtime=0))
    (OUT / "resource-types.json").write_text(json.dumps(data["resourceTypes"], indent=0) + "\n")
    print(  # noqa: T201
        f"{len(data['resourceTypes'])} resource types, {len(data['types'])} element tables, "
        f"{len(data['valueSets'])} required value sets, {len(raw)} bytes uncompressed"
    )


if __name__ == "__main__":
    main(Path(sys.argv[1]))
