"""Serving a tile: key -> ETag -> cache -> render once -> compress -> store.

:class:`TileService` is shared by the HTTP routes and the ``tiles seed`` command, so both
fill the same cache with the same keys.  The ETag is derived from the cache key alone
(which includes every data version), so a conditional request is answered 304 without
touching the cache or the database.
"""

from __future__ import annotations

import asyncio
import gzip
import zlib
from collections import OrderedDict
from dataclasses import dataclass

from morecantile import Tile, TileMatrixSet

from gis_platform.access import RowFilter
from gis_platform.principal import Principal
from gis_platform.singleflight import SingleFlight
from layers.catalog import Layer
from tile_server.cache import TileCache, cache_key, key_hash
from tile_server.raster import RasterParams, RasterSource
from tile_server.sources import MVT_MEDIA_TYPE, TileSource, TileTuning
from tile_server.vector import VectorSource
from tile_server.vector_sql import SqlCache

# Tiles are gzipped with ISA-L (PyPI ``isal``: the same deflate format, SIMD-optimised) when
# it is installed, else zlib.  Measured on the large demo's facility tiles: a 21 KB z16 tile
# 99 us at ISA-L level 3 against 370 us at zlib level 4, a 230 KB z14 tile 0.55 ms at level
# 2 against 4.2 ms - for 4-6 % more bytes.  zlib's level 4 / 3 had already been chosen over
# level 6, at which a cold z15 tile spent as long in gzip as in its SQL.  ISA-L level 2
# rather than 3 for every size: over the 300 non-empty z14-z16 tiles of the benchmark's list
# (46 KB raw on average) p50 104 vs 148 us, mean 177 vs 245 us, for 1.6 % more bytes.
try:
    from isal import isal_zlib as _deflate

    GZIP_LEVEL, GZIP_LEVEL_LARGE = 2, 2
except ImportError:  # pragma: no cover - isal is a dependency; zlib keeps the server working
    _deflate = zlib
    GZIP_LEVEL, GZIP_LEVEL_LARGE = 4, 3
_THREAD_COMPRESS_BYTES = 64 * 1024


@dataclass(frozen=True)
class TileResult:
    """A tile as stored: ``body`` is gzip-compressed when ``encoding == 'gzip'``."""

    body: bytes
    media_type: str
    etag: str
    encoding: str | None

    @property
    def empty(self) -> bool:
        return not self.body

    def identity(self) -> bytes:
        """The uncompressed bytes (for clients that do not accept gzip)."""
        return gzip.decompress(self.body) if self.encoding == "gzip" and self.body else self.body


def gzip_bytes(data: bytes) -> bytes:
    # wbits=31: a gzip container (header + CRC), what Content-Encoding: gzip means.
    level = GZIP_LEVEL if len(data) <= _THREAD_COMPRESS_BYTES else GZIP_LEVEL_LARGE
    c = _deflate.compressobj(level, _deflate.DEFLATED, 31)
    return c.compress(data) + c.flush()


