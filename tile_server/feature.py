"""The tiles feature: vector and raster tiles, overviews, TileJSON/OGC API Tiles, styles."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from gis_platform.feature import Feature
from tile_server import api, cli
from tile_server.fastpath import install_fast_path
from tile_server.overview_build import OverviewPlan
from tile_server.overviews import OverviewManager
from tile_server.service import TileService


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """The tile service and its overview manager (told of new data versions by the catalog
    events); at shutdown the queued cache writes are flushed."""
    settings = app.state.settings
    service = TileService(settings, app.state.db)
    service.overviews = OverviewManager(
        app.state.session_conninfo, service.tuning, OverviewPlan.from_settings(settings.tiles),
        layers=app.state.registry.all, rebuild_quiet_s=settings.tiles.overview_rebuild_quiet_s,
        rebuild_max_stale_s=settings.tiles.overview_rebuild_max_stale_s,
        patch_quiet_s=settings.tiles.overview_patch_quiet_s)
    await service.overviews.start()
    app.state.events.subscribe("tile overviews", service.overviews.on_events)
    app.state.tile_service = service
    try:
        yield
    finally:
        await service.overviews.stop()
        await service.drain()


def fast_routes(app: FastAPI) -> None:
    if app.state.settings.tiles.fast_path:
        install_fast_path(app)


FEATURE = Feature("tiles", routers=(api.router,), lifespan=lifespan, fast_routes=fast_routes,
                  cli=cli.register)
