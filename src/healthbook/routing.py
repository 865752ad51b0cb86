"""A thin route table on plain Starlette routes: FastAPI's per-request machinery costs ~1 ms per call.

The FHIR endpoints take the Request and string path parameters only, so they need none of
FastAPI's dependency injection; they are registered with decorators that read like FastAPI's.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

Endpoint = Callable[..., Awaitable[Response]]


class RouteTable:
    """Collects (path, methods, endpoint) in declaration order, which is also match order."""

    def __init__(self) -> None:
        self.entries: list[tuple[str, str, Endpoint]] = []

    def _add(self, method: str, path: str) -> Callable[[Endpoint], Endpoint]:
        def decorate(func: Endpoint) -> Endpoint:
            self.entries.append((path, method, func))
            return func

        return decorate

    def get(self, path: str) -> Callable[[Endpoint], Endpoint]:
        """Register a GET endpoint."""
        return self._add("GET", path)

    def post(self, path: str) -> Callable[[Endpoint], Endpoint]:
        """Register a POST endpoint."""
        return self._add("POST", path)

    def put(self, path: str) -> Callable[[Endpoint], Endpoint]:
        """Register a PUT endpoint."""
        return self._add("PUT", path)

    def patch(self, path: str) -> Callable[[Endpoint], Endpoint]:
        """Register a PATCH endpoint."""
        return self._add("PATCH", path)

    def delete(self, path: str) -> Callable[[Endpoint], Endpoint]:
        """Register a DELETE endpoint."""
        return self._add("DELETE", path)

    def routes(self, prefix: str) -> list[Route]:
        """Starlette routes, one per path (methods merged), in declaration order."""
        by_path: dict[str, dict[str, Endpoint]] = {}
        for path, method, func in self.entries:
            by_path.setdefault(path, {})[method] = func
        return [
            Route(prefix + path, endpoint=_dispatch(methods), methods=list(methods))
            for path, methods in by_path.items()
        ]


def _dispatch(methods: dict[str, Endpoint]) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        method = "GET" if request.method == "HEAD" else request.method
        func = methods[method]
        params: dict[str, Any] = request.path_params
        return await func(request, **params)

    return endpoint
