"""Authentication over the app: the middleware (off / required), SMART discovery, and the development provider."""

from __future__ import annotations

import base64
import json
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient
from joserfc import jwt
from joserfc.jwk import RSAKey

from healthbook.app import create_app
from healthbook.auth.devidp.client import client_assertion, token_form
from healthbook.auth.devidp.service import ASSERTION_TYPE, DEMO_CLIENT_ID, s256
from healthbook.auth.subject import Caller
from healthbook.config import Settings
from healthbook.fhir.router import Services
from healthbook.identity import systems
from healthbook.synth.systems import FACILITY_LEVEL
from tests.integration.conftest import outcome

ISSUER = "http://testserver/dev-idp"
FHIR = "http://testserver/fhir"
REDIRECT = "http://localhost:5555/callback"
SYSTEM = Caller.system("test")

# A tiny hand-made population: a citizen, a mother and her child, a health station, a hospital.
STATION = "01001"
HOSPITAL = "01501"
CITIZEN_CCCD = "001190012345"
MOTHER_CCCD = "001192000777"
CHILD_CCCD = "001224000001"


def _org(oid: str, code: str, level: str, name: str) -> dict[str, Any]:
    return {
        "resourceType": "Organization",
        "id": oid,
        "identifier": [{"system": systems.FACILITY_CODE, "value": code}],
        "type": [{"coding": [{"system": FACILITY_LEVEL, "code": level}]}],
        "name": name,
        "address": [{"state": "Thành phố Hà Nội"}],
    }


def _patient(pid: str, cccd: str, name: str, gender: str, birth: str, **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": pid,
        "identifier": [{"system": systems.CCCD, "value": cccd}],
        "name": [{"text": name}],
        "gender": gender,
        "birthDate": birth,
        "generalPractitioner": [{"reference": "Organization/station"}],
        **extra,
    }


def population(services: Services) -> None:
    """Write the hand-made population (the dev provider finds its demo users in it)."""
    resources = [
        _org("station", STATION, "tram-y-te", "Trạm y tế phường Mẫu"),
        _org("hospital", HOSPITAL, "tinh", "Bệnh viện tỉnh Mẫu"),
        {
            "resourceType": "Practitioner",
            "id": "nurse",
            "name": [{"text": "Nguyễn Thị Hoa", "prefix": ["HS."]}],
        },
        {
            "resourceType": "PractitionerRole",
            "id": "nurse-role",
            "practitioner": {"reference": "Practitioner/nurse"},
            "organization": {"reference": "Organization/station"},
        },
        _patient("citizen", CITIZEN_CCCD, "Trần Thị Mai", "female", "1990-03-04"),
        _patient("mother", MOTHER_CCCD, "Lê Thị Lan", "female", "1992-05-06"),
        _patient("child", CHILD_CCCD, "Lê Minh An", "male", "2024-01-02"),
        {
            "resourceType": "RelatedPerson",
            "id": "mother-of-child",
            "identifier": [{"system": systems.CCCD, "value": MOTHER_CCCD}],
            "patient": {"reference": "Patient/child"},
            "name": [{"text": "Lê Thị Lan"}],
        },
        {
            "resourceType": "Encounter",
            "id": "visit",
            "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
            "subject": {"reference": "Patient/citizen"},
            "serviceProvider": {"reference": "Organization/hospital"},
        },
    ]
    for res in resources:
        services.fhir.update(SYSTEM, res["resourceType"], res["id"], res)


def dev_settings(settings: Settings, tmp_path: Path, **over: Any) -> Settings:
    return settings.model_copy(
        update={"dev_idp": True, "dev_idp_issuer": ISSUER, "dev_idp_dir": str(tmp_path / "idp"), **over}
    )


@pytest.fixture
def dev(settings: Settings, services: Services, tmp_path: Path) -> Iterator[TestClient]:
    """The app with the development provider on (auth still off) and the small population."""
    population(services)
    s = dev_settings(settings, tmp_path)
    with TestClient(create_app(s, services)) as c:
        yield c


