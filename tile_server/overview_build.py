"""Pre-generalised overviews of big vector layers, one table per zoom level.

Reading a z10 tile of a 300k-line layer from the base table means reading, transforming and
sorting every line of the city for every tile.  An *overview* is a copy of the layer made
for one zoom level ``L`` (schema ``tiles``), holding exactly what tiles of zooms just
below and at ``L`` need:

* geometry already in EPSG:3857 (no ``ST_Transform`` per tile), snapped to the MVT grid of
  zoom ``L`` and simplified to ``tile_simplify_px`` of a pixel there;
* at *overview-band* levels (``L < tile_overview_below_zoom``) only the attributes that
  band ships (:func:`tile_server.bands.overview_attributes`), lines of equal attributes
  merged per grid cell (``ST_LineMerge``: a network of 80 m segments becomes a few long
  lines instead of vanishing segment by segment), and features under ``tile_min_feature_px``
  at ``L`` dropped; at detail-band levels every feature and attribute, generalised only;
* a ``size`` column (length, or perimeter, in metres of EPSG:3857) so the per-tile
  sub-pixel filter and "largest first" order cost nothing, and a GiST index;
* for a layer that selects features by class (:mod:`layers.selection`), a ``minzoom``
  column (the zoom each row shows from) and only the rows shown at or below ``L``: at z12
  the demo roads' level holds arterials and collectors, a quarter of the vertices.

Levels come from ``tile_overview_zooms`` (default 8, 10, 11, 12, 13, 14, 16): a tile at
zoom ``z`` reads the smallest level ``L >= z``; above the last level the base table is read.
Levels from z14 on (14, and 16 serving z15-z16) are full-resolution copies: only
transformed to EPSG:3857 and snapped to their own MVT grid, nothing simplified or dropped;
level 14 keeps only the mid band's attributes, so its rows are narrower (a z14 tile's SQL
measured -14 % mean against reading level 16).  Each level is built from the next finer one
(already in 3857, already snapped), so only the finest level scans the base table.

Versioning: an overview belongs to one ``(layer id, data version, spec)``; ``spec`` hashes
the tuning and the level list.  The tile path looks an overview up by the registry's
*current* data version, so after a re-ingest the old overview is never read again - the base
table serves until the new one is built.  A build runs in one transaction that also records
the table in ``tiles.overviews`` and sends ``NOTIFY gis_tiles``, so a listed overview is
always complete and every worker learns of it at once.

Who builds: each worker's :class:`OverviewManager` hears the catalog events (new data
versions, overviews built elsewhere); a layer with at least ``overview_min_features`` features
and no overview for its current version is built in the background by whichever worker
takes the layer's advisory lock first.  ``gis-platform tiles overviews build`` does the
same from the command line, and ``tiles seed`` builds first.
"""

from __future__ import annotations

import hashlib
import math
import logging
import time
from dataclasses import dataclass

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from gis_platform.config import TileSettings
from gis_platform.db.connections import connect_async
from gis_platform.db.events import TILES
from layers import selection
from layers.catalog import Layer
from tile_server.bands import band_attributes, zoom_band
from tile_server.sources import TileTuning

log = logging.getLogger("tile_server.overviews")

SCHEMA = "tiles"
CHANNEL = TILES
# Bump when the overview SQL changes what an overview holds: part of every spec.
OVERVIEW_FORMAT = 8
WEB_MERCATOR_HALF = 20037508.342789244       # metres from the origin to the edge of EPSG:3857
DEFAULT_ZOOMS = (8, 10, 11, 12, 13, 14, 16)
# Levels from this zoom on are full-resolution copies (EPSG:3857, snapped to their own MVT
# grid, nothing simplified): they only save the per-tile ST_Transform (~20-25 % of a z14-z16
# tile's SQL, measured on the large demo city).
FULL_RESOLUTION_FROM = 14


def pixel_m(z: int) -> float:
    """One pixel of a 256 px WebMercatorQuad tile at zoom ``z``, in EPSG:3857 metres."""
    return 2 * WEB_MERCATOR_HALF / (256 * 2 ** z)


