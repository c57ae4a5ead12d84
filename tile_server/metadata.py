"""Tile metadata: TileJSON 3.0, OGC API Tiles documents and minimal MapLibre styles.

Every tile URL template carries ``v=<data version(s)>``: the version is ignored by the tile
route (the registry's current version keys the cache) but it changes the URL whenever the
data changes, so a browser or proxy never shows a tile cached from older data.

Styles need no glyphs and no sprite: they draw fills, lines and circles only (no text
labels), so MapLibre never fetches font PBFs (see CLIENTS.md).
"""

from __future__ import annotations

import hashlib
import math
from urllib.parse import quote

from morecantile import TileMatrixSet

from layers import selection
from layers.catalog import Layer
from layers.relation import arg_schema
from tile_server.bands import band_attributes
from tile_server.sources import TileTuning
from tile_server.tms import geographic_bounds, get_tms, tms_ids, tms_srid

_FIELD_TYPES = {"text": "String", "bigint": "Number", "integer": "Number", "smallint": "Number",
                "double precision": "Number", "real": "Number", "numeric": "Number",
                "boolean": "Boolean"}
# Distinct, colour-blind-friendly defaults (Okabe-Ito), picked by a hash of the layer id.
_PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000")
OGC_REL = "http://www.opengis.net/def/rel/ogc/1.0"


def versions(layers: list[Layer]) -> str:
    """The ``v`` URL parameter: the data version, or a short hash of several."""
    if len(layers) == 1:
        return str(layers[0].data_version)
    joined = ",".join(f"{l.id}@{l.data_version}" for l in layers)
    return hashlib.sha1(joined.encode()).hexdigest()[:12]


def layer_color(layer: Layer) -> str:
    style = layer.default_style or {}
    color = style.get("color") if isinstance(style, dict) else None
    if isinstance(color, str) and color.startswith("#") and len(color) in (4, 7):
        return color
    return _PALETTE[int(hashlib.md5(layer.id.encode()).hexdigest(), 16) % len(_PALETTE)]


def union_bounds(layers: list[Layer], grid: TileMatrixSet) -> list[float]:
    """Union of the layers' lon/lat extents, clipped to the grid (the grid if none is known)."""
    gb = geographic_bounds(grid)
    exts = [l.extent for l in layers if l.extent]
    if not exts:
        return gb
    b = [min(e[0] for e in exts), min(e[1] for e in exts), max(e[2] for e in exts),
         max(e[3] for e in exts)]
    return [max(b[0], gb[0]), max(b[1], gb[1]), min(b[2], gb[2]), min(b[3], gb[3])]


def fit_zoom(bounds: list[float], minzoom: int, maxzoom: int) -> int:
    """A zoom at which ``bounds`` fills a ~1000 px view (Web-Mercator-ish), within the range."""
    width = max(bounds[2] - bounds[0], bounds[3] - bounds[1], 1e-6)
    z = math.floor(math.log2(360.0 / width * 1000 / 512))
    return max(minzoom, min(maxzoom, z))


def _fields(layer: Layer) -> dict[str, str]:
    types = {a.name: a.type for a in layer.attributes}
    detail = band_attributes(layer, "detail", TileTuning())
    return {n: _FIELD_TYPES.get(types.get(n, "text"), "String") for n in detail}


def _zoom_range(layers: list[Layer], grid: TileMatrixSet) -> tuple[int, int]:
    lo = max(grid.minzoom, min(l.minzoom for l in layers))
    hi = min(grid.maxzoom, max(l.maxzoom for l in layers))
    return lo, max(lo, hi)


def vector_tiles_url(layers: list[Layer], grid: TileMatrixSet, base: str, query: str = "") -> str:
    """The XYZ template of a layer's (or a composite's) vector tiles (``query``: more
    parameters, a function layer's arguments)."""
    extra = f"&{query}" if query else ""
    if len(layers) == 1:
        return (f"{base}/collections/{layers[0].id}/tiles/{grid.id}/{{z}}/{{x}}/{{y}}.mvt"
                f"?v={versions(layers)}{extra}")
    ids = quote(",".join(l.id for l in layers), safe=",")
    return f"{base}/tiles/{grid.id}/{{z}}/{{x}}/{{y}}.mvt?layers={ids}&v={versions(layers)}{extra}"


