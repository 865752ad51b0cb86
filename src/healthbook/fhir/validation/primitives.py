"""Checks for FHIR primitive values, built once from the regexes in the official definitions."""

from __future__ import annotations

import calendar
import math
import re
from collections.abc import Callable
from typing import Any

# A check returns None when the value is fine, else a phrase completing "Element 'x' ...".
PrimitiveCheck = Callable[[Any], str | None]

INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1
_INTEGER_MINIMUM = {"integer": INT32_MIN, "unsignedInt": 0, "positiveInt": 1}
_DATE_TYPES = frozenset({"date", "dateTime", "instant"})
_BASE64_SHAPE = re.compile(r"\(\\s\*\((\[[^\]]+\])\)\{4\}\\s\*\)\+")
_XHTML_NS = 'xmlns="http://www.w3.org/1999/xhtml"'


def _safe_pattern(regex: str) -> re.Pattern[str]:
    """Compile a spec regex; whitespace runs are made possessive so base64Binary cannot backtrack badly.

    re.ASCII gives \\s and \\S the XML Schema/Java meaning (ASCII whitespace only), so any non-ASCII character
    counts as non-whitespace, as in the specification.
    """
    return re.compile(regex.replace(r"\s*", r"\s*+"), re.ASCII)


def _valid_day(value: str) -> bool:
    """Reject calendar dates the regex lets through, such as 2019-02-30."""
    if len(value) < 10:
        return True
    day = int(value[8:10])
    return day <= 28 or day <= calendar.monthrange(int(value[0:4]), int(value[5:7]))[1]


def _integer_check(name: str) -> PrimitiveCheck:
    """JSON integer within the 32-bit range of the type (booleans and floats are not integers)."""
    minimum = _INTEGER_MINIMUM[name]

    def check(value: Any) -> str | None:
        if type(value) is not int:
            return f"must be a JSON number without a fraction or exponent ({name})"
        if value < minimum or value > INT32_MAX:
            return f"is out of range for {name} ({minimum}..{INT32_MAX})"
        return None

    return check


def _decimal_check(value: Any) -> str | None:
    """JSON number; floats from orjson and FhirDecimal both qualify."""
    kind = type(value)
    if kind is int:
        return None
    if kind is bool or not isinstance(value, int | float):
        return "must be a JSON number (decimal)"
    if isinstance(value, float) and not math.isfinite(value):
        return "must be a finite number (decimal)"
    return None


def _boolean_check(value: Any) -> str | None:
    """JSON true or false; the strings 'true'/'false' are not booleans."""
    return None if type(value) is bool else "must be a JSON boolean (true or false)"


def _base64_matcher(regex: str) -> Callable[[str], object]:
    """A linear-time equivalent of the spec's base64Binary regex ``(\\s*([0-9a-zA-Z\\+/=]){4}\\s*)+``.

    The regex means: base64 characters in whitespace-separated runs whose lengths are multiples of four.
    Python's regex engine needs ~0.2 s per MB for it (a capture per character); this takes milliseconds.
    """
    shape = _BASE64_SHAPE.fullmatch(regex)
    if shape is None:  # not the R4 pattern: use it as it is
        return _safe_pattern(regex).fullmatch
    chars = re.compile(shape.group(1)[:-1] + r"\s]*", re.ASCII).fullmatch

    def match(value: str) -> object:
        if chars(value) is None:
            return None
        runs = value.split()  # only ASCII whitespace is left at this point
        return bool(runs) and all(len(run) % 4 == 0 for run in runs)

    return match


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


def _string_check(name: str, regex: str | None, max_length: int | None) -> PrimitiveCheck:
    """JSON string, non-empty, matching the type's regex and within its maximum length."""
    match: Callable[[str], object] | None = None
    if regex and name == "base64Binary":
        match = _base64_matcher(regex)
    elif regex:
        match = _safe_pattern(regex).fullmatch
    dates = name in _DATE_TYPES
    limit = max_length or 0

    def check(value: Any) -> str | None:
        if type(value) is not str:
            return f"must be a JSON string ({name})"
        if not value:
            return "must not be an empty string"
        if limit and len(value) > limit:
            return f"is longer than the maximum of {limit} characters for {name}"
        if _CONTROL.search(value) is not None:
            return "contains a control character (below U+0020 other than tab, CR, LF; datatypes.html#string)"
        if match is not None and not match(value):
            return f"has value {show(value)} that is not a valid {name}"
        if dates and not _valid_day(value):
            return f"has value {show(value)} that is not a valid calendar {name}"
        return None

    return check


def _xhtml_check(value: Any) -> str | None:
    """Narrative XHTML must be a string whose root element is a div in the XHTML namespace."""
    if type(value) is not str:
        return "must be a JSON string (xhtml)"
    text = value.lstrip()
    if not text.startswith("<div"):
        return "must be XHTML with a <div> root element"
    start = text[: text.find(">") + 1]
    if _XHTML_NS not in start and _XHTML_NS.replace('"', "'") not in start:
        return 'must declare the XHTML namespace on its root element (xmlns="http://www.w3.org/1999/xhtml")'
    return None


def json_kind(value: Any) -> str:
    """Name a JSON value's kind for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return f"a {type(value).__name__}"


def show(value: str) -> str:
    """Quote a value for a message, shortening long ones."""
    return repr(value if len(value) <= 80 else value[:77] + "...")


def build_checks(primitives: dict[str, dict[str, Any]]) -> dict[str, PrimitiveCheck]:
    """One check function per primitive type name, from the vendored regexes."""
    checks: dict[str, PrimitiveCheck] = {}
    for name, info in primitives.items():
        if name == "boolean":
            checks[name] = _boolean_check
        elif name in _INTEGER_MINIMUM:
            checks[name] = _integer_check(name)
        elif name == "decimal":
            checks[name] = _decimal_check
        elif name == "xhtml":
            checks[name] = _xhtml_check
        else:
            checks[name] = _string_check(name, info.get("regex"), info.get("maxLength"))
    return checks
