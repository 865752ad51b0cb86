"""HTTP side of the development identity provider, mounted at /dev-idp only when settings.dev_idp is true.

Pages are server-rendered (Vietnamese first, English second) with autoescaped Jinja templates. The built-in
demo app (/dev-idp/ → start → callback) is an ordinary public client of the provider: it runs the
authorization code flow with PKCE and shows the token it got, so a person can try each demo user.
"""

from __future__ import annotations

import base64
import json
import secrets
from typing import Any
from urllib.parse import parse_qsl

from jinja2 import Environment
from markupsafe import Markup
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from healthbook.auth.devidp.service import (
    DEMO_APP_ID,
    BadAuthorizeRequest,
    DevIdentityProvider,
    OAuthError,
    redirect_with,
    s256,
)
from healthbook.fhir.http import base_url
from healthbook.routing import RouteTable
from healthbook.web.session import PATH as WEB_PATH
from healthbook.web.session import clear_session, set_session

router = RouteTable()
MAX_FORM_BYTES = 64 * 1024
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_env = Environment(autoescape=True)

_LAYOUT = _env.from_string("""<!doctype html>
<html lang="vi"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }}</title>
<style>
body{font-family:system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem;color:#1b1b1b}
.warn{background:#fff4ce;border:1px solid #e0c060;padding:.6rem .8rem;border-radius:6px}
.user{border:1px solid #ccc;border-radius:8px;padding:.7rem 1rem;margin:.7rem 0}
.user button{font-size:1rem;padding:.4rem 1rem;cursor:pointer}
small,.en{color:#555} code,pre{background:#f4f4f4;padding:.1rem .3rem;border-radius:4px;overflow-x:auto}
pre{padding:.6rem;white-space:pre-wrap;word-break:break-all}
</style></head><body>
<p class="warn">Nhà cung cấp định danh dành cho phát triển và demo — không dùng cho dữ liệu thật.<br>
<span class="en">Development identity provider for demos only — never for real data.</span></p>
{{ body }}
</body></html>""")

_LOGIN = _env.from_string("""
<h1>Đăng nhập healthbook <small>/ Log in</small></h1>
<p>Ứng dụng <code>{{ client_id }}</code> yêu cầu quyền: <code>{{ scope }}</code><br>
<span class="en">The app <code>{{ client_id }}</code> asks for: <code>{{ scope }}</code></span></p>
<p>Chọn người dùng mẫu (không cần mật khẩu) <span class="en">/ pick a demo user (no password)</span>:</p>
{% for u in users %}
<form method="post" action="{{ action }}" class="user">
{% for k, v in fields.items() %}<input type="hidden" name="{{ k }}" value="{{ v }}">{% endfor %}
<input type="hidden" name="user" value="{{ u.key }}">
<strong>{{ u.label }}</strong> — {{ u.name }}<br><small>{{ u.what }}</small><br>
<button type="submit">Đăng nhập / Log in</button>
</form>
{% else %}
<p>Chưa có dân số mẫu trong cơ sở dữ liệu: chạy <code>healthbook demo</code>.
<span class="en">No demo population in the database yet: run <code>healthbook demo</code>.</span></p>
{% endfor %}
""")

_HOME = _env.from_string("""
<h1>healthbook — người dùng mẫu <small>/ demo users</small></h1>
{% for u in users %}
<div class="user"><strong>{{ u.label }}</strong> — {{ u.name }}<br><small>{{ u.what }}</small><br>
<a href="{{ start }}?user={{ u.key }}">Đăng nhập bằng ứng dụng demo / log in with the demo app</a></div>
{% else %}
<p>Chưa có dân số mẫu / no demo population yet: <code>healthbook demo</code>.</p>
{% endfor %}
{% if hospital %}
<div class="user"><strong>Hệ thống bệnh viện / Hospital system</strong> — {{ hospital.name }} ({{ hospital.code }})<br>
<small>client_credentials + private_key_jwt; khóa riêng / private key: <code>{{ key_file }}</code></small>
<pre>python -m healthbook.auth.devidp.client {{ key_file }} {{ token_endpoint }}</pre></div>
{% endif %}
<p><small>OpenID: <a href="{{ issuer }}/.well-known/openid-configuration">{{ issuer }}/.well-known/openid-configuration</a>
· SMART: <a href="{{ fhir }}/.well-known/smart-configuration">{{ fhir }}/.well-known/smart-configuration</a></small></p>
""")