@pytest.fixture
def dev_required(settings: Settings, services: Services, tmp_path: Path) -> Iterator[TestClient]:
    """The same with HEALTHBOOK_AUTH=required."""
    population(services)
    s = dev_settings(settings, tmp_path, auth="required")
    with TestClient(create_app(s, services)) as c:
        yield c


def _path(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def authorize(
    client: TestClient,
    user: str,
    *,
    verifier: str,
    redirect_uri: str = REDIRECT,
    scope: str = "openid fhirUser patient/*.rs launch/patient",
) -> str:
    """Log in as `user` through the login page; the authorization code the client receives."""
    params = {
        "response_type": "code",
        "client_id": "test-app",
        "redirect_uri": redirect_uri,
        "scope": scope,
        "state": "xyz",
        "aud": FHIR,
        "code_challenge": s256(verifier),
        "code_challenge_method": "S256",
    }
    page = client.get("/dev-idp/authorize", params=params)
    assert page.status_code == 200, page.text
    assert "Đăng nhập" in page.text
    assert f'value="{user}"' in page.text
    resp = client.post("/dev-idp/authorize", data={**params, "user": user}, follow_redirects=False)
    assert resp.status_code == 303, resp.text
    target = urlsplit(resp.headers["location"])
    assert f"{target.scheme}://{target.netloc}{target.path}" == redirect_uri
    query = parse_qs(target.query)
    assert query["state"] == ["xyz"]
    assert query["iss"][0].endswith("/dev-idp")  # RFC 9207
    return query["code"][0]


def exchange(client: TestClient, code: str, verifier: str, redirect_uri: str = REDIRECT) -> Any:
    return client.post(
        "/dev-idp/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "client_id": "test-app",
            "code_verifier": verifier,
        },
    )


def login(
    client: TestClient, user: str, scope: str = "openid fhirUser patient/*.rs launch/patient"
) -> dict[str, Any]:
    verifier = secrets.token_urlsafe(48)
    resp = exchange(client, authorize(client, user, verifier=verifier, scope=scope), verifier)
    assert resp.status_code == 200, resp.text
    assert resp.headers["cache-control"] == "no-store"
    body: dict[str, Any] = resp.json()
    return body


def payload(token: str) -> dict[str, Any]:
    part = token.split(".")[1]
    data: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return data


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# --- off by default ------------------------------------------------------------------------------


def test_dev_idp_is_off_by_default(client: TestClient) -> None:
    for path in (
        "/dev-idp",
        "/dev-idp/authorize",
        "/dev-idp/.well-known/openid-configuration",
        "/dev-idp/jwks",
    ):
        assert client.get(path).status_code == 404
    assert client.post("/dev-idp/token", data={"grant_type": "client_credentials"}).status_code == 404
    outcome(client.get("/fhir/.well-known/smart-configuration"), 404, "not-found")
    security = client.get("/fhir/metadata").json()["rest"][0]["security"]
    assert security["service"][0]["coding"][0]["code"] == "SMART-on-FHIR"
    assert "extension" not in security  # no authorization server to point at


def test_auth_off_keeps_anonymous_access(client: TestClient) -> None:
    assert client.get("/fhir/Patient").status_code == 200
    # A token is still checked when one is sent: with no trusted issuer it cannot be good.
    resp = client.get("/fhir/Patient", headers=bearer("abc.def.ghi"))
    body = outcome(resp, 401, "login")
    assert resp.headers["www-authenticate"].startswith('Bearer realm="healthbook", error="invalid_token"')
    assert "abc.def.ghi" not in json.dumps(body)


# --- the authorization code flow -----------------------------------------------------------------


