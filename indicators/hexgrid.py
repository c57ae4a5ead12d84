"""Hexagon grids and aggregation of layers into area units, in PostGIS (no Python loops).

Grids are built with ``ST_HexagonGrid`` in a metric CRS (default EPSG:5179, Korea 2000 /
UTM-K: metres, so a 500 m size is 500 m on the ground; ``ST_HexagonGrid``'s size is the
edge length, which for a regular hexagon equals its circumradius).  Cells are clipped to
the union of a boundary layer and become an ordinary catalogued layer (through the normal
ingest path), so they are served as tiles and registered as an area unit.

Aggregation joins a point or line layer to the cells of an area unit in one statement:
``count``, ``sum`` of an attribute, ``density`` (count or sum per km²) and
``length_density`` (km of line per km², lines clipped to each cell).
"""

from __future__ import annotations

import math
from typing import Literal

import geopandas as gpd
import psycopg
import shapely
from psycopg import sql

from gis_platform.db.connections import connect
from gis_platform.errors import InvalidParameter
from indicators.store import (
    Indicator,
    get_area_unit,
    load_values,
    register_area_unit,
    strictest,
    unit_layer,
    upsert_indicator,
)
from layers.catalog import Layer, get_layer
from layers.ingest import ingest_geodataframe

Measure = Literal["count", "sum", "density", "length_density"]
METRIC_SRID = 5179


def hexagon_cells(conn: psycopg.Connection, clip_layer: Layer, radius_m: float,
                  srid: int = METRIC_SRID) -> gpd.GeoDataFrame:
    """Cells of ``radius_m`` covering ``clip_layer``'s union, clipped to it (EPSG:4326 out).

    Columns: ``code`` ("i_j" of the grid, stable for a given radius and CRS), ``area_km2``
    of the clipped cell.  Cells touching the boundary by an edge or corner only are dropped.
    """
    radius = float(radius_m)
    if not 10 <= radius <= 50_000:
        raise InvalidParameter(f"Hexagon radius {radius_m} m is out of range (10 m - 50 km).")
    q = sql.SQL("""
        WITH city AS (
            SELECT ST_Union(ST_Transform({geom}, %(srid)s)) AS g FROM {table}
        ), cells AS (
            SELECT h.i, h.j, h.geom FROM city, ST_HexagonGrid(%(r)s, city.g) AS h
            WHERE ST_Intersects(h.geom, city.g)
        ), clipped AS (
            SELECT c.i, c.j, ST_CollectionExtract(ST_Intersection(c.geom, city.g), 3) AS g
            FROM cells c, city
        )
        SELECT i || '_' || j AS code, ST_Area(g) / 1e6 AS area_km2,
               ST_AsBinary(ST_Transform(g, 4326)) AS wkb
        FROM clipped WHERE NOT ST_IsEmpty(g) AND ST_Area(g) > %(min_area)s ORDER BY j DESC, i
    """).format(table=clip_layer.table(), geom=clip_layer.rows.geom())
    # Slivers below 1/10,000 of a cell are artefacts of reprojecting the boundary (its edges
    # are straight in EPSG:4326, not in the metric CRS), not parts of the city.
    min_area = 1e-4 * 3 * math.sqrt(3) / 2 * radius * radius
    rows = conn.execute(q, {"srid": int(srid), "r": radius, "min_area": min_area}).fetchall()
    codes = [r[0] for r in rows]
    area = [round(float(r[1]), 4) for r in rows]
    geoms = shapely.from_wkb([bytes(r[2]) for r in rows])
    return gpd.GeoDataFrame({"code": codes, "area_km2": area}, geometry=geoms, crs="EPSG:4326")


def create_hex_grid(conninfo: str, layer_id: str, *, clip_layer_id: str, radius_m: float,
                    unit_id: str | None = None, srid: int = METRIC_SRID, access_level: str = "public",
                    replace: bool = True) -> dict:
    """Build the grid as layer ``layer_id`` and register it as area unit ``unit_id``."""

    with connect(conninfo, autocommit=True) as conn:
        clip = get_layer(conn, clip_layer_id)
        if clip is None or clip.kind != "vector" or "polygon" not in (clip.geometry_type or "").lower():
            raise InvalidParameter(f"Clip layer {clip_layer_id!r} must be a polygon layer.")
        cells = hexagon_cells(conn, clip, radius_m, srid)
        exists = get_layer(conn, layer_id) is not None
    if exists and not replace:
        raise InvalidParameter(f"Layer {layer_id!r} exists; replace it or choose another id.")
    title_m = f"{radius_m:g} m"
    ingest_geodataframe(conninfo, cells, layer_id, mode="replace" if exists else "create", metadata={
        "title": f"Hexagon grid ({title_m} radius)", "title_ko": f"육각 격자 (반경 {title_m})",
        "description": f"Regular hexagons of {title_m} circumradius in EPSG:{srid}, clipped to "
                       f"{clip.title}.",
        "keywords": ["grid", "hexagon"], "access_level": access_level,
        "source": f"ST_HexagonGrid over {clip_layer_id}", "units": {"area_km2": "km²"},
        "attribution": clip.attribution})
    unit_id = unit_id or layer_id
    with connect(conninfo, autocommit=True) as conn:
        register_area_unit(conn, unit_id, layer_id, "code", None, f"Hexagons {title_m}",
                           f"육각 격자 {title_m}")
    return {"layer": layer_id, "unit": unit_id, "cells": len(cells),
            "area_km2": round(float(cells["area_km2"].sum()), 2)}