_TOKEN = _env.from_string("""
<h1>Đã đăng nhập <small>/ Logged in</small></h1>
<p>Access token (Bearer, {{ expires }} s):</p><pre>{{ token }}</pre>
<p>Nội dung / claims:</p><pre>{{ claims }}</pre>
<p>Thử / try:</p>
{% for c in commands %}<pre>{{ c }}</pre>{% endfor %}
<p><a href="{{ book }}">Mở sổ sức khỏe / Open the health books</a> (trình duyệt này đã đăng nhập /
this browser is logged in)</p>
<p><a href="{{ home }}">← người dùng khác / another user</a></p>
""")

_LOGGED_OUT = _env.from_string(
    '<h1>Đã đăng xuất <small>/ Logged out</small></h1><p><a href="{{ home }}">Đăng nhập lại / log in again</a></p>'
)
_ERROR = _env.from_string("<h1>Yêu cầu không hợp lệ <small>/ Bad request</small></h1><p>{{ message }}</p>")


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    html = _LAYOUT.render(title=title, body=Markup(body))  # body: rendered by an autoescaped template
    return HTMLResponse(html, status, headers={**_NO_STORE, "X-Frame-Options": "DENY"})


def _provider(request: Request) -> DevIdentityProvider:
    provider: DevIdentityProvider = request.app.state.auth.dev_idp
    return provider


async def _form(request: Request) -> dict[str, str]:
    """An application/x-www-form-urlencoded body; a repeated parameter is an error (RFC 6749 §3.1)."""
    if (
        request.headers.get("content-type", "").split(";")[0].strip().lower()
        != "application/x-www-form-urlencoded"
    ):
        raise OAuthError("invalid_request", "send application/x-www-form-urlencoded")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise OAuthError("invalid_request", "request too large")
    out: dict[str, str] = {}
    for name, value in parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True):
        if name in out:
            raise OAuthError("invalid_request", f"parameter {name[:40]} repeated")
        out[name] = value
    return out


def _query(request: Request) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in request.query_params.multi_items():
        if name in out:
            raise OAuthError("invalid_request", f"parameter {name[:40]} repeated")
        out[name] = value
    return out


def _audiences(request: Request, provider: DevIdentityProvider) -> set[str]:
    fhir = base_url(request, provider.settings.public_base_url)
    return {fhir, provider.settings.audience}


@router.get("/.well-known/openid-configuration")
async def discovery(request: Request) -> Response:
    """OpenID Provider metadata."""
    return JSONResponse(_provider(request).metadata())


@router.get("/jwks")
async def jwks(request: Request) -> Response:
    """The public signing keys."""
    return JSONResponse(_provider(request).jwks(), headers={"Cache-Control": "max-age=300"})


@router.get("/authorize")
async def authorize(request: Request) -> Response:
    """The login page: pick a demo user."""
    provider = _provider(request)
    try:
        params = _query(request)
        req = provider.check_authorize(params, _audiences(request, provider))
    except BadAuthorizeRequest as exc:
        return _page("Lỗi / Error", _ERROR.render(message=str(exc)), 400)
    except OAuthError as exc:
        return _redirect_error(request, exc)
    directory = await run_in_threadpool(provider.demo)
    body = _LOGIN.render(
        users=directory.users,
        fields=req.hidden_fields(),
        action=f"{provider.issuer}/authorize",
        client_id=req.client_id,
        scope=req.scope,
    )
    return _page("Đăng nhập / Log in", body)


def _redirect_error(request: Request, exc: OAuthError, params: dict[str, str] | None = None) -> Response:
    """Send an authorization error back to the client's redirect_uri (RFC 6749 §4.1.2.1)."""
    params = params if params is not None else dict(request.query_params)
    target = redirect_with(
        params.get("redirect_uri", ""),
        {"error": exc.error, "error_description": exc.description, "state": params.get("state")},
    )
    return RedirectResponse(target, status_code=303)


@router.post("/authorize")
async def authorize_submit(request: Request) -> Response:
    """The chosen user: issue a code and send the browser back to the client."""
    provider = _provider(request)
    try:
        form = await _form(request)
    except OAuthError as exc:
        return _page("Lỗi / Error", _ERROR.render(message=exc.description), 400)
    try:
        req = provider.check_authorize(form, _audiences(request, provider))
    except BadAuthorizeRequest as exc:
        return _page("Lỗi / Error", _ERROR.render(message=str(exc)), 400)
    except OAuthError as exc:
        return _redirect_error(request, exc, form)
    user = await run_in_threadpool(provider.user, form.get("user", ""))
    if user is None:
        return _redirect_error(request, OAuthError("access_denied", "unknown demo user"), form)
    return RedirectResponse(provider.issue_code(req, user), status_code=303)


