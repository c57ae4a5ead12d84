"""The SQL of vector tiles (MVT), rendered by PostGIS, one query per tile.

The SQL of each layer is composed once per (layer id, data version, tile matrix set, zoom
band, tuning) and kept in :class:`SqlCache`; a request binds only the envelope and the
zoom-derived numbers.  A composite tile is one statement that concatenates the layers'
``ST_AsMVT`` outputs - an MVT is a sequence of layer messages, so ``a || b`` is a valid tile
holding both layers::

    SELECT COALESCE((SELECT ST_AsMVT(...) FROM ... districts ...), '')
        || COALESCE((SELECT ST_AsMVT(...) FROM ... roads ...), '')

Zoom bands
    *overview* (z < ``tile_overview_below_zoom``, 13 with the platform's settings): only a
    few attributes, the geometry simplified to half a pixel (``ST_Simplify`` in the grid's
    CRS, then snapped to the tile grid by ``ST_AsMVTGeom``), lines and polygons smaller than
    a pixel dropped, and when more than ``tile_overview_max_features`` (4096) qualify the
    largest are kept.
    *mid* (from there to ``tile_detail_from_zoom``, default 15): full geometry, the layer's
    *mid* attributes - what a map styles and labels by (``default_style.mid_attributes``, or
    up to ``tile_mid_attributes`` chosen like the overview ones).  A dense z14 tile of the
    demo's facility lines spent a third of its SQL encoding the eleven attributes nobody
    draws; a client that wants a feature's every attribute asks the feature API by its id.
    *detail* (from ``tile_detail_from_zoom``): every catalogued attribute; ``ST_AsMVTGeom``
    clips and snaps.

Layers are stored in EPSG:4326 (column ``geom``, key ``fid``).  The index filter is
``geom && <the tile's buffered lon/lat box>``: the box is computed in Python with densified
edges (see :func:`tile_server.tms.tile_bounds`) so that the GiST index is used on the
stored column and no row is transformed before it passes the filter.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from dataclasses import dataclass, field, replace

from morecantile import Tile, TileMatrixSet
from psycopg import sql

from gis_platform.sqlfrag import Frag
from layers import selection
from layers.catalog import Layer
from layers.edit import as_of_source
from layers.relation import RowSource
from layers.spatial import metres_per_unit
from tile_server.bands import _NATIVE, band_attributes, is_point_layer
from tile_server.overview_build import SCHEMA
from tile_server.sources import TileTuning
from tile_server.tms import TileBounds, tms_srid


def _attribute_columns(layer: Layer, band: str, tuning: TileTuning) -> list[sql.Composable]:
    types = {a.name: a.type for a in layer.attributes}
    cols = []
    for name in band_attributes(layer, band, tuning):
        ident = sql.Identifier("src", name)
        if types.get(name, "text") in _NATIVE:
            cols.append(sql.SQL("{} AS {}").format(ident, sql.Identifier(name)))
        else:  # dates, timestamps, json...: their text form, the same in every client
            cols.append(sql.SQL("{}::text AS {}").format(ident, sql.Identifier(name)))
    return cols


def _index_filter(rows: RowSource, srid: int) -> sql.Composable:
    """The stored geometry column against the tile's buffered box, in the column's own SRID
    and type (so its GiST index is used and no row is transformed before it passes)."""
    if rows.relation is not None and rows.relation.geography:
        col = sql.Identifier("src", rows.relation.geometry_column)
        return sql.SQL("{} && ST_MakeEnvelope(%(gxmin)s, %(gymin)s, %(gxmax)s, %(gymax)s, 4326)"
                       "::geography").format(col)
    g = rows.geom("src")
    if rows.srid == 4326:
        return sql.SQL("{} && ST_MakeEnvelope(%(gxmin)s, %(gymin)s, %(gxmax)s, %(gymax)s, 4326)").format(g)
    if rows.srid == srid:
        return sql.SQL("{} && ST_MakeEnvelope(%(bxmin)s, %(bymin)s, %(bxmax)s, %(bymax)s, {})").format(
            g, sql.Literal(srid))
    # Another projected SRID (a city's EPSG:5186 table): the buffered tile envelope, its
    # edges densified, transformed once per statement.
    return sql.SQL("{} && ST_Transform(ST_Segmentize(ST_MakeEnvelope(%(bxmin)s, %(bymin)s, %(bxmax)s, "
                   "%(bymax)s, {s}), %(bseg)s), {t})").format(g, s=sql.Literal(srid),
                                                            t=sql.Literal(rows.srid))


def _size_filter(rows: RowSource, layer: Layer) -> tuple[sql.Composable, sql.Composable]:
    """(size expression, its smallest value kept) of a line or polygon in the layer's units:
    length for lines, perimeter for polygons.  Both read the coordinates the row already
    holds, which measured ~20x cheaper per row than ST_XMax/ST_XMin on the bbox."""
    polygon = "polygon" in (layer.geometry_type or "").lower()
    size = sql.SQL("ST_Perimeter({})" if polygon else "ST_Length({})").format(rows.geom("src"))
    if rows.geographic:
        return size, sql.SQL("%(minsize)s")
    if rows.srid in (3857, 3785, 900913, 102100):
        return size, sql.SQL("%(minsize_m)s")
    return size, sql.SQL("%(minsize_ground)s / {}").format(sql.Literal(metres_per_unit(rows.srid)))


def _mvt(layer: Layer, inner: sql.Composable, tuning: TileTuning, with_id: bool) -> sql.Composed:
    fid = sql.SQL(", '__fid'") if with_id else sql.SQL("")
    return sql.SQL(
        "COALESCE((SELECT ST_AsMVT(t.*, {name}, {extent}, '__geom'{fid}) FROM ({inner}) AS t "
        "WHERE t.__geom IS NOT NULL), ''::bytea)").format(
        name=sql.Literal(layer.id), extent=sql.Literal(int(tuning.extent)), inner=inner, fid=fid)


def compose_layer_sql(layer: Layer, tms_id: str, band: str, tuning: TileTuning,
                      row_filter: sql.Composable | None = None, select: bool = False,
                      args_prefix: str | None = None, args_names: tuple[str, ...] = (),
                      as_of_prefix: str | None = None, as_of_generation=None) -> sql.Composed:
    """One layer's ``COALESCE((SELECT ST_AsMVT(...)), '')`` expression over its rows.

    Binds, by name: the tile envelope ``xmin..ymax`` in the grid's CRS, the buffered box
    (``gxmin..gymax`` in lon/lat, ``bxmin..bymax`` and ``bseg`` in the grid's CRS: see
    :func:`_index_filter`), and in the overview band ``tol`` (simplification tolerance in
    grid units) and the smallest kept feature (``minsize`` in degrees, ``minsize_m`` in
    Web-Mercator metres, ``minsize_ground`` in metres on the ground).  ``row_filter`` is the
    caller's row condition (:meth:`gis_platform.access.RowFilter.named`, its parameters named
    in this layer's namespace), ANDed into the WHERE clause.  ``select``: apply the layer's
    selection by class (:mod:`layers.selection`) against the bound zoom ``z``.
    ``args_prefix``: a function layer's arguments (those in ``args_names``; the others take
    the function's defaults), bound as ``%(<prefix><n>)s``.
    """
    rows = layer.rows
    srid = tms_srid(tms_id)
    cols = _attribute_columns(layer, band, tuning)
    mvt_id = rows.mvt_id("src")
    if mvt_id is not None:
        cols.insert(0, sql.SQL("{} AS __fid").format(mvt_id))
    geom = rows.geom_in(srid, "src")
    point = is_point_layer(layer)
    overview = band == "overview" and not point
    if overview:
        geom = sql.SQL("ST_Simplify({}, %(tol)s)").format(geom)
    envelope = sql.SQL("ST_MakeEnvelope(%(xmin)s, %(ymin)s, %(xmax)s, %(ymax)s, {})").format(
        sql.Literal(srid))
    where = [_index_filter(rows, srid)]
    if row_filter is not None:
        where.append(sql.SQL("({})").format(row_filter))
    rule = selection.for_layer(layer) if select else None
    if rule is not None:
        where.append(sql.SQL("{} <= %(z)s").format(rule.expression("src")))
    order = sql.SQL("")
    if overview:
        size, minsize = _size_filter(rows, layer)
        # Sub-pixel features: shorter (or with a smaller outline) than one pixel.
        where.append(sql.SQL("{} >= {}").format(size, minsize))
        # Over the cap, keep the largest features rather than an arbitrary (index-ordered,
        # i.e. spatially clustered) subset that would show as a hole in the map.
        order = sql.SQL(" ORDER BY {} DESC").format(size)
    if as_of_prefix is not None:        # the rows as they were (layers.edit.as_of_source)
        source = Frag(as_of_source(layer, None, named=as_of_prefix, alias=None,
                                   generation=as_of_generation)[0])
    elif rows.is_function:
        source = rows.from_(dict.fromkeys(args_names), named=args_prefix)
    else:
        source = Frag(rows.table())
    inner = sql.SQL(
        "SELECT {cols}ST_AsMVTGeom({geom}, {env}, {extent}, {buffer}, true) AS __geom "
        "FROM {table} AS src WHERE {where}{order} LIMIT {cap}").format(
        cols=sql.SQL("").join(c + sql.SQL(", ") for c in cols), geom=geom, env=envelope,
        extent=sql.Literal(int(tuning.extent)), buffer=sql.Literal(int(tuning.buffer)),
        table=source.sql, where=sql.SQL(" AND ").join(where), order=order,
        cap=sql.Literal(_cap(band, tuning)))
    return _mvt(layer, inner, tuning, mvt_id is not None)


def _cap(band: str, tuning: TileTuning) -> int:
    """Features per layer per tile: fewer at overview zooms (``overview_max_features``)."""
    if band == "overview":
        return int(min(tuning.max_features, tuning.overview_max_features))
    return int(tuning.max_features)


def compose_overview_sql(layer: Layer, table: str, band: str, tuning: TileTuning,
                         select: bool = False) -> sql.Composed:
    """One layer's MVT expression over its overview ``tiles.<table>`` (EPSG:3857, generalised).

    The overview already holds only what its level ships (see :mod:`tile_server.overviews`):
    no transform and no simplification per tile; the index filter is the buffered tile
    envelope ``bxmin..bymax`` in EPSG:3857 and, in the overview band, the precomputed
    ``__size`` drops sub-pixel features (``minsize_m``) and orders the largest first.
    Binds ``xmin..ymax`` (the envelope), ``bxmin..bymax`` and ``minsize_m``; with ``select``
    (the layer selects by class and ``z`` is below its last class zoom) also ``z``, against
    the overview's precomputed ``__minzoom`` column.
    """
    with_id = layer.rows.id_kind == "int"
    cols = ([sql.SQL("src.__fid")] if with_id else []) + _attribute_columns(layer, band, tuning)
    where = [sql.SQL("src.__geom && ST_MakeEnvelope(%(bxmin)s, %(bymin)s, %(bxmax)s, %(bymax)s, 3857)")]
    if select:
        where.append(sql.SQL("src.__minzoom <= %(z)s"))
    order = sql.SQL("")
    if band == "overview" and not is_point_layer(layer):
        where.append(sql.SQL("src.__size >= %(minsize_m)s"))
        order = sql.SQL(" ORDER BY src.__size DESC")
    inner = sql.SQL(
        "SELECT {cols}ST_AsMVTGeom(src.__geom, ST_MakeEnvelope(%(xmin)s, %(ymin)s, %(xmax)s, "
        "%(ymax)s, 3857), {extent}, {buffer}, true) AS __geom FROM {table} AS src WHERE {where}"
        "{order} LIMIT {cap}").format(
        cols=sql.SQL("").join(c + sql.SQL(", ") for c in cols), extent=sql.Literal(int(tuning.extent)),
        buffer=sql.Literal(int(tuning.buffer)), table=sql.Identifier(SCHEMA, table),
        where=sql.SQL(" AND ").join(where), order=order, cap=sql.Literal(_cap(band, tuning)))
    return _mvt(layer, inner, tuning, with_id)


@dataclass(frozen=True)
class LayerPlan:
    """How one layer is read for one tile: its overview table or base table, its row filter.

    ``filter_sql`` names its parameters in the layer's own namespace (``rf<i>_<n>``, from
    :meth:`RowFilter.named`) so that two layers' filters in a composite never collide.
    """

    layer: Layer
    overview: str | None = None            # tiles.<table>, or None: the base table
    level: int | None = None
    overview_snapshot: object | None = field(default=None, compare=False)  # layers.changes.Snapshot
    filter_sql: sql.Composable | None = field(default=None, compare=False)
    filter_params: tuple = ()              # ((name, value), ...)
    filter_key: str = ""                   # RowFilter.key + namespace: identifies filter_sql
    select: bool = False                   # apply the layer's selection by class at this zoom
    args_prefix: str | None = None         # a function layer: its arguments' namespace
    args_names: tuple[str, ...] = ()       # the arguments given (the others: their defaults)
    args_params: tuple = ()                # ((placeholder, value), ...)
    as_of_prefix: str | None = None        # the layer as it was (its time is in args_params)
    #: ... read from the rows an earlier ingest replaced (layers.catalog.Generation), or None.
    as_of_generation: object | None = field(default=None, compare=False)

    def sql_key(self) -> tuple:
        l = self.layer
        return (l.id, l.data_version, l.table_name, self.overview, self.filter_key, self.select,
                self.args_prefix, self.args_names, self.as_of_prefix,
                self.as_of_generation.table if self.as_of_generation is not None else None)

    def base(self) -> LayerPlan:
        """The same plan reading the layer's own rows instead of an overview."""
        return replace(self, overview=None, level=None, overview_snapshot=None)

    def cache_part(self) -> str:
        part = f"{self.layer.id}@{self.layer.data_version}"
        if self.overview:
            part += f"~o{self.level}"
        if self.filter_key:
            part += f"~r{self.filter_key}"
        return part


