"""Test data of the ingest benchmark: Synthea bundles, NDJSON clones with fresh ids, a large patient."""

from __future__ import annotations

import gzip
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

SYNTHEA = Path(__file__).resolve().parents[2] / "shared" / "test-material" / "synthea-100"
_UUID = re.compile(rb"([0-9a-f]{8})(-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})")
_URN_REF = re.compile(rb'"reference":"urn:uuid:([0-9a-f-]{36})"')
BIG_PATIENT = "bench-big-patient"


def bundle_files() -> list[Path]:
    """The 102 transaction bundles (hospitals and practitioners first, then the 100 patients)."""
    files = sorted(SYNTHEA.glob("*.json.gz"))
    bundles = [f for f in files if not f.name.startswith("groupInformation")]
    first = [f for f in bundles if f.name.startswith(("hospitalInformation", "practitionerInformation"))]
    return first + [f for f in bundles if f not in first]


def read_bundle(path: Path) -> dict[str, Any]:
    """One parsed bundle."""
    with gzip.open(path, "rb") as handle:
        doc: dict[str, Any] = orjson.loads(handle.read())
    return doc


def bundle_bodies() -> list[tuple[str, bytes, int]]:
    """(name, body, entry count) of every transaction bundle, ready to POST."""
    out = []
    for path in bundle_files():
        with gzip.open(path, "rb") as handle:
            body = handle.read()
        count = len(orjson.loads(body).get("entry", []))
        out.append((path.name, body, count))
    return out


def synthea_lines() -> list[bytes]:
    """Every Synthea resource once as an NDJSON line: id = fullUrl uuid, urn:uuid references made relative."""
    seen: set[tuple[str, str]] = set()
    lines: list[bytes] = []
    for path in bundle_files():
        entries = read_bundle(path).get("entry", [])
        types: dict[bytes, bytes] = {}
        for e in entries:
            full = e.get("fullUrl", "")
            if full.startswith("urn:uuid:"):
                types[full[9:].encode()] = e["resource"]["resourceType"].encode()
        for e in entries:
            res = e["resource"]
            full = e.get("fullUrl", "")
            if full.startswith("urn:uuid:"):
                res["id"] = full[9:]
            key = (res["resourceType"], res["id"])
            if key in seen:
                continue  # the patient bundles repeat the Organizations and Practitioners they use
            seen.add(key)
            lines.append(_URN_REF.sub(_relative(types), orjson.dumps(res)))
    return lines


def _relative(types: dict[bytes, bytes]) -> Callable[[re.Match[bytes]], bytes]:
    """A replacement function: "urn:uuid:X" -> "Type/X"."""

    def fix(m: re.Match[bytes]) -> bytes:
        return b'"reference":"' + types[m.group(1)] + b"/" + m.group(1) + b'"'

    return fix


@dataclass(frozen=True, slots=True)
class Template:
    """A line split around its uuids, so that a clone only joins strings."""

    parts: tuple[bytes, ...]  # text, uuid tail, text, uuid tail, ..., text

    def clone(self, prefix: bytes) -> bytes:
        """The line with every uuid's first group replaced by the 8-hex-digit prefix."""
        out = bytearray(self.parts[0])
        for i in range(1, len(self.parts), 2):
            out += prefix
            out += self.parts[i]
            out += self.parts[i + 1]
        return bytes(out)


def templates(lines: list[bytes]) -> list[Template]:
    """Split every line at its uuids (ids, references and Synthea identifiers alike)."""
    out = []
    for line in lines:
        pieces = _UUID.split(line)  # text, head, tail, text, head, tail, ..., text
        parts = [pieces[0]]
        for i in range(1, len(pieces), 3):
            parts.extend((pieces[i + 1], pieces[i + 2]))
        out.append(Template(tuple(parts)))
    return out


def clone_prefix(n: int) -> bytes:
    """The uuid prefix of clone n (clones never collide with each other)."""
    return f"{n:08x}".encode()


def clone_lines(tpls: list[Template], n: int) -> Iterator[bytes]:
    """One full copy of the Synthea population with ids of clone n."""
    prefix = clone_prefix(n)
    for t in tpls:
        yield t.clone(prefix)


def write_ndjson(path: Path, tpls: list[Template], clones: range, limit: int | None = None) -> int:
    """Write clones (only the first `limit` lines overall if given) to one file; returns the count."""
    count = 0
    with path.open("wb") as out:
        for n in clones:
            for line in clone_lines(tpls, n):
                if limit is not None and count >= limit:
                    return count
                out.write(line)
                out.write(b"\n")
                count += 1
    return count


