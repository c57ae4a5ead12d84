"""Feature SQL: a validated :class:`~features.query.ItemsQuery` -> one statement, and the
GeoJSON it returns.

Features are rendered to GeoJSON text *in PostGIS* (string concatenation of
``ST_AsGeoJSON`` and ``json_build_object``) and joined in Python, which avoids building a
Python object per feature.  The page and ``numberMatched`` come from one statement (one
snapshot), so the count and the page always agree and ``next`` links are exact; the
``count(*)`` runs only when the page is full (a partial page already tells the total), and
once per condition and data version (:class:`CountCache`): the next pages reuse it.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache

import psycopg
from psycopg import errors as pg_errors
from psycopg import sql

from features.query import ItemsQuery, order_sql
from gis_platform.errors import InvalidParameter
from gis_platform.responses import dumps
from layers import edit
from layers.catalog import Layer
from layers.relation import RowSource
from layers.spatial import CrsRef, Frag, output_geometry_sql

_JSON_PAIRS_PER_CALL = 50       # json_build_object takes at most 100 arguments


def properties_json_sql(names: list[str], extra: list[tuple[str, sql.Composable]] = ()) -> sql.Composable:
    """The ``properties`` object as JSON text (chunked: json_build_object takes 100 args)."""
    pairs = [(sql.Literal(n), sql.Identifier(n)) for n in names]
    pairs += [(sql.Literal(k), expr) for k, expr in extra]
    if not pairs:
        return sql.SQL("'{}'")
    chunks = [pairs[i:i + _JSON_PAIRS_PER_CALL] for i in range(0, len(pairs), _JSON_PAIRS_PER_CALL)]
    texts = [sql.SQL("json_build_object({})::text").format(
        sql.SQL(", ").join(sql.SQL("{}, {}").format(k, v) for k, v in chunk)) for chunk in chunks]
    out = texts[0]
    for t in texts[1:]:   # merge '{..}' + '{..}' -> '{.., ..}' (chunks are never empty)
        out = sql.SQL("left({}, -1) || ',' || substr({}, 2)").format(out, t)
    return out


def feature_sql(q: ItemsQuery, extra: list[tuple[str, sql.Composable]] = ()) -> sql.Composable:
    """One feature as GeoJSON text, built in PostGIS."""
    return _feature_sql(q.rows, q.crs, q.precision, q.selected_attributes(), extra)


def _feature_sql(rows: RowSource, crs: CrsRef, precision: int, names: list[str],
                 extra: list[tuple[str, sql.Composable]] = ()) -> sql.Composable:
    geom = output_geometry_sql(crs, precision, rows.geom(), rows.srid)
    return sql.SQL(
        "'{{\"type\":\"Feature\",' || {} || '\"geometry\":' || coalesce({}, 'null') || "
        "',\"properties\":' || {} || '}}'").format(rows.id_json(), geom,
                                                   properties_json_sql(names, extra))


class _Shape:
    """What the SQL text of a layer's statements depends on, hashable (a cache key)."""

    def __init__(self, rows: RowSource) -> None:
        self.rows = rows
        self.key = (rows.geom().as_string(None), rows.id_json().as_string(None), rows.srid,
                    tuple(o.as_string(None) for o in rows.order()))

    def __hash__(self) -> int:
        return hash(self.key)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Shape) and other.key == self.key


@lru_cache(maxsize=512)
def _statement_parts(shape: _Shape, names: tuple[str, ...], crs: CrsRef, precision: int,
                     sortby: tuple[tuple[str, bool], ...],
                     extra: tuple[tuple[str, str], ...]) -> tuple[str, str]:
    """(feature expression, order keys) of a query shape, rendered to SQL text once.

    Composing and rendering these ``sql.Composed`` trees (a ``json_build_object`` pair per
    attribute) cost ~0.3 ms per request, more than a small page's query.  The text is a pure
    function of the key (the layer's geometry and key columns, catalog attribute names,
    CRS, precision, sort keys and the already rendered extra expressions), so a
    re-ingested or altered layer simply gets new keys; identifiers are quoted by
    ``sql.Identifier`` as before and values stay parameters.
    """
    feat = _feature_sql(shape.rows, crs, precision, list(names),
                        [(n, sql.SQL(text)) for n, text in extra])
    return feat.as_string(None), order_sql(list(sortby), shape.rows).as_string(None)


