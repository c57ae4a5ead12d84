"""HTTP routes of the tile server.

Tiles
    ``GET /collections/{id}/tiles/{tms}/{z}/{x}/{y}[.mvt|.pbf|.png|.webp]`` - one layer
    (OGC API Tiles shape; without an extension ``f=mvt|png|webp`` or the layer's kind decides).
    ``GET /tiles/{tms}/{z}/{x}/{y}.mvt?layers=a,b`` - several vector layers in one tile.
Metadata
    ``/tileMatrixSets``, ``/tileMatrixSets/{tms}``, ``/collections/{id}/tiles``,
    ``/collections/{id}/tiles/{tms}``, ``/collections/{id}/tiles/{tms}/tilejson.json``,
    ``/tiles?layers=``, ``/tiles/{tms}?layers=``, ``/tiles/{tms}/tilejson.json?layers=``,
    ``/collections/{id}/style.json``, ``/tiles/style.json?layers=``, ``/viewer?layers=``;
    ``/collections/{id}/labels`` - a polygon layer's label points (GeoJSON), which its
    style labels it by (see :mod:`tile_server.metadata`).

Responses: ``200`` with the tile; ``204 No Content`` for an empty tile (no feature or no
data pixel in it - also what OGC API Tiles recommends, and MapLibre treats it as an empty
tile); ``304`` when ``If-None-Match`` matches the ETag.  MVT bodies are stored gzipped and
sent with ``Content-Encoding: gzip`` to clients that accept it (decompressed otherwise),
always with ``Vary: Accept-Encoding``.  The app's GZipMiddleware leaves responses that
already carry ``Content-Encoding`` alone, and never compresses PNG/WebP, so nothing is
compressed twice.

Access: every layer goes through ``Registry.readable`` - a restricted layer is the same 404
as a missing one, in tiles, composites, TileJSON, tilesets and styles - and the caller's
access key is part of every cache key.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from morecantile import TileMatrixSet
from starlette.responses import HTMLResponse, Response

from gis_platform.deps import SettingsDep
from gis_platform.errors import InvalidParameter, NotFound
from gis_platform.principal import Principal
from gis_platform.security import PrincipalDep
from gis_platform.web import render
from layers.catalog import Layer
from layers.edit import parse_as_of
from layers.registry import Registry, RegistryDep
from layers.relation import parse_arg, parse_args
from layers.scoped import all_as_seen_by, as_seen_by
from tile_server import metadata
from tile_server.cache import key_hash
from tile_server.raster import RasterSource, parse_raster_params
from tile_server.service import TileResult, TileService
from tile_server.sources import MVT_MEDIA_TYPE, TileSource
from tile_server.tms import DEFAULT_TMS, check_tile, get_tms
from tile_server.vector import VectorSource

router = APIRouter(tags=["tiles"])

_Y_RE = re.compile(r"^(\d{1,9})(?:\.([A-Za-z0-9]{1,8}))?$")
_LAYER_LIST_RE = re.compile(r"^[a-z0-9_,\s]*$")


# ``async def`` on purpose: FastAPI runs a plain ``def`` dependency in the thread pool, one
# thread hop each, which measured as most of the time of a cached tile.  (The shared
# SettingsDep and RegistryDep are async for the same reason.)
async def get_tile_service(request: Request) -> TileService:
    return request.app.state.tile_service


async def get_grid(tileMatrixSetId: str) -> TileMatrixSet:
    return get_tms(tileMatrixSetId)


TileServiceDep = Annotated[TileService, Depends(get_tile_service)]
TmsDep = Annotated[TileMatrixSet, Depends(get_grid)]


def base_url(request: Request, settings) -> str:
    """The external base URL for links (``public_url`` behind a proxy)."""
    return (settings.http.public_url or str(request.base_url)).rstrip("/")


def parse_y(segment: str) -> tuple[int, str | None]:
    """``'1586.mvt'`` -> ``(1586, 'mvt')``; InvalidParameter for anything else."""
    m = _Y_RE.match(segment)
    if not m:
        raise InvalidParameter(f"Tile row {segment!r} must be a number, optionally with an "
                               "extension: .mvt, .pbf, .png or .webp.")
    return int(m.group(1)), (m.group(2) or "").lower() or None


def row_filters(principal: Principal, layers: list[Layer]) -> dict | None:
    """``{layer id: RowFilter}`` for the layers this caller sees only part of.

    The filter is ANDed into the tile statement (``VectorSource``) and its ``key`` goes into
    the cache key and ETag, so filtered and unfiltered callers never share a tile.
    """
    out = {}
    for layer in layers:
        rows = Registry.rows_of(principal, layer)
        if rows is not None:
            out[layer.id] = rows
    return out or None


def vector_source(service: TileService, layers: list[Layer], principal: Principal,
                  query: Mapping[str, str] | None = None) -> TileSource:
    """The vector source of already access-checked ``layers`` for this caller (and, for
    function layers, the arguments in ``query``)."""
    args = {l.id: parse_args(l.relation, query or {}) for l in layers if l.rows.is_function}
    as_of = None
    if query and query.get("asOf"):
        # The layers as they were then: each must keep a history.
        as_of = max(parse_as_of(query["asOf"], l) for l in layers)
    return service.source(layers, row_filters(principal, layers), args=args or None, as_of=as_of)


def _check_format(formats: tuple[str, ...], layer: Layer | None, fmt: str) -> None:
    if fmt in formats:
        return
    if layer is None:
        raise InvalidParameter(f"Composite tiles are vector tiles: ask for .mvt, not {fmt!r}.")
    kind, want = ("vector", ".mvt") if layer.kind == "vector" else ("raster", ".png or .webp")
    raise InvalidParameter(f"Layer '{layer.id}' is a {kind} layer: ask for {want} tiles, "
                           f"not {fmt!r}.")


def resolve_layers(text: str | None, registry: Registry, principal: Principal,
                   max_layers: int, *, filtered: bool = False, action: str = "read") -> list[Layer]:
    """The ``layers=a,b`` list: ids checked, duplicates dropped, capped; 404 for unreadable."""
    if text is None or not text.strip():
        raise InvalidParameter("Name the layers to combine: ?layers=districts,roads")
    if not _LAYER_LIST_RE.match(text):
        raise InvalidParameter(f"layers={text!r}: give comma-separated layer ids "
                               "(lower-case letters, digits and underscores).")
    ids = list(dict.fromkeys(p.strip() for p in text.split(",") if p.strip()))
    if not ids:
        raise InvalidParameter("Name the layers to combine: ?layers=districts,roads")
    if len(ids) > max_layers:
        raise InvalidParameter(f"Too many layers ({len(ids)}): one tile combines at most "
                               f"{max_layers}.")
    layers = [registry.readable(i, principal, filtered=filtered, action=action) for i in ids]
    raster = [l.id for l in layers if l.kind != "vector"]
    if raster:
        raise InvalidParameter(f"Composite vector tiles combine vector layers only; {raster} "
                               "are raster layers (use /collections/{id}/tiles/... for them).")
    return layers


def _accepts_gzip(request: Request) -> bool:
    for part in request.headers.get("accept-encoding", "").lower().split(","):
        coding, _, q = part.strip().partition(";")
        if coding.strip() in ("gzip", "*"):
            q = q.strip()
            if q.startswith("q="):
                try:
                    return float(q[2:]) > 0
                except ValueError:
                    return False
            return True
    return False


def _not_modified(request: Request, etag: str) -> bool:
    header = request.headers.get("if-none-match")
    if not header:
        return False
    if header.strip() == "*":
        return True
    # Weak comparison (RFC 9110 13.1.2): W/"x" matches "x".
    strip = lambda t: t.strip().removeprefix("W/")
    return strip(etag) in {strip(t) for t in header.split(",")}


def _headers(etag: str | None, media_type: str, settings, private: bool = False,
             live: bool = False) -> dict[str, str]:
    if etag is None:        # rendered per request from inputs that change unseen
        return {"Cache-Control": "no-store", **({"Vary": "Accept-Encoding"}
                                                if media_type == MVT_MEDIA_TYPE else {})}
    control = settings.tiles.live_cache_control if live else settings.tiles.cache_control
    if live and "public" not in control and "private" not in control:
        control = "public, " + control
    vary = ["Accept-Encoding"] if media_type == MVT_MEDIA_TYPE else []
    if private:
        # A tile of an internal or restricted layer: only the caller's own browser may keep
        # it; no shared cache (CDN, proxy, nginx) may store it or hand it to someone else.
        parts = [p.strip() for p in control.split(",") if p.strip() and p.strip() != "public"]
        control = ", ".join(["private", *[p for p in parts if not p.startswith("s-maxage")]])
        vary += ["Authorization", "X-API-Key"]
    headers = {"ETag": etag, "Cache-Control": control}
    if vary:
        headers["Vary"] = ", ".join(vary)
    return headers


def _tile_response(request: Request, result: TileResult, settings, private: bool = False,
                   live: bool = False, cacheable: bool = True) -> Response:
    headers = _headers(result.etag if cacheable else None, result.media_type, settings, private,
                       live)
    if result.empty:
        return Response(status_code=204, headers=headers)
    body = result.body
    if result.encoding == "gzip":
        if _accepts_gzip(request):
            headers["Content-Encoding"] = "gzip"
        else:
            body = result.identity()
    return Response(body, media_type=result.media_type, headers=headers)


async def _serve(request: Request, service: TileService, source, grid: TileMatrixSet, tile,
                 params_key: str, principal: Principal, settings, layers: list[Layer]) -> Response:
    h = key_hash(service.key(source, grid, tile, params_key, principal.access_key))
    etag = service.etag_of(h)
    private = any(l.access_level != "public" for l in layers)
    if source.cacheable and _not_modified(request, etag):
        return Response(status_code=304,
                        headers=_headers(etag, source.media_type, settings, private, source.live))
    result = await service.tile(source, grid, tile, h=h)
    return _tile_response(request, result, settings, private, source.live, source.cacheable)


# The bodies of the two tile routes, shared with the fast path (tile_server.fastpath), so
# both answer with the same checks in the same order and the same bytes and headers.
async def serve_collection_tile(request: Request, collection_id: str, grid: TileMatrixSet,
                                z: int, x: int, y: str, registry: Registry, principal: Principal,
                                service: TileService, settings, f: str | None,
                                bidx: str | None, rescale: list[str],
                                colormap: str | None) -> Response:
    row, ext = parse_y(y)
    tile = check_tile(grid, z, x, row)
    layer = registry.readable(collection_id, principal, filtered=True)
    fmt = (ext or f or ("mvt" if layer.kind == "vector" else "png")).lower()
    if layer.kind == "vector":
        _check_format(VectorSource.FORMATS, layer, fmt)
        source: TileSource = vector_source(service, [layer], principal, request.query_params)
        params_key = ""
    else:
        _check_format(RasterSource.FORMATS, layer, fmt)
        params = parse_raster_params(layer, fmt, bidx, rescale, colormap)
        source, params_key = service.source([layer], raster=params), params.key()
    source.check_zoom(grid, tile)
    return await _serve(request, service, source, grid, tile, params_key, principal, settings,
                        [layer])


async def serve_composite_tile(request: Request, grid: TileMatrixSet, z: int, x: int, y: str,
                               registry: Registry, principal: Principal, service: TileService,
                               settings, layers: str | None, f: str | None) -> Response:
    row, ext = parse_y(y)
    tile = check_tile(grid, z, x, row)
    chosen = resolve_layers(layers, registry, principal, service.tuning.max_layers, filtered=True)
    fmt = (ext or f or "mvt").lower()
    _check_format(VectorSource.FORMATS, None, fmt)
    source = vector_source(service, chosen, principal, request.query_params)
    source.check_zoom(grid, tile)
    return await _serve(request, service, source, grid, tile, "", principal, settings, chosen)


# --- tiles -------------------------------------------------------------------------------
_TILE_RESPONSES = {200: {"content": {MVT_MEDIA_TYPE: {}, "image/png": {}, "image/webp": {}},
                         "description": "The tile"},
                   204: {"description": "Empty tile: no feature or data pixel in it"},
                   304: {"description": "Not modified (If-None-Match)"}}


@router.get("/collections/{collectionId}/tiles/{tileMatrixSetId}/{z}/{x}/{y}",
            summary="A tile of one layer (vector: MVT, raster: PNG/WebP)",
            response_class=Response, responses=_TILE_RESPONSES)
async def collection_tile(
    request: Request, collectionId: str, grid: TmsDep, z: int, x: int, y: str,
    registry: RegistryDep, principal: PrincipalDep, service: TileServiceDep, settings: SettingsDep,
    f: Annotated[str | None, Query(description="mvt, png or webp (instead of an extension)")] = None,
    bidx: Annotated[str | None, Query(description="Raster bands, e.g. 1 or 3,2,1")] = None,
    rescale: Annotated[list[str], Query(description="Raster 'min,max' (repeat per band)")] = [],  # noqa: B006
    colormap: Annotated[str | None, Query(description="Raster colormap name, e.g. viridis")] = None,
) -> Response:
    return await serve_collection_tile(request, collectionId, grid, z, x, y, registry, principal,
                                       service, settings, f, bidx, rescale, colormap)


@router.get("/tiles/{tileMatrixSetId}/{z}/{x}/{y}",
            summary="A composite vector tile of several layers (?layers=a,b)",
            response_class=Response, responses=_TILE_RESPONSES)
async def composite_tile(
    request: Request, grid: TmsDep, z: int, x: int, y: str, registry: RegistryDep,
    principal: PrincipalDep, service: TileServiceDep, settings: SettingsDep,
    layers: Annotated[str | None, Query(description="Comma-separated vector layer ids")] = None,
    f: Annotated[str | None, Query(description="mvt (instead of the .mvt extension)")] = None,
) -> Response:
    return await serve_composite_tile(request, grid, z, x, y, registry, principal, service,
                                      settings, layers, f)


# --- metadata ----------------------------------------------------------------------------
@router.get("/tileMatrixSets", summary="Tile matrix sets offered (OGC API Tiles)")
async def list_tile_matrix_sets(request: Request, settings: SettingsDep) -> dict:
    return metadata.tms_list(base_url(request, settings))


@router.get("/tileMatrixSets/{tileMatrixSetId}", summary="A tile matrix set definition")
async def tile_matrix_set(grid: TmsDep) -> dict:
    return metadata.tms_document(grid)


@router.get("/collections/{collectionId}/tiles", summary="Tilesets of a layer (OGC API Tiles)")
async def collection_tilesets(request: Request, collectionId: str, registry: RegistryDep,
                              principal: PrincipalDep, settings: SettingsDep) -> dict:
    layer = await _describe(request, registry, collectionId, principal)
    base = base_url(request, settings)
    return metadata.tilesets_list([layer], base, f"{base}/collections/{layer.id}/tiles")


@router.get("/collections/{collectionId}/tiles/{tileMatrixSetId}", summary="A layer's tileset")
async def collection_tileset(request: Request, collectionId: str, grid: TmsDep,
                             registry: RegistryDep, principal: PrincipalDep,
                             service: TileServiceDep, settings: SettingsDep) -> dict:
    layer = await _describe(request, registry, collectionId, principal)
    base = base_url(request, settings)
    href = f"{base}/collections/{layer.id}/tiles/{grid.id}"
    return metadata.tileset([layer], grid, base, href, f"{href}/tilejson.json", service.tuning)


@router.get("/collections/{collectionId}/tiles/{tileMatrixSetId}/tilejson.json",
            summary="TileJSON 3.0 of a layer")
async def collection_tilejson(
    request: Request, collectionId: str, grid: TmsDep, registry: RegistryDep,
    principal: PrincipalDep, service: TileServiceDep, settings: SettingsDep,
    format: Annotated[str | None, Query(description="Raster: png or webp")] = None,
    bidx: str | None = None, rescale: Annotated[list[str], Query()] = [],  # noqa: B006
    colormap: str | None = None,
) -> dict:
    layer = await _describe(request, registry, collectionId, principal)
    base = base_url(request, settings)
    if layer.kind == "vector":
        # A function layer: the arguments given here are carried into the tile URLs
        # (checked now); vector_layers[].parameters lists them all.
        given = {a.name: request.query_params[a.name] for a in
                 (layer.relation.args if layer.rows.is_function else [])
                 if a.name in request.query_params}
        for a in layer.relation.args if given else []:
            if a.name in given:
                parse_arg(a, given[a.name])
        return service.source([layer]).tilejson(grid, base, urlencode(given))
    params = parse_raster_params(layer, format or "png", bidx, rescale, colormap)
    query = urlencode([(k, v) for k, v in [("bidx", bidx), ("colormap", params.colormap)] if v]
                      + [("rescale", r) for r in rescale])
    return service.source([layer], raster=params).tilejson(grid, base, query)


@router.get("/collections/{collectionId}/style.json",
            summary="A MapLibre style showing this layer, credited and labelled by name")
async def collection_style(request: Request, collectionId: str, registry: RegistryDep,
                           principal: PrincipalDep, service: TileServiceDep,
                           settings: SettingsDep) -> dict:
    layer = await _describe(request, registry, collectionId, principal)
    return metadata.style([layer], get_tms(DEFAULT_TMS), base_url(request, settings),
                          service.tuning)


@router.get("/collections/{collectionId}/labels",
            summary="Label points of a polygon layer (GeoJSON: one point and name per feature)",
            response_class=Response,
            responses={200: {"content": {"application/geo+json": {}}},
                       304: {"description": "Not modified (If-None-Match)"}})
async def collection_labels(request: Request, collectionId: str, registry: RegistryDep,
                            principal: PrincipalDep, service: TileServiceDep,
                            settings: SettingsDep) -> Response:
    """A point inside each named feature, for a style's labels: a polygon labelled from its
    tiles would be labelled once in every tile it crosses.  The caller's rows only; ETag and
    caching as the layer's tiles."""
    # Names are row data: read access (not "describe"), the caller's own rows counted.
    layer = registry.readable(collectionId, principal, filtered=True)
    layer = await as_seen_by(layer, principal, request.app.state.db)
    if not metadata.labels_by_point(layer):
        raise NotFound(f"Layer '{layer.id}' has no label points: they are made for polygon "
                       f"layers of up to {metadata.LABEL_POINTS_MAX:,} features with a name "
                       "attribute (name_ko, name, *_nm or name_en).")
    field = metadata.label_field(layer)
    rows = Registry.rows_of(principal, layer)
    etag = 'W/"l' + key_hash(f"{layer.id}|{layer.version_tag}|{field}|"
                             f"{rows.key if rows is not None else ''}")[:32] + '"'
    source = service.source([layer])
    headers = _headers(etag, "application/geo+json", settings,
                       private=layer.access_level != "public", live=source.live)
    if _not_modified(request, etag):
        return Response(status_code=304, headers=headers)
    stmt, params = metadata.label_points_sql(layer, field, rows)
    async with request.app.state.db.connection(read_only=True) as conn:
        body = (await (await conn.execute(stmt, params)).fetchone())[0]
    return Response(body, media_type="application/geo+json", headers=headers)


