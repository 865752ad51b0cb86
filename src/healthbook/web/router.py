"""The web UI sub-app: server-rendered pages (Jinja2, autoescaped) that call services only."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from healthbook.auth.service import AuthService
from healthbook.auth.subject import Caller
from healthbook.book.labels import LANGS, Lang, lang_of, word
from healthbook.errors import Forbidden
from healthbook.fhir.router import Services
from healthbook.web.service import access_log, book_by_personal_id, books_of
from healthbook.web.view import book_view

PREFIX = "/so-suc-khoe"
# A page of health data: no scripts, no outside assets, no caching, no framing, no referrer.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; "
        "form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

templates = Environment(
    loader=PackageLoader("healthbook.web", "templates"),
    autoescape=True,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def _words(lang: Lang) -> Callable[[str], str]:
    return lambda key: word(key, lang)


def render(name: str, status: int, lang: Lang, **context: Any) -> HTMLResponse:
    """A page from a template, with the security headers."""
    html = templates.get_template(name).render(lang=lang, w=_words(lang), words=word, langs=LANGS, **context)
    headers = {**SECURITY_HEADERS, "Content-Language": lang}
    return HTMLResponse(html, status_code=status, headers=headers)


def _message(status: int, what: str, lang: Lang) -> HTMLResponse:
    """A bilingual message page (Vietnamese first); `what` names the p.<what>.title/text words."""
    return render("message.html", status, lang, what=what)


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def _fhir_base(request: Request, services: Services) -> str:
    configured = services.settings.public_base_url
    if configured:
        return configured.rstrip("/")
    return str(request.url.replace(path="/fhir", query="", fragment=""))


async def health_book(request: Request) -> Response:
    """/so-suc-khoe/{personal-id}: the citizen's health book, Vietnamese or (?lang=en) English."""
    lang = lang_of(request.query_params.get("lang"))
    services = _services(request)
    if not services.settings.book_pages:
        return _message(404, "off", lang)
    caller: Caller = request.state.caller
    if _needs_login(services, caller):
        return _login(request, lang)
    base = _fhir_base(request, services)
    personal_id = str(request.path_params["personal_id"])
    try:
        found = await run_in_threadpool(book_by_personal_id, services, caller, personal_id, base=base)
    except Forbidden:
        return _message(403, "403", lang)
    if found is None:
        return _message(404, "404", lang)
    view = book_view(
        found.document, lang, fhir_url=f"{base}/Patient/{found.patient_id}/$summary", several=found.several
    )
    log = await run_in_threadpool(access_log, services, caller, found.patient_id, lang)
    return render("book.html", 200, lang, view=view, log=log)


def _needs_login(services: Services, caller: Caller) -> bool:
    return services.settings.auth == "required" and not caller.authenticated


def _login(request: Request, lang: Lang) -> HTMLResponse:
    """401 with the way to log in (the development provider's page when it is enabled)."""
    auth: AuthService | None = request.app.state.auth
    login = auth.dev_idp.issuer if auth is not None and auth.dev_idp is not None else None
    return render("login.html", 401, lang, login=login)


async def my_books(request: Request) -> Response:
    """/so-suc-khoe/: the books the logged-in person may view (own, children's, named by consent)."""
    lang = lang_of(request.query_params.get("lang"))
    services = _services(request)
    if not services.settings.book_pages:
        return _message(404, "off", lang)
    caller: Caller = request.state.caller
    if _needs_login(services, caller):
        return _login(request, lang)
    try:
        books = await run_in_threadpool(books_of, services, caller, PREFIX)
    except Forbidden:
        return _message(403, "403", lang)
    auth: AuthService | None = request.app.state.auth
    logout = f"{auth.dev_idp.issuer}/logout" if auth is not None and auth.dev_idp is not None else None
    return render("mine.html", 200, lang, books=books, logout=logout)


async def _not_found(request: Request, exc: Exception) -> Response:
    lang = lang_of(request.query_params.get("lang"))
    status = exc.status_code if isinstance(exc, HTTPException) else 404
    return _message(status if status in (404, 405) else 404, "404", lang)


def create_web_app(services: Services, auth: AuthService | None = None) -> Starlette:
    """The web UI, to be mounted at PREFIX."""
    app = Starlette(
        routes=[
            Route("/", my_books, methods=["GET"]),
            Route("/{personal_id}", health_book, methods=["GET"]),
        ],
        exception_handlers={404: _not_found, 405: _not_found},
    )
    app.state.services = services
    app.state.auth = auth
    return app