def _parts(q: ItemsQuery, extra: list[tuple[str, Frag]] = ()) -> tuple[str, Frag, str]:
    """(feature expression, FROM item, order keys) of ``q`` as SQL text (the FROM item with
    its parameters: a function layer's arguments)."""
    feat, order = _statement_parts(_Shape(q.rows), tuple(q.selected_attributes()), q.crs,
                                   q.precision, tuple(q.sortby),
                                   tuple((n, f.sql.as_string(None)) for n, f in extra))
    return feat, q.source, order


@dataclass
class Page:
    """One page of features (GeoJSON texts, in order) and the exact number matched."""

    number_matched: int
    features: list[str]

    @property
    def number_returned(self) -> int:
        return len(self.features)


def bad_query(exc: Exception) -> InvalidParameter:
    # Values that pass our checks but PostgreSQL rejects (division by zero, out-of-range
    # numbers, invalid geometry for an operator...): a 400 that names no SQL.
    kind = type(exc).__name__
    hint = {"DivisionByZero": "division by zero", "NumericValueOutOfRange": "a number out of range",
            "InvalidParameterValue": "an invalid value", "DatetimeFieldOverflow": "a date out of range"}
    return InvalidParameter(f"The query cannot be evaluated: {hint.get(kind, 'an invalid value')} "
                            "in the request.")


QUERY_ERRORS = (psycopg.DataError, pg_errors.InternalError_)


class CountCache:
    """Exact ``numberMatched`` values by (layer, data version, condition, values); bounded LRU.

    A client paging through a large filtered result (GDAL, QGIS and OWSLib follow ``next``
    links) asks the same condition again for every page, and a full page of a selective
    filter spends most of its time in ``count(*)``: 45 of 59 ms for 173k matching roads.
    Any write to a layer gives it a new data version (ingest, the permit triggers, indicator
    loads), so a count is never reused across a change, the same contract as the tile cache.
    The row filter of the caller is part of the condition, so callers who see different
    rows never share a count.
    """

    def __init__(self, size: int = 2048) -> None:
        self.size = size
        self._items: OrderedDict[tuple, int] = OrderedDict()
        self._lock = threading.Lock()       # test servers run event loops in threads

    @staticmethod
    def key(layer: Layer, table: str, where: str, params: list) -> tuple | None:
        key = (layer.id, layer.version_tag, table, where,
               tuple(tuple(p) if isinstance(p, list) else p for p in params))
        try:
            hash(key)
        except TypeError:          # a value that cannot key a dict: simply not cached
            return None
        return key

    def get(self, key: tuple | None) -> int | None:
        if key is None:
            return None
        with self._lock:
            hit = self._items.get(key)
            if hit is not None:
                self._items.move_to_end(key)
            return hit

    def put(self, key: tuple | None, count: int) -> None:
        if key is None:
            return
        with self._lock:
            self._items[key] = count
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    async def on_events(self, events: frozenset[tuple[str, str]]) -> None:
        """Drop the counts of layers that changed (their old data versions are never asked
        again; this keeps the memory for the ones that are)."""
        changed = {payload for _, payload in events}
        if "*" in changed:
            self.clear()
            return
        with self._lock:
            for key in [k for k in self._items if k[0] in changed]:
                del self._items[key]


COUNTS = CountCache()