class TileService:
    """Process-wide tile machinery: tuning, composed-SQL cache, tile cache, single-flight."""

    def __init__(self, settings, db, cache: TileCache | None = None) -> None:
        self.settings = settings
        self.db = db
        self.tuning = TileTuning.from_settings(settings.tiles)
        self._fingerprint = self.tuning.fingerprint()
        self.overviews = None        # an OverviewManager, set by the app or the seeder
        self.sql_cache = SqlCache()
        self.cache = cache or TileCache.from_settings(settings)
        self.raster_limiter = asyncio.Semaphore(int(settings.tiles.raster_threads))
        self._rendering = SingleFlight()     # cache hash -> the render under way
        self._sources: OrderedDict[tuple, TileSource] = OrderedDict()

    def source(self, layers: list[Layer], filters: dict[str, RowFilter] | None = None,
               raster: RasterParams | None = None, args: dict | None = None,
               as_of=None) -> TileSource:
        """The tile source of already access-checked ``layers`` for callers with these row
        ``filters`` (and, for a raster layer, these rendering parameters).

        Built once per (layer versions, filters, parameters) and kept: a source memoises its
        per-zoom plans (which overview level, which statement), so the next tile of the same
        map reuses them.  A new data version is a new key; old sources age out of the LRU.
        """
        key = (tuple((l.id, l.data_version, l.table_name, l.changes.signature_all) for l in layers),
               tuple(sorted((k, v.key) for k, v in (filters or {}).items())),
               raster.key() if raster is not None else None,
               repr(sorted((k, sorted(v.items())) for k, v in (args or {}).items())), as_of)
        hit = self._sources.get(key)
        if hit is not None:
            self._sources.move_to_end(key)
            return hit
        if raster is not None:
            source: TileSource = RasterSource(layers[0], raster, self.settings.resolved_data_dir(),
                                              self.raster_limiter)
        else:
            source = VectorSource(layers, self.db, self.tuning, self.sql_cache,
                                  overviews=self.overviews, filters=filters, args=args or None,
                                  as_of=as_of)
        self._sources[key] = source
        while len(self._sources) > 512:
            self._sources.popitem(last=False)
        return source

    async def drain(self) -> None:
        """Wait for the queued disk writes (shutdown, the seeder, tests)."""
        await asyncio.to_thread(self.cache.disk.flush)

    def key(self, source: TileSource, grid: TileMatrixSet, tile: Tile, params_key: str,
            access_key: str) -> str:
        """Everything that changes the bytes, as one string."""
        return cache_key(source.media_type, source.cache_parts(grid, tile), grid.id, tile.z,
                         tile.x, tile.y, params_key, access_key, self._fingerprint)

    @staticmethod
    def etag_of(h: str) -> str:
        """The ETag of the tile whose cache key hashes to ``h``."""
        # Weak: the gzip and identity representations share it (same content, RFC 9110 8.8.1).
        return f'W/"{h[:32]}"'

    async def tile(self, source: TileSource, grid: TileMatrixSet, tile: Tile, *,
                   params_key: str = "", principal: Principal | None = None,
                   access_key: str | None = None, h: str | None = None) -> TileResult:
        """The tile from cache, or rendered once (concurrent callers share one render).

        ``h``: the hash of the cache key when the caller already computed it (the routes
        do, for the ETag), so the key is built and hashed once per request.
        """
        if h is None:
            if access_key is None:
                access_key = principal.access_key if principal is not None else "public"
            h = key_hash(self.key(source, grid, tile, params_key, access_key))
        etag = self.etag_of(h)
        encoding = "gzip" if source.media_type == MVT_MEDIA_TYPE else None
        store = source.cacheable
        stored = self.cache.get(h) if store else None
        if stored is not None:
            return TileResult(stored, source.media_type, etag, encoding if stored else None)
        return await self._rendering.run(h, lambda: self._render(source, grid, tile, h, etag,
                                                                 encoding, store))

    async def _render(self, source: TileSource, grid: TileMatrixSet, tile: Tile, h: str,
                      etag: str, encoding: str | None, store: bool = True) -> TileResult:
        raw = await source.get_tile(grid, tile)
        if encoding == "gzip" and raw:
            body = (await asyncio.to_thread(gzip_bytes, raw)
                    if len(raw) > _THREAD_COMPRESS_BYTES else gzip_bytes(raw))
        else:
            body = raw
        # Memory now (the next request hits it); the disk write is queued for the cache's
        # writer thread, so a cold tile does not wait for the file system.
        if store:
            self.cache.memory.put(h, body)
            self.cache.disk.put_later(h, body)
        return TileResult(body, source.media_type, etag, encoding if body else None)

    def store_as(self, source: TileSource, grid: TileMatrixSet, tile: Tile, params_key: str,
                 access_key: str, body: bytes) -> None:
        """Store already-rendered bytes under another access key (the seeder; blocking I/O)."""
        self.cache.put(key_hash(self.key(source, grid, tile, params_key, access_key)), body)

    def cached(self, source: TileSource, grid: TileMatrixSet, tile: Tile, params_key: str,
               access_key: str) -> bool:
        """Whether the disk store already has this tile (the seeder skips those)."""
        return self.cache.disk.contains(key_hash(self.key(source, grid, tile, params_key, access_key)))
