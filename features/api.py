"""HTTP routes of OGC API Features (Parts 1, 2 and 3) over the layer registry.

Routes: ``/`` (landing page), ``/conformance``, ``/api`` (the OpenAPI document, as GDAL
probes it), ``/collections``, ``/collections/{id}``, ``/collections/{id}/items``,
``/collections/{id}/items/{fid}``, ``/collections/{id}/queryables``; the spatial operators
(:mod:`features.spatial_api`) and exports (:mod:`features.export_api`) are mounted on
the same router.

Access: every route resolves its layer through ``registry.readable(id, principal)`` and lists
through ``registry.visible(principal)``; a layer the caller may not read is the same 404 as
a layer that does not exist.  JSON is the default; ``f=html`` or a browser's
``Accept: text/html`` gives the HTML view.
"""

from __future__ import annotations

import copy
from typing import Annotated

import orjson
from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse, Response

from features import edit_api, export_api, spatial_api
from features import html as views
from features.cql import FILTER_LANGS, queryables_schema
from features.http import (
    GEOJSON,
    base_url,
    geojson_response,
    items_links,
    link,
    only_params,
    url_with,
    vector_layer,
    wants_html,
)
from features.query import function_args, items_query
from features.sql import collection_bytes, feature_etag, fetch_feature, fetch_page
from gis_platform.db.pool import budget_for
from gis_platform.deps import Db, SettingsDep
from gis_platform.errors import NotFound
from gis_platform.responses import FastJSONResponse
from gis_platform.security import PrincipalDep
from layers.catalog import Layer
from layers.registry import RegistryDep
from layers.relation import arg_schema, id_in_path
from layers.scoped import all_as_seen_by, as_seen_by
from layers.spatial import CRS84, EPSG_URI, supported_crs

router = APIRouter(tags=["features"])

OPENAPI_TYPE = "application/vnd.oai.openapi+json;version=3.0"
CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-common-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/html",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
    "http://www.opengis.net/spec/ogcapi-features-2/1.0/conf/crs",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/filter",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/features-filter",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables-query-parameters",
    "http://www.opengis.net/spec/ogcapi-records-1/1.0/conf/sorting",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-text",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-json",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-cql2",
    "http://www.opengis.net/spec/cql2/1.0/conf/advanced-comparison-operators",
    "http://www.opengis.net/spec/cql2/1.0/conf/case-insensitive-comparison",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-functions",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-functions-plus",
    "http://www.opengis.net/spec/cql2/1.0/conf/spatial-functions",
    "http://www.opengis.net/spec/cql2/1.0/conf/arithmetic",
    "http://www.opengis.net/spec/ogcapi-features-4/1.0/conf/create-replace-delete",
    "http://www.opengis.net/spec/ogcapi-features-4/1.0/conf/update",
    "http://www.opengis.net/spec/ogcapi-features-4/1.0/conf/features",
    "http://www.opengis.net/spec/ogcapi-features-5/1.0/conf/schemas",
]

CollectionId = Annotated[str, Path(alias="collectionId", description="Collection (layer) id", max_length=200)]


def negotiate(request: Request, doc: dict, html, media_type: str = "application/json") -> Response:
    """HTML (``html(doc)``) for browsers and ``f=html``, else the JSON document."""
    if wants_html(request):
        return HTMLResponse(html(doc))
    return Response(orjson.dumps(doc), media_type=media_type)


# --- landing page, conformance, API ----------------------------------------------------------
@router.get("/", summary="Landing page (OGC API)", response_class=FastJSONResponse)
async def landing(request: Request):
    only_params(request, {"f"})
    base = base_url(request)
    links = [
        link(f"{base}/?f=json", "self", "application/json", "This document"),
        link(f"{base}/?f=html", "alternate", "text/html", "This document as HTML"),
        link(f"{base}/api", "service-desc", OPENAPI_TYPE, "The API definition (OpenAPI)"),
        link(f"{base}/docs", "service-doc", "text/html", "The API documentation"),
        link(f"{base}/conformance", "conformance", "application/json", "Conformance classes"),
        link(f"{base}/collections", "data", "application/json", "The collections (layers)"),
    ]
    if any(getattr(r, "path", "").startswith("/tiles") for r in request.app.routes):
        links.append(link(f"{base}/tiles", "tiles", "application/json", "Tiles"))
    doc = {"title": request.app.title, "description": request.app.description, "links": links}
    return negotiate(request, doc, views.landing_html)


