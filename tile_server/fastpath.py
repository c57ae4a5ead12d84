"""The tile fast path: a thin route in front of FastAPI's for tile GETs.

A cached tile costs a dictionary lookup; what it cost before was the framework around it:
FastAPI's route matching over every route of the platform, then dependency injection and
parameter validation (grid, registry, principal, service, settings, four query
parameters), about as much again as the rest of the request.  :class:`TileFastRoute` is a
plain Starlette route placed *first* in the app's router.  It claims only
``GET /collections/{id}/tiles/{tms}/{z}/{x}/{y}`` and ``GET /tiles/{tms}/{z}/{x}/{y}`` with
numeric ``z`` and ``x``, resolves what the FastAPI route's dependencies resolve, in the same
order and with the same functions (``get_tms``, ``security.get_principal`` with its cached
key verification), and then runs the very same route body
(:func:`tile_server.api.serve_collection_tile` / ``serve_composite_tile``): access through
``Registry.readable`` (and its audit hook), row filters, cache key, ETag / 304, cache,
render.  So responses are the same bytes with the same headers, and errors are raised to
the same exception handlers (the route runs inside the app's middleware and
``ExceptionMiddleware``, like every other route).

Anything else - a non-numeric ``z``, another method - is not matched and goes on to the
FastAPI routes, which answer it (and its validation errors) as before.  ``tile_fast_path``
(setting) turns the fast path off.
"""

from __future__ import annotations

import re

from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.routing import BaseRoute, Match

_COLLECTION_RE = re.compile(r"^/collections/([^/]+)/tiles/([^/]+)/(\d{1,9})/(\d{1,9})/([^/]+)$")
_COMPOSITE_RE = re.compile(r"^/tiles/([^/]+)/(\d{1,9})/(\d{1,9})/([^/]+)$")
_MATCH = "tile_server.fastpath"
_NO_QUERY = QueryParams()


class TileFastRoute(BaseRoute):
    """Starlette route answering tile GETs without FastAPI's dependency machinery."""

    def __init__(self, app) -> None:
        self.app_ref = app
        self.name = "tile_fast_path"
        self.path = "/tiles fast path"

    def matches(self, scope) -> tuple[Match, dict]:
        if scope["type"] != "http" or scope.get("method") != "GET":
            return Match.NONE, {}
        path = scope["path"]
        root = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root):]
        if path.startswith("/collections/"):
            m = _COLLECTION_RE.match(path)
            if m:
                return Match.FULL, {_MATCH: ("collection", m.groups())}
        elif path.startswith("/tiles/"):
            m = _COMPOSITE_RE.match(path)
            if m:
                return Match.FULL, {_MATCH: ("composite", m.groups())}
        return Match.NONE, {}

    def url_path_for(self, name: str, /, **path_params):
        from starlette.routing import NoMatchFound

        raise NoMatchFound(name, path_params)

    async def handle(self, scope, receive, send) -> None:
        from gis_platform.security import get_principal
        from tile_server.api import serve_collection_tile, serve_composite_tile
        from tile_server.tms import get_tms

        kind, groups = scope.pop(_MATCH)
        state = self.app_ref.state
        request = Request(scope, receive)
        # Parsing an empty query string still builds a multidict: skip it for plain tile URLs.
        q = request.query_params if scope.get("query_string") else _NO_QUERY
        # The FastAPI routes resolve their dependencies in this order: grid, then principal.
        if kind == "collection":
            collection_id, tms_id, z, x, y = groups
            grid = get_tms(tms_id)
            principal = await get_principal(request)
            response = await serve_collection_tile(
                request, collection_id, grid, int(z), int(x), y, state.registry, principal,
                state.tile_service, state.settings, q.get("f"), q.get("bidx"),
                q.getlist("rescale"), q.get("colormap"))
        else:
            tms_id, z, x, y = groups
            grid = get_tms(tms_id)
            principal = await get_principal(request)
            response = await serve_composite_tile(
                request, grid, int(z), int(x), y, state.registry, principal, state.tile_service,
                state.settings, q.get("layers"), q.get("f"))
        await response(scope, receive, send)


def install_fast_path(app) -> None:
    """Put the fast route first in ``app``'s router (once)."""
    routes = app.router.routes
    if not any(isinstance(r, TileFastRoute) for r in routes):
        routes.insert(0, TileFastRoute(app))