async def fetch_page(conn: psycopg.AsyncConnection, q: ItemsQuery,
                     extra: list[tuple[str, Frag]] = ()) -> Page:
    """Count and fetch one page in a single statement (one snapshot).

    ``extra`` adds computed properties (e.g. a distance) after the layer's attributes.  A
    condition counted before on the same data version (:class:`CountCache`) is not counted
    again: only its page is read.
    """
    where = q.where_frag()
    feat, source, order = _parts(q, extra)
    table = source.sql.as_string(None)
    w = where.sql.as_string(None)
    feat_params = [p for _, frag in extra for p in frag.params]
    # A published relation changes under other systems' writes, which the platform hears
    # of a moment later: its counts are not cached (a page is always counted live).
    cacheable = not q.layer.published
    count_key = COUNTS.key(q.layer, table, w, [*source.params, *where.params]) if cacheable else None
    known = COUNTS.get(count_key)
    page_sql = f"SELECT {feat} AS f FROM {table} WHERE {w} ORDER BY {order} LIMIT %s OFFSET %s"
    if known is not None:
        stmt, params = page_sql, [*feat_params, *source.params, *where.params, q.limit, q.offset]
    else:
        # The page is materialised first; a partial page (or the last one) tells the exact
        # count by itself, and only a full page pays for count(*) (CASE evaluates it lazily).
        stmt = (f"WITH page AS MATERIALIZED ({page_sql}), n AS (SELECT count(*) AS c FROM page) "
                "SELECT CASE WHEN n.c < %s AND (n.c > 0 OR %s = 0) THEN n.c + %s "
                f"ELSE (SELECT count(*) FROM {table} WHERE {w}) END, page.f FROM n LEFT JOIN page ON true")
        params = [*feat_params, *source.params, *where.params, q.limit, q.offset, q.limit, q.offset,
                  q.offset, *source.params, *where.params]
    try:
        cur = await conn.execute(stmt, params)
        rows = await cur.fetchall()
    except QUERY_ERRORS as exc:
        raise bad_query(exc) from None
    if known is not None:
        matched, feats = known, [r[0] for r in rows]
    else:
        matched = int(rows[0][0]) if rows else 0
        feats = [r[1] for r in rows if r[1] is not None]
        COUNTS.put(count_key, matched)
    if q.offset > 0 and q.offset >= matched:
        raise InvalidParameter(f"offset {q.offset} is past the end: {matched} features match.",
                               parameter="offset")
    return Page(matched, feats)


async def fetch_feature(conn: psycopg.AsyncConnection, q: ItemsQuery, feature_id: str) -> str | None:
    """One feature by id (a path segment) as GeoJSON text, or None: no such id, a value
    that cannot be an id of this layer, or a row the row filter hides."""
    cond = q.rows.id_where(feature_id)
    if cond is None:
        return None
    where = q.where_frag()
    feat, source, _ = _parts(q)
    stmt = (f"SELECT {feat} FROM {source.sql.as_string(None)} WHERE {cond.sql.as_string(None)} "
            f"AND {where.sql.as_string(None)} LIMIT 1")
    try:
        cur = await conn.execute(stmt, [*source.params, *cond.params, *where.params])
    except QUERY_ERRORS:       # a composite id part that is not of its column's type
        return None
    row = await cur.fetchone()
    return row[0] if row else None


async def feature_etag(conn: psycopg.AsyncConnection, layer: Layer, feature_id: str) -> str:
    """The ETag of a feature of an editable layer: its latest version (``layers.edit``)."""
    cur = await conn.execute("SELECT version FROM gis_meta.feature_versions WHERE layer_id = %s "
                             f"AND fid = %s AND {edit.CURRENT} ORDER BY version DESC LIMIT 1",
                             (layer.id, feature_id, layer.id))
    row = await cur.fetchone()
    return f'"v{row[0]}"' if row else f'"b{layer.data_version}"'


def collection_bytes(features: list[str], *, matched: int | None, links: list[dict],
                     extra: dict | None = None) -> bytes:
    """A GeoJSON FeatureCollection document from per-feature GeoJSON texts."""

    head = {"type": "FeatureCollection"}
    if matched is not None:
        head["numberMatched"] = matched
    head["numberReturned"] = len(features)
    head["timeStamp"] = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat().replace(
        "+00:00", "Z")
    head.update(extra or {})
    head["links"] = links
    start = dumps(head)[:-1]
    return b"".join((start, b',"features":[', ",".join(features).encode(), b"]}"))