@router.get("/conformance", summary="Conformance classes")
async def conformance(request: Request):
    only_params(request, {"f"})
    return negotiate(request, {"conformsTo": CONFORMANCE},
                     lambda doc: views.conformance_html(doc["conformsTo"]))


@router.get("/api", summary="The OpenAPI document, with one items path per readable collection")
async def api_document(request: Request, registry: RegistryDep, principal: PrincipalDep):
    """The app's OpenAPI document plus ``/collections/<id>/items`` for each collection the
    caller may read, listing its queryables as query parameters (as GDAL's OAPIF driver and
    other clients look for them) and the accepted ``filter-lang`` values."""
    doc = copy.deepcopy(request.app.openapi())
    template = doc.get("paths", {}).get("/collections/{collectionId}/items", {}).get("get")
    if template:
        base_params = [p for p in template.get("parameters", []) if p.get("in") == "query"
                       and p.get("name") != "filter-lang"]
        for layer in registry.visible(principal):
            if not layer.has_rows:
                continue
            schema = queryables_schema(layer, "")["properties"]
            args = layer.relation.args if layer.relation is not None else []
            params = [{"name": a.name, "in": "query", "required": a.required,
                       "description": a.description or f"Argument {a.name} ({a.type}) of the "
                                                       "function that computes this layer",
                       "schema": arg_schema(a)} for a in args]
            params += [*base_params, {"name": "filter-lang", "in": "query", "required": False,
                                      "schema": {"type": "string", "enum": list(FILTER_LANGS)}}]
            params += [{"name": name, "in": "query", "required": False, "style": "form", "explode": False,
                        "schema": {k: v for k, v in prop.items() if k in ("type", "format")}}
                       for name, prop in schema.items() if name != "geometry"]
            op = {k: v for k, v in template.items() if k not in ("parameters", "operationId")}
            op.update(summary=f"Features of {layer.title}", parameters=params,
                      operationId=f"getFeatures_{layer.id}")
            doc["paths"][f"/collections/{layer.id}/items"] = {"get": op}
    return Response(orjson.dumps(doc), media_type=OPENAPI_TYPE)


# GDAL given "OAPIF:http://host/" asks for "//api"; answer it rather than 404.
router.add_api_route("//api", api_document, methods=["GET"], include_in_schema=False)


# --- collections -----------------------------------------------------------------------------
def collection_doc(layer: Layer, request: Request) -> dict:
    """The collection description (Part 1 + Part 2 ``crs``/``storageCrs``)."""
    base = base_url(request)
    cid = layer.id
    items = f"{base}/collections/{cid}/items"
    links = [
        link(f"{base}/collections/{cid}?f=json", "self", "application/json", "This collection"),
        link(f"{base}/collections/{cid}?f=html", "alternate", "text/html", "This collection as HTML"),
        link(f"{items}?f=json", "items", GEOJSON, "Features"),
        link(f"{items}?f=html", "items", "text/html", "Features as HTML"),
        link(f"{base}/collections/{cid}/queryables", "http://www.opengis.net/def/rel/ogc/1.0/queryables",
              "application/schema+json", "Queryables"),
        link(f"{base}/collections/{cid}/export?format=gpkg", "enclosure", "application/geopackage+sqlite3",
              "Download as GeoPackage"),
    ]
    if layer.licence and layer.licence.startswith(("http://", "https://")):
        links.append(link(layer.licence, "license", "text/html", "Licence"))
    crs = list(supported_crs(request.app.state.settings.features))
    storage = CRS84 if layer.storage_srid == 4326 else EPSG_URI.format(layer.storage_srid)
    doc = {"id": cid, "title": layer.title, "description": layer.description or "",
           "keywords": layer.keywords, "itemType": "feature", "links": links,
           "crs": crs, "numberOfFeatures": layer.feature_count}
    if storage in crs:
        doc["storageCrs"] = storage
    if layer.current_extent:
        doc["extent"] = {"spatial": {"bbox": [layer.current_extent], "crs": CRS84}}
    if layer.licence:
        doc["license"] = layer.licence
    if layer.attribution:
        doc["attribution"] = layer.attribution
    if layer.geometry_type:
        doc["geometryType"] = layer.geometry_type
    return doc


