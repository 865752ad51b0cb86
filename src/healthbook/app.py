"""create_app(): the ASGI application with its routers, middleware and error rendering."""

from __future__ import annotations

import logging
import uuid
from dataclasses import replace

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from healthbook import __version__
from healthbook.access.policy import RecordPolicy
from healthbook.access.router import router as access_router
from healthbook.access.service import AccessService
from healthbook.audit.router import router as audit_router
from healthbook.audit.service import AuditTrail
from healthbook.auth.devidp.router import router as dev_idp_router
from healthbook.auth.devidp.service import DevIdentityProvider
from healthbook.auth.devidp.users import load_directory
from healthbook.auth.router import router as auth_router
from healthbook.auth.service import AuthService
from healthbook.auth.subject import ANONYMOUS, Caller
from healthbook.auth.tokens import Authenticator, KeysUnavailable, MissingToken, TokenRejected
from healthbook.config import Settings, get_settings
from healthbook.db.dialect import is_statement_timeout
from healthbook.db.engine import Database
from healthbook.db.migrate import ensure_current
from healthbook.errors import HealthbookError, ServiceUnavailable, Unauthorized
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
from healthbook.web.session import session_token

log = logging.getLogger("healthbook")


def build_services(settings: Settings, db: Database | None = None) -> Services:
    """Wire the database, the services and their hooks (shared by the API and the CLI)."""
    database = db or Database(settings)
    policy = RecordPolicy(auth_required=settings.auth == "required")
    fhir = FhirService(database, policy)
    search = SearchService(database, policy, settings)
    fhir.write_hooks.append(search.index_hook)
    fhir.matcher = search.match
    access = AccessService(fhir, policy, break_glass_hours=settings.break_glass_hours)
    access.install()
    identity = IdentityService(fhir, policy)
    identity.install()
    trail = AuditTrail(
        database,
        access,
        server=settings.public_base_url or "healthbook",
        durable_reads=settings.audit_durable_reads,
    )
    trail.install(fhir)
    search.audit = trail
    return Services(
        settings=settings,
        fhir=fhir,
        search=search,
        bulk=BulkService(fhir, settings),
        identity=identity,
        access=access,
        audit=trail,
    )


def _public(path: str) -> bool:
    """Paths answered without a token even when auth is required: discovery, and everything outside /fhir."""
    if path != "/fhir" and not path.startswith("/fhir/"):
        return True
    return path == "/fhir/metadata" or path.startswith("/fhir/.well-known/")


class CallerMiddleware:
    """Attaches the caller (from the bearer token, or anonymous) and a request id (pure ASGI)."""

    def __init__(self, app: ASGIApp, authenticator: Authenticator | None = None):
        self.app = app
        self.authenticator = authenticator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        raw_id = headers.get(b"x-request-id", b"")
        request_id = raw_id.decode("latin-1")[:64] if raw_id else uuid.uuid4().hex
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        try:
            state["caller"] = replace(await self._caller(scope, headers), request_id=request_id)
        except (TokenRejected, KeysUnavailable) as exc:
            await self._refuse(exc, request_id)(scope, receive, send)
            return
        except Exception as exc:  # a token nobody foresaw must still be a 401, never a 500
            log.error("token check failed with %s (request %s)", type(exc).__name__, request_id)
            await self._refuse(TokenRejected("invalid token"), request_id)(scope, receive, send)
            return

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode("latin-1"))]
            await send(message)

        await self.app(scope, receive, send_with_id)

    async def _caller(self, scope: Scope, headers: dict[bytes, bytes]) -> Caller:
        raw = headers.get(b"authorization")
        authorization = raw.decode("latin-1") if raw is not None else None
        path = scope.get("path", "")
        if authorization is None and (path == WEB_PREFIX or path.startswith(WEB_PREFIX + "/")):
            # The health-book pages (GET only) also take the token from the login cookie.
            token = session_token(headers.get(b"cookie", b"").decode("latin-1"))
            authorization = f"Bearer {token}" if token else None
        if self.authenticator is None:
            return Caller(subject=ANONYMOUS)
        if _public(path):
            if authorization is None:
                return Caller(subject=ANONYMOUS)
            try:
                return await self.authenticator.caller(authorization)
            except (TokenRejected, KeysUnavailable):
                # Discovery and pages outside /fhir answer anyway; a refused token only makes the
                # caller anonymous there, so nothing is granted by it.
                return Caller(subject=ANONYMOUS)
        return await self.authenticator.caller(authorization)

    @staticmethod
    def _refuse(exc: Exception, request_id: str) -> Response:
        """401 with a Bearer challenge, or 503 when the issuer's keys cannot be had; never the token."""
        if isinstance(exc, KeysUnavailable):
            log.warning("token keys unavailable (request %s)", request_id)
            error: HealthbookError = ServiceUnavailable(
                "The identity provider's keys cannot be fetched; try again"
            )
            error.headers["Retry-After"] = "30"
        else:
            log.info("token refused: %s (request %s)", exc, request_id)
            error = Unauthorized(str(exc), error=None if isinstance(exc, MissingToken) else "invalid_token")
        return outcome_response(
            error.issues, error.status_code, {**error.headers, "x-request-id": request_id}
        )


def build_auth(settings: Settings, services: Services) -> AuthService:
    """The authenticator of the configured issuers, and the development provider when enabled."""
    dev_idp = None
    if settings.dev_idp:
        log.warning("the development identity provider is enabled: never use it with real data")
        dev_idp = DevIdentityProvider(settings, lambda: load_directory(services.fhir, services.search))
    return AuthService.build(settings, dev_idp)


def create_app(
    settings: Settings | None = None, services: Services | None = None, auth: AuthService | None = None
) -> FastAPI:
    """The healthbook application: FHIR API under /fhir, health-book pages under /so-suc-khoe."""
    settings = settings or get_settings()
    services = services or build_services(settings)
    ensure_current(services.fhir.db)
    auth = auth or build_auth(settings, services)
    app = FastAPI(title="healthbook", version=__version__, docs_url="/docs", redoc_url=None)
    app.state.services = services
    app.state.auth = auth

    app.add_middleware(CallerMiddleware, authenticator=auth.authenticator)

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

    # SMART discovery, bulk and import routes first: more specific than the generic [type]/[id] ones.
    app.router.routes.extend(auth_router.routes("/fhir"))
    app.router.routes.extend(auth_router.routes(""))
    if auth.dev_idp is not None:
        app.router.routes.extend(dev_idp_router.routes("/dev-idp"))
    app.router.routes.extend(bulk_router.routes("/fhir"))
    app.router.routes.extend(xml130_router.routes("/fhir"))
    app.router.routes.extend(identity_router.routes("/fhir"))
    app.router.routes.extend(access_router.routes("/fhir"))
    app.router.routes.extend(audit_router.routes("/fhir"))
    app.router.routes.extend(reports_router.routes("/fhir"))
    app.router.routes.extend(fhir_router.routes("/fhir"))
    # The citizen's health-book page (404 unless settings.book_pages is on).
    app.mount(WEB_PREFIX, create_web_app(services, auth))

    @app.get("/")
    async def root() -> JSONResponse:
        return JSONResponse(
            {"name": "healthbook", "version": __version__, "fhir": "/fhir", "metadata": "/fhir/metadata"}
        )

    return app