def raster_tiles_url(layer: Layer, grid: TileMatrixSet, base: str, fmt: str, query: str = "") -> str:
    extra = f"&{query}" if query else ""
    return (f"{base}/collections/{layer.id}/tiles/{grid.id}/{{z}}/{{x}}/{{y}}.{fmt}"
            f"?v={layer.data_version}{extra}")


def _tilejson_common(layers: list[Layer], grid: TileMatrixSet, tiles: str) -> dict:
    lo, hi = _zoom_range(layers, grid)
    bounds = union_bounds(layers, grid)
    center = [(bounds[0] + bounds[2]) / 2, (bounds[1] + bounds[3]) / 2, fit_zoom(bounds, lo, hi)]
    attribution = "; ".join(dict.fromkeys(l.attribution for l in layers if l.attribution))
    doc = {
        "tilejson": "3.0.0",
        "name": layers[0].title if len(layers) == 1 else " + ".join(l.title for l in layers),
        "description": layers[0].description if len(layers) == 1 else
        "Composite of " + ", ".join(l.id for l in layers),
        "version": "1.0.0",
        "scheme": "xyz",
        "tiles": [tiles],
        "minzoom": lo,
        "maxzoom": hi,
        "bounds": bounds,
        "center": center,
        "tileMatrixSet": grid.id,
        "crs": f"EPSG:{tms_srid(grid.id)}",
    }
    if attribution:
        doc["attribution"] = attribution
    return doc


def vector_tilejson(layers: list[Layer], grid: TileMatrixSet, base: str, tuning: TileTuning,
                    query: str = "") -> dict:
    """TileJSON 3.0 for one vector layer or a composite.

    ``vector_layers[].fields`` lists every attribute of the detail zooms (from
    ``detail_from_zoom``); below ``overview_below_zoom`` tiles carry only
    ``overview_fields``, and in between ``mid_fields`` (extension keys).  A layer
    that selects features by class (:mod:`layers.selection`) states its rule in
    ``feature_minzoom`` (another extension key), so a client knows why alleys are missing
    at z12.
    """
    doc = _tilejson_common(layers, grid, vector_tiles_url(layers, grid, base, query))
    doc["vector_layers"] = [_vector_layer(l, grid, tuning) for l in layers]
    doc["overview_below_zoom"] = tuning.overview_below_zoom
    doc["detail_from_zoom"] = tuning.detail_from_zoom
    return doc


def _vector_layer(l: Layer, grid: TileMatrixSet, tuning: TileTuning) -> dict:
    entry = {
        "id": l.id,
        "description": l.title,
        "minzoom": max(grid.minzoom, l.minzoom),
        "maxzoom": min(grid.maxzoom, l.maxzoom),
        "fields": _fields(l),
        "overview_fields": band_attributes(l, "overview", tuning),
        "mid_fields": band_attributes(l, "mid", tuning),
        "geometry_type": l.geometry_type,
    }
    rule = selection.for_layer(l)
    if rule is not None:
        entry["feature_minzoom"] = rule.model_dump(exclude_none=True)
    if l.relation is not None and l.relation.is_function:
        # Extension keys: the query parameters of this function layer's tiles.
        entry["parameters"] = {a.name: arg_schema(a) for a in l.relation.args}
        entry["required_parameters"] = [a.name for a in l.relation.args if a.required]
    return entry


def raster_tilejson(layer: Layer, grid: TileMatrixSet, base: str, fmt: str, query: str = "") -> dict:
    """TileJSON 3.0 for a raster layer (``query`` carries rescale/colormap/bidx through)."""
    doc = _tilejson_common([layer], grid, raster_tiles_url(layer, grid, base, fmt, query))
    doc["format"] = fmt
    return doc


# --- OGC API Tiles ---------------------------------------------------------------------
def tms_list(base: str) -> dict:
    """``/tileMatrixSets``: the grids offered, each with a link to its definition."""

    return {"tileMatrixSets": [{
        "id": tid, "title": get_tms(tid).title or tid, "uri": get_tms(tid).uri,
        "crs": str(get_tms(tid).crs.root) if hasattr(get_tms(tid).crs, "root") else None,
        "links": [{"rel": "self", "type": "application/json", "title": tid,
                   "href": f"{base}/tileMatrixSets/{tid}"}]} for tid in tms_ids()]}