def big_patient_lines(observations: int = 597, encounters: int = 400) -> list[bytes]:
    """A Patient with `encounters` Encounters and `observations` Observations, plus its GP and clinic."""
    pid = BIG_PATIENT
    org = {
        "resourceType": "Organization",
        "id": "bench-big-org",
        "name": "Bệnh viện Bạch Mai",
        "active": True,
    }
    gp = {
        "resourceType": "Practitioner",
        "id": "bench-big-gp",
        "name": [{"family": "Trần", "given": ["Minh"]}],
    }
    patient = {
        "resourceType": "Patient",
        "id": pid,
        "identifier": [{"system": "urn:oid:2.16.840.1.113883.2.24.1.1", "value": "079123456789"}],
        "name": [{"use": "official", "family": "Nguyễn", "given": ["Văn", "An"]}],
        "gender": "male",
        "birthDate": "1950-03-04",
        "generalPractitioner": [{"reference": "Practitioner/bench-big-gp"}],
        "managingOrganization": {"reference": "Organization/bench-big-org"},
    }
    docs: list[dict[str, Any]] = [org, gp, patient]
    for i in range(encounters):
        day = f"20{10 + i // 365 % 15:02d}-{1 + i % 12:02d}-{1 + i % 28:02d}"
        docs.append(
            {
                "resourceType": "Encounter",
                "id": f"bench-big-enc-{i}",
                "status": "finished",
                "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
                "type": [{"coding": [{"system": "http://snomed.info/sct", "code": "185349003"}]}],
                "subject": {"reference": f"Patient/{pid}"},
                "participant": [{"individual": {"reference": "Practitioner/bench-big-gp"}}],
                "period": {"start": f"{day}T08:00:00+07:00", "end": f"{day}T08:30:00+07:00"},
                "serviceProvider": {"reference": "Organization/bench-big-org"},
            }
        )
    for i in range(observations):
        day = f"20{10 + i // 365 % 15:02d}-{1 + i % 12:02d}-{1 + i % 28:02d}"
        docs.append(
            {
                "resourceType": "Observation",
                "id": f"bench-big-obs-{i}",
                "status": "final",
                "category": [
                    {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                "code": "vital-signs",
                            }
                        ]
                    }
                ],
                "code": {
                    "coding": [{"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"}]
                },
                "subject": {"reference": f"Patient/{pid}"},
                "encounter": {"reference": f"Encounter/bench-big-enc-{i % max(encounters, 1)}"},
                "effectiveDateTime": f"{day}T08:10:00+07:00",
                "valueQuantity": {
                    "value": 60 + i % 40,
                    "unit": "/min",
                    "system": "http://unitsofmeasure.org",
                    "code": "/min",
                },
            }
        )
    return [orjson.dumps(d) for d in docs]


# ---- healthbook synth as the data source (--data synth) ------------------------------------------------

SYNTH_PER_CITIZEN = 64  # resources per citizen of `healthbook synth` (bench/search_synth.py fits it)
SYNTH_SHARED = 21_362  # facilities, their staff and roles: written whatever the population size


def synth(out: Path, citizens: int, fmt: str, seed: int = 1) -> Path:
    """Run `healthbook synth` once into out (reused when complete)."""
    import os
    import subprocess
    import sys

    if not (out / ".complete").exists():
        src = Path(__file__).resolve().parents[1] / "src"
        cmd = [sys.executable, "-m", "healthbook", "synth", "-n", str(citizens), "-s", str(seed), "-o", str(out),
               "-f", fmt, "--overwrite"]  # fmt: skip
        subprocess.run(cmd, check=True, env={**os.environ, "PYTHONPATH": str(src)}, stdout=subprocess.DEVNULL)
        (out / ".complete").write_text(str(citizens))
    return out


def synth_citizens(resources: int) -> int:
    """Citizens whose population (shared facilities included) has about this many resources."""
    return max(1, -(-(resources - SYNTH_SHARED) // SYNTH_PER_CITIZEN))


def synth_bundle_files(root: Path) -> list[Path]:
    """The facility bundles first (every citizen bundle refers to them), then one bundle per citizen."""
    return sorted((root / "facilities").glob("*.json")) + sorted((root / "citizens").rglob("*.json"))


def synth_ndjson(root: Path, path: Path) -> int:
    """Every NDJSON file of a synth population concatenated into one file; returns the line count."""
    n = 0
    with path.open("wb") as out:
        for part in sorted(root.glob("*.ndjson")):
            with part.open("rb") as handle:
                for line in handle:
                    if line.strip():
                        out.write(line if line.endswith(b"\n") else line + b"\n")
                        n += 1
    return n
