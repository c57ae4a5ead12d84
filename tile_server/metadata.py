"""Tile metadata: TileJSON 3.0, OGC API Tiles documents and minimal MapLibre styles.

Every tile URL template carries ``v=<data version(s)>``: the version is ignored by the tile
route (the registry's current version keys the cache) but it changes the URL whenever the
data changes, so a browser or proxy never shows a tile cached from older data.

*Maximum zoom.*  Tiles exist up to a layer's catalog ``maxzoom`` (22 by default), but past
the zoom from which a tile carries every feature and attribute at full geometry
(:func:`data_maxzoom`: ``detail_from_zoom``, or the last zoom of the layer's selection by
class) deeper tiles only repeat it; for a raster, past its native resolution.  TileJSON,
tilesets and styles state that zoom, so clients overzoom it instead of fetching (and the
server rendering) ever more tiles of the same content.

*Credits.*  Whatever draws a layer credits its data (KOGL Type 1 and CC BY require it):
each source of a style, and TileJSON, carry ``attribution`` built from the catalog's
attribution (or source) and licence - HTML-escaped, since clients display it as HTML.

*Labels.*  A layer with a name attribute (:func:`label_field`) gets a symbol layer: lines
along the line, points beside the point, polygons at one label point per feature (from
``/collections/{id}/labels``: a polygon cut by tile edges would be labelled once per tile).
The text font is Noto Sans CJK KR, served as glyph PBFs from ``/static/glyphs``
(``scripts/build-glyphs.py``); Hangul may also be drawn by the browser's own font
(MapLibre's ``localIdeographFontFamily``).  Nothing here needs a sprite.
"""

from __future__ import annotations

import hashlib
import html
import math
from urllib.parse import quote

from morecantile import TileMatrixSet
from psycopg import sql

from gis_platform.access import RowFilter
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
#: The label font: its glyph PBFs are built by scripts/build-glyphs.py into /static/glyphs.
LABEL_FONT = "Noto Sans CJK KR Regular"
GLYPHS_PATH = "/static/glyphs/{fontstack}/{range}.pbf"
#: Polygon layers up to this many features get label points (a GeoJSON the browser loads
#: whole); bigger ones are drawn unlabelled.
LABEL_POINTS_MAX = 5000


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


def data_maxzoom(layer: Layer, grid: TileMatrixSet, tuning: TileTuning) -> int:
    """The deepest zoom whose tiles hold anything shallower tiles do not: clients overzoom it.

    A vector tile carries every attribute from ``tuning.detail_from_zoom`` and every feature
    from the last zoom of the layer's selection by class; deeper tiles only repeat them
    (more finely quantised: 1/16 px of that zoom at the default 4096 extent).  The one
    exception is a tile over more than ``max_features`` of a layer (20,000): a layer that
    dense needs a selection rule, whose last zoom then moves this one.  A raster stops at
    its native resolution.  Never beyond the layer's own ``maxzoom``, nor before its
    ``minzoom``.
    """
    lo, hi = max(grid.minzoom, layer.minzoom), min(grid.maxzoom, layer.maxzoom)
    if layer.kind == "raster":
        z = _native_zoom(layer, grid)
    else:
        rule = selection.for_layer(layer)
        z = max(tuning.detail_from_zoom, rule.max_zoom if rule is not None else 0)
    return max(lo, min(hi, hi if z is None else z))


def _native_zoom(layer: Layer, grid: TileMatrixSet) -> int | None:
    """The first zoom of ``grid`` whose pixels are at least as fine as the raster's."""
    info = layer.raster_info or {}
    width, height = info.get("width"), info.get("height")
    if not (layer.extent and width and height):
        return None
    w, s, e, n = layer.extent
    (x0, y0), (x1, y1) = grid.xy(w, s), grid.xy(e, n)
    res = min(abs(x1 - x0) / width, abs(y1 - y0) / height)
    return grid.zoom_for_res(res, zoom_level_strategy="upper") if res > 0 else None


def _zoom_range(layers: list[Layer], grid: TileMatrixSet, tuning: TileTuning) -> tuple[int, int]:
    lo = max(grid.minzoom, min(l.minzoom for l in layers))
    hi = max(data_maxzoom(l, grid, tuning) for l in layers)
    return lo, max(lo, hi)


def credit(layer: Layer) -> str | None:
    """Who to credit for a layer's data, as text: its attribution (else its source) and its
    licence, e.g. ``"Statistics Korea (SGIS) — KOGL Type 1"``; None when the catalog says
    nothing."""
    who = (layer.attribution or layer.source or "").strip().removesuffix(".")
    licence = (layer.licence or "").strip()
    if licence and licence not in who:
        return f"{who} — {licence}" if who else licence
    return who or None


