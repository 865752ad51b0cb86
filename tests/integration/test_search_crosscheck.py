"""Search cross-checked against an independent brute-force evaluator on Synthea patients, on both databases.

Ten Synthea patient bundles are stored through the API (PUT, ids from the `urn:uuid:` fullUrls, every
`urn:uuid:` reference rewritten to `Type/id` first; the ExplanationOfBenefit entries are left out for time).
A few hundred queries are generated from that data with a seeded random generator, and each one is answered
twice: by the server (all pages), and by the small evaluator in this file, which works over the same JSON in
Python following the R4 search specification (search.html). The evaluator shares no code with healthbook's
search: it reads the official SearchParameter definitions, evaluates their FHIRPath expressions with
fhirpathpy (with its own `resolve()` that infers the target type from a literal reference), and implements
the matching rules itself.

Readings of the specification this evaluator takes (and the server has to match):

* dates and times without a time zone are read as UTC; a value covers its implicit range (a day, a second,
  a millisecond), a Period covers [start, end] (an absent end is open);
* numbers and quantities: the resource value is exact, the search value has the implicit range of its
  precision (5.4 = [5.35, 5.45)); eq/ne use that range, gt/lt/ge/le compare with the value exactly, and
  sa/eb follow the general prefix rule (sa: the value lies above the whole range, eb: below it);
* `number||code` matches Quantity.code or Quantity.unit; `number|system|code` matches system and code;
* strings: case- and accent-insensitive prefix match on any part of a HumanName / Address; `:contains`
  anywhere, `:exact` exactly;
* tokens on code/boolean/string elements carry no system; `|code` asks for a value without a system;
* `:missing=true` matches resources without any value the parameter can be searched on;
* chains and `_has` only follow references to resources that exist.
"""

from __future__ import annotations

import gzip
import json
import random
import re
import unicodedata
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from fastapi.testclient import TestClient

from healthbook.app import build_services, create_app
from healthbook.config import Settings

ROOT = Path(__file__).resolve().parents[2]
SYNTHEA = ROOT.parent / "shared" / "test-material" / "synthea-100"
DEFINITIONS = ROOT / "src" / "healthbook" / "fhir" / "definitions" / "r4"
H = {"content-type": "application/fhir+json"}
SEED = 20260401
N_RANDOM = 260  # generated queries on top of the fixed ones

# Ten patients of small and medium size, two of them with accented names (María, Ramón).
PATIENTS = (
    "María_Teresa",
    "Ramón_Sarabia",
    "Ben_Bergstrom",
    "Fannie_Waelchi",
    "Dwain_McGlynn",
    "Catheryn_Macejkovic",
    "Terence_Russel",
    "Felipe_Herman",
    "Shelby_Sawayn",
    "Ulrike_Kovacek",
)

# The largest resources, and no query here is about them: leaving them out keeps the load well under a minute.
SKIPPED_TYPES = frozenset({"ExplanationOfBenefit"})

Doc = dict[str, Any]
Key = tuple[str, str]
Pairs = list[tuple[str, str]]

# ---- the data ----------------------------------------------------------------------------------------------


def _rewrite(value: Any, refs: dict[str, str]) -> Any:
    if isinstance(value, dict):
        return {
            k: (refs.get(v, v) if k == "reference" and isinstance(v, str) else _rewrite(v, refs))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_rewrite(v, refs) for v in value]
    return value


@cache
def synthea_docs() -> tuple[Doc, ...]:
    """The resources of the chosen bundles in PUT order: ids from fullUrls, references as Type/id."""
    out: list[Doc] = []
    for prefix in PATIENTS:
        (path,) = sorted(SYNTHEA.glob(f"{prefix}_*.json.gz"))
        bundle = json.loads(gzip.decompress(path.read_bytes()))
        entries = bundle["entry"]
        refs = {}
        for e in entries:
            assert e["fullUrl"].startswith("urn:uuid:"), e["fullUrl"]
            refs[e["fullUrl"]] = f"{e['resource']['resourceType']}/{e['fullUrl'].removeprefix('urn:uuid:')}"
        for e in entries:
            if e["resource"]["resourceType"] in SKIPPED_TYPES:
                continue
            doc = _rewrite(e["resource"], refs)
            doc["id"] = e["fullUrl"].removeprefix("urn:uuid:")
            out.append(doc)
    return tuple(out)


# ---- FHIRPath for the definitions' expressions (fhirpathpy, with our own resolve()) ------------------------


