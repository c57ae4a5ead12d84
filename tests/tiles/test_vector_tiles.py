"""Vector tiles: content, geometry, zoom bands, composites, grids, caps."""

from __future__ import annotations

import morecantile
import psycopg
import pytest

from tests.conftest import start_server
from tests.tiles.conftest import STUB_LAT, STUB_LON, decode, wait_for

WM = morecantile.tms.get("WebMercatorQuad")


def tile_url(layer: str, t, grid: str = "WebMercatorQuad", ext: str = ".mvt") -> str:
    return f"/collections/{layer}/tiles/{grid}/{t.z}/{t.x}/{t.y}{ext}"


def expected_count(db_url: str, table: str, t, buffer_units: int = 64) -> int:
    """Features PostGIS itself says touch the tile grown by the clip buffer (the oracle)."""
    b = WM.xy_bounds(t)
    grow = (b.right - b.left) * buffer_units / 4096
    with psycopg.connect(db_url) as conn:
        return conn.execute(
            f"SELECT count(*) FROM gis_data.{table} WHERE ST_Intersects(ST_Transform(geom, 3857), "
            "ST_Expand(ST_MakeEnvelope(%s, %s, %s, %s, 3857), %s))",
            (b.left, b.bottom, b.right, b.top, grow)).fetchone()[0]


def test_layer_tile_holds_the_features_postgis_finds_in_the_tile(tc, city):
    t = WM.tile(STUB_LON, STUB_LAT, 14)
    r = tc.get(tile_url("roads", t))
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/vnd.mapbox-vector-tile"
    tile = decode(r.content)
    assert list(tile) == ["roads"]
    assert tile["roads"]["extent"] == 4096
    assert len(tile["roads"]["features"]) == expected_count(city, "roads", t) > 5


def test_point_lands_at_its_pixel_in_tile_coordinates(tc, planner_token):
    # The substation sits exactly at STUB_LON/STUB_LAT: check where it falls in the tile.
    t = WM.tile(STUB_LON, STUB_LAT, 15)
    r = tc.get(tile_url("facilities", t), headers={"Authorization": f"Bearer {planner_token}"})
    feats = [f for f in decode(r.content)["facilities"]["features"]
             if f["properties"]["kind"] == "substation"]
    assert len(feats) == 1
    b = WM.xy_bounds(t)
    x, y = WM.xy(STUB_LON, STUB_LAT)
    want = ((x - b.left) / (b.right - b.left) * 4096, (b.top - y) / (b.top - b.bottom) * 4096)
    got = feats[0]["geometry"]["coordinates"]
    assert abs(got[0] - want[0]) <= 1 and abs(got[1] - want[1]) <= 1
    assert feats[0]["id"] >= 1                       # fid travels as the MVT feature id


def test_lines_are_clipped_to_the_tile_plus_buffer(tc):
    t = WM.tile(STUB_LON, STUB_LAT, 14)
    tile = decode(tc.get(tile_url("roads", t)).content)
    coords = [c for f in tile["roads"]["features"] for c in f["geometry"]["coordinates"]]
    assert all(-64 <= x <= 4160 and -64 <= y <= 4160 for x, y in coords)
    assert any(x in (-64, 4160) or y in (-64, 4160) for x, y in coords)   # really clipped


def test_overview_zoom_keeps_only_a_few_attributes(tc):
    low = decode(tc.get(tile_url("roads", WM.tile(STUB_LON, STUB_LAT, 10))).content)
    high = decode(tc.get(tile_url("roads", WM.tile(STUB_LON, STUB_LAT, 14))).content)
    low_props = {k for f in low["roads"]["features"] for k in f["properties"]}
    high_props = {k for f in high["roads"]["features"] for k in f["properties"]}
    assert high_props == {"name", "road_class", "lanes", "width_m", "surface", "managed_by"}
    # name and class first (the label-like hints), then the first catalogued one.
    assert low_props == {"name", "road_class", "lanes"}


