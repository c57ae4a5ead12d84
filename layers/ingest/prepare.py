"""Cleaning a GeoDataFrame for storage: CRS, geometry repair, one geometry type, safe columns.

Everything here is vectorised (shapely 2 / numpy); no per-feature Python loops except where
a repaired geometry has to be reduced to the layer's dimension.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from dataclasses import dataclass, field

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS

from gis_platform.errors import IngestError
from layers.ingest.crs import describe, fix_legacy_crs, parse_crs

RESERVED = {"fid", "geom", "oid", "ctid", "xmin", "xmax", "cmin", "cmax", "tableoid"}
_DIM = {"Point": 0, "MultiPoint": 0, "LineString": 1, "LinearRing": 1, "MultiLineString": 1,
        "Polygon": 2, "MultiPolygon": 2}
_FAMILY = {0: "Point", 1: "LineString", 2: "Polygon"}


@dataclass
class Column:
    name: str          # normalised, safe (still always quoted in SQL)
    source_name: str
    pg_type: str       # text | bigint | integer | double precision | boolean | date | timestamp | timestamptz
    values: list       # python values (None for missing), ready for binary COPY


@dataclass
class Prepared:
    """Data ready to COPY: EWKB geometries, typed columns, and what happened on the way."""

    wkb: list[bytes]
    columns: list[Column]
    geometry_type: str
    srid: int
    source_crs: str
    read: int
    repaired: int = 0
    dropped_empty: int = 0
    dropped_no_coords: int = 0
    dropped_wrong_type: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.wkb)


def normalise_names(names: list[str]) -> list[str]:
    """Safe, unique column names: lower-case, spaces/punctuation to '_', Hangul kept.

    Names are still quoted as identifiers in SQL; this keeps them readable, unambiguous and
    within PostgreSQL's 63-byte limit (counted in UTF-8 bytes, which matters for Hangul).
    """
    out: list[str] = []
    seen: set[str] = set()
    for raw in names:
        n = unicodedata.normalize("NFC", str(raw)).strip().lower()
        n = re.sub(r"[^\w]+", "_", n, flags=re.UNICODE).strip("_") or "column"
        if n[0].isdigit():
            n = "c_" + n
        if n in RESERVED:
            n = n + "_src"
        while len(n.encode()) > 60:
            n = n[:-1]
        base, i = n, 2
        while n in seen:
            n = f"{base}_{i}"
            i += 1
        seen.add(n)
        out.append(n)
    return out


def _resolve_crs(gdf: gpd.GeoDataFrame, crs_override: str | int | None, notes: list[str]) -> CRS:
    if crs_override is not None:
        crs = parse_crs(crs_override)
        if gdf.crs is not None and not CRS(gdf.crs).equals(crs):
            notes.append(f"the file's CRS ({describe(CRS(gdf.crs))}) was overridden by {describe(crs)}")
    elif gdf.crs is not None:
        crs = CRS(gdf.crs)
    else:
        # CSV lon/lat columns, and GeoJSON/TopoJSON (RFC 7946: CRS84 unless stated).
        xy = gdf.attrs.get("xy_columns") or gdf.attrs.get("lonlat_default")
        bounds = gdf.total_bounds if len(gdf) else None
        looks_lonlat = bounds is not None and np.all(np.isfinite(bounds)) and \
            -180 <= bounds[0] <= 180 and -180 <= bounds[2] <= 180 and \
            -90 <= bounds[1] <= 90 and -90 <= bounds[3] <= 90
        if xy and looks_lonlat:
            notes.append("no CRS in the file: lon/lat coordinates read as WGS84 (EPSG:4326)")
            return CRS.from_epsg(4326)
        hint = ""
        if bounds is not None and np.all(np.isfinite(bounds)):
            hint = (f" Its coordinates span x {bounds[0]:.6g}..{bounds[2]:.6g}, y {bounds[1]:.6g}.."
                    f"{bounds[3]:.6g}")
            if looks_lonlat:
                hint += " (they look like lon/lat: EPSG:4326)."
            elif 100_000 < bounds[0] < 1_500_000 and 1_000_000 < bounds[1] < 2_500_000:
                hint += " (they look like Korean UTM-K: EPSG:5179)."
            elif 0 < bounds[0] < 1_000_000 and 0 < bounds[1] < 1_000_000:
                hint += " (they look like a Korean TM belt: EPSG:5186, or EPSG:5174 for Bessel data)."
            else:
                hint += "."
        raise IngestError("The file does not say which coordinate reference system it uses. Name "
                          "it (CLI --crs, upload field 'crs'), e.g. EPSG:5186." + hint)
    fixed, note = fix_legacy_crs(crs)
    if note:
        notes.append(note)
    return fixed


def _reduce_to_dim(geom, dim: int):
    """Keep the parts of a (repaired) geometry that have the layer's dimension."""
    if geom is None or geom.is_empty:
        return None
    if shapely.get_dimensions(geom) == dim and geom.geom_type != "GeometryCollection":
        return geom
    parts = [g for g in shapely.get_parts(shapely.get_parts(geom)) if shapely.get_dimensions(g) == dim
             and not g.is_empty]
    if not parts:
        return None
    if dim == 2:
        return shapely.multipolygons(parts) if len(parts) > 1 else parts[0]
    if dim == 1:
        return shapely.multilinestrings(parts) if len(parts) > 1 else parts[0]
    return shapely.multipoints(parts) if len(parts) > 1 else parts[0]


