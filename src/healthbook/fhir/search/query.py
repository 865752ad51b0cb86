"""Parsing of search query parameters into typed clauses (search.html), before any SQL exists."""

from __future__ import annotations

from dataclasses import dataclass, field

from healthbook.errors import BadRequest
from healthbook.fhir.search.registry import ParamDef, params_for

PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap")
RESULT_PARAMS = frozenset(
    {
        "_count",
        "_sort",
        "_total",
        "_summary",
        "_elements",
        "_include",
        "_revinclude",
        "_contained",
        "_containedType",
        "_format",
        "_pretty",
        "_page_offset",
        "_page_until",
        "_type",
    }
)
MAX_OR_VALUES = 1000
MODIFIERS = {
    "token": {"missing", "not", "text"},
    "string": {"missing", "exact", "contains"},
    "reference": {"missing"},
    "date": {"missing"},
    "number": {"missing"},
    "quantity": {"missing"},
    "uri": {"missing", "below", "above"},
}


@dataclass(frozen=True, slots=True)
class Clause:
    """One parameter occurrence: its values are OR-ed; separate clauses are AND-ed."""

    param: ParamDef
    modifier: str | None
    values: tuple[str, ...]
    raw_name: str


@dataclass(slots=True)
class ParsedQuery:
    """Everything a search asks for, checked against the parameter definitions."""

    types: tuple[str, ...]
    clauses: list[Clause] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    controls: dict[str, list[str]] = field(default_factory=dict)

    def control(self, name: str) -> str | None:
        """The last value of a result parameter, if given."""
        values = self.controls.get(name)
        return values[-1] if values else None


def split_or(value: str) -> tuple[str, ...]:
    """Split on unescaped commas and undo the \\, \\$ \\| \\\\ escapes."""
    parts: list[str] = []
    cur: list[str] = []
    i = 0
    while i < len(value):
        ch = value[i]
        if ch == "\\" and i + 1 < len(value):
            cur.append("\\" + value[i + 1])
            i += 2
            continue
        if ch == ",":
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
        i += 1
    parts.append("".join(cur))
    return tuple(parts)


def unescape(value: str) -> str:
    """Remove search escapes from one value (after splitting on its separators)."""
    return value.replace("\\,", ",").replace("\\$", "$").replace("\\|", "|").replace("\\\\", "\\")


def split_pipe(value: str) -> tuple[str | None, str]:
    """system|code with escapes respected; no pipe means no system given."""
    i = 0
    while i < len(value):
        if value[i] == "\\":
            i += 2
            continue
        if value[i] == "|":
            return unescape(value[:i]), unescape(value[i + 1 :])
        i += 1
    return None, unescape(value)


def common_params(types: tuple[str, ...]) -> dict[str, ParamDef]:
    """Parameters defined (with the same code and type) for every type searched."""
    maps = [params_for(t) for t in types]
    first = maps[0]
    return {code: p for code, p in first.items() if all(code in m and m[code].type == p.type for m in maps[1:])}


def parse(types: tuple[str, ...], pairs: list[tuple[str, str]], *, strict: bool) -> ParsedQuery:
    """Parse (name, value) pairs; unknown parameters are ignored or, when strict, rejected."""
    query = ParsedQuery(types=types)
    known = common_params(types)
    for name, value in pairs:
        if name in RESULT_PARAMS:
            query.controls.setdefault(name, []).append(value)
            continue
        base, _, modifier = name.partition(":")
        if "." in base:
            raise BadRequest(f"Chained search '{name}' is not supported yet", expression=name)
        param = known.get(base)
        if param is None or (param.path is None and param.code not in ("_id", "_lastUpdated")):
            if strict:
                raise BadRequest(f"Unknown or unsupported search parameter '{name}'", expression=name)
            query.ignored.append(name)
            continue
        if modifier:
            allowed = MODIFIERS.get(param.type, set())
            if param.type == "reference" and modifier[:1].isupper() and modifier in param.targets:
                pass
            elif modifier not in allowed:
                raise BadRequest(f"Modifier ':{modifier}' is not supported on '{base}'", expression=name)
        values = split_or(value)
        if len(values) > MAX_OR_VALUES:
            raise BadRequest(f"'{name}' has more than {MAX_OR_VALUES} values", expression=name)
        if modifier == "missing" and value not in ("true", "false"):
            raise BadRequest(f"'{name}' takes true or false", expression=name)
        if all(v == "" for v in values):
            continue  # an empty parameter value is ignored (search.html 3.1.1.1)
        query.clauses.append(Clause(param, modifier or None, tuple(v for v in values if v != ""), name))
    return query


def split_prefix(value: str) -> tuple[str, str]:
    """'ge2020' -> ('ge', '2020'); no prefix means eq."""
    if len(value) > 2 and value[:2] in PREFIXES and not value[:2].isdigit():
        return value[:2], value[2:]
    return "eq", value
