"""Access-token verification with locally made keys: refused tokens, key rotation, discovery, claims → Caller."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, Key, RSAKey

from healthbook.auth.subject import Caller, Role
from healthbook.auth.tokens import (
    Authenticator,
    HttpKeySource,
    KeysUnavailable,
    MissingToken,
    StaticKeySource,
    TokenRejected,
    TokenValidator,
    TrustedIssuer,
    VerifiedToken,
    build_authenticator,
    caller_from_token,
)
from healthbook.config import IssuerSettings, Settings

ISS = "https://id.example.vn"
AUD = "https://healthbook.example.vn/fhir"
CCCD = "001190012345"


def rsa(kid: str) -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": kid, "use": "sig"})


KEY = rsa("k1")
OTHER = rsa("k1")  # same kid, different key: a forger's


def jwks(*keys: Key) -> dict[str, Any]:
    return {"keys": [k.as_dict(private=False) for k in keys]}


def claims(**over: Any) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {
        "iss": ISS,
        "sub": "user-1",
        "aud": AUD,
        "iat": now,
        "nbf": now,
        "exp": now + 300,
        "scope": "openid fhirUser patient/*.rs",
        "healthbook_role": "citizen",
        "healthbook_cccd": CCCD,
        "patient": "p1",
        "fhirUser": "Patient/p1",
    }
    base.update(over)
    return {k: v for k, v in base.items() if v is not None}


def sign(key: Key, body: dict[str, Any], alg: str = "RS256", **header: Any) -> str:
    return jwt.encode({"alg": alg, "kid": key.kid, **header}, body, key, algorithms=[alg])


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def issuer(source: Any, **settings: Any) -> TrustedIssuer:
    return TrustedIssuer(IssuerSettings(issuer=ISS, **settings), source, min_refresh=0.0)


def validator(*issuers: TrustedIssuer, clock: Callable[[], float] = time.time) -> TokenValidator:
    return TokenValidator(list(issuers), AUD, leeway=30, clock=clock)


def verify(v: TokenValidator, token: str) -> VerifiedToken:
    return asyncio.run(v.verify(token))


def refused(v: TokenValidator, token: str) -> str:
    with pytest.raises(TokenRejected) as info:
        verify(v, token)
    return str(info.value)


@pytest.fixture
def static() -> TokenValidator:
    return validator(issuer(StaticKeySource(jwks(KEY))))


def test_valid_token(static: TokenValidator) -> None:
    token = verify(static, sign(KEY, claims()))
    assert token.claims["sub"] == "user-1"
    assert token.issuer.issuer == ISS


def test_audience_list_containing_ours(static: TokenValidator) -> None:
    verify(static, sign(KEY, claims(aud=["other", AUD])))


@pytest.mark.parametrize(
    ("over", "reason"),
    [
        ({"exp": -120}, "token expired"),
        ({"nbf": 600}, "token not yet valid"),
        ({"iat": 600}, "token issued in the future"),
        ({"aud": "https://other.example/fhir"}, "wrong audience"),
        ({"aud": None}, "missing claim: aud"),
        ({"exp": None}, "missing claim: exp"),
        ({"sub": None}, "missing claim: sub"),
        ({"iss": "https://evil.example"}, "untrusted issuer"),
        ({"iss": None}, "untrusted issuer"),
    ],
)
def test_refused_claims(static: TokenValidator, over: dict[str, Any], reason: str) -> None:
    """Times are offsets from now, applied when the test runs (not when it is collected)."""
    body = claims(
        **{
            k: (v + int(time.time()) if k in ("exp", "nbf", "iat") and v is not None else v)
            for k, v in over.items()
        }
    )
    assert refused(static, sign(KEY, body)) == reason


def test_small_clock_skew_is_tolerated(static: TokenValidator) -> None:
    verify(static, sign(KEY, claims(exp=int(time.time()) - 10, nbf=int(time.time()) + 10)))


def test_forged_signature(static: TokenValidator) -> None:
    assert refused(static, sign(OTHER, claims())) == "bad signature"


def test_tampered_payload(static: TokenValidator) -> None:
    head, _, sig = sign(KEY, claims()).split(".")
    body = b64(json.dumps(claims(healthbook_role="manager", healthbook_province="01")).encode())
    assert refused(static, f"{head}.{body}.{sig}") == "bad signature"


def test_alg_none(static: TokenValidator) -> None:
    head = b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    body = b64(json.dumps(claims()).encode())
    assert refused(static, f"{head}.{body}.") == "signature algorithm not accepted"


def test_hs256_signed_with_the_public_key(static: TokenValidator) -> None:
    """The classic key-confusion attack: HMAC keyed with the issuer's public key must not verify."""
    head = b64(json.dumps({"alg": "HS256", "kid": "k1", "typ": "JWT"}).encode())
    body = b64(json.dumps(claims()).encode())
    for secret in (KEY.as_pem(private=False), json.dumps(KEY.as_dict(private=False)).encode()):
        sig = b64(hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest())
        assert refused(static, f"{head}.{body}.{sig}") == "signature algorithm not accepted"