class SqlCache:
    """Composed statements by (layer ids and versions, grid, band, tuning); bounded LRU.

    A re-ingested layer has a new data version, so its old statements simply stop being
    used and age out.
    """

    def __init__(self, size: int = 512) -> None:
        self.size = size
        self._items: OrderedDict[tuple, sql.Composed | str] = OrderedDict()
        self._lock = threading.Lock()

    def statement(self, layers: list[Layer | LayerPlan], tms_id: str, band: str,
                  tuning: TileTuning) -> str:
        plans = [p if isinstance(p, LayerPlan) else LayerPlan(p) for p in layers]
        key = (tuple(p.sql_key() for p in plans), tms_id, band, tuning.fingerprint())
        with self._lock:
            hit = self._items.get(key)
            if hit is not None:
                self._items.move_to_end(key)
                return hit
        parts = [self._part(p, tms_id, band, tuning) for p in plans]
        # Rendered to text once: composing a Composed into bytes on every execution cost
        # ~0.3 ms per tile.  Identifiers are already quoted by sql.Identifier here.
        stmt = (sql.SQL("SELECT ") + sql.SQL(" || ").join(parts)).as_string(None)
        with self._lock:
            self._items[key] = stmt
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return stmt

    def _part(self, plan: LayerPlan, tms_id: str, band: str, tuning: TileTuning) -> sql.Composed:
        key = (plan.sql_key(), tms_id, band, tuning.fingerprint())
        with self._lock:
            hit = self._items.get(key)
        if hit is None:
            if plan.overview:
                hit = compose_overview_sql(plan.layer, plan.overview, band, tuning, plan.select)
            else:
                hit = compose_layer_sql(plan.layer, tms_id, band, tuning, plan.filter_sql,
                                        plan.select, plan.args_prefix, plan.args_names,
                                        plan.as_of_prefix, plan.as_of_generation)
            with self._lock:
                self._items[key] = hit
        return hit


