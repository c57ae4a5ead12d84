"""The tile fast path: a thin route in front of FastAPI's for tile GETs.

A cached tile costs a dictionary lookup; what it cost before was the framework around it:
FastAPI's route matching over every route of the platform, then dependency injection and
parameter validation (grid, registry, principal, service, settings, four query
parameters), about as much again as the rest of the request.  :class:`TileFastRoute` is a
plain Starlette route (:class:`gis_platform.fastroute.FastGetRoute`) placed *first* in the
app's router.  It claims only
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

from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response

from gis_platform.fastroute import FastGetRoute, install
from gis_platform.security import get_principal
from tile_server.api import serve_collection_tile, serve_composite_tile
from tile_server.tms import get_tms

_COLLECTION_RE = r"^/collections/([^/]+)/tiles/([^/]+)/(\d{1,9})/(\d{1,9})/([^/]+)$"
_COMPOSITE_RE = r"^/tiles/([^/]+)/(\d{1,9})/(\d{1,9})/([^/]+)$"
_NO_QUERY = QueryParams()


class TileFastRoute(FastGetRoute):
    """The fast route of one kind of tile URL (a layer's, or a composite's)."""


def _query(request: Request) -> QueryParams:
    # Parsing an empty query string still builds a multidict: skip it for plain tile URLs.
    return request.query_params if request.scope.get("query_string") else _NO_QUERY


async def _collection_tile(request: Request, groups: tuple) -> Response:

    collection_id, tms_id, z, x, y = groups
    state, q = request.app.state, _query(request)
    # The FastAPI routes resolve their dependencies in this order: grid, then principal.
    grid = get_tms(tms_id)
    principal = await get_principal(request)
    return await serve_collection_tile(
        request, collection_id, grid, int(z), int(x), y, state.registry, principal,
        state.tile_service, state.settings, q.get("f"), q.get("bidx"), q.getlist("rescale"),
        q.get("colormap"))


async def _composite_tile(request: Request, groups: tuple) -> Response:

    tms_id, z, x, y = groups
    state, q = request.app.state, _query(request)
    grid = get_tms(tms_id)
    principal = await get_principal(request)
    return await serve_composite_tile(
        request, grid, int(z), int(x), y, state.registry, principal, state.tile_service,
        state.settings, q.get("layers"), q.get("f"))


def install_fast_path(app) -> None:
    """Put the two tile fast routes first in ``app``'s router (once)."""
    install(app, TileFastRoute("tiles_composite", _COMPOSITE_RE, _composite_tile, prefix="/tiles/"))
    install(app, TileFastRoute("tiles_collection", _COLLECTION_RE, _collection_tile,
                               prefix="/collections/"))