def _resolve(inputs: list[Any]) -> list[Any]:
    """resolve() for `where(resolve() is Type)`: a stub of the type a literal reference names."""
    from fhirpathpy.engine.nodes import ResourceNode

    out = []
    for item in inputs:
        ref = item.get("reference") if isinstance(item, dict) else None
        if isinstance(ref, str) and not ref.startswith("#"):
            parts = ref.split("/")
            if len(parts) >= 2 and parts[-2][:1].isupper():
                out.append(ResourceNode.create_node({"resourceType": parts[-2], "id": parts[-1]}))
    return out


_AS_OPERATOR = re.compile(r"\(([A-Za-z0-9_.]+) as ([A-Za-z]+)\)")


def per_item(expression: str) -> str:
    """`(X as T)` and `X.as(T)` as the type filter `X.ofType(T)`.

    FHIRPath makes `as` an error on a collection of more than one item, which the R4 definitions plainly do
    not mean: `(Observation.component.value as Quantity)` is the quantity of every component.
    """
    return _AS_OPERATOR.sub(r"\1.ofType(\2)", expression).replace(".as(", ".ofType(")


def union_parts(expression: str) -> list[str]:
    """The top-level `|` operands of an expression (not those inside parentheses or strings)."""
    parts, depth, quoted, start = [], 0, False, 0
    for i, ch in enumerate(expression):
        if ch == "'":
            quoted = not quoted
        elif not quoted and ch == "(":
            depth += 1
        elif not quoted and ch == ")":
            depth -= 1
        elif not quoted and depth == 0 and ch == "|":
            parts.append(expression[start:i].strip())
            start = i + 1
    return [*parts, expression[start:].strip()]


def for_type(expression: str, rtype: str) -> str:
    """Only the union operands that start at this resource type (or at no type): same result, faster."""
    mine = []
    for part in union_parts(expression):
        head = re.match(r"\(*([A-Za-z]+)", part)
        root = head.group(1) if head else ""
        if not root[:1].isupper() or root in (rtype, "Resource", "DomainResource"):
            mine.append(part)
    return " | ".join(mine)


@cache
def _compiled(expression: str) -> Callable[..., list[Any]]:
    import fhirpathpy
    from fhirpathpy.models import models

    expression = per_item(expression)

    options = {"returnRawData": True, "userInvocationTable": {"resolve": {"fn": _resolve, "arity": {0: []}}}}
    fn: Callable[..., list[Any]] = fhirpathpy.compile(expression, model=models["r4"], options=options)
    return fn


def fhirpath(expression: str, doc: Doc) -> list[Any]:
    """The JSON values an expression selects (primitive extension companions dropped)."""
    from fhirpathpy.engine.nodes import ResourceNode

    out = []
    for item in _compiled(expression)(doc, None):
        value = item.data if isinstance(item, ResourceNode) else item
        if value is None or (isinstance(value, dict) and list(value) == ["extension"]):
            continue
        out.append(value)
    return out


@dataclass(frozen=True)
class Param:
    code: str
    type: str
    expression: str
    targets: tuple[str, ...]


@cache
def definitions() -> dict[str, dict[str, Param]]:
    """Search parameters by resource type and code, from the official definitions."""
    out: dict[str, dict[str, Param]] = defaultdict(dict)
    for sp in json.loads((DEFINITIONS / "searchparams.json").read_text(encoding="utf-8")):
        if not sp.get("expression"):
            continue
        for base in sp["base"]:
            out[base][sp["code"]] = Param(
                sp["code"], sp["type"], sp["expression"], tuple(sp.get("target", []))
            )
    return out


def param(rtype: str, code: str) -> Param:
    found = definitions()[rtype].get(code) or definitions()["Resource"].get(code)
    assert found is not None, f"{rtype} has no search parameter {code}"
    return found


@cache
def compartment_params(rtype: str) -> tuple[str, ...]:
    patient: dict[str, list[str]] = json.loads((DEFINITIONS / "compartments.json").read_text())["Patient"]
    return tuple(patient.get(rtype, []))


# ---- value semantics (search.html) -------------------------------------------------------------------------

_UTC_MIN = datetime(1, 1, 1, tzinfo=UTC)
_UTC_MAX = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
_DATE = re.compile(
    r"^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?(Z|[+-]\d{2}:\d{2})?)?)?)?$"
)


