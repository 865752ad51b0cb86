"""Stable 63-bit hashes: the same in every process (unlike hash()), used for index keys and locks."""

from __future__ import annotations

import hashlib
from functools import lru_cache


@lru_cache(maxsize=262_144)
def hash63(*parts: str | None) -> int:
    """A signed-bigint-safe hash of the parts; None and '' are distinguished."""
    h = hashlib.blake2b(digest_size=8)
    for part in parts:
        h.update(b"\x00" if part is None else b"\x01" + part.encode("utf-8"))
        h.update(b"\x1f")
    return int.from_bytes(h.digest(), "big") & 0x7FFFFFFFFFFFFFFF