def tile_params(grid: TileMatrixSet, tile: Tile, bounds: TileBounds, tuning: TileTuning) -> dict:
    """The values bound per request: envelope, filter box, tolerance, smallest feature."""
    px_x = bounds.width / 256.0            # one pixel of a 256 px tile, in grid units
    geo_w = bounds.lon_max - bounds.lon_min
    geo_h = bounds.lat_max - bounds.lat_min
    grow = 1.0 + 2.0 * tuning.buffer / tuning.extent   # the geo box includes the buffer
    bx = bounds.width * tuning.buffer / tuning.extent
    by = bounds.height * tuning.buffer / tuning.extent
    srid = tms_srid(grid.id)
    lat = math.radians((bounds.lat_min + bounds.lat_max) / 2)
    # One pixel in metres on the ground (for layers stored in a projected CRS of their own).
    if srid == 4326:
        ground = px_x * 111_320.0 * math.cos(lat)
    elif srid == 3857:
        ground = px_x * math.cos(lat)
    else:
        ground = px_x
    return {
        "z": tile.z,
        "bseg": max(bounds.width, bounds.height) * grow / 16,
        "minsize_ground": ground * tuning.min_feature_px,
        "xmin": bounds.xmin, "ymin": bounds.ymin, "xmax": bounds.xmax, "ymax": bounds.ymax,
        # The buffered envelope in the grid's CRS (overview tables are filtered on it).
        "bxmin": bounds.xmin - bx, "bymin": bounds.ymin - by,
        "bxmax": bounds.xmax + bx, "bymax": bounds.ymax + by,
        # One pixel in EPSG:3857 metres (overviews' precomputed sizes are in those).
        "minsize_m": px_x * tuning.min_feature_px,
        "gxmin": bounds.lon_min, "gymin": bounds.lat_min,
        "gxmax": bounds.lon_max, "gymax": bounds.lat_max,
        "tol": px_x * tuning.simplify_px,
        # One pixel in degrees, along the axis where a degree is shortest on the tile
        # (latitude in Web-Mercator): conservative, it never drops a feature a pixel long.
        "minsize": min(geo_w, geo_h) / grow / 256.0 * tuning.min_feature_px,
    }
