"""The benchmark's requests: Patient bodies, seeded ids and the four measured interactions."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

OPS = ("create", "read", "update", "cond_read")
IDENT_SYSTEM = "urn:oid:2.16.840.1.113883.2.24.1.1"

# A typical citizen record: identifier, name, telecom, gender, birth date, address (all indexed).
_PATIENT = {
    "resourceType": "Patient",
    "id": "@ID@",
    "identifier": [{"use": "official", "system": IDENT_SYSTEM, "value": "@IDENT@"}],
    "active": True,
    "name": [{"use": "official", "family": "Nguyễn", "given": ["Văn", "Bình@N@"]}],
    "telecom": [{"system": "phone", "value": "+84 90 @N@", "use": "mobile"}],
    "gender": "male",
    "birthDate": "1980-05-17",
    "address": [{"use": "home", "line": ["12 Tràng Tiền"], "city": "Hà Nội", "country": "VN"}],
}


def _template(with_id: bool) -> str:
    doc = dict(_PATIENT)
    if not with_id:
        del doc["id"]
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":"))


CREATE_TEMPLATE = _template(with_id=False)
UPDATE_TEMPLATE = _template(with_id=True)


def seed_identifier(n: int) -> str:
    """Identifier value of the n-th seeded Patient."""
    return f"hb-bench-{n:06d}"


def fill(template: str, *, res_id: str = "", ident: str, n: str) -> bytes:
    """Substitute the placeholders of a template (values are plain ASCII tokens)."""
    return template.replace("@ID@", res_id).replace("@IDENT@", ident).replace("@N@", n).encode()


@dataclass(slots=True)
class Workload:
    """Seeded (id, identifier) pairs plus how each interaction's request is built."""

    ids: list[tuple[str, str]]

    def request(self, op: str, rng: random.Random, tag: str) -> tuple[str, str, bytes | None]:
        """(method, path, body) of one request of interaction `op`; `tag` makes bodies unique."""
        if op == "create":
            return "POST", "/fhir/Patient", fill(CREATE_TEMPLATE, ident=f"hb-new-{tag}", n=tag)
        res_id, ident = self.ids[rng.randrange(len(self.ids))]
        if op == "read":
            return "GET", f"/fhir/Patient/{res_id}", None
        if op == "update":
            return "PUT", f"/fhir/Patient/{res_id}", fill(UPDATE_TEMPLATE, res_id=res_id, ident=ident, n=tag)
        if op == "cond_read":
            return "GET", "/fhir/Patient?identifier=" + quote(f"{IDENT_SYSTEM}|{ident}", safe=""), None
        raise ValueError(f"unknown interaction {op!r}")

    def save(self, path: Path) -> None:
        """Write the JSON form (Python client) and the line form (wrk's Lua script) side by side."""
        path.write_text(json.dumps({"ids": self.ids}))
        lines = [quote(IDENT_SYSTEM + "|", safe=""), CREATE_TEMPLATE, UPDATE_TEMPLATE]
        lines += [f"{res_id} {ident}" for res_id, ident in self.ids]
        path.with_suffix(".txt").write_text("\n".join(lines) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> Workload:
        """Read what save() wrote."""
        data = json.loads(path.read_text())
        return cls([(str(a), str(b)) for a, b in data["ids"]])
