"""HTTP routes of the layers package: the catalog and uploads."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, File, Form, Request, Response, UploadFile

from gis_platform.deps import SettingsDep
from gis_platform.errors import InvalidParameter, PayloadTooLarge
from gis_platform.responses import FastJSONResponse
from gis_platform.security import PrincipalDep, require_write
from layers.catalog import LayerUpdate, Registry

router = APIRouter()


async def on_startup(app: FastAPI) -> None:
    registry = Registry(app.state.conninfo)
    await registry.start()
    app.state.registry = registry


async def on_shutdown(app: FastAPI) -> None:
    registry = getattr(app.state, "registry", None)
    if registry is not None:
        await registry.stop()


async def get_registry(request: Request) -> Registry:
    return request.app.state.registry


RegistryDep = Annotated[Registry, Depends(get_registry)]


@router.get("/layers", tags=["catalog"], summary="The layer catalog (what the caller may see)")
async def list_layers(registry: RegistryDep, principal: PrincipalDep) -> dict:
    return {"layers": [l.public_dict() for l in registry.visible(principal)]}


@router.get("/layers/{layer_id}", tags=["catalog"], summary="One catalog record")
async def get_layer(layer_id: str, registry: RegistryDep, principal: PrincipalDep) -> dict:
    # metadata only (no rows): a row-scoped caller may see the record
    return registry.readable(layer_id, principal, filtered=True).public_dict()


def _safe_suffix(filename: str | None) -> str:
    import re
    from pathlib import Path as _P

    name = _P(filename or "upload").name
    suffix = "".join(_P(name).suffixes[-1:]).lower()
    return suffix if re.fullmatch(r"\.[a-z0-9]{1,8}", suffix) else ""


@router.post("/layers/upload", tags=["catalog"], status_code=201,
             summary="Upload a GIS file and ingest it as a layer",
             responses={400: {}, 403: {}, 409: {}, 413: {}, 422: {}})
async def upload_layer(
    request: Request, registry: RegistryDep, principal: PrincipalDep, settings: SettingsDep,
    file: UploadFile = File(..., description="GeoJSON, GeoPackage, zipped Shapefile, FlatGeobuf, CSV/TSV or GeoTIFF"),
    layer_id: str | None = Form(None, description="Layer id (default: from the file name)"),
    mode: str = Form("create", description="create | replace | append"),
    crs: str | None = Form(None, description="Source CRS when the file has none, e.g. EPSG:5186"),
    encoding: str | None = Form(None, description="Attribute encoding, e.g. CP949"),
    source_layer: str | None = Form(None, description="Layer inside a GeoPackage"),
    title: str | None = Form(None),
    access_level: str | None = Form(None, description="public | internal | restricted"),
):
    """Stream the file to disk (size-limited), ingest it all-or-nothing, return the report."""
    import asyncio
    import shutil
    import tempfile
    from pathlib import Path as _P

    from layers.catalog import slugify
    from layers.ingest import ingest_file

    require_write(principal, settings)
    if access_level is not None and access_level not in ("public", "internal", "restricted"):
        raise InvalidParameter("access_level must be public, internal or restricted.")
    upload_dir = settings.resolved_data_dir() / "uploads"
    upload_dir.mkdir(parents=True, exist_ok=True)
    workdir = _P(tempfile.mkdtemp(dir=upload_dir))
    try:
        base = _P(file.filename or "upload").stem
        target = workdir / ("upload" + _safe_suffix(file.filename))
        limit = settings.max_upload_mb * 1024 * 1024
        written = 0
        with target.open("wb") as out:
            while chunk := await file.read(1 << 20):
                written += len(chunk)
                if written > limit:
                    raise PayloadTooLarge(f"The file exceeds the upload limit of {settings.max_upload_mb} MB.")
                out.write(chunk)
        meta = {k: v for k, v in {"title": title, "access_level": access_level,
                                  "source": file.filename}.items() if v}
        report = await asyncio.to_thread(
            ingest_file, request.app.state.conninfo, target,
            layer_id=layer_id or slugify(source_layer or base), mode=mode, crs=crs,
            encoding=encoding, source_layer=source_layer, metadata=meta,
            data_dir=settings.resolved_data_dir())
    finally:
        await file.close()
        shutil.rmtree(workdir, ignore_errors=True)
    await registry.load()
    return FastJSONResponse(report.to_dict(), status_code=201 if mode == "create" else 200)


@router.patch("/layers/{layer_id}", tags=["catalog"], summary="Change a layer's metadata")
async def patch_layer(layer_id: str, patch: LayerUpdate, request: Request, registry: RegistryDep,
                      principal: PrincipalDep, settings: SettingsDep) -> dict:
    import asyncio

    import psycopg

    from layers.catalog import update_layer

    require_write(principal, settings)
    registry.readable(layer_id, principal)

    def run():
        with psycopg.connect(request.app.state.conninfo, autocommit=True) as conn:
            return update_layer(conn, layer_id, patch)

    layer = await asyncio.to_thread(run)
    await registry.load()
    return layer.public_dict()


@router.delete("/layers/{layer_id}", tags=["catalog"], status_code=204,
               summary="Delete a layer and its data")
async def remove_layer(layer_id: str, request: Request, registry: RegistryDep,
                       principal: PrincipalDep, settings: SettingsDep):
    import asyncio
    from pathlib import Path as _P

    import psycopg

    from layers.catalog import delete_layer

    require_write(principal, settings)
    registry.readable(layer_id, principal)

    def run():
        with psycopg.connect(request.app.state.conninfo, autocommit=True) as conn:
            return delete_layer(conn, layer_id)

    layer = await asyncio.to_thread(run)
    if layer.raster_path:
        _P(layer.raster_path).unlink(missing_ok=True)
    await registry.load()
    return Response(status_code=204)
