"""Settings read from the environment (prefix HEALTHBOOK_); the only module that reads it."""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# The roles a token can carry (auth.subject.Role has the same values; kept here as text so that the
# settings import nothing of the application).
RoleName = Literal["citizen", "guardian", "health-worker", "facility-system", "manager"]
ALL_ROLES: tuple[RoleName, ...] = ("citizen", "guardian", "health-worker", "facility-system", "manager")


def is_loopback(url: str) -> bool:
    """Whether `url` points at this machine (plain http is allowed only there)."""
    host = (urlsplit(url).hostname or "").lower()
    return host in ("localhost", "::1") or host.startswith("127.")


class IssuerSettings(BaseModel):
    """One trusted OpenID Connect issuer: where its keys are and what its tokens may claim."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    issuer: str
    # Where the signing keys are: discovery (issuer + /.well-known/openid-configuration) by default, a
    # JWKS URL that skips discovery, or a static JWKS (inline or in a file) for tests and offline use.
    jwks_uri: str | None = None
    jwks: dict[str, Any] | None = None
    jwks_file: str | None = None
    # The `aud` this issuer puts in tokens for healthbook, when it differs from HEALTHBOOK_AUDIENCE.
    audience: str | None = None
    # The role of a token that carries no role claim (the national identity: "citizen").
    default_role: RoleName | None = None
    # The roles this issuer may assert; a citizen identity provider must not mint health workers.
    roles: tuple[RoleName, ...] = ALL_ROLES

    @field_validator("issuer", "jwks_uri")
    @classmethod
    def _https(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme != "https" and not (parts.scheme == "http" and is_loopback(value)):
            raise ValueError(f"{value!r}: an issuer and its JWKS must be https (http only on loopback)")
        return value  # compared exactly with `iss` (OpenID Connect Discovery §4.3): never normalised


class DevClientSettings(BaseModel):
    """A facility system registered with the development identity provider (client_credentials)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    client_id: str
    facility: str  # its 5-character facility code
    jwks: dict[str, Any] | None = None  # its public keys (private_key_jwt)
    jwks_file: str | None = None
    scope: str = "system/*.cruds"  # the most it may be granted


def _issuer_list(value: Any) -> Any:
    """HEALTHBOOK_OIDC_ISSUERS: a JSON list (of URLs or objects) or a comma-separated list of URLs."""
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return []
        value = (
            json.loads(text) if text.startswith("[") else [v.strip() for v in text.split(",") if v.strip()]
        )
    if isinstance(value, list):
        return [{"issuer": v} if isinstance(v, str) else v for v in value]
    return value


def _json_list(value: Any) -> Any:
    if isinstance(value, str):
        return json.loads(value) if value.strip() else []
    return value


