"""Raster tiles (PNG/WebP) from catalogued Cloud-Optimized GeoTIFFs, through rio-tiler.

A raster layer's catalog row holds ``raster_path`` (the COG) and ``raster_info`` (bands,
dtype, nodata, statistics).  Parameters:

* ``bidx`` - band indexes, 1-based (default: the first three bands of an RGB(A) byte image,
  else band 1);
* ``rescale`` - ``min,max`` (one per band, repeat the parameter; default: the band's
  2nd-98th percentile from the catalog for non-byte data);
* ``colormap`` - a rio-tiler colormap name (``viridis``, ``terrain``...), one band only.

Pixels outside the data (nodata, or beyond the raster) are transparent; a tile with no
data pixel at all is empty (``b""`` - the route answers 204, like an empty vector tile).
rio-tiler and GDAL are blocking, so tiles render in worker threads, a few at a time.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from pathlib import Path

from morecantile import Tile, TileMatrixSet

from gis_platform.errors import ConfigurationError, InvalidParameter, LayerNotFound
from layers.catalog import Layer
from tile_server.metadata import raster_tilejson
from tile_server.sources import TileOutsideZoomRange

MEDIA_TYPES = {"png": "image/png", "webp": "image/webp"}
MAX_BANDS = 4


@dataclass(frozen=True)
class RasterParams:
    """Validated, normalized raster parameters (their ``key()`` goes into the cache key)."""

    fmt: str
    bidx: tuple[int, ...]
    rescale: tuple[tuple[float, float], ...]
    colormap: str | None

    def key(self) -> str:
        rs = ";".join(f"{a:g},{b:g}" for a, b in self.rescale)
        return f"{self.fmt}|b{','.join(map(str, self.bidx))}|r{rs}|c{self.colormap or ''}"


def _band_count(layer: Layer) -> int:
    info = layer.raster_info or {}
    return int(info.get("count") or len(info.get("bands") or []) or 1)


def _band_info(layer: Layer, index: int) -> dict:
    for band in (layer.raster_info or {}).get("bands") or []:
        if int(band.get("index", 0)) == index:
            return band
    return {}


def parse_raster_params(layer: Layer, fmt: str, bidx: str | None, rescale: list[str],
                        colormap: str | None) -> RasterParams:
    """Check the query against the layer; InvalidParameter (400) with a clear message."""
    fmt = fmt.lower()
    if fmt not in MEDIA_TYPES:
        raise InvalidParameter(f"Unknown raster format {fmt!r}; use png or webp.")
    count = _band_count(layer)
    if bidx:
        try:
            bands = tuple(int(b) for b in bidx.split(","))
        except ValueError:
            raise InvalidParameter(f"bidx must be comma-separated band numbers, got {bidx!r}.") from None
        bad = [b for b in bands if not 1 <= b <= count]
        if bad or not bands or len(bands) > MAX_BANDS:
            raise InvalidParameter(f"bidx {bidx!r}: layer '{layer.id}' has bands 1..{count}; "
                                   f"choose 1 to {MAX_BANDS} of them.")
    else:
        dtype = _band_info(layer, 1).get("dtype", "uint8")
        bands = (1, 2, 3) if count >= 3 and dtype == "uint8" else (1,)
    pairs: list[tuple[float, float]] = []
    for item in rescale:
        try:
            lo, hi = (float(v) for v in item.split(","))
        except ValueError:
            raise InvalidParameter(f"rescale must be 'min,max', got {item!r}.") from None
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise InvalidParameter(f"rescale {item!r}: min must be smaller than max.")
        pairs.append((lo, hi))
    if pairs and len(pairs) not in (1, len(bands)):
        raise InvalidParameter(f"Give one rescale range, or one per band ({len(bands)}).")
    if not pairs:
        for b in bands:
            info = _band_info(layer, b)
            stats = info.get("statistics") or {}
            if info.get("dtype", "uint8") != "uint8" and stats.get("p2") is not None \
                    and stats["p98"] > stats["p2"]:
                pairs.append((float(stats["p2"]), float(stats["p98"])))
        if pairs and len(pairs) != len(bands):
            pairs = []
    if colormap is not None:
        from rio_tiler.colormap import cmap

        colormap = colormap.lower()
        if colormap not in cmap.list():
            raise InvalidParameter(f"Unknown colormap {colormap!r}; try viridis, magma, terrain, "
                                   "greys, rdylgn (any matplotlib name).")
        if len(bands) != 1:
            raise InvalidParameter("A colormap applies to one band: add bidx=<band>.")
    return RasterParams(fmt, bands, tuple(pairs), colormap)


def _render(path: str, grid: TileMatrixSet, tile: Tile, p: RasterParams) -> bytes:
    """Blocking: read, rescale, colour and encode one tile (run in a thread)."""
    from rio_tiler.colormap import cmap
    from rio_tiler.errors import TileOutsideBounds
    from rio_tiler.io import Reader

    size = int(grid.matrix(tile.z).tileWidth)
    try:
        with Reader(path, tms=grid) as src:
            img = src.tile(tile.x, tile.y, tile.z, tilesize=size, indexes=p.bidx)
    except TileOutsideBounds:
        return b""
    if not img.mask.any():           # every pixel is nodata or outside: an empty tile
        return b""
    if p.rescale:
        ranges = p.rescale if len(p.rescale) == img.count else p.rescale * img.count
        img = img.rescale(in_range=ranges)
    elif img.data.dtype.name != "uint8":
        img = img.rescale(in_range=[(float(img.data.min()), float(img.data.max()) or 1.0)] * img.count)
    colormap = cmap.get(p.colormap) if p.colormap else None
    return img.render(add_mask=True, img_format="PNG" if p.fmt == "png" else "WEBP",
                      colormap=colormap)


@dataclass
class RasterSource:
    """One raster layer (its COG) as a tile source."""

    layer: Layer
    params: RasterParams
    data_dir: Path
    limiter: asyncio.Semaphore | None = None   # shared per process: bounds GDAL threads
    FORMATS = ("png", "webp")
    cacheable = True
    live = False

    @property
    def id(self) -> str:
        return self.layer.id

    @property
    def media_type(self) -> str:
        return MEDIA_TYPES[self.params.fmt]

    def cache_parts(self, grid: TileMatrixSet | None = None, tile: Tile | None = None) -> str:
        return f"{self.layer.id}@{self.layer.data_version}"

    def check_zoom(self, grid: TileMatrixSet, tile: Tile) -> None:
        if not self.layer.minzoom <= tile.z <= self.layer.maxzoom:
            raise TileOutsideZoomRange(f"Layer '{self.layer.id}' has tiles from zoom "
                                       f"{self.layer.minzoom} to {self.layer.maxzoom}; zoom "
                                       f"{tile.z} was asked.")

    def path(self) -> str:
        if not self.layer.raster_path:
            raise LayerNotFound(f"Layer '{self.layer.id}' has no raster.")
        p = Path(self.layer.raster_path)
        if not p.is_absolute():
            p = self.data_dir / p
        if not p.exists():
            raise ConfigurationError(f"The raster file of layer '{self.layer.id}' is missing on "
                                     "this server; re-ingest the layer.")
        return str(p)

    def tilejson(self, grid: TileMatrixSet, base_url: str, query: str = "") -> dict:

        return raster_tilejson(self.layer, grid, base_url, self.params.fmt, query)

    async def get_tile(self, grid: TileMatrixSet, tile: Tile) -> bytes:
        path = self.path()
        if self.limiter is None:
            return await asyncio.to_thread(_render, path, grid, tile, self.params)
        async with self.limiter:
            return await asyncio.to_thread(_render, path, grid, tile, self.params)
