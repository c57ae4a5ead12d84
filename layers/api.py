"""HTTP routes of the layers package: the catalog and uploads."""

from __future__ import annotations

import asyncio
import re
import shutil
import tempfile
from pathlib import Path
from typing import Literal

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from gis_platform import access
from gis_platform.access import Resource
from gis_platform.deps import Db, SettingsDep, run_sync
from gis_platform.errors import Conflict, InvalidParameter, PayloadTooLarge, UnsupportedMediaType
from gis_platform.responses import FastJSONResponse
from gis_platform.security import PrincipalDep
from layers import edit
from layers.catalog import LayerUpdate, delete_layer, slugify, update_layer, validate_layer_id
from layers.ingest import IngestLimits, ingest_file
from layers.publish import parse_qualified, publish, publish_schema, unpublish
from layers.registry import RegistryDep
from layers.scoped import all_as_seen_by, as_seen_by

router = APIRouter()


@router.get("/layers", tags=["catalog"], summary="The layer catalog (what the caller may see)")
async def list_layers(registry: RegistryDep, principal: PrincipalDep, db: Db) -> dict:
    layers = await all_as_seen_by(registry.visible(principal), principal, db)
    return {"layers": [l.public_dict() for l in layers]}


@router.get("/layers/{layer_id}", tags=["catalog"], summary="One catalog record")
async def get_layer(layer_id: str, registry: RegistryDep, principal: PrincipalDep, db: Db) -> dict:
    # metadata only: a row-scoped caller sees the record, with the count/extent of its rows
    layer = registry.readable(layer_id, principal, filtered=True, action="describe")
    return (await as_seen_by(layer, principal, db)).public_dict()


def _safe_suffix(filename: str | None) -> str:
    name = Path(filename or "upload").name
    suffix = "".join(Path(name).suffixes[-1:]).lower()
    return suffix if re.fullmatch(r"\.[a-z0-9]{1,8}", suffix) else ""


_UPLOAD_FIELDS = {"file", "layer_id", "mode", "crs", "encoding", "source_layer", "title",
                  "access_level", "reason"}
_UPLOAD_SCHEMA = {
    "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
        "type": "object", "required": ["file"],
        "properties": {
            "file": {"type": "string", "format": "binary", "description":
                     "GeoJSON, GeoPackage, zipped Shapefile, FlatGeobuf, CSV/TSV or GeoTIFF"},
            "layer_id": {"type": "string", "description": "Layer id (default: from the file name)"},
            "mode": {"type": "string", "enum": ["create", "replace", "append"], "default": "create"},
            "crs": {"type": "string", "description": "Source CRS when the file has none, e.g. EPSG:5186"},
            "encoding": {"type": "string", "description": "Attribute encoding, e.g. CP949"},
            "source_layer": {"type": "string", "description": "Layer inside a GeoPackage"},
            "title": {"type": "string"},
            "access_level": {"type": "string", "enum": ["public", "internal", "restricted"],
                             "description": "Default for a new layer: internal (publish later)"},
            "reason": {"type": "string", "description": "Why (kept in the layer's history: "
                       "GET /collections/{id}/history), e.g. '2026 survey of Jung-gu'"},
        }}}}}}


def _field(form, name: str, limit: int = 500) -> str | None:
    value = form.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidParameter(f"{name} must be a text field, not a file.", parameter=name)
    value = value.strip()
    if len(value) > limit:
        raise InvalidParameter(f"{name} is longer than {limit} characters.", parameter=name)
    return value or None


@router.post("/layers/upload", tags=["catalog"], status_code=201,
             summary="Upload a GIS file and ingest it as a layer (multipart/form-data)",
             responses={400: {}, 401: {}, 403: {}, 409: {}, 413: {}, 422: {}},
             openapi_extra=_UPLOAD_SCHEMA)
