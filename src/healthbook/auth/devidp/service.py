"""The development identity provider: OAuth 2.0 authorization code + PKCE and client credentials, in memory.

For development and `make demo` only (settings.dev_idp). It signs RS256 access tokens with a key kept in
``dev_idp_dir`` (made at first start), publishes that key in its own JWKS and discovery document, and the
resource server checks its tokens with the same code as any external issuer's (auth.tokens). Codes, used
codes and client-assertion ids live in memory: run one worker process.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import Key, RSAKey

from healthbook.auth.devidp.users import DemoDirectory, DemoUser
from healthbook.auth.scopes import SmartScope, parse_scope
from healthbook.auth.subject import Role
from healthbook.auth.tokens import LocalKeySource, TrustedIssuer, import_jwks, pick_key
from healthbook.config import ALL_ROLES, DevClientSettings, IssuerSettings, Settings

DEMO_CLIENT_ID = "demo-hospital"  # the built-in facility system (client credentials, private_key_jwt)
DEMO_APP_ID = "healthbook-demo-app"  # the built-in public app of the login pages
CODE_SECONDS = 120
ASSERTION_MAX_SECONDS = 300  # SMART Backend Services: exp at most five minutes ahead
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512")
_VERIFIER = re.compile(r"[A-Za-z0-9\-._~]{43,128}")  # RFC 7636 §4.1
_CHALLENGE = re.compile(r"[A-Za-z0-9\-_]{43}")  # base64url of a SHA-256 digest, unpadded
_PERSON_NAMES = frozenset({"openid", "fhirUser", "profile", "launch/patient", "online_access"})
_CONTEXTS = {
    Role.CITIZEN: "patient",
    Role.GUARDIAN: "patient",
    Role.HEALTH_WORKER: "user",
    Role.MANAGER: "user",
}


class OAuthError(Exception):
    """An OAuth error answer (RFC 6749 §5.2): error code, a short description, and the HTTP status."""

    def __init__(self, error: str, description: str, status: int = 400):
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status

    def as_json(self) -> dict[str, str]:
        """The error response body."""
        return {"error": self.error, "error_description": self.description}


def s256(verifier: str) -> str:
    """The PKCE S256 code challenge of a verifier (RFC 7636 §4.2)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _load_or_make_key(path: Path, alg: str) -> RSAKey:
    """An RSA key kept as a private JWK file (mode 0600); made on first use."""
    if path.exists():
        return RSAKey.import_key(json.loads(path.read_text()))
    key = RSAKey.generate_key(2048, parameters={"use": "sig", "alg": alg}, auto_kid=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(key.as_dict(private=True), out)
    return key


@dataclass(frozen=True, slots=True)
class Client:
    """A facility system allowed to use client_credentials with private_key_jwt."""

    client_id: str
    facility: str
    keys: tuple[Key, ...]
    scope: tuple[SmartScope, ...]


@dataclass(frozen=True, slots=True)
class PendingCode:
    """An authorization code waiting to be exchanged."""

    client_id: str
    redirect_uri: str
    challenge: str
    user: DemoUser
    scope: tuple[str, ...]
    nonce: str | None
    expires: float


@dataclass(frozen=True, slots=True)
class AuthorizeRequest:
    """A checked authorization request (RFC 6749 §4.1.1 + RFC 7636 + SMART `aud`)."""

    client_id: str
    redirect_uri: str
    scope: str
    state: str | None
    challenge: str
    nonce: str | None

    def hidden_fields(self) -> dict[str, str]:
        """The parameters to carry through the login form."""
        out = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": self.redirect_uri,
            "scope": self.scope,
            "code_challenge": self.challenge,
            "code_challenge_method": "S256",
        }
        if self.state is not None:
            out["state"] = self.state
        if self.nonce is not None:
            out["nonce"] = self.nonce
        return out


class BadAuthorizeRequest(Exception):
    """An authorization request that cannot even be redirected back (bad client_id or redirect_uri)."""


