"""The ingest pipeline: read -> prepare -> COPY, with a report.

``ingest_file`` and ``ingest_geodataframe`` are the two entry points used by the CLI, the
HTTP upload route, the demo builder and the tests.  They are synchronous (run them in a
thread from async code) and open their own connection, so a failure cannot leave a pooled
connection in a transaction.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd

from gis_platform.db.connections import connect
from gis_platform.errors import IngestError, InvalidParameter
from gis_platform.gdal_env import ensure_hardened
from layers.catalog import Layer, ensure_new_id, get_layer, slugify, validate_layer_id
from layers.ingest import readers
from layers.ingest.prepare import MAX_FEATURE_VERTICES, prepare
from layers.ingest.raster import ingest_raster
from layers.ingest.report import IngestReport
from layers.ingest.writer import write_layer

Progress = Callable[[str, int, int | None], None]   # (stage, advance, total)


@dataclass(frozen=True)
class IngestLimits:
    """Limits on what an ingested file may hold (settings ``ingest_*``)."""

    max_feature_vertices: int = MAX_FEATURE_VERTICES
    zip: readers.ZipLimits = field(default_factory=readers.ZipLimits)

    @classmethod
    def from_settings(cls, settings) -> IngestLimits:
        return cls(max_feature_vertices=settings.ingest.max_feature_vertices,
                   zip=readers.ZipLimits(
                       max_uncompressed_bytes=settings.ingest.max_uncompressed_mb * 1024**2,
                       max_ratio=settings.ingest.max_zip_ratio))


def _check_mode(mode: str) -> str:
    if mode not in ("create", "replace", "append"):
        raise InvalidParameter(f"Unknown mode {mode!r}: use create, replace or append.")
    return mode


def _precheck(conninfo: str, layer_id: str, mode: str) -> None:
    """Fail fast (before reading a big file) on id clashes and missing targets."""
    with connect(conninfo, autocommit=True) as conn:
        if mode == "create":
            ensure_new_id(conn, layer_id)
        elif get_layer(conn, layer_id) is None:
            raise IngestError(f"No layer '{layer_id}' to {mode}; use mode 'create'.")


def ingest_geodataframe(conninfo: str, gdf: gpd.GeoDataFrame, layer_id: str, *,
                        mode: str = "create", crs: str | int | None = None, srid: int = 4326,
                        metadata: dict | None = None, progress: Progress | None = None,
                        limits: IngestLimits | None = None, actor: str = "ingest",
                        reason: str | None = None,
                        _source: readers.SourceData | None = None) -> IngestReport:
    """Load a GeoDataFrame as layer ``layer_id`` (``actor`` and ``reason``: for the layer's
    history)."""
    limits = limits or IngestLimits()
    t0 = time.perf_counter()
    validate_layer_id(layer_id)
    _check_mode(mode)
    if not isinstance(gdf, gpd.GeoDataFrame):
        raise IngestError("Expected a GeoDataFrame with a geometry column.")
    src = _source or readers.SourceData(gdf=gdf, format="GeoDataFrame", name=layer_id)
    _precheck(conninfo, layer_id, mode)
    prepared = prepare(gdf, srid=srid, crs=crs, dropped_no_coords=src.dropped_no_coords,
                       notes=src.notes, max_vertices=limits.max_feature_vertices)
    if progress:
        progress("write", 0, prepared.count)
    with connect(conninfo) as conn:
        layer: Layer = write_layer(conn, prepared, layer_id, mode=mode, metadata=metadata or {},
                                   progress=(lambda n: progress("write", n, prepared.count))
                                   if progress else None, actor=actor, reason=reason)
    secs = time.perf_counter() - t0
    return IngestReport(
        layer_id=layer_id, mode=mode, format=src.format, features_read=prepared.read,
        features_written=prepared.count, repaired=prepared.repaired,
        dropped_empty=prepared.dropped_empty, dropped_no_coordinates=prepared.dropped_no_coords,
        dropped_other=prepared.dropped_wrong_type, geometry_type=layer.geometry_type,
        source_crs=prepared.source_crs, storage_srid=prepared.srid, encoding=src.encoding,
        data_version=layer.data_version, feature_count=layer.feature_count,
        seconds=round(secs, 3), features_per_second=round(prepared.count / secs, 1) if secs else 0.0,
        notes=prepared.notes)


def ingest_file(conninfo: str, path: str | Path, *, layer_id: str | None = None,
                mode: str = "create", crs: str | int | None = None, encoding: str | None = None,
                source_layer: str | None = None, metadata: dict | None = None,
                data_dir: Path | None = None, progress: Progress | None = None,
                limits: IngestLimits | None = None, actor: str = "ingest",
                reason: str | None = None) -> IngestReport:
    """Ingest one file (one layer of it, for a GeoPackage) as ``layer_id``."""
    limits = limits or IngestLimits()
    if str(path).startswith("/vsi"):
        raise IngestError("GDAL virtual file systems (/vsi...) are not accepted; give a local file.")
    path = Path(path)
    if not path.is_file():
        raise IngestError(f"No such file: {path.name}")
    ensure_hardened()
    fmt = readers.sniff_format(path)
    layer_id = layer_id or slugify(source_layer or path.stem)
    validate_layer_id(layer_id)
    _check_mode(mode)
    if fmt == "RASTER":

        if data_dir is None:
            raise IngestError("Raster ingest needs the platform's data directory.")
        return ingest_raster(conninfo, path, layer_id, mode=mode, crs=crs, metadata=metadata,
                             data_dir=data_dir)
    _precheck(conninfo, layer_id, mode)
    if progress:
        progress("read", 0, None)
    src = readers.read_vector(path, layer=source_layer, encoding=encoding, fmt=fmt,
                              zip_limits=limits.zip)
    meta = dict(metadata or {})
    meta.setdefault("source", path.name)
    return ingest_geodataframe(conninfo, src.gdf, layer_id, mode=mode, crs=crs, metadata=meta,
                               progress=progress, limits=limits, actor=actor, reason=reason,
                               _source=src)