@dataclass(frozen=True)
class OverviewPlan:
    """Which levels exist, which layers get them, and whether workers build them."""

    zooms: tuple[int, ...] = DEFAULT_ZOOMS
    min_features: int = 50_000
    auto_build: bool = True
    build_timeout_s: int = 1800

    @classmethod
    def from_settings(cls, tiles: TileSettings) -> OverviewPlan:
        zooms = tuple(sorted({int(z) for z in tiles.overview_zooms if 0 <= int(z) <= 24}))
        return cls(zooms=zooms, min_features=tiles.overview_min_features,
                   auto_build=tiles.overview_auto_build,
                   build_timeout_s=tiles.overview_build_timeout_s)

    def level_for(self, z: int) -> int | None:
        """The overview level serving zoom ``z`` (the smallest level >= z), or None."""
        for level in self.zooms:
            if level >= z:
                return level
        return None

    def levels_for(self, layer: Layer) -> list[int]:
        """Levels worth building for ``layer``: those serving some zoom in its range."""
        out, prev = [], -1
        for level in self.zooms:
            lo, hi = prev + 1, level            # zooms this level serves
            if hi >= layer.minzoom and lo <= layer.maxzoom:
                out.append(level)
            prev = level
        return out

    def wants(self, layer: Layer) -> bool:
        return (layer.has_rows and not layer.rows.is_function and bool(self.zooms)
                and layer.feature_count >= self.min_features)


def spec_for(tuning: TileTuning, plan: OverviewPlan) -> str:
    """A short hash of everything that shapes an overview's content."""
    text = f"ov{OVERVIEW_FORMAT}|{tuning.fingerprint()}|{','.join(map(str, plan.zooms))}"
    return hashlib.sha1(text.encode()).hexdigest()[:10]


def table_name_for(layer: Layer, zoom: int, spec: str, build: int = 0) -> str:
    """``ov_<layer>_<version>[_<build>]_z<zoom>_<spec>``: derived from catalog values only,
    <= 63 chars.  ``build`` tells apart rebuilds of one version (a published relation's rows
    changed under it)."""
    b = f"_{int(build):x}" if build else ""
    return f"ov_{layer.id[:22]}_{int(layer.data_version)}{b}_z{int(zoom)}_{spec[:8]}"


def _geometry_family(layer: Layer) -> str:
    g = (layer.geometry_type or "").lower()
    return "point" if "point" in g else "polygon" if "polygon" in g else "line"


