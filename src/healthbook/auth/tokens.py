"""Resource server: verify signed JWT access tokens of trusted OpenID Connect issuers and turn them into Callers.

Keys come from each issuer's discovery document (``/.well-known/openid-configuration`` → ``jwks_uri``), a
configured JWKS URL, or a static JWKS; they are cached, fetched again when older than ``jwks_max_age_seconds``,
and fetched once more (at most every ``jwks_min_refresh_seconds``) when a token names a key id that is not
known yet, which is how an issuer's key rotation reaches us. Only asymmetric algorithms are accepted, so
``alg: none`` and HMAC tokens "signed" with a public key are refused before any key is looked at. Nothing
is fetched at import time or at start-up: the first token of an issuer triggers the first fetch.

A refused token raises TokenRejected with a short reason that is safe to show; the token itself is never
logged or echoed.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx
from joserfc import jws
from joserfc.errors import (
    ExpiredTokenError,
    InvalidClaimError,
    JoseError,
    MissingClaimError,
)
from joserfc.jwk import ECKey, Key, OKPKey, RSAKey
from joserfc.jwt import ClaimsOption, JWTClaimsRegistry

from healthbook.auth.scopes import parse_scopes
from healthbook.auth.subject import Caller, Role
from healthbook.config import IssuerSettings, Settings, is_loopback

log = logging.getLogger("healthbook.auth")

MAX_TOKEN_BYTES = 16 * 1024
MAX_DOCUMENT_BYTES = 512 * 1024  # a discovery document or a JWKS larger than this is refused
ACCESS_TOKEN_TYPES = {"jwt", "at+jwt", "application/at+jwt"}
_KEY_TYPE = {"RS": "RSA", "PS": "RSA", "ES": "EC", "Ed": "OKP"}
_CURVE = {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}
_KEY_CLASSES: dict[str, type[RSAKey] | type[ECKey] | type[OKPKey]] = {
    "RSA": RSAKey,
    "EC": ECKey,
    "OKP": OKPKey,
}
_FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_FHIR_USER = re.compile(
    r"(?:.*/)?((?:Patient|Practitioner|PractitionerRole|RelatedPerson|Person)/[A-Za-z0-9\-.]{1,64})"
)
_FACILITY = re.compile(r"[0-9]{2}[0-9A-Z]{3}")
_CCCD = re.compile(r"[0-9]{12}")
_PROVINCE = re.compile(r"[0-9]{2}")


class TokenRejected(Exception):
    """A token that cannot be used; the message is a short reason, safe to send back to the client."""


class MissingToken(TokenRejected):
    """No bearer token where one is required (answered without an error code, RFC 6750 §3.1)."""


class KeysUnavailable(Exception):
    """The issuer's keys could not be fetched and none are cached: the fault is not the client's."""


# --- Where keys come from -------------------------------------------------------------------------


class KeySource(Protocol):
    """Supplies an issuer's JWKS document (and its discovery document, when it has one)."""

    async def jwks(self) -> dict[str, Any]:
        """The current JWKS document ({"keys": [...]})."""

    async def metadata(self) -> dict[str, Any] | None:
        """The OpenID Provider metadata, or None when the source has no discovery document."""


@dataclass
class StaticKeySource:
    """A JWKS given in the settings or a file: for tests, offline use and pinned keys."""

    document: dict[str, Any]

    async def jwks(self) -> dict[str, Any]:
        """The configured document."""
        return self.document

    async def metadata(self) -> dict[str, Any] | None:
        """No discovery for static keys."""
        return None


@dataclass
class LocalKeySource:
    """An in-process issuer (the development identity provider) asked directly instead of over HTTP."""

    get_jwks: Callable[[], dict[str, Any]]
    get_metadata: Callable[[], dict[str, Any]]

    async def jwks(self) -> dict[str, Any]:
        """The provider's JWKS document, exactly as it serves it."""
        return self.get_jwks()

    async def metadata(self) -> dict[str, Any] | None:
        """The provider's discovery document, exactly as it serves it."""
        return self.get_metadata()


