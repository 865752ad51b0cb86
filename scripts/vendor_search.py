"""Vendor the R4 search parameters and the patient compartment from the official npm package.

Usage: python scripts/vendor_search.py /path/to/hl7.fhir.r4.examples/package
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "src/healthbook/fhir/definitions/r4"


def main(package: Path) -> None:
    """Write searchparams.json and compartment-patient.json."""
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
                    {"definition": c["definition"], "expression": c["expression"]} for c in sp.get("component", [])
                ],
            }
        )
    compartment = json.loads((package / "CompartmentDefinition-patient.json").read_text())
    members = {r["code"]: r.get("param", []) for r in compartment["resource"] if r.get("param")}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "searchparams.json").write_text(json.dumps(params, separators=(",", ":"), sort_keys=True))
    (OUT / "compartment-patient.json").write_text(json.dumps(members, indent=0, sort_keys=True))
    print(f"{len(params)} search parameters, {len(members)} compartment resource types")  # noqa: T201


if __name__ == "__main__":
    main(Path(sys.argv[1]))
