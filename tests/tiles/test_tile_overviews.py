"""Overview tables: built per data version, read at low zooms, never stale, access unchanged.

The layer here is a small "pipe network": 24 streets, each cut into 60 collinear segments
with sub-pixel wiggles (the shape of the demo's 800k facility lines, at test size).  The
overview threshold is lowered so this layer gets overviews; the other fixture layers stay
under it.
"""

from __future__ import annotations

import asyncio
import math

import geopandas as gpd
import morecantile
import psycopg
import pytest
from PIL import Image, ImageDraw
from shapely.geometry import LineString

from layers.ingest import ingest_geodataframe
from tests.conftest import start_server
from tests.tiles.conftest import decode, wait_for

WM = morecantile.tms.get("WebMercatorQuad")
LON0, LAT0 = 126.95, 37.53
T10 = WM.tile(LON0 + 0.03, LAT0 + 0.03, 10)
T14 = WM.tile(LON0 + 0.0305, LAT0 + 0.0205, 14)
T11 = WM.tile(LON0 + 0.03, LAT0 + 0.03, 11)
PIPES10 = f"/collections/pipes/tiles/WebMercatorQuad/10/{T10.x}/{T10.y}.mvt"
PIPES11 = f"/collections/pipes/tiles/WebMercatorQuad/11/{T11.x}/{T11.y}.mvt"
PIPES14 = f"/collections/pipes/tiles/WebMercatorQuad/14/{T14.x}/{T14.y}.mvt"


def pipes_gdf(prefix: str = "") -> gpd.GeoDataFrame:
    """24 streets (12 east-west, 12 north-south) x 60 segments, 12 vertices each."""
    geoms, kinds, owners, names = [], [], [], []
    for s in range(24):
        horizontal = s < 12
        k = s % 12
        for i in range(60):
            pts = []
            for j in range(12):
                t = (i + j / 11) * 0.001                 # 60 segments of ~90 m
                wiggle = 0.00001 * math.sin(j)           # ~1 m: far below a pixel at z10
                if horizontal:
                    pts.append((LON0 + t, LAT0 + 0.005 * k + wiggle))
                else:
                    pts.append((LON0 + 0.005 * k + wiggle, LAT0 + t))
            geoms.append(LineString(pts))
            kinds.append("water" if s % 2 else "gas")
            owners.append("A" if s % 3 else "B")
            names.append(f"{prefix}street-{s}")
    return gpd.GeoDataFrame({"kind": kinds, "owner": owners, "name": names,
                             "diameter_mm": [300] * len(geoms)}, geometry=geoms, crs="EPSG:4326")


def ingest_pipes(db_url: str, prefix: str = "", mode: str = "create", access: str = "public") -> None:
    meta = {"title": "Pipes", "access_level": access} if mode == "create" else None
    ingest_geodataframe(db_url, pipes_gdf(prefix), "pipes", mode=mode, metadata=meta)


def overview_rows(db_url: str) -> list[tuple]:
    with psycopg.connect(db_url) as conn:
        return conn.execute("SELECT layer_id, data_version, zoom, table_name, features "
                            "FROM tiles.overviews ORDER BY layer_id, zoom").fetchall()


def data_version(db_url: str, layer_id: str) -> int:
    with psycopg.connect(db_url) as conn:
        return conn.execute("SELECT data_version FROM gis_meta.layers WHERE id = %s",
                            (layer_id,)).fetchone()[0]


def build(db_url: str, settings, layer: str = "pipes") -> list:
    from tile_server.cli import build_overviews

    return asyncio.run(build_overviews(settings, db_url, [layer], force=True))


def stats(content: bytes, layer: str = "pipes") -> tuple[int, int]:
    """(features, vertices) of one layer of a tile."""
    feats = decode(content).get(layer, {"features": []})["features"]
    vertices = 0
    for f in feats:
        coords = f["geometry"]["coordinates"]
        parts = coords if f["geometry"]["type"].startswith("Multi") else [coords]
        vertices += sum(len(p) for p in parts)
    return len(feats), vertices


