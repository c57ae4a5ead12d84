"""A layer's record as a row-scoped caller may see it: the count and extent of *their* rows.

A key limited to some rows (an operator's owner, a district) must not learn the size or the
spread of the rest from the catalog, the collection document or TileJSON.  Computed in
PostGIS once per (layer, data version, row filter) and kept in a small LRU: a new data
version makes a new entry, so a figure is never stale.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from psycopg import sql

from gis_platform.principal import Principal
from layers.catalog import Layer
from layers.registry import Registry

_MAX = 1024
_cache: OrderedDict[tuple, tuple[int, list[float] | None]] = OrderedDict()
_lock = threading.Lock()


async def as_seen_by(layer: Layer, principal: Principal, db) -> Layer:
    """``layer`` itself, or, for a caller limited to some of its rows, a copy whose
    ``feature_count`` and ``extent`` describe those rows only."""
    rows = Registry.rows_of(principal, layer)
    if rows is None or not layer.has_rows or layer.rows.is_function:
        return layer
    key = (layer.id, layer.version_tag, rows.key)
    with _lock:
        hit = _cache.get(key)
        if hit is not None:
            _cache.move_to_end(key)
    if hit is None:
        cond = rows.frag()
        src = layer.rows
        stmt = sql.SQL("SELECT count(*), ST_Extent({}) FROM {} WHERE {}").format(
            src.geom(), src.table(), cond.sql)
        box = sql.SQL("e::geometry") if src.srid == 4326 else sql.SQL(
            "ST_Transform(ST_Segmentize(ST_SetSRID(e::geometry, {}), greatest(ST_XMax(e) - ST_XMin(e), "
            "ST_YMax(e) - ST_YMin(e), 1e-9) / 8), 4326)").format(sql.Literal(src.srid))
        async with db.connection(read_only=True) as conn:
            cur = await conn.execute(
                sql.SQL("SELECT n, ST_XMin(b), ST_YMin(b), ST_XMax(b), ST_YMax(b) FROM ({}) s(n, e), "
                        "LATERAL (SELECT {} AS b) t").format(stmt, box), cond.params)
            n, *box = await cur.fetchone()
        hit = (int(n), [float(v) for v in box] if box[0] is not None else None)
        with _lock:
            _cache[key] = hit
            while len(_cache) > _MAX:
                _cache.popitem(last=False)
    return layer.model_copy(update={"feature_count": hit[0], "extent": hit[1]})


async def all_as_seen_by(layers: list[Layer], principal: Principal, db) -> list[Layer]:
    return [await as_seen_by(l, principal, db) for l in layers]