def test_code_flow_citizen(dev: TestClient) -> None:
    answer = login(dev, "citizen")
    assert answer["token_type"] == "Bearer"
    assert answer["patient"] == "citizen"
    assert set(answer["scope"].split()) == {"openid", "fhirUser", "patient/*.rs", "launch/patient"}
    claims = payload(answer["access_token"])
    assert claims["iss"] == ISSUER
    assert claims["aud"] == "healthbook"
    assert claims["healthbook_role"] == "citizen"
    assert claims["healthbook_cccd"] == CITIZEN_CCCD
    assert claims["fhirUser"] == "Patient/citizen"
    id_token = payload(answer["id_token"])
    assert id_token["aud"] == "test-app"
    assert id_token["fhirUser"] == "Patient/citizen"
    # The resource server accepts it, and the caller is the citizen.
    assert dev.get("/fhir/Patient/citizen", headers=bearer(answer["access_token"])).status_code == 200


def test_every_demo_user_gets_the_claims_of_its_role(dev: TestClient) -> None:
    parent = payload(login(dev, "parent")["access_token"])
    assert (parent["healthbook_role"], parent["healthbook_cccd"], parent["patient"]) == (
        "guardian",
        MOTHER_CCCD,
        "child",
    )
    assert parent["fhirUser"] == "RelatedPerson/mother-of-child"
    worker = payload(login(dev, "health-worker", "openid fhirUser user/*.cruds patient/*.rs")["access_token"])
    assert (worker["healthbook_role"], worker["healthbook_facility"]) == ("health-worker", STATION)
    assert worker["fhirUser"] == "Practitioner/nurse"
    assert worker["scope"] == "openid fhirUser user/*.cruds"  # patient/ scopes are not for staff
    manager = payload(login(dev, "manager", "openid user/*.cruds")["access_token"])
    assert (manager["healthbook_role"], manager["healthbook_province"]) == ("manager", "01")
    assert manager["scope"] == "openid user/*.rs"  # a manager never writes


def test_wrong_verifier_is_refused(dev: TestClient) -> None:
    verifier = secrets.token_urlsafe(48)
    code = authorize(dev, "citizen", verifier=verifier)
    resp = exchange(dev, code, secrets.token_urlsafe(48))
    assert resp.status_code == 400
    assert resp.json()["error"] == "invalid_grant"


def test_code_reuse_is_refused(dev: TestClient) -> None:
    verifier = secrets.token_urlsafe(48)
    code = authorize(dev, "citizen", verifier=verifier)
    assert exchange(dev, code, verifier).status_code == 200
    again = exchange(dev, code, verifier)
    assert again.status_code == 400
    assert again.json() == {"error": "invalid_grant", "error_description": "authorization code already used"}


def test_redirect_uri_mismatch_is_refused(dev: TestClient) -> None:
    verifier = secrets.token_urlsafe(48)
    code = authorize(dev, "citizen", verifier=verifier)
    resp = exchange(dev, code, verifier, redirect_uri="http://localhost:5555/other")
    assert resp.status_code == 400
    assert resp.json()["error"] == "invalid_grant"


def test_other_client_cannot_use_the_code(dev: TestClient) -> None:
    verifier = secrets.token_urlsafe(48)
    code = authorize(dev, "citizen", verifier=verifier)
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT,
        "client_id": "evil",
        "code_verifier": verifier,
    }
    assert dev.post("/dev-idp/token", data=form).json()["error"] == "invalid_grant"


def test_pkce_is_required(dev: TestClient) -> None:
    base = {"response_type": "code", "client_id": "a", "redirect_uri": REDIRECT, "state": "s"}
    for extra in ({}, {"code_challenge": "x" * 43, "code_challenge_method": "plain"}):
        resp = dev.get("/dev-idp/authorize", params={**base, **extra}, follow_redirects=False)
        assert resp.status_code == 303
        query = parse_qs(urlsplit(resp.headers["location"]).query)
        assert query["error"] == ["invalid_request"]
        assert query["state"] == ["s"]