def date_range(text: str) -> tuple[datetime, datetime]:
    """[low, high) of a date, dateTime or instant at its own precision; no zone means UTC."""
    m = _DATE.match(text)
    if not m:
        raise ValueError(text)
    y, mo, d, hh, mi, ss, frac, tz = m.groups()
    zone = UTC
    if tz and tz != "Z":
        zone = datetime.fromisoformat(f"2000-01-01T00:00:00{tz}").tzinfo or UTC
    if mo is None:
        return datetime(int(y), 1, 1, tzinfo=UTC), datetime(int(y) + 1, 1, 1, tzinfo=UTC)
    if d is None:
        low = datetime(int(y), int(mo), 1, tzinfo=UTC)
        high = datetime(int(y) + (int(mo) == 12), int(mo) % 12 + 1, 1, tzinfo=UTC)
        return low, high
    if hh is None:
        low = datetime(int(y), int(mo), int(d), tzinfo=UTC)
        return low, low + timedelta(days=1)
    if ss is None:
        low = datetime(int(y), int(mo), int(d), int(hh), int(mi), tzinfo=zone)
        return low, low + timedelta(minutes=1)
    micro = int((frac or "0")[:6].ljust(6, "0"))
    low = datetime(int(y), int(mo), int(d), int(hh), int(mi), int(ss), micro, tzinfo=zone)
    step = timedelta(microseconds=10 ** max(0, 6 - len(frac))) if frac else timedelta(seconds=1)
    return low, low + step


def date_values(value: Any) -> list[tuple[datetime, datetime]]:
    if isinstance(value, str):
        try:
            return [date_range(value)]
        except ValueError:
            return []
    if isinstance(value, dict) and ("start" in value or "end" in value):  # Period
        low = date_range(value["start"])[0] if isinstance(value.get("start"), str) else _UTC_MIN
        high = date_range(value["end"])[1] if isinstance(value.get("end"), str) else _UTC_MAX
        return [(low, high)]
    if isinstance(value, dict) and isinstance(value.get("event"), list):  # Timing
        return [r for e in value["event"] for r in date_values(e)]
    return []


def date_matches(prefix: str, target: tuple[datetime, datetime], search: tuple[datetime, datetime]) -> bool:
    (tlo, thi), (slo, shi) = target, search
    contains = slo <= tlo and thi <= shi
    return {
        "eq": contains,
        "ne": not contains,
        "gt": thi > shi,
        "lt": tlo < slo,
        "ge": thi > shi or contains,
        "le": tlo < slo or contains,
        "sa": tlo >= shi,
        "eb": thi <= slo,
    }[prefix]


def fold(text: str) -> str:
    """Case- and accent-insensitive form."""
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c)).casefold()


def string_values(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if not isinstance(value, dict):
        return []
    out: list[str] = []
    if {"family", "given", "prefix", "suffix"} & value.keys() or ("text" in value and "line" not in value):
        keys: tuple[str, ...] = ("text", "family", "given", "prefix", "suffix")  # HumanName
    else:
        keys = ("text", "line", "city", "district", "state", "postalCode", "country")  # Address
    for key in keys:
        part = value.get(key)
        out += [part] if isinstance(part, str) else [p for p in part or [] if isinstance(p, str)]
    return out


_CONTACT_KINDS = {"phone", "fax", "email", "pager", "url", "sms", "other"}


def token_values(value: Any) -> list[tuple[str | None, str]]:
    """(system, code) pairs of a Coding, CodeableConcept, Identifier, ContactPoint, code or boolean."""
    if isinstance(value, bool):
        return [(None, "true" if value else "false")]
    if isinstance(value, str):
        return [(None, value)]
    if not isinstance(value, dict):
        return []
    if "coding" in value:
        return [p for c in value["coding"] or [] for p in token_values(c)]
    if "code" in value and isinstance(value["code"], str):
        return [(value.get("system"), value["code"])]
    if isinstance(value.get("value"), str):
        system = value.get("system")
        if system in _CONTACT_KINDS:
            system = None
        return [(system, value["value"])]
    return []


def token_matches(pairs: list[tuple[str | None, str]], query: str) -> bool:
    if "|" in query:
        system, code = query.split("|", 1)
        if system == "":
            return any(s is None and c == code for s, c in pairs)
        if code == "":
            return any(s == system for s, _ in pairs)
        return any(s == system and c == code for s, c in pairs)
    return any(c == query for _, c in pairs)


def number_range(text: str) -> tuple[Decimal, Decimal, Decimal]:
    value = Decimal(text)
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int)
    half = Decimal(5).scaleb(exponent - 1)
    return value, value - half, value + half


def number_matches(prefix: str, value: Decimal, search: str) -> bool:
    n, low, high = number_range(search)
    return {
        "eq": low <= value < high,
        "ne": not low <= value < high,
        "gt": value > n,
        "lt": value < n,
        "ge": value >= n,
        "le": value <= n,
        "sa": value >= high,
        "eb": value < low,
    }[prefix]


def quantity_values(value: Any) -> list[tuple[Decimal, str | None, str | None, str | None]]:
    if (
        isinstance(value, dict)
        and isinstance(value.get("value"), int | float)
        and not isinstance(value["value"], bool)
    ):
        return [(Decimal(str(value["value"])), value.get("system"), value.get("code"), value.get("unit"))]
    return []