@dataclass
class HttpKeySource:
    """Discovery and JWKS fetched with httpx (a timeout on every call; a fresh client per fetch)."""

    issuer: str
    jwks_uri: str | None = None
    timeout: float = 5.0
    transport: httpx.AsyncBaseTransport | None = None  # tests route requests without a network
    retry_after: float = 30.0  # a failed discovery is not tried again sooner (metadata answers fast)
    _metadata: dict[str, Any] | None = field(default=None, init=False, repr=False)
    _failed_at: float | None = field(default=None, init=False, repr=False)

    async def _get(self, url: str) -> dict[str, Any]:
        async with httpx.AsyncClient(
            timeout=self.timeout, transport=self.transport, follow_redirects=False
        ) as client:
            resp = await client.get(url, headers={"Accept": "application/json"})
        if resp.status_code != 200:
            raise KeysUnavailable(f"{url} answered {resp.status_code}")
        if len(resp.content) > MAX_DOCUMENT_BYTES:
            raise KeysUnavailable(f"{url} sent more than {MAX_DOCUMENT_BYTES} bytes")
        try:
            doc = json.loads(resp.content)
        except ValueError:
            raise KeysUnavailable(f"{url} did not send JSON") from None
        if not isinstance(doc, dict):
            raise KeysUnavailable(f"{url} did not send a JSON object")
        return doc

    async def metadata(self) -> dict[str, Any] | None:
        """The discovery document; its `issuer` must be exactly the configured one (OIDC Discovery §4.3)."""
        if self._metadata is None:
            if self._failed_at is not None and time.monotonic() - self._failed_at < self.retry_after:
                raise KeysUnavailable("discovery failed a moment ago")
            try:
                doc = await self._get(self.issuer.rstrip("/") + "/.well-known/openid-configuration")
                if doc.get("issuer") != self.issuer:
                    raise KeysUnavailable("the discovery document names another issuer")
            except (KeysUnavailable, httpx.HTTPError, OSError):
                self._failed_at = time.monotonic()
                raise
            self._metadata = doc
        return self._metadata

    async def jwks(self) -> dict[str, Any]:
        """The JWKS, from the configured URL or the one the discovery document names."""
        uri = self.jwks_uri
        if uri is None:
            meta = await self.metadata()
            uri = meta.get("jwks_uri") if meta else None
            if not isinstance(uri, str) or not uri:
                raise KeysUnavailable("the discovery document has no jwks_uri")
            if not uri.startswith("https://") and not (uri.startswith("http://") and is_loopback(uri)):
                raise KeysUnavailable("the jwks_uri is not https")
        return await self._get(uri)


def key_source(
    issuer: IssuerSettings, settings: Settings, transport: httpx.AsyncBaseTransport | None
) -> KeySource:
    """The key source an issuer's settings describe."""
    if issuer.jwks is not None:
        return StaticKeySource(issuer.jwks)
    if issuer.jwks_file is not None:
        return StaticKeySource(json.loads(Path(issuer.jwks_file).read_text()))
    return HttpKeySource(issuer.issuer, issuer.jwks_uri, settings.oidc_http_timeout_seconds, transport)


def import_jwks(document: dict[str, Any]) -> list[Key]:
    """The usable signature keys of a JWKS; symmetric, encryption-only and malformed keys are skipped."""
    keys = document.get("keys")
    if not isinstance(keys, list):
        raise KeysUnavailable("the JWKS has no keys list")
    out: list[Key] = []
    for raw in keys:
        if not isinstance(raw, dict) or raw.get("kty") not in _KEY_CLASSES:
            continue  # "oct" keys would only serve HS* tokens, which are never accepted
        if raw.get("use", "sig") != "sig":
            continue
        public = {k: v for k, v in raw.items() if k not in ("d", "p", "q", "dp", "dq", "qi", "oth")}
        try:
            out.append(_KEY_CLASSES[raw["kty"]].import_key(public))
        except (JoseError, ValueError, TypeError):
            log.warning("skipping a malformed key in a JWKS")
    return out


# --- Trusted issuers and their key cache ---------------------------------------------------------