async def _describe(request: Request, registry: Registry, layer_id: str,
                    principal: Principal) -> Layer:
    """A layer's metadata as this caller may see it (a row-scoped key: its rows' extent)."""
    layer = registry.readable(layer_id, principal, filtered=True, action="describe")
    return await as_seen_by(layer, principal, request.app.state.db)


def _dataset_layers(layers: str | None, registry: Registry, principal: Principal,
                    service: TileService) -> list[Layer]:
    """``layers=`` or, if omitted, every vector layer the caller may read (up to the cap)."""
    if layers is None:
        visible = [l for l in registry.visible(principal) if l.kind == "vector"]
        if not visible:
            raise InvalidParameter("There are no vector layers to combine yet.")
        if len(visible) > service.tuning.max_layers:
            raise InvalidParameter(
                f"{len(visible)} vector layers are available; choose at most "
                f"{service.tuning.max_layers} with ?layers=a,b.")
        return visible
    # metadata only (no rows): a row-scoped caller may read it
    return resolve_layers(layers, registry, principal, service.tuning.max_layers, filtered=True,
                          action="describe")


# Declared before /tiles/{tileMatrixSetId} so that 'style.json' is not taken for a grid id.
@router.get("/tiles/style.json", summary="A MapLibre style for several layers (?layers=a,b)")
async def composite_style(request: Request, registry: RegistryDep, principal: PrincipalDep,
                          service: TileServiceDep, settings: SettingsDep,
                          layers: str | None = None) -> dict:
    if layers is None or not layers.strip():
        raise InvalidParameter("Name the layers to show: ?layers=districts,roads")
    ids = list(dict.fromkeys(p.strip() for p in layers.split(",") if p.strip()))
    if len(ids) > service.tuning.max_layers:
        raise InvalidParameter(f"Too many layers ({len(ids)}): a style shows at most "
                               f"{service.tuning.max_layers}.")
    chosen = [registry.readable(i, principal, filtered=True, action="describe") for i in ids]
    chosen = await all_as_seen_by(chosen, principal, request.app.state.db)
    return metadata.style(chosen, get_tms(DEFAULT_TMS), base_url(request, settings),
                          service.tuning)