def test_rs256_header_on_an_ec_key() -> None:
    ec = ECKey.generate_key("P-256", parameters={"kid": "e1"})
    v = validator(issuer(StaticKeySource(jwks(ec))))
    assert sign(ec, claims(), "ES256")  # a well-formed ES256 token verifies...
    verify(v, sign(ec, claims(), "ES256"))
    head = b64(json.dumps({"alg": "RS256", "kid": "e1"}).encode())  # ...an RS256 header on it does not
    assert refused(v, f"{head}.{b64(json.dumps(claims()).encode())}.AAAA") == "unknown signing key"


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        ("abc", "not a signed JWT"),
        ("a.b.c.d.e", "not a signed JWT"),  # JWE
        ("!!.!!.!!", "malformed token"),
        (b64(b"[1]") + ".e30.", "malformed token"),
        ("x" * 20000, "token too large"),
    ],
)
def test_malformed(static: TokenValidator, token: str, reason: str) -> None:
    assert refused(static, token) == reason


def test_other_headers(static: TokenValidator) -> None:
    assert refused(static, sign(KEY, claims(), crit=["b64"], b64=True)) == "unsupported critical header"
    assert refused(static, sign(KEY, claims(), typ="JOSE+JSON")) == "not an access token"
    verify(static, sign(KEY, claims(), typ="at+jwt"))


def test_without_kid_only_an_unambiguous_key() -> None:
    body = claims()
    no_kid = jwt.encode({"alg": "RS256"}, body, KEY, algorithms=["RS256"])
    verify(validator(issuer(StaticKeySource(jwks(KEY)))), no_kid)
    two = validator(issuer(StaticKeySource(jwks(KEY, rsa("k2")))))
    assert refused(two, no_kid) == "the token names no key id (kid)"


