"""Tile matrix sets (from morecantile) and tile validation.

Every tile grid comes from morecantile; bounds are always ``tms.xy_bounds(tile)`` in the
TMS's own CRS, never hand-rolled Web-Mercator arithmetic.  Three grids are served:

* ``WebMercatorQuad`` (EPSG:3857) - what MapLibre, Leaflet and OpenLayers use by default;
* ``WorldCRS84Quad`` (OGC:CRS84, lon/lat order, two tiles at zoom 0);
* ``KoreaUTMKQuad`` - a quadtree over EPSG:5179 (Korea 2000 / Unified CS, "UTM-K"), the
  national grid of Korean base maps.  Its extent is a 2,097,152 m square (2^21) from
  (0, 524288) to (2097152, 2621440) easting/northing, which covers the whole EPSG:5179
  area of use (the peninsula and Jeju) with power-of-two resolutions: 8192 m/px at z0,
  0.5 m/px at z14.

Axis order: EPSG:5179 is **northing, easting**, and a Tile Matrix Set 2.0 document states
its ``pointOfOrigin`` in the CRS's axis order, so KoreaUTMKQuad says ``orderedAxes: [N, E]``
and its origin is (2621440 N, 0 E).  PROJ labels these axes "X" (north) and "Y" (east),
which morecantile takes for easting first: without ``orderedAxes`` the document said
(0, 2621440), which a client reading it by the standard puts thousands of km off.  Tile bounds
(``xy_bounds``) are x = easting, y = northing either way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import morecantile
import pyproj
from morecantile import Tile, TileMatrixSet

from gis_platform.errors import InvalidParameter, NotFound

DEFAULT_TMS = "WebMercatorQuad"
#: KoreaUTMKQuad is this platform's own grid (no registry defines it): its ``uri`` names it
#: here, so clients that choose a grid by URI (GDAL's ``TILEMATRIXSET``) can pick it.
KOREA_UTMK_URI = "urn:city-gis-platform:def:tilematrixset:KoreaUTMKQuad"


class TileOutsideBounds(NotFound):
    """The requested z/x/y does not exist in the tile matrix set."""

    title, type_slug = "Tile outside bounds", "tile-outside-bounds"


class UnknownTileMatrixSet(NotFound):
    title, type_slug = "Tile matrix set not found", "tile-matrix-set-not-found"


def _korea_utmk() -> TileMatrixSet:
    # ordered_axes computes the origin in (N, E) order; orderedAxes puts it in the document.
    return TileMatrixSet.custom(
        [0.0, 524288.0, 2097152.0, 2621440.0], pyproj.CRS.from_epsg(5179),
        id="KoreaUTMKQuad", title="Korea 2000 / Unified CS (UTM-K, EPSG:5179) quadtree",
        uri=KOREA_UTMK_URI, ordered_axes=["N", "E"], orderedAxes=["N", "E"],
        minzoom=0, maxzoom=20)


@lru_cache(maxsize=1)
def _registry() -> dict[str, TileMatrixSet]:
    grids = {name: morecantile.tms.get(name) for name in ("WebMercatorQuad", "WorldCRS84Quad")}
    korea = _korea_utmk()
    grids[korea.id] = korea
    return grids


def tms_ids() -> list[str]:
    """Ids of the tile matrix sets this server offers."""
    return list(_registry())


def get_tms(tms_id: str) -> TileMatrixSet:
    """The tile matrix set ``tms_id``; 404 with the list of offered ones otherwise."""
    grid = _registry().get(tms_id)
    if grid is None:
        raise UnknownTileMatrixSet(
            f"Unknown tile matrix set {tms_id!r}; this server offers {', '.join(tms_ids())}.")
    return grid


@lru_cache(maxsize=16)
def tms_srid(tms_id: str) -> int:
    """The PostGIS SRID of a grid's CRS.

    OGC:CRS84 has no EPSG code, but it is EPSG:4326 with lon/lat axis order - which is
    exactly how PostGIS stores SRID 4326 coordinates (x = longitude), so 4326 is right.
    """
    grid = get_tms(tms_id)
    epsg = grid.crs._pyproj_crs.to_epsg()
    if epsg is None:
        if "CRS84" in str(grid.crs.root):
            return 4326
        raise InvalidParameter(f"Tile matrix set {tms_id} has no EPSG code PostGIS could use.")
    return int(epsg)


@lru_cache(maxsize=16)
def _to_wgs84(tms_id: str) -> pyproj.Transformer:
    # always_xy: pyproj would otherwise return EPSG:4326 as (lat, lon) and EPSG:5179 as
    # (northing, easting), their authority axis orders; PostGIS and morecantile's
    # xy_bounds both use (x, y) = (easting or lon, northing or lat).
    return pyproj.Transformer.from_crs(get_tms(tms_id).crs._pyproj_crs, "EPSG:4326", always_xy=True)


_R = 6378137.0          # EPSG:3857's sphere


def _merc_lon(x: float) -> float:
    return math.degrees(x / _R)


def _merc_lat(y: float) -> float:
    return math.degrees(math.atan(math.sinh(y / _R)))


def check_tile(grid: TileMatrixSet, z: int, x: int, y: int) -> Tile:
    """The tile z/x/y, or TileOutsideBounds (404) if the matrix has no such tile."""
    if z < grid.minzoom or z > grid.maxzoom:
        raise TileOutsideBounds(
            f"Zoom {z} is outside {grid.id}, which has zoom levels {grid.minzoom} to {grid.maxzoom}.")
    width, height = _matrix_size(grid.id, z)
    if not (0 <= x < width and 0 <= y < height):
        raise TileOutsideBounds(
            f"Tile {z}/{x}/{y} is outside {grid.id}: at zoom {z} x runs 0..{width - 1} "
            f"and y 0..{height - 1}.")
    return Tile(x, y, z)


@lru_cache(maxsize=256)
def _matrix_size(tms_id: str, z: int) -> tuple[int, int]:
    # grid.matrix(z) builds a model per call (~50 us): on the cache-hit path that mattered.
    matrix = get_tms(tms_id).matrix(z)
    return int(matrix.matrixWidth), int(matrix.matrixHeight)


@dataclass(frozen=True)
class TileBounds:
    """A tile's envelope in the grid's CRS and its WGS84 bounding box (with a buffer)."""

    xmin: float
    ymin: float
    xmax: float
    ymax: float
    lon_min: float
    lat_min: float
    lon_max: float
    lat_max: float

    @property
    def width(self) -> float:
        return self.xmax - self.xmin

    @property
    def height(self) -> float:
        return self.ymax - self.ymin

    @property
    def geo_box(self) -> tuple[float, float, float, float]:
        """The buffered lon/lat box (what a change must touch to change this tile)."""
        return (self.lon_min, self.lat_min, self.lon_max, self.lat_max)


def tile_bounds(grid: TileMatrixSet, tile: Tile, buffer_fraction: float = 0.0) -> TileBounds:
    """The tile's bounds from ``grid.xy_bounds`` plus its geographic box for index filtering.

    The geographic box is computed from the envelope grown by ``buffer_fraction`` of the tile
    on each side, transformed with 21 densified points per edge: in a grid whose CRS is not
    cylindrical (UTM-K) a straight tile edge is a curve in lon/lat, and transforming only the
    four corners would cut off features that lie in the bulge.
    """
    b = grid.xy_bounds(tile)
    dx = (b.right - b.left) * buffer_fraction
    dy = (b.top - b.bottom) * buffer_fraction
    srid = tms_srid(grid.id)
    if srid == 4326:
        geo = (b.left - dx, b.bottom - dy, b.right + dx, b.top + dy)
    elif srid == 3857:
        # Web-Mercator is separable (x -> lon, y -> lat): the corners are the exact box, by
        # the spherical Mercator inverse (what PROJ computes for EPSG:3857; two pyproj calls
        # were ~20 us of every cold tile).
        geo = (_merc_lon(b.left - dx), _merc_lat(b.bottom - dy),
               _merc_lon(b.right + dx), _merc_lat(b.top + dy))
    else:
        geo = _to_wgs84(grid.id).transform_bounds(b.left - dx, b.bottom - dy, b.right + dx,
                                                  b.top + dy, densify_pts=21)
    # Keep the box inside the valid lon/lat range (Web-Mercator's corners sit at ±180°).
    return TileBounds(b.left, b.bottom, b.right, b.top, max(geo[0], -180.0), max(geo[1], -90.0),
                      min(geo[2], 180.0), min(geo[3], 90.0))


def geographic_bounds(grid: TileMatrixSet) -> list[float]:
    """The grid's extent in lon/lat (for TileJSON bounds and tileset metadata)."""
    b = grid.bbox
    return [float(b.left), float(b.bottom), float(b.right), float(b.top)]


def intersects(a: list[float] | tuple[float, ...] | None, b: TileBounds) -> bool:
    """Whether a lon/lat extent ``a`` (minx, miny, maxx, maxy) touches the tile's geographic box."""
    if not a:
        return True
    return not (a[2] < b.lon_min or a[0] > b.lon_max or a[3] < b.lat_min or a[1] > b.lat_max)