def test_mid_zooms_carry_the_mid_attributes_and_detail_zooms_every_one(city, tile_settings):
    srv = start_server(tile_settings(tile_mid_attributes=2, tile_detail_from_zoom=15))
    try:
        with srv.client() as c:
            def props(z):
                tile = decode(c.get(tile_url("roads", WM.tile(STUB_LON, STUB_LAT, z))).content)
                return {k for f in tile["roads"]["features"] for k in f["properties"]}
            assert props(11) == {"name", "road_class", "lanes"}           # overview band
            assert props(13) == props(14) == {"name", "road_class"}         # mid: 2, hints first
            assert props(15) == {"name", "road_class", "lanes", "width_m", "surface", "managed_by"}
            tj = c.get("/collections/roads/tiles/WebMercatorQuad/tilejson.json").json()
            assert tj["vector_layers"][0]["mid_fields"] == ["name", "road_class"]
            assert tj["detail_from_zoom"] == 15
        # a layer names its own mid attributes in its style
        with psycopg.connect(city, autocommit=True) as conn:
            from layers.catalog import LayerUpdate, update_layer

            update_layer(conn, "roads", LayerUpdate(default_style={"mid_attributes": ["lanes", "surface"]}))
        with srv.client() as c:
            assert wait_for(lambda: props(14) == {"lanes", "surface"}, 15)
    finally:
        srv.stop()


def test_sub_pixel_features_are_dropped_at_overview_zooms_and_kept_when_zoomed_in(tc):
    def stubs(z):
        tile = decode(tc.get(tile_url("roads", WM.tile(STUB_LON, STUB_LAT, z))).content)
        return [f for f in tile["roads"]["features"] if f["properties"]["name"].startswith("골목")]

    assert stubs(10) == []
    assert len(stubs(17)) >= 1


def test_overview_geometry_is_simplified_to_the_tile_grid(tc, db_url, tile_settings):
    """A wiggly line (vertices 1 m apart) ships with a handful of vertices at z10, all at z16."""
    import geopandas as gpd
    from shapely.geometry import LineString

    from layers.ingest import ingest_geodataframe

    pts = [(126.95 + i * 0.00001, 37.55 + (0.00001 if i % 2 else 0)) for i in range(2000)]
    ingest_geodataframe(db_url, gpd.GeoDataFrame({"name": ["wiggle"]}, geometry=[LineString(pts)],
                                                 crs="EPSG:4326"), "wiggle", metadata={"access_level": "public"})
    srv = start_server(tile_settings())
    try:
        with srv.client() as c:
            def vertices(z):
                t = WM.tile(126.96, 37.55, z)
                feats = decode(c.get(tile_url("wiggle", t)).content)["wiggle"]["features"]
                geom = feats[0]["geometry"]
                lines = geom["coordinates"] if geom["type"] == "MultiLineString" else [geom["coordinates"]]
                return sum(len(line) for line in lines)
            assert vertices(10) <= 4
            assert vertices(18) > 50
    finally:
        srv.stop()


def test_composite_tile_holds_each_layer_in_one_response(tc, planner_token):
    t = WM.tile(STUB_LON, STUB_LAT, 14)
    r = tc.get(f"/tiles/WebMercatorQuad/{t.z}/{t.x}/{t.y}.mvt?layers=districts,roads,facilities",
               headers={"Authorization": f"Bearer {planner_token}"})
    assert r.status_code == 200
    tile = decode(r.content)
    assert set(tile) == {"districts", "roads", "facilities"}
    assert tile["districts"]["features"][0]["properties"]["name"] == "종로구"
    alone = decode(tc.get(tile_url("roads", t)).content)
    assert len(tile["roads"]["features"]) == len(alone["roads"]["features"])