@dataclass
class TrustedIssuer:
    """One issuer the server accepts tokens from, with its cached keys."""

    settings: IssuerSettings
    source: KeySource
    max_age: float = 3600.0
    min_refresh: float = 10.0
    clock: Callable[[], float] = time.monotonic
    _keys: list[Key] | None = field(default=None, init=False, repr=False)
    _fetched: float = field(default=0.0, init=False, repr=False)
    _attempted: float | None = field(default=None, init=False, repr=False)

    @property
    def issuer(self) -> str:
        """The `iss` value of this issuer's tokens."""
        return self.settings.issuer

    async def refresh(self) -> bool:
        """Fetch the keys again; keeps the old ones when the fetch fails. True when new keys came."""
        self._attempted = self.clock()
        try:
            keys = import_jwks(await self.source.jwks())
        except (KeysUnavailable, httpx.HTTPError, OSError, ValueError) as exc:
            log.warning("could not fetch the keys of issuer %s: %s", self.issuer, type(exc).__name__)
            return False
        self._keys = keys
        self._fetched = self.clock()
        return True

    def _may_fetch(self) -> bool:
        """At most one fetch per min_refresh seconds, so that bad tokens cannot make us hammer the issuer."""
        return self._attempted is None or self.clock() - self._attempted >= self.min_refresh

    async def key_for(self, kid: str | None, alg: str) -> Key:
        """The key that should have signed a token with this kid and alg; refreshes once for a new kid."""
        stale = self._keys is None or self.clock() - self._fetched > self.max_age
        if stale and self._may_fetch():
            await self.refresh()
        if self._keys is None:
            raise KeysUnavailable(f"no keys of issuer {self.issuer}")
        key = pick_key(self._keys, kid, alg)
        if key is None and self._may_fetch():
            await self.refresh()  # the issuer may have rotated its keys since we last looked
            key = pick_key(self._keys, kid, alg)
        if key is None:
            raise TokenRejected("unknown signing key" if kid else "the token names no key id (kid)")
        return key


def _fits(key: Key, alg: str) -> bool:
    """Whether a key can verify `alg`: its type, curve and declared alg must agree (no key confusion)."""
    if key.key_type != _KEY_TYPE.get(alg[:2]):
        return False
    if alg in _CURVE and key.get("crv") != _CURVE[alg]:
        return False
    declared = key.get("alg")
    return declared is None or declared == alg


def pick_key(keys: list[Key], kid: str | None, alg: str) -> Key | None:
    """The key for (kid, alg): the one with that kid, or without a kid the only key that fits."""
    if kid is not None:
        found = [k for k in keys if k.kid == kid]
        return found[0] if found and _fits(found[0], alg) else None
    fitting = [k for k in keys if _fits(k, alg)]
    return fitting[0] if len(fitting) == 1 else None  # without kid only an unambiguous key will do


# --- Verification --------------------------------------------------------------------------------


@dataclass(frozen=True)
class VerifiedToken:
    """A token whose signature and standard claims have been checked."""

    issuer: TrustedIssuer
    header: dict[str, Any]
    claims: dict[str, Any]


def _b64_json(part: str) -> dict[str, Any]:
    try:
        data = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    except (binascii.Error, ValueError):
        raise TokenRejected("malformed token") from None
    if not isinstance(data, dict):
        raise TokenRejected("malformed token")
    return data