def reference_values(value: Any) -> list[Key]:
    ref = value.get("reference") if isinstance(value, dict) else None
    if isinstance(ref, str) and not ref.startswith("#"):
        parts = ref.split("/")
        if len(parts) == 2 and parts[0][:1].isupper():
            return [(parts[0], parts[1])]
    return []


def split_prefix(value: str) -> tuple[str, str]:
    if len(value) > 2 and value[:2] in ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb"):
        return value[:2], value[2:]
    return "eq", value


# ---- the brute-force evaluator -----------------------------------------------------------------------------


class Brute:
    """Answers a search by scanning every stored resource of the type."""

    def __init__(self, docs: tuple[Doc, ...]) -> None:
        latest: dict[Key, Doc] = {}
        for doc in docs:
            latest[(doc["resourceType"], doc["id"])] = doc  # a later PUT of the same id replaces it
        self.docs = latest
        self.by_type: dict[str, list[Doc]] = defaultdict(list)
        for (rtype, _), doc in sorted(latest.items()):
            self.by_type[rtype].append(doc)
        self._values: dict[tuple[str, str], dict[str, list[Any]]] = {}

    def values(self, rtype: str, code: str) -> dict[str, list[Any]]:
        """The searchable values of one parameter in every resource of the type (cached)."""
        key = (rtype, code)
        if key not in self._values:
            p = param(rtype, code)
            conv: Callable[[Any], list[Any]] = {
                "token": token_values,
                "string": string_values,
                "date": date_values,
                "quantity": quantity_values,
                "number": lambda v: [Decimal(str(v))] if isinstance(v, int | float) else [],
                "reference": reference_values,
                "uri": lambda v: [v] if isinstance(v, str) else [],
            }[p.type]
            expression = for_type(p.expression, rtype)
            self._values[key] = {
                doc["id"]: [x for v in fhirpath(expression, doc) for x in conv(v)] if expression else []
                for doc in self.by_type[rtype]
            }
        return self._values[key]

    def search(self, rtype: str, pairs: Pairs, compartment: str | None = None) -> set[str]:
        ids = {d["id"] for d in self.by_type[rtype]}
        if compartment is not None:
            ids = {
                rid
                for rid in ids
                if any(
                    ("Patient", compartment) in self.values(rtype, c)[rid] for c in compartment_params(rtype)
                )
            }
        for name, value in pairs:
            if name == "_count":
                continue
            ids &= self.clause(rtype, name, _split_or(value))
        return ids

    def clause(self, rtype: str, name: str, values: list[str]) -> set[str]:
        """Ids of `rtype` resources matching one parameter occurrence (its values OR-ed)."""
        if name.startswith("_has:"):
            _, source, ref_code, rest = name.split(":", 3)
            sources = self.clause(source, rest, values)
            refs = self.values(source, ref_code)
            return {
                tid
                for sid in sources
                for ttype, tid in refs[sid]
                if ttype == rtype and (rtype, tid) in self.docs
            }
        head, _, rest = name.partition(".")
        code, _, modifier = head.partition(":")
        if rest:  # chain: code[:Type].rest, over the target types that define the next parameter
            next_code = rest.partition(".")[0].partition(":")[0]
            types = [modifier] if modifier else list(param(rtype, code).targets)
            types = [
                t for t in types if next_code in definitions()[t] or next_code in definitions()["Resource"]
            ]
            hits = {(t, tid) for t in types for tid in self.clause(t, rest, values)}
            refs = self.values(rtype, code)
            return {rid for rid, targets in refs.items() if any(t in hits for t in targets)}
        if code == "_id":
            return {d["id"] for d in self.by_type[rtype] if d["id"] in values}
        p = param(rtype, code)
        by_id = self.values(rtype, code)
        if modifier == "missing":
            want_missing = values == ["true"]
            return {rid for rid, vals in by_id.items() if (not vals) == want_missing}
        if modifier == "not":
            return {rid for rid, vals in by_id.items() if not any(token_matches(vals, v) for v in values)}
        match = self._matcher(p, modifier)
        return {rid for rid, vals in by_id.items() if any(match(vals, v) for v in values)}

    def _matcher(self, p: Param, modifier: str) -> Callable[[list[Any], str], bool]:
        if p.type == "token":
            return token_matches
        if p.type == "string":
            if modifier == "exact":
                return lambda vals, q: q in vals
            if modifier == "contains":
                return lambda vals, q: any(fold(q) in fold(v) for v in vals)
            return lambda vals, q: any(fold(v).startswith(fold(q)) for v in vals)
        if p.type == "date":

            def date(vals: list[Any], q: str) -> bool:
                prefix, text = split_prefix(q)
                search = date_range(text)
                return any(date_matches(prefix, v, search) for v in vals)

            return date
        if p.type == "quantity":

            def quantity(vals: list[Any], q: str) -> bool:
                prefix, text = split_prefix(q)
                number, _, rest = text.partition("|")
                system, _, code = rest.partition("|")
                return any(
                    number_matches(prefix, v, number)
                    and (not system or system == s)
                    and (not code or (code == c if system else code in (c, u)))
                    for v, s, c, u in vals
                )

            return quantity
        if p.type == "reference":

            def reference(vals: list[Any], q: str) -> bool:
                if modifier:  # :Type
                    return (modifier, q) in vals
                if "/" in q:
                    t, _, i = q.partition("/")
                    return (t, i) in vals
                return any(i == q and (not p.targets or t in p.targets) for t, i in vals)

            return reference
        raise AssertionError(f"no matcher for {p.type}")


