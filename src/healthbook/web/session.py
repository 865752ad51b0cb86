"""The login cookie of the health-book pages: the access token, HttpOnly, for GET pages only."""

from __future__ import annotations

from http.cookies import CookieError, SimpleCookie

from starlette.responses import Response

COOKIE = "hb_session"
PATH = "/so-suc-khoe"


def session_token(cookie_header: str) -> str | None:
    """The access token in the login cookie, if any (a malformed Cookie header counts as none)."""
    if not cookie_header:
        return None
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(cookie_header)
    except CookieError:
        return None
    morsel = jar.get(COOKIE)
    return morsel.value if morsel is not None and morsel.value else None


def set_session(response: Response, token: str, max_age: int, *, secure: bool) -> None:
    """Log the browser in to the health-book pages (SameSite=Lax: no cross-site requests carry it)."""
    response.set_cookie(
        COOKIE, token, max_age=max_age, path=PATH, httponly=True, samesite="lax", secure=secure
    )


def clear_session(response: Response) -> None:
    """Log the browser out of the health-book pages."""
    response.delete_cookie(COOKIE, path=PATH)