async def upload_layer(request: Request, registry: RegistryDep, principal: PrincipalDep,
                       settings: SettingsDep):
    """Authorize, then stream the file to disk (size-limited), ingest it all-or-nothing.

    The caller's role is checked before a byte of the body is read (an anonymous 60 MB
    upload is refused at once); the layer itself (create / replace / append, and the key's
    scope) once the form names it.  New layers are ``internal`` unless ``access_level`` says
    otherwise.
    """
    anon = settings.security.allow_anonymous_writes
    access.require_writer(principal, anonymous_writes=anon)
    ctype = request.headers.get("content-type", "")
    if not ctype.lower().startswith("multipart/form-data"):
        raise UnsupportedMediaType("Send the upload as multipart/form-data with a 'file' field.")
    try:
        form = await request.form(max_files=1, max_fields=len(_UPLOAD_FIELDS) + 2,
                                  max_part_size=64 * 1024)
    except Exception as exc:  # malformed multipart of every kind is a 400
        if isinstance(exc, PayloadTooLarge):
            raise
        raise InvalidParameter(f"The multipart body cannot be read: {str(exc)[:200]}") from None
    try:
        unknown = sorted(set(form) - _UPLOAD_FIELDS)
        if unknown:
            raise InvalidParameter(f"Unknown upload fields {unknown}; expected "
                                   f"{sorted(_UPLOAD_FIELDS)}.", parameter=unknown[0])
        file = form.get("file")
        if file is None or isinstance(file, str):
            raise InvalidParameter("The upload needs a 'file' field with the GIS file.",
                                   parameter="file")
        mode = _field(form, "mode") or "create"
        if mode not in ("create", "replace", "append"):
            raise InvalidParameter(f"Unknown mode {mode[:20]!r}: use create, replace or append.",
                                   parameter="mode")
        access_level = _field(form, "access_level")
        if access_level is not None and access_level not in ("public", "internal", "restricted"):
            raise InvalidParameter("access_level must be public, internal or restricted.",
                                   parameter="access_level")
        source_layer = _field(form, "source_layer")
        base = Path(file.filename or "upload").stem
        layer_id = validate_layer_id(_field(form, "layer_id", 63) or slugify(source_layer or base))
        # The access decision on the layer itself, before the file is read: a scoped key may
        # create only ids in its scope (whether or not a hidden layer has this id), and may
        # replace or append only to layers it may change.
        if mode == "create":
            access.authorize(principal, "create", Resource.new_layer(layer_id), anonymous_writes=anon)
        else:
            registry.writable(layer_id, principal, anonymous_writes=anon)
        upload_dir = settings.resolved_data_dir() / "uploads"
        upload_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        workdir = Path(tempfile.mkdtemp(dir=upload_dir))
        try:
            target = workdir / ("upload" + _safe_suffix(file.filename))
            limit = settings.ingest.max_upload_mb * 1024 * 1024
            written = 0
            with target.open("wb") as out:
                while chunk := await file.read(1 << 20):
                    written += len(chunk)
                    if written > limit:
                        raise PayloadTooLarge(f"The file exceeds the upload limit of "
                                              f"{settings.ingest.max_upload_mb} MB.")
                    out.write(chunk)
            meta = {k: v for k, v in {"title": _field(form, "title"), "access_level": access_level,
                                      "source": Path(file.filename or "upload").name[:200]}.items() if v}
            report = await asyncio.to_thread(
                ingest_file, request.app.state.conninfo, target, layer_id=layer_id, mode=mode,
                crs=_field(form, "crs", 100), encoding=_field(form, "encoding", 40),
                source_layer=source_layer, metadata=meta, data_dir=settings.resolved_data_dir(),
                limits=IngestLimits.from_settings(settings), actor=principal.id,
                reason=_field(form, "reason"))
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
    finally:
        await form.close()
    await registry.load()
    return FastJSONResponse(report.to_dict(), status_code=201 if mode == "create" else 200)