def aggregate(conn: psycopg.Connection, unit_id: str, source_layer_id: str, measure: Measure, *,
              value_column: str | None = None, srid: int = METRIC_SRID):
    """One row per area of the unit: (area_code, value); areas with nothing get 0.

    Points are counted in the cell that contains them (``ST_Intersects``: a point exactly on
    a shared edge counts in each cell it touches).  Lines are clipped to each cell and
    measured in metres in ``srid``.
    """
    unit = get_area_unit(conn, unit_id)
    cells_layer = unit_layer(conn, unit)
    src = get_layer(conn, source_layer_id)
    if src is None or src.kind != "vector":
        raise InvalidParameter(f"No vector layer {source_layer_id!r} to aggregate.")
    gtype = (src.geometry_type or "").lower()
    if measure == "length_density" and "line" not in gtype:
        raise InvalidParameter(f"length_density needs a line layer; {source_layer_id} holds {src.geometry_type}.")
    if measure in ("count", "sum", "density") and "point" not in gtype:
        raise InvalidParameter(f"{measure} counts points; {source_layer_id} holds {src.geometry_type} "
                               "(use length_density for lines).")
    if measure == "sum" or (measure == "density" and value_column):
        attr = src.attribute(value_column or "")
        if attr is None:
            raise InvalidParameter(f"{measure} needs --value-column, an attribute of {source_layer_id}: "
                                   f"{[a.name for a in src.attributes]}.")
        if attr.type not in ("bigint", "integer", "smallint", "double precision", "real", "numeric"):
            raise InvalidParameter(f"Attribute {value_column!r} is {attr.type}, not a number.")
        amount = sql.SQL("s.{}::double precision").format(sql.Identifier(value_column))
    else:
        amount = sql.SQL("1.0")
    sr = src.rows
    if measure == "length_density":
        inner = sql.SQL("SUM(ST_Length(ST_Intersection(ST_Transform({}, %(srid)s), c.g))) / 1000.0").format(
            sr.geom("s"))
        per_area = True
    else:
        inner = sql.SQL("SUM({amount})").format(amount=amount)
        per_area = measure == "density"
    value = sql.SQL("COALESCE(agg.v, 0) / NULLIF(ST_Area(c.g) / 1e6, 0)") if per_area \
        else sql.SQL("COALESCE(agg.v, 0)")
    q = sql.SQL("""
        WITH c AS (SELECT {code}::text AS code, {cs} AS geom, ST_Transform({cg}, %(srid)s) AS g
                   FROM {cells})
        SELECT c.code, {value} FROM c
        LEFT JOIN LATERAL (
            SELECT {inner} AS v FROM {src} s WHERE ST_Intersects({sg}, c.geom)
        ) agg ON true
        ORDER BY c.code
    """).format(code=sql.Identifier(unit.code_column), cells=cells_layer.table(), value=value,
                inner=inner, src=sr.table(), sg=sr.geom("s"),
                cs=cells_layer.rows.geom_in(sr.srid), cg=cells_layer.rows.geom())
    return conn.execute(q, {"srid": int(srid)}).fetchall(), src, cells_layer


def aggregate_indicator(conn: psycopg.Connection, ind: Indicator, unit_id: str, source_layer_id: str,
                        measure: Measure, year: int, *, value_column: str | None = None) -> dict:
    """Compute an indicator by aggregation and store it (method and access level recorded)."""
    import pandas as pd

    rows, src, cells = aggregate(conn, unit_id, source_layer_id, measure, value_column=value_column)
    ind = ind.model_copy(update={
        "method": {"aggregate": measure, "source_layer": source_layer_id, "value_column": value_column,
                   "unit": unit_id, "source_data_version": src.data_version},
        # an aggregate of restricted data is as restricted as its inputs
        "access_level": strictest([ind.access_level, src.access_level, cells.access_level])})
    upsert_indicator(conn, ind)
    frame = pd.DataFrame(rows, columns=["area_code", "value"])
    frame["year"] = int(year)
    return load_values(conn, ind.id, unit_id, frame)
