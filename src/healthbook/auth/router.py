"""SMART App Launch discovery: `.well-known/smart-configuration` under /fhir and at the root."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from healthbook.auth.service import AuthService
from healthbook.errors import NotFound
from healthbook.routing import RouteTable

router = RouteTable()


def auth_service(request: Request) -> AuthService | None:
    """The app's AuthService (None in an app built without one)."""
    service: AuthService | None = getattr(request.app.state, "auth", None)
    return service


@router.get("/.well-known/smart-configuration")
async def smart_configuration(request: Request) -> Response:
    """The SMART configuration of the authorization server that issues tokens for this server."""
    service = auth_service(request)
    config = await service.smart_configuration() if service is not None else None
    if config is None:
        raise NotFound(
            "No authorization server is configured (HEALTHBOOK_OIDC_ISSUERS or HEALTHBOOK_DEV_IDP)"
        )
    return JSONResponse(config, headers={"Cache-Control": "max-age=300"})