def _split_or(value: str) -> list[str]:
    parts, cur, i = [], "", 0
    while i < len(value):
        if value[i] == "\\" and i + 1 < len(value):
            cur += value[i + 1]
            i += 2
            continue
        if value[i] == ",":
            parts.append(cur)
            cur = ""
        else:
            cur += value[i]
        i += 1
    return [*parts, cur]


# ---- the queries -------------------------------------------------------------------------------------------


@dataclass
class Query:
    rtype: str
    pairs: Pairs
    compartment: str | None = None
    kind: str = ""
    expected: set[str] = field(default_factory=set)

    def url(self) -> str:
        path = f"/fhir/Patient/{self.compartment}/{self.rtype}" if self.compartment else f"/fhir/{self.rtype}"
        return f"{path}?{urlencode([*self.pairs, ('_count', '1000')], quote_via=quote, safe='|,:/')}"

    def __str__(self) -> str:
        path = f"Patient/{self.compartment}/{self.rtype}" if self.compartment else self.rtype
        return f"{path}?" + "&".join(f"{k}={v}" for k, v in self.pairs)


class NoValue(Exception):
    """The loaded data has no value for the parameter a generator picked: draw again."""


class Generator:
    """Deterministic queries drawn from the loaded data."""

    def __init__(self, brute: Brute, rng: random.Random) -> None:
        self.b = brute
        self.rng = rng

    def pick(self, seq: list[Any]) -> Any:
        return seq[self.rng.randrange(len(seq))]

    def some_value(self, rtype: str, code: str) -> Any:
        values = [v for vals in self.b.values(rtype, code).values() for v in vals]
        if not values:
            raise NoValue(f"{rtype}.{code}")
        return self.pick(sorted(values, key=repr))

    def some_id(self, rtype: str) -> str:
        return str(self.pick(self.b.by_type[rtype])["id"])

    def token(self) -> Query:
        rtype, code = self.pick(
            [
                ("Patient", "gender"),
                ("Patient", "identifier"),
                ("Patient", "language"),
                ("Patient", "active"),
                ("Observation", "code"),
                ("Observation", "category"),
                ("Observation", "status"),
                ("Observation", "value-concept"),
                ("Observation", "component-code"),
                ("Condition", "code"),
                ("Condition", "clinical-status"),
                ("Condition", "verification-status"),
                ("Encounter", "class"),
                ("Encounter", "type"),
                ("Encounter", "status"),
                ("Immunization", "vaccine-code"),
                ("MedicationRequest", "code"),
                ("MedicationRequest", "status"),
                ("MedicationRequest", "intent"),
                ("Procedure", "code"),
                ("DiagnosticReport", "category"),
                ("Practitioner", "identifier"),
                ("Organization", "type"),
                ("CarePlan", "category"),
                ("Claim", "use"),
            ]
        )
        system, value = self.some_value(rtype, code)
        form = self.rng.randrange(6)
        if form == 0 and system:
            q = f"{system}|{value}"
        elif form == 1 and system:
            q = f"{system}|"
        elif form == 2:
            q = f"|{value}"
        elif form == 3:
            other_sys, other = self.some_value(rtype, code)
            q = f"{value},{other_sys + '|' if other_sys else ''}{other}"
        else:
            q = value
        modifier = ":not" if self.rng.random() < 0.2 and "," not in q else ""
        return Query(rtype, [(code + modifier, q)], kind="token" + modifier)

    def string(self) -> Query:
        rtype, code = self.pick(
            [
                ("Patient", "name"),
                ("Patient", "family"),
                ("Patient", "given"),
                ("Patient", "address-city"),
                ("Patient", "address"),
                ("Patient", "address-state"),
                ("Practitioner", "name"),
                ("Practitioner", "family"),
                ("Organization", "name"),
                ("Organization", "address-city"),
            ]
        )
        text = str(self.some_value(rtype, code))
        form = self.rng.randrange(6)
        if form == 0:
            return Query(rtype, [(code + ":exact", text)], kind="string:exact")
        if form == 1:
            swapped = text.swapcase() if text.swapcase() != text else text + "x"
            return Query(rtype, [(code + ":exact", swapped)], kind="string:exact")
        if form == 2 and len(text) > 3:
            start = self.rng.randrange(1, len(text) - 2)
            sub = text[start : start + self.rng.randrange(2, 4)].strip() or text
            return Query(rtype, [(code + ":contains", sub.upper())], kind="string:contains")
        prefix = text[: self.rng.randrange(1, min(6, len(text)) + 1)]
        if form == 3:
            prefix = fold(prefix)  # without accents
        elif form == 4:
            prefix = prefix.upper()
        return Query(rtype, [(code, prefix)], kind="string")

    def date(self) -> Query:
        rtype, code = self.pick(
            [
                ("Patient", "birthdate"),
                ("Observation", "date"),
                ("Encounter", "date"),
                ("Condition", "onset-date"),
                ("Condition", "abatement-date"),
                ("Procedure", "date"),
                ("Immunization", "date"),
                ("MedicationRequest", "authoredon"),
                ("DiagnosticReport", "issued"),
                ("CarePlan", "date"),
            ]
        )
        low, high = self.some_value(rtype, code)
        when = low if low != _UTC_MIN else high - timedelta(days=1)
        when = when.astimezone(UTC) + timedelta(hours=self.rng.choice([0, 0, -5, 30]))
        precision = self.rng.randrange(4)
        text = [
            f"{when.year:04d}",
            f"{when.year:04d}-{when.month:02d}",
            f"{when.year:04d}-{when.month:02d}-{when.day:02d}",
            when.strftime("%Y-%m-%dT%H:%M:%SZ"),
        ][precision]
        prefix = self.pick(["", "eq", "ne", "gt", "lt", "ge", "le", "sa", "eb"])
        return Query(rtype, [(code, prefix + text)], kind=f"date {prefix or 'eq'}")

    def quantity(self) -> Query:
        code = self.pick(
            ["value-quantity", "value-quantity", "component-value-quantity", "combo-value-quantity"]
        )
        value, system, unit_code, unit = self.some_value("Observation", code)
        prefix = self.pick(["", "eq", "ne", "gt", "lt", "ge", "le", "sa", "eb"])
        number = str(value)
        if self.rng.random() < 0.4:
            number = str(round(value)) if self.rng.random() < 0.5 else f"{value:.1f}"
        form = self.rng.randrange(4)
        if form == 1:
            number += f"|{system}|{unit_code}"
        elif form == 2:
            number += f"||{unit}"
        elif form == 3:
            number += "|http://unitsofmeasure.org|kg"
        return Query("Observation", [(code, prefix + number)], kind=f"quantity {prefix or 'eq'}")

    def reference(self) -> Query:
        rtype, code = self.pick(
            [
                ("Observation", "subject"),
                ("Observation", "patient"),
                ("Observation", "encounter"),
                ("Encounter", "subject"),
                ("Encounter", "participant"),
                ("Encounter", "service-provider"),
                ("Condition", "patient"),
                ("Condition", "encounter"),
                ("Procedure", "patient"),
                ("MedicationRequest", "requester"),
                ("DiagnosticReport", "result"),
                ("Immunization", "patient"),
                ("CareTeam", "participant"),
                ("Claim", "provider"),
            ]
        )
        ttype, tid = self.some_value(rtype, code)
        form = self.rng.randrange(4)
        if form == 0:
            return Query(rtype, [(code, f"{ttype}/{tid}")], kind="reference")
        if form == 1:
            return Query(rtype, [(code, tid)], kind="reference id")
        if form == 2:
            return Query(rtype, [(f"{code}:{ttype}", tid)], kind="reference :Type")
        return Query(rtype, [(code, f"Group/{tid}")], kind="reference wrong type")

    def missing(self) -> Query:
        rtype, code = self.pick(
            [
                ("Observation", "value-quantity"),
                ("Observation", "value-concept"),
                ("Observation", "component-code"),
                ("Observation", "encounter"),
                ("Condition", "abatement-date"),
                ("Procedure", "reason-code"),
                ("MedicationRequest", "encounter"),
                ("Patient", "deceased"),
                ("Patient", "address-city"),
                ("Encounter", "reason-code"),
                ("CarePlan", "encounter"),
            ]
        )
        return Query(rtype, [(code + ":missing", self.pick(["true", "false"]))], kind=":missing")

    def ids(self) -> Query:
        rtype = self.pick(["Patient", "Observation", "Encounter", "Practitioner"])
        chosen = [self.some_id(rtype) for _ in range(self.rng.randrange(1, 4))]
        if self.rng.random() < 0.3:
            chosen.append("no-such-id")
        return Query(rtype, [("_id", ",".join(chosen))], kind="_id")

    def chain(self) -> Query:
        form = self.rng.randrange(6)
        if form == 0:
            return Query(
                "Observation", [("patient.gender", self.some_value("Patient", "gender")[1])], kind="chain"
            )
        if form == 1:
            low, _ = self.some_value("Patient", "birthdate")
            q = self.pick(["ge", "lt", "eq"]) + f"{low.year:04d}"
            return Query("Encounter", [("subject:Patient.birthdate", q)], kind="chain")
        if form == 2:
            return Query(
                "Observation", [("encounter.class", self.some_value("Encounter", "class")[1])], kind="chain"
            )
        if form == 3:
            name = self.some_value("Organization", "name")[:4]
            return Query("Encounter", [("service-provider.name", name)], kind="chain")
        if form == 4:
            family = self.some_value("Patient", "family")[:3]
            return Query("Condition", [("subject:Patient.family", family)], kind="chain")
        family = self.some_value("Practitioner", "family")[:3]
        return Query("Observation", [("encounter.participant:Practitioner.family", family)], kind="chain 2")

    def has(self) -> Query:
        form = self.rng.randrange(4)
        if form == 0:
            code = self.some_value("Observation", "code")[1]
            return Query("Patient", [("_has:Observation:patient:code", code)], kind="_has")
        if form == 1:
            code = self.some_value("Condition", "code")[1]
            return Query("Patient", [("_has:Condition:subject:code", code)], kind="_has")
        if form == 2:
            code = self.some_value("Observation", "code")[1]
            return Query("Encounter", [("_has:Observation:encounter:code", code)], kind="_has")
        klass = self.some_value("Encounter", "class")[1]
        return Query("Practitioner", [("_has:Encounter:participant:class", klass)], kind="_has")

    def compartment(self) -> Query:
        pid = self.some_id("Patient")
        rtype = self.pick(
            ["Observation", "Encounter", "Condition", "Procedure", "Immunization", "MedicationRequest"]
        )
        pairs: Pairs = []
        if rtype == "Observation":
            pairs = [("code", self.some_value("Observation", "code")[1])]
        elif rtype == "Condition" and self.rng.random() < 0.5:
            pairs = [("clinical-status", "active")]
        elif rtype == "Procedure":
            pairs = [("date", "ge2010")]
        return Query(rtype, pairs, compartment=pid, kind="compartment")

    def combined(self) -> Query:
        pid = self.some_id("Patient")
        form = self.rng.randrange(3)
        if form == 0:
            code = self.some_value("Observation", "code")[1]
            return Query("Observation", [("code", code), ("date", "ge2015")], kind="and")
        if form == 1:
            return Query("Observation", [("patient", pid), ("category", "vital-signs")], kind="and")
        return Query("Encounter", [("patient", f"Patient/{pid}"), ("date", "lt2012-06")], kind="and")


