"""One error hierarchy for every expected failure; the HTTP layer renders it as an OperationOutcome."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from healthbook.fhir.outcomes import Issue


class HealthbookError(Exception):
    """An expected failure that carries its HTTP status and the issues to report."""

    status_code = 400
    code = "invalid"

    def __init__(self, message: str, *, issues: Sequence[Issue] | None = None, expression: str | None = None):
        super().__init__(message)
        self.message = message
        self.issues: list[Issue] = (
            list(issues) if issues else [Issue("error", self.code, message, expression)]
        )
        self.headers: dict[str, str] = {}
        # Accesses refused on the way (fhir.audit.Access), recorded by the audit trail after the rollback.
        self.refused: list[Any] = []


class BadRequest(HealthbookError):
    """The request is malformed (syntax, parameters, headers)."""


class Unprocessable(HealthbookError):
    """The request is well-formed but the content breaks the FHIR rules."""

    status_code = 422
    code = "processing"


class NotFound(HealthbookError):
    """The resource, version or route does not exist."""

    status_code = 404
    code = "not-found"


class Gone(HealthbookError):
    """The resource existed and was deleted."""

    status_code = 410
    code = "deleted"


class Conflict(HealthbookError):
    """The write collides with the current state of the resource."""

    status_code = 409
    code = "conflict"


class PreconditionFailed(HealthbookError):
    """A version or conditional precondition of the request does not hold."""

    status_code = 412
    code = "conflict"


class NotAcceptable(HealthbookError):
    """The client asked for a representation the server does not produce."""

    status_code = 406
    code = "not-supported"


class UnsupportedMediaType(HealthbookError):
    """The request body is in a format the server does not accept."""

    status_code = 415
    code = "not-supported"


class TooCostly(HealthbookError):
    """The server stopped the request to protect its resources (a search past the statement timeout).

    Issue type too-costly is a processing error ("no point resubmitting the same content unchanged"), and
    http.html answers a search that "could not be processed" with 400.
    """

    code = "too-costly"


class PayloadTooLarge(HealthbookError):
    """The request body is over the configured size limit."""

    status_code = 413
    code = "too-costly"


class MethodNotAllowed(HealthbookError):
    """The interaction is not defined for this URL."""

    status_code = 405
    code = "not-supported"


class NotSupported(HealthbookError):
    """The interaction is valid FHIR but not implemented by this server."""

    status_code = 501
    code = "not-supported"


class Forbidden(HealthbookError):
    """The caller is not allowed to do this."""

    status_code = 403
    code = "forbidden"


class Unauthorized(HealthbookError):
    """The request carries no usable access token (RFC 6750 §3: answered with a WWW-Authenticate challenge)."""

    status_code = 401
    code = "login"

    def __init__(self, message: str, *, error: str | None = "invalid_token", realm: str = "healthbook"):
        super().__init__(message)
        challenge = f'Bearer realm="{realm}"'
        if error is not None:
            # error_description allows %x20-21 / %x23-5B / %x5D-7E only (RFC 6750 §3).
            text = "".join(c for c in message if 0x20 <= ord(c) <= 0x7E and c not in '"\\')[:120]
            challenge += f', error="{error}", error_description="{text}"'
        self.headers["WWW-Authenticate"] = challenge


class ServiceUnavailable(HealthbookError):
    """A service this request depends on (an identity provider's keys) cannot be reached; try again later."""

    status_code = 503
    code = "transient"