def build_statement(layer: Layer, zoom: int, tuning: TileTuning, target: str,
                    source: str | None, *, within: tuple[float, float, float, float] | None = None,
                    select_only: bool = False) -> sql.Composed:
    """``CREATE TABLE tiles.<target> AS ...`` for level ``zoom``.

    ``source``: the finer overview table to derive from (already EPSG:3857, holding at least
    the attributes this level needs), or None to read the layer's base table.  ``within``:
    read only the source rows whose box meets this EPSG:3857 box; ``select_only``: the
    ``SELECT`` alone (an incremental update inserts its rows: :func:`patch_layer`).
    """

    band = zoom_band(zoom, tuning)
    attrs = band_attributes(layer, band, tuning)
    if band == "mid":
        # a mid level may also serve overview-band zooms below it: keep their attributes too
        attrs += [a for a in band_attributes(layer, "overview", tuning) if a not in attrs]
    px = pixel_m(zoom)
    grid = px * 256 / tuning.extent            # the MVT grid of zoom ``zoom``
    tol = px * tuning.simplify_px
    minsize = px * tuning.min_feature_px
    family = _geometry_family(layer)
    rows = layer.rows
    if source is None:
        src = rows.table()
        geom = rows.geom_in(3857, "s")
        fid = rows.mvt_id("s") or sql.SQL("NULL::bigint")
    else:
        src = sql.Identifier(SCHEMA, source)
        geom = sql.SQL("s.__geom")
        fid = sql.SQL("s.__fid")
    if within is not None:
        box = sql.SQL("ST_MakeEnvelope({}, {}, {}, {}, 3857)").format(*(sql.Literal(float(v)) for v in within))
        if source is None:
            if rows.srid != 3857:
                box = sql.SQL("ST_Transform(ST_Segmentize({}, {}), {})").format(
                    box, sql.Literal((within[2] - within[0]) / 8), sql.Literal(rows.srid))
            src = sql.SQL("(SELECT * FROM {} AS s0 WHERE {} && {})").format(src, rows.geom("s0"), box)
        else:
            src = sql.SQL("(SELECT * FROM {} AS s0 WHERE s0.__geom && {})").format(src, box)
    cols = [sql.Identifier(a) for a in attrs]
    attr_list = sql.SQL("").join(sql.SQL(", {}").format(c) for c in cols)
    tgt = sql.Identifier(SCHEMA, target)
    head = sql.SQL("") if select_only else sql.SQL("CREATE TABLE {} AS ").format(tgt)
    # Selection by class (layers.selection): each row keeps the zoom it shows from, and a
    # level holds only the rows shown at or below it.
    rule = selection.for_layer(layer)
    mz = sql.SQL("")
    mz_sel = sql.SQL("")
    src_where = sql.SQL("")
    if rule is not None:
        expr = rule.expression("s") if source is None else sql.SQL("s.__minzoom")
        mz_sel = sql.SQL(", {}::smallint AS __minzoom").format(expr)
        src_where = sql.SQL(" WHERE {} <= {}").format(expr, sql.Literal(int(zoom)))
        mz = sql.SQL(", __minzoom")
    if family == "point":
        # Points are not generalised: the copy saves the per-tile transform only (and at
        # overview levels keeps at most overview_max_features per tile, spread by a hash).
        if band == "overview":
            return sql.SQL(
                "{head}SELECT __fid{attrs}{mz}, __geom, __size FROM (SELECT "
                "p.*, row_number() OVER (PARTITION BY {cell} ORDER BY md5(ST_AsBinary(p.__geom))) "
                "AS __rank FROM (SELECT {fid} AS __fid{sattrs}{mz_sel}, {geom}::geometry(Geometry, 3857) "
                "AS __geom, 0::double precision AS __size FROM {src} AS s{src_where}) AS p) AS r "
                "WHERE __rank <= {budget} ORDER BY __geom").format(
                head=head, tgt=tgt, fid=fid, attrs=attr_list, mz=mz,
                sattrs=sql.SQL("").join(sql.SQL(", s.{}").format(c) for c in cols),
                geom=geom, src=src, mz_sel=mz_sel, src_where=src_where,
                cell=_tile_of(sql.SQL("p.__geom"), zoom),
                budget=sql.Literal(int(tuning.overview_max_features)))
        return sql.SQL("{head}SELECT {fid} AS __fid{attrs}{mz_sel}, "
                       "{geom}::geometry(Geometry, 3857) AS __geom, "
                       "0::double precision AS __size FROM {src} AS s{src_where} ORDER BY {pos}").format(
            head=head, tgt=tgt, fid=fid, attrs=sql.SQL("").join(sql.SQL(", s.{}").format(c) for c in cols),
            geom=geom, src=src, mz_sel=mz_sel, src_where=src_where,
            pos=sql.Literal(2 + len(cols) + (rule is not None)))   # the geom column
    size = sql.SQL("ST_Perimeter(g)" if family == "polygon" else "ST_Length(g)")
    snapped = sql.SQL("ST_SnapToGrid({geom}, {grid})").format(geom=geom, grid=sql.Literal(grid))
    if band == "overview" and family == "line":
        # Merge lines of equal attributes per grid cell into chains (ST_LineMerge joins
        # segments meeting end to end), drop the chains shorter than a pixel, simplify what
        # is left: a street continues as one visible line where its 80 m segments would
        # each have been dropped, and isolated sub-pixel stubs go.
        cell = px * 256 / 2
        # Snapped to whole pixels of this level: segments that share a pixel row collapse
        # into one (ST_Union dissolves the duplicates), stubs shorter than a pixel vanish.
        snapped = sql.SQL("ST_SnapToGrid({geom}, {grid})").format(geom=geom, grid=sql.Literal(px))
        names = [*cols, sql.Identifier("__minzoom")] if rule is not None else cols
        a = sql.SQL("").join(sql.SQL(", s.{}").format(c) for c in names)
        a_src = sql.SQL("").join(sql.SQL(", s.{}").format(c) for c in cols) + mz_sel
        inner = sql.SQL(
            "SELECT min(p.__fid) AS __fid{pattrs}, ST_Simplify(ST_Collect(p.g), {tol}) AS g FROM ("
            " SELECT q.*, row_number() OVER (PARTITION BY {tile} ORDER BY ST_Length(q.g) DESC, "
            " md5(ST_AsBinary(q.g))) AS __rank FROM ("
            " SELECT m.__fid{mattrs}, (ST_Dump(m.g)).geom AS g FROM ("
            "  SELECT min(s.__fid) AS __fid{a}, ST_LineMerge(ST_Union(s.g)) AS g"
            "  FROM (SELECT {fid} AS __fid{a_src}, (ST_Dump({snapped})).geom AS g FROM {src} AS s{src_where})"
            "  AS s WHERE NOT ST_IsEmpty(s.g)"
            "  GROUP BY floor(ST_XMin(s.g) / {cell}), floor(ST_YMin(s.g) / {cell}){a}) AS m"
            " ) AS q WHERE ST_Length(q.g) >= {minsize}"
            # The chains a tile of this level keeps: the longest overview_max_features (ties
            # spread by a hash): what a 256-pixel tile can show of a dense network.
            ") AS p WHERE p.__rank <= {budget} GROUP BY p.__fid{pattrs}").format(
            a=a, a_src=a_src, src_where=src_where, fid=fid,
            pattrs=sql.SQL("").join(sql.SQL(", p.{}").format(c) for c in names),
            mattrs=sql.SQL("").join(sql.SQL(", m.{}").format(c) for c in names),
            tol=sql.Literal(tol), snapped=snapped, src=src, cell=sql.Literal(cell),
            minsize=sql.Literal(minsize), budget=sql.Literal(int(tuning.overview_max_features)),
            tile=_tile_of(sql.SQL("q.g"), zoom))
        keep = sql.SQL(" WHERE NOT ST_IsEmpty(g)")
    elif zoom >= FULL_RESOLUTION_FROM:
        # A full-resolution copy: transformed and snapped to the MVT grid of ``zoom`` (which
        # ST_AsMVTGeom applies anyway at that zoom), nothing simplified or dropped.
        inner = sql.SQL("SELECT {fid} AS __fid{attrs}{mz_sel}, {snapped} AS g FROM {src} AS s{src_where}").format(
            fid=fid, attrs=sql.SQL("").join(sql.SQL(", s.{}").format(c) for c in cols),
            snapped=snapped, src=src, mz_sel=mz_sel, src_where=src_where)
        keep = sql.SQL(" WHERE NOT ST_IsEmpty(g)")
    else:
        # One row per feature; at overview-band levels sub-pixel features are dropped.
        inner = sql.SQL("SELECT {fid} AS __fid{attrs}{mz_sel}, ST_Simplify({snapped}, {tol}, true) AS g "
                        "FROM {src} AS s{src_where}").format(
            fid=fid, attrs=sql.SQL("").join(sql.SQL(", s.{}").format(c) for c in cols),
            snapped=snapped, tol=sql.Literal(tol), src=src, mz_sel=mz_sel, src_where=src_where)
        keep = (sql.SQL(" WHERE {size} >= {minsize}").format(size=size, minsize=sql.Literal(minsize))
                if band == "overview" else sql.SQL(" WHERE NOT ST_IsEmpty(g)"))
    # Rows written in the geometry's B-tree order (a space-filling curve): the features of
    # one tile then sit on a few heap pages instead of one page each - a dense z16 tile
    # read 30 pages instead of 206; the benchmark's z14-z16 statements ran 1.06-1.25x
    # faster from memory and 2x from disk (bench/tiles/RESULTS.md, run 13's notes).
    if band == "overview":
        # At most overview_max_features per tile of this level: the largest, ties spread
        # over the tile (a hash of the geometry, not the rows' order, which is clustered).
        # A tile of the level then reads a few thousand rows and sorts nothing big.
        return sql.SQL(
            "{head}SELECT __fid{attrs}{mz}, g::geometry(Geometry, 3857) AS __geom, "
            "__size FROM (SELECT m.*, {size} AS __size, row_number() OVER (PARTITION BY {cell} "
            "ORDER BY {size} DESC, md5(ST_AsBinary(g))) AS __rank FROM ({inner}) AS m{keep}) AS r "
            "WHERE __rank <= {budget} ORDER BY g").format(
            head=head, tgt=tgt, attrs=attr_list, mz=mz, size=size, inner=inner, keep=keep,
            cell=_tile_of(sql.SQL("g"), zoom), budget=sql.Literal(int(tuning.overview_max_features)))
    return sql.SQL("{head}SELECT __fid{attrs}{mz}, g::geometry(Geometry, 3857) AS __geom, "
                   "{size} AS __size FROM ({inner}) AS m{keep} ORDER BY g").format(
        head=head, tgt=tgt, attrs=attr_list, mz=mz, size=size, inner=inner, keep=keep)