FIXED: list[tuple[str, Pairs]] = [
    ("Patient", []),
    ("Patient", [("gender", "male,female")]),
    ("Patient", [("gender:not", "male")]),
    ("Patient", [("deceased", "true")]),
    ("Patient", [("deceased", "false")]),
    ("Patient", [("name", "maria")]),
    ("Patient", [("name", "MARÍA")]),
    ("Patient", [("given:exact", "María Teresa")]),
    ("Patient", [("given:exact", "Maria Teresa")]),
    ("Patient", [("given", "teresa")]),
    ("Patient", [("name:contains", "amó")]),
    ("Patient", [("address-state", "massachusetts")]),
    ("Patient", [("identifier", "http://hl7.org/fhir/sid/us-ssn|")]),
    ("Patient", [("identifier", "|999-53-9924")]),
    ("Patient", [("birthdate", "ge2000"), ("birthdate", "lt2010")]),
    ("Observation", [("status", "final")]),
    ("Observation", [("code", "http://loinc.org|8302-2")]),
    ("Observation", [("code", "8302-2,29463-7")]),
    ("Observation", [("value-quantity", "gt100||cm")]),
    ("Observation", [("value-quantity", "lt50|http://unitsofmeasure.org|kg")]),
    ("Observation", [("component-value-quantity", "ge140")]),
    ("Observation", [("value-string", "a")]),
    ("Encounter", [("class", "http://terminology.hl7.org/CodeSystem/v3-ActCode|EMER")]),
    ("Condition", [("abatement-date:missing", "false"), ("clinical-status", "active")]),
    ("DiagnosticReport", [("issued", "ge2019-01-01T00:00:00Z")]),
    ("DiagnosticReport", [("issued", "lt2017-06-01T09:30:00+07:00")]),
    ("Encounter", [("date", "ge2015-10-04T15:48:04-04:00"), ("date", "le2015-10-04T16:18:04-04:00")]),
    # tokens are case-sensitive; LIKE wildcards in strings are literal characters
    ("Patient", [("gender", "MALE")]),
    ("Observation", [("category", "Vital-Signs")]),
    ("Patient", [("family", "%")]),
    ("Patient", [("name", "_")]),
    ("Patient", [("address:contains", "a%e")]),
    ("Patient", [("address-postalcode", "01")]),
    ("Observation", [("value-quantity", "ge100|http://unitsofmeasure.org|")]),
    ("Observation", [("value-quantity", "sa50")]),
    ("Observation", [("value-quantity", "eb50")]),
]


