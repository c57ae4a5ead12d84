"""HTTP routes of OGC API Features (Parts 1, 2 and 3) over the layer registry.

Routes: ``/`` (landing page), ``/conformance``, ``/api`` (the OpenAPI document, as GDAL
probes it), ``/collections``, ``/collections/{id}``, ``/collections/{id}/items``,
``/collections/{id}/items/{fid}``, ``/collections/{id}/queryables``; the spatial operators
(:mod:`features.spatial_api`) and exports (:mod:`features.export_api`) are mounted on
the same router.

Access: every route resolves its layer through ``registry.readable(id, principal)`` and lists
through ``registry.visible(principal)``; a layer the caller may not read is the same 404 as
a layer that does not exist.  JSON is the default; ``f=html`` or a browser's
``Accept: text/html`` gives the HTML view.  A JSON document's links are also its HTTP
``Link`` header.

Clients find the rest through OGC links alone, so they must be the registered ones: the
landing page and each collection link their vector tilesets
(``.../rel/ogc/1.0/tilesets-vector``, served by :mod:`tile_server.api`), and ``/conformance``
lists the OGC API Tiles and Tile Matrix Set classes those routes implement (GDAL's
``OGCAPI:`` driver looks for both).  ``/api`` is OpenAPI **3.0** (:func:`openapi30`), the
version the landing page and ``/conformance`` declare and GDAL reads, with the items
parameters typed (GDAL 3.8+ chooses its page size from ``limit``'s default and maximum).
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
from features.export import FORMATS
from features.http import (
    GEOJSON,
    base_url,
    geojson_response,
    items_links,
    link,
    link_header,
    only_params,
    url_with,
    vector_layer,
    wants_html,
)
from features.query import ITEMS_PARAMS, function_args, items_query
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
OGC_REL = "http://www.opengis.net/def/rel/ogc/1.0"
# What tile_server.api serves: tilesets of a collection and of a set of layers (/tiles),
# MVT and PNG tiles, the grids and the tileset metadata (with tileMatrixSetLimits) as JSON.
TILES_CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/tileset",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/tilesets-list",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/geodata-tilesets",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/dataset-tilesets",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/mvt",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/png",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/oas30",
    "http://www.opengis.net/spec/tms/2.0/conf/tilematrixset",
    "http://www.opengis.net/spec/tms/2.0/conf/json-tilematrixset",
    "http://www.opengis.net/spec/tms/2.0/conf/tilesetmetadata",
    "http://www.opengis.net/spec/tms/2.0/conf/json-tilesetmetadata",
    "http://www.opengis.net/spec/tms/2.0/conf/tilematrixsetlimits",
    "http://www.opengis.net/spec/tms/2.0/conf/json-tilematrixsetlimits",
]

ITEMS_PATH = "/collections/{collectionId}/items"
CollectionId = Annotated[str, Path(alias="collectionId", description="Collection (layer) id", max_length=200)]


def negotiate(request: Request, doc: dict, html, media_type: str = "application/json") -> Response:
    """HTML (``html(doc)``) for browsers and ``f=html``, else the JSON document with its
    links as a ``Link`` header."""
    if wants_html(request):
        return HTMLResponse(html(doc))
    return Response(orjson.dumps(doc), media_type=media_type,
                    headers=link_header(doc.get("links", [])))


def serves_tiles(request: Request) -> bool:
    """Whether the tile routes are mounted (the tile_server feature is composed): asked of
    the API definition (FastAPI builds it once), as ``app.routes`` holds included routers."""
    return "/tileMatrixSets" in request.app.openapi().get("paths", {})


# --- landing page, conformance, API ----------------------------------------------------------
@router.get("/", summary="Landing page (OGC API)", response_class=FastJSONResponse)
async def landing(request: Request, registry: RegistryDep, principal: PrincipalDep,
                  settings: SettingsDep):
    only_params(request, {"f"})
    base = base_url(request)
    links = [
        link(f"{base}/?f=json", "self", "application/json", "This document"),
        link(f"{base}/?f=html", "alternate", "text/html", "This document as HTML"),
        link(f"{base}/api", "service-desc", OPENAPI_TYPE, "The API definition (OpenAPI 3.0)"),
        link(f"{base}/docs", "service-doc", "text/html", "The API documentation"),
        link(f"{base}/conformance", "conformance", "application/json", "Conformance classes"),
        link(f"{base}/collections", "data", "application/json", "The collections (layers)"),
    ]
    if serves_tiles(request):
        links.append(link(f"{base}/tileMatrixSets", f"{OGC_REL}/tiling-schemes",
                          "application/json", "Tile matrix sets"))
        # /tiles combines every vector layer the caller sees, up to tiles.max_layers (more is
        # a 400 there): link it only when it answers.
        vectors = sum(l.kind == "vector" for l in registry.visible(principal))
        if 0 < vectors <= settings.tiles.max_layers:
            links.append(link(f"{base}/tiles", f"{OGC_REL}/tilesets-vector", "application/json",
                              "Vector tilesets of all the layers"))
    doc = {"title": request.app.title, "description": request.app.description, "links": links}
    return negotiate(request, doc, views.landing_html)


@router.get("/conformance", summary="Conformance classes")
async def conformance(request: Request):
    only_params(request, {"f"})
    classes = CONFORMANCE + (TILES_CONFORMANCE if serves_tiles(request) else [])
    return negotiate(request, {"conformsTo": classes},
                     lambda doc: views.conformance_html(doc["conformsTo"]))


@router.get("/api", summary="The OpenAPI 3.0 document, with one items path per readable collection")
async def api_document(request: Request, registry: RegistryDep, principal: PrincipalDep,
                       settings: SettingsDep):
    """The app's OpenAPI document as OpenAPI 3.0, plus ``/collections/<id>/items`` for each
    collection the caller may read, listing its queryables as query parameters (as GDAL's
    OAPIF driver and other clients look for them) and the accepted ``filter-lang`` values.

    ``limit``, ``offset``, ``bbox`` and ``datetime`` are typed parameters of
    ``components/parameters``, referenced by every items path: GDAL 3.8+ takes its page size
    from the ``limit`` it finds by ``$ref`` (its default, at least 1000, up to its maximum).
    """
    doc = copy.deepcopy(request.app.openapi())
    typed = items_parameters(settings.features)
    doc.setdefault("components", {})["parameters"] = typed
    template = doc.get("paths", {}).get(ITEMS_PATH, {}).get("get")
    if template:
        template["parameters"] = [{"$ref": f"#/components/parameters/{p['name']}"}
                                  if p.get("name") in typed else p
                                  for p in template.get("parameters", [])]
        base_params = [p for p in template["parameters"] if p.get("in") != "path"
                       and p.get("name") != "filter-lang"]
        for layer in registry.visible(principal):
            if layer.has_rows:
                doc["paths"][f"/collections/{layer.id}/items"] = {"get": _items_operation(
                    layer, template, base_params)}
    return Response(orjson.dumps(openapi30(doc)), media_type=OPENAPI_TYPE)


def _items_operation(layer: Layer, template: dict, base_params: list[dict]) -> dict:
    """The items operation of one collection: its function arguments, the shared
    parameters, ``filter-lang`` and one equality parameter per queryable."""
    args = layer.relation.args if layer.relation is not None else []
    params = [{"name": a.name, "in": "query", "required": a.required,
               "description": a.description or f"Argument {a.name} ({a.type}) of the "
                                               "function that computes this layer",
               "schema": arg_schema(a)} for a in args]
    params += [*base_params, {"name": "filter-lang", "in": "query", "required": False,
                              "schema": {"type": "string", "enum": list(FILTER_LANGS)}}]
    # A queryable named like a parameter (an attribute "limit") is reached through filter.
    taken = ITEMS_PARAMS | {a.name for a in args}
    params += [{"name": name, "in": "query", "required": False, "style": "form", "explode": False,
                "schema": {k: v for k, v in prop.items() if k in ("type", "format")}}
               for name, prop in queryables_schema(layer, "")["properties"].items()
               if name != "geometry" and name not in taken]
    op = {k: v for k, v in template.items() if k not in ("parameters", "operationId")}
    op.update(summary=f"Features of {layer.title}", parameters=params,
              operationId=f"getFeatures_{layer.id}")
    return op


def items_parameters(features) -> dict:
    """``components/parameters``: the typed paging and filtering parameters of the items
    routes (OGC API Features Part 1's own definitions, with this server's numbers)."""
    maximum = int(features.max_limit)
    default = min(int(features.default_limit), maximum)
    query = lambda name, schema: {"name": name, "in": "query", "required": False,
                                  "description": _ITEMS_QUERY_DOC[name], "schema": schema,
                                  "style": "form", "explode": False}
    return {
        "limit": query("limit", {"type": "integer", "minimum": 1, "maximum": maximum,
                                 "default": default}),
        "offset": query("offset", {"type": "integer", "minimum": 0, "default": 0}),
        "bbox": query("bbox", {"type": "array", "items": {"type": "number"},
                               "oneOf": [{"minItems": 4, "maxItems": 4},
                                         {"minItems": 6, "maxItems": 6}]}),
        "datetime": query("datetime", {"type": "string"}),
    }


# --- OpenAPI 3.1 -> 3.0 ------------------------------------------------------------------------
# FastAPI writes OpenAPI 3.1 (JSON Schema 2020-12); OGC API Features declares, and GDAL, QGIS
# and OWSLib read, OpenAPI 3.0, whose Schema Object is an older JSON Schema dialect.
_SCHEMA_LISTS = ("allOf", "anyOf", "oneOf")
_SCHEMA_ONE = ("items", "not", "additionalProperties")
_DROPPED = {"$schema", "$id", "$anchor", "$comment", "$defs", "contentEncoding", "prefixItems",
            "unevaluatedProperties", "unevaluatedItems", "dependentRequired",
            "dependentSchemas", "if", "then", "else", "propertyNames", "contains",
            "minContains", "maxContains", "patternProperties"}
_NULL = {"type": "null"}


def openapi30(doc: dict) -> dict:
    """An OpenAPI 3.1 document as a valid OpenAPI 3.0.3 one (what FastAPI emits: every
    Schema Object rewritten by :func:`schema30`, the 3.1-only members dropped)."""
    out = {k: v for k, v in doc.items() if k not in ("webhooks", "jsonSchemaDialect")}
    out["openapi"] = "3.0.3"
    out["info"] = {k: v for k, v in doc["info"].items() if k != "summary"}
    if "license" in out["info"]:
        out["info"]["license"] = {k: v for k, v in out["info"]["license"].items()
                                  if k != "identifier"}
    return _schemas30(out)


def _schemas30(node):
    """Every Schema Object in an OpenAPI document (under ``schema`` and
    ``components/schemas``) through :func:`schema30`."""
    if isinstance(node, list):
        return [_schemas30(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for k, v in node.items():
        if k == "schema":
            out[k] = schema30(v)
        elif k == "schemas" and isinstance(v, dict):
            out[k] = {name: schema30(s) for name, s in v.items()}
        elif k != "pathItems":
            out[k] = _schemas30(v)
    return out


def schema30(s):
    """A JSON Schema 2020-12 schema as an OpenAPI 3.0 Schema Object: ``anyOf``/``type``
    with ``null`` -> ``nullable``, numeric ``exclusiveMinimum``/``Maximum`` -> the boolean
    form, ``examples`` -> ``example``, ``const`` -> a one-value ``enum``, a ``$ref`` with
    siblings -> ``allOf``, 3.1-only keywords dropped."""
    if not isinstance(s, dict):
        return s
    out: dict = {}
    for k, v in s.items():
        if k == "properties":
            out[k] = {name: schema30(p) for name, p in v.items()}
        elif k in ("anyOf", "oneOf"):
            out[k] = [schema30(m) for m in v if m != _NULL]
            if len(out[k]) < len(v):
                out["nullable"] = True
        elif k == "allOf":
            out[k] = [schema30(m) for m in v]
        elif k in _SCHEMA_ONE:
            out[k] = schema30(v)
        elif k in ("exclusiveMinimum", "exclusiveMaximum") and not isinstance(v, bool):
            out["minimum" if k == "exclusiveMinimum" else "maximum"] = v
            out[k] = True
        elif k == "examples" and isinstance(v, list):
            if v:
                out["example"] = v[0]
        elif k == "const":
            out["enum"] = [v]
        elif k == "contentMediaType":
            out.setdefault("format", "binary")
        elif k not in _DROPPED:
            out[k] = v
    return _collapse(out)


def _collapse(s: dict) -> dict:
    """``type`` lists and one-member unions that :func:`schema30` left, in 3.0 form."""
    types = s.get("type")
    if isinstance(types, list):
        kept = [t for t in types if t != "null"]
        if len(kept) < len(types):
            s["nullable"] = True
        s.pop("type")
        if len(kept) == 1:
            s["type"] = kept[0]
        elif kept:
            s["anyOf"] = [{"type": t} for t in kept]
    elif types == "null":
        s.pop("type")
        s.update(nullable=True, enum=[None])
    for key in _SCHEMA_LISTS:
        if key in s and len(s[key]) == 1 and "$ref" not in s[key][0]:
            member = s.pop(key)[0]
            s = {**member, **s}
    if "$ref" in s and len(s) > 1:
        s = {"allOf": [{"$ref": s.pop("$ref")}], **s}
    return s


# GDAL given "OAPIF:http://host/" asks for "//api"; answer it rather than 404.
router.add_api_route("//api", api_document, methods=["GET"], include_in_schema=False)


# --- collections -----------------------------------------------------------------------------
#: The export formats offered for download, in the order a person sees them.
DOWNLOADS = (("gpkg", "GeoPackage"), ("csv", "CSV"), ("geojson", "GeoJSON"))


def collection_doc(layer: Layer, request: Request, tiles: bool) -> dict:
    """The collection description (Part 1 + Part 2 ``crs``/``storageCrs``); ``tiles``: link
    its vector tilesets (:func:`serves_tiles`)."""
    base = base_url(request)
    cid = layer.id
    items = f"{base}/collections/{cid}/items"
    links = [
        link(f"{base}/collections/{cid}?f=json", "self", "application/json", "This collection"),
        link(f"{base}/collections/{cid}?f=html", "alternate", "text/html", "This collection as HTML"),
        # No ?f=json: JSON is the default, and GDAL 3.8+ finds this path in /api by the URL
        # (with a query string it finds nothing and pages by 1000 whatever the limits).
        link(items, "items", GEOJSON, "Features"),
        link(f"{items}?f=html", "items", "text/html", "Features as HTML"),
        link(f"{base}/collections/{cid}/queryables", f"{OGC_REL}/queryables",
             "application/schema+json", "Queryables"),
        # export.<ext>: a URL GDAL, QGIS and geopandas open in place (by its extension)
        *(link(f"{base}/collections/{cid}/export.{fmt}", "enclosure", FORMATS[fmt][0],
               f"Download as {name}") for fmt, name in DOWNLOADS),
    ]
    if tiles:
        links.append(link(f"{base}/collections/{cid}/tiles", f"{OGC_REL}/tilesets-vector",
                          "application/json", "Vector tilesets"))
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
    tiles = serves_tiles(request)
    docs = [collection_doc(layer, request, tiles)
            for layer in await all_as_seen_by(layers, principal, db)]
    doc = {"links": [link(f"{base}/collections?f=json", "self", "application/json", "Collections"),
                     link(f"{base}/collections?f=html", "alternate", "text/html", "Collections as HTML")],
           "collections": docs, "crs": list(supported_crs(request.app.state.settings.features))}
    return negotiate(request, doc, views.collections_html)


@router.get("/collections/{collectionId}", summary="One feature collection")
async def collection(collection_id: CollectionId, request: Request, registry: RegistryDep,
                     principal: PrincipalDep, db: Db):
    layer = await as_seen_by(vector_layer(registry, collection_id, principal), principal, db)
    only_params(request, {"f"})
    return negotiate(request, collection_doc(layer, request, serves_tiles(request)),
                     views.collection_html)


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
    "limit": "Features per page (default and maximum from the settings). A larger limit is "
             "clamped to the maximum: follow the next links for the rest, or download every "
             "feature at once from /collections/{collectionId}/export",
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
        # The whole result, not this page: same filters, no paging.
        downloads = [(name, url_with(request, f"/collections/{layer.id}/export.{fmt}",
                                     limit=None, offset=None, f=None))
                     for fmt, name in DOWNLOADS]
        return HTMLResponse(views.items_html(doc, layer.id, layer.title, q.selected_attributes(),
                                             q.offset, downloads))
    return geojson_response(body, q, links=links)


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
    return geojson_response(body.encode(), q, headers, links=links)


router.include_router(spatial_api.router)
router.include_router(export_api.router)
router.include_router(edit_api.router)
