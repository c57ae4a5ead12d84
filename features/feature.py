"""The features feature: OGC API Features (items, CQL2, CRS), spatial operators, exports."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response

from features import api
from features.sql import COUNTS
from gis_platform.fastroute import FastGetRoute, install
from gis_platform.feature import Feature
from gis_platform.security import get_principal

# Small pages are dominated by framework cost (route matching, dependency injection and the
# validation of a dozen optional query parameters that parse_items_query reads again from
# request.query_params anyway); see gis_platform.fastroute.  Ids outside this pattern (or
# longer than CollectionId allows) fall through to the FastAPI route.
_ITEMS_PATH = r"^/collections/([A-Za-z0-9_\-]{1,200})/items$"


async def _fast_items(request: Request, groups: tuple) -> Response:
    state = request.app.state
    principal = await get_principal(request)
    return await api.serve_items(request, groups[0], state.registry, principal, state.db,
                                 state.settings)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """The feature-count cache forgets the counts of layers that changed."""
    app.state.events.subscribe("feature counts", COUNTS.on_events)
    yield


def fast_routes(app: FastAPI) -> None:
    if app.state.settings.features.fast_route:
        install(app, FastGetRoute("features_items", _ITEMS_PATH, _fast_items,
                                  prefix="/collections/"))


FEATURE = Feature("features", routers=(api.router,), lifespan=lifespan, fast_routes=fast_routes)