@router.get("/collections", summary="The feature collections the caller may read")
async def collections(request: Request, registry: RegistryDep, principal: PrincipalDep, db: Db):
    only_params(request, {"f"})
    base = base_url(request)
    layers = [l for l in registry.visible(principal) if l.has_rows]
    docs = [collection_doc(layer, request) for layer in await all_as_seen_by(layers, principal, db)]
    doc = {"links": [link(f"{base}/collections?f=json", "self", "application/json", "Collections"),
                     link(f"{base}/collections?f=html", "alternate", "text/html", "Collections as HTML")],
           "collections": docs, "crs": list(supported_crs(request.app.state.settings.features))}
    return negotiate(request, doc, views.collections_html)


@router.get("/collections/{collectionId}", summary="One feature collection")
async def collection(collection_id: CollectionId, request: Request, registry: RegistryDep,
                     principal: PrincipalDep, db: Db):
    layer = await as_seen_by(vector_layer(registry, collection_id, principal), principal, db)
    only_params(request, {"f"})
    return negotiate(request, collection_doc(layer, request), views.collection_html)


@router.get("/collections/{collectionId}/queryables", summary="Queryables (JSON Schema)")
async def queryables(collection_id: CollectionId, request: Request, registry: RegistryDep,
                     principal: PrincipalDep):
    layer = vector_layer(registry, collection_id, principal)
    only_params(request, {"f"})
    doc = queryables_schema(layer, f"{base_url(request)}/collections/{layer.id}/queryables")

    return negotiate(request, doc, lambda d: views.queryables_html(d, layer.id, layer.title),
                     "application/schema+json")


# --- items -----------------------------------------------------------------------------------
_ITEMS_QUERY_DOC = {
    "bbox": "minx,miny,maxx,maxy (CRS84 lon/lat unless bbox-crs)",
    "limit": "Features per page (default and maximum from the settings)",
    "offset": "Start position (use the next/prev links)",
    "properties": "Comma-separated attribute names to return",
    "sortby": "Comma-separated attributes, '-' prefix for descending",
    "datetime": "Instant or interval on the layer's time column",
    "filter": "CQL2 filter", "filter-lang": "cql2-text (default) or cql2-json",
    "filter-crs": "CRS of geometry literals in the filter", "crs": "Output CRS",
    "bbox-crs": "CRS of bbox",
}


@router.get("/collections/{collectionId}/items", summary="Features (GeoJSON or HTML)",
            response_class=Response, responses={200: {"content": {GEOJSON: {}, "text/html": {}}}})
async def items(collection_id: CollectionId, request: Request, registry: RegistryDep,
                principal: PrincipalDep, db: Db, settings: SettingsDep,
                bbox: Annotated[str | None, Query(description=_ITEMS_QUERY_DOC["bbox"])] = None,
                limit: Annotated[str | None, Query(description=_ITEMS_QUERY_DOC["limit"])] = None,
                offset: Annotated[str | None, Query(description=_ITEMS_QUERY_DOC["offset"])] = None,
                properties: Annotated[str | None, Query(description=_ITEMS_QUERY_DOC["properties"])] = None,
                sortby: Annotated[str | None, Query(description=_ITEMS_QUERY_DOC["sortby"])] = None,
                datetime: Annotated[str | None, Query(description=_ITEMS_QUERY_DOC["datetime"])] = None,
                filter: Annotated[str | None, Query(description=_ITEMS_QUERY_DOC["filter"])] = None,
                crs: Annotated[str | None, Query(description=_ITEMS_QUERY_DOC["crs"])] = None,
                bbox_crs: Annotated[str | None, Query(alias="bbox-crs", description=_ITEMS_QUERY_DOC["bbox-crs"])] = None,
                filter_lang: Annotated[str | None, Query(alias="filter-lang",
                                                         description=_ITEMS_QUERY_DOC["filter-lang"])] = None,
                filter_crs: Annotated[str | None, Query(alias="filter-crs",
                                                        description=_ITEMS_QUERY_DOC["filter-crs"])] = None,
                f: Annotated[str | None, Query(description="json (default) or html")] = None):
    return await serve_items(request, collection_id, registry, principal, db, settings)


