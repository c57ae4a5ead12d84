"""The dig-safety check ("call before you dig").

Input: an excavation area — a GeoJSON (Multi)Polygon, or a (Multi)LineString / Point with a
``width_m`` (a trench of that width with flat ends; a pit of that diameter) — in
``geometry_crs`` (default CRS84 lon/lat), the planned excavation depth ``depth_m`` (metres
below the surface) and optionally ``buffer_m``, the notification distance.

Output: every facility of the facilities layer (``domains_facilities_layer``) within
``max(buffer_m, the kind's horizontal clearance)`` of the area, each with:

* ``horizontal_distance_m`` — plan distance between the area and the facility (0 when the
  facility passes through it), in EPSG:5179 metres, rounded to the millimetre;
* ``vertical_clearance_m`` — the facility's shallowest depth of cover (``depth_min_m``)
  minus the planned depth: how far below the excavation bottom its top lies (negative: the
  excavation goes deeper than the facility's top);
* ``risk``:

  =========  ===============================================================================
  ``high``   within the kind's horizontal clearance (or inside the area) **and** the
             vertical clearance is below the kind's vertical clearance (or the depth is
             unknown) — a strike risk: the works conflict with the facility;
  ``medium`` within the horizontal clearance but vertically clear, or vertically not clear
             but only within the notification buffer — coordinate with the owner;
  ``low``    within the notification buffer, horizontally and vertically clear — notify.
  =========  ===============================================================================

Boundaries are inclusive horizontally (a facility exactly at the clearance distance is
*within* it) and exclusive vertically (a vertical clearance exactly equal to the required
one is clear).  Distances are compared after rounding to the millimetre, so a facility drawn
exactly at the clearance is not at the mercy of floating point.

Performance: the area is transformed once; candidates come from the layer's GiST index
with a bounding box (the area's metric envelope expanded by the search radius, transformed
to EPSG:4326), and only those candidates are transformed and measured exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from psycopg import sql
from psycopg.rows import dict_row

from domains.common import (
    MAX_DEPTH_M,
    METRIC_SRID,
    InputGeometry,
    facility_rows,
    input_geometry,
    number,
    row_filter_sql,
)
from gis_platform.config import DomainSettings
from gis_platform.errors import InvalidParameter, Unprocessable
from layers.catalog import Layer

RISK_ORDER = {"low": 0, "medium": 1, "high": 2}
NUMERIC = {"double precision", "bigint", "integer", "real", "numeric", "smallint"}
#: Facility attributes the check reports (those the layer has; ``kind`` is required).
OPTIONAL_COLUMNS = ("owner", "kind_ko", "diameter_mm", "depth_min_m", "depth_max_m", "material",
                    "status", "install_year", "accuracy_class")
NUMERIC_COLUMNS = {"diameter_mm", "depth_min_m", "depth_max_m", "install_year"}


@dataclass
class DigRequest:
    """A parsed, validated dig-check request."""

    geometry: InputGeometry
    depth_m: float
    buffer_m: float
    width_m: float | None = None

    @property
    def kind_is_point(self) -> bool:
        return self.geometry.kind == "Point"

    def describe(self) -> dict[str, Any]:
        return {"depth_m": self.depth_m, "buffer_m": self.buffer_m, "width_m": self.width_m,
                "geometry_type": self.geometry.kind, "geometry_crs": self.geometry.crs.uri}


def parse_request(doc: dict, settings, ds: DomainSettings) -> DigRequest:
    """Validate a dig-check body; every problem is a 400 naming the field and the fix."""
    unknown = sorted(set(doc) - {"geometry", "geometry_crs", "depth_m", "buffer_m", "width_m"})
    if unknown:
        raise InvalidParameter(f"Unknown fields {unknown}; expected geometry, geometry_crs, depth_m, "
                               "buffer_m, width_m.", parameter="body")
    geom = input_geometry(doc, settings)
    depth = number(doc, "depth_m", required=True, hi=MAX_DEPTH_M)
    buffer_m = number(doc, "buffer_m", default=ds.digcheck_buffer_m, hi=ds.digcheck_max_buffer_m)
    width = number(doc, "width_m", lo=0.0, hi=100.0)
    gtype = geom.kind
    if gtype in ("Polygon", "MultiPolygon"):
        if width is not None:
            raise InvalidParameter("width_m applies to a line or point; a polygon is the area itself.",
                                   parameter="width_m")
    elif gtype in ("LineString", "MultiLineString", "Point"):
        if width is None or width <= 0:
            raise InvalidParameter(f"A {gtype} needs width_m (> 0): the trench width (for a point: "
                                   "the pit diameter) in metres.", parameter="width_m")
    else:
        raise InvalidParameter(f"geometry must be a Polygon, MultiPolygon, LineString, "
                               f"MultiLineString or Point, not {gtype}.", parameter="geometry")
    return DigRequest(geom, float(depth), float(buffer_m), width)


def _area_sql(req: DigRequest) -> tuple[sql.Composable, list]:
    """The excavation area as SQL in EPSG:5179 (lines/points buffered by half the width)."""
    metric = sql.SQL("ST_Transform({}, {})").format(req.geometry.frag.sql, sql.Literal(METRIC_SRID))
    params = list(req.geometry.frag.params)
    if req.width_m is not None:
        style = "quad_segs=8" if req.kind_is_point else "endcap=flat join=mitre"
        metric = sql.SQL("ST_Buffer({}, %s, {})").format(metric, sql.Literal(style))
        params.append(req.width_m / 2)
    return metric, params


@dataclass
class Area:
    """The validated excavation area: EWKB-free WKB in EPSG:5179, its size and GeoJSON."""

    wkb: bytes
    area_m2: float
    geojson: dict
    bbox: list[float] = field(default_factory=list)


async def prepare_area(conn, req: DigRequest, ds: DomainSettings) -> Area:
    """Build the area in PostGIS, refuse invalid, empty or oversized ones with a 422."""
    area_sql, params = _area_sql(req)
    stmt = sql.SQL(
        "SELECT ST_IsValid(g) AS valid, ST_IsValidReason(g) AS reason, ST_Area(g) AS area, "
        "ST_AsBinary(g) AS wkb, ST_AsGeoJSON(ST_Transform(g, 4326), 7) AS gj, "
        "ST_XMin(b) AS x0, ST_YMin(b) AS y0, ST_XMax(b) AS x1, ST_YMax(b) AS y1 "
        "FROM (SELECT g, ST_Transform(ST_Envelope(g), 4326)::box2d AS b FROM (SELECT {} AS g) s) t"
    ).format(area_sql)
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(stmt, params)
        row = await cur.fetchone()
    if not row["valid"]:
        raise Unprocessable(f"The excavation area is not a valid polygon ({row['reason']}). Fix the "
                            "ring (no self-intersections, closed, at least 4 positions).",
                            parameter="geometry")
    area = float(row["area"] or 0.0)
    if area <= 0:
        raise Unprocessable("The excavation area is empty (zero area).", parameter="geometry")
    if area > ds.digcheck_max_area_m2:
        raise Unprocessable(
            f"The excavation area is {area:,.0f} m², more than the {ds.digcheck_max_area_m2:,.0f} m² "
            "one check accepts. Split the works into sections, or check that the coordinates are "
            "in the CRS you named (geometry_crs).", parameter="geometry")
    return Area(bytes(row["wkb"]), round(area, 2), orjson.loads(row["gj"]),
                [row["x0"], row["y0"], row["x1"], row["y1"]])


def _columns(layer: Layer) -> list[sql.Composable]:
    """Facility attributes to select: catalog columns only, NULL for the missing ones."""
    if layer.attribute("kind") is None:
        raise Unprocessable(f"Layer '{layer.id}' has no 'kind' column; it cannot be used for the "
                            "dig-safety check.")
    out = [sql.SQL("{}::text AS kind").format(sql.Identifier("kind"))]
    for name in OPTIONAL_COLUMNS:
        attr = layer.attribute(name)
        if attr is None or (name in NUMERIC_COLUMNS and attr.type not in NUMERIC):
            out.append(sql.SQL("NULL::{} AS {}").format(
                sql.SQL("float8" if name in NUMERIC_COLUMNS else "text"), sql.Identifier(name)))
        elif name in NUMERIC_COLUMNS:
            out.append(sql.SQL("{}::float8 AS {}").format(sql.Identifier(name), sql.Identifier(name)))
        else:
            out.append(sql.SQL("{}::text AS {}").format(sql.Identifier(name), sql.Identifier(name)))
    return out


def search_radius(req: DigRequest, max_kind_clearance: float) -> float:
    return max(req.buffer_m, max_kind_clearance)


async def find_facilities(conn, layer: Layer, principal, req: DigRequest, area: Area,
                          ds: DomainSettings) -> tuple[list[dict], bool]:
    """Facilities near the area with their clearances; (rows, truncated)."""
    rf, rf_params = row_filter_sql(principal, layer)
    cur = await conn.execute("SELECT coalesce(max(horizontal_clearance_m), 0) FROM gis_domain.facility_kinds")
    radius = search_radius(req, float((await cur.fetchone())[0]))
    stmt = sql.SQL("""