def _tile_of(geom: sql.Composable, zoom: int) -> sql.Composable:
    """The WebMercatorQuad tile (x, y) of zoom ``zoom`` holding the centre of ``geom``'s box."""
    tile = sql.Literal(2 * WEB_MERCATOR_HALF / 2 ** int(zoom))
    return sql.SQL("floor((ST_XMin({g}) + ST_XMax({g})) / 2 / {t}), "
                   "floor((ST_YMin({g}) + ST_YMax({g})) / 2 / {t})").format(g=geom, t=tile)


@dataclass(frozen=True)
class OverviewInfo:
    table_name: str
    layer_id: str
    data_version: int
    zoom: int
    features: int
    vertices: int
    source_features: int
    build_ms: int
    #: The snapshot the level was built in (``pg_snapshot`` text): a row change whose
    #: transaction it does not see is not in the overview.
    snapshot: str | None = None


async def _fetch_layer(conn: psycopg.AsyncConnection, layer_id: str) -> Layer | None:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute("SELECT * FROM gis_meta.layers WHERE id = %s", (layer_id,))
        row = await cur.fetchone()
    return Layer.model_validate(row) if row else None


async def list_overviews(conn: psycopg.AsyncConnection, spec: str | None = None) -> list[OverviewInfo]:
    """Recorded overviews (of one spec, or all)."""
    q = ("SELECT table_name, layer_id, data_version, zoom, features, vertices, source_features, "
         "build_ms, snapshot::text FROM tiles.overviews")
    args: tuple = ()
    if spec is not None:
        q += " WHERE spec = %s"
        args = (spec,)
    cur = await conn.execute(q + " ORDER BY layer_id, data_version, zoom", args)
    return [OverviewInfo(*r) for r in await cur.fetchall()]


