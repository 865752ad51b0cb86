"""Write-time extraction of search-index rows from a resource, per parameter type."""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import cache
from typing import Any

from healthbook.fhir.fhirpath import Node
from healthbook.fhir.hashing import hash63
from healthbook.fhir.search.composite import extract_composites
from healthbook.fhir.search.registry import ParamDef, indexed_params
from healthbook.fhir.search.values import MAX_US, date_range, fold

Row = dict[str, Any]
MAX_STRING = 2000


def extract(resource: dict[str, Any]) -> dict[str, list[Row]]:
    """Index rows keyed by parameter type (the index table), without the owner columns."""
    rtype = str(resource.get("resourceType"))
    out: dict[str, list[Row]] = {}
    present = _present_names(resource)
    for param, first in _plan(rtype):
        if first is not None and first.isdisjoint(present):
            continue  # none of the elements the expression starts from is present
        assert param.path is not None
        nodes = param.path.evaluate(resource)
        if not nodes:
            continue
        rows = list(_ROWS[param.type](param, rtype, nodes))
        if rows:
            if param.type == "date":
                _envelope(rows)
            out.setdefault(param.type, []).extend(_dedupe(rows))
        extra = list(_modifier_tokens(param, rtype, nodes))
        if extra:
            out.setdefault("token", []).extend(_dedupe(extra))
    composite_rows = extract_composites(resource)
    if composite_rows:
        out["composite"] = _dedupe(composite_rows)
    return out


def owned(rows: dict[str, list[Row]], patient_key: str, res_type: str, res_id: str) -> dict[str, list[Row]]:
    """Index rows with the owner columns every index table starts with."""
    owner = {"patient_key": patient_key, "res_type": res_type, "res_id": res_id}
    return {ptype: [{**owner, **row} for row in found] for ptype, found in rows.items()}


def _modifier_tokens(param: ParamDef, rtype: str, nodes: list[Node]) -> Iterator[Row]:
    """Rows behind :identifier (Reference.identifier) and :of-type (Identifier.type + value)."""
    for node in nodes:
        v = node.value
        if not isinstance(v, dict):
            continue
        if param.type == "reference" and isinstance(v.get("identifier"), dict):
            ident = v["identifier"]
            row = _token_row(
                param, rtype, ident.get("system"), ident.get("value"), None, suffix=":identifier"
            )
            if row is not None:
                yield row
        elif param.type == "token" and isinstance(v.get("value"), str) and isinstance(v.get("type"), dict):
            for coding in v["type"].get("coding") or []:
                if isinstance(coding, dict) and isinstance(coding.get("code"), str):
                    kind = f"{coding.get('system') or ''}|{coding['code']}"
                    row = _token_row(param, rtype, kind, v["value"], None, suffix=":of-type")
                    if row is not None:
                        yield row


_FIRST = re.compile(r"^\(?\s*([A-Z][A-Za-z]+)\.([a-z][A-Za-z0-9]*)")
# Operators and functions that give a value even when the path is empty (`X.exists() and X != false`).
_NOT_A_PATH = re.compile(
    r"\.(exists|empty|not|count|all|allTrue|anyTrue|allFalse|anyFalse|iif)\(|!=|\s(and|or|xor|implies)\s"
)


@cache
def _plan(rtype: str) -> tuple[tuple[ParamDef, frozenset[str] | None], ...]:
    """The type's indexed parameters, each with the top-level names its expression starts from."""
    out = []
    for param in indexed_params(rtype):
        first = _first_keys(param.expression)
        out.append((param, None if first is None else frozenset(first)))
    return tuple(out)


@cache
def _first_keys(expression: str) -> tuple[str, ...] | None:
    """Top-level element names each union part starts from, or None when that is not plain."""
    names = []
    for part in expression.split(" | "):
        m = _FIRST.match(part.strip())
        if not m or _NOT_A_PATH.search(part):
            return None
        names.append(m.group(2))
    return tuple(dict.fromkeys(names))


_UPPER = re.compile(r"[A-Z]")


def _present_names(resource: dict[str, Any]) -> set[str]:
    """Top-level element names present, with choice elements also under their base name (value)."""
    names = set(resource)
    for key in resource:
        m = _UPPER.search(key)
        if m is not None and m.start() > 0:
            names.add(key[: m.start()])
    return names


def _dedupe(rows: list[Row]) -> list[Row]:
    if len(rows) == 1:
        return rows
    seen: set[tuple[Any, ...]] = set()
    unique = []
    for row in rows:
        key = tuple(row.values())
        if key not in seen:
            seen.add(key)
            unique.append(row)
    return unique


def _token_row(
    param: ParamDef, rtype: str, system: Any, code: Any, display: Any = None, *, suffix: str = ""
) -> Row | None:
    if not isinstance(code, str | bool | int) or isinstance(code, float):
        return None
    code_s = ("true" if code else "false") if isinstance(code, bool) else str(code)
    sys_s = system if isinstance(system, str) else None
    disp = display[:MAX_STRING] if isinstance(display, str) else None
    return {
        "param": param.code + suffix,
        "system": sys_s,
        "code": code_s[:MAX_STRING],
        "display": disp,
        "hash_code": hash63(rtype, param.code + suffix, code_s),
        "hash_sys_code": hash63(rtype, param.code + suffix, sys_s or "", code_s),
        "hash_sys": hash63(rtype, param.code + suffix, sys_s or ""),
    }


