"""create_app(): the ASGI application with its routers, middleware and error rendering."""

from __future__ import annotations

import logging
import uuid

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from healthbook import __version__
from healthbook.auth.subject import Caller, OpenPolicy
from healthbook.config import Settings, get_settings
from healthbook.db.dialect import is_statement_timeout
from healthbook.db.engine import Database
from healthbook.db.migrate import ensure_current
from healthbook.errors import HealthbookError
from healthbook.fhir.bulk.router import router as bulk_router
from healthbook.fhir.bulk.service import BulkService
from healthbook.fhir.http import outcome_response
from healthbook.fhir.outcomes import Issue
from healthbook.fhir.router import Services
from healthbook.fhir.router import router as fhir_router
from healthbook.fhir.search.service import SearchService
from healthbook.fhir.service import FhirService
from healthbook.identity.router import router as identity_router
from healthbook.identity.service import IdentityService
from healthbook.imports.xml130.router import router as xml130_router
from healthbook.reports.router import router as reports_router
from healthbook.web.router import PREFIX as WEB_PREFIX
from healthbook.web.router import create_web_app

log = logging.getLogger("healthbook")


def build_services(settings: Settings, db: Database | None = None) -> Services:
    """Wire the database, the services and their hooks (shared by the API and the CLI)."""
    database = db or Database(settings)
    policy = OpenPolicy()
    fhir = FhirService(database, policy)
    search = SearchService(database, policy, settings)
    fhir.write_hooks.append(search.index_hook)
    fhir.matcher = search.match
    identity = IdentityService(fhir, policy)
    identity.install()
    return Services(
        settings=settings, fhir=fhir, search=search, bulk=BulkService(fhir, settings), identity=identity
    )


class CallerMiddleware:
    """Attaches the caller and a request id (pure ASGI: no task group per request)."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        raw_id = headers.get(b"x-request-id", b"")
        request_id = raw_id.decode("latin-1")[:64] if raw_id else uuid.uuid4().hex
        state = scope.setdefault("state", {})
        # Access control is not configured yet: every request is an identified anonymous caller.
        state["caller"] = Caller(subject="anonymous")
        state["request_id"] = request_id

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode("latin-1"))]
            await send(message)

        await self.app(scope, receive, send_with_id)


def create_app(settings: Settings | None = None, services: Services | None = None) -> FastAPI:
    """The healthbook application: FHIR API under /fhir, health-book pages under /so-suc-khoe."""
    settings = settings or get_settings()
    services = services or build_services(settings)
    ensure_current(services.fhir.db)
    app = FastAPI(title="healthbook", version=__version__, docs_url="/docs", redoc_url=None)
    app.state.services = services

    app.add_middleware(CallerMiddleware)

    @app.exception_handler(HealthbookError)
    async def healthbook_error(request: Request, exc: HealthbookError) -> Response:
        return outcome_response(exc.issues, exc.status_code, exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        code = {404: "not-found", 405: "not-supported"}.get(exc.status_code, "processing")
        issue = Issue("error", code, f"{exc.detail} ({request.method} {request.url.path})")
        return outcome_response([issue], exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def request_error(request: Request, exc: RequestValidationError) -> Response:
        return outcome_response([Issue("error", "invalid", "Malformed request")], 400)

    @app.exception_handler(DBAPIError)
    async def database_error(request: Request, exc: DBAPIError) -> Response:
        if not is_statement_timeout(exc):
            raise exc  # to the handler of unexpected errors below
        # A statement past statement_timeout outside search (a write waiting on a lock, say).
        issue = Issue("error", "timeout", "The database did not answer in time; nothing was stored")
        return outcome_response([issue], 503)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        # Never log bodies or identifiers: the type and request id are enough to find the fault.
        log.error(
            "unexpected %s in %s %s", type(exc).__name__, request.method, request.url.path, exc_info=exc
        )
        issue = Issue("fatal", "exception", "Internal server error; nothing was stored by this request")
        return outcome_response([issue], 500)

    # Bulk and import routes first: they are more specific than the generic [type]/[id] ones.
    app.router.routes.extend(bulk_router.routes("/fhir"))
    app.router.routes.extend(xml130_router.routes("/fhir"))
    app.router.routes.extend(identity_router.routes("/fhir"))
    app.router.routes.extend(reports_router.routes("/fhir"))
    app.router.routes.extend(fhir_router.routes("/fhir"))
    # The citizen's health-book page (404 unless settings.book_pages is on).
    app.mount(WEB_PREFIX, create_web_app(services))

    @app.get("/")
    async def root() -> JSONResponse:
        return JSONResponse(
            {"name": "healthbook", "version": __version__, "fhir": "/fhir", "metadata": "/fhir/metadata"}
        )

    return app