async def build_layer(conninfo: str, layer_id: str, tuning: TileTuning, plan: OverviewPlan, *,
                      force: bool = False, rebuild: bool = False) -> list[OverviewInfo]:
    """Build every missing level of ``layer_id``'s current data version; returns those built.

    Takes the layer's advisory lock (another builder of the same layer: returns at once);
    each level is one transaction that checks the data version under a lock on the base
    table, so an overview is never recorded under a version it was not built from.
    ``force`` builds even under the size threshold; ``rebuild`` builds every level again
    (the rows of a published relation changed since).  Old versions' overviews of the layer
    are dropped once the current set is complete.
    """
    spec = spec_for(tuning, plan)
    built: list[OverviewInfo] = []
    async with await connect_async(conninfo, autocommit=True) as conn:
        await conn.execute(sql.SQL("SET statement_timeout = {}").format(
            sql.Literal(int(plan.build_timeout_s) * 1000)))
        layer = await _fetch_layer(conn, layer_id)
        if layer is None or not layer.has_rows or layer.rows.is_function:
            return built
        if not force and not plan.wants(layer):
            return built
        lock = f"tiles-overviews:{layer_id}"
        cur = await conn.execute("SELECT pg_try_advisory_lock(hashtext(%s))", (lock,))
        if not (await cur.fetchone())[0]:
            log.info("overview build of %s already running elsewhere", layer_id)
            return built
        try:
            existing = {} if rebuild else {
                o.zoom: (o.table_name, o.snapshot) for o in await list_overviews(conn, spec)
                if o.layer_id == layer_id and o.data_version == layer.data_version}
            source: tuple[str, str | None] | None = None
            build = int(time.time() * 10) % (1 << 32) if rebuild else 0
            for zoom in sorted(plan.levels_for(layer), reverse=True):   # finest first
                if zoom in existing:
                    source = existing[zoom]
                    continue
                info = await _build_level(conn, layer, zoom, tuning, spec, source, build)
                if info is None:       # the layer changed under us: a later pass builds it
                    return built
                built.append(info)
                existing[zoom] = source = (info.table_name, info.snapshot)
            await _drop_stale(conn, layer_id, layer.data_version, spec)
        finally:
            await conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", (lock,))
    return built