def test_bad_authorize_requests(dev: TestClient) -> None:
    challenge = {"code_challenge": s256("v" * 50), "code_challenge_method": "S256"}
    # No usable redirect_uri: an error page, never a redirect.
    for params in (
        {"client_id": "a"},
        {"client_id": "a", "redirect_uri": "javascript:alert(1)"},
        {"redirect_uri": REDIRECT},
    ):
        resp = dev.get(
            "/dev-idp/authorize",
            params={"response_type": "code", **params, **challenge},
            follow_redirects=False,
        )
        assert resp.status_code == 400
    resp = dev.get(
        "/dev-idp/authorize",
        params={
            "response_type": "code",
            "client_id": "a",
            "redirect_uri": REDIRECT,
            "aud": "https://other/fhir",
            **challenge,
        },
        follow_redirects=False,
    )
    assert parse_qs(urlsplit(resp.headers["location"]).query)["error"] == ["invalid_request"]
    resp = dev.get(
        "/dev-idp/authorize",
        params={"response_type": "token", "client_id": "a", "redirect_uri": REDIRECT, **challenge},
        follow_redirects=False,
    )
    assert parse_qs(urlsplit(resp.headers["location"]).query)["error"] == ["unsupported_response_type"]


def test_token_endpoint_errors(dev: TestClient) -> None:
    assert (
        dev.post("/dev-idp/token", data={"grant_type": "password"}).json()["error"]
        == "unsupported_grant_type"
    )
    assert (
        dev.post("/dev-idp/token", content=b"{}", headers={"content-type": "application/json"}).status_code
        == 400
    )
    resp = dev.post(
        "/dev-idp/token",
        content=b"grant_type=a&grant_type=b",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert resp.json()["error"] == "invalid_request"


def test_login_page_escapes_what_the_client_sends(dev: TestClient) -> None:
    params = {
        "response_type": "code",
        "client_id": "<script>alert(1)</script>",
        "redirect_uri": REDIRECT,
        "scope": '"><img src=x onerror=alert(1)>',
        "code_challenge": s256("v" * 50),
        "code_challenge_method": "S256",
    }
    page = dev.get("/dev-idp/authorize", params=params).text
    assert "<script>alert" not in page
    assert "<img src=x" not in page


def test_demo_app_pages(dev: TestClient) -> None:
    home = dev.get("/dev-idp")
    assert home.status_code == 200
    assert "Công dân" in home.text and "Hospital system" in home.text
    start = dev.get("/dev-idp/start?user=parent", follow_redirects=False)
    page = dev.get(_path(start.headers["location"]))
    assert 'value="parent"' in page.text
    # Submit the login form as a browser would, then follow to the callback.
    fields = dict(
        (part.split('name="')[1].split('"')[0], part.split('value="')[1].split('"')[0])
        for part in page.text.split("<input")[1:]
        if 'name="' in part
    )
    fields["user"] = "parent"
    back = dev.post("/dev-idp/authorize", data=fields, follow_redirects=False)
    shown = dev.get(_path(back.headers["location"]))
    assert shown.status_code == 200, shown.text
    assert "Authorization: Bearer" in shown.text
    assert "Patient/child/$everything" in shown.text


# --- client credentials with private_key_jwt -----------------------------------------------------


def hospital_key(tmp_path: Path) -> RSAKey:
    return RSAKey.import_key(
        json.loads((tmp_path / "idp" / f"{DEMO_CLIENT_ID}.private.jwk.json").read_text())
    )


def test_client_credentials(dev: TestClient, tmp_path: Path) -> None:
    key = hospital_key(tmp_path)
    resp = dev.post("/dev-idp/token", data=token_form(key, DEMO_CLIENT_ID, f"{ISSUER}/token", "system/*.rs"))
    assert resp.status_code == 200, resp.text
    answer = resp.json()
    assert "id_token" not in answer
    claims = payload(answer["access_token"])
    assert (claims["sub"], claims["healthbook_role"], claims["healthbook_facility"]) == (
        DEMO_CLIENT_ID,
        "facility-system",
        HOSPITAL,
    )
    assert claims["scope"] == "system/*.rs"
    assert dev.get("/fhir/Patient", headers=bearer(answer["access_token"])).status_code == 200


def test_bad_client_assertions(dev: TestClient, tmp_path: Path) -> None:
    key = hospital_key(tmp_path)
    url = f"{ISSUER}/token"
    stranger = RSAKey.generate_key(2048, parameters={"kid": key.kid})
    now = int(time.time())

    def assertion(signer: RSAKey = key, **over: Any) -> str:
        claims = {
            "iss": DEMO_CLIENT_ID,
            "sub": DEMO_CLIENT_ID,
            "aud": url,
            "exp": now + 120,
            "jti": secrets.token_urlsafe(8),
            **over,
        }
        return jwt.encode(
            {"alg": "RS384", "kid": signer.kid},
            {k: v for k, v in claims.items() if v is not None},
            signer,
            algorithms=["RS384"],
        )

    bad = [
        assertion(stranger),  # forged signature
        assertion(aud="https://elsewhere/token"),
        assertion(exp=now - 120),
        assertion(exp=now + 3600),  # more than five minutes ahead
        assertion(jti=None),
        assertion(sub="someone-else"),
        assertion(iss="unknown-client", sub="unknown-client"),
        "not.a.jwt",
    ]
    for value in bad:
        form = {
            "grant_type": "client_credentials",
            "scope": "system/*.rs",
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": value,
        }
        resp = dev.post("/dev-idp/token", data=form)
        assert resp.status_code == 401, (value[:30], resp.text)
        assert resp.json()["error"] == "invalid_client"
    # A replayed assertion is refused the second time.
    once = assertion()
    form = {
        "grant_type": "client_credentials",
        "scope": "system/*.rs",
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": once,
    }
    assert dev.post("/dev-idp/token", data=form).status_code == 200
    assert dev.post("/dev-idp/token", data=form).status_code == 401
    # No assertion, or a scope the client may not have.
    assert (
        dev.post(
            "/dev-idp/token", data={"grant_type": "client_credentials", "client_id": DEMO_CLIENT_ID}
        ).status_code
        == 401
    )
    form = {
        "grant_type": "client_credentials",
        "scope": "patient/*.rs",
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": client_assertion(key, DEMO_CLIENT_ID, url),
    }
    assert dev.post("/dev-idp/token", data=form).json()["error"] == "invalid_scope"


# --- the resource server in front of /fhir -------------------------------------------------------


def test_required_mode(dev_required: TestClient) -> None:
    c = dev_required
    resp = c.get("/fhir/Patient")
    outcome(resp, 401, "login")
    assert resp.headers["www-authenticate"] == 'Bearer realm="healthbook"'
    assert resp.headers["x-request-id"]
    for path in (
        "/fhir/metadata",
        "/fhir/.well-known/smart-configuration",
        "/.well-known/smart-configuration",
        "/",
        "/dev-idp/jwks",
    ):
        assert c.get(path).status_code == 200, path
    token = login(c, "citizen")["access_token"]
    assert c.get("/fhir/Patient/citizen", headers=bearer(token)).status_code == 200
    assert c.post("/fhir/Patient", json={"resourceType": "Patient"}).status_code == 401
    # A refused token does not lock anyone out of discovery: there it just makes the caller anonymous.
    assert c.get("/fhir/metadata", headers=bearer("garbage")).status_code == 200
    assert c.get("/fhir/Patient", headers=bearer("garbage")).status_code == 401


def test_bad_tokens_are_401(dev_required: TestClient) -> None:
    c = dev_required
    good = login(c, "citizen")["access_token"]
    head, body, sig = good.split(".")
    claims = payload(good)
    forged_body = (
        base64.urlsafe_b64encode(json.dumps({**claims, "healthbook_role": "manager"}).encode())
        .rstrip(b"=")
        .decode()
    )
    none_head = base64.urlsafe_b64encode(b'{"alg":"none"}').rstrip(b"=").decode()
    stranger = RSAKey.generate_key(
        2048, parameters={"kid": json.loads(base64.urlsafe_b64decode(head + "=="))["kid"]}
    )

    def resign(**over: Any) -> str:
        return jwt.encode(
            {"alg": "RS256", "kid": stranger.kid}, {**claims, **over}, stranger, algorithms=["RS256"]
        )

    cases = {
        "bad signature": f"{head}.{forged_body}.{sig}",
        "signature algorithm not accepted": f"{none_head}.{body}.",
        "not a signed JWT": "garbage",
    }
    for reason, token in cases.items():
        resp = c.get("/fhir/Patient", headers=bearer(token))
        out = outcome(resp, 401, "login")
        assert reason in out["issue"][0]["diagnostics"]
        assert f'error_description="{reason}"' in resp.headers["www-authenticate"]
    assert c.get("/fhir/Patient", headers=bearer(resign())).status_code == 401  # right kid, wrong key


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_odd_tokens_are_401_never_500(dev_required: TestClient) -> None:
    good = login(dev_required, "citizen")["access_token"]
    head, body, sig = good.split(".")
    bad_kid = _b64(json.dumps({"alg": "RS256", "kid": 5}).encode())
    list_alg = _b64(json.dumps({"alg": ["RS256"]}).encode())
    int_iss = _b64(json.dumps({"iss": 5}).encode())
    huge_exp = _b64(b'{"iss": "http://testserver/dev-idp", "exp": 1e400}')
    odd = [
        "a.b.c",
        f"{head}.{body}.!!!",
        f"{head}.{body}",
        f"{head}..{sig}",
        f"{_b64(b'[]')}.{body}.{sig}",
        f"{bad_kid}.{body}.{sig}",
        f"{list_alg}.{body}.{sig}",
        f"{head}.{_b64(b'[1,2]')}.{sig}",
        f"{head}.{int_iss}.{sig}",
        f"{head}.{huge_exp}.{sig}",
        f"{_b64(bytes(range(256)))}.{body}.{sig}",
        "Bearer",
        "é" * 50,
        "." * 3000,
    ]
    for token in odd:
        header = f"Bearer {token}".encode()  # raw bytes: non-ASCII too
        resp = dev_required.get("/fhir/Patient", headers=[(b"Authorization", header)])
        assert resp.status_code == 401, (token[:40], resp.status_code)
        assert resp.json()["resourceType"] == "OperationOutcome"


def test_expired_and_wrong_audience_from_the_dev_provider(
    settings: Settings, services: Services, tmp_path: Path
) -> None:
    population(services)
    s = dev_settings(settings, tmp_path, auth="required", dev_idp_token_seconds=-120)
    with TestClient(create_app(s, services)) as c:
        expired = login(c, "citizen")["access_token"]
        assert (
            "token expired"
            in outcome(c.get("/fhir/Patient", headers=bearer(expired)), 401)["issue"][0]["diagnostics"]
        )
    other = dev_settings(settings, tmp_path, auth="required", audience="https://another-server/fhir")
    with TestClient(create_app(other, services)) as c2:
        token = login(c2, "citizen")["access_token"]  # same signing key (same dev_idp_dir)
    with TestClient(create_app(dev_settings(settings, tmp_path, auth="required"), services)) as c3:
        resp = c3.get("/fhir/Patient", headers=bearer(token))
        assert "wrong audience" in outcome(resp, 401)["issue"][0]["diagnostics"]


def test_served_jwks_verifies_dev_tokens_as_an_external_issuer(
    settings: Settings, services: Services, tmp_path: Path
) -> None:
    """The provider's published JWKS, configured as an ordinary static issuer, accepts its tokens."""
    population(services)
    local = "http://localhost/dev-idp"
    with TestClient(create_app(dev_settings(settings, tmp_path, dev_idp_issuer=local), services)) as c:
        token = login(c, "citizen")["access_token"]
        published = c.get("/dev-idp/jwks").json()
        meta = c.get("/dev-idp/.well-known/openid-configuration").json()
    assert meta["issuer"] == local
    assert meta["jwks_uri"] == f"{local}/jwks"
    external = Settings(
        database_url=settings.database_url,
        pool_size=5,
        auth="required",
        oidc_issuers=[{"issuer": local, "jwks": published}],
    )
    with TestClient(create_app(external, services)) as c:
        assert c.get("/dev-idp/jwks").status_code == 404  # the provider itself is off here
        assert c.get("/fhir/Patient/citizen", headers=bearer(token)).status_code == 200
        assert c.get("/fhir/Patient/citizen").status_code == 401


def test_smart_configuration(dev: TestClient) -> None:
    for path in ("/fhir/.well-known/smart-configuration", "/.well-known/smart-configuration"):
        conf = dev.get(path).json()
        assert conf["issuer"] == ISSUER
        assert conf["authorization_endpoint"] == f"{ISSUER}/authorize"
        assert conf["token_endpoint"] == f"{ISSUER}/token"
        assert conf["jwks_uri"] == f"{ISSUER}/jwks"
        assert {"authorization_code", "client_credentials"} <= set(conf["grant_types_supported"])
        assert "private_key_jwt" in conf["token_endpoint_auth_methods_supported"]
        assert conf["code_challenge_methods_supported"] == ["S256"]
        assert conf["response_types_supported"] == ["code"]
        assert {"patient/*.rs", "user/*.cruds", "system/*.rs"} <= set(conf["scopes_supported"])
        assert {
            "launch-standalone",
            "client-public",
            "client-confidential-asymmetric",
            "sso-openid-connect",
            "context-standalone-patient",
            "permission-v2",
            "permission-patient",
            "permission-user",
        } <= set(conf["capabilities"])


def test_capability_statement_security(dev: TestClient) -> None:
    security = dev.get("/fhir/metadata").json()["rest"][0]["security"]
    assert security["service"][0]["coding"][0] == {
        "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
        "code": "SMART-on-FHIR",
    }
    ext = security["extension"][0]
    assert ext["url"] == "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
    assert {e["url"]: e["valueUri"] for e in ext["extension"]} == {
        "authorize": f"{ISSUER}/authorize",
        "token": f"{ISSUER}/token",
    }


@pytest.mark.slow
def test_demo_users_come_from_the_synthetic_population(tmp_path: Path) -> None:
    """With `healthbook demo`'s generator (seed 1), every demo user and the hospital are found in the data."""
    from healthbook.app import build_services
    from healthbook.db.migrate import upgrade
    from healthbook.synth.demo import load_demo

    s = Settings(
        database_url=f"sqlite:///{tmp_path / 'demo.db'}",
        sqlite_synchronous="NORMAL",
        dev_idp=True,
        dev_idp_issuer=ISSUER,
        dev_idp_dir=str(tmp_path / "idp"),
    )
    services = build_services(s)
    try:
        upgrade(services.fhir.db)
        load_demo(services.fhir, 60, 1)
        with TestClient(create_app(s, services)) as c:
            provider = c.app.state.auth.dev_idp  # type: ignore[attr-defined]
            directory = provider.demo()
            users = {u.key: u for u in directory.users}
            assert set(users) == {"citizen", "parent", "health-worker", "manager"}
            assert users["citizen"].cccd and users["parent"].cccd and users["parent"].patient
            assert users["health-worker"].facility and users["health-worker"].fhir_user.startswith(
                "Practitioner/"
            )
            assert users["manager"].province == users["health-worker"].facility[:2]
            assert directory.hospital is not None
            for key in users:
                token = login(c, key, "openid fhirUser")["access_token"]
                assert c.get("/fhir/metadata", headers=bearer(token)).status_code == 200
            key = hospital_key(tmp_path)
            resp = c.post("/dev-idp/token", data=token_form(key, DEMO_CLIENT_ID, f"{ISSUER}/token"))
            assert payload(resp.json()["access_token"])["healthbook_facility"] == directory.hospital.code
    finally:
        services.fhir.db.dispose()
