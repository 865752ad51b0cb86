"""JSON parsing and serialisation that keep FHIR decimal precision (1.50 stays 1.50)."""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

from healthbook.errors import BadRequest

# Numbers whose text orjson would not give back unchanged: trailing zeros after the point,
# exponents, or more digits than a double holds.
_LOSSY_NUMBER = re.compile(rb"(?<![\w.])-?\d+(?:\.\d*0(?!\d)|(?:\.\d+)?[eE][+-]?\d+|\.\d{15,})|\d{19,}")
MAX_DEPTH = 200


class FhirDecimal(float):
    """A float that remembers the exact text it was written with."""

    __slots__ = ("text",)
    text: str

    def __new__(cls, text: str) -> FhirDecimal:
        obj = super().__new__(cls, text)
        obj.text = text
        return obj


def _parse_int(text: str) -> int | FhirDecimal:
    """Keep integers beyond 64 bits as exact text (they can only be valid as decimals)."""
    return int(text) if len(text) < 19 else FhirDecimal(text)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"'{name}' is not valid JSON")


def _default(obj: Any) -> Any:
    if isinstance(obj, FhirDecimal):
        return orjson.Fragment(obj.text)
    raise TypeError(f"cannot serialise {type(obj).__name__}")


def _depth_ok(value: Any) -> bool:
    """Iteratively check nesting so hostile input cannot exhaust the stack later."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            return False
        if isinstance(node, dict):
            stack.extend((v, depth + 1) for v in node.values() if isinstance(v, dict | list))
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node if isinstance(v, dict | list))
    return True


def loads(data: bytes | str) -> Any:
    """Parse a request body; raises BadRequest with a position on malformed JSON."""
    raw = data.encode() if isinstance(data, str) else data
    try:
        value = orjson.loads(raw) if not _LOSSY_NUMBER.search(raw) else None
    except orjson.JSONDecodeError as exc:
        if "Integer" not in str(exc) and "number" not in str(exc).lower():
            raise BadRequest(f"Malformed JSON: {exc}", expression=None) from None
        value = None
    if value is None:
        try:
            value = json.loads(
                raw.decode("utf-8"),
                parse_float=FhirDecimal,
                parse_int=_parse_int,
                parse_constant=_reject_constant,
            )
        except UnicodeDecodeError as exc:
            raise BadRequest(f"Request body is not UTF-8: {exc.reason} at byte {exc.start}") from None
        except (ValueError, RecursionError) as exc:
            raise BadRequest(f"Malformed JSON: {exc}") from None
    # Nesting can be no deeper than the number of brackets: most resources need no walk.
    if raw.count(b"{") + raw.count(b"[") > MAX_DEPTH and not _depth_ok(value):
        raise BadRequest(f"JSON is nested deeper than {MAX_DEPTH} levels")
    return value


def dumps(value: Any) -> bytes:
    """Serialise compactly; FhirDecimal values are written with their original text."""
    return orjson.dumps(value, default=_default)