def build_queries(brute: Brute) -> list[Query]:
    rng = random.Random(SEED)
    gen = Generator(brute, rng)
    makers = [
        (gen.token, 6),
        (gen.string, 5),
        (gen.date, 6),
        (gen.quantity, 4),
        (gen.reference, 4),
        (gen.missing, 2),
        (gen.ids, 1),
        (gen.chain, 3),
        (gen.has, 2),
        (gen.compartment, 2),
        (gen.combined, 2),
    ]
    weighted = [m for m, w in makers for _ in range(w)]
    queries = [Query(rtype, pairs, kind="fixed") for rtype, pairs in FIXED]
    while len(queries) < len(FIXED) + N_RANDOM:
        try:
            queries.append(rng.choice(weighted)())
        except NoValue:
            continue
    for q in queries:
        q.expected = brute.search(q.rtype, q.pairs, q.compartment)
    return queries


@cache
def prepared() -> tuple[tuple[Doc, ...], tuple[Query, ...]]:
    docs = synthea_docs()
    return docs, tuple(build_queries(Brute(docs)))


# ---- the test ----------------------------------------------------------------------------------------------


def _fast_url(db_url: str) -> str:
    """The same database without waiting for each commit to reach the disk (the data is thrown away)."""
    if db_url.startswith("postgresql"):
        return db_url + ("&" if "?" in db_url else "?") + "options=-c%20synchronous_commit%3Doff"
    return db_url


