"""create_app(): the ASGI application with its routers, middleware and error rendering."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from healthbook import __version__
from healthbook.auth.subject import Caller, OpenPolicy
from healthbook.config import Settings, get_settings
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

log = logging.getLogger("healthbook")


def build_services(settings: Settings, db: Database | None = None) -> Services:
    """Wire the database, the services and their hooks (shared by the API and the CLI)."""
    database = db or Database(settings)
    policy = OpenPolicy()
    fhir = FhirService(database, policy)
    search = SearchService(database, policy, settings)
    fhir.write_hooks.append(search.index_hook)
    fhir.matcher = search.match
    return Services(settings=settings, fhir=fhir, search=search, bulk=BulkService(fhir, settings))


def _is_fhir(request: Request) -> bool:
    return request.url.path.startswith("/fhir")


def create_app(settings: Settings | None = None, services: Services | None = None) -> FastAPI:
    """The healthbook application: FHIR API under /fhir."""
    settings = settings or get_settings()
    services = services or build_services(settings)
    ensure_current(services.fhir.db)
    app = FastAPI(title="healthbook", version=__version__, docs_url="/docs", redoc_url=None)
    app.state.services = services

    @app.middleware("http")
    async def attach_caller(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        # Access control is not configured yet: every request is an identified anonymous caller.
        request.state.caller = Caller(subject="anonymous")
        request.state.request_id = request.headers.get("x-request-id") or uuid.uuid4().hex
        response = await call_next(request)
        response.headers["X-Request-Id"] = request.state.request_id
        return response

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

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        # Never log bodies or identifiers: the type and request id are enough to find the fault.
        log.error("unexpected %s in %s %s", type(exc).__name__, request.method, request.url.path, exc_info=exc)
        issue = Issue("fatal", "exception", "Internal server error; nothing was stored by this request")
        return outcome_response([issue], 500)

    app.include_router(bulk_router, prefix="/fhir")  # before the generic [type]/[id] routes
    app.include_router(fhir_router, prefix="/fhir")

    @app.get("/")
    async def root() -> JSONResponse:
        return JSONResponse({"name": "healthbook", "version": __version__, "fhir": "/fhir", "metadata": "/fhir/metadata"})

    return app
