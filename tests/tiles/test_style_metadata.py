"""Styles and TileJSON tell the truth: who to credit, what to label, where the data ends.

The demo-like city of ``tests/tiles/conftest.py`` with catalog credits, a restricted polygon
layer of blocks (names and district codes, for row scopes) and a layer whose polygons have
no name.  Every assertion is against the server's own answers or an independent oracle
(shapely for "inside", decoded MVTs for "deeper tiles repeat", Web-Mercator arithmetic for a
raster's native zoom).
"""

from __future__ import annotations

import gzip
import math
from collections.abc import Iterator

import geopandas as gpd
import morecantile
import numpy as np
import psycopg
import pytest
from psycopg.types.json import Jsonb
from shapely.geometry import box, shape

from layers.catalog import Attribute, Layer, LayerUpdate, update_layer
from layers.ingest import ingest_geodataframe
from tests.conftest import LiveServer, start_server
from tests.tiles.conftest import STUB_LAT, STUB_LON, decode, districts_gdf, wait_for
from tile_server.metadata import label_field

WM = morecantile.tms.get("WebMercatorQuad")
DISTRICT_CREDIT = "Statistics Korea (SGIS) — KOGL Type 1"
ROAD_CREDIT = "서울시 도로관리과 — CC BY 4.0"


def blocks_gdf() -> gpd.GeoDataFrame:
    """Four restricted blocks, two per district code."""
    cells = [box(126.92, 37.56, 126.94, 37.58), box(126.96, 37.56, 126.98, 37.58),
             box(127.02, 37.52, 127.04, 37.54), box(127.06, 37.52, 127.08, 37.54)]
    return gpd.GeoDataFrame({"blk_nm": ["가 블록", "나 블록", "다 블록", "라 블록"],
                             "district_code": ["11110", "11110", "11200", "11200"]},
                            geometry=cells, crs="EPSG:4326")


@pytest.fixture
def credited_city(city: str) -> str:
    """The tile city with credits in the catalog, plus ``blocks`` and unnamed ``zones``."""
    ingest_geodataframe(city, blocks_gdf(), "blocks", metadata={
        "title": "Blocks", "access_level": "restricted", "attribution": "Block survey",
        "licence": "internal"})
    zones = districts_gdf()[["code", "geometry"]]
    ingest_geodataframe(city, zones, "zones", metadata={"title": "Zones", "access_level": "public"})
    with psycopg.connect(city, autocommit=True) as conn:
        update_layer(conn, "districts", LayerUpdate(attribution="Statistics Korea (SGIS)",
                                                    licence="KOGL Type 1", source="SGIS 2018"))
        update_layer(conn, "roads", LayerUpdate(source="서울시 도로관리과", licence="CC BY 4.0"))
    return city


@pytest.fixture
def server(credited_city: str, tile_settings) -> Iterator[LiveServer]:
    srv = start_server(tile_settings())
    yield srv
    srv.stop()


@pytest.fixture
def anon(server: LiveServer):
    with server.client() as c:
        yield c


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


# --- credits ---------------------------------------------------------------------------
def test_style_sources_and_tilejson_credit_each_layers_data(anon):
    st = anon.get("/tiles/style.json?layers=districts,roads").json()
    credits = st["sources"]["vector"]["attribution"]
    assert DISTRICT_CREDIT in credits and ROAD_CREDIT in credits
    assert st["sources"]["labels-districts"]["attribution"] == DISTRICT_CREDIT
    assert anon.get("/collections/roads/style.json").json()["sources"]["vector"]["attribution"] \
        == ROAD_CREDIT
    tj = anon.get("/tiles/WebMercatorQuad/tilejson.json?layers=districts,roads").json()
    assert tj["attribution"] == f"{DISTRICT_CREDIT} | {ROAD_CREDIT}"
    assert anon.get("/collections/districts/tiles/WebMercatorQuad/tilejson.json").json()[
        "attribution"] == DISTRICT_CREDIT