@dataclass
class DevIdentityProvider:
    """Issues tokens for the demo users and facility systems; see the module docstring."""

    settings: Settings
    directory: Callable[[], DemoDirectory]  # found in the database at first use
    clock: Callable[[], float] = time.time
    _codes: dict[str, PendingCode] = field(default_factory=dict, init=False, repr=False)
    _used: dict[str, float] = field(default_factory=dict, init=False, repr=False)
    _jtis: dict[str, float] = field(default_factory=dict, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _directory: DemoDirectory | None = field(default=None, init=False, repr=False)
    # state -> code_verifier of the logins the built-in demo app has started (router.start/callback)
    demo_app_logins: dict[str, str] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        folder = Path(self.settings.dev_idp_dir)
        self.issuer = self.settings.dev_issuer
        self.key = _load_or_make_key(folder / "signing-key.jwk.json", "RS256")
        self.demo_client_key = _load_or_make_key(folder / f"{DEMO_CLIENT_ID}.private.jwk.json", "RS384")
        self.demo_client_key_file = folder / f"{DEMO_CLIENT_ID}.private.jwk.json"
        self._registered = [self._client(c) for c in self.settings.dev_idp_clients]

    # --- discovery ---

    @property
    def token_endpoint(self) -> str:
        """Where tokens are issued (also the `aud` of client assertions)."""
        return f"{self.issuer}/token"

    @property
    def authorization_endpoint(self) -> str:
        """Where a person logs in."""
        return f"{self.issuer}/authorize"

    def jwks(self) -> dict[str, Any]:
        """The public signing keys."""
        return {"keys": [self.key.as_dict(private=False)]}

    def metadata(self) -> dict[str, Any]:
        """The OpenID Provider metadata (OpenID Connect Discovery 1.0 §3)."""
        return {
            "issuer": self.issuer,
            "authorization_endpoint": self.authorization_endpoint,
            "token_endpoint": self.token_endpoint,
            "jwks_uri": f"{self.issuer}/jwks",
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code", "client_credentials"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": ["private_key_jwt", "none"],
            "token_endpoint_auth_signing_alg_values_supported": list(ASSERTION_ALGORITHMS),
            "code_challenge_methods_supported": ["S256"],
            "scopes_supported": [
                "openid",
                "fhirUser",
                "launch/patient",
                "patient/*.rs",
                "user/*.cruds",
                "system/*.rs",
            ],
            "claims_supported": ["sub", "fhirUser", "patient", "name", *self._claim_names()],
        }

    def _claim_names(self) -> list[str]:
        s = self.settings
        return [s.claim_role, s.claim_facility, s.claim_cccd, s.claim_province]

    def trusted_issuer(self) -> TrustedIssuer:
        """How the resource server trusts this provider: its JWKS, asked in-process instead of over HTTP."""
        # No https check: nothing is fetched (a demo on a LAN address may well be plain http).
        settings = IssuerSettings.model_construct(
            issuer=self.issuer, roles=ALL_ROLES, default_role=None, audience=None
        )
        return TrustedIssuer(
            settings, LocalKeySource(self.jwks, self.metadata), max_age=self.settings.jwks_max_age_seconds
        )

    # --- users and clients ---

    def demo(self) -> DemoDirectory:
        """The demo users (looked up once the database has a population)."""
        if self._directory is None or not self._directory.users:
            self._directory = self.directory()
        return self._directory

    def user(self, key: str) -> DemoUser | None:
        """One demo user by key."""
        return next((u for u in self.demo().users if u.key == key), None)

    def _client(self, cfg: DevClientSettings) -> Client:
        doc = cfg.jwks if cfg.jwks is not None else json.loads(Path(cfg.jwks_file or "").read_text())
        scopes = tuple(s for w in cfg.scope.split() if (s := parse_scope(w)) is not None)
        return Client(cfg.client_id, cfg.facility, tuple(import_jwks(doc)), scopes)

    def clients(self) -> list[Client]:
        """The registered facility systems, the demo hospital first (when the database has one)."""
        out = list(self._registered)
        hospital = self.demo().hospital
        if hospital is not None and not any(c.client_id == DEMO_CLIENT_ID for c in out):
            public = RSAKey.import_key(self.demo_client_key.as_dict(private=False))
            scopes = tuple(s for w in ("system/*.cruds",) if (s := parse_scope(w)) is not None)
            out.insert(0, Client(DEMO_CLIENT_ID, hospital.code, (public,), scopes))
        return out

    # --- authorization endpoint ---

    def check_authorize(self, params: Mapping[str, str], audiences: set[str]) -> AuthorizeRequest:
        """Validate an authorization request; raises BadAuthorizeRequest or OAuthError (to redirect)."""
        client_id = params.get("client_id", "")
        redirect_uri = params.get("redirect_uri", "")
        if not client_id or len(client_id) > 200:
            raise BadAuthorizeRequest("client_id is missing")
        parts = urlsplit(redirect_uri)
        if (
            parts.scheme not in ("http", "https")
            or not parts.netloc
            or parts.fragment
            or len(redirect_uri) > 2000
        ):
            raise BadAuthorizeRequest("redirect_uri must be an absolute http(s) URL without a fragment")
        if params.get("response_type") != "code":
            raise OAuthError("unsupported_response_type", "only response_type=code is supported")
        if params.get("code_challenge_method") != "S256" or not _CHALLENGE.fullmatch(
            params.get("code_challenge", "")
        ):
            raise OAuthError(
                "invalid_request", "PKCE is required: code_challenge with code_challenge_method=S256"
            )
        aud = params.get("aud")
        if aud is not None and aud.rstrip("/") not in audiences:
            raise OAuthError("invalid_request", "aud is not this FHIR server")
        return AuthorizeRequest(
            client_id,
            redirect_uri,
            params.get("scope", "openid fhirUser"),
            params.get("state"),
            params["code_challenge"],
            params.get("nonce"),
        )

    def issue_code(self, req: AuthorizeRequest, user: DemoUser) -> str:
        """The redirect URL that carries a new authorization code to the client."""
        code = secrets.token_urlsafe(32)
        with self._lock:
            self._prune()
            self._codes[code] = PendingCode(
                req.client_id,
                req.redirect_uri,
                req.challenge,
                user,
                _granted(user, req.scope),
                req.nonce,
                self.clock() + CODE_SECONDS,
            )
        return redirect_with(req.redirect_uri, {"code": code, "state": req.state, "iss": self.issuer})

    def _prune(self) -> None:
        now = self.clock()
        for store in (self._used, self._jtis):
            for k in [k for k, exp in store.items() if exp < now - 3600]:
                del store[k]
        for k in [k for k, c in self._codes.items() if c.expires < now]:
            del self._codes[k]

    # --- token endpoint ---

    def token(self, form: Mapping[str, str]) -> dict[str, Any]:
        """Answer a token request; raises OAuthError."""
        grant = form.get("grant_type")
        if grant == "authorization_code":
            return self._code_grant(form)
        if grant == "client_credentials":
            return self._client_grant(form)
        raise OAuthError(
            "unsupported_grant_type", "grant_type must be authorization_code or client_credentials"
        )

    def _code_grant(self, form: Mapping[str, str]) -> dict[str, Any]:
        code = form.get("code", "")
        with self._lock:
            pending = self._codes.pop(code, None)
            reused = code in self._used
            if pending is not None:
                self._used[code] = pending.expires
        if pending is None:
            raise OAuthError(
                "invalid_grant", "authorization code already used" if reused else "unknown or expired code"
            )
        if pending.expires < self.clock():
            raise OAuthError("invalid_grant", "unknown or expired code")
        if form.get("client_id") != pending.client_id:
            raise OAuthError("invalid_grant", "the code was issued to another client")
        if form.get("redirect_uri") != pending.redirect_uri:
            raise OAuthError("invalid_grant", "redirect_uri differs from the authorization request")
        verifier = form.get("code_verifier", "")
        if not _VERIFIER.fullmatch(verifier) or not hmac.compare_digest(s256(verifier), pending.challenge):
            raise OAuthError("invalid_grant", "code_verifier does not match the code_challenge")
        user = pending.user
        claims = self._person_claims(user)
        scope = " ".join(pending.scope)
        answer = self._answer(claims, scope, pending.client_id)
        if user.patient is not None and user.role in (Role.CITIZEN, Role.GUARDIAN):
            answer["patient"] = user.patient
        if "openid" in pending.scope:
            answer["id_token"] = self._id_token(user, pending.client_id, pending.nonce)
        return answer

    def _person_claims(self, user: DemoUser) -> dict[str, Any]:
        s = self.settings
        claims: dict[str, Any] = {"sub": user.subject, s.claim_role: user.role.value}
        for name, value in (
            ("fhirUser", user.fhir_user),
            ("patient", user.patient if user.role in (Role.CITIZEN, Role.GUARDIAN) else None),
            (s.claim_cccd, user.cccd),
            (s.claim_facility, user.facility),
            (s.claim_province, user.province),
        ):
            if value is not None:
                claims[name] = value
        return claims

    def _answer(self, claims: dict[str, Any], scope: str, client_id: str) -> dict[str, Any]:
        now = int(self.clock())
        lifetime = self.settings.dev_idp_token_seconds
        body = {
            "iss": self.issuer,
            "aud": self.settings.audience,
            "iat": now,
            "nbf": now,
            "exp": now + lifetime,
            "jti": secrets.token_urlsafe(16),
            "client_id": client_id,
            "scope": scope,
            **claims,
        }
        token = jwt.encode(
            {"alg": "RS256", "kid": self.key.kid, "typ": "at+jwt"}, body, self.key, algorithms=["RS256"]
        )
        return {"access_token": token, "token_type": "Bearer", "expires_in": lifetime, "scope": scope}

    def _id_token(self, user: DemoUser, client_id: str, nonce: str | None) -> str:
        now = int(self.clock())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": user.subject,
            "aud": client_id,
            "iat": now,
            "auth_time": now,
            "exp": now + 600,
            "name": user.name,
        }
        if user.fhir_user is not None:
            claims["fhirUser"] = user.fhir_user
        if nonce is not None:
            claims["nonce"] = nonce
        return jwt.encode({"alg": "RS256", "kid": self.key.kid}, claims, self.key, algorithms=["RS256"])

    def _client_grant(self, form: Mapping[str, str]) -> dict[str, Any]:
        if form.get("client_assertion_type") != ASSERTION_TYPE or not form.get("client_assertion"):
            raise OAuthError("invalid_client", "private_key_jwt client authentication is required", 401)
        client = self._authenticate_client(form["client_assertion"], form.get("client_id"))
        requested = form.get("scope") or " ".join(str(s) for s in client.scope)
        granted = []
        for word in requested.split():
            scope = parse_scope(word)
            if (
                scope is not None
                and scope.context == "system"
                and any(_within(scope, a) for a in client.scope)
            ):
                granted.append(str(scope))
        if not granted:
            raise OAuthError("invalid_scope", "none of the requested scopes may be granted to this client")
        claims = {"sub": client.client_id, self.settings.claim_role: Role.FACILITY_SYSTEM.value}
        claims[self.settings.claim_facility] = client.facility
        return self._answer(claims, " ".join(granted), client.client_id)

    def _authenticate_client(self, assertion: str, client_id: str | None) -> Client:
        """Check a client assertion (RFC 7523 §3, SMART Backend Services): signature, iss=sub, aud, exp, jti."""
        refused = OAuthError("invalid_client", "client authentication failed", 401)
        parts = assertion.split(".")
        if len(parts) != 3 or len(assertion) > 16384:
            raise refused
        try:
            header = json.loads(base64.urlsafe_b64decode(parts[0] + "=" * (-len(parts[0]) % 4)))
            unverified = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
        except ValueError:
            raise refused from None
        if not isinstance(header, dict) or not isinstance(unverified, dict):
            raise refused
        alg = header.get("alg")
        if alg not in ASSERTION_ALGORITHMS:
            raise refused
        iss = unverified.get("iss")
        client = next((c for c in self.clients() if c.client_id == iss), None)
        if client is None or (client_id is not None and client_id != client.client_id):
            raise refused
        kid = header.get("kid")
        key = pick_key(list(client.keys), kid if isinstance(kid, str) else None, str(alg))
        if key is None:
            raise refused
        try:
            claims = json.loads(jws.deserialize_compact(assertion, key, algorithms=[str(alg)]).payload or b"")
        except (JoseError, ValueError):
            raise refused from None
        now = self.clock()
        leeway = self.settings.token_leeway_seconds
        aud = claims.get("aud")
        auds = aud if isinstance(aud, list) else [aud]
        exp = claims.get("exp")
        jti = claims.get("jti")
        if (
            claims.get("iss") != client.client_id
            or claims.get("sub") != client.client_id
            or self.token_endpoint not in auds
            or not isinstance(exp, (int, float))
            or isinstance(exp, bool)
            or exp <= now - leeway
            or exp > now + ASSERTION_MAX_SECONDS + leeway
            or not isinstance(jti, str)
            or not jti
        ):
            raise refused
        seen = f"{client.client_id} {jti}"
        with self._lock:
            self._prune()
            if seen in self._jtis:
                raise refused  # a replayed assertion
            self._jtis[seen] = float(exp)
        return client


