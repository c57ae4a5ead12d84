"""A vector tile source: one layer or a composite of several, rendered by PostGIS into one
MVT (the statements are composed by :mod:`tile_server.vector_sql`, the bands chosen by
:mod:`tile_server.bands`)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from morecantile import Tile, TileMatrixSet
from psycopg import errors as pg_errors

from layers import selection
from layers.catalog import Layer
from layers.edit import generation_at
from tile_server.bands import zoom_band
from tile_server.metadata import vector_tilejson
from tile_server.sources import MVT_MEDIA_TYPE, TileOutsideZoomRange, TileTuning
from tile_server.tms import TileBounds, intersects, tile_bounds
from tile_server.vector_sql import LayerPlan, SqlCache, tile_params


@dataclass
class VectorSource:
    """One vector layer or a composite of several, rendered by PostGIS into one MVT.

    ``layers`` must already be access-checked by the caller (``Registry.readable``).
    ``overviews`` (a :class:`tile_server.overviews.OverviewManager`) lets WebMercatorQuad
    tiles read pre-generalised tables; ``filters`` maps a layer id to the caller's
    :class:`~gis_platform.access.RowFilter`.  A layer with a row filter always reads its base table
    (an overview has merged features and few columns: it cannot be filtered per row).
    """

    layers: list[Layer]
    db: object                      # gis_platform.db.Database (or anything with .connection)
    tuning: TileTuning
    sql_cache: SqlCache
    media_type: str = MVT_MEDIA_TYPE
    FORMATS = ("mvt", "pbf")
    overviews: object | None = None
    filters: dict | None = None
    #: Function layers' arguments: ``{layer id: {argument: typed value}}``.
    args: dict | None = None
    #: The layers as they were then (editable layers' history; no overviews).
    as_of: object | None = None
    _plans: dict = field(default_factory=dict, repr=False)
    _plans_now: dict = field(default_factory=dict, repr=False)

    @property
    def id(self) -> str:
        return ",".join(l.id for l in self.layers)

    @property
    def cacheable(self) -> bool:
        """False when a layer's rows can change unseen (a function of unknown inputs): its
        tiles are rendered for every request and never stored."""
        return not any(l.relation is not None and l.relation.tracking == "none" for l in self.layers)

    @property
    def live(self) -> bool:
        """Rows change in place (published relations, editable layers): clients should
        revalidate."""
        return any(l.published or l.editable for l in self.layers)

    def plan(self, grid: TileMatrixSet, z: int, *, past: bool = True) -> list[LayerPlan]:
        """How each layer is read at zoom ``z`` (memoised: the cache key and the render agree).
        ``past=False``: as if no ``as_of`` were asked (the present, where it equals the past)."""
        if not past and self.as_of is not None:
            return replace(self, as_of=None, _plans=self._plans_now).plan(grid, z)
        key = (grid.id, z, self.overviews.generation if self.overviews is not None else 0)
        hit = self._plans.get(key)
        if hit is not None:
            return hit
        plans = []
        for i, l in enumerate(self.layers):
            rule = selection.for_layer(l)
            select = rule is not None and z < rule.max_zoom
            fn: dict = {}
            if l.rows.is_function:
                prefix = f"fa{i}_"
                given = (self.args or {}).get(l.id) or {}
                values = l.rows.from_(given, named=prefix).params[0]
                fn = {"args_prefix": prefix, "args_params": tuple(values.items()),
                      "args_names": tuple(a.name for a in l.relation.args if a.name in given)}
            if self.as_of is not None and l.editable and not l.published:
                prefix = f"ao{i}_"
                gen, lo, hi = generation_at(l, self.as_of)
                fn = {"as_of_prefix": prefix, "as_of_generation": gen, "args_params": (
                    (prefix + "l", l.id), (prefix + "t", self.as_of), (prefix + "lo", lo),
                    (prefix + "hi", hi))}
            rows = (self.filters or {}).get(l.id)
            if rows is not None:
                prefix = f"rf{i}_"
                cond, params = rows.named("src", prefix)
                plans.append(LayerPlan(l, filter_sql=cond, filter_params=tuple(params.items()),
                                       filter_key=prefix + rows.key, select=select, **fn))
                continue
            ov = None
            if self.overviews is not None and grid.id == "WebMercatorQuad" and not fn:
                ov = self.overviews.table_for(l, z)
            plans.append(LayerPlan(l, overview=ov[1], level=ov[0], overview_snapshot=ov[2],
                                   select=select) if ov else LayerPlan(l, select=select, **fn))
        if len(self._plans) > 256:           # old generations
            self._plans.clear()
        self._plans[key] = plans
        return plans

    def tile_plans(self, grid: TileMatrixSet, tile: Tile, bounds: TileBounds) -> list[LayerPlan]:
        """The plans of this tile: an overview that misses a row change touching the tile
        is passed over for the layer's own rows (until the overview is rebuilt); a layer
        asked ``as_of`` a time after which nothing touching the tile changed is read as it is
        now (the same bytes, the same cache entry, overviews and all)."""
        plans = self.plan(grid, tile.z)
        box = bounds.geo_box
        if any(p.as_of_prefix for p in plans):
            now = None
            for i, p in enumerate(plans):
                if p.as_of_prefix and self._unchanged_since(p.layer, box):
                    now = now or self.plan(grid, tile.z, past=False)
                    plans = [*plans[:i], now[i], *plans[i + 1:]]
        if not any(p.overview and len(p.layer.changes) for p in plans):
            return plans
        return [p.base() if p.overview and p.layer.changes.unseen(p.overview_snapshot, box) else p
                for p in plans]

    def _unchanged_since(self, layer: Layer, box) -> bool:
        """Whether nothing in ``box`` changed since :attr:`as_of`: the layer as a whole has
        not (its catalog record is older) and no change of its log after then touches it."""
        if layer.updated_at is None or layer.updated_at > self.as_of:
            return False
        t = self.as_of.timestamp()
        return not any(c.at > t and (c.box is None or (c.box[0] <= box[2] and c.box[2] >= box[0]
                                                        and c.box[1] <= box[3] and c.box[3] >= box[1]))
                       for c in layer.changes.changes)

    def cache_parts(self, grid: TileMatrixSet | None = None, tile: Tile | None = None) -> str:
        """Ids and data versions; per tile also which overview level and row filter apply,
        the row changes touching the tile, and a function layer's arguments."""
        if grid is None or tile is None:
            return ",".join(f"{l.id}@{l.data_version}" for l in self.layers)
        if not any(len(l.changes) for l in self.layers) and not self.args and self.as_of is None:
            return ",".join(p.cache_part() for p in self.plan(grid, tile.z))   # the common case
        bounds = tile_bounds(grid, tile, self.tuning.buffer / self.tuning.extent)
        box = bounds.geo_box
        parts = []
        for p in self.tile_plans(grid, tile, bounds):
            part = p.cache_part()
            sig = p.layer.changes.signature(box)
            if sig:
                part += "~c" + sig
            if p.args_params:
                part += "~a" + repr(p.args_params)
            if p.as_of_prefix:               # the past does not change: no change signature
                part = f"{p.cache_part()}~t{p.args_params[1][1].isoformat()}"
            parts.append(part)
        return ",".join(parts)

    def tilejson(self, grid: TileMatrixSet, base_url: str, query: str = "") -> dict:

        return vector_tilejson(self.layers, grid, base_url, self.tuning, query)

    def layers_for(self, grid: TileMatrixSet, tile: Tile, bounds: TileBounds) -> list[Layer]:
        """The layers that can have features in this tile (zoom range and extent).

        A single layer asked outside its zoom range is a 404 (TileOutsideZoomRange); in a
        composite such a layer is left out, and only a composite none of whose layers
        covers the zoom is a 404.
        """
        in_zoom = self._in_zoom(tile)
        # The catalog extent is exact after every ingest (and grown by every row change since):
        # a tile beyond it is empty, no query.
        return [l for l in in_zoom if intersects(l.current_extent, bounds)]

    def _in_zoom(self, tile: Tile) -> list[Layer]:
        in_zoom = [l for l in self.layers if l.minzoom <= tile.z <= l.maxzoom]
        if not in_zoom:
            if len(self.layers) == 1:
                l = self.layers[0]
                raise TileOutsideZoomRange(
                    f"Layer '{l.id}' has tiles from zoom {l.minzoom} to {l.maxzoom}; "
                    f"zoom {tile.z} was asked.")
            raise TileOutsideZoomRange(
                f"None of the layers {self.id} has tiles at zoom {tile.z} ("
                + ", ".join(f"{l.id}: {l.minzoom}-{l.maxzoom}" for l in self.layers) + ").")
        return in_zoom

    def check_zoom(self, grid: TileMatrixSet, tile: Tile) -> None:
        """Raise TileOutsideZoomRange early (before cache lookups) when no layer covers z."""
        self._in_zoom(tile)

    async def get_tile(self, grid: TileMatrixSet, tile: Tile) -> bytes:
        """The uncompressed MVT, ``b""`` when no feature falls in the tile."""
        bounds = tile_bounds(grid, tile, self.tuning.buffer / self.tuning.extent)
        layers = {l.id for l in self.layers_for(grid, tile, bounds)}
        if not layers:
            return b""
        plans = [p for p in self.tile_plans(grid, tile, bounds) if p.layer.id in layers]
        band = zoom_band(tile.z, self.tuning)
        values = tile_params(grid, tile, bounds, self.tuning)
        for p in plans:
            values.update(p.filter_params)
            values.update(p.args_params)
        try:
            return await self._run(self.sql_cache.statement(plans, grid.id, band, self.tuning), values)
        except pg_errors.UndefinedTable:
            # An overview dropped under us (superseded by a newer version): forget it and
            # read the base tables; correct, only slower.
            if not any(p.overview for p in plans) or self.overviews is None:
                raise
            for p in plans:
                if p.overview:
                    self.overviews.forget(p.overview)
            base = [p.base() for p in plans]
            return await self._run(self.sql_cache.statement(base, grid.id, band, self.tuning), values)

    async def _run(self, stmt: str, values: dict) -> bytes:
        return await self.db.tiles.fetch_bytes(stmt, values)
