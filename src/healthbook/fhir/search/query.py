"""Parsing of search query parameters into typed clauses (search.html), before any SQL exists."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

from healthbook.errors import BadRequest
from healthbook.fhir.search.registry import ParamDef, params_for
from healthbook.fhir.validation import resource_types

PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap")
RESULT_PARAMS = frozenset(
    {
        "_count",
        "_sort",
        "_total",
        "_summary",
        "_elements",
        "_include",
        "_include:iterate",
        "_revinclude",
        "_revinclude:iterate",
        "_contained",
        "_containedType",
        "_format",
        "_pretty",
        "_page_offset",
        "_page_until",
        "_page",
        "_type",
    }
)
MAX_OR_VALUES = 1000
MODIFIERS = {
    "token": {"missing", "not", "text", "of-type"},
    "string": {"missing", "exact", "contains"},
    "reference": {"missing", "identifier"},
    "date": {"missing"},
    "number": {"missing"},
    "quantity": {"missing"},
    "uri": {"missing", "below", "above"},
    "composite": {"missing"},
}


@dataclass(frozen=True, slots=True)
class Clause:
    """One parameter occurrence: its values are OR-ed; separate clauses are AND-ed.

    A chained clause (subject:Patient.name=x) keeps the reference parameter here and the clause
    on the target in `chain`, with the target types in `chain_types`. A reverse chain
    (_has:Observation:patient:code=x) has `has` set: (source type, reference parameter code).
    """

    param: ParamDef
    modifier: str | None
    values: tuple[str, ...]
    raw_name: str
    chain: Clause | None = None
    chain_types: tuple[str, ...] = ()
    has: tuple[str, str] | None = None


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


def split_pipes(value: str) -> list[str]:
    """All unescaped-| separated parts, unescaped (type-system|type-code|value)."""
    parts: list[str] = []
    rest: str | None = value
    while rest is not None:
        head, tail = split_pipe_raw(rest)
        parts.append(unescape(head))
        rest = tail
    return parts


def split_pipe_raw(value: str) -> tuple[str, str | None]:
    """The text before the first unescaped |, and the (still escaped) rest or None."""
    i = 0
    while i < len(value):
        if value[i] == "\\":
            i += 2
            continue
        if value[i] == "|":
            return value[:i], value[i + 1 :]
        i += 1
    return value, None


@lru_cache(maxsize=1024)
def common_params(types: tuple[str, ...]) -> dict[str, ParamDef]:
    """Parameters defined (with the same code and type) for every type searched."""
    maps = [params_for(t) for t in types]
    first = maps[0]
    return {
        code: p for code, p in first.items() if all(code in m and m[code].type == p.type for m in maps[1:])
    }


MAX_CHAIN_DEPTH = 4


def parse(types: tuple[str, ...], pairs: list[tuple[str, str]], *, strict: bool) -> ParsedQuery:
    """Parse (name, value) pairs; unknown parameters are ignored or, when strict, rejected."""
    query = ParsedQuery(types=types)
    for name, value in pairs:
        if name in RESULT_PARAMS:
            query.controls.setdefault(name, []).append(value)
            continue
        values = split_or(value)
        if len(values) > MAX_OR_VALUES:
            raise BadRequest(f"'{name}' has more than {MAX_OR_VALUES} values", expression=name)
        try:
            clause = parse_clause(types, name, name, values, depth=0)
        except _Unknown:
            if strict:
                raise BadRequest(
                    f"Unknown or unsupported search parameter '{name}'", expression=name
                ) from None
            query.ignored.append(name)
            continue
        if clause is not None:
            query.clauses.append(clause)
    return query


class _Unknown(Exception):
    """The parameter is not defined for the searched types (lenient handling ignores it)."""


def parse_clause(
    types: tuple[str, ...], name: str, raw: str, values: tuple[str, ...], *, depth: int
) -> Clause | None:
    """One (possibly chained or reverse-chained) parameter against `types`."""
    if depth > MAX_CHAIN_DEPTH:
        raise BadRequest(f"'{raw}' chains more than {MAX_CHAIN_DEPTH} levels", expression=raw)
    if name.startswith("_has:"):
        return _parse_has(types, name, raw, values, depth)
    head, dot, rest = name.partition(".")
    base, _, modifier = head.partition(":")
    known = common_params(types)
    param = known.get(base)
    if param is None or (param.path is None and param.code not in ("_id", "_lastUpdated")):
        if depth == 0:
            raise _Unknown(base)
        raise BadRequest(f"Unknown search parameter '{base}' in chain '{raw}'", expression=raw)
    if param.type == "composite":
        from healthbook.fhir.search.composite import composites_for  # composite imports this module

        if any(param.code not in composites_for(t) for t in types):
            if depth == 0:
                raise _Unknown(base)
            raise BadRequest(
                f"Composite parameter '{base}' is not supported in chain '{raw}'", expression=raw
            )
    if dot:
        return _parse_chain(param, modifier, rest, raw, values, depth)
    if modifier:
        allowed = MODIFIERS.get(param.type, set())
        if param.type == "reference" and modifier[:1].isupper():
            if param.targets and modifier not in param.targets:
                raise BadRequest(f"'{base}' cannot refer to a {modifier}", expression=raw)
        elif modifier not in allowed:
            raise BadRequest(f"Modifier ':{modifier}' is not supported on '{base}'", expression=raw)
    if modifier == "missing" and values not in (("true",), ("false",)):
        raise BadRequest(f"'{raw}' takes true or false", expression=raw)
    kept = tuple(v for v in values if v != "")
    if not kept:
        return None  # an empty parameter value is ignored
    return Clause(param, modifier or None, kept, raw)


def _parse_chain(
    param: ParamDef, modifier: str, rest: str, raw: str, values: tuple[str, ...], depth: int
) -> Clause | None:
    if param.type != "reference":
        raise BadRequest(f"'{param.code}' is not a reference parameter and cannot be chained", expression=raw)
    targets: tuple[str, ...] = (modifier,) if modifier else param.targets
    next_code = rest.partition(".")[0].partition(":")[0]
    usable = tuple(t for t in targets if t in _all_types() and next_code in common_params((t,)))
    if not usable:
        raise BadRequest(f"No target of '{param.code}' has a search parameter '{next_code}'", expression=raw)
    inner = parse_clause(usable, rest, raw, values, depth=depth + 1)
    if inner is None:
        return None
    return Clause(param, None, values, raw, chain=inner, chain_types=usable)


def _parse_has(
    types: tuple[str, ...], name: str, raw: str, values: tuple[str, ...], depth: int
) -> Clause | None:
    parts = name.split(":", 3)
    if len(parts) < 4 or not parts[1] or not parts[2] or not parts[3]:
        raise BadRequest(f"'{raw}' is not of the form _has:Type:reference:parameter", expression=raw)
    _, source, ref_code, rest = parts
    if source not in _all_types():
        raise BadRequest(f"'{source}' in '{raw}' is not a resource type", expression=raw)
    ref = params_for(source).get(ref_code)
    if ref is None or ref.type != "reference":
        raise BadRequest(f"'{ref_code}' is not a reference parameter of {source}", expression=raw)
    if ref.targets and not any(t in ref.targets for t in types):
        raise BadRequest(f"{source}.{ref_code} cannot refer to {'/'.join(types)}", expression=raw)
    inner = parse_clause((source,), rest, raw, values, depth=depth + 1)
    if inner is None:
        return None
    return Clause(ref, None, values, raw, chain=inner, chain_types=(source,), has=(source, ref_code))


def _all_types() -> frozenset[str]:
    return resource_types()


def split_prefix(value: str) -> tuple[str, str]:
    """'ge2020' -> ('ge', '2020'); no prefix means eq."""
    if len(value) > 2 and value[:2] in PREFIXES and not value[:2].isdigit():
        return value[:2], value[2:]
    return "eq", value