def tms_document(grid: TileMatrixSet) -> dict:
    """``/tileMatrixSets/{id}``: the OGC Two Dimensional Tile Matrix Set 2.0 document."""
    return grid.model_dump(exclude_none=True, mode="json", by_alias=True)


def _tileset_links(grid: TileMatrixSet, base: str, self_href: str, tiles_href: str,
                   media_type: str, tilejson_href: str) -> list[dict]:
    return [
        {"rel": "self", "type": "application/json", "href": self_href},
        {"rel": f"{OGC_REL}/tiling-scheme", "type": "application/json",
         "href": f"{base}/tileMatrixSets/{grid.id}"},
        {"rel": "item", "type": media_type, "templated": True, "href": tiles_href},
        {"rel": "describedby", "type": "application/json", "title": "TileJSON",
         "href": tilejson_href},
    ]


def _ogc_template(xyz: str) -> str:
    return xyz.replace("{z}", "{tileMatrix}").replace("{x}", "{tileCol}").replace("{y}", "{tileRow}")


def tileset(layers: list[Layer], grid: TileMatrixSet, base: str, self_href: str,
            tilejson_href: str) -> dict:
    """One tileset (OGC API Tiles ``/collections/{id}/tiles/{tms}`` or ``/tiles/{tms}``)."""
    raster = len(layers) == 1 and layers[0].kind == "raster"
    if raster:
        xyz = raster_tiles_url(layers[0], grid, base, "png")
        media = "image/png"
    else:
        xyz = vector_tiles_url(layers, grid, base)
        media = "application/vnd.mapbox-vector-tile"
    lo, hi = _zoom_range(layers, grid)
    doc = {
        "title": layers[0].title if len(layers) == 1 else " + ".join(l.id for l in layers),
        "dataType": "map" if raster else "vector",
        "crs": f"http://www.opengis.net/def/crs/EPSG/0/{tms_srid(grid.id)}",
        "tileMatrixSetId": grid.id,
        "tileMatrixSetURI": grid.uri,
        "tileMatrixSetLimits": [_limits(grid, z, union_bounds(layers, grid)) for z in range(lo, hi + 1)],
        "boundingBox": {"lowerLeft": union_bounds(layers, grid)[:2],
                        "upperRight": union_bounds(layers, grid)[2:],
                        "crs": "http://www.opengis.net/def/crs/OGC/1.3/CRS84"},
        "links": _tileset_links(grid, base, self_href, _ogc_template(xyz), media, tilejson_href),
    }
    if not raster:
        doc["layers"] = [{"id": l.id, "title": l.title, "dataType": "vector",
                          "geometryDimension": _dimension(l), "minTileMatrix": str(max(lo, l.minzoom)),
                          "maxTileMatrix": str(min(hi, l.maxzoom)),
                          "propertiesSchema": {"type": "object", "properties": {
                              n: {"type": t.lower()} for n, t in _fields(l).items()}}}
                         for l in layers]
    return doc


def _dimension(layer: Layer) -> int:
    g = (layer.geometry_type or "").lower()
    return 0 if "point" in g else 1 if "line" in g else 2


def _limits(grid: TileMatrixSet, z: int, bounds: list[float]) -> dict:
    """The tile row/col range of ``bounds`` at zoom ``z`` (TileMatrixSetLimits)."""
    matrix = grid.matrix(z)
    try:
        # truncate: extents that reach the poles or the antimeridian still map into the grid.
        ul = grid.tile(bounds[0], bounds[3], z, truncate=True)
        lr = grid.tile(bounds[2], bounds[1], z, truncate=True)
        cols = sorted((ul.x, lr.x))
        rows = sorted((ul.y, lr.y))
    except Exception:  # noqa: BLE001 - a grid that cannot place the box: the whole matrix
        cols, rows = [0, matrix.matrixWidth - 1], [0, matrix.matrixHeight - 1]
    clamp = lambda v, n: max(0, min(n - 1, v))
    return {"tileMatrix": str(z),
            "minTileRow": clamp(rows[0], matrix.matrixHeight), "maxTileRow": clamp(rows[1], matrix.matrixHeight),
            "minTileCol": clamp(cols[0], matrix.matrixWidth), "maxTileCol": clamp(cols[1], matrix.matrixWidth)}