async def _build_level(conn: psycopg.AsyncConnection, layer: Layer, zoom: int, tuning: TileTuning,
                       spec: str, source: tuple[str, str | None] | None,
                       build: int = 0) -> OverviewInfo | None:
    """One level, from the layer's rows or from ``source`` (a finer level: ``(table,
    snapshot)``, whose snapshot the new level inherits: it holds what that one held)."""
    target = table_name_for(layer, zoom, spec, build)
    t0 = time.perf_counter()
    # REPEATABLE READ (+ for an ingested table, the lock first): the version read and the copy
    # see one snapshot, and a replace (table swap) cannot happen in between.  The snapshot is
    # recorded: changes to a published relation it does not see are not in this level.
    async with conn.transaction():
        await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        if not layer.published:
            await conn.execute(sql.SQL("LOCK TABLE {} IN ACCESS SHARE MODE").format(layer.table()))
        cur = await conn.execute("SELECT data_version, pg_current_snapshot()::text FROM gis_meta.layers "
                                 "WHERE id = %s", (layer.id,))
        row = await cur.fetchone()
        if row is None or int(row[0]) != int(layer.data_version):
            return None
        snapshot = row[1] if source is None else source[1]
        tgt = sql.Identifier(SCHEMA, target)
        await conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(tgt))
        await conn.execute(build_statement(layer, zoom, tuning, target,
                                           source[0] if source is not None else None))
        await conn.execute(sql.SQL("CREATE INDEX ON {} USING gist (__geom)").format(tgt))
        await conn.execute(sql.SQL("ANALYZE {}").format(tgt))
        cur = await conn.execute(sql.SQL("SELECT count(*), coalesce(sum(ST_NPoints(__geom)), 0) "
                                         "FROM {}").format(tgt))
        features, vertices = await cur.fetchone()
        ms = int((time.perf_counter() - t0) * 1000)
        # A rebuild of the same version replaces the level it supersedes.
        cur = await conn.execute(
            "DELETE FROM tiles.overviews WHERE layer_id = %s AND data_version = %s AND zoom = %s "
            "AND spec = %s AND table_name <> %s RETURNING table_name",
            (layer.id, layer.data_version, zoom, spec, target))
        for (old,) in await cur.fetchall():
            await conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(SCHEMA, old)))
        await conn.execute(
            "INSERT INTO tiles.overviews (table_name, layer_id, data_version, zoom, spec, features, "
            "vertices, source_features, build_ms, snapshot) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, "
            "%s, %s::pg_snapshot) "
            "ON CONFLICT (table_name) DO UPDATE SET features = EXCLUDED.features, "
            "vertices = EXCLUDED.vertices, build_ms = EXCLUDED.build_ms, built_at = now(), "
            "snapshot = EXCLUDED.snapshot",
            (target, layer.id, layer.data_version, zoom, spec, features, vertices,
             layer.feature_count, ms, snapshot))
        await conn.execute(sql.SQL("NOTIFY {}, {}").format(sql.Identifier(CHANNEL),
                                                           sql.Literal(layer.id)))
    log.info("overview built", extra={"layer": layer.id, "zoom": zoom, "table": target,
                                      "features": features, "vertices": vertices, "ms": ms})
    return OverviewInfo(target, layer.id, layer.data_version, zoom, features, vertices,
                        layer.feature_count, ms, snapshot)


async def _drop_stale(conn: psycopg.AsyncConnection, layer_id: str | None,
                      keep_version: int | None, keep_spec: str = "") -> int:
    """Drop overviews of older versions of ``layer_id`` (or, with None, of deleted layers)."""
    if layer_id is None:
        cur = await conn.execute(
            "SELECT table_name FROM tiles.overviews o WHERE NOT EXISTS "
            "(SELECT 1 FROM gis_meta.layers l WHERE l.id = o.layer_id)")
    else:
        # Older versions at once; other specs (settings changed) after a grace period, in
        # case workers with the old settings are still running.
        cur = await conn.execute(
            "SELECT table_name FROM tiles.overviews WHERE layer_id = %s AND (data_version <> %s "
            "OR (spec <> %s AND built_at < now() - interval '10 minutes'))",
            (layer_id, keep_version, keep_spec))
    names = [r[0] for r in await cur.fetchall()]
    for name in names:
        async with conn.transaction():
            await conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(SCHEMA, name)))
            await conn.execute("DELETE FROM tiles.overviews WHERE table_name = %s", (name,))
    if names:
        await conn.execute(sql.SQL("NOTIFY {}, 'dropped'").format(sql.Identifier(CHANNEL)))
    return len(names)