def raster(content: bytes, layer: str = "pipes") -> set[tuple[int, int]]:
    """The tile drawn as 1 px lines on 256 x 256 pixels: which pixels are inked."""
    img = Image.new("1", (256, 256), 0)
    draw = ImageDraw.Draw(img)
    for f in decode(content).get(layer, {"features": []})["features"]:
        coords = f["geometry"]["coordinates"]
        parts = coords if f["geometry"]["type"].startswith("Multi") else [coords]
        for part in parts:
            draw.line([(x / 16, y / 16) for x, y in part], fill=1, width=1)
    return {(x, y) for x in range(256) for y in range(256) if img.getpixel((x, y))}


@pytest.fixture
def pipes_settings(city, tile_settings):
    ingest_pipes(city)
    return lambda **kw: tile_settings(tile_overview_min_features=1000, **kw)


def test_overviews_are_built_in_the_background_for_layers_over_the_threshold(city, pipes_settings):
    srv = start_server(pipes_settings())
    try:
        rows = wait_for(lambda: [r for r in overview_rows(city) if r[0] == "pipes"] or None, 60)
        rows = wait_for(lambda: (r := [r for r in overview_rows(city) if r[0] == "pipes"])
                        and len(r) == 7 and r, 60)
        assert [r[2] for r in rows] == [8, 10, 11, 12, 13, 14, 16]
        assert {r[1] for r in rows} == {data_version(city, "pipes")}
        # Small layers (roads: 45 features, districts, facilities) stay on their base tables.
        assert {r[0] for r in overview_rows(city)} == {"pipes"}
        with psycopg.connect(city) as conn:
            for r in rows:
                srid, has_index = conn.execute(
                    "SELECT Find_SRID('tiles', %s, '__geom'), EXISTS (SELECT 1 FROM pg_indexes "
                    "WHERE schemaname = 'tiles' AND tablename = %s AND indexdef ILIKE '%%gist%%')",
                    (r[3], r[3])).fetchone()
                assert srid == 3857 and has_index
    finally:
        srv.stop()


def test_low_zoom_tile_reads_the_overview_fewer_features_and_vertices_same_picture(city, pipes_settings):
    settings = pipes_settings(tile_overview_auto_build=False)
    srv = start_server(settings)
    try:
        with srv.client() as c:
            base = c.get(PIPES11)
            assert base.status_code == 200
            base_features, base_vertices = stats(base.content)
            assert base_features > 500
            # At z10 every ~90 m segment is under a pixel: the base table path drops them all.
            assert c.get(PIPES10).status_code == 204
            build(city, settings)
            # NOTIFY gis_tiles: the server switches to the overview (a new cache key and ETag).
            over = wait_for(lambda: (r := c.get(PIPES11)).headers["etag"] != base.headers["etag"] and r)
            over10 = wait_for(lambda: (r := c.get(PIPES10)).status_code == 200 and r)
        features, vertices = stats(over.content)
        assert features < base_features / 10          # 60 segments per street merged into lines
        assert vertices < base_vertices / 10          # wiggles far below a pixel simplified away
        assert len(over.content) < len(base.content) / 5
        props = {k for f in decode(over.content)["pipes"]["features"] for k in f["properties"]}
        assert props == {"kind", "owner", "name"}     # the overview band's attributes only
        # The map still reads right: the same pixels are inked (within a pixel).
        a, b = raster(base.content), raster(over.content)
        near_b = {(x + dx, y + dy) for x, y in b for dx in (-1, 0, 1) for dy in (-1, 0, 1)}
        near_a = {(x + dx, y + dy) for x, y in a for dx in (-1, 0, 1) for dy in (-1, 0, 1)}
        assert len(a & near_b) >= 0.97 * len(a)
        assert len(b - near_a) <= 0.03 * len(b)
        # And at z10 the streets are there again, as merged lines.
        assert {f["properties"]["name"] for f in decode(over10.content)["pipes"]["features"]} \
            == {f"street-{s}" for s in range(24)}
    finally:
        srv.stop()