def test_composite_leaves_out_layers_outside_their_zoom_range(tc, planner_token):
    t = WM.tile(STUB_LON, STUB_LAT, 8)        # facilities start at zoom 10
    r = tc.get(f"/tiles/WebMercatorQuad/{t.z}/{t.x}/{t.y}.mvt?layers=roads,facilities",
               headers={"Authorization": f"Bearer {planner_token}"})
    assert r.status_code == 200
    assert set(decode(r.content)) == {"roads"}


def test_composite_accepts_the_f_parameter_instead_of_an_extension(tc):
    t = WM.tile(STUB_LON, STUB_LAT, 13)
    r = tc.get(f"/tiles/WebMercatorQuad/{t.z}/{t.x}/{t.y}?layers=roads&f=mvt")
    assert r.status_code == 200 and "roads" in decode(r.content)


def test_ogc_path_without_extension_serves_mvt_for_a_vector_layer(tc):
    t = WM.tile(STUB_LON, STUB_LAT, 13)
    r = tc.get(tile_url("roads", t, ext=""))
    assert r.status_code == 200 and r.headers["content-type"] == "application/vnd.mapbox-vector-tile"


@pytest.mark.parametrize("grid", ["WorldCRS84Quad", "KoreaUTMKQuad"])
def test_other_grids_place_the_point_where_the_grid_says(tc, planner_token, grid):
    tms = morecantile.tms.get(grid) if grid != "KoreaUTMKQuad" else None
    if tms is None:
        from tile_server.tms import get_tms
        tms = get_tms(grid)
    t = tms.tile(STUB_LON, STUB_LAT, 15)
    r = tc.get(tile_url("facilities", t, grid=grid), headers={"Authorization": f"Bearer {planner_token}"})
    assert r.status_code == 200
    feats = [f for f in decode(r.content)["facilities"]["features"] if f["properties"]["kind"] == "substation"]
    b = tms.xy_bounds(t)
    x, y = tms.xy(STUB_LON, STUB_LAT)
    want = ((x - b.left) / (b.right - b.left) * 4096, (b.top - y) / (b.top - b.bottom) * 4096)
    got = feats[0]["geometry"]["coordinates"]
    assert abs(got[0] - want[0]) <= 1 and abs(got[1] - want[1]) <= 1


def test_tile_outside_the_data_is_an_empty_204(tc):
    t = WM.tile(129.5, 35.0, 12)    # the East Sea: no Seoul road there
    r = tc.get(tile_url("roads", t))
    assert r.status_code == 204
    assert r.content == b""
    assert r.headers["etag"] and r.headers["cache-control"]


def test_feature_cap_limits_features_per_layer_per_tile(city, tile_settings):
    srv = start_server(tile_settings(tile_max_features=5))
    try:
        with srv.client() as c:
            t = WM.tile(STUB_LON, STUB_LAT, 12)
            feats = decode(c.get(tile_url("roads", t)).content)["roads"]["features"]
            assert len(feats) == 5
            low = decode(c.get(tile_url("roads", WM.tile(STUB_LON, STUB_LAT, 10))).content)
            # Over the cap at overview zooms the largest features are the ones kept.
            assert len(low["roads"]["features"]) == 5
            assert all(not f["properties"]["name"].startswith("골목") for f in low["roads"]["features"])
    finally:
        srv.stop()


def test_world_edge_tiles_keep_their_buffered_box_the_right_way_round():
    # Any x = 0 or x = 2^z - 1 tile: its buffer reaches past ±180°, which pyproj wrapped to
    # the other side - an inverted lon/lat box that intersected no layer's extent.
    from tile_server.tms import intersects, tile_bounds

    seoul = [126.76, 37.41, 127.18, 37.70]
    for t in (morecantile.Tile(0, 0, 0), morecantile.Tile(1, 0, 1), morecantile.Tile(3, 1, 2)):
        b = tile_bounds(WM, t, 64 / 4096)
        assert -180 <= b.lon_min < b.lon_max <= 180 and -90 <= b.lat_min < b.lat_max <= 90, t
        assert intersects(seoul, b), t