async def drop_overviews(conninfo: str, layer_id: str) -> int:
    """Drop every overview of ``layer_id`` (the CLI)."""
    async with await connect_async(conninfo, autocommit=True) as conn:
        return await _drop_stale(conn, layer_id, -1)


# --- incremental updates ------------------------------------------------------------------------
def _mercator(lon: float, lat: float) -> tuple[float, float]:
    lat = max(-85.0511, min(85.0511, lat))
    x = lon * WEB_MERCATOR_HALF / 180.0
    y = math.log(math.tan(math.pi / 4 + math.radians(lat) / 2)) * WEB_MERCATOR_HALF / math.pi
    return x, y


def patch_regions(boxes: list[tuple[float, float, float, float]], zoom: int, merged: bool = True
                  ) -> list[tuple[tuple[float, float, float, float], tuple[float, float, float, float]]]:
    """For changes in ``boxes`` (lon/lat), the ``(core, halo)`` EPSG:3857 boxes an update of
    level ``zoom`` redoes: ``core`` the whole tiles of the level over a change - at a level
    whose lines are merged per cell (``merged``), over the change and a tile around it, since
    a changed row collects a feature's chains across cells - and ``halo`` the source rows the
    core's rows are made from: a tile wider (merged: whole cells whose rows can reach the
    core), else half a tile (room for the source CRS's box)."""
    t = 2 * WEB_MERCATOR_HALF / 2 ** int(zoom)
    # A merged row collects the chains of one feature across cells: it reaches a cell and a
    # feature's length beyond where it changed (a test compares every level with a rebuild).
    reach = t if merged else 0.0
    margin = t if merged else t / 2
    out = []
    for lon0, lat0, lon1, lat1 in boxes:
        x0, y0 = _mercator(lon0, lat0)
        x1, y1 = _mercator(lon1, lat1)
        ix0, iy0 = math.floor((x0 - reach) / t), math.floor((y0 - reach) / t)
        ix1, iy1 = math.floor((x1 + reach) / t), math.floor((y1 + reach) / t)
        core = (ix0 * t, iy0 * t, (ix1 + 1) * t, (iy1 + 1) * t)
        out.append((core, (core[0] - margin, core[1] - margin, core[2] + margin, core[3] + margin)))
    return out


def merges_lines(layer: Layer, zoom: int, tuning: TileTuning) -> bool:
    """Whether level ``zoom`` of ``layer`` merges lines per grid cell (see build_statement)."""
    return _geometry_family(layer) == "line" and zoom_band(zoom, tuning) == "overview"


def _centre_in(box: tuple[float, float, float, float]) -> sql.Composable:
    """Rows whose box centre lies in ``box`` (the tile :func:`_tile_of` assigns them to)."""
    x0, y0, x1, y1 = (sql.Literal(float(v)) for v in box)
    # (the box test first: the level's GiST index finds the candidates)
    return sql.SQL("__geom && ST_MakeEnvelope({x0}, {y0}, {x1}, {y1}, 3857) AND "
                   "(ST_XMin(__geom) + ST_XMax(__geom)) / 2 >= {x0} AND (ST_XMin(__geom) + ST_XMax(__geom)) / 2 < {x1} "
                   "AND (ST_YMin(__geom) + ST_YMax(__geom)) / 2 >= {y0} AND (ST_YMin(__geom) + ST_YMax(__geom)) / 2 < {y1}"
                   ).format(x0=x0, x1=x1, y0=y0, y1=y1)


#: More separate changes than this since the overviews were made: rebuild them instead.
MAX_PATCH_BOXES = 64