def test_overview_rows_are_stored_in_spatial_order(city, pipes_settings):
    """Each level is written in the geometry's B-tree (space-filling curve) order, so the
    rows of one tile share heap pages; the layer itself was ingested street by street."""
    build(city, pipes_settings(tile_overview_auto_build=False))
    tables = [r[3] for r in overview_rows(city) if r[0] == "pipes"]
    assert len(tables) == 7
    with psycopg.connect(city) as conn:
        for table in tables:
            rows, descents = conn.execute(psycopg.sql.SQL(
                "SELECT count(*), count(*) FILTER (WHERE geom < prev) FROM (SELECT __geom AS geom, "
                "lag(__geom) OVER (ORDER BY ctid) AS prev FROM tiles.{}) AS s").format(
                psycopg.sql.Identifier(table))).fetchone()
            assert rows > 0 and descents == 0, (table, rows, descents)
        # ...which the base table, in ingest order, is not (so the check above can fail).
        rows, descents = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE g < prev) FROM (SELECT "
            "ST_Transform(geom, 3857) AS g, lag(ST_Transform(geom, 3857)) OVER (ORDER BY ctid) "
            "AS prev FROM gis_data.pipes) AS s").fetchone()
        assert descents > rows // 10


def test_z14_reads_the_full_resolution_copy_same_features_as_the_base_table(city, pipes_settings):
    settings = pipes_settings(tile_overview_auto_build=False)
    build(city, settings)
    srv = start_server(settings)
    base_srv = start_server(pipes_settings(tile_overview_auto_build=False, tile_overview_zooms=[]))
    try:
        with srv.client() as c, base_srv.client() as bc:
            r, base = c.get(PIPES14), bc.get(PIPES14)
        assert r.headers["etag"] != base.headers["etag"]       # the copy has its own cache key
        features, _ = stats(r.content)
        with psycopg.connect(city) as conn:
            b = WM.xy_bounds(T14)
            grow = (b.right - b.left) * 64 / 4096
            want = conn.execute(
                "SELECT count(*) FROM gis_data.pipes WHERE ST_Intersects(ST_Transform(geom, 3857), "
                "ST_Expand(ST_MakeEnvelope(%s, %s, %s, %s, 3857), %s))",
                (b.left, b.bottom, b.right, b.top, grow)).fetchone()[0]
        assert features == want > 0
        props = {k for f in decode(r.content)["pipes"]["features"] for k in f["properties"]}
        assert props == {"kind", "owner", "name", "diameter_mm"}
        # The same features as rendered from the base table; geometry equal to the grid unit
        # (snapping twice - z16 grid, then z14 - may merge a few vertices of sub-unit wiggles).
        def shapes(content):
            return {f["id"]: f["geometry"]["coordinates"] for f in decode(content)["pipes"]["features"]}
        got, ref = shapes(r.content), shapes(base.content)
        assert got.keys() == ref.keys()
        n_got, n_ref = sum(map(len, got.values())), sum(map(len, ref.values()))
        assert abs(n_got - n_ref) <= 0.05 * n_ref
        a, b = raster(base.content), raster(r.content)
        near_b = {(x + dx, y + dy) for x, y in b for dx in (-1, 0, 1) for dy in (-1, 0, 1)}
        assert len(a & near_b) == len(a)
    finally:
        srv.stop()
        base_srv.stop()