@router.post("/token")
async def token(request: Request) -> Response:
    """The token endpoint: authorization_code (PKCE) and client_credentials (private_key_jwt)."""
    provider = _provider(request)
    try:
        form = await _form(request)
        answer = await run_in_threadpool(provider.token, form)
    except OAuthError as exc:
        return JSONResponse(exc.as_json(), exc.status, headers=_NO_STORE)
    return JSONResponse(answer, headers=_NO_STORE)


# --- the built-in demo app: a public client of the provider --------------------------------------


@router.get("")
async def home(request: Request) -> Response:
    """The demo users and how to log in as each."""
    provider = _provider(request)
    directory = await run_in_threadpool(provider.demo)
    body = _HOME.render(
        users=directory.users,
        start=f"{provider.issuer}/start",
        hospital=directory.hospital,
        key_file=str(provider.demo_client_key_file),
        token_endpoint=provider.token_endpoint,
        issuer=provider.issuer,
        fhir=base_url(request, provider.settings.public_base_url),
    )
    return _page("healthbook — demo", body)


@router.get("/start")
async def start(request: Request) -> Response:
    """Start an authorization code flow with PKCE as the demo app."""
    provider = _provider(request)
    verifier = secrets.token_urlsafe(48)
    state = secrets.token_urlsafe(16)
    pending = provider.demo_app_logins
    if len(pending) > 1000:
        pending.clear()
    pending[state] = verifier
    user = request.query_params.get("user", "")
    demo_user = await run_in_threadpool(provider.user, user)
    scope = "openid fhirUser"
    if demo_user is not None:
        scope = demo_user.scope + (" launch/patient" if demo_user.patient else "")
    url = redirect_with(
        provider.authorization_endpoint,
        {
            "response_type": "code",
            "client_id": DEMO_APP_ID,
            "redirect_uri": f"{provider.issuer}/callback",
            "scope": scope,
            "state": state,
            "aud": base_url(request, provider.settings.public_base_url),
            "code_challenge": s256(verifier),
            "code_challenge_method": "S256",
            "login_hint": user or None,
        },
    )
    return RedirectResponse(url, status_code=303)


@router.get("/callback")
async def callback(request: Request) -> Response:
    """Exchange the code for a token (as the demo app would) and show it with example requests."""
    provider = _provider(request)
    params = request.query_params
    verifier = provider.demo_app_logins.pop(params.get("state", ""), None)
    if "error" in params or verifier is None:
        message = params.get("error_description") or params.get("error") or "unknown state"
        return _page("Lỗi / Error", _ERROR.render(message=message), 400)
    form = {
        "grant_type": "authorization_code",
        "code": params.get("code", ""),
        "redirect_uri": f"{provider.issuer}/callback",
        "client_id": DEMO_APP_ID,
        "code_verifier": verifier,
    }
    try:
        answer = await run_in_threadpool(provider.token, form)
    except OAuthError as exc:
        return _page("Lỗi / Error", _ERROR.render(message=exc.description), 400)
    access = str(answer["access_token"])
    claims = _claims_of(access)
    fhir = base_url(request, provider.settings.public_base_url)
    auth = f"-H 'Authorization: Bearer {access}'"
    commands = [f"curl -s {auth} '{fhir}/Patient?_count=5'"]
    if answer.get("patient"):
        commands.insert(0, f"curl -s {auth} '{fhir}/Patient/{answer['patient']}/$everything'")
    body = _TOKEN.render(
        token=access,
        expires=answer.get("expires_in"),
        claims=json.dumps(claims, ensure_ascii=False, indent=2),
        commands=commands,
        home=provider.issuer,
        book=WEB_PATH + "/",
    )
    page = _page("Đã đăng nhập / Logged in", body)
    max_age = int(answer.get("expires_in") or 3600)
    set_session(page, access, max_age, secure=request.url.scheme == "https")
    return page


@router.get("/logout")
async def logout(request: Request) -> Response:
    """Log this browser out of the health-book pages."""
    provider = _provider(request)
    page = _page("Đã đăng xuất / Logged out", _LOGGED_OUT.render(home=provider.issuer))
    clear_session(page)
    return page


def _claims_of(token: str) -> dict[str, Any]:
    """The payload of a token the provider itself just issued (display only)."""
    part = token.split(".")[1]
    data: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return data
