"""Spatial operators beyond OGC API Features: nearest, within a distance, intersecting, stats.

Routes (all under ``/collections/{id}``, same access rule as the items route, and all
taking the items filters — ``bbox``, ``datetime``, ``filter``, property equality — plus
``properties`` and ``crs`` for output):

* ``GET  /nearest?point=x,y&limit=k`` — the k nearest features by true (ellipsoidal)
  distance, each with a ``distance_m`` property.  KNN ``<->`` on the GiST index finds k
  candidates; every feature within the farthest candidate's geodesic distance is then
  ranked exactly, so the answer is correct even though degrees are not metres.
* ``GET  /within-distance?point=x,y&distance=m`` or ``POST`` a GeoJSON geometry with
  ``?distance=m`` — features within ``m`` metres (geography), paged like items.
* ``POST /intersecting`` — features intersecting the posted GeoJSON geometry, paged.
* ``GET|POST /stats`` — count, length (m), area (m²), sums/averages of numeric columns,
  optionally ``group-by`` a column, inside an area: the posted geometry, ``bbox``, or
  ``area=<layer>:<fid>`` (a feature of another readable layer).  Lines and polygons are
  clipped to the area, so "metres of gas main under this district" is the clipped length.

Input geometries are in ``geometry-crs`` (default CRS84, axis order per the CRS).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import Response
from psycopg import sql

from features.cql import kind_of
from features.http import geojson_response, items_links, link, url_with, vector_layer
from features.query import ItemsQuery, items_query, parse_int, row_filter_frag
from features.sql import QUERY_ERRORS, bad_query, collection_bytes, feature_sql, fetch_page
from gis_platform import limits
from gis_platform.db.pool import budget_for
from gis_platform.deps import Db, SettingsDep
from gis_platform.errors import InvalidParameter
from gis_platform.principal import Principal
from gis_platform.responses import FastJSONResponse
from gis_platform.security import PrincipalDep
from layers.catalog import Layer
from layers.registry import Registry, RegistryDep
from layers.spatial import (
    CrsRef,
    Frag,
    as_geography,
    envelope_sql,
    geometry_sql,
    native_distance,
    parse_bbox,
    parse_crs,
    parse_point,
    shape_from_geojson,
    within_metres,
)

router = APIRouter(tags=["spatial"])
CollectionId = Annotated[str, Path(alias="collectionId", description="Collection (layer) id", max_length=200)]
MAX_GROUPS = 1000


def _settings_max_distance(settings) -> float:
    return float(settings.features.max_distance_m)


def parse_distance(value: str | None, settings) -> float:
    """``distance`` in metres: required, finite, 0..features_max_distance_m."""
    if value is None or not value.strip():
        raise InvalidParameter("distance (metres) is required.", parameter="distance")
    try:
        metres = float(value)
    except ValueError:
        raise InvalidParameter("distance must be a number of metres.", parameter="distance") from None
    hi = _settings_max_distance(settings)
    if not (0 <= metres <= hi):
        raise InvalidParameter(f"distance must be between 0 and {hi:g} metres.", parameter="distance")
    return metres


async def read_geometry_body(request: Request, settings) -> Any:
    """The posted GeoJSON (geometry, Feature or ``{"geometry": ...}``) as parsed JSON."""
    doc = await limits.read_json_body(request, int(settings.http.max_request_body_kb) * 1024,
                                      what="a GeoJSON geometry (or Feature)")
    if isinstance(doc, dict) and "geometry" in doc and doc.get("type") != "Feature":
        doc = doc["geometry"]
    return doc


def _geometry_from(request: Request, settings, doc: Any | None, layer: Layer) -> Frag:
    """The request's geometry (posted GeoJSON, else ``point``) in the layer's SRID."""
    crs = parse_crs(request.query_params.get("geometry-crs"), settings.features, param="geometry-crs")
    srid = layer.rows.srid
    if doc is not None:
        return geometry_sql(shape_from_geojson(doc, param="body"), crs, param="body", srid=srid)
    point = request.query_params.get("point")
    if point is None:
        raise InvalidParameter("point=x,y is required (CRS84: lon,lat).", parameter="point")
    return geometry_sql(parse_point(point, crs), crs, param="point", srid=srid)


def _distance_prop(layer: Layer) -> str:
    return "_distance_m" if layer.attribute("distance_m") else "distance_m"


# --- nearest ---------------------------------------------------------------------------------
@router.get("/collections/{collectionId}/nearest", summary="The k nearest features to a point")
async def nearest(collection_id: CollectionId, request: Request, registry: RegistryDep,
                  principal: PrincipalDep, db: Db, settings: SettingsDep):
    layer = vector_layer(registry, collection_id, principal)
    q = await items_query(request.query_params, layer, settings, principal=principal, paging=False,
                          allowed={"point", "geometry-crs", "limit"})
    k = parse_int(request.query_params.get("limit"), "limit", 10, lo=1,
                  hi=int(settings.features.max_limit))
    pt = _geometry_from(request, settings, None, layer)
    where = q.where_frag()
    rows = q.rows
    src = q.source
    geom = rows.geom()
    knn = sql.SQL("__knn_g")
    dist = sql.SQL("ST_Distance({}, {})").format(rows.geography(), as_geography(knn, rows.srid))
    feat = feature_sql(q, [(_distance_prop(layer), sql.SQL("round({}::numeric, 2)").format(dist))])
    if rows.geographic:
        # degrees: a degree of longitude shrinks with the latitude (see degrees_for_metres)
        radius = sql.SQL("__knn_d / (111000 * cos(radians(least(89, abs(ST_Y(ST_Centroid("
                         "ST_Transform(__knn_g, 4326)))) + __knn_d / 111000 + 0.01)))) * 1.01 + 1e-9")
    else:
        radius = sql.SQL("__knn_d * {} + 1e-6").format(
            sql.Literal(native_distance(1.0, rows.srid, False)))
    order = sql.SQL(", ").join([dist, *rows.order()])
    # Step 1: k candidates by planar KNN; step 2: their farthest geodesic distance bounds the
    # search; step 3: exact ranking of everything within that bound.
    stmt = sql.SQL(
        "WITH p AS (SELECT {pt} AS __knn_g), "
        "cand AS (SELECT {geom} AS __c FROM {t}, p WHERE {w} ORDER BY {geom} <-> __knn_g LIMIT %s), "
        "r AS (SELECT max(ST_Distance({cg}, {kg})) AS __knn_d FROM cand, p) "
        "SELECT {feat} FROM {t}, p, r WHERE {w} AND __knn_d IS NOT NULL "
        "AND ST_DWithin({geom}, __knn_g, {radius}) "
        "AND ST_DWithin({geog}, {kg}, __knn_d + 0.001) "
        "ORDER BY {order} LIMIT %s").format(
        pt=pt.sql, t=src.sql, w=where.sql, feat=feat, geom=geom, radius=radius,
        cg=as_geography(sql.SQL("cand.__c"), rows.srid), kg=as_geography(knn, rows.srid),
        geog=rows.geography(), order=order)
    params = [*pt.params, *src.params, *where.params, k, *src.params, *where.params, k]
    try:
        async with db.connection(read_only=True, heavy=True,
                                 budget_ms=budget_for(principal, settings)) as conn:
            rows_ = await (await conn.execute(stmt, params)).fetchall()
    except QUERY_ERRORS as exc:
        raise bad_query(exc) from None
    links = [link(url_with(request, f"/collections/{layer.id}/nearest"), "self", "application/geo+json"),
             link(url_with(request, f"/collections/{layer.id}", **{k_: None for k_ in request.query_params}),
                  "collection", "application/json", layer.title)]
    return geojson_response(collection_bytes([r[0] for r in rows_], matched=None, links=links), q)


# --- within a distance / intersecting --------------------------------------------------------
async def _paged(request: Request, layer: Layer, q: ItemsQuery, db, cond: Frag,
                 extra: list[tuple[str, Frag]], path: str, budget_ms: int | None) -> Response:
    q.where.insert(0, cond)
    async with db.connection(read_only=True, heavy=True, budget_ms=budget_ms) as conn:
        page = await fetch_page(conn, q, extra)
    links = items_links(request, layer, q, page.number_matched, page.number_returned, path)
    if request.method == "POST":   # a GET link cannot carry the posted geometry
        links = [l for l in links if l["rel"] not in ("next", "prev", "alternate")]
    return geojson_response(collection_bytes(page.features, matched=page.number_matched, links=links), q)


async def _within_distance(collection_id: str, request: Request, registry: Registry, principal: Principal,
                           db, settings, doc: Any | None) -> Response:
    layer = vector_layer(registry, collection_id, principal)
    q = await items_query(request.query_params, layer, settings, principal=principal,
                          allowed={"point", "geometry-crs", "distance"})
    metres = parse_distance(request.query_params.get("distance"), settings)
    g = _geometry_from(request, settings, doc, layer)
    rows = layer.rows
    cond = within_metres(Frag(rows.geom()), g, metres, rows.srid, rows.geographic)
    dist = Frag(sql.SQL("round(ST_Distance({}, {})::numeric, 2)").format(
        rows.geography(), as_geography(g.sql, rows.srid)), g.params)
    return await _paged(request, layer, q, db, cond, [(_distance_prop(layer), dist)],
                        f"/collections/{layer.id}/within-distance", budget_for(principal, settings))


@router.get("/collections/{collectionId}/within-distance",
            summary="Features within a distance (metres) of a point")
async def within_distance(collection_id: CollectionId, request: Request, registry: RegistryDep,
                          principal: PrincipalDep, db: Db, settings: SettingsDep):
    return await _within_distance(collection_id, request, registry, principal, db, settings, None)


@router.post("/collections/{collectionId}/within-distance",
             summary="Features within a distance (metres) of a posted GeoJSON geometry")
async def within_distance_post(collection_id: CollectionId, request: Request, registry: RegistryDep,
                               principal: PrincipalDep, db: Db, settings: SettingsDep):
    vector_layer(registry, collection_id, principal)     # 404 before reading the body
    doc = await read_geometry_body(request, settings)
    return await _within_distance(collection_id, request, registry, principal, db, settings, doc)


@router.post("/collections/{collectionId}/intersecting",
             summary="Features intersecting a posted GeoJSON geometry")
async def intersecting(collection_id: CollectionId, request: Request, registry: RegistryDep,
                       principal: PrincipalDep, db: Db, settings: SettingsDep):
    layer = vector_layer(registry, collection_id, principal)
    q = await items_query(request.query_params, layer, settings, principal=principal,
                          allowed={"geometry-crs"})
    doc = await read_geometry_body(request, settings)
    g = _geometry_from(request, settings, doc, layer)
    cond = Frag(sql.SQL("ST_Intersects({}, {})").format(layer.rows.geom(), g.sql), g.params)
    return await _paged(request, layer, q, db, cond, [], f"/collections/{layer.id}/intersecting",
                        budget_for(principal, settings))


# --- statistics ------------------------------------------------------------------------------
def _numeric_columns(value: str | None, layer: Layer, param: str) -> list[str]:
    if not value:
        return []
    cols = list(dict.fromkeys(v.strip() for v in value.split(",") if v.strip()))
    for c in cols:
        attr = layer.attribute(c)
        if attr is None:
            raise InvalidParameter(f"Unknown property {c[:60]!r} in {param}.", parameter=param)
        if kind_of(attr.type) != "number":
            raise InvalidParameter(f"{param} needs numeric properties; {c!r} is {attr.type}.", parameter=param)
    if len(cols) > 20:
        raise InvalidParameter(f"{param} takes at most 20 properties.", parameter=param)
    return cols


def _area_from_layer(value: str, registry: Registry, principal: Principal, srid: int) -> Frag:
    """``area=<layer>:<id>``: a feature of another layer the caller may read, in ``srid``."""
    layer_id, sep, fid = value.partition(":")
    if not sep or not fid.strip() or len(fid) > 400:
        raise InvalidParameter("area must be <layer id>:<feature id>, e.g. districts:12.", parameter="area")
    area_layer = vector_layer(registry, layer_id.strip(), principal)
    rows = area_layer.rows
    if rows.is_function or rows.id_kind == "none":
        raise InvalidParameter(f"area: layer '{area_layer.id}' has no feature ids to refer to.",
                               parameter="area")
    cond = rows.id_where(fid.strip())
    if cond is None:
        raise InvalidParameter(f"area: {fid.strip()[:40]!r} is not a feature id of '{area_layer.id}'.",
                               parameter="area")
    hidden = row_filter_frag(principal, area_layer)    # a hidden row is no area either
    if hidden is not None:
        cond = Frag(sql.SQL("{} AND {}").format(cond.sql, hidden.sql), [*cond.params, *hidden.params])
    geom = rows.geom_in(srid)
    return Frag(sql.SQL("(SELECT {} FROM {} WHERE {} LIMIT 1)").format(geom, rows.table(), cond.sql),
                cond.params)


async def _stats(collection_id: str, request: Request, registry: Registry, principal: Principal, db,
                 settings, doc: Any | None) -> Response:
    layer = vector_layer(registry, collection_id, principal)
    params = {k: v for k, v in request.query_params.items() if k not in ("bbox", "bbox-crs")}
    q = await items_query(params, layer, settings, principal=principal, paging=False,
                          allowed={"group-by", "sum", "avg", "area", "geometry-crs"})
    qp = request.query_params
    area: Frag | None = None
    area_desc: dict[str, Any] = {"type": "none"}
    sources = [s for s in ("bbox", "area") if qp.get(s)] + (["body"] if doc is not None else [])
    if len(sources) > 1:
        raise InvalidParameter("Give one area: a posted geometry, bbox, or area=<layer>:<fid>.", parameter="area")
    srid = layer.rows.srid
    if doc is not None:
        crs: CrsRef = parse_crs(qp.get("geometry-crs"), settings.features, param="geometry-crs")
        area = geometry_sql(shape_from_geojson(doc, param="body"), crs, param="body", srid=srid)
        area_desc = {"type": "geometry"}
    elif qp.get("bbox"):
        bcrs = parse_crs(qp.get("bbox-crs"), settings.features, param="bbox-crs")
        box = parse_bbox(qp["bbox"], bcrs)
        if box[0] > box[2]:
            raise InvalidParameter("stats: a bbox across the antimeridian is not supported.", parameter="bbox")
        area = envelope_sql(box, bcrs, srid)
        area_desc = {"type": "bbox", "bbox": list(box)}
    elif qp.get("area"):
        area = _area_from_layer(qp["area"], registry, principal, srid)
        area_desc = {"type": "feature", "feature": qp["area"]}
    group = qp.get("group-by")
    if group is not None and layer.attribute(group) is None:
        raise InvalidParameter(f"Unknown property {group[:60]!r} in group-by.", parameter="group-by")
    sums = _numeric_columns(qp.get("sum"), layer, "sum")
    avgs = _numeric_columns(qp.get("avg"), layer, "avg")
    family = (layer.geometry_type or "Geometry").replace("Multi", "")
    where = q.where_frag()
    num_cols = list(dict.fromkeys(sums + avgs))
    key = sql.Identifier(group) if group else sql.SQL("NULL::text")
    cols = sql.SQL(", ").join([sql.SQL("{} AS __key").format(key)] + [sql.Identifier(c) for c in num_cols])
    src = q.source
    geom = layer.rows.geom()
    if area is not None:
        clip = sql.SQL("WITH a AS (SELECT {a} AS __area), c AS (SELECT {cols}, CASE WHEN ST_CoveredBy({g}, __area) "
                       "THEN {g} ELSE ST_Intersection({g}, __area) END AS __g FROM {t}, a "
                       "WHERE ST_Intersects({g}, __area) AND {w}) ").format(
            a=area.sql, cols=cols, t=src.sql, w=where.sql, g=geom)
        params = [*area.params, *src.params, *where.params]
    else:
        clip = sql.SQL("WITH c AS (SELECT {cols}, {g} AS __g FROM {t} WHERE {w}) ").format(
            cols=cols, t=src.sql, w=where.sql, g=geom)
        params = [*src.params, *where.params]
    measures = [sql.SQL("count(*)")]
    names = ["count"]
    g_geog = as_geography(sql.SQL("__g"), srid)
    if family in ("LineString", "Geometry"):
        measures.append(sql.SQL("sum(ST_Length({}))").format(g_geog))
        names.append("length_m")
    if family in ("Polygon", "Geometry"):
        measures.append(sql.SQL("sum(ST_Area({}))").format(g_geog))
        names.append("area_m2")
    for c in sums:
        measures.append(sql.SQL("sum({})").format(sql.Identifier(c)))
        names.append(f"sum:{c}")
    for c in avgs:
        measures.append(sql.SQL("avg({})").format(sql.Identifier(c)))
        names.append(f"avg:{c}")
    stmt = clip + sql.SQL("SELECT GROUPING(__key), __key, {} FROM c GROUP BY GROUPING SETS ((), (__key)) "
                          "ORDER BY GROUPING(__key) DESC, count(*) DESC, __key LIMIT %s").format(
        sql.SQL(", ").join(measures))
    params.append(MAX_GROUPS + 2)
    try:
        async with db.connection(read_only=True, heavy=True,
                                 budget_ms=budget_for(principal, settings)) as conn:
            rows = await (await conn.execute(stmt, params)).fetchall()
    except QUERY_ERRORS as exc:
        raise bad_query(exc) from None

    def entry(row) -> dict:
        out: dict[str, Any] = {}
        for name, value in zip(names, row[2:]):
            if value is not None and not isinstance(value, int):
                value = round(float(value), 3)
            if ":" in name:
                kind, col = name.split(":", 1)
                out.setdefault(kind, {})[col] = value
            else:
                out[name] = value if value is not None else 0
        return out

    total = next((entry(r) for r in rows if r[0] == 1), {"count": 0})
    groups = [{"value": r[1], **entry(r)} for r in rows if r[0] == 0] if group else []
    doc_out = {"collection": layer.id, "area": area_desc, "groupBy": group, "total": total,
               "groups": groups[:MAX_GROUPS], "groupsTruncated": len(groups) > MAX_GROUPS,
               "units": {"length_m": "metre (geodesic)", "area_m2": "square metre (geodesic)"}}
    if layer.licence:
        doc_out["licence"] = layer.licence
    if layer.attribution:
        doc_out["attribution"] = layer.attribution
    return FastJSONResponse(doc_out)


@router.get("/collections/{collectionId}/stats", summary="Summary statistics inside an area")
async def stats(collection_id: CollectionId, request: Request, registry: RegistryDep, principal: PrincipalDep,
                db: Db, settings: SettingsDep):
    return await _stats(collection_id, request, registry, principal, db, settings, None)


@router.post("/collections/{collectionId}/stats", summary="Summary statistics inside a posted geometry")
async def stats_post(collection_id: CollectionId, request: Request, registry: RegistryDep,
                     principal: PrincipalDep, db: Db, settings: SettingsDep):
    vector_layer(registry, collection_id, principal)
    doc = await read_geometry_body(request, settings)
    return await _stats(collection_id, request, registry, principal, db, settings, doc)