def attribution(layers: list[Layer]) -> str | None:
    """The credits of ``layers``, each once, as the HTML that maps display (escaped text),
    separated as MapLibre separates its sources' (``|``)."""
    credits = dict.fromkeys(c for c in map(credit, layers) if c)
    return " | ".join(html.escape(c, quote=False) for c in credits) or None


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


def _tilejson_common(layers: list[Layer], grid: TileMatrixSet, tiles: str,
                     zooms: tuple[int, int]) -> dict:
    lo, hi = zooms
    bounds = union_bounds(layers, grid)
    center = [(bounds[0] + bounds[2]) / 2, (bounds[1] + bounds[3]) / 2, fit_zoom(bounds, lo, hi)]
    credits = attribution(layers)
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
    if credits:
        doc["attribution"] = credits
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
    doc = _tilejson_common(layers, grid, vector_tiles_url(layers, grid, base, query),
                           _zoom_range(layers, grid, tuning))
    doc["vector_layers"] = [_vector_layer(l, grid, tuning) for l in layers]
    doc["overview_below_zoom"] = tuning.overview_below_zoom
    doc["detail_from_zoom"] = tuning.detail_from_zoom
    return doc


def _vector_layer(l: Layer, grid: TileMatrixSet, tuning: TileTuning) -> dict:
    entry = {
        "id": l.id,
        "description": l.title,
        "minzoom": max(grid.minzoom, l.minzoom),
        "maxzoom": data_maxzoom(l, grid, tuning),
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
    doc = _tilejson_common([layer], grid, raster_tiles_url(layer, grid, base, fmt, query),
                           _zoom_range([layer], grid, TileTuning()))
    doc["format"] = fmt
    return doc


# --- OGC API Tiles ---------------------------------------------------------------------
def tms_list(base: str) -> dict:
    """``/tileMatrixSets``: the grids offered, each with a link to its definition."""

    return {"tileMatrixSets": [{
        "id": tid, "title": get_tms(tid).title or tid, "uri": get_tms(tid).uri,
        "crs": _grid_crs(get_tms(tid)),
        "links": [{"rel": "self", "type": "application/json", "title": tid,
                   "href": f"{base}/tileMatrixSets/{tid}"}]} for tid in tms_ids()]}


def _grid_crs(grid: TileMatrixSet) -> str:
    """The CRS URI a grid's matrix set declares (tms_srid stays the SRID PostGIS renders in)."""
    crs = grid.crs
    return str(crs.root) if hasattr(crs, "root") else str(crs)


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
            tilejson_href: str, tuning: TileTuning) -> dict:
    """One tileset (OGC API Tiles ``/collections/{id}/tiles/{tms}`` or ``/tiles/{tms}``)."""
    raster = len(layers) == 1 and layers[0].kind == "raster"
    if raster:
        xyz = raster_tiles_url(layers[0], grid, base, "png")
        media = "image/png"
    else:
        xyz = vector_tiles_url(layers, grid, base)
        media = "application/vnd.mapbox-vector-tile"
    lo, hi = _zoom_range(layers, grid, tuning)
    doc = {
        "title": layers[0].title if len(layers) == 1 else " + ".join(l.id for l in layers),
        "dataType": "map" if raster else "vector",
        "crs": _grid_crs(grid),
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
                          "maxTileMatrix": str(data_maxzoom(l, grid, tuning)),
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
            # the grid's own CRS (WorldCRS84Quad: CRS84, lon/lat), as its matrix set says
            "crs": _grid_crs(get_tms(tid)),
            "tileMatrixSetId": tid,
            # GDAL's OGCAPI driver chooses a grid (and honours TILEMATRIXSET=) by this URI
            "tileMatrixSetURI": get_tms(tid).uri,
            "links": [
                {"rel": "self", "type": "application/json", "href": f"{self_base}/{tid}{q}"},
                {"rel": f"{OGC_REL}/tiling-scheme", "type": "application/json",
                 "href": f"{base}/tileMatrixSets/{tid}"},
            ],
        })
    return {"tilesets": entries, "links": [
        {"rel": "self", "type": "application/json", "href": f"{self_base}{q}"}]}


