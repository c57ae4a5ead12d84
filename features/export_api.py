"""HTTP routes of the open-data export: ``GET /collections/{id}/export?format=...`` and
``GET /collections/{id}/export.{gpkg|fgb|csv|geojson}``.

Takes every items filter (``bbox``, ``datetime``, ``filter``, property equality), plus
``properties``, ``sortby``, ``crs``, an optional ``limit`` (no default: the whole result),
``format`` (geojson | csv | gpkg | fgb; on the first route) and, for CSV, ``geometry`` (wkt |
lonlat | none).  Settings read: ``features_export_batch``, ``features_export_timeout_ms``,
``features_export_max_features``, ``features_export_tmp_dir``, ``features_export_fgb_index``.

The second route is the first with the format named by the URL's extension, because GDAL
picks a driver for a URL by its extension: its CSV driver opens only a name ending in
``.csv``, and its HTTP driver (a plain ``http://`` argument) names the download after the
URL's last path segment - a segment with a ``?`` becomes ``file.dat``.  So ``.../export.gpkg``
is a link that GDAL, QGIS and geopandas open directly.  (GeoPackage, FlatGeobuf and GeoJSON
are also recognised by their bytes, with a query string too; a CSV with one needs GDAL's
``CSV:`` prefix.)

Both routes make the same access decision (:func:`features.http.vector_layer`, then the
caller's row filter in the query) before anything else, also for ``HEAD`` and ``Range``
requests, which are answered from a file (:class:`features.export.ExportFiles`) with
``Content-Length``, ``Accept-Ranges``, 206 and ``Content-Range`` (416 past the end).  A file
is built before the response starts, so a filter PostgreSQL rejects is a 400; a streamed
response probes the query first for the same reason.
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import FileResponse, StreamingResponse
from psycopg import sql

from features.export import (
    FILE_FORMATS,
    FILES,
    FORMATS,
    ExportJob,
    csv_chunks,
    export_dir,
    export_headers,
    export_key,
    geojson_chunks,
    parse_format,
    write_export,
)
from features.http import vector_layer
from features.query import items_query, parse_int
from features.sql import QUERY_ERRORS, bad_query
from gis_platform.deps import Db, SettingsDep
from gis_platform.errors import InvalidParameter, NotFound
from gis_platform.head import is_head
from gis_platform.security import PrincipalDep
from layers.registry import RegistryDep

log = logging.getLogger("features.export")
router = APIRouter(tags=["export"])

_CONTENT = {200: {"content": {t: {} for t, _ in FORMATS.values()}},
            206: {"description": "The byte range asked for with `Range`"},
            416: {"description": "The range lies past the end of the file"}}
CollectionId = Annotated[str, Path(alias="collectionId", max_length=200)]


@router.get("/collections/{collectionId}/export", summary="Download a (filtered) layer",
            response_class=StreamingResponse, responses=_CONTENT)
async def export(collection_id: CollectionId, request: Request, registry: RegistryDep,
                 principal: PrincipalDep, db: Db, settings: SettingsDep,
                 format: Annotated[str | None, Query(description="geojson, csv, gpkg or fgb")] = None):
    layer = vector_layer(registry, collection_id, principal)
    return await _export(request, layer, parse_format(format), {"format", "geometry", "limit"},
                         principal, db, settings)


@router.get("/collections/{collectionId}/export.{extension}",
            summary="Download a (filtered) layer as a file named by its format",
            response_class=StreamingResponse, responses=_CONTENT)
async def export_file(collection_id: CollectionId, request: Request, registry: RegistryDep,
                      principal: PrincipalDep, db: Db, settings: SettingsDep,
                      extension: Annotated[str, Path(description="gpkg, fgb, csv or geojson",
                                                     max_length=10)]):
    layer = vector_layer(registry, collection_id, principal)
    fmt = extension.lower()
    if fmt not in FORMATS:
        raise NotFound(f"No resource at {request.url.path}: exports are .gpkg, .fgb, .csv or .geojson.")
    return await _export(request, layer, fmt, {"geometry", "limit"}, principal, db, settings)


async def _export(request: Request, layer, fmt: str, allowed: set[str], principal, db, settings):
    """The export as a file (GeoPackage, FlatGeobuf; any format asked for with ``HEAD`` or
    ``Range``, or already built) or as a stream."""
    job = await _job(request, layer, fmt, allowed, principal, settings)
    headers, media_type = export_headers(job), FORMATS[fmt][0]
    root, key = export_dir(settings), export_key(job, db.conninfo)
    if fmt in FILE_FORMATS or is_head(request) or "range" in request.headers:
        path = await FILES.get(root, key, fmt, lambda part: _build(db, job, part))
    else:
        path = FILES.cached(root, key, fmt)      # a GeoJSON/CSV already built for a reader
    if path is not None:
        return FileResponse(path, media_type=media_type, headers=headers)
    await _probe(db, job)
    chunks = geojson_chunks if fmt == "geojson" else csv_chunks

    async def body():
        async with db.connection(read_only=True, heavy=True) as conn:
            try:
                async for chunk in chunks(conn, job):
                    yield chunk
            except QUERY_ERRORS as exc:   # after the headers: all we can do is stop and log
                log.warning("export stopped", extra={"layer": layer.id, "error": type(exc).__name__})

    return StreamingResponse(body(), media_type=media_type, headers=headers)


async def _job(request: Request, layer, fmt: str, allowed: set[str], principal, settings) -> ExportJob:
    """The validated export of this request (the caller's row filter is in its query)."""
    qp = request.query_params
    q = await items_query(qp, layer, settings, principal=principal, paging=False, allowed=allowed)
    cap = settings.features.export_max_features
    limit = qp.get("limit")
    max_features = parse_int(limit, "limit", 0, lo=1, hi=int(cap) if cap else 2**62) if limit else cap
    csv_geometry = (qp.get("geometry") or "wkt").lower()
    if csv_geometry not in ("wkt", "lonlat", "none"):
        raise InvalidParameter("geometry must be wkt, lonlat or none (CSV only).", parameter="geometry")
    if qp.get("geometry") and fmt != "csv":
        raise InvalidParameter("geometry applies to format=csv only.", parameter="geometry")
    return ExportJob(q, fmt, csv_geometry=csv_geometry,
                     batch=int(settings.features.export_batch),
                     timeout_ms=int(settings.features.export_timeout_ms),
                     max_features=int(max_features) if max_features else None,
                     fgb_index=bool(settings.features.export_fgb_index))


async def _build(db, job: ExportJob, path: str) -> None:
    try:
        async with db.connection(read_only=True, heavy=True) as conn:
            await write_export(conn, job, path)
    except QUERY_ERRORS as exc:
        raise bad_query(exc) from None


async def _probe(db, job: ExportJob) -> None:
    """A filter PostgreSQL rejects becomes a 400 before any byte of a stream is sent."""
    q = job.query
    src, where = q.source, q.where_frag()
    try:
        async with db.connection(read_only=True, heavy=True) as conn:
            await conn.execute(sql.SQL("SELECT 1 FROM {} WHERE {} LIMIT 1").format(src.sql, where.sql),
                               [*src.params, *where.params])
    except QUERY_ERRORS as exc:
        raise bad_query(exc) from None
