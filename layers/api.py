"""HTTP routes of the layers package: the catalog and uploads."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Request

from gis_platform.deps import Db, SettingsDep
from gis_platform.errors import LayerNotFound
from gis_platform.security import PrincipalDep, require_write
from layers.catalog import Layer, LayerUpdate, Registry

router = APIRouter()


async def on_startup(app: FastAPI) -> None:
    registry = Registry(app.state.conninfo)
    await registry.start()
    app.state.registry = registry


async def on_shutdown(app: FastAPI) -> None:
    registry = getattr(app.state, "registry", None)
    if registry is not None:
        await registry.stop()


def get_registry(request: Request) -> Registry:
    return request.app.state.registry


RegistryDep = Annotated[Registry, Depends(get_registry)]


@router.get("/layers", tags=["catalog"], summary="The layer catalog (what the caller may see)")
async def list_layers(registry: RegistryDep, principal: PrincipalDep) -> dict:
    return {"layers": [l.public_dict() for l in registry.visible(principal)]}


@router.get("/layers/{layer_id}", tags=["catalog"], summary="One catalog record")
async def get_layer(layer_id: str, registry: RegistryDep, principal: PrincipalDep) -> dict:
    return registry.readable(layer_id, principal).public_dict()