def _within(scope: SmartScope, allowed: SmartScope) -> bool:
    """Whether `scope` asks for no more than `allowed` grants."""
    return (
        scope.context == allowed.context
        and (allowed.resource_type == "*" or allowed.resource_type == scope.resource_type)
        and scope.permissions <= allowed.permissions
        and (not allowed.params or scope.params == allowed.params)
    )


def _granted(user: DemoUser, requested: str) -> tuple[str, ...]:
    """The requested scopes this user may have; the user's default resource scopes when none are asked for."""
    context = _CONTEXTS.get(user.role)
    words = requested.split()
    names = [w for w in words if w in _PERSON_NAMES]
    resource = [str(s) for w in words if (s := parse_scope(w)) is not None and s.context == context]
    if user.role is Role.MANAGER:
        resource = [
            str(s) for w in resource if (s := parse_scope(w)) is not None and s.permissions <= {"r", "s"}
        ]
    if not resource:
        resource = [w for w in user.scope.split() if parse_scope(w) is not None]
    return tuple(dict.fromkeys(names + resource))


def redirect_with(uri: str, params: Mapping[str, str | None]) -> str:
    """`uri` with the parameters added to its query (RFC 6749 §4.1.2)."""
    query = urlencode({k: v for k, v in params.items() if v is not None})
    return f"{uri}{'&' if urlsplit(uri).query else '?'}{query}"