@dataclass
class TokenValidator:
    """Checks a compact JWS access token against the trusted issuers, the audience and the clock."""

    issuers: Sequence[TrustedIssuer]
    audience: str
    algorithms: Sequence[str] = (
        "RS256",
        "RS384",
        "RS512",
        "PS256",
        "PS384",
        "PS512",
        "ES256",
        "ES384",
        "ES512",
    )
    required_claims: Sequence[str] = ("iss", "sub", "aud", "exp")
    leeway: int = 60
    clock: Callable[[], float] = time.time

    def __post_init__(self) -> None:
        self._by_issuer = {i.issuer: i for i in self.issuers}

    def issuer(self, iss: str) -> TrustedIssuer | None:
        """The trusted issuer with this `iss`, if any."""
        return self._by_issuer.get(iss)

    async def verify(self, token: str) -> VerifiedToken:
        """Signature, algorithm, issuer, audience and times; raises TokenRejected or KeysUnavailable."""
        if len(token) > MAX_TOKEN_BYTES:
            raise TokenRejected("token too large")
        parts = token.split(".")
        if len(parts) != 3:
            raise TokenRejected("not a signed JWT")
        header = _b64_json(parts[0])
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self.algorithms:
            raise TokenRejected("signature algorithm not accepted")  # none, HS*, anything unlisted
        if "crit" in header:
            raise TokenRejected("unsupported critical header")
        typ = header.get("typ")
        if typ is not None and (not isinstance(typ, str) or typ.lower() not in ACCESS_TOKEN_TYPES):
            raise TokenRejected("not an access token")
        iss = _b64_json(parts[1]).get("iss")  # unverified: only to choose the keys
        trusted = self._by_issuer.get(iss) if isinstance(iss, str) else None
        if trusted is None:
            raise TokenRejected("untrusted issuer")
        kid = header.get("kid")
        key = await trusted.key_for(kid if isinstance(kid, str) else None, alg)
        try:
            verified = jws.deserialize_compact(token, key, algorithms=[alg])
        except JoseError:
            raise TokenRejected("bad signature") from None
        try:
            claims = json.loads(verified.payload or b"")
        except ValueError:
            raise TokenRejected("malformed token") from None
        if not isinstance(claims, dict):
            raise TokenRejected("malformed token")
        self._check_claims(claims, trusted)
        return VerifiedToken(trusted, dict(verified.headers()), claims)

    def _check_claims(self, claims: dict[str, Any], trusted: TrustedIssuer) -> None:
        required = set(self.required_claims)
        options: dict[str, ClaimsOption] = {name: {"essential": True} for name in required}
        options["iss"] = {"essential": "iss" in required, "value": trusted.issuer}
        options["aud"] = {"essential": "aud" in required, "value": trusted.settings.audience or self.audience}
        options.setdefault("sub", {"essential": False})
        options.setdefault("exp", {"essential": False})
        registry = JWTClaimsRegistry(now=int(self.clock()), leeway=self.leeway, **options)
        try:
            registry.validate(claims)
        except ExpiredTokenError:
            raise TokenRejected("token expired") from None
        except MissingClaimError as exc:
            raise TokenRejected(f"missing claim: {exc.claim}") from None
        except InvalidClaimError as exc:
            reason = {
                "aud": "wrong audience",
                "nbf": "token not yet valid",
                "iat": "token issued in the future",
                "iss": "untrusted issuer",
            }.get(exc.claim, f"invalid claim: {exc.claim}")
            raise TokenRejected(reason) from None


# --- Claims → Caller -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ClaimNames:
    """Which claims carry healthbook's role, facility, CCCD and province (settings claim_*)."""

    role: str = "healthbook_role"
    facility: str = "healthbook_facility"
    cccd: str = "healthbook_cccd"
    province: str = "healthbook_province"

    @staticmethod
    def from_settings(settings: Settings) -> ClaimNames:
        """The claim names configured for this server."""
        return ClaimNames(
            settings.claim_role, settings.claim_facility, settings.claim_cccd, settings.claim_province
        )


_ROLE_ALIASES = {"proxy": Role.GUARDIAN, "representative": Role.GUARDIAN, "practitioner": Role.HEALTH_WORKER}


def _text(claims: dict[str, Any], name: str) -> str | None:
    value = claims.get(name)
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise TokenRejected(f"invalid claim: {name}")
    return value


