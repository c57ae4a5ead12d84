"""The one tile-source protocol, and the tuning every source reads from settings.

Routes, the cache, the seeder and the metadata builders are written once against
:class:`TileSource`; :class:`tile_server.vector.VectorSource` (PostGIS -> MVT) and
:class:`tile_server.raster.RasterSource` (COG -> PNG/WebP) implement it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from morecantile import Tile, TileMatrixSet

from gis_platform.config import TileSettings
from gis_platform.errors import NotFound

# Bump when the bytes a given (data version, tile, params) renders to change (new SQL,
# new simplification...): it is part of every cache key and ETag, so a deploy of a new
# tile format never serves tiles rendered by the old code.
TILE_FORMAT_VERSION = 4

MVT_MEDIA_TYPE = "application/vnd.mapbox-vector-tile"


@dataclass(frozen=True)
class TileTuning:
    """Settings that shape tile bytes (all part of the cache key via :meth:`fingerprint`)."""

    extent: int = 4096                # MVT grid units per tile side
    buffer: int = 64                  # clip buffer, in extent units
    max_features: int = 20_000        # per layer per tile
    overview_max_features: int = 4096  # per layer per tile, overview band
    overview_below_zoom: int = 13     # below this zoom: few attributes, simplified geometry
    overview_attributes: int = 3      # how many attributes overview tiles keep
    detail_from_zoom: int = 15        # from this zoom every attribute; below it (and from
                                      # overview_below_zoom) the layer's "mid" attributes
    mid_attributes: int = 6           # how many attributes mid-band tiles keep
    min_feature_px: float = 1.0       # overview: drop lines/polygons smaller than this (256 px tiles)
    simplify_px: float = 0.5          # overview: simplification tolerance (256 px tiles)
    max_layers: int = 10              # layers in one composite tile

    @classmethod
    def from_settings(cls, tiles: TileSettings) -> TileTuning:
        """The tuning of the ``tiles`` settings group."""
        return cls(
            extent=tiles.extent, buffer=tiles.buffer, max_features=tiles.max_features,
            overview_max_features=min(tiles.overview_max_features, tiles.max_features),
            # overview_max_zoom (#4) raises the band: zooms up to it are overview zooms.
            overview_below_zoom=max(tiles.overview_below_zoom, tiles.overview_max_zoom + 1),
            overview_attributes=tiles.overview_attributes, detail_from_zoom=tiles.detail_from_zoom,
            mid_attributes=tiles.mid_attributes, min_feature_px=tiles.min_feature_px,
            simplify_px=tiles.simplify_px, max_layers=tiles.max_layers)

    def fingerprint(self) -> str:
        """A short string that changes whenever a setting that shapes tile bytes changes."""
        return (f"f{TILE_FORMAT_VERSION}e{self.extent}b{self.buffer}m{self.max_features}"
                f"v{self.overview_max_features}"
                f"o{self.overview_below_zoom}a{self.overview_attributes}"
                f"d{self.detail_from_zoom}i{self.mid_attributes}"
                f"p{self.min_feature_px:g}s{self.simplify_px:g}")


class TileOutsideZoomRange(NotFound):
    title, type_slug = "Tile outside the layer's zoom range", "tile-outside-zoom-range"


@runtime_checkable
class TileSource(Protocol):
    """Something that renders tiles: one vector layer, a composite of several, or a raster.

    ``get_tile`` returns the tile bytes *uncompressed*, or ``b""`` for an empty tile (no
    feature or no pixel in it); the cache layer compresses and stores them.
    """

    id: str
    media_type: str
    #: The tile formats (URL extensions / ``f=``) this kind of source serves.
    FORMATS: tuple[str, ...]
    #: False: tiles are rendered for every request, never stored (inputs change unseen).
    cacheable: bool
    #: True: the data changes in place, so clients should revalidate (``live_cache_control``).
    live: bool

    def check_zoom(self, grid: TileMatrixSet, tile: Tile) -> None:
        """Raise :class:`~tile_server.vector.TileOutsideZoomRange` (404) when no layer of the
        source has tiles at ``tile.z``."""
        ...

    def cache_parts(self, grid: TileMatrixSet | None = None, tile: Tile | None = None) -> str:
        """What identifies this source's bytes: ids and data versions of its layers (and, for
        a given tile, anything else that decides its bytes: overview level, row filter)."""
        ...

    def tilejson(self, grid: TileMatrixSet, base_url: str, query: str = "") -> dict:
        """A TileJSON 3.0 document for this source in ``grid``."""
        ...

    async def get_tile(self, grid: TileMatrixSet, tile: Tile) -> bytes:
        """The tile's bytes (``b""`` when empty)."""
        ...