class FakeIdp:
    """An issuer on an httpx MockTransport: discovery + JWKS, counting the JWKS fetches."""

    def __init__(self, *keys: Key, issuer: str = ISS, jwks_uri: str = f"{ISS}/jwks") -> None:
        self.keys = list(keys)
        self.fetches = 0
        self.issuer = issuer
        self.jwks_uri = jwks_uri
        self.down = False

    def handler(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            return httpx.Response(503)
        if request.url.path == "/.well-known/openid-configuration":
            return httpx.Response(200, json={"issuer": self.issuer, "jwks_uri": self.jwks_uri})
        if str(request.url) == f"{ISS}/jwks":
            self.fetches += 1
            return httpx.Response(200, json=jwks(*self.keys))
        return httpx.Response(404)

    def source(self) -> HttpKeySource:
        return HttpKeySource(ISS, transport=httpx.MockTransport(self.handler))


def test_discovery_and_cache() -> None:
    idp = FakeIdp(KEY)
    v = validator(issuer(idp.source()))
    verify(v, sign(KEY, claims()))
    verify(v, sign(KEY, claims()))
    assert idp.fetches == 1


def test_unknown_kid_after_one_refresh() -> None:
    idp = FakeIdp(KEY)
    v = validator(issuer(idp.source()))
    assert refused(v, sign(rsa("k9"), claims())) == "unknown signing key"
    assert idp.fetches == 2  # the first fetch, then exactly one refresh


def test_key_rotation() -> None:
    idp = FakeIdp(KEY)
    v = validator(issuer(idp.source()))
    verify(v, sign(KEY, claims()))
    new = rsa("k2")
    idp.keys = [KEY, new]  # the issuer publishes its next key
    verify(v, sign(new, claims()))
    idp.keys = [new]  # and retires the old one
    verify(v, sign(new, claims()))
    assert idp.fetches == 2


def test_refresh_is_rate_limited() -> None:
    now = [1000.0]
    idp = FakeIdp(KEY)
    trusted = TrustedIssuer(IssuerSettings(issuer=ISS), idp.source(), min_refresh=10.0, clock=lambda: now[0])
    v = validator(trusted)
    verify(v, sign(KEY, claims()))
    for _ in range(5):
        assert refused(v, sign(rsa("x"), claims())) == "unknown signing key"
    assert idp.fetches == 1  # random kids cannot make us hammer the issuer
    now[0] += 11
    new = rsa("k2")
    idp.keys = [new]
    verify(v, sign(new, claims()))
    assert idp.fetches == 2


def test_keys_expire_and_survive_an_outage() -> None:
    now = [1000.0]
    idp = FakeIdp(KEY)
    trusted = TrustedIssuer(IssuerSettings(issuer=ISS), idp.source(), max_age=60, clock=lambda: now[0])
    v = validator(trusted)
    verify(v, sign(KEY, claims()))
    now[0] += 61
    idp.down = True
    verify(v, sign(KEY, claims()))  # old keys are kept while the issuer is down


def test_unreachable_issuer_without_keys() -> None:
    idp = FakeIdp(KEY)
    idp.down = True
    with pytest.raises(KeysUnavailable):
        verify(validator(issuer(idp.source())), sign(KEY, claims()))


def test_discovery_must_name_the_same_issuer() -> None:
    idp = FakeIdp(KEY, issuer="https://evil.example")
    with pytest.raises(KeysUnavailable):
        verify(validator(issuer(idp.source())), sign(KEY, claims()))


def test_jwks_uri_must_be_https() -> None:
    idp = FakeIdp(KEY, jwks_uri="http://id.example.vn/jwks")
    with pytest.raises(KeysUnavailable):
        verify(validator(issuer(idp.source())), sign(KEY, claims()))


def test_symmetric_keys_in_a_jwks_are_ignored() -> None:
    doc = jwks(KEY)
    doc["keys"].append({"kty": "oct", "kid": "h1", "k": b64(b"secret")})
    doc["keys"].append({"kty": "RSA", "kid": "enc", "use": "enc", "n": "AQAB", "e": "AQAB"})
    doc["keys"].append({"kty": "RSA", "kid": "bad"})
    verify(validator(issuer(StaticKeySource(doc))), sign(KEY, claims()))


# --- claims → Caller -----------------------------------------------------------------------------


def caller(body: dict[str, Any], **issuer_settings: Any) -> Caller:
    v = validator(issuer(StaticKeySource(jwks(KEY)), **issuer_settings))
    return caller_from_token(verify(v, sign(KEY, body)))


def test_citizen_caller() -> None:
    c = caller(claims(fhirUser="https://healthbook.example.vn/fhir/Patient/p1", client_id="app"))
    assert c.role is Role.CITIZEN
    assert c.roles == {"citizen"}
    assert c.issuer == ISS
    assert c.authenticated
    assert c.cccd == CCCD
    assert c.patient == "p1"
    assert c.fhir_user == "Patient/p1"
    assert c.client_id == "app"
    assert {str(s) for s in c.scopes} == {"patient/*.rs"}
    assert "openid" in c.scopes.other
    assert CCCD not in repr(c)  # never in logs


def test_health_worker_and_facility_system() -> None:
    hw = caller(claims(healthbook_role="health-worker", healthbook_facility="01001", healthbook_cccd=None))
    assert (hw.role, hw.facility) == (Role.HEALTH_WORKER, "01001")
    fs = caller(claims(healthbook_role="facility-system", healthbook_facility="01901", healthbook_cccd=None))
    assert fs.role is Role.FACILITY_SYSTEM
    assert caller(claims(healthbook_role="proxy")).role is Role.GUARDIAN
    mgr = caller(claims(healthbook_role="manager", healthbook_province="01", healthbook_cccd=None))
    assert (mgr.role, mgr.province) == (Role.MANAGER, "01")


def test_default_role_of_an_issuer() -> None:
    assert caller(claims(healthbook_role=None), default_role="citizen").role is Role.CITIZEN


@pytest.mark.parametrize(
    ("over", "settings", "reason"),
    [
        ({"healthbook_role": None}, {}, "the token carries no healthbook role"),
        ({"healthbook_role": "admin"}, {}, "unknown role"),
        (
            {"healthbook_role": "manager", "healthbook_province": "01"},
            {"roles": ("citizen",)},
            "this issuer may not assert that role",
        ),
        ({"healthbook_role": "health-worker"}, {}, "missing claim: healthbook_facility"),
        (
            {"healthbook_role": "health-worker", "healthbook_facility": "1"},
            {},
            "invalid claim: healthbook_facility",
        ),
        ({"healthbook_cccd": None}, {}, "missing claim: healthbook_cccd"),
        ({"healthbook_cccd": "12345"}, {}, "invalid claim: healthbook_cccd"),
        ({"healthbook_role": "manager", "healthbook_cccd": None}, {}, "missing claim: healthbook_province"),
        ({"fhirUser": "Observation/1"}, {}, "invalid claim: fhirUser"),
        ({"patient": "../x"}, {}, "invalid claim: patient"),
        ({"scope": 5}, {}, "invalid claim: scope"),
        ({"healthbook_role": 7}, {}, "invalid claim: healthbook_role"),
    ],
)
def test_refused_callers(over: dict[str, Any], settings: dict[str, Any], reason: str) -> None:
    with pytest.raises(TokenRejected) as info:
        caller(claims(**over), **settings)
    assert str(info.value) == reason


def test_custom_claim_names() -> None:
    s = Settings(oidc_issuers=[{"issuer": ISS, "jwks": jwks(KEY)}], audience=AUD, claim_cccd="vneid_id")
    auth = build_authenticator(s)
    c = asyncio.run(auth.caller("Bearer " + sign(KEY, claims(healthbook_cccd=None, vneid_id=CCCD))))
    assert c.cccd == CCCD


# --- the Authorization header --------------------------------------------------------------------


def authenticator(required: bool) -> Authenticator:
    return Authenticator(validator(issuer(StaticKeySource(jwks(KEY)))), required=required)


def test_header_handling() -> None:
    off, required = authenticator(False), authenticator(True)
    assert asyncio.run(off.caller(None)).subject == "anonymous"
    assert asyncio.run(off.caller("Basic dXNlcjpwdw==")).subject == "anonymous"
    assert asyncio.run(off.caller("bearer " + sign(KEY, claims()))).subject == "user-1"
    for header in (None, "Basic dXNlcjpwdw==", "Bearer "):
        with pytest.raises(MissingToken):
            asyncio.run(required.caller(header))
    with pytest.raises(TokenRejected):
        asyncio.run(off.caller("Bearer not-a-token"))


def test_no_issuer_configured() -> None:
    auth = build_authenticator(Settings())
    with pytest.raises(TokenRejected, match="no trusted issuer"):
        asyncio.run(auth.caller("Bearer " + sign(KEY, claims())))


# --- settings ------------------------------------------------------------------------------------


def test_issuer_settings_forms(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEALTHBOOK_OIDC_ISSUERS", "https://a.example, https://b.example")
    assert [i.issuer for i in Settings().oidc_issuers] == ["https://a.example", "https://b.example"]
    monkeypatch.setenv(
        "HEALTHBOOK_OIDC_ISSUERS",
        json.dumps(["https://a.example", {"issuer": "https://b.example", "default_role": "citizen"}]),
    )
    assert Settings().oidc_issuers[1].default_role == "citizen"
    monkeypatch.setenv("HEALTHBOOK_OIDC_ISSUERS", "http://id.example.vn")
    with pytest.raises(ValueError, match="https"):
        Settings()
    monkeypatch.setenv("HEALTHBOOK_OIDC_ISSUERS", "http://127.0.0.1:9000/realms/x")
    assert Settings().oidc_issuers[0].issuer == "http://127.0.0.1:9000/realms/x"
    monkeypatch.delenv("HEALTHBOOK_OIDC_ISSUERS")
    monkeypatch.setenv("HEALTHBOOK_TOKEN_ALGORITHMS", "RS256,HS256")
    with pytest.raises(ValueError, match="HS256"):
        Settings()


def test_outage_fetches_are_rate_limited() -> None:
    now = [1000.0]
    idp = FakeIdp(KEY)
    idp.down = True
    calls = [0]
    original = idp.handler

    def counting(request: httpx.Request) -> httpx.Response:
        calls[0] += 1
        return original(request)

    source = HttpKeySource(ISS, transport=httpx.MockTransport(counting), retry_after=0.0)
    v = validator(TrustedIssuer(IssuerSettings(issuer=ISS), source, min_refresh=10.0, clock=lambda: now[0]))
    for _ in range(3):
        with pytest.raises(KeysUnavailable):
            verify(v, sign(KEY, claims()))
    assert calls[0] == 1
    now[0] += 11
    idp.down = False
    verify(v, sign(KEY, claims()))


def test_smart_configuration_of_an_external_issuer() -> None:
    from healthbook.auth.service import AuthService

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200,
            json={
                "issuer": ISS,
                "jwks_uri": f"{ISS}/jwks",
                "authorization_endpoint": f"{ISS}/auth",
                "token_endpoint": f"{ISS}/token",
                "token_endpoint_auth_methods_supported": ["client_secret_basic"],
            },
        )

    settings = Settings(oidc_issuers=[ISS], audience=AUD)
    service = AuthService.build(settings, transport=httpx.MockTransport(handler))
    conf = asyncio.run(service.smart_configuration())
    assert conf is not None
    assert (conf["issuer"], conf["authorization_endpoint"], conf["token_endpoint"]) == (
        ISS,
        f"{ISS}/auth",
        f"{ISS}/token",
    )
    assert conf["token_endpoint_auth_methods_supported"] == ["client_secret_basic", "private_key_jwt"]
    security = asyncio.run(service.capability_security())
    assert security["extension"][0]["extension"][1] == {"url": "token", "valueUri": f"{ISS}/token"}
    offline = AuthService.build(
        Settings(oidc_issuers=[ISS]), transport=httpx.MockTransport(lambda r: httpx.Response(503))
    )
    assert asyncio.run(offline.smart_configuration()) is None
    assert "extension" not in asyncio.run(offline.capability_security())