def caller_from_token(token: VerifiedToken, names: ClaimNames = ClaimNames()) -> Caller:
    """The Caller a verified token stands for; a role the issuer may not assert is refused."""
    claims = token.claims
    issuer = token.issuer.settings
    raw_role = _text(claims, names.role)
    if raw_role is None:
        if issuer.default_role is None:
            raise TokenRejected("the token carries no healthbook role")
        raw_role = issuer.default_role
    try:
        role = _ROLE_ALIASES.get(raw_role) or Role(raw_role)
    except ValueError:
        raise TokenRejected("unknown role") from None
    if role.value not in issuer.roles:
        raise TokenRejected("this issuer may not assert that role")
    facility = _text(claims, names.facility)
    if facility is not None and not _FACILITY.fullmatch(facility):
        raise TokenRejected(f"invalid claim: {names.facility}")
    if role in (Role.HEALTH_WORKER, Role.FACILITY_SYSTEM) and facility is None:
        raise TokenRejected(f"missing claim: {names.facility}")
    cccd = _text(claims, names.cccd)
    if cccd is not None and not _CCCD.fullmatch(cccd):
        raise TokenRejected(f"invalid claim: {names.cccd}")
    if role in (Role.CITIZEN, Role.GUARDIAN) and cccd is None:
        raise TokenRejected(f"missing claim: {names.cccd}")
    province = _text(claims, names.province)
    if province is not None and not _PROVINCE.fullmatch(province):
        raise TokenRejected(f"invalid claim: {names.province}")
    if role is Role.MANAGER and province is None and facility is None:
        raise TokenRejected(f"missing claim: {names.province}")
    fhir_user = _text(claims, "fhirUser")
    if fhir_user is not None:
        m = _FHIR_USER.fullmatch(fhir_user)
        if m is None:
            raise TokenRejected("invalid claim: fhirUser")
        fhir_user = m.group(1)
    patient = _text(claims, "patient")
    if patient is not None and not _FHIR_ID.fullmatch(patient):
        raise TokenRejected("invalid claim: patient")
    scope = claims.get("scope", claims.get("scp"))
    if scope is not None and not isinstance(scope, (str, list)):
        raise TokenRejected("invalid claim: scope")
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        raise TokenRejected("missing claim: sub")
    return Caller(
        subject=subject,
        roles=frozenset({role.value}),
        issuer=issuer.issuer,
        role=role,
        scopes=parse_scopes(scope),
        fhir_user=fhir_user,
        patient=patient,
        facility=facility,
        province=province,
        cccd=cccd,
        client_id=_text(claims, "client_id") or _text(claims, "azp"),
    )


# --- The request side ----------------------------------------------------------------------------


@dataclass
class Authenticator:
    """Turns an Authorization header into a Caller (anonymous when there is none and auth is off)."""

    validator: TokenValidator
    names: ClaimNames = field(default_factory=ClaimNames)
    required: bool = False

    async def caller(self, authorization: str | None) -> Caller:
        """The caller behind the header; raises TokenRejected (401) or KeysUnavailable (503)."""
        if authorization is None:
            if self.required:
                raise MissingToken("an access token is required")
            return Caller(subject="anonymous")
        scheme, _, token = authorization.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            if self.required:
                raise MissingToken("an access token is required (Authorization: Bearer)")
            return Caller(subject="anonymous")
        if not self.validator.issuers:
            raise TokenRejected("no trusted issuer is configured")
        return caller_from_token(await self.validator.verify(token), self.names)


def build_authenticator(
    settings: Settings,
    extra: Sequence[TrustedIssuer] = (),
    transport: httpx.AsyncBaseTransport | None = None,
) -> Authenticator:
    """The authenticator the settings describe, plus in-process issuers (the development provider)."""
    issuers = [
        TrustedIssuer(
            i,
            key_source(i, settings, transport),
            max_age=settings.jwks_max_age_seconds,
            min_refresh=settings.jwks_min_refresh_seconds,
        )
        for i in settings.oidc_issuers
    ]
    issuers.extend(extra)
    validator = TokenValidator(
        issuers,
        settings.audience,
        algorithms=tuple(settings.token_algorithms),
        required_claims=tuple(settings.token_required_claims),
        leeway=settings.token_leeway_seconds,
    )
    return Authenticator(validator, ClaimNames.from_settings(settings), required=settings.auth == "required")


async def first_metadata(authenticator: Authenticator) -> tuple[TrustedIssuer, dict[str, Any]] | None:
    """The first issuer with a discovery document and that document (for SMART discovery)."""
    for issuer in authenticator.validator.issuers:
        try:
            meta = await issuer.source.metadata()
        except (KeysUnavailable, httpx.HTTPError, OSError):
            continue
        if meta is not None:
            return issuer, meta
    return None