def test_reingest_never_serves_the_old_overview(city, pipes_settings):
    settings = pipes_settings(tile_overview_auto_build=False)
    build(city, settings)
    old_version = data_version(city, "pipes")
    srv = start_server(settings)
    try:
        with srv.client() as c:
            before = c.get(PIPES11)
            assert all(not f["properties"]["name"].startswith("new-")
                       for f in decode(before.content)["pipes"]["features"])
            ingest_pipes(city, prefix="new-", mode="replace")
            # From the moment the registry sees the new version, tiles come from the new
            # data (the base table: no overview of the new version exists yet).
            after = wait_for(lambda: (r := c.get(PIPES11)).headers["etag"] != before.headers["etag"] and r)
            names = {f["properties"]["name"] for f in decode(after.content)["pipes"]["features"]}
            assert names and all(n.startswith("new-") for n in names)
            assert c.get(PIPES11, headers={"If-None-Match": before.headers["etag"]}).status_code == 200
            # Building for the new version replaces the old overviews (dropped).
            build(city, settings)
            rows = overview_rows(city)
            assert rows and {r[1] for r in rows} == {data_version(city, "pipes")} != {old_version}
            rebuilt = wait_for(lambda: (r := c.get(PIPES11)).headers["etag"] != after.headers["etag"] and r)
            names = {f["properties"]["name"] for f in decode(rebuilt.content)["pipes"]["features"]}
            assert names and all(n.startswith("new-") for n in names)
        with psycopg.connect(city) as conn:
            left = conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'tiles' "
                                "AND tablename LIKE %s", (f"ov_pipes_{old_version}_%",)).fetchone()[0]
        assert left == 0
    finally:
        srv.stop()


def test_restricted_layer_overview_tiles_still_need_a_key(db_url, tile_settings, planner_token):
    ingest_pipes(db_url, access="restricted")
    settings = tile_settings(tile_overview_min_features=1000, tile_overview_auto_build=False)
    build(db_url, settings)
    srv = start_server(settings)
    try:
        with srv.client() as c:
            anon = c.get(PIPES10)
            missing = c.get(PIPES10.replace("pipes", "no_such_layer"))
            assert anon.status_code == missing.status_code == 404
            assert anon.json()["detail"] == missing.json()["detail"].replace("no_such_layer", "pipes")
            comp = c.get(f"/tiles/WebMercatorQuad/10/{T10.x}/{T10.y}.mvt?layers=pipes")
            assert comp.status_code == 404
            auth = {"Authorization": f"Bearer {planner_token}"}
            ok = c.get(PIPES10, headers=auth)
            assert ok.status_code == 200 and stats(ok.content)[0] > 0
            # A cached copy is never handed to an anonymous revalidation either.
            assert c.get(PIPES10, headers={"If-None-Match": ok.headers["etag"]}).status_code == 404
    finally:
        srv.stop()


def test_row_filtered_caller_gets_only_their_rows_never_the_shared_overview(db_url, tile_settings):
    from gis_platform.apikeys import create_api_key

    ingest_pipes(db_url, access="restricted")
    settings = tile_settings(tile_overview_min_features=1000, tile_overview_auto_build=False)
    build(db_url, settings)
    planner = create_api_key(db_url, "planner", ["planner"])
    operator = create_api_key(db_url, "op", ["operator"], scopes={"owners": ["B"]})
    srv = start_server(settings)
    try:
        with srv.client() as c:
            full = c.get(PIPES11, headers={"Authorization": f"Bearer {planner}"})
            mine = c.get(PIPES11, headers={"Authorization": f"Bearer {operator}"})
            assert full.status_code == mine.status_code == 200
            assert full.headers["etag"] != mine.headers["etag"]
            owners = {f["properties"]["owner"] for f in decode(mine.content)["pipes"]["features"]}
            assert owners == {"B"}
            assert {f["properties"]["owner"] for f in decode(full.content)["pipes"]["features"]} == {"A", "B"}
            # Same for composites, and the planner's ETag does not revalidate for the operator.
            comp = c.get(f"/tiles/WebMercatorQuad/11/{T11.x}/{T11.y}.mvt?layers=pipes",
                         headers={"Authorization": f"Bearer {operator}"})
            assert {f["properties"]["owner"] for f in decode(comp.content)["pipes"]["features"]} == {"B"}
            again = c.get(PIPES11, headers={"Authorization": f"Bearer {operator}",
                                            "If-None-Match": full.headers["etag"]})
            assert again.status_code == 200
    finally:
        srv.stop()
