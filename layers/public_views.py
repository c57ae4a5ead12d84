"""Generalized public views: a public aggregate of a restricted layer.

A restricted layer (exact positions of underground facilities) can still publish what the
public may know - how many assets and how many metres of them lie in each district or in
each hexagon cell - as a separate **public** catalog layer built from it.

Rules:

* Cells are the polygons of a districts layer (``by="district"``) or a hexagonal grid
  built with ``ST_HexagonGrid`` in EPSG:5179 (Korea Unified, metres; ``by="hex500"`` = 500 m
  edge; any ``hex<metres>`` from 100 to 10,000).
* Per cell: ``asset_count`` (distinct source features touching the cell), ``length_m`` of
  lines clipped to the cell (geodesic), ``area_m2`` for polygon sources.
* **Minimum count**: a cell with fewer than ``min_count`` assets (k, at least 2) is
  suppressed - it is not in the public layer at all - so no cell describes a single asset.
  The number of suppressed cells is stated in the layer's description.
* The public layer's metadata does not name the source layer (its id is itself internal);
  the CLI prints it.  Re-running replaces the view (new data version) - schedule it after
  each re-ingest of the source, e.g. nightly.

The view is built by whoever runs it with the database credentials (the CLI), never over
HTTP, and is an ordinary layer afterwards: tiles, features, exports as for any public layer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import psycopg
from psycopg import sql

from gis_platform.db.connections import connect
from gis_platform.errors import InvalidParameter, LayerNotFound
from layers.catalog import Layer, get_layer, validate_layer_id
from layers.ingest import ingest_geodataframe
from layers.spatial import as_geography

_HEX_RE = re.compile(r"^hex(\d{3,5})$")
_LABELS = ("name", "name_ko", "district_name", "sgg_nm", "code", "district_code")


@dataclass
class PublishReport:
    """What was published."""

    layer_id: str
    source: str
    by: str
    min_count: int
    cells: int
    suppressed: int
    mode: str


def parse_by(by: str) -> tuple[str, int | None]:
    """``district`` or ``hex<metres>`` -> (kind, edge length)."""
    by = (by or "").strip().lower()
    if by == "district":
        return "district", None
    m = _HEX_RE.match(by)
    if m and 100 <= int(m.group(1)) <= 10_000:
        return "hex", int(m.group(1))
    raise InvalidParameter(f"--by {by!r}: use 'district' or 'hex<metres>' (100-10000), e.g. hex500.")


def _cells_sql(kind: str, size: int | None, src: Layer, districts: Layer | None) -> sql.Composable:
    """``cells(cell_id, label, geom)`` in EPSG:4326."""
    if kind == "district":
        d = districts.rows
        label = next((c for c in _LABELS if districts.attribute(c) is not None), None)
        lab = sql.SQL("{}::text").format(sql.Identifier(label)) if label else \
            sql.SQL("({})::text").format(d.fid())
        return sql.SQL("SELECT {} AS cell_id, {} AS label, {} AS geom FROM {}").format(
            d.fid(), lab, d.geom_in(4326), d.table())
    # The grid covers the source's extent, in metres (EPSG:5179), then back to lon/lat.
    r = src.rows
    return sql.SQL(
        "SELECT row_number() OVER (ORDER BY h.i, h.j) AS cell_id, "
        "'hex ' || h.i || ',' || h.j AS label, ST_Transform(h.geom, 4326) AS geom "
        "FROM ST_HexagonGrid({size}, (SELECT ST_Transform(ST_SetSRID(ST_Extent({g}), {srid}), 5179) "
        "FROM {t})) AS h").format(size=sql.Literal(float(size)), t=r.table(), g=r.geom(),
                                  srid=sql.Literal(r.srid))


def aggregate_rows(conn: psycopg.Connection, src: Layer, kind: str, size: int | None,
                   districts: Layer | None, min_count: int) -> tuple[list[tuple], int]:
    """(rows of (cell_id, label, asset_count, length_m, area_m2, wkb), suppressed cells)."""
    r = src.rows
    family = (src.geometry_type or "").replace("Multi", "")
    clip = sql.SQL("CASE WHEN ST_CoveredBy({g}, c.g) THEN {g} ELSE ST_Intersection({g}, c.g) END").format(
        g=r.geom("s"))
    length = (sql.SQL("sum(ST_Length({}))").format(as_geography(clip, r.srid))
              if family == "LineString" else sql.SQL("NULL::float8"))
    area = (sql.SQL("sum(ST_Area({}))").format(as_geography(clip, r.srid))
            if family == "Polygon" else sql.SQL("NULL::float8"))
    n = sql.SQL("count(DISTINCT {})").format(r.fid("s")) if r.id_kind != "none" else sql.SQL("count(*)")
    # The cells go to the source's SRID, so the join uses the source's spatial index.
    stmt = sql.SQL(
        "WITH cells AS ({cells}), agg AS ("
        " SELECT c.cell_id, c.label, {n} AS n, {length} AS length_m, {area} AS area_m2 "
        " FROM (SELECT cell_id, label, {cg} AS g FROM cells) c JOIN {t} s ON ST_Intersects({sg}, c.g)"
        " GROUP BY c.cell_id, c.label) "
        "SELECT agg.cell_id, agg.label, agg.n, round(agg.length_m::numeric, 1)::float8, "
        "round(agg.area_m2::numeric, 1)::float8, ST_AsBinary(cells.geom) "
        "FROM agg JOIN cells USING (cell_id) ORDER BY agg.cell_id").format(
        cells=_cells_sql(kind, size, src, districts), length=length, area=area, n=n,
        cg=r.to_layer_srid(sql.SQL("geom")), t=r.table(), sg=r.geom("s"))
    rows = conn.execute(stmt).fetchall()
    kept = [row for row in rows if row[2] >= min_count]
    return kept, len(rows) - len(kept)


def publish_aggregate(conninfo: str, source: str, *, by: str = "hex500", min_count: int = 3,
                      target: str | None = None, districts_layer: str = "districts",
                      title: str | None = None) -> PublishReport:
    """Build (or rebuild) the public aggregate layer of ``source``; see the module docstring."""
    import geopandas as gpd
    import shapely


    kind, size = parse_by(by)
    if int(min_count) < 2:
        raise InvalidParameter("--min-count must be at least 2: a cell must never describe one asset.")
    target = validate_layer_id(target or f"{source}_by_{'district' if kind == 'district' else f'hex{size}'}"[:63])
    with connect(conninfo) as conn:
        src = get_layer(conn, source)
        if src is None or not src.has_rows or src.rows.is_function:
            raise LayerNotFound(f"No vector layer '{source}'.")
        if target == source:
            raise InvalidParameter("The public view needs its own layer id (--target).")
        districts = None
        if kind == "district":
            districts = get_layer(conn, districts_layer)
            if districts is None or not districts.has_rows or districts.rows.is_function \
                    or districts.rows.id_kind == "none" or "Polygon" not in (districts.geometry_type or ""):
                raise InvalidParameter(f"--districts-layer {districts_layer!r} must be a polygon layer.")
        existing = get_layer(conn, target)
        if existing is not None and existing.access_level != "public":
            raise InvalidParameter(f"Layer '{target}' exists and is not public; choose another --target.")
        rows, suppressed = aggregate_rows(conn, src, kind, size, districts, int(min_count))
    if not rows:
        raise InvalidParameter(f"No cell has {min_count} or more assets: nothing can be published.")
    gdf = gpd.GeoDataFrame(
        {"cell_id": [int(r[0]) for r in rows], "label": [r[1] for r in rows],
         "asset_count": [int(r[2]) for r in rows],
         "length_m": [r[3] for r in rows], "area_m2": [r[4] for r in rows]},
        geometry=shapely.from_wkb([bytes(r[5]) for r in rows]), crs="EPSG:4326")
    gdf = gdf.dropna(axis=1, how="all")
    cell = "district" if kind == "district" else f"{size} m hexagon (EPSG:5179)"
    meta = {
        "title": title or f"{src.title} - public summary per {cell}",
        "access_level": "public",
        "keywords": ["aggregate", "public view"],
        "description": (f"Number of assets and their length per {cell}. Cells with fewer than "
                        f"{min_count} assets are suppressed ({suppressed} cells)."),
        "licence": src.licence, "attribution": src.attribution,
    }
    mode = "replace" if existing is not None else "create"
    ingest_geodataframe(conninfo, gdf, target, mode=mode,
                        metadata={k: v for k, v in meta.items() if v is not None})
    return PublishReport(target, source, by, int(min_count), len(rows), suppressed, mode)