@router.patch("/layers/{layer_id}", tags=["catalog"], summary="Change a layer's metadata")
async def patch_layer(layer_id: str, patch: LayerUpdate, request: Request, registry: RegistryDep,
                      principal: PrincipalDep, settings: SettingsDep) -> dict:
    current = registry.writable(layer_id, principal,
                                anonymous_writes=settings.security.allow_anonymous_writes)
    if patch.editable:
        why = edit.why_not_editable(current)
        if why:
            raise Conflict(why)
        await run_sync(request, edit.check_grants, current)
    layer = await run_sync(request, update_layer, layer_id, patch)
    await registry.load()
    return layer.public_dict()


@router.delete("/layers/{layer_id}", tags=["catalog"], status_code=204,
               summary="Delete a layer and its data (a published layer: unpublish it; its "
                       "relation is left untouched)")
async def remove_layer(layer_id: str, request: Request, registry: RegistryDep,
                       principal: PrincipalDep, settings: SettingsDep):
    layer = registry.writable(layer_id, principal,
                              anonymous_writes=settings.security.allow_anonymous_writes)
    if layer.published:
        await run_sync(request, unpublish, layer_id, actor=principal.id)
        await registry.load()
        return Response(status_code=204)
    layer = await run_sync(request, delete_layer, layer_id)
    if layer.raster_path:
        Path(layer.raster_path).unlink(missing_ok=True)
    await registry.load()
    return Response(status_code=204)


class PublishRequest(BaseModel):
    """``POST /layers/publish``: one relation, or every spatial relation of a schema."""

    relation: str | None = Field(default=None, max_length=300, description=(
        "schema.name of a table, view, materialized view or set-returning function "
        "(double-quote parts with capitals or dots)"))
    id: str | None = Field(default=None, max_length=63, description="Layer id (default: the name)")
    geometry_column: str | None = Field(default=None, max_length=63)
    id_column: str | None = Field(default=None, max_length=300,
                                  description="Key column(s), comma-separated")
    access_level: Literal["public", "internal", "restricted"] = "internal"
    title: str | None = Field(default=None, max_length=200)
    depends_on: list[str] | None = Field(default=None, max_length=20)
    srid: int | None = Field(default=None, ge=1, le=999_999)
    schema_name: str | None = Field(default=None, alias="schema", max_length=63,
                                    description="With all=true: publish this whole schema")
    all: bool = False

    model_config = {"extra": "forbid", "populate_by_name": True}


@router.post("/layers/publish", tags=["catalog"], status_code=201,
             summary="Publish PostGIS relations in place (no copy)",
             responses={400: {}, 401: {}, 403: {}, 404: {}, 409: {}})
async def publish_relation(body: PublishRequest, request: Request, registry: RegistryDep,
                           principal: PrincipalDep, settings: SettingsDep) -> dict:
    """A planner publishes one relation; an administrator may publish a whole schema.  The
    new layers are ``internal`` unless ``access_level`` says otherwise."""
    anon = settings.security.allow_anonymous_writes
    access.require_writer(principal, anonymous_writes=anon)
    if body.all:
        access.require_admin(principal)
        if not body.schema_name or body.relation:
            raise InvalidParameter("all=true publishes a schema: give schema, not relation.",
                                   parameter="schema")
        done, skipped = await run_sync(request, publish_schema, body.schema_name,
                                       access_level=body.access_level)
    else:
        if not body.relation:
            raise InvalidParameter("Name the relation: {\"relation\": \"schema.name\"}.",
                                   parameter="relation")
        _, name, _ = parse_qualified(body.relation)
        layer_id = validate_layer_id(body.id or slugify(name))
        access.authorize(principal, "create", Resource.new_layer(layer_id), anonymous_writes=anon)
        done = await run_sync(request, publish, body.relation, layer_id=body.id,
                              geometry_column=body.geometry_column, id_column=body.id_column,
                              access_level=body.access_level, title=body.title,
                              depends_on=body.depends_on, srid=body.srid)
        skipped = []
    await registry.load()
    return {"published": [p.as_dict() for p in done],
            "skipped": [{"relation": name, "reason": why} for name, why in skipped]}
