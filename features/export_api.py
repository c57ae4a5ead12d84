"""HTTP route of the open-data export: ``GET /collections/{id}/export?format=...``.

Takes every items filter (``bbox``, ``datetime``, ``filter``, property equality), plus
``properties``, ``sortby``, ``crs``, an optional ``limit`` (no default: the whole result),
``format`` (geojson | csv | gpkg | fgb) and, for CSV, ``geometry`` (wkt | lonlat | none).
The query is probed before the response starts, so a filter PostgreSQL rejects is a 400,
not a truncated download.  Settings read: ``features_export_batch``,
``features_export_timeout_ms``, ``features_export_max_features``, ``features_export_tmp_dir``,
``features_export_fgb_index``.
"""

from __future__ import annotations

import logging
import os
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import StreamingResponse
from psycopg import sql

from features.export import (
    FORMATS,
    ExportJob,
    csv_chunks,
    export_headers,
    file_export,
    geojson_chunks,
    parse_format,
    stream_file,
    temp_export_path,
)
from features.http import vector_layer
from features.query import items_query, parse_int
from features.sql import QUERY_ERRORS, bad_query
from gis_platform.deps import Db, SettingsDep
from gis_platform.errors import InvalidParameter
from gis_platform.security import PrincipalDep
from layers.registry import RegistryDep

log = logging.getLogger("features.export")
router = APIRouter(tags=["export"])


@router.get("/collections/{collectionId}/export", summary="Download a (filtered) layer",
            response_class=StreamingResponse,
            responses={200: {"content": {t: {} for t, _ in FORMATS.values()}}})
async def export(collection_id: Annotated[str, Path(alias="collectionId", max_length=200)], request: Request,
                 registry: RegistryDep, principal: PrincipalDep, db: Db, settings: SettingsDep,
                 format: Annotated[str | None, Query(description="geojson, csv, gpkg or fgb")] = None):
    layer = vector_layer(registry, collection_id, principal)
    qp = request.query_params
    fmt = parse_format(format)
    q = await items_query(qp, layer, settings, principal=principal, paging=False,
                          allowed={"format", "geometry", "limit"})
    cap = settings.features.export_max_features
    limit = qp.get("limit")
    max_features = parse_int(limit, "limit", 0, lo=1, hi=int(cap) if cap else 2**62) if limit else cap
    csv_geometry = (qp.get("geometry") or "wkt").lower()
    if csv_geometry not in ("wkt", "lonlat", "none"):
        raise InvalidParameter("geometry must be wkt, lonlat or none (CSV only).", parameter="geometry")
    if qp.get("geometry") and fmt != "csv":
        raise InvalidParameter("geometry applies to format=csv only.", parameter="geometry")
    job = ExportJob(q, fmt, csv_geometry=csv_geometry,
                    batch=int(settings.features.export_batch),
                    timeout_ms=int(settings.features.export_timeout_ms),
                    max_features=int(max_features) if max_features else None,
                    fgb_index=bool(settings.features.export_fgb_index))
    headers = export_headers(job)
    media_type = FORMATS[fmt][0]
    where = q.where_frag()
    try:
        async with db.connection(read_only=True, heavy=True) as conn:
            # Probe: a filter PostgreSQL rejects becomes a 400 before any byte is sent.
            src = q.source
            await conn.execute(sql.SQL("SELECT 1 FROM {} WHERE {} LIMIT 1").format(src.sql, where.sql),
                               [*src.params, *where.params])
            if fmt in ("gpkg", "fgb"):
                tmpdir, path = temp_export_path(settings, fmt)
                try:
                    await file_export(conn, job, path)
                except BaseException:
                    stream_file(tmpdir, path).close()
                    raise
    except QUERY_ERRORS as exc:
        raise bad_query(exc) from None
    if fmt in ("gpkg", "fgb"):
        headers["Content-Length"] = str(os.path.getsize(path))
        return StreamingResponse(stream_file(tmpdir, path), media_type=media_type, headers=headers)

    chunks = geojson_chunks if fmt == "geojson" else csv_chunks

    async def body():
        async with db.connection(read_only=True, heavy=True) as conn:
            try:
                async for chunk in chunks(conn, job):
                    yield chunk
            except QUERY_ERRORS as exc:   # after the headers: all we can do is stop and log
                log.warning("export stopped", extra={"layer": layer.id, "error": type(exc).__name__})

    return StreamingResponse(body(), media_type=media_type, headers=headers)