def tilesets_list(layers: list[Layer], base: str, self_base: str, query: str = "") -> dict:
    """A tilesets list: one entry per grid, linking to its tileset document."""
    q = f"?{query}" if query else ""
    raster = len(layers) == 1 and layers[0].kind == "raster"
    entries = []
    for tid in tms_ids():
        entries.append({
            "title": f"{', '.join(l.id for l in layers)} in {tid}",
            "dataType": "map" if raster else "vector",
            "crs": f"http://www.opengis.net/def/crs/EPSG/0/{tms_srid(tid)}",
            "tileMatrixSetId": tid,
            "links": [
                {"rel": "self", "type": "application/json", "href": f"{self_base}/{tid}{q}"},
                {"rel": f"{OGC_REL}/tiling-scheme", "type": "application/json",
                 "href": f"{base}/tileMatrixSets/{tid}"},
            ],
        })
    return {"tilesets": entries, "links": [
        {"rel": "self", "type": "application/json", "href": f"{self_base}{q}"}]}


# --- MapLibre style ----------------------------------------------------------------------
def style(layers: list[Layer], grid: TileMatrixSet, base: str, name: str | None = None) -> dict:
    """A minimal MapLibre style (v8) that shows ``layers`` over a plain background.

    Vector layers share one source (a composite tile when several); raster layers get a
    raster source each.  No ``glyphs`` or ``sprite``: nothing here needs them.
    """
    vectors = [l for l in layers if l.kind == "vector"]
    rasters = [l for l in layers if l.kind == "raster"]
    sources: dict[str, dict] = {}
    style_layers: list[dict] = [{"id": "background", "type": "background",
                                 "paint": {"background-color": "#f4f1ea"}}]
    for l in rasters:
        lo, hi = _zoom_range([l], grid)
        sources[f"raster-{l.id}"] = {"type": "raster", "tiles": [raster_tiles_url(l, grid, base, "png")],
                                     "tileSize": 256, "minzoom": lo, "maxzoom": hi,
                                     "bounds": union_bounds([l], grid)}
        style_layers.append({"id": l.id, "type": "raster", "source": f"raster-{l.id}",
                             "paint": {"raster-opacity": 0.85}})
    if vectors:
        lo, hi = _zoom_range(vectors, grid)
        sources["vector"] = {"type": "vector", "tiles": [vector_tiles_url(vectors, grid, base)],
                             "minzoom": lo, "maxzoom": hi, "bounds": union_bounds(vectors, grid)}
        # Polygons first, then lines, then points: small things stay on top.
        order = sorted(vectors, key=lambda l: 2 - _dimension(l))
        for l in order:
            color = layer_color(l)
            common = {"source": "vector", "source-layer": l.id, "minzoom": max(lo, l.minzoom)}
            if l.maxzoom < 24:
                common["maxzoom"] = l.maxzoom + 1   # MapLibre's maxzoom is exclusive
            dim = _dimension(l)
            if dim == 2:
                style_layers.append({"id": f"{l.id}-fill", "type": "fill", **common,
                                     "paint": {"fill-color": color, "fill-opacity": 0.35}})
                style_layers.append({"id": f"{l.id}-outline", "type": "line", **common,
                                     "paint": {"line-color": color, "line-width": 1}})
            elif dim == 1:
                style_layers.append({"id": f"{l.id}-line", "type": "line", **common,
                                     "layout": {"line-cap": "round", "line-join": "round"},
                                     "paint": {"line-color": color, "line-width": [
                                         "interpolate", ["linear"], ["zoom"], 10, 1, 16, 4]}})
            else:
                style_layers.append({"id": f"{l.id}-circle", "type": "circle", **common,
                                     "paint": {"circle-color": color, "circle-radius": [
                                         "interpolate", ["linear"], ["zoom"], 10, 2, 16, 6],
                                         "circle-stroke-color": "#ffffff", "circle-stroke-width": 1}})
    bounds = union_bounds(layers, grid)
    lo, hi = _zoom_range(layers, grid)
    return {
        "version": 8,
        "name": name or " + ".join(l.title for l in layers),
        "metadata": {"gis:bounds": bounds, "gis:minzoom": lo, "gis:layers": [l.id for l in layers]},
        "center": [(bounds[0] + bounds[2]) / 2, (bounds[1] + bounds[3]) / 2],
        "zoom": fit_zoom(bounds, lo, hi),
        "sources": sources,
        "layers": style_layers,
    }


__all__ = ["raster_tilejson", "style", "tileset", "tilesets_list",
           "tms_document", "tms_list", "vector_tilejson", "versions"]