#: Vertices one feature may have.  A 2-million-vertex polygon makes every tile it touches
#: take tens of seconds to cut; real city features (a district, a river bank) have far fewer.
MAX_FEATURE_VERTICES = 250_000


def check_vertices(geoms: np.ndarray, max_vertices: int) -> None:
    """Refuse the file if one feature has more than ``max_vertices`` vertices (naming it)."""
    counts = shapely.get_num_coordinates(geoms)
    over = np.nonzero(counts > max_vertices)[0]
    if over.size:
        i = int(over[0])
        raise IngestError(
            f"Feature #{i + 1} has {int(counts[i]):,} vertices; at most {max_vertices:,} per feature "
            f"are accepted ({over.size} feature(s) exceed it). Simplify it (e.g. ogr2ogr -simplify "
            "0.1) or split it into parts; an operator can raise GIS_INGEST_MAX_FEATURE_VERTICES.")


def prepare(gdf: gpd.GeoDataFrame, *, srid: int = 4326, crs: str | int | None = None,
            dropped_no_coords: int = 0, notes: list[str] | None = None,
            max_vertices: int = MAX_FEATURE_VERTICES) -> Prepared:
    """Reproject, repair, unify the geometry type and type the attribute columns."""
    notes = list(notes or [])
    read = len(gdf) + dropped_no_coords
    if len(gdf) == 0:
        raise IngestError("The file holds no features (0 rows with geometry).")
    check_vertices(np.asarray(gdf.geometry.values, dtype=object), max_vertices)
    src_crs = _resolve_crs(gdf, crs, notes)
    geoms = np.asarray(gdf.geometry.values, dtype=object)
    if gdf.crs is None or not CRS(gdf.crs).equals(src_crs):
        gdf = gdf.set_crs(src_crs, allow_override=True)
    missing = shapely.is_missing(geoms)
    empty = missing.copy()
    empty[~missing] = shapely.is_empty(geoms[~missing])
    keep = ~empty
    dropped_empty = int(empty.sum())
    gdf = gdf.loc[keep]
    if len(gdf) == 0:
        raise IngestError(f"All {read} features have empty or missing geometry.")
    target = CRS.from_epsg(srid)
    if not src_crs.equals(target):
        try:
            gdf = gdf.to_crs(target)
        except Exception as exc:
            raise IngestError(f"Cannot transform from {describe(src_crs)} to EPSG:{srid}: {exc}") from exc
    geoms = shapely.force_2d(np.asarray(gdf.geometry.values, dtype=object))
    if not np.all(np.isfinite(shapely.bounds(geoms))):
        raise IngestError("Some coordinates could not be transformed (outside the CRS's area); "
                          "check the CRS you named.")
    if srid == 4326:
        b = shapely.total_bounds(geoms)
        if b[0] < -180.0001 or b[2] > 180.0001 or b[1] < -90.0001 or b[3] > 90.0001:
            raise IngestError(
                f"After transforming from {describe(src_crs)} the coordinates fall outside the "
                f"globe ({b[0]:.4g}, {b[1]:.4g}, {b[2]:.4g}, {b[3]:.4g}): the CRS is wrong. Name the "
                "right one (e.g. EPSG:5186 or EPSG:5179).")
    # Geometry family: one per layer.
    types = shapely.get_type_id(geoms)
    names = np.array(["Point", "LineString", "LinearRing", "Polygon", "MultiPoint",
                      "MultiLineString", "MultiPolygon", "GeometryCollection"], dtype=object)[types]
    dims = np.array([_DIM.get(n, -1) for n in names])
    invalid = ~shapely.is_valid(geoms)
    repaired = int(invalid.sum())
    if repaired:
        geoms = geoms.copy()
        geoms[invalid] = shapely.make_valid(geoms[invalid])
    present = sorted(set(int(d) for d in dims if d >= 0))
    if len(present) > 1:
        counts = {_FAMILY[d]: int((dims == d).sum()) for d in present}
        raise IngestError("Mixed geometry types: " + ", ".join(f"{n} {k.lower()}s" for k, n in
                          counts.items()) + ". A layer holds one kind; split the file by type.")
    if not present:
        raise IngestError("The file holds only geometry collections; split them by type first.")
    dim = present[0]
    wrong = dims != dim
    if repaired or wrong.any():
        fix = invalid | wrong | (shapely.get_type_id(geoms) == 7)
        idx = np.nonzero(fix)[0]
        geoms[idx] = [_reduce_to_dim(g, dim) for g in geoms[idx]]
    still_empty = shapely.is_missing(geoms)
    still_empty[~still_empty] = shapely.is_empty(geoms[~still_empty])
    dropped_wrong = int(still_empty.sum())
    if dropped_wrong:
        geoms = geoms[~still_empty]
        gdf = gdf.loc[~still_empty]
    final_types = set(shapely.get_type_id(geoms).tolist())
    multi = bool(final_types & {4, 5, 6})
    family = _FAMILY[dim]
    gtype = ("Multi" + family) if multi else family
    if multi:
        single = shapely.get_type_id(geoms) < 4
        if single.any():
            maker = {0: shapely.multipoints, 1: shapely.multilinestrings, 2: shapely.multipolygons}[dim]
            geoms[single] = [maker([g]) for g in geoms[single]]
    geoms = shapely.set_srid(geoms, srid)
    wkb = shapely.to_wkb(geoms, include_srid=True, byte_order=1).tolist()
    attrs = gdf.drop(columns=[gdf.geometry.name])
    columns = _columns(attrs)
    return Prepared(wkb=wkb, columns=columns, geometry_type=gtype, srid=srid,
                    source_crs=describe(src_crs), read=read, repaired=repaired,
                    dropped_empty=dropped_empty, dropped_no_coords=dropped_no_coords,
                    dropped_wrong_type=dropped_wrong, notes=notes)


