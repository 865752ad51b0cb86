"""Vendor the R4 search parameters and the patient compartment from the official npm package.

Usage: python scripts/vendor_search.py /path/to/hl7.fhir.r4.examples/package
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent.parent / "src/healthbook/fhir/definitions/r4"


def _compartment(package: Path, name: str) -> dict[str, object]:
    for path in sorted(package.glob("CompartmentDefinition-*.json")):
        if path.name.endswith("-example.json"):
            continue
        definition: dict[str, object] = json.loads(path.read_text())
        if definition.get("code") == name:
            return definition
    raise FileNotFoundError(f"no CompartmentDefinition for {name}")


def main(package: Path) -> None:
    """Write searchparams.json, compartments.json and summary-elements.json."""
    bundle = json.loads((package / "Bundle-searchParams.json").read_text())
    params = []
    for entry in bundle["entry"]:
        sp = entry["resource"]
        if sp.get("resourceType") != "SearchParameter":
            continue
        params.append(
            {
                "id": sp["id"],
                "url": sp.get("url"),
                "code": sp["code"],
                "base": sp["base"],
                "type": sp["type"],
                "expression": sp.get("expression"),
                "target": sp.get("target", []),
                "modifier": sp.get("modifier", []),
                "comparator": sp.get("comparator", []),
                "component": [
                    {"definition": c["definition"], "expression": c["expression"]}
                    for c in sp.get("component", [])
                ],
            }
        )
    compartments = {}
    for name in ("Patient", "Encounter", "RelatedPerson", "Practitioner", "Device"):
        definition: Any = _compartment(package, name)
        compartments[name] = {r["code"]: r["param"] for r in definition["resource"] if r.get("param")}
    summary: dict[str, list[str]] = {}
    for path in sorted(package.glob("StructureDefinition-*.json")):
        sd = json.loads(path.read_text())
        if sd.get("kind") != "resource" or sd.get("derivation") != "specialization":
            continue
        names = []
        for el in sd["snapshot"]["element"]:
            parts = el["path"].split(".")
            if len(parts) == 2 and (el.get("isSummary") or el.get("min", 0) > 0):
                names.append(parts[1].replace("[x]", ""))
        summary[sd["type"]] = sorted(set(names))
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "searchparams.json").write_text(json.dumps(params, separators=(",", ":"), sort_keys=True))
    (OUT / "compartments.json").write_text(json.dumps(compartments, indent=0, sort_keys=True))
    (OUT / "summary-elements.json").write_text(json.dumps(summary, indent=0, sort_keys=True))
    print(f"{len(params)} search parameters, {len(compartments)} compartments, {len(summary)} types")  # noqa: T201


if __name__ == "__main__":
    main(Path(sys.argv[1]))
