"""Search benchmark data: Synthea patients cloned with fresh ids and seeded variation, cached as NDJSON."""

from __future__ import annotations

import datetime as dt
import gzip
import math
import random
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

SYNTHEA = Path(__file__).resolve().parents[2] / "shared" / "test-material" / "synthea-100"
FORMAT = 2  # bump when the generated lines change, so that old caches are not reused
SHARED_TYPES = ("Organization", "Practitioner")
_UUID = re.compile(rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_URN_REF = re.compile(rb'"reference":"urn:uuid:([0-9a-f-]{36})"')
_DATE = re.compile(rb'"(\d{4})-(\d{2})-(\d{2})(T[0-9:.]+(?:Z|[+-]\d{2}:\d{2})?)?"')
_QUANTITY = re.compile(rb'("valueQuantity":\{"value":)(-?\d+(?:\.\d+)?)')
_DIGITS = re.compile(r"\d+$")
_NS = uuid.UUID("3b8e5a0c-1f7d-4c2a-9e61-5a4d2c7b9f10")


@dataclass(frozen=True, slots=True)
class PatientTemplate:
    """One Synthea patient: its resources as NDJSON lines with Type/uuid references."""

    patient_id: bytes
    lines: tuple[bytes, ...]
    local_ids: tuple[bytes, ...]  # uuids of the patient's own resources (rewritten in every clone)


@dataclass(slots=True)
class Source:
    """The shared Organizations/Practitioners and the 100 patient templates."""

    shared: list[bytes]
    patients: list[PatientTemplate]
    families: list[str]
    givens: list[str]


def _bundle_paths() -> list[Path]:
    files = sorted(SYNTHEA.glob("*.json.gz"))
    return [f for f in files if not f.name.startswith("groupInformation")]


def _read(path: Path) -> dict[str, Any]:
    with gzip.open(path, "rb") as handle:
        doc: dict[str, Any] = orjson.loads(handle.read())
    return doc


def _relative(types: dict[bytes, bytes]) -> Callable[[re.Match[bytes]], bytes]:
    def fix(m: re.Match[bytes]) -> bytes:
        return b'"reference":"' + types[m.group(1)] + b"/" + m.group(1) + b'"'

    return fix


def load_source() -> Source:
    """Parse the Synthea bundles once: shared resources deduplicated, patients as templates."""
    shared: dict[str, bytes] = {}
    patients: list[PatientTemplate] = []
    families: set[str] = set()
    givens: set[str] = set()
    for path in _bundle_paths():
        entries = _read(path).get("entry", [])
        types: dict[bytes, bytes] = {}
        for e in entries:
            full = e.get("fullUrl", "")
            if full.startswith("urn:uuid:"):
                types[full[9:].encode()] = e["resource"]["resourceType"].encode()
        lines: list[bytes] = []
        local: list[bytes] = []
        patient_id = b""
        for e in entries:
            res = e["resource"]
            full = e.get("fullUrl", "")
            if full.startswith("urn:uuid:"):
                res["id"] = full[9:]
            line = _URN_REF.sub(_relative(types), orjson.dumps(res))
            if res["resourceType"] in SHARED_TYPES:
                shared.setdefault(f"{res['resourceType']}/{res['id']}", line)
                continue
            if res["resourceType"] == "Patient":
                patient_id = res["id"].encode()
                for name in res.get("name", []):
                    families.add(_DIGITS.sub("", name.get("family", "")))
                    givens.update(_DIGITS.sub("", g) for g in name.get("given", []))
            lines.append(line)
            local.append(res["id"].encode())
        if lines:
            patients.append(PatientTemplate(patient_id, tuple(lines), tuple(local)))
    return Source(
        list(shared.values()), patients, sorted(f for f in families if f), sorted(g for g in givens if g)
    )


class Cloner:
    """Clone unit k = patient template k % 100 with fresh ids, shifted dates, new names and values."""

    def __init__(self, source: Source, seed: int):
        self.source = source
        self.seed = seed
        # Zipf-like surname weights: a few family names are common, most are rare.
        self.family_weights = [1.0 / (i + 1) ** 0.8 for i in range(len(source.families))]

    def unit(self, k: int) -> list[bytes]:
        """The NDJSON lines of clone unit k."""
        tpl = self.source.patients[k % len(self.source.patients)]
        rng = random.Random(self.seed * 1_000_003 + k)
        ids = {old: str(uuid.uuid5(_NS, f"{k}:{old.decode()}")).encode() for old in tpl.local_ids}
        shift = dt.timedelta(days=rng.randint(-1200, 1200))
        family = rng.choices(self.source.families, self.family_weights)[0]
        given = rng.choice(self.source.givens)
        scale = rng.uniform(0.85, 1.15)
        dates: dict[bytes, bytes] = {}

        def new_id(m: re.Match[bytes]) -> bytes:
            return ids.get(m.group(0), m.group(0))

        def new_date(m: re.Match[bytes]) -> bytes:
            whole = m.group(0)
            got = dates.get(whole)
            if got is None:
                try:
                    day = dt.date(int(m.group(1)), int(m.group(2)), int(m.group(3))) + shift
                    got = b'"' + day.isoformat().encode() + (m.group(4) or b"") + b'"'
                except (ValueError, OverflowError):
                    got = whole
                dates[whole] = got
            return got

        def new_value(m: re.Match[bytes]) -> bytes:
            return m.group(1) + f"{float(m.group(2)) * scale:.2f}".encode()

        out = []
        for line in tpl.lines:
            line = _UUID.sub(new_id, line)
            line = _DATE.sub(new_date, line)
            if line.startswith(b'{"resourceType":"Observation"'):
                line = _QUANTITY.sub(new_value, line)
            elif line.startswith(b'{"resourceType":"Patient"'):
                line = self._rename(line, family, given, rng)
            out.append(line)
        return out

    def _rename(self, line: bytes, family: str, given: str, rng: random.Random) -> bytes:
        doc = orjson.loads(line)
        for name in doc.get("name", []):
            name["family"] = f"{family}{rng.randint(10, 999)}"
            name["given"] = [f"{given}{rng.randint(10, 999)}", *name.get("given", [])[1:]]
        return orjson.dumps(doc)

    def unit_size(self, k: int) -> int:
        """How many resources clone unit k has."""
        return len(self.source.patients[k % len(self.source.patients)].lines)


def units_for(cloner: Cloner, target: int) -> int:
    """The smallest number of clone units whose resources (plus the shared ones) reach target."""
    total = len(cloner.source.shared)
    k = 0
    while total < target:
        total += cloner.unit_size(k)
        k += 1
    return k


def ensure_dataset(cache: Path, seed: int, sizes: list[int], log: Callable[[str], None]) -> list[list[Path]]:
    """NDJSON files for each size (each set a superset of the previous); returns new files per size."""
    source = load_source()
    cloner = Cloner(source, seed)
    bounds = [units_for(cloner, s) for s in sorted(sizes)]
    directory = cache / f"format{FORMAT}-seed{seed}"
    directory.mkdir(parents=True, exist_ok=True)
    shared = directory / "shared.ndjson"
    if not shared.exists():
        shared.write_bytes(b"\n".join(source.shared) + b"\n")
    per_size: list[list[Path]] = []
    start = 0
    for end in bounds:
        files: list[Path] = [shared] if start == 0 else []
        step = max(1, min(400, math.ceil((end - start) / 4)))  # >= 4 files, each <= ~150k resources
        for lo in range(start, end, step):
            hi = min(lo + step, end)
            path = directory / f"units-{lo:06d}-{hi:06d}.ndjson"
            if not path.exists():
                log(f"writing {path.name}")
                tmp = path.with_suffix(".tmp")
                with tmp.open("wb") as out:
                    for k in range(lo, hi):
                        out.write(b"\n".join(cloner.unit(k)) + b"\n")
                tmp.rename(path)
            files.append(path)
        per_size.append(files)
        start = end
    return per_size


def count_lines(paths: list[Path]) -> int:
    """Resources in these NDJSON files."""
    total = 0
    for p in paths:
        with p.open("rb") as handle:
            total += sum(1 for line in handle if line.strip())
    return total


def iter_docs(paths: list[Path]) -> Iterator[dict[str, Any]]:
    """Every resource of the files, parsed."""
    for p in paths:
        with p.open("rb") as handle:
            for line in handle:
                if line.strip():
                    yield orjson.loads(line)
