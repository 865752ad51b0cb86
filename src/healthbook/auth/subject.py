"""Who is asking: every service call takes a Caller, and the policy decides (deny by default)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from healthbook.errors import Forbidden


@dataclass(frozen=True, slots=True)
class Caller:
    """The authenticated (or explicitly anonymous) party behind a request."""

    subject: str
    roles: frozenset[str] = field(default_factory=frozenset)
    purpose: str | None = None

    @staticmethod
    def system(name: str) -> Caller:
        """A trusted in-process caller: the CLI, importers, the demo loader."""
        return Caller(subject=f"system:{name}", roles=frozenset({"system"}))


class AccessPolicy(Protocol):
    """Decides whether a caller may perform an interaction on a resource type."""

    def check(self, caller: Caller | None, interaction: str, res_type: str | None) -> None:
        """Raise Forbidden unless allowed."""


class OpenPolicy:
    """Grants every interaction to any identified caller; used until access control is configured."""

    def check(self, caller: Caller | None, interaction: str, res_type: str | None) -> None:
        """Only an unidentified call is refused."""
        if caller is None:
            raise Forbidden("No caller identity attached to the request")


class SystemOnlyPolicy:
    """Grants every interaction to in-process system callers and nothing to anyone else."""

    def check(self, caller: Caller | None, interaction: str, res_type: str | None) -> None:
        """Deny unless the caller is a system caller."""
        if caller is None or "system" not in caller.roles:
            raise Forbidden(f"Not allowed to {interaction} {res_type or 'resources'}")
