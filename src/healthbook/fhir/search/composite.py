"""Composite search parameters (code-value-quantity=http://loinc.org|8480-6$gt100): both values on one element.

Two-component composites whose first component is a token are indexed: one row per element holds
the hashed token of component 1 and the value of component 2 (token, quantity, number, date, string
or reference), so both conditions apply to the same component, as the specification requires.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from sqlalchemy import ColumnElement, and_, or_

from healthbook.errors import BadRequest
from healthbook.fhir.definitions import load_json
from healthbook.fhir.fhirpath import CompiledPath, Node, Unsupported, compile_path
from healthbook.fhir.hashing import hash63
from healthbook.fhir.search.query import split_pipe, split_prefix, unescape
from healthbook.fhir.search.values import MAX_US, date_range, fold

SECOND_TYPES = frozenset({"token", "quantity", "number", "date", "string", "reference"})


@dataclass(frozen=True, slots=True)
class CompositeDef:
    """A composite parameter of one resource type, compiled."""

    code: str
    base: CompiledPath
    first: CompiledPath
    second: CompiledPath
    second_type: str


@cache
def composites_for(res_type: str) -> dict[str, CompositeDef]:
    """The indexable composite parameters of a type, by code."""
    definitions = load_json("searchparams.json")
    by_url = {sp["url"]: sp for sp in definitions}
    out: dict[str, CompositeDef] = {}
    for sp in definitions:
        if sp["type"] != "composite" or res_type not in sp["base"] or len(sp["component"]) != 2:
            continue
        first_def, second_def = (by_url.get(c["definition"]) for c in sp["component"])
        if first_def is None or second_def is None or first_def["type"] != "token":
            continue
        if second_def["type"] not in SECOND_TYPES:
            continue
        parts = [p.strip() for p in sp["expression"].split(" | ")]
        mine = " | ".join(p for p in parts if p.split(".", 1)[0] == res_type)
        try:
            out[sp["code"]] = CompositeDef(
                sp["code"],
                compile_path(mine),
                compile_path(sp["component"][0]["expression"]),
                compile_path(sp["component"][1]["expression"]),
                second_def["type"],
            )
        except Unsupported:
            continue
    return out


def _token_keys(value: Any) -> list[tuple[str | None, str]]:
    """(system, code) pairs of a CodeableConcept, Coding, Identifier, code or boolean value."""
    if isinstance(value, dict):
        if "coding" in value:
            return [
                (c.get("system"), c["code"])
                for c in value["coding"] or []
                if isinstance(c, dict) and isinstance(c.get("code"), str)
            ]
        if isinstance(value.get("code"), str):
            return [(value.get("system"), value["code"])]
        if isinstance(value.get("value"), str):
            return [(value.get("system"), value["value"])]
        return []
    if isinstance(value, bool):
        return [(None, "true" if value else "false")]
    if isinstance(value, str):
        return [(None, value)]
    return []


def _second_values(kind: str, node: Node) -> list[dict[str, Any]]:
    v = node.value
    if kind == "token":
        return [
            {"c2_hash_code": hash63(code), "c2_hash_sys_code": hash63(sys or "", code)}
            for sys, code in _token_keys(v)
        ]
    if kind in ("quantity", "number"):
        value = v.get("value") if isinstance(v, dict) else v
        if isinstance(value, int | float) and not isinstance(value, bool):
            code = v.get("code") or v.get("unit") if isinstance(v, dict) else None
            system = v.get("system") if isinstance(v, dict) else None
            return [{"c2_low": float(value), "c2_high": float(value), "c2_code": code, "c2_system": system}]
        return []
    if kind == "date":
        try:
            if isinstance(v, str):
                low, high = date_range(v)
            elif isinstance(v, dict) and ("start" in v or "end" in v):
                low = date_range(v["start"])[0] if isinstance(v.get("start"), str) else -MAX_US
                high = date_range(v["end"])[1] if isinstance(v.get("end"), str) else MAX_US
            else:
                return []
        except (ValueError, OverflowError):
            return []
        return [{"c2_dlow": low, "c2_dhigh": high}]
    if kind == "string" and isinstance(v, str):
        return [{"c2_text": fold(v)[:2000]}]
    if kind == "reference" and isinstance(v, dict) and isinstance(v.get("reference"), str):
        return [{"c2_text": v["reference"][:2000]}]
    return []


_EMPTY = {
    "c2_hash_code": None,
    "c2_hash_sys_code": None,
    "c2_low": None,
    "c2_high": None,
    "c2_code": None,
    "c2_system": None,
    "c2_dlow": None,
    "c2_dhigh": None,
    "c2_text": None,
}


def extract_composites(resource: dict[str, Any]) -> list[dict[str, Any]]:
    """idx_composite rows (without owner columns) for every indexable composite parameter."""
    rtype = str(resource.get("resourceType"))
    rows: list[dict[str, Any]] = []
    for code, definition in composites_for(rtype).items():
        for element in definition.base.evaluate(resource):
            if not isinstance(element.value, dict):
                continue
            firsts = [k for n in definition.first.evaluate(element.value) for k in _token_keys(n.value)]
            seconds = [
                s
                for n in definition.second.evaluate(element.value)
                for s in _second_values(definition.second_type, n)
            ]
            for system, first_code in firsts:
                for second in seconds:
                    rows.append(
                        {
                            **_EMPTY,
                            "param": code,
                            "c1_hash_code": hash63(rtype, code, first_code),
                            "c1_hash_sys_code": hash63(rtype, code, system or "", first_code),
                            **second,
                        }
                    )
    return rows


def composite_value_condition(
    table: Any, rtype_list: tuple[str, ...], definition: CompositeDef, value: str, name: str
) -> ColumnElement[bool]:
    """One `first$second` value of a composite parameter."""
    from healthbook.fhir.search.sql import number_condition, range_condition

    parts = _split_dollar(value)
    if len(parts) != 2:
        raise BadRequest(f"'{value[:80]}' is not of the form value1$value2 for '{name}'", expression=name)
    c = table.c
    system, code = split_pipe(parts[0])
    first = or_(
        *(
            c.c1_hash_code == hash63(t, definition.code, code)
            if system is None
            else (c.c1_hash_code == hash63(t, definition.code, code))
            & (c.c1_hash_sys_code == hash63(t, definition.code, system, code))
            for t in rtype_list
        )
    )
    raw = parts[1]
    kind = definition.second_type
    if kind == "token":
        s_system, s_code = split_pipe(raw)
        second = (
            c.c2_hash_code == hash63(s_code)
            if s_system is None
            else c.c2_hash_sys_code == hash63(s_system, s_code)
        )
    elif kind in ("quantity", "number"):
        prefix, rest = split_prefix(raw)
        pieces = rest.split("|")
        second = number_condition(prefix, c.c2_low, pieces[0], name)
        if len(pieces) == 3:
            if pieces[2]:
                second = second & (c.c2_code == pieces[2])
            if pieces[1]:
                second = second & (c.c2_system == pieces[1])
        elif len(pieces) != 1:
            raise BadRequest(f"'{raw[:60]}' is not number|system|code for '{name}'", expression=name)
    elif kind == "date":
        prefix, text = split_prefix(raw)
        try:
            slo, shi = date_range(text)
        except (ValueError, OverflowError):
            raise BadRequest(f"'{raw[:60]}' is not a valid date for '{name}'", expression=name) from None
        if prefix == "ap":
            prefix = "eq"
        second = range_condition(prefix, c.c2_dlow, c.c2_dhigh, slo, shi)
    elif kind == "string":
        second = c.c2_text.like(
            fold(unescape(raw)).replace("%", "\\%").replace("_", "\\_") + "%", escape="\\"
        )
    else:
        second = c.c2_text == unescape(raw)
    return and_(first, second)


def _split_dollar(value: str) -> list[str]:
    parts, cur, i = [], [], 0
    while i < len(value):
        if value[i] == "\\" and i + 1 < len(value):
            cur.append(value[i : i + 2])
            i += 2
            continue
        if value[i] == "$":
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(value[i])
        i += 1
    parts.append("".join(cur))
    return parts