# --- MapLibre style ----------------------------------------------------------------------
def style(layers: list[Layer], grid: TileMatrixSet, base: str, tuning: TileTuning,
          name: str | None = None) -> dict:
    """A minimal MapLibre style (v8) that shows ``layers`` over a plain background, credits
    their data and labels them by name.

    Vector layers share one source (a composite tile when several); raster layers get a
    raster source each; a labelled polygon layer gets a GeoJSON source of its label points.
    Sources end at :func:`data_maxzoom` (MapLibre overzooms from there); a layer whose own
    ``maxzoom`` is shallower than its composite source's is hidden past it, as its tiles
    leave it out.  ``glyphs`` only when something is labelled.
    """
    vectors = [l for l in layers if l.kind == "vector"]
    rasters = [l for l in layers if l.kind == "raster"]
    sources: dict[str, dict] = {}
    style_layers: list[dict] = [{"id": "background", "type": "background",
                                 "paint": {"background-color": "#f4f1ea"}}]
    for l in rasters:
        lo, hi = _zoom_range([l], grid, tuning)
        sources[f"raster-{l.id}"] = _credited({
            "type": "raster", "tiles": [raster_tiles_url(l, grid, base, "png")], "tileSize": 256,
            "minzoom": lo, "maxzoom": hi, "bounds": union_bounds([l], grid)}, [l])
        style_layers.append({"id": l.id, "type": "raster", "source": f"raster-{l.id}",
                             "paint": {"raster-opacity": 0.85}})
    labels: list[tuple[tuple[int, int], dict]] = []     # (placement rank, symbol layer)
    if vectors:
        lo, hi = _zoom_range(vectors, grid, tuning)
        sources["vector"] = _credited({
            "type": "vector", "tiles": [vector_tiles_url(vectors, grid, base)], "minzoom": lo,
            "maxzoom": hi, "bounds": union_bounds(vectors, grid)}, vectors)
        # Polygons first, then lines, then points: small things stay on top.
        for l in sorted(vectors, key=lambda l: 2 - _dimension(l)):
            common = {"source": "vector", "source-layer": l.id, "minzoom": max(lo, l.minzoom)}
            if l.maxzoom < hi:
                common["maxzoom"] = l.maxzoom + 1   # MapLibre's maxzoom is exclusive
            style_layers += _draw_layers(l, common)
            rank = (_dimension(l), -l.feature_count)
            labels += [(rank, s) for s in _label_layers(l, common, base, tuning, sources)]
    bounds = union_bounds(layers, grid)
    lo, hi = _zoom_range(layers, grid, tuning)
    doc = {
        "version": 8,
        "name": name or " + ".join(l.title for l in layers),
        "metadata": {"gis:bounds": bounds, "gis:minzoom": lo, "gis:layers": [l.id for l in layers]},
        "center": [(bounds[0] + bounds[2]) / 2, (bounds[1] + bounds[3]) / 2],
        "zoom": fit_zoom(bounds, lo, hi),
        "sources": sources,
        # MapLibre places the topmost symbols first, so they win collisions: area names last,
        # and of those the layer of fewest (largest) areas - districts over neighbourhoods.
        "layers": style_layers + [s for _, s in sorted(labels, key=lambda p: p[0])],
    }
    if labels:
        doc["glyphs"] = base + GLYPHS_PATH
    return doc


def _credited(source: dict, layers: list[Layer]) -> dict:
    credits = attribution(layers)
    return {**source, "attribution": credits} if credits else source


def _draw_layers(l: Layer, common: dict) -> list[dict]:
    color = layer_color(l)
    dim = _dimension(l)
    if dim == 2:
        return [{"id": f"{l.id}-fill", "type": "fill", **common,
                 "paint": {"fill-color": color, "fill-opacity": 0.35}},
                {"id": f"{l.id}-outline", "type": "line", **common,
                 "paint": {"line-color": color, "line-width": 1}}]
    if dim == 1:
        return [{"id": f"{l.id}-line", "type": "line", **common,
                 "layout": {"line-cap": "round", "line-join": "round"},
                 "paint": {"line-color": color, "line-width": [
                     "interpolate", ["linear"], ["zoom"], 10, 1, 16, 4]}}]
    return [{"id": f"{l.id}-circle", "type": "circle", **common,
             "paint": {"circle-color": color, "circle-radius": [
                 "interpolate", ["linear"], ["zoom"], 10, 2, 16, 6],
                 "circle-stroke-color": "#ffffff", "circle-stroke-width": 1}}]


# --- labels ------------------------------------------------------------------------------
# Text columns, in the order a label is looked for: the Korean name, the name, Korean public
# data's "*_nm" names (a Korean one before an English one), then an English name.
_TEXT_TYPES = {"text", "character varying", "varchar", "character", "char", "citext"}
_KOREAN_NAMES = ("name_ko", "name_kr", "name_kor")
_ENGLISH_NAMES = ("name_en", "name_eng")
# The first zoom at which lines and points are labelled (before it their names crowd).
_LABEL_FLOOR = {1: 12, 0: 14}
_TEXT_PAINT = {"text-color": "#333333", "text-halo-color": "#ffffff", "text-halo-width": 1.5}