@router.get("/tiles", summary="Tilesets of a composite of layers (OGC API Tiles)")
async def dataset_tilesets(request: Request, registry: RegistryDep, principal: PrincipalDep,
                           service: TileServiceDep, settings: SettingsDep,
                           layers: str | None = None) -> dict:
    chosen = await all_as_seen_by(_dataset_layers(layers, registry, principal, service), principal,
                                  request.app.state.db)
    base = base_url(request, settings)
    query = urlencode({"layers": ",".join(l.id for l in chosen)}, safe=",")
    return metadata.tilesets_list(chosen, base, f"{base}/tiles", query)


@router.get("/tiles/{tileMatrixSetId}", summary="The tileset of a composite of layers")
async def dataset_tileset(request: Request, grid: TmsDep, registry: RegistryDep,
                          principal: PrincipalDep, service: TileServiceDep, settings: SettingsDep,
                          layers: str | None = None) -> dict:
    chosen = await all_as_seen_by(_dataset_layers(layers, registry, principal, service), principal,
                                  request.app.state.db)
    base = base_url(request, settings)
    query = urlencode({"layers": ",".join(l.id for l in chosen)}, safe=",")
    return metadata.tileset(chosen, grid, base, f"{base}/tiles/{grid.id}?{query}",
                            f"{base}/tiles/{grid.id}/tilejson.json?{query}", service.tuning)


@router.get("/tiles/{tileMatrixSetId}/tilejson.json", summary="TileJSON 3.0 of a composite")
async def composite_tilejson(request: Request, grid: TmsDep, registry: RegistryDep,
                             principal: PrincipalDep, service: TileServiceDep,
                             settings: SettingsDep, layers: str | None = None) -> dict:
    chosen = resolve_layers(layers, registry, principal, service.tuning.max_layers,
                            filtered=True, action="describe")
    chosen = await all_as_seen_by(chosen, principal, request.app.state.db)
    return service.source(chosen).tilejson(grid, base_url(request, settings))


@router.get("/viewer", summary="A MapLibre page showing layers from these tiles",
            response_class=HTMLResponse)
async def viewer() -> HTMLResponse:
    """Static HTML: it reads ``?layers=`` itself and loads ``/tiles/style.json``."""
    return HTMLResponse(render("tiles/viewer.html"), headers={"Cache-Control": "no-cache"})