def _server_ids(client: TestClient, url: str) -> tuple[list[str], str | None]:
    ids: list[str] = []
    next_url: str | None = url
    pages = 0
    while next_url:
        r = client.get(next_url)
        if r.status_code != 200:
            return ids, f"HTTP {r.status_code}: {r.text[:300]}"
        bundle = r.json()
        ids += [e["resource"]["id"] for e in bundle.get("entry", []) if e["search"]["mode"] == "match"]
        links = {link["relation"]: link["url"] for link in bundle.get("link", [])}
        next_url = links.get("next", "").replace("http://testserver", "") or None
        pages += 1
        assert pages < 100, url
    return ids, None


@pytest.fixture
def synthea_client(db_url: str) -> Iterator[TestClient]:
    if not SYNTHEA.is_dir():
        pytest.skip(f"test material not found: {SYNTHEA}")
    settings = Settings(database_url=_fast_url(db_url), pool_size=5, sqlite_synchronous="OFF")
    services = build_services(settings)
    with TestClient(create_app(settings, services)) as client:
        yield client
    services.fhir.db.dispose()


@pytest.mark.slow
def test_search_matches_brute_force_on_synthea(synthea_client: TestClient) -> None:
    docs, queries = prepared()
    for doc in docs:
        r = synthea_client.put(f"/fhir/{doc['resourceType']}/{doc['id']}", json=doc, headers=H)
        assert r.status_code in (200, 201), (doc["resourceType"], doc["id"], r.text[:500])

    # The generated set must exercise something: most queries find resources, some find none.
    non_empty = sum(1 for q in queries if q.expected)
    assert len(queries) >= 250
    assert non_empty >= 0.6 * len(queries), f"only {non_empty} of {len(queries)} queries match anything"
    assert non_empty < len(queries)

    mismatches = []
    for q in queries:
        got, error = _server_ids(synthea_client, q.url())
        if error is not None:
            mismatches.append(f"{q}  [{q.kind}]  {error}")
            continue
        dupes = len(got) - len(set(got))
        if set(got) != q.expected or dupes:
            missing = sorted(q.expected - set(got))
            extra = sorted(set(got) - q.expected)
            mismatches.append(
                f"{q}  [{q.kind}]  expected {len(q.expected)}, got {len(got)} ({dupes} duplicates); "
                f"missing {missing[:3]}{'...' if len(missing) > 3 else ''} "
                f"extra {extra[:3]}{'...' if len(extra) > 3 else ''}"
            )
    assert not mismatches, f"{len(mismatches)} of {len(queries)} queries differ:\n" + "\n".join(mismatches)
