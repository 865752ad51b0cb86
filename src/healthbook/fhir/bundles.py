"""Bundle assembly that embeds stored JSON verbatim (no parse, no re-serialisation)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlencode

import orjson

from healthbook.fhir import jsonio
from healthbook.fhir.store.sql_repository import StoredVersion
from healthbook.fhir.timeutil import to_instant

_STATUS = {"POST": "201 Created", "PUT": "200 OK", "PATCH": "200 OK", "DELETE": "204 No Content"}


def page_url(base: str, path: str, params: Mapping[str, str | Sequence[str]]) -> str:
    """An absolute paging link."""
    query = urlencode(list(_pairs(params)))
    return f"{base}{path}" + (f"?{query}" if query else "")


def _pairs(params: Mapping[str, str | Sequence[str]]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for key, value in params.items():
        if isinstance(value, str):
            out.append((key, value))
        else:
            out.extend((key, v) for v in value)
    return out


def history_entry(base: str, ver: StoredVersion) -> dict[str, Any]:
    """One Bundle.entry of a history bundle."""
    ref = f"{ver.res_type}/{ver.res_id}"
    entry: dict[str, Any] = {"fullUrl": f"{base}/{ref}"}
    if ver.content is not None:
        entry["resource"] = orjson.Fragment(ver.content)
    method = ver.method or "PUT"
    status = "201 Created" if ver.version_id == 1 else _STATUS.get(method, "200 OK")
    entry["request"] = {
        "method": "PUT" if method == "PATCH" else method,
        "url": ver.res_type if method == "POST" else ref,
    }
    entry["response"] = {
        "status": status,
        "etag": f'W/"{ver.version_id}"',
        "lastModified": to_instant(ver.last_updated),
    }
    return entry


def bundle(
    kind: str,
    entries: Sequence[dict[str, Any]],
    links: Sequence[tuple[str, str]],
    *,
    total: int | None,
    timestamp_us: int | None = None,
) -> bytes:
    """Serialise a Bundle of the given type with its links."""
    doc: dict[str, Any] = {"resourceType": "Bundle", "type": kind}
    if timestamp_us is not None:
        doc["timestamp"] = to_instant(timestamp_us)
    if total is not None:
        doc["total"] = total
    doc["link"] = [{"relation": rel, "url": url} for rel, url in links]
    if entries:
        doc["entry"] = list(entries)
    return jsonio.dumps(doc)
