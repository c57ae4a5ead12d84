"""TileJSON, OGC API Tiles documents and MapLibre styles."""

from __future__ import annotations

import morecantile
import psycopg

from tests.tiles.conftest import STUB_LAT, STUB_LON, decode


def test_layer_tilejson_lists_fields_zooms_bounds_and_a_versioned_url(tc, city):
    tj = tc.get("/collections/roads/tiles/WebMercatorQuad/tilejson.json").json()
    with psycopg.connect(city) as conn:
        version = conn.execute("SELECT data_version FROM gis_meta.layers WHERE id='roads'").fetchone()[0]
    assert tj["tilejson"] == "3.0.0"
    assert tj["tiles"][0].endswith(f"/collections/roads/tiles/WebMercatorQuad/{{z}}/{{x}}/{{y}}.mvt?v={version}")
    assert tj["tiles"][0].startswith("http://127.0.0.1:")
    (vl,) = tj["vector_layers"]
    assert vl["id"] == "roads"
    assert vl["fields"] == {"name": "String", "road_class": "String", "lanes": "Number",
                            "width_m": "Number", "surface": "String", "managed_by": "String"}
    assert vl["overview_fields"] == ["name", "road_class", "lanes"]
    assert (tj["minzoom"], tj["maxzoom"]) == (0, 15)      # all attributes from z15: overzoom after
    w, s, e, n = tj["bounds"]
    assert 126.9 <= w < e <= 127.1 and 37.5 <= s < n <= 37.6


def test_tilejson_tile_url_serves_the_tile(tc):
    tj = tc.get("/tiles/WebMercatorQuad/tilejson.json?layers=districts,roads").json()
    t = morecantile.tms.get("WebMercatorQuad").tile(STUB_LON, STUB_LAT, 13)
    url = tj["tiles"][0].format(z=t.z, x=t.x, y=t.y)
    r = tc.get(url)
    assert r.status_code == 200
    assert set(decode(r.content)) == {"districts", "roads"}
    assert [v["id"] for v in tj["vector_layers"]] == ["districts", "roads"]


def test_restricted_layer_zoom_range_shows_in_its_tilejson(tc, planner_token):
    tj = tc.get("/collections/facilities/tiles/WebMercatorQuad/tilejson.json",
                headers={"Authorization": f"Bearer {planner_token}"}).json()
    assert (tj["minzoom"], tj["maxzoom"]) == (10, 15)
    assert tj["vector_layers"][0]["minzoom"] == 10


def test_tile_matrix_sets_include_web_mercator_crs84_and_korean_utmk(tc):
    ids = [t["id"] for t in tc.get("/tileMatrixSets").json()["tileMatrixSets"]]
    assert ids == ["WebMercatorQuad", "WorldCRS84Quad", "KoreaUTMKQuad"]
    doc = tc.get("/tileMatrixSets/KoreaUTMKQuad").json()
    assert doc["crs"].endswith("/EPSG/0/5179")
    # A valid morecantile definition, round-tripped from the JSON we serve.
    grid = morecantile.TileMatrixSet.model_validate(doc)
    assert grid.matrix(14).cellSize == 0.5


def test_collection_tilesets_link_each_grid_and_a_templated_tile_url(tc):
    sets = tc.get("/collections/roads/tiles").json()["tilesets"]
    assert {s["tileMatrixSetId"] for s in sets} == {"WebMercatorQuad", "WorldCRS84Quad", "KoreaUTMKQuad"}
    ts = tc.get("/collections/roads/tiles/WebMercatorQuad").json()
    item = next(l for l in ts["links"] if l["rel"] == "item")
    assert item["templated"] is True
    assert "{tileMatrix}/{tileCol}/{tileRow}.mvt" in item["href"]
    limits = {l["tileMatrix"]: l for l in ts["tileMatrixSetLimits"]}
    t = morecantile.tms.get("WebMercatorQuad").tile(STUB_LON, STUB_LAT, 14)
    lim = limits["14"]
    assert lim["minTileCol"] <= t.x <= lim["maxTileCol"] and lim["minTileRow"] <= t.y <= lim["maxTileRow"]
    assert ts["layers"][0]["geometryDimension"] == 1


def test_layer_style_is_a_maplibre_style_with_working_sources(tc):
    st = tc.get("/collections/districts/style.json").json()
    assert st["version"] == 8
    assert "sprite" not in st
    assert [l["source"] for l in st["layers"] if l["type"] == "symbol"] == ["labels-districts"]
    assert st["layers"][0]["type"] == "background"
    types = {l["type"] for l in st["layers"] if l.get("source") == "vector"}
    assert types == {"fill", "line"}
    url = st["sources"]["vector"]["tiles"][0]
    t = morecantile.tms.get("WebMercatorQuad").tile(STUB_LON, STUB_LAT, 12)
    assert tc.get(url.format(z=t.z, x=t.x, y=t.y)).status_code == 200


def test_composite_style_draws_polygons_below_lines_below_points(tc, planner_token):
    st = tc.get("/tiles/style.json?layers=facilities,roads,districts",
                headers={"Authorization": f"Bearer {planner_token}"}).json()
    order = [l["source-layer"] for l in st["layers"] if "source-layer" in l]
    assert order.index("districts") < order.index("roads") < order.index("facilities")
    assert st["metadata"]["gis:layers"] == ["facilities", "roads", "districts"]
