"""Cross-sections: the facilities a line crosses, with their depth, as JSON and a profile chart.

Input: a GeoJSON LineString (``geometry``, in ``geometry_crs``), optionally ``buffer_m``
(default 0.5: facilities within that plan distance count as crossed — surveyed positions
are not exact) and ``depth_m`` (a planned excavation depth drawn on the chart).

Each crossing has its ``station_m`` (distance along the line from its first vertex to the
point of the line closest to the facility), ``depth_min_m`` / ``depth_max_m`` (cover), the
diameter and the kind; everything in EPSG:5179 metres.
"""

from __future__ import annotations

from psycopg import sql
from psycopg.rows import dict_row

from domains.common import (
    MAX_DEPTH_M,
    METRIC_SRID,
    facility_rows,
    input_geometry,
    number,
    row_filter_sql,
)
from domains.digcheck import _columns
from gis_platform.config import DomainSettings
from gis_platform.errors import InvalidParameter, Unprocessable
from layers.catalog import Layer


def parse_request(doc: dict, settings) -> dict:
    unknown = sorted(set(doc) - {"geometry", "geometry_crs", "buffer_m", "depth_m"})
    if unknown:
        raise InvalidParameter(f"Unknown fields {unknown}; expected geometry, geometry_crs, buffer_m, "
                               "depth_m.", parameter="body")
    geom = input_geometry(doc, settings)
    if geom.kind != "LineString":
        raise InvalidParameter(f"A cross-section needs a LineString, not a {geom.kind}.",
                               parameter="geometry")
    return {"geometry": geom, "buffer_m": number(doc, "buffer_m", default=0.5, hi=10.0),
            "depth_m": number(doc, "depth_m", hi=MAX_DEPTH_M)}


async def run_section(db, layer: Layer, principal, req: dict, ds: DomainSettings) -> dict:
    """Facilities crossed by the line, ordered by station."""
    geom = req["geometry"]
    rf, rf_params = row_filter_sql(principal, layer)
    async with db.connection(read_only=True, heavy=True) as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(sql.SQL("SELECT ST_Length(g) AS len, ST_AsBinary(g) AS wkb, "
                                  "ST_AsGeoJSON(ST_Transform(g, 4326), 7) AS gj FROM "
                                  "(SELECT ST_Transform({}, {}) AS g) s").format(
            geom.frag.sql, sql.Literal(METRIC_SRID)), geom.frag.params)
        line = await cur.fetchone()
        length = float(line["len"] or 0)
        if length <= 0:
            raise Unprocessable("The section line has zero length.", parameter="geometry")
        if length > ds.cross_section_max_length_m:
            raise Unprocessable(f"The section line is {length:,.0f} m long; at most "
                                f"{ds.cross_section_max_length_m:,.0f} m per section.",
                                parameter="geometry")
        stmt = sql.SQL("""
WITH l AS (SELECT ST_GeomFromWKB(%(line)s, {srid}) AS g),
box AS (SELECT ST_Transform(ST_Expand(ST_Envelope(g), %(buffer)s + 1.0), 4326) AS b FROM l),
f AS (SELECT {fid} AS fid, {cols}, {g4326} AS geom FROM {table} WHERE {g} && {box} AND {rf})
SELECT f.fid, f.kind, f.kind_ko, f.owner, f.diameter_mm, f.depth_min_m, f.depth_max_m, f.material,
       f.status, coalesce(k.name_ko, f.kind) AS kname_ko, coalesce(k.name_en, f.kind) AS kname_en,
       coalesce(k.colour, '#666666') AS colour,
       round(ST_Distance(t.fg, l.g)::numeric, 3)::float8 AS offset_m,
       round((ST_LineLocatePoint(l.g, ST_ClosestPoint(l.g, t.fg)) * ST_Length(l.g))::numeric, 2)::float8
         AS station_m
FROM f CROSS JOIN l CROSS JOIN LATERAL (SELECT ST_Transform(f.geom, {srid}) AS fg) t
LEFT JOIN gis_domain.facility_kinds k ON k.code = f.kind
WHERE ST_DWithin(t.fg, l.g, %(buffer)s)
ORDER BY station_m, f.fid LIMIT %(limit)s""").format(
            srid=sql.Literal(METRIC_SRID), cols=sql.SQL(", ").join(_columns(layer)),
            table=layer.table(), rf=rf, **facility_rows(layer))
        await cur.execute(stmt, {"line": bytes(line["wkb"]), "buffer": req["buffer_m"],
                                 "limit": ds.digcheck_max_results, **rf_params})
        rows = await cur.fetchall()
    import orjson

    crossings = [{
        "fid": r["fid"], "kind": r["kind"], "kind_ko": r["kind_ko"] or r["kname_ko"],
        "kind_en": r["kname_en"], "owner": r["owner"],
        "diameter_mm": None if r["diameter_mm"] is None else int(r["diameter_mm"]),
        "depth_min_m": r["depth_min_m"], "depth_max_m": r["depth_max_m"], "material": r["material"],
        "status": r["status"], "station_m": r["station_m"], "offset_m": r["offset_m"],
        "colour": r["colour"]} for r in rows]
    return {"layer": layer.id, "length_m": round(length, 2), "buffer_m": req["buffer_m"],
            "depth_m": req["depth_m"], "line": orjson.loads(line["gj"]), "crossings": crossings}