def test_credits_are_escaped_because_maps_show_them_as_html(anon, credited_city, server):
    with psycopg.connect(credited_city, autocommit=True) as conn:
        update_layer(conn, "roads", LayerUpdate(attribution='<img src=x onerror="alert(1)">'))

    def credit():
        return anon.get("/collections/roads/style.json").json()["sources"]["vector"].get(
            "attribution", "")

    text = wait_for(lambda: "img" in credit() and credit())
    assert "<" not in text and text.startswith("&lt;img src=x onerror=\"alert(1)\"&gt;")


# --- labels ----------------------------------------------------------------------------
def test_label_field_prefers_korean_names_then_names_then_nm_columns():
    def layer(*cols: tuple[str, str]) -> Layer:
        return Layer(id="x", title="x", kind="vector", geometry_type="Polygon",
                     schema=[Attribute(name=n, type=t) for n, t in cols])

    assert label_field(layer(("name", "text"), ("name_ko", "text"))) == "name_ko"
    assert label_field(layer(("sig_eng_nm", "text"), ("sig_kor_nm", "text"))) == "sig_kor_nm"
    assert label_field(layer(("road_nm", "character varying"), ("name_en", "text"))) == "road_nm"
    assert label_field(layer(("code", "text"), ("name_en", "text"))) == "name_en"
    assert label_field(layer(("name", "bigint"), ("code", "text"))) is None
    assert label_field(layer(("note", "text"))) is None


def test_style_labels_polygons_by_points_and_lines_along_them_with_self_hosted_glyphs(anon, server):
    st = anon.get("/tiles/style.json?layers=districts,roads").json()
    assert st["glyphs"] == f"{server.url}/static/glyphs/{{fontstack}}/{{range}}.pbf"
    symbols = {l["id"]: l for l in st["layers"] if l["type"] == "symbol"}
    assert set(symbols) == {"districts-label", "roads-label"}
    district = symbols["districts-label"]
    assert district["source"] == "labels-districts"
    assert st["sources"]["labels-districts"]["type"] == "geojson"
    assert district["layout"]["text-field"] == ["get", "name"]
    road = symbols["roads-label"]
    assert (road["source"], road["source-layer"]) == ("vector", "roads")
    assert road["layout"]["symbol-placement"] == "line"
    assert st["layers"][-1]["id"] == "districts-label"     # area names placed first
    # Every font a label names has its glyphs here: a Latin/digit range and a Hangul one.
    fonts = {f for s in symbols.values() for f in s["layout"]["text-font"]}
    for font in fonts:
        for rng, char in (("0-255", "0"), ("44032-44287", "가")):
            r = anon.get(st["glyphs"].replace("{fontstack}", font).replace("{range}", rng))
            assert r.status_code == 200 and font.encode() in r.content
            assert _glyph_ids(r.content) >= {ord(char)}


def _glyph_ids(pbf: bytes) -> set[int]:
    """The glyph ids of a glyph PBF (glyphs.proto: stacks=1 > glyphs=3 > id=1)."""
    def fields(buf: bytes):
        i = 0
        while i < len(buf):
            key, i = _varint(buf, i)
            if key & 7 == 2:
                n, i = _varint(buf, i)
                yield key >> 3, buf[i:i + n]
                i += n
            else:
                value, i = _varint(buf, i)
                yield key >> 3, value
    return {v for n, stack in fields(pbf) if n == 1 for m, g in fields(stack) if m == 3
            for k, v in fields(g) if k == 1}


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    out = shift = 0
    while True:
        b = buf[i]
        i += 1
        out |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            return out, i


def test_layers_without_a_name_get_no_label_and_no_glyphs(anon):
    st = anon.get("/collections/zones/style.json").json()
    assert "glyphs" not in st and not [l for l in st["layers"] if l["type"] == "symbol"]
    r = anon.get("/collections/zones/labels")
    assert r.status_code == 404 and "name attribute" in r.json()["detail"]
    r = anon.get("/collections/roads/labels")           # lines are labelled from their tiles
    assert r.status_code == 404 and "polygon" in r.json()["detail"]