class Settings(BaseSettings):
    """Runtime configuration of one healthbook process."""

    model_config = SettingsConfigDict(env_prefix="HEALTHBOOK_", env_file=".env", extra="ignore")

    database_url: str = "sqlite:///healthbook.db"
    # Largest request body accepted, in bytes (413 beyond it).
    max_body_bytes: int = 32 * 1024 * 1024
    # Public base URL of the FHIR endpoint, used in Location headers and bundle links when set;
    # otherwise derived from the request.
    public_base_url: str | None = None
    default_page_size: int = 50
    max_page_size: int = 1000
    # PostgreSQL statement_timeout of every connection, in ms (0 = none): a search that runs longer is
    # cancelled and answered 400 (too-costly); migrations and bulk export lift it for their statements.
    statement_timeout_ms: int = 30_000
    # PostgreSQL max_parallel_workers_per_gather of every connection: 0 runs each statement on one core.
    # Searches stop after a page; parallel workers cost more to start than they save (a LIMIT plan took
    # 70 ms with two workers and 3 ms without, at 1M resources), and concurrent requests use the cores.
    pg_parallel_workers: int = 0
    # PostgreSQL JIT compilation on the connections (false: off, true: on, whatever the server's setting).
    # Off: it is chosen by estimated cost, and a search whose never-run branch is costed high compiled for
    # 358 ms to run for 1 ms (at 1M resources).
    pg_jit: bool = False
    # Connection pool size per process (PostgreSQL).
    pool_size: int = 20
    # SQLite synchronous pragma: FULL survives power loss, NORMAL survives process crashes only.
    sqlite_synchronous: str = "FULL"
    sqlite_busy_timeout_ms: int = 30000
    # Where bulk export files and import uploads are kept.
    bulk_dir: str = "bulk-data"
    # Processes that parse, validate and index NDJSON lines ahead of the writing process in bulk imports
    # (`healthbook import ndjson`, $import, the demo load): -1 = one per CPU (up to 4), 0 = none.
    import_workers: int = Field(default=-1, ge=-1, le=4)
    # Largest NDJSON body accepted by $import (streamed to disk).
    max_import_bytes: int = 2 * 1024 * 1024 * 1024
    # XML130 (GIAMDINHHS) submissions: largest file (CLI and $import-xml130 body), largest decoded table
    # (one NOIDUNGFILE; lxml refuses text nodes over 10 MB anyway), and episodes per committed transaction.
    xml130_max_bytes: int = 256 * 1024 * 1024
    xml130_max_table_bytes: int = 8 * 1024 * 1024
    xml130_chunk_episodes: int = 200
    # Serve the citizen's health-book pages at /so-suc-khoe/ (login cookie, under the caller's access
    # rights; with auth off anyone who knows a number reads the book).
    book_pages: bool = True

    # --- Authentication (docs: README "Authentication") ---
    # required (the default): a request to /fhir without a valid token is refused with 401 (metadata
    # and .well-known excepted); off, for development only: a request without a token is an anonymous
    # caller that sees everything (a token, when sent, is still checked).
    auth: Literal["off", "required"] = "required"
    # Commit the audit events of reads waiting for the disk like any write (slower reads); by default
    # they are committed without waiting (lost only in a crash of the database machine itself).
    audit_durable_reads: bool = False
    # How long an emergency (break-glass) access lasts, in hours.
    break_glass_hours: float = Field(default=24.0, gt=0, le=72)
    # Trusted OpenID Connect issuers (see IssuerSettings).
    oidc_issuers: Annotated[list[IssuerSettings], NoDecode] = Field(default_factory=list)
    # The `aud` every access token must carry: this server's identifier at the issuers.
    audience: str = "healthbook"
    # Signature algorithms accepted in access tokens: asymmetric only (never none or HS*).
    token_algorithms: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: [
            "RS256",
            "RS384",
            "RS512",
            "PS256",
            "PS384",
            "PS512",
            "ES256",
            "ES384",
            "ES512",
        ]
    )
    # Claims an access token must have (iss, aud, exp and sub are always checked when present).
    token_required_claims: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["iss", "sub", "aud", "exp"]
    )
    # Clock skew tolerated on exp, nbf and iat, in seconds.
    token_leeway_seconds: int = 60
    # Timeout of discovery and JWKS fetches, in seconds.
    oidc_http_timeout_seconds: float = 5.0
    # Keys are fetched again after this long, and at most this often when a token names an unknown kid.
    jwks_max_age_seconds: int = 3600
    jwks_min_refresh_seconds: float = 10.0
    # Names of the claims healthbook reads besides the standard ones (sub, scope, fhirUser, patient).
    claim_role: str = "healthbook_role"
    claim_facility: str = "healthbook_facility"
    claim_cccd: str = "healthbook_cccd"
    claim_province: str = "healthbook_province"

    # --- Development identity provider (never in production) ---
    dev_idp: bool = False
    # Its issuer URL; by default public_base_url's origin + /dev-idp, else http://127.0.0.1:8080/dev-idp.
    dev_idp_issuer: str | None = None
    # Where it keeps its signing key and the demo hospital's private key.
    dev_idp_dir: str = "dev-idp"
    # Facility systems registered for client_credentials, besides the built-in demo hospital.
    dev_idp_clients: Annotated[list[DevClientSettings], NoDecode] = Field(default_factory=list)
    # Lifetime of the access tokens it issues, in seconds.
    dev_idp_token_seconds: int = 3600

    @field_validator("oidc_issuers", mode="before")
    @classmethod
    def _parse_issuers(cls, value: Any) -> Any:
        return _issuer_list(value)

    @field_validator("dev_idp_clients", mode="before")
    @classmethod
    def _parse_clients(cls, value: Any) -> Any:
        return _json_list(value)

    @field_validator("token_algorithms", "token_required_claims", mode="before")
    @classmethod
    def _parse_words(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            return (
                json.loads(text)
                if text.startswith("[")
                else [v.strip() for v in text.split(",") if v.strip()]
            )
        return value

    @field_validator("token_algorithms")
    @classmethod
    def _asymmetric(cls, value: list[str]) -> list[str]:
        bad = [a for a in value if a not in ASYMMETRIC_ALGORITHMS]
        if bad:
            raise ValueError(f"not an accepted asymmetric JWS algorithm: {', '.join(bad)}")
        return value

    @property
    def dev_issuer(self) -> str:
        """The development identity provider's issuer URL."""
        if self.dev_idp_issuer:
            return self.dev_idp_issuer.rstrip("/")
        if self.public_base_url:
            parts = urlsplit(self.public_base_url)
            return f"{parts.scheme}://{parts.netloc}/dev-idp"
        return "http://127.0.0.1:8080/dev-idp"


ASYMMETRIC_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
