"""Fast routes: a thin Starlette route in front of FastAPI's for the hottest GETs.

On the hot paths (cached tiles, small feature pages) what a request costs is mostly the
framework around it: route matching over every route of the platform, then dependency
injection and validation of a dozen optional query parameters that the handler re-parses
itself anyway.  A :class:`FastGetRoute` is placed *first* in the app's router; it claims
only ``GET`` requests whose path matches its pattern and hands them, with the regex groups,
to a handler that resolves what the FastAPI route's dependencies resolve - in the same order,
with the same functions (``security.get_principal``, ``Registry.readable``...) - and then
runs the very same route body.  Responses are the same bytes with the same headers, errors
go to the same exception handlers (the route runs inside the app's middleware).  A path that
does not match (say, an id outside the pattern) goes on to the FastAPI route, which answers
it - and its validation errors - as before.  The FastAPI route stays the documented one in
the OpenAPI document.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, NoMatchFound

Handler = Callable[[Request, tuple], Awaitable[Response]]
_KEY = "gis_platform.fastroute"


class FastGetRoute(BaseRoute):
    def __init__(self, name: str, pattern: str | re.Pattern, handler: Handler,
                 prefix: str | None = None) -> None:
        self.name = name
        self.path = f"/{name} (fast route)"
        self.pattern = re.compile(pattern) if isinstance(pattern, str) else pattern
        self.handler = handler
        self.prefix = prefix   # a cheap startswith() before the regex

    def matches(self, scope) -> tuple[Match, dict]:
        if scope["type"] != "http" or scope.get("method") != "GET":
            return Match.NONE, {}
        path = scope["path"]
        root = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root):]
        if self.prefix is not None and not path.startswith(self.prefix):
            return Match.NONE, {}
        m = self.pattern.match(path)
        if m is None:
            return Match.NONE, {}
        return Match.FULL, {_KEY: m.groups()}

    def url_path_for(self, name: str, /, **path_params):
        raise NoMatchFound(name, path_params)

    async def handle(self, scope, receive, send) -> None:
        groups = scope.pop(_KEY)
        response = await self.handler(Request(scope, receive), groups)
        await response(scope, receive, send)


def install(app, route: FastGetRoute) -> None:
    """Put ``route`` first in ``app``'s router (once per name)."""
    routes = app.router.routes
    if not any(isinstance(r, FastGetRoute) and r.name == route.name for r in routes):
        routes.insert(0, route)
