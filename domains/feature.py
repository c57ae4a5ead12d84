"""The domains feature: underground facilities and roads, the dig-safety check,
cross-sections, road-works permits (OPEN)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from domains import api, cli, demo
from domains.ingest import facility_edit_rules, road_edit_rules
from gis_platform.feature import Feature
from layers import edit


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Edits of the facilities and roads layers follow the rules their ingest follows."""
    ds = app.state.settings.domains
    edit.register_rules(ds.facilities_layer, facility_edit_rules)
    edit.register_rules(ds.roads_layer, road_edit_rules)
    yield


FEATURE = Feature("domains", routers=(api.router,), lifespan=lifespan, cli=cli.register,
                  demo=demo.load_demo)