def _tokens(param: ParamDef, rtype: str, nodes: list[Node]) -> Iterator[Row]:
    for node in nodes:
        v = node.value
        rows: list[Row | None] = []
        if isinstance(v, dict):
            if "coding" in v or ("text" in v and not ("value" in v or "code" in v)):
                for coding in v.get("coding") or []:
                    if isinstance(coding, dict):
                        rows.append(
                            _token_row(
                                param,
                                rtype,
                                coding.get("system"),
                                coding.get("code"),
                                coding.get("display") or v.get("text"),
                            )
                        )
            elif "value" in v and not isinstance(v.get("value"), dict | list):  # Identifier, ContactPoint
                display = v.get("type", {}).get("text") if isinstance(v.get("type"), dict) else None
                system = v.get("system")
                if "use" in v and system in ("phone", "email", "fax", "pager", "url", "sms", "other"):
                    system = None  # ContactPoint.system is a kind, not a namespace
                rows.append(_token_row(param, rtype, system, v.get("value"), display))
            elif "code" in v:  # Coding, Quantity as token
                rows.append(_token_row(param, rtype, v.get("system"), v.get("code"), v.get("display")))
        else:
            rows.append(_token_row(param, rtype, None, v))
        yield from (r for r in rows if r is not None)


_NAME_PARTS = ("text", "family", "given", "prefix", "suffix")
_ADDRESS_PARTS = ("text", "line", "city", "district", "state", "postalCode", "country")


def _string_values(v: Any) -> Iterator[str]:
    if isinstance(v, str):
        yield v
    elif isinstance(v, dict):
        keys = _NAME_PARTS if ("family" in v or "given" in v) else _ADDRESS_PARTS
        for key in keys:
            part = v.get(key)
            if isinstance(part, str):
                yield part
            elif isinstance(part, list):
                yield from (p for p in part if isinstance(p, str))
        if "family" in v or "given" in v:
            whole = " ".join(
                [*v.get("given", []), v.get("family", "")] if isinstance(v.get("given"), list) else []
            )
            if whole.strip():
                yield whole


def _strings(param: ParamDef, rtype: str, nodes: list[Node]) -> Iterator[Row]:
    for node in nodes:
        for text in _string_values(node.value):
            if text.strip():
                yield {
                    "param": param.code,
                    "value_norm": fold(text)[:MAX_STRING],
                    "value_exact": text[:MAX_STRING],
                }


def _references(param: ParamDef, rtype: str, nodes: list[Node]) -> Iterator[Row]:
    for node in nodes:
        v = node.value
        ref = v.get("reference") if isinstance(v, dict) else v if isinstance(v, str) else None
        if not isinstance(ref, str) or not ref or ref.startswith("#"):
            continue
        parts = ref.split("/")
        if "_history" in parts:
            parts = parts[: parts.index("_history")]
        if len(parts) == 2 and parts[0][:1].isupper() and "://" not in ref:
            yield {
                "param": param.code,
                "target_type": parts[0],
                "target_id": parts[1][:64],
                "target_url": None,
            }
        else:
            url = ref.split("|", 1)[0]
            row: Row = {
                "param": param.code,
                "target_type": None,
                "target_id": None,
                "target_url": url[:MAX_STRING],
            }
            if len(parts) >= 2 and parts[-2][:1].isupper():
                row["target_type"], row["target_id"] = parts[-2], parts[-1][:64]
            yield row


def _dates(param: ParamDef, rtype: str, nodes: list[Node]) -> Iterator[Row]:
    for node in nodes:
        v = node.value
        try:
            if isinstance(v, str):
                low, high = date_range(v)
            elif isinstance(v, dict) and ("start" in v or "end" in v):  # Period
                low = date_range(v["start"])[0] if isinstance(v.get("start"), str) else -MAX_US
                high = date_range(v["end"])[1] if isinstance(v.get("end"), str) else MAX_US
            elif isinstance(v, dict) and isinstance(v.get("event"), list):  # Timing
                ranges = [date_range(e) for e in v["event"] if isinstance(e, str)]
                if not ranges:
                    continue
                low, high = min(r[0] for r in ranges), max(r[1] for r in ranges)
            else:
                continue
        except (ValueError, OverflowError):
            continue
        yield {"param": param.code, "low": low, "high": high}


def _envelope(rows: list[Row]) -> None:
    """Give every row of one parameter its envelope: the smallest and largest end of all the rows."""
    ends = [row["low"] for row in rows] + [row["high"] for row in rows]
    low, high = min(ends), max(ends)
    for row in rows:
        row["env_low"] = low
        row["env_high"] = high


def _numbers(param: ParamDef, rtype: str, nodes: list[Node]) -> Iterator[Row]:
    for node in nodes:
        v = node.value
        if isinstance(v, int | float) and not isinstance(v, bool):
            yield {"param": param.code, "low": float(v), "high": float(v)}


def _quantities(param: ParamDef, rtype: str, nodes: list[Node]) -> Iterator[Row]:
    for node in nodes:
        v = node.value
        if not isinstance(v, dict):
            continue
        value = v.get("value")
        if not isinstance(value, int | float) or isinstance(value, bool):
            continue
        code = v.get("code") if isinstance(v.get("code"), str) else v.get("currency")
        if code is None and isinstance(v.get("unit"), str):
            code = v["unit"]
        system = v.get("system") if isinstance(v.get("system"), str) else None
        if "currency" in v and system is None:
            system = "urn:iso:std:iso:4217"
        yield {"param": param.code, "system": system, "code": code, "low": float(value), "high": float(value)}


def _uris(param: ParamDef, rtype: str, nodes: list[Node]) -> Iterator[Row]:
    for node in nodes:
        if isinstance(node.value, str) and node.value:
            yield {"param": param.code, "uri": node.value[:MAX_STRING]}


_ROWS = {
    "token": _tokens,
    "string": _strings,
    "reference": _references,
    "date": _dates,
    "number": _numbers,
    "quantity": _quantities,
    "uri": _uris,
}