def test_label_points_are_one_point_inside_each_named_polygon(anon):
    r = anon.get("/collections/districts/labels")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/geo+json")
    features = r.json()["features"]
    polygons = dict(zip(districts_gdf()["name"], districts_gdf().geometry))
    assert sorted(f["properties"]["name"] for f in features) == sorted(polygons)
    for f in features:
        assert polygons[f["properties"]["name"]].contains(shape(f["geometry"]))
    again = anon.get("/collections/districts/labels", headers={"If-None-Match": r.headers["etag"]})
    assert again.status_code == 304


def test_label_points_of_a_restricted_layer_are_only_the_callers_rows(anon, server, credited_city):
    from gis_platform.apikeys import create_api_key

    assert anon.get("/collections/blocks/labels").status_code == 404
    st = anon.get("/tiles/style.json?layers=districts")
    assert "blocks" not in st.text
    planner = create_api_key(credited_city, "p", ["planner"])
    operator = create_api_key(credited_city, "o", ["operator"], scopes={"districts": ["11110"]})
    with server.client(headers=bearer(planner)) as c:
        every = c.get("/collections/blocks/labels")
    with server.client(headers=bearer(operator)) as c:
        own = c.get("/collections/blocks/labels")
        style = c.get("/collections/blocks/style.json").json()
    names = lambda r: sorted(f["properties"]["blk_nm"] for f in r.json()["features"])
    assert names(every) == ["가 블록", "나 블록", "다 블록", "라 블록"]
    assert names(own) == ["가 블록", "나 블록"]
    assert own.headers["etag"] != every.headers["etag"]
    assert own.headers["cache-control"].startswith("private")
    assert style["sources"]["labels-blocks"]["data"].startswith(f"{server.url}/collections/blocks/labels")


# --- the zoom the data ends at ---------------------------------------------------------
def test_tilejson_and_style_end_at_the_zoom_from_which_tiles_only_repeat(anon):
    tj = anon.get("/collections/roads/tiles/WebMercatorQuad/tilejson.json").json()
    # Every attribute from detail_from_zoom (15) and no selection rule: z15 holds it all.
    assert tj["maxzoom"] == tj["detail_from_zoom"] == 15
    assert tj["vector_layers"][0]["maxzoom"] == 15
    st = anon.get("/collections/roads/style.json").json()
    assert st["sources"]["vector"]["maxzoom"] == 15
    # No style layer stops at the source's last zoom: MapLibre overzooms it.
    assert not [l for l in st["layers"] if "maxzoom" in l]
    ts = anon.get("/collections/roads/tiles/WebMercatorQuad").json()
    assert ts["tileMatrixSetLimits"][-1]["tileMatrix"] == "15"
    # The oracle: the four z16 tiles under a z15 tile hold the same features, attributes
    # and all, as their parent (deeper tiles only repeat it).
    parent = WM.tile(STUB_LON, STUB_LAT, 15)

    def features(t):
        r = anon.get(f"/collections/roads/tiles/WebMercatorQuad/{t.z}/{t.x}/{t.y}.mvt")
        if r.status_code == 204:
            return set()
        return {tuple(sorted(f["properties"].items())) for f in decode(r.content)["roads"]["features"]}

    children = set().union(*(features(c) for c in WM.children(parent)))
    assert children and children == features(parent)


def test_a_selection_rule_or_the_layers_own_maxzoom_moves_the_last_zoom(anon, credited_city, server):
    with psycopg.connect(credited_city, autocommit=True) as conn:
        update_layer(conn, "roads", LayerUpdate(default_style={"feature_minzoom": {
            "field": "road_class", "values": {"arterial": 0}, "default": 16}}))
        update_layer(conn, "districts", LayerUpdate(maxzoom=12))

    def maxzooms():
        tj = anon.get("/tiles/WebMercatorQuad/tilejson.json?layers=districts,roads").json()
        return tj["maxzoom"], {v["id"]: v["maxzoom"] for v in tj["vector_layers"]}

    assert wait_for(lambda: maxzooms() == (16, {"districts": 12, "roads": 16}))
    st = anon.get("/tiles/style.json?layers=districts,roads").json()
    assert st["sources"]["vector"]["maxzoom"] == 16
    # Composite tiles leave districts out past z12: its layers stop there instead of
    # showing nothing from the deeper tiles.
    by_id = {l["id"]: l for l in st["layers"]}
    assert by_id["districts-fill"]["maxzoom"] == 13 and "maxzoom" not in by_id["roads-line"]
    # Alone, districts end at 12 and overzoom from there.
    alone = anon.get("/collections/districts/style.json").json()
    assert alone["sources"]["vector"]["maxzoom"] == 12
    assert not [l for l in alone["layers"] if "maxzoom" in l]