async def serve_items(request: Request, collection_id: str, registry, principal, db,
                      settings) -> Response:
    """The body of the items route, shared with its fast route (:func:`on_startup`)."""
    layer = vector_layer(registry, collection_id, principal)
    html = wants_html(request)
    q = await items_query(request.query_params, layer, settings, principal=principal)
    # A CQL2 filter can ask for anything (a spatial test against a big polygon): it counts as
    # an expensive query; a plain page does not.
    filtered = "filter" in request.query_params
    async with db.connection(read_only=True, heavy=filtered,
                             budget_ms=budget_for(principal, settings) if filtered else None) as conn:
        page = await fetch_page(conn, q)
    path = f"/collections/{layer.id}/items"
    links = items_links(request, layer, q, page.number_matched, page.number_returned, path)
    extra = {"licence": layer.licence, "attribution": layer.attribution}
    body = collection_bytes(page.features, matched=page.number_matched, links=links,
                            extra={k: v for k, v in extra.items() if v})
    if html:
        doc = orjson.loads(body)
        for link in doc["links"]:
            if link["rel"] == "alternate":
                link["href"] = url_with(request, path, f="json")
        return HTMLResponse(views.items_html(doc, layer.id, layer.title, q.selected_attributes()))
    return geojson_response(body, q)


@router.get("/collections/{collectionId}/items/{featureId}", summary="One feature",
            response_class=Response, responses={200: {"content": {GEOJSON: {}, "text/html": {}}}})
async def item(collection_id: CollectionId, feature_id: Annotated[str, Path(alias="featureId", max_length=400)],
               request: Request, registry: RegistryDep, principal: PrincipalDep, db: Db,
               settings: SettingsDep):
    layer = vector_layer(registry, collection_id, principal)
    only_params(request, {"f", "crs", "properties", "asOf", *function_args(layer)})
    html = wants_html(request)
    q = await items_query(request.query_params, layer, settings, principal=principal, paging=False)
    if layer.rows.id_kind == "none":
        raise NotFound(f"Features of collection '{layer.id}' have no stable id: its source "
                       f"{layer.relation.kind} has no key column. Ask the publisher to name one "
                       "(--id-column), or query the items with a filter.")
    async with db.connection(read_only=True) as conn:
        text = await fetch_feature(conn, q, feature_id)
        etag = await feature_etag(conn, layer, feature_id) if text is not None and layer.editable else None
    if text is None:
        raise NotFound(f"No feature '{feature_id[:40]}' in collection '{layer.id}'.")
    base = base_url(request)
    path = f"/collections/{layer.id}/items/{id_in_path(feature_id)}"
    links = [link(url_with(request, path, f="json"), "self", GEOJSON, "This feature"),
             link(url_with(request, path, f="html"), "alternate", "text/html", "This feature as HTML"),
             link(f"{base}/collections/{layer.id}", "collection", "application/json", layer.title)]
    body = text[:-1] + ',"links":' + orjson.dumps(links).decode() + "}"
    headers = {"ETag": etag} if etag else None
    if html:
        return HTMLResponse(views.feature_html(orjson.loads(body), layer.id, layer.title),
                            headers=headers)
    return geojson_response(body.encode(), q, headers)


router.include_router(spatial_api.router)
router.include_router(export_api.router)
router.include_router(edit_api.router)