WITH a AS (SELECT ST_GeomFromWKB(%(area)s, {srid}) AS g),
box AS (SELECT ST_Transform(ST_Expand(ST_Envelope(g), %(radius)s + 1.0), 4326) AS b FROM a),
f AS (SELECT {fid} AS fid, {cols}, {g4326} AS geom FROM {table} WHERE {g} && {box} AND {rf}),
d AS (
  SELECT f.*, t.fg, round(ST_Distance(t.fg, a.g)::numeric, 3)::float8 AS dist,
         coalesce(k.horizontal_clearance_m, o.horizontal_clearance_m, 2.0) AS hclr,
         coalesce(k.vertical_clearance_m, o.vertical_clearance_m, 0.5) AS vclr,
         coalesce(k.name_ko, f.kind) AS kname_ko, coalesce(k.name_en, f.kind) AS kname_en,
         coalesce(k.colour, '#666666') AS colour, k.code IS NULL AS unknown_kind
  FROM f CROSS JOIN a
  CROSS JOIN LATERAL (SELECT ST_Transform(f.geom, {srid}) AS fg) t
  LEFT JOIN gis_domain.facility_kinds k ON k.code = f.kind
  LEFT JOIN (SELECT * FROM gis_domain.facility_kinds WHERE code = 'other') o ON true
  WHERE ST_DWithin(t.fg, a.g, %(radius)s)
)
SELECT d.*, round(ST_Length(ST_Intersection(d.fg, a.g))::numeric, 2)::float8 AS length_in_area_m,
       ST_AsGeoJSON(d.geom, 7) AS gj