def test_a_restricted_layer_ends_at_its_data_not_at_its_catalog_maxzoom(server, credited_city):
    from gis_platform.apikeys import create_api_key

    planner = create_api_key(credited_city, "p", ["planner"])
    with server.client(headers=bearer(planner)) as c:
        tj = c.get("/collections/facilities/tiles/WebMercatorQuad/tilejson.json").json()
    assert (tj["minzoom"], tj["maxzoom"]) == (10, 15)       # catalog: 10 to 18


def test_a_raster_ends_at_its_native_resolution(credited_city, tmp_path, tile_settings):
    import rasterio
    from rasterio.transform import from_bounds

    w, s, e, n, width, height = 126.95, 37.52, 127.05, 37.58, 400, 240
    path = tmp_path / "heat.tif"
    with rasterio.open(path, "w", driver="GTiff", width=width, height=height, count=1,
                       dtype="float32", crs="EPSG:4326",
                       transform=from_bounds(w, s, e, n, width, height)) as ds:
        ds.write(np.ones((height, width), "float32"), 1)
    with psycopg.connect(credited_city, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO gis_meta.layers (id, title, kind, storage_srid, raster_path, raster_info, "
            "extent, access_level, attribution, data_version) VALUES ('heat', 'Heat', 'raster', 0, "
            "%s, %s, %s, 'public', 'KMA', nextval('gis_meta.data_version_seq'))",
            (str(path), Jsonb({"count": 1, "width": width, "height": height}), [w, s, e, n]))
    # A pixel is 0.1/400 degrees of longitude; Web-Mercator zoom z has 2*pi*6378137/256/2^z
    # metres per pixel at the equator: the first zoom at least as fine.
    pixel_m = (e - w) / width * math.pi * 6378137 / 180
    native = math.ceil(math.log2(2 * math.pi * 6378137 / 256 / pixel_m))
    srv = start_server(tile_settings())
    try:
        with srv.client() as c:
            tj = c.get("/collections/heat/tiles/WebMercatorQuad/tilejson.json").json()
            st = c.get("/collections/heat/style.json").json()
    finally:
        srv.stop()
    assert tj["maxzoom"] == native == 13
    assert st["sources"]["raster-heat"]["maxzoom"] == native
    assert st["sources"]["raster-heat"]["attribution"] == "KMA"


# --- Vary --------------------------------------------------------------------------------
def test_tiles_name_each_vary_header_once(server, credited_city):
    """Whatever the encoding and size (the app's gzip middleware adds Accept-Encoding to
    bodies over 1 KiB it did not encode itself: a z11 tile sent plain is one), each varying
    header is named once."""
    from gis_platform.apikeys import create_api_key

    planner = create_api_key(credited_city, "p", ["planner"])
    with server.client(headers=bearer(planner)) as c:
        for zoom in (11, 14):
            t = WM.tile(STUB_LON, STUB_LAT, zoom)
            for url in (f"/collections/roads/tiles/WebMercatorQuad/{t.z}/{t.x}/{t.y}.mvt",
                        f"/tiles/WebMercatorQuad/{t.z}/{t.x}/{t.y}.mvt?layers=roads,districts",
                        f"/collections/facilities/tiles/WebMercatorQuad/{t.z}/{t.x}/{t.y}.mvt"):
                for encoding in ("gzip", "identity"):
                    with c.stream("GET", url, headers={"Accept-Encoding": encoding}) as r:
                        body = b"".join(r.iter_raw())
                        vary = [v.strip().lower() for h in r.headers.get_list("vary")
                                for v in h.split(",")]
                    assert r.status_code == 200, url
                    assert vary.count("accept-encoding") == 1, (url, encoding, vary)
                    assert len(vary) == len(set(vary)), (url, encoding, vary)
                    assert decode(gzip.decompress(body) if encoding == "gzip" else body)
