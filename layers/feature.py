"""The layers feature: the catalog and its registry, uploads, ingest, the demo city's layers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from gis_platform.feature import Feature
from layers import api, cli, demo
from layers.registry import Registry
from layers.watch import RelationWatcher


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """The layer registry (loaded now, reloaded on every catalog event) and the watcher of
    published relations (:mod:`layers.watch`)."""
    registry = Registry(app.state.db)
    await registry.load()
    app.state.events.subscribe("layer registry", registry.on_events)
    app.state.registry = registry
    watcher = RelationWatcher(app.state.session_conninfo, app.state.settings, registry.all)
    await watcher.start()
    app.state.relation_watcher = watcher
    try:
        yield
    finally:
        await watcher.stop()


FEATURE = Feature("layers", routers=(api.router,), lifespan=lifespan, cli=cli.register,
                  demo=demo.load_demo)
