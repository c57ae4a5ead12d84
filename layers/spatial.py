"""Coordinate reference systems, bounding boxes and geometries from requests, as safe SQL.

Contracts:

* Layers are stored in EPSG:4326 with PostGIS' traditional longitude/latitude (x = lon)
  order.  Every geometry coming from a request ends up as a SQL expression in that system.
* CRS identifiers follow OGC API Features Part 2: a URI
  (``http://www.opengis.net/def/crs/EPSG/0/5186``), a safe CURIE (``[EPSG:5186]``) or the
  short form ``EPSG:5186``.  Only the CRSs in :func:`supported_crs` are accepted.
* **Axis order follows the CRS definition** (the standard's rule): CRS84 is lon/lat, but
  EPSG:4326 is lat/lon, and the Korean grids EPSG:5186/5179/5181 are northing/easting.  A
  coordinate given in, or returned in, such a CRS is swapped at the edge; PostGIS itself
  always works in x = easting/longitude.
* Values always travel as query parameters; :class:`Frag` keeps a SQL fragment together with
  its parameters so fragments can be composed without losing track of placeholders.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import shapely
from psycopg import sql

from gis_platform.config import FeatureSettings
from gis_platform.errors import InvalidParameter
from gis_platform.sqlfrag import Frag

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
CRS84H = "http://www.opengis.net/def/crs/OGC/0/CRS84h"
EPSG_URI = "http://www.opengis.net/def/crs/EPSG/0/{}"
#: CRSs offered by every collection (besides CRS84): WGS84, Web Mercator, the Korean
#: belts of 2010 (West 5185, Central 5186, East 5187, East Sea 5188), the older Central
#: Belt grids (5174 with the Bessel datum, 5181), Korea Unified (UTM-K, 5179), UTM 52N.
#: More can be added with the setting ``features_extra_srids``.
DEFAULT_SRIDS = (4326, 3857, 5186, 5179, 5181, 5174, 5185, 5187, 5188, 32652)
STORAGE_SRID = 4326
GEOM = sql.Identifier("geom")
#: Vertices a geometry in a request may have (a query area, a filter literal, an excavation).
#: A city district is a few thousand; more makes every intersection test slow for everyone.
MAX_GEOMETRY_VERTICES = 10_000


@dataclass(frozen=True)
class CrsRef:
    """A CRS the server supports: its URI, the PostGIS SRID and whether axes are swapped."""

    uri: str
    srid: int
    north_first: bool      # True: coordinates are (lat, lon) / (northing, easting)
    geographic: bool       # True: degrees (longitude/latitude ranges apply)

    @property
    def header(self) -> str:
        """The value of the ``Content-Crs`` header."""
        return f"<{self.uri}>"


CRS84_REF = CrsRef(CRS84, STORAGE_SRID, north_first=False, geographic=True)


@lru_cache(maxsize=64)
def _axis_info(srid: int) -> tuple[bool, bool]:
    from pyproj import CRS

    crs = CRS.from_epsg(srid)
    first = crs.axis_info[0].direction.lower() if crs.axis_info else "east"
    return first in ("north", "south"), crs.is_geographic


def supported_crs(features: FeatureSettings | None = None) -> dict[str, CrsRef]:
    """Every supported CRS by URI (CRS84 first, as the standard's default)."""
    srids = list(DEFAULT_SRIDS)
    for extra in (features.extra_srids if features else []):
        if int(extra) not in srids:
            srids.append(int(extra))
    out = {CRS84: CRS84_REF}
    for srid in srids:
        north_first, geographic = _axis_info(srid)
        out[EPSG_URI.format(srid)] = CrsRef(EPSG_URI.format(srid), srid, north_first, geographic)
    return out


def parse_crs(value: str | None, features: FeatureSettings | None = None, *,
              param: str = "crs") -> CrsRef:
    """A CRS from a request parameter; ``None``/empty means CRS84.  Unknown -> 400."""
    if value is None or not value.strip():
        return CRS84_REF
    raw = value.strip()
    text = raw[1:-1] if raw.startswith("[") and raw.endswith("]") else raw
    text = text.replace("https://", "http://")
    known = supported_crs(features)
    key = None
    if text in known or text == CRS84H:
        key = CRS84 if text == CRS84H else text
    else:
        upper = text.upper()
        if upper in ("CRS84", "OGC:CRS84", "OGC:1.3:CRS84"):
            key = CRS84
        elif upper.startswith("EPSG:") and upper[5:].isdigit():
            key = EPSG_URI.format(int(upper[5:]))
        elif text.startswith("http://www.opengis.net/def/crs/EPSG/") and text.rsplit("/", 1)[-1].isdigit():
            key = EPSG_URI.format(int(text.rsplit("/", 1)[-1]))
    if key not in known:
        shown = raw if len(raw) <= 80 else raw[:80] + "..."
        raise InvalidParameter(
            f"Unsupported {param} {shown!r}. Supported: " + ", ".join(known) + ".",
            parameter=param)
    return known[key]


def _numbers(text: str, param: str) -> list[float]:
    parts = [p.strip() for p in text.split(",")]
    try:
        nums = [float(p) for p in parts]
    except ValueError:
        raise InvalidParameter(
            f"{param} must be 4 (or 6) comma-separated numbers: minx,miny,maxx,maxy.",
            parameter=param) from None
    if not all(math.isfinite(n) for n in nums):
        raise InvalidParameter(f"{param} values must be finite numbers.", parameter=param)
    return nums


def parse_bbox(text: str, crs: CrsRef, *, param: str = "bbox") -> tuple[float, float, float, float]:
    """Parse ``bbox`` into (minx, miny, maxx, maxy) in the CRS's *x = easting* order.

    Accepts 4 or 6 numbers (the 6-number 3D form ignores heights).  For a north-first CRS
    (EPSG:4326: lat,lon) the pairs are swapped here.  In CRS84 a box with minx > maxx
    crosses the antimeridian (allowed); otherwise lower corner must not exceed upper.
    """
    if len(text) > 400:
        raise InvalidParameter(f"{param} is too long.", parameter=param)
    nums = _numbers(text, param)
    if len(nums) == 6:
        nums = [nums[0], nums[1], nums[3], nums[4]]
    if len(nums) != 4:
        raise InvalidParameter(
            f"{param} must have 4 or 6 numbers (minx,miny,maxx,maxy); got {len(nums)}.",
            parameter=param)
    a1, a2, b1, b2 = nums
    minx, miny, maxx, maxy = (a2, a1, b2, b1) if crs.north_first else (a1, a2, b1, b2)
    if miny > maxy or (maxx < minx and not crs.geographic):
        raise InvalidParameter(f"{param}: the lower corner must come before the upper corner "
                               "(minx,miny,maxx,maxy).", parameter=param)
    if crs.geographic and (abs(miny) > 90 or abs(maxy) > 90 or abs(minx) > 180 or abs(maxx) > 180):
        raise InvalidParameter(f"{param}: latitude must be within [-90, 90] and longitude within "
                               "[-180, 180]" + (" (EPSG:4326 is lat,lon order)" if crs.north_first
                                                else " (CRS84 is lon,lat order)") + ".",
                               parameter=param)
    return minx, miny, maxx, maxy


def envelope_sql(box: tuple[float, float, float, float], crs: CrsRef, srid: int = STORAGE_SRID) -> Frag:
    """A parsed box (in ``crs``) as a polygon in ``srid``: the edges densified when it is
    reprojected, so the outline follows the box's true shape."""
    minx, miny, maxx, maxy = box
    if crs.srid == srid:
        return Frag(sql.SQL("ST_MakeEnvelope(%s, %s, %s, %s, {})").format(sql.Literal(int(srid))),
                    [minx, miny, maxx, maxy])
    # A scalar subquery: computed once per statement.  A prepared statement's generic plan
    # would otherwise transform the box again for every row the index returns.
    return Frag(sql.SQL("(SELECT ST_Transform(ST_Segmentize(ST_MakeEnvelope(%s, %s, %s, %s, %s), %s), {}))")
                .format(sql.Literal(int(srid))),
                [minx, miny, maxx, maxy, crs.srid, max(maxx - minx, maxy - miny) / 16 or 1.0])


def bbox_filter(box: tuple[float, float, float, float], crs: CrsRef,
                geom: sql.Composable = GEOM, srid: int = STORAGE_SRID) -> Frag:
    """``ST_Intersects(geom, <box in the layer's srid>)`` for a parsed bbox (index-assisted:
    the stored column is compared with a constant)."""
    minx, miny, maxx, maxy = box
    if minx > maxx:   # across the antimeridian (geographic CRSs only): two boxes
        west = envelope_sql((minx, miny, 180.0, maxy), crs, srid)
        east = envelope_sql((-180.0, miny, maxx, maxy), crs, srid)
        return Frag(sql.SQL("(ST_Intersects({g}, {a}) OR ST_Intersects({g}, {b}))").format(
            g=geom, a=west.sql, b=east.sql), [*west.params, *east.params])
    env = envelope_sql(box, crs, srid)
    return Frag(sql.SQL("ST_Intersects({}, {})").format(geom, env.sql), env.params)


def _swap_xy(geom: shapely.Geometry) -> shapely.Geometry:
    return shapely.transform(geom, lambda c: c[:, ::-1])


def shape_from_geojson(obj: Any, *, param: str = "geometry") -> shapely.Geometry:
    """A shapely geometry from a GeoJSON geometry, Feature or ``{"geometry": ...}`` object."""
    if isinstance(obj, dict) and obj.get("type") == "Feature":
        obj = obj.get("geometry")
    if not isinstance(obj, dict) or "type" not in obj:
        raise InvalidParameter(f"{param} must be a GeoJSON geometry object.", parameter=param)
    if obj["type"] == "FeatureCollection":
        raise InvalidParameter(f"{param}: send one geometry (or Feature), not a FeatureCollection.",
                               parameter=param)
    import orjson

    try:
        geom = shapely.from_geojson(orjson.dumps(obj))
    except Exception:  # noqa: BLE001 - shapely raises GEOSException/ValueError variants
        raise InvalidParameter(f"{param} is not a valid GeoJSON geometry.", parameter=param) from None
    return check_shape(geom, param)


def shape_from_wkt(text: str, *, param: str = "geometry") -> shapely.Geometry:
    """A shapely geometry from WKT text (used for CQL2 literals converted by pygeofilter)."""
    try:
        geom = shapely.from_wkt(text)
    except Exception:  # noqa: BLE001
        raise InvalidParameter(f"{param} is not valid WKT.", parameter=param) from None
    return check_shape(geom, param)


def check_shape(geom: shapely.Geometry | None, param: str) -> shapely.Geometry:
    """Reject empty, non-finite or huge geometries with a 400."""
    if geom is None or geom.is_empty:
        raise InvalidParameter(f"{param} is empty.", parameter=param)
    coords = shapely.get_coordinates(geom)
    if len(coords) > MAX_GEOMETRY_VERTICES:
        raise InvalidParameter(f"{param} has {len(coords):,} vertices; a request geometry may have "
                               f"at most {MAX_GEOMETRY_VERTICES:,}. Simplify it, or refer to a "
                               "stored feature (e.g. area=districts:12).", parameter=param)
    if not coords.size or not bool(np.isfinite(coords).all()):
        raise InvalidParameter(f"{param} has non-finite coordinates.", parameter=param)
    return geom


def geometry_sql(geom: shapely.Geometry, crs: CrsRef, *, param: str = "geometry",
                 srid: int = STORAGE_SRID) -> Frag:
    """A request geometry as a SQL expression in ``srid`` (a layer's; EPSG:4326 by default),
    its axes swapped first if the CRS is north-first."""
    if crs.north_first:
        geom = _swap_xy(geom)
    if crs.geographic:
        xmin, ymin, xmax, ymax = geom.bounds
        if abs(ymin) > 90 or abs(ymax) > 90 or abs(xmin) > 180 or abs(xmax) > 180:
            raise InvalidParameter(f"{param}: coordinates out of range for {crs.uri} "
                                   "(longitude within [-180, 180], latitude within [-90, 90]).",
                                   parameter=param)
    wkb = shapely.to_wkb(geom, include_srid=False)
    if crs.srid == srid:
        return Frag(sql.SQL("ST_GeomFromWKB(%s, {})").format(sql.Literal(int(srid))), [wkb])
    return Frag(sql.SQL("(SELECT ST_Transform(ST_GeomFromWKB(%s, %s), {}))").format(sql.Literal(int(srid))),
                [wkb, crs.srid])


def parse_point(text: str, crs: CrsRef, *, param: str = "point") -> shapely.Geometry:
    """``x,y`` in the CRS's axis order -> a shapely Point (still in that CRS's order)."""
    nums = _numbers(text, param)
    if len(nums) != 2:
        raise InvalidParameter(f"{param} must be two numbers: x,y (CRS84: lon,lat).", parameter=param)
    return shapely.Point(nums)


def output_geometry_sql(crs: CrsRef, precision: int, geom: sql.Composable = GEOM,
                        srid: int = STORAGE_SRID) -> sql.Composable:
    """``ST_AsGeoJSON`` of a stored geometry (in ``srid``) in the requested CRS and axis
    order (text)."""
    expr: sql.Composable = geom
    if crs.srid != srid:
        expr = sql.SQL("ST_Transform({}, {})").format(expr, sql.Literal(int(crs.srid)))
    if crs.north_first:
        expr = sql.SQL("ST_FlipCoordinates({})").format(expr)
    return sql.SQL("ST_AsGeoJSON({}, {})").format(expr, sql.Literal(int(precision)))


def default_precision(crs: CrsRef, features: FeatureSettings | None = None) -> int:
    """Decimal places for output coordinates: ~1 cm in degrees, 1 mm in metres."""
    features = features or FeatureSettings()
    return features.precision_degrees if crs.geographic else features.precision_metres


def degrees_for_metres(metres: float, max_abs_lat: float) -> float:
    """A distance in degrees that is at least ``metres`` anywhere up to ``max_abs_lat``.

    Used to give ``ST_DWithin(geom, g, deg)`` an index-friendly prefilter before the exact
    geography test: a degree of longitude shrinks with cos(latitude), so divide by the
    smallest metres-per-degree met in the area (plus a margin).
    """
    lat = min(89.0, abs(max_abs_lat) + metres / 111_000.0 + 0.01)
    return metres / (111_000.0 * math.cos(math.radians(lat))) * 1.01 + 1e-9


@lru_cache(maxsize=64)
def metres_per_unit(srid: int) -> float:
    from pyproj import CRS

    try:
        axis = CRS.from_epsg(srid).axis_info
        return float(axis[0].unit_conversion_factor) if axis else 1.0
    except Exception:  # noqa: BLE001 - an SRID pyproj does not know: assume metres
        return 1.0


def native_distance(metres: float, srid: int, geographic: bool) -> float:
    """A distance in the units of ``srid`` that is at least ``metres`` on the ground
    anywhere up to 80° of latitude: the radius of an index prefilter."""
    if geographic:
        return degrees_for_metres(metres, 80.0)
    if srid in (3857, 3785, 900913, 102100):      # Web Mercator stretches 1/cos(latitude)
        return metres / math.cos(math.radians(80.0)) + 1e-6
    return metres / metres_per_unit(srid) * 1.1 + 1e-6


def as_geography(expr: sql.Composable, srid: int) -> sql.Composable:
    """A geometry expression in ``srid`` as geography (metres on the ellipsoid)."""
    if srid == STORAGE_SRID:
        return sql.SQL("({})::geography").format(expr)
    return sql.SQL("ST_Transform({}, 4326)::geography").format(expr)


def within_metres(a: Frag, b: Frag, metres: float, srid: int, geographic: bool) -> Frag:
    """``a`` within ``metres`` of ``b`` (both geometries in ``srid``, the layer's): an
    index-friendly prefilter in the layer's units, then the exact test on the ellipsoid."""
    body = sql.SQL("(ST_DWithin({a}, {b}, %s) AND ST_DWithin({ga}, {gb}, %s))").format(
        a=a.sql, b=b.sql, ga=as_geography(a.sql, srid), gb=as_geography(b.sql, srid))
    return Frag(body, [*a.params, *b.params, native_distance(metres, srid, geographic),
                       *a.params, *b.params, metres])