async def patch_layer(conninfo: str, layer_id: str, tuning: TileTuning, plan: OverviewPlan,
                      boxes: list[tuple[float, float, float, float]]) -> list[OverviewInfo] | None:
    """Update the current overviews of ``layer_id`` where its rows changed (``boxes``, lon/lat):
    each level, finest first, has the rows of the tiles over a change deleted and made again
    from the level below (the finest from the layer's rows), in one REPEATABLE READ
    transaction whose snapshot the levels then record.  The rest of each level is untouched,
    so an edit of one main costs a few tiles' worth of work instead of a rebuild of the city.

    Rows are redone per tile of the level, so a level equals a full build there as long as a
    merged chain does not reach more than a tile beyond its cell (overview levels' tiles are
    9.8 km and more; a full rebuild, when a re-ingest makes a new version, starts afresh).
    None: nothing to patch (no complete set of levels, another builder busy, the layer
    changed as a whole) - the caller builds instead."""
    spec = spec_for(tuning, plan)
    async with await connect_async(conninfo, autocommit=True) as conn:
        await conn.execute(sql.SQL("SET statement_timeout = {}").format(
            sql.Literal(int(plan.build_timeout_s) * 1000)))
        layer = await _fetch_layer(conn, layer_id)
        if layer is None or not layer.has_rows or layer.rows.is_function or not boxes:
            return None
        existing = {o.zoom: o for o in await list_overviews(conn, spec)
                    if o.layer_id == layer_id and o.data_version == layer.data_version}
        levels = plan.levels_for(layer)
        if not levels or any(z not in existing for z in levels):
            return None
        lock = f"tiles-overviews:{layer_id}"
        cur = await conn.execute("SELECT pg_try_advisory_lock(hashtext(%s))", (lock,))
        if not (await cur.fetchone())[0]:
            return None
        t0 = time.perf_counter()
        out: list[OverviewInfo] = []
        try:
            async with conn.transaction():
                await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                if not layer.published:
                    await conn.execute(sql.SQL("LOCK TABLE {} IN ACCESS SHARE MODE").format(layer.table()))
                cur = await conn.execute("SELECT data_version, pg_current_snapshot()::text "
                                         "FROM gis_meta.layers WHERE id = %s", (layer.id,))
                row = await cur.fetchone()
                if row is None or int(row[0]) != int(layer.data_version):
                    return None
                snapshot = row[1]
                source: str | None = None
                for zoom in sorted(levels, reverse=True):        # finest first
                    info = existing[zoom]
                    tgt = sql.Identifier(SCHEMA, info.table_name)
                    features, vertices = info.features, info.vertices
                    for core, halo in patch_regions(boxes, zoom, merges_lines(layer, zoom, tuning)):
                        cur = await conn.execute(sql.SQL(
                            "WITH d AS (DELETE FROM {} WHERE {} RETURNING ST_NPoints(__geom) AS n) "
                            "SELECT count(*), coalesce(sum(n), 0) FROM d").format(tgt, _centre_in(core)))
                        gone, gone_v = await cur.fetchone()
                        select = build_statement(layer, zoom, tuning, info.table_name, source,
                                                 within=halo, select_only=True)
                        cur = await conn.execute(sql.SQL(
                            "WITH i AS (INSERT INTO {} SELECT * FROM ({}) AS x WHERE {} "
                            "RETURNING ST_NPoints(__geom) AS n) SELECT count(*), coalesce(sum(n), 0) FROM i"
                        ).format(tgt, select, _centre_in(core)))
                        made, made_v = await cur.fetchone()
                        features += made - gone
                        vertices += made_v - gone_v
                    source = info.table_name
                    out.append(OverviewInfo(info.table_name, layer.id, layer.data_version, zoom, features,
                                            vertices, layer.feature_count, info.build_ms, snapshot))
                    await conn.execute("UPDATE tiles.overviews SET snapshot = %s::pg_snapshot, features = %s, "
                                       "vertices = %s WHERE table_name = %s",
                                       (snapshot, features, vertices, info.table_name))
                await conn.execute(sql.SQL("NOTIFY {}, {}").format(sql.Identifier(CHANNEL),
                                                                   sql.Literal(layer.id)))
        finally:
            await conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", (lock,))
    log.info("overviews patched", extra={"layer": layer_id, "changes": len(boxes),
                                         "ms": int((time.perf_counter() - t0) * 1000)})
    return out