def _columns(df: pd.DataFrame) -> list[Column]:
    names = normalise_names(list(df.columns))
    cols = []
    for name, src in zip(names, df.columns):
        series = df[src]
        pg_type, values = _typed(series)
        cols.append(Column(name=name, source_name=str(src), pg_type=pg_type, values=values))
    return cols


def _typed(s: pd.Series) -> tuple[str, list]:
    """PostgreSQL type and python values (None for missing) of one column."""
    dtype = s.dtype
    na = s.isna().to_numpy()
    if pd.api.types.is_bool_dtype(dtype):
        vals = s.astype(object).tolist()
        return "boolean", [None if m else bool(v) for v, m in zip(vals, na)]
    if pd.api.types.is_integer_dtype(dtype):
        arr = s.to_numpy(dtype="float64" if na.any() else None)
        pg = "integer" if getattr(dtype, "itemsize", 8) <= 4 and str(dtype).lower().startswith("int") \
            else "bigint"
        if na.any():
            return pg, [None if m else int(v) for v, m in zip(arr.tolist(), na)]
        return pg, s.to_numpy().tolist()
    if pd.api.types.is_float_dtype(dtype):
        arr = s.to_numpy(dtype="float64")
        vals = arr.tolist()
        if na.any() or not np.isfinite(arr).all():
            return "double precision", [v if (v == v and v not in (float("inf"), float("-inf")))
                                        else None for v in vals]
        return "double precision", vals
    if pd.api.types.is_datetime64_any_dtype(dtype):
        tz = getattr(dtype, "tz", None)
        py = s.dt.to_pydatetime() if hasattr(s, "dt") else s.tolist()
        vals = [None if m else v for v, m in zip(list(py), na)]
        return ("timestamptz" if tz is not None else "timestamp"), vals
    # object / string / category: dates, mixed, text
    raw = s.astype(object).tolist()
    non_null = [v for v, m in zip(raw, na) if not m]
    if non_null and all(isinstance(v, dt.datetime) for v in non_null):
        tz = any(v.tzinfo is not None for v in non_null)
        return ("timestamptz" if tz else "timestamp"), [None if m else v for v, m in zip(raw, na)]
    if non_null and all(isinstance(v, dt.date) and not isinstance(v, dt.datetime) for v in non_null):
        return "date", [None if m else v for v, m in zip(raw, na)]
    if non_null and all(isinstance(v, bool) for v in non_null):
        return "boolean", [None if m else v for v, m in zip(raw, na)]
    return "text", [None if m else (v if isinstance(v, str) else str(v)) for v, m in zip(raw, na)]
