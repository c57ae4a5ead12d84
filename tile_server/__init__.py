"""Vector (MVT) and raster tiles, TileJSON / OGC API Tiles metadata, and the tile cache.

The thin public surface: :class:`TileService` (render + cache, shared by routes and the
seeder), :func:`get_tms` and the :class:`TileSource` protocol.  Routes live in
``tile_server.api``; the ``gis-platform tiles`` commands in ``tile_server.cli``.
"""

from tile_server.service import TileService
from tile_server.sources import TileSource, TileTuning
from tile_server.tms import TileOutsideBounds, get_tms, tms_ids

__all__ = ["TileOutsideBounds", "TileService", "TileSource", "TileTuning", "get_tms", "tms_ids"]