FROM d CROSS JOIN a
WHERE d.dist <= greatest(%(buffer)s, d.hclr)
ORDER BY d.dist, d.fid LIMIT %(limit)s""").format(
        srid=sql.Literal(METRIC_SRID), cols=sql.SQL(", ").join(_columns(layer)),
        table=layer.table(), rf=rf, **facility_rows(layer))
    params = {"area": area.wkb, "radius": radius, "buffer": req.buffer_m,
              "limit": ds.digcheck_max_results + 1, **rf_params}
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(stmt, params)
        rows = await cur.fetchall()
    truncated = len(rows) > ds.digcheck_max_results
    return rows[: ds.digcheck_max_results], truncated


def classify(dist: float, hclr: float, vertical: float | None, vclr: float) -> tuple[str, list[str]]:
    """Risk level and the reasons for it (see the module docstring for the rule)."""
    near = dist <= hclr
    v_conflict = vertical is None or vertical < vclr
    reasons = []
    if dist == 0:
        reasons.append("passes through the excavation area")
    elif near:
        reasons.append(f"{dist:.2f} m away, within the {hclr:g} m horizontal clearance")
    else:
        reasons.append(f"{dist:.2f} m away, outside the {hclr:g} m horizontal clearance")
    if vertical is None:
        reasons.append("depth of cover unknown: assume it is in the way")
    elif v_conflict:
        reasons.append(f"top {vertical:+.2f} m from the excavation bottom, needs {vclr:g} m")
    else:
        reasons.append(f"top {vertical:.2f} m below the excavation bottom (needs {vclr:g} m)")
    if near and v_conflict:
        return "high", reasons
    if near or v_conflict:
        return "medium", reasons
    return "low", reasons


def _int(value: float | None) -> int | None:
    return None if value is None else int(value)


def facility_entry(row: dict, depth_m: float) -> dict:
    """One reported facility (JSON-ready) from a query row."""
    top = row.get("depth_min_m")
    vertical = None if top is None else round(top - depth_m, 3)
    risk, reasons = classify(row["dist"], row["hclr"], vertical, row["vclr"])
    return {
        "fid": row["fid"], "kind": row["kind"], "kind_ko": row.get("kind_ko") or row["kname_ko"],
        "kind_en": row["kname_en"], "owner": row.get("owner"),
        "diameter_mm": _int(row.get("diameter_mm")), "material": row.get("material"),
        "status": row.get("status"), "install_year": _int(row.get("install_year")),
        "accuracy_class": row.get("accuracy_class"),
        "depth_min_m": top, "depth_max_m": row.get("depth_max_m"),
        "horizontal_distance_m": row["dist"], "horizontal_clearance_m": row["hclr"],
        "vertical_clearance_m": vertical, "required_vertical_clearance_m": row["vclr"],
        "length_in_area_m": row["length_in_area_m"], "risk": risk,
        "conflict": risk == "high", "reasons": reasons, "unknown_kind": row["unknown_kind"],
        "colour": row["colour"],
    }


def summarise(entries: list[dict]) -> dict:
    """Counts per risk, the verdict, and the owners to notify (worst risk first)."""
    counts = {k: sum(1 for e in entries if e["risk"] == k) for k in ("high", "medium", "low")}
    verdict = "conflict" if counts["high"] else "caution" if counts["medium"] else "clear"
    owners: dict[str, dict] = {}
    for e in entries:
        key = e["owner"] or "(owner unknown)"
        o = owners.setdefault(key, {"owner": key, "kinds": [], "facilities": 0, "max_risk": "low",
                                    "min_distance_m": e["horizontal_distance_m"]})
        o["facilities"] += 1
        if e["kind"] not in o["kinds"]:
            o["kinds"].append(e["kind"])
        if RISK_ORDER[e["risk"]] > RISK_ORDER[o["max_risk"]]:
            o["max_risk"] = e["risk"]
        o["min_distance_m"] = min(o["min_distance_m"], e["horizontal_distance_m"])
    notify = sorted(owners.values(), key=lambda o: (-RISK_ORDER[o["max_risk"]], o["min_distance_m"], o["owner"]))
    return {"facilities": len(entries), **counts, "verdict": verdict, "notify": notify}


async def run_check(db, layer: Layer, principal, req: DigRequest, ds: DomainSettings) -> dict:
    """The whole check on one pooled connection: area, candidates, classification."""
    async with db.connection(read_only=True, heavy=True) as conn:
        area = await prepare_area(conn, req, ds)
        rows, truncated = await find_facilities(conn, layer, principal, req, area, ds)
    entries = [facility_entry(r, req.depth_m) for r in rows]
    geoms = [orjson.loads(r["gj"]) for r in rows]
    summary = summarise(entries)
    return {
        "layer": layer.id,
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "request": {**req.describe(), "area_m2": area.area_m2},
        "summary": {k: v for k, v in summary.items() if k != "notify"},
        "notify": summary["notify"],
        "facilities": entries,
        "truncated": truncated,
        "excavation": area.geojson,
        "_geometries": geoms,
    }


def as_json(result: dict) -> dict:
    """The JSON form (no facility geometries)."""
    return {k: v for k, v in result.items() if not k.startswith("_")}


def as_geojson(result: dict) -> dict:
    """A FeatureCollection of the facilities; the area and summary as foreign members."""
    feats = [{"type": "Feature", "id": e["fid"], "geometry": g,
              "properties": {k: v for k, v in e.items() if k != "fid"}}
             for e, g in zip(result["facilities"], result["_geometries"])]
    return {"type": "FeatureCollection", "features": feats, "excavation": result["excavation"],
            "summary": result["summary"], "notify": result["notify"], "request": result["request"],
            "layer": result["layer"], "truncated": result["truncated"],
            "generated_at": result["generated_at"]}
