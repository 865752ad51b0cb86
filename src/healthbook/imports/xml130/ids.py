"""Logical ids derived from what a resource is, so that importing the same data again hits the same ids."""

from __future__ import annotations

import hashlib

_NS = bytes.fromhex("5c1e3a0b8d2f4e6a9b7c1d2e3f405162")  # namespace of the ids this importer derives


def stable_id(*parts: str) -> str:
    """A version-5-style UUID from the parts: the same input always gives the same logical id."""
    h = bytearray(hashlib.sha1(_NS + "\x1f".join(parts).encode()).digest()[:16])
    h[6] = (h[6] & 0x0F) | 0x50
    h[8] = (h[8] & 0x3F) | 0x80
    x = h.hex()
    return f"{x[:8]}-{x[8:12]}-{x[12:16]}-{x[16:20]}-{x[20:]}"


def shared_id(res_type: str, system: str, value: str) -> str:
    """Id of a resource shared by episodes (Patient, Organization, Practitioner) created from an identifier."""
    return stable_id("shared", res_type, system, value)


def episode_id(facility: str, ma_lk: str, *parts: str) -> str:
    """Id of one resource of an episode (MACSKCB + MA_LK + what it is: table, row, code)."""
    return stable_id(facility, ma_lk, *parts)