def label_field(layer: Layer) -> str | None:
    """The attribute a layer is labelled by, or None: a text ``name_ko``, ``name``, ``*_nm``
    (``sig_kor_nm`` before ``sig_eng_nm``) or ``name_en`` column, in that order."""
    names = [a.name for a in layer.attributes
             if a.type.lower() in _TEXT_TYPES and not a.name.startswith("__")]

    def rank(n: str) -> tuple[int, int] | None:
        low = n.lower()
        english = low in _ENGLISH_NAMES or "eng" in low.split("_")
        if low in _KOREAN_NAMES:
            return 0, 0
        if low == "name":
            return 1, 0
        if low.endswith("_nm"):
            return 2, 2 if english else 0 if "kor" in low.split("_") else 1
        return (3, 0) if english else None

    ranked = sorted((r, i) for i, n in enumerate(names) if (r := rank(n)) is not None)
    return names[ranked[0][1]] if ranked else None


def labels_url(layer: Layer, base: str) -> str:
    """Where a polygon layer's label points are (versioned, as tile URLs are)."""
    return f"{base}/collections/{layer.id}/labels?v={versions([layer])}"


def labels_by_point(layer: Layer) -> bool:
    """Whether a layer is labelled from label points: a polygon layer with a name, small
    enough to send whole, whose rows can be read without arguments."""
    return (layer.kind == "vector" and _dimension(layer) == 2 and label_field(layer) is not None
            and layer.has_rows and not layer.rows.is_function
            and layer.feature_count <= LABEL_POINTS_MAX)


def _label_layers(l: Layer, common: dict, base: str, tuning: TileTuning,
                  sources: dict[str, dict]) -> list[dict]:
    """The symbol layer that names ``l``'s features (none without a name attribute); a
    polygon layer's label points are added to ``sources``."""
    field = label_field(l)
    dim = _dimension(l)
    if field is None or (dim == 2 and not labels_by_point(l)):
        return []
    layout = {"text-field": ["get", field], "text-font": [LABEL_FONT]}
    out = {"id": f"{l.id}-label", "type": "symbol"}
    if dim == 2:
        sources[f"labels-{l.id}"] = _credited({"type": "geojson", "data": labels_url(l, base)}, [l])
        where = {"source": f"labels-{l.id}", "minzoom": common["minzoom"],
                 **({"maxzoom": common["maxzoom"]} if "maxzoom" in common else {})}
        layout |= {"text-size": ["interpolate", ["linear"], ["zoom"], 10, 12, 14, 16],
                   "text-max-width": 7}
        return [{**out, **where, "layout": layout, "paint": _TEXT_PAINT}]
    where = {**common, "minzoom": max(common["minzoom"], _label_minzoom(l, field, tuning),
                                      _LABEL_FLOOR[dim])}
    if dim == 1:
        layout |= {"symbol-placement": "line", "text-size": 12}
    else:
        layout |= {"text-size": 11, "text-anchor": "top", "text-offset": [0, 0.6]}
    return [{**out, **where, "layout": layout, "paint": _TEXT_PAINT}]


def _label_minzoom(layer: Layer, field: str, tuning: TileTuning) -> int:
    """The first zoom whose tiles carry ``field`` (see :mod:`tile_server.bands`)."""
    if field in band_attributes(layer, "overview", tuning):
        return 0
    if field in band_attributes(layer, "mid", tuning):
        return tuning.overview_below_zoom
    return tuning.detail_from_zoom


def label_points_sql(layer: Layer, field: str, rows: RowFilter | None) -> tuple[sql.Composed, list]:
    """One statement returning a polygon layer's label points as a GeoJSON FeatureCollection
    (text): a point inside each named feature (``ST_PointOnSurface``: on the widest part of a
    multipolygon), with the name as its one property; at most ``LABEL_POINTS_MAX`` of them
    (a published relation may have grown since it was counted).  ``rows``: the caller's row
    filter (None: every row)."""
    src = layer.rows
    cond = rows.frag() if rows is not None else None
    col = sql.Identifier(field)
    stmt = sql.SQL(
        "SELECT json_build_object('type', 'FeatureCollection', 'features', coalesce(json_agg("
        "json_build_object('type', 'Feature', 'geometry', ST_AsGeoJSON(p, 6)::json, "
        "'properties', json_build_object({name}, label))), '[]'::json))::text "
        "FROM (SELECT ST_PointOnSurface({geom}) AS p, {col}::text AS label FROM {table} "
        "WHERE {col} IS NOT NULL AND {geom_raw} IS NOT NULL AND {cond} LIMIT {cap}) s"
    ).format(name=sql.Literal(field), geom=src.geom_in(4326), col=col, table=src.table(),
             geom_raw=src.geom(), cond=cond.sql if cond is not None else sql.SQL("TRUE"),
             cap=sql.Literal(LABEL_POINTS_MAX))
    return stmt, cond.params if cond is not None else []


__all__ = ["attribution", "data_maxzoom", "label_field", "label_points_sql", "labels_by_point",
           "raster_tilejson", "style", "tileset", "tilesets_list", "tms_document", "tms_list",
           "vector_tilejson", "versions"]
