"""Raster ingest: anything rasterio opens -> a Cloud-Optimized GeoTIFF in the data directory.

The COG is written to a temporary name first and moved into place only after the catalog
transaction commits, so a failure leaves the previous raster layer (file and record) as it
was.  Each version gets its own file name (``<id>-<data_version>.tif``): tiles being served
from the old file keep working until the swap, and the old file is removed after it.
"""

from __future__ import annotations

import os
import secrets
import time
from pathlib import Path

import numpy as np
from psycopg import sql
from psycopg.types.json import Jsonb

from gis_platform.db.connections import connect
from gis_platform.errors import IngestError, LayerNotFound
from layers.catalog import ensure_new_id, get_layer, validate_layer_id
from layers.ingest.crs import describe, fix_legacy_crs, parse_crs
from layers.ingest.report import IngestReport


def _raster_info(path: Path) -> dict:
    import rasterio
    from rasterio.warp import transform_bounds

    with rasterio.open(path) as ds:
        bands = []
        for i in range(1, ds.count + 1):
            arr = ds.read(i, masked=True, out_shape=(min(ds.height, 1024), min(ds.width, 1024)))
            valid = arr.compressed()
            stats = None
            if valid.size:
                stats = {"min": float(valid.min()), "max": float(valid.max()),
                         "mean": float(valid.mean()), "std": float(valid.std()),
                         "p2": float(np.percentile(valid, 2)), "p98": float(np.percentile(valid, 98))}
            bands.append({"index": i, "dtype": ds.dtypes[i - 1],
                          "description": ds.descriptions[i - 1], "statistics": stats,
                          "colorinterp": ds.colorinterp[i - 1].name})
        bounds = transform_bounds(ds.crs, "EPSG:4326", *ds.bounds, densify_pts=21)
        return {"bands": bands, "count": ds.count, "width": ds.width, "height": ds.height,
                "nodata": ds.nodata, "crs": ds.crs.to_string(), "native_bounds": list(ds.bounds),
                "resolution": list(ds.res), "overviews": ds.overviews(1) if ds.count else []}, \
            [float(v) for v in bounds]


def ingest_raster(conninfo: str, path: Path, layer_id: str, *, mode: str = "create",
                  crs: str | int | None = None, metadata: dict | None = None,
                  data_dir: Path) -> IngestReport:
    """Convert ``path`` to a COG and register it as raster layer ``layer_id``."""
    import rasterio
    from rasterio.errors import RasterioIOError
    from rio_cogeo.cogeo import cog_translate
    from rio_cogeo.profiles import cog_profiles


    t0 = time.perf_counter()
    validate_layer_id(layer_id)
    if mode == "append":
        raise IngestError("Rasters cannot be appended to; use create or replace.")
    notes: list[str] = []
    try:
        # The GTiff driver only: whatever the file's name or content, GDAL may not open it as
        # a VRT (or any other format that names further files or URLs).
        with rasterio.open(path, driver="GTiff") as src:
            if src.driver != "GTiff":
                raise IngestError(f"{path.name} opened as {src.driver}, not GeoTIFF; refused.")
            src_crs = src.crs
            if crs is not None:
                src_crs = parse_crs(crs)
            if src_crs is None:
                raise IngestError("The raster does not say which CRS it uses: name it (--crs).")
            from pyproj import CRS

            fixed, note = fix_legacy_crs(CRS.from_user_input(src_crs.to_wkt()))
            if note:
                notes.append(note)
            if src.count == 0 or src.width == 0 or src.height == 0:
                raise IngestError("The raster has no pixels or bands.")
    except RasterioIOError as exc:
        raise IngestError(f"Cannot read {path.name} as a raster: the file is corrupt, truncated "
                          "or not a raster.") from exc
    with connect(conninfo, autocommit=True) as conn:
        existing = get_layer(conn, layer_id)
        if mode == "create":
            ensure_new_id(conn, layer_id)
        elif existing is None:
            raise LayerNotFound(f"No layer '{layer_id}' to replace; use mode 'create'.")
        elif existing.kind != "raster":
            raise IngestError(f"Layer '{layer_id}' is a vector layer; replace it with vector data.")
    out_dir = data_dir / "rasters"
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / f".{layer_id}-{secrets.token_hex(4)}.tif.part"
    try:
        profile = cog_profiles.get("deflate")
        try:
            with rasterio.open(path, driver="GTiff") as src:
                from rasterio.crs import CRS as RioCRS

                if crs is not None or note:
                    from rasterio.vrt import WarpedVRT

                    rio_crs = RioCRS.from_wkt(fixed.to_wkt())
                    with WarpedVRT(src, src_crs=rio_crs, crs=rio_crs) as vrt:
                        cog_translate(vrt, tmp, profile, quiet=True, in_memory=False)
                else:
                    cog_translate(src, tmp, profile, quiet=True, in_memory=False)
        except (RasterioIOError, ValueError) as exc:
            raise IngestError(f"Cannot convert {path.name} to a Cloud-Optimized GeoTIFF: {exc}") from exc
        info, extent = _raster_info(tmp)
        meta = dict(metadata or {})
        with connect(conninfo) as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(hashtext('gis_layer:' || %s))", (layer_id,))
            version = conn.execute("SELECT nextval('gis_meta.data_version_seq')").fetchone()[0]
            final = out_dir / f"{layer_id}-{version}.tif"
            old = get_layer(conn, layer_id, for_update=True)
            if mode == "create" and old is not None:
                ensure_new_id(conn, layer_id)
            fields = {"raster_path": str(final), "raster_info": Jsonb(info), "extent": extent,
                      "source_crs": describe(fixed), "feature_count": 0, "data_version": version}
            for k in ("title", "title_ko", "description", "description_ko", "keywords", "source",
                      "licence", "attribution", "access_level", "minzoom", "maxzoom"):
                if meta.get(k) is not None:
                    fields[k] = meta[k]
            if old is None:
                fields.setdefault("title", layer_id.replace("_", " ").title())
                fields.setdefault("source", path.name)
                fields.update({"id": layer_id, "kind": "raster", "storage_srid": 0})
                conn.execute(sql.SQL("INSERT INTO gis_meta.layers ({}) VALUES ({})").format(
                    sql.SQL(", ").join(map(sql.Identifier, fields)),
                    sql.SQL(", ").join(sql.Placeholder() * len(fields))), list(fields.values()))
            else:
                sets = sql.SQL(", ").join(sql.SQL("{} = %s").format(sql.Identifier(k)) for k in fields)
                conn.execute(sql.SQL("UPDATE gis_meta.layers SET {}, updated_at = now() WHERE id = %s")
                             .format(sets), [*fields.values(), layer_id])
            os.replace(tmp, final)  # still inside the transaction: a failed commit unlinks below
        if old is not None and old.raster_path and old.raster_path != str(final):
            Path(old.raster_path).unlink(missing_ok=True)
    except BaseException:
        tmp.unlink(missing_ok=True)
        if "final" in locals() and final.exists():
            # The commit failed after the move: this file belongs to no catalog record.
            with connect(conninfo, autocommit=True) as conn:
                row = get_layer(conn, layer_id)
            if row is None or row.raster_path != str(final):
                final.unlink(missing_ok=True)
        raise
    secs = time.perf_counter() - t0
    return IngestReport(layer_id=layer_id, mode=mode, kind="raster", format="COG",
                        source_crs=describe(fixed), storage_srid=None, data_version=version,
                        seconds=round(secs, 3), notes=notes + [
                            f"{info['count']} band(s), {info['width']}x{info['height']} px, "
                            f"nodata={info['nodata']}"])
