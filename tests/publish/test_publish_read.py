"""Relations the platform did not create, published in place and read through every API.

Expected rows come from SQL run by the owner directly on the relations (the oracle), never
from the platform's own SQL.
"""

from __future__ import annotations

import gzip
import math
import time

import mapbox_vector_tile
import pyogrio
import pytest
from morecantile import tms as morecantile_tms

from tests.publish.conftest import PubWorld

WM = morecantile_tms.get("WebMercatorQuad")
MAINS = '"City Data"."Water Mains"'
BBOX = (126.961, 37.551, 126.991, 37.571)   # no main on its edges


def _count(world: PubWorld, query: str, params=()) -> int:
    with world.owner() as conn:
        return int(conn.execute(query, params).fetchone()[0])


def _mvt(body: bytes) -> dict:
    if body[:2] == b"\x1f\x8b":
        body = gzip.decompress(body)
    return mapbox_vector_tile.decode(body)


@pytest.fixture(scope="module")
def mains(world: PubWorld) -> dict:
    """The water mains, published over HTTP by an administrator (public)."""
    return world.publish({"relation": MAINS, "id": "water_mains", "access_level": "public"})


def test_publishing_reads_the_catalog_of_the_relation(world: PubWorld, mains):
    (p,) = mains["published"]
    assert p["relation"] == MAINS and p["kind"] == "table"
    assert p["srid"] == 5186 and p["geometry_type"] == "LineString"
    assert p["key"] == ["MainID"] and p["features"] == 200
    # The platform's login cannot add triggers to a table it does not own: changes are polled.
    assert p["tracking"] == "poll" and "polled" in p["note"]
    with world.client(None) as c:
        coll = c.get("/collections/water_mains").json()
    assert coll["storageCrs"].endswith("/5186")
    assert coll["numberOfFeatures"] == 200
    # The extent of the EPSG:5186 box, in lon/lat: it holds every main, and not much more.
    west, south, east, north = coll["extent"]["spatial"]["bbox"][0]
    true = (126.95, 37.54, 126.95 + 19 * 0.0035 + 0.002, 37.54 + 9 * 0.005)
    assert west <= true[0] and south <= true[1] and east >= true[2] and north >= true[3]
    assert max(true[0] - west, true[1] - south, east - true[2], north - true[3]) < 1e-3
    with world.client(None) as c:
        q = c.get("/collections/water_mains/queryables").json()["properties"]
    # every column but the geometry, under its own name (the text column "geom" included)
    assert set(q) == {"geometry", "MainID", "Name", "order", "size", "geom", "depth_m", "installed"}
    assert q["MainID"]["type"] == "integer" and q["installed"]["format"] == "date"


def test_nothing_is_written_into_the_city_schema(world: PubWorld, mains):
    with world.owner() as conn:
        rels = conn.execute("SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                            "WHERE n.nspname IN ('City Data', 'utility') ORDER BY 1").fetchall()
        grants = conn.execute(
            "SELECT has_table_privilege('gis_platform_app', %s, 'INSERT'), "
            "has_table_privilege('gis_platform_app', %s, 'UPDATE'), "
            "has_table_privilege('gis_platform_app', %s, 'TRIGGER'), "
            "has_schema_privilege('gis_platform_app', 'City Data', 'CREATE')",
            (MAINS, MAINS, MAINS)).fetchone()
        triggers = conn.execute("SELECT count(*) FROM pg_trigger WHERE tgrelid = %s::regclass "
                                "AND NOT tgisinternal", (MAINS,)).fetchone()[0]
    assert all(not g for g in grants)         # the server serves it with SELECT alone
    assert triggers == 0
    assert {r[0] for r in rels} >= {"Water Mains", "valves", "parcels", "readings"}
    assert not any(r[0].startswith(("ov_", "gis_")) for r in rels)


def test_features_paging_bbox_crs_and_cql2_match_the_sql(world: PubWorld, mains):
    expected = _count(world, f"SELECT count(*) FROM {MAINS} WHERE ST_Intersects("
                             "ST_Transform(the_geom, 4326), ST_MakeEnvelope(%s, %s, %s, %s, 4326))", BBOX)
    assert 0 < expected < 200
    with world.client(None) as c:
        ids = []
        url = f"/collections/water_mains/items?bbox={','.join(map(str, BBOX))}&limit=7"
        while url:
            page = c.get(url).json()
            assert page["numberMatched"] == expected
            ids += [f["id"] for f in page["features"]]
            url = next((l["href"] for l in page["links"] if l["rel"] == "next"), None)
        assert len(ids) == len(set(ids)) == expected
        # ids are the bigint key, as numbers; a text column named "geom" is a property
        one = c.get(f"/collections/water_mains/items/{ids[0]}").json()
        assert one["id"] == ids[0] and one["properties"]["geom"] == "not a geometry"
        assert one["geometry"]["type"] == "LineString"
        # crs=EPSG:5186 returns the stored coordinates (northing first, as EPSG:5186 says)
        r = c.get(f"/collections/water_mains/items/{ids[0]}?crs=http://www.opengis.net/def/crs/EPSG/0/5186")
        assert r.headers["content-crs"].endswith("/5186>")
        n, e = r.json()["geometry"]["coordinates"][0]
        with world.owner() as conn:
            x, y = conn.execute(f'SELECT ST_X(ST_StartPoint(the_geom)), ST_Y(ST_StartPoint(the_geom)) '
                                f'FROM {MAINS} WHERE "MainID" = %s', (ids[0],)).fetchone()
        assert (e, n) == (pytest.approx(x, abs=1e-3), pytest.approx(y, abs=1e-3))
        # CQL2 on a reserved-word column and a mixed-case one
        want = _count(world, f'SELECT count(*) FROM {MAINS} WHERE "order" >= 5 AND size = 400')
        page = c.get('/collections/water_mains/items', params={
            "filter": '"order" >= 5 AND size = 400', "limit": 1}).json()
        assert page["numberMatched"] == want > 0
        page = c.get('/collections/water_mains/items', params={
            "filter": "S_INTERSECTS(geometry, BBOX(126.961, 37.551, 126.991, 37.571))", "limit": 1}).json()
        assert page["numberMatched"] == expected
        # a bbox given in EPSG:5186 selects the same features
        with world.owner() as conn:
            box5186 = conn.execute("SELECT ST_XMin(b), ST_YMin(b), ST_XMax(b), ST_YMax(b) FROM (SELECT "
                                   "ST_Transform(ST_MakeEnvelope(126.97, 37.555, 126.98, 37.565, 4326), 5186) b) s"
                                   ).fetchone()
            want = conn.execute(f"SELECT count(*) FROM {MAINS} WHERE the_geom && "
                                "ST_MakeEnvelope(%s, %s, %s, %s, 5186) AND ST_Intersects(the_geom, "
                                "ST_MakeEnvelope(%s, %s, %s, %s, 5186))", (*box5186, *box5186)).fetchone()[0]
        # EPSG:5186 is northing,easting: the bbox is given in that axis order
        b = (box5186[1], box5186[0], box5186[3], box5186[2])
        page = c.get("/collections/water_mains/items", params={
            "bbox": ",".join(map(str, b)), "bbox-crs": "http://www.opengis.net/def/crs/EPSG/0/5186"}).json()
        assert page["numberMatched"] == want > 0


def test_keys_of_every_kind_address_features(world: PubWorld, mains):
    world.publish({"relation": "utility.valves", "access_level": "public"})
    world.publish({"relation": "utility.parcels", "access_level": "public"})
    with world.client(None) as c:
        v = c.get("/collections/valves/items?limit=3").json()["features"]
        assert all(len(f["id"]) == 36 for f in v)                   # a uuid, as text
        one = c.get(f"/collections/valves/items/{v[1]['id']}").json()
        assert one["id"] == v[1]["id"] and one["properties"]["kind"] == v[1]["properties"]["kind"]
        assert c.get("/collections/valves/items/not-a-uuid").status_code == 404
        p = c.get("/collections/parcels/items?limit=20").json()["features"]
        ids = {f["id"] for f in p}
        # composite key: parts joined by "~", each escaped ("/" and "~" inside a part too)
        assert "종로%2F1~3" in ids and "jung%7E2~12" in ids
        r = c.get("/collections/parcels/items/" + "jung%257E2~12")
        assert r.status_code == 200 and r.json()["properties"]["lot"] == 12
        assert c.get("/collections/parcels/items/jung%257E2~99").status_code == 404
        assert c.get("/collections/parcels/items/jung%257E2~x").status_code == 404
        # a geography column: bbox and geodesic stats work on it
        area = c.get("/collections/parcels/stats").json()["total"]
    with world.owner() as conn:
        want = conn.execute("SELECT sum(ST_Area(area)) FROM utility.parcels").fetchone()[0]
    assert area["count"] == 20 and area["area_m2"] == pytest.approx(want, rel=1e-6)


def test_a_view_without_a_key_has_features_but_no_ids(world: PubWorld, mains):
    (p,) = world.publish({"relation": "utility.big_mains", "access_level": "public"})["published"]
    assert p["kind"] == "view" and p["key"] == [] and p["srid"] == 5186
    want = _count(world, f"SELECT count(*) FROM {MAINS} WHERE size >= 300")
    with world.client(None) as c:
        page = c.get("/collections/big_mains/items?limit=100").json()
        assert page["numberMatched"] == want == len(page["features"])
        assert all("id" not in f for f in page["features"])
        r = c.get("/collections/big_mains/items/1")
        assert r.status_code == 404 and "no stable id" in r.json()["detail"]
        # the same view with a named key has ids
    (p,) = world.publish({"relation": "utility.big_mains", "id": "big_mains_keyed",
                          "id_column": "MainID", "access_level": "public"})["published"]
    with world.client(None) as c:
        f = c.get("/collections/big_mains_keyed/items?limit=1").json()["features"][0]
        assert c.get(f"/collections/big_mains_keyed/items/{f['id']}").status_code == 200


def test_materialized_view_and_partitioned_table(world: PubWorld, mains):
    (mv,) = world.publish({"relation": "utility.mains_mv", "access_level": "public"})["published"]
    assert mv["kind"] == "materialized view" and mv["key"] == ["id"] and mv["tracking"] == "poll"
    (pt,) = world.publish({"relation": "utility.readings", "access_level": "public"})["published"]
    assert pt["kind"] == "partitioned table" and pt["key"] == ["id", "taken"] and pt["srid"] == 3857
    with world.client(None) as c:
        assert c.get("/collections/mains_mv/items?limit=1").json()["numberMatched"] == 200
        page = c.get("/collections/readings/items?limit=100&sortby=-value").json()
        assert page["numberMatched"] == 30
        values = [f["properties"]["value"] for f in page["features"]]
        assert values == sorted(values, reverse=True)
        fid = page["features"][0]["id"]
        assert fid == "30~2025-06-01"
        assert c.get(f"/collections/readings/items/{fid}").json()["properties"]["value"] == 45.0


def test_tiles_hold_the_features_of_the_tile(world: PubWorld, mains):
    t = WM.tile(126.975, 37.56, 15)
    with world.client(None) as c:
        r = c.get(f"/collections/water_mains/tiles/WebMercatorQuad/{t.z}/{t.x}/{t.y}.mvt")
    assert r.status_code == 200
    assert r.headers["cache-control"] == "public, no-cache"       # rows change in place
    got = {f["id"] for f in _mvt(r.content)["water_mains"]["features"]}
    with world.owner() as conn:
        inner = {row[0] for row in conn.execute(
            f'SELECT "MainID" FROM {MAINS} WHERE ST_Intersects(ST_Transform(the_geom, 3857), '
            "ST_TileEnvelope(%s, %s, %s))", (t.z, t.x, t.y))}
        buffered = {row[0] for row in conn.execute(
            f'SELECT "MainID" FROM {MAINS} WHERE ST_Intersects(ST_Transform(the_geom, 3857), '
            "ST_Expand(ST_TileEnvelope(%s, %s, %s), %s))", (t.z, t.x, t.y, 64 / 4096 * 40075016.686 / 2 ** t.z))}
    assert inner and inner <= got <= buffered
    # detail band: every attribute, under its own name
    props = _mvt(r.content)["water_mains"]["features"][0]["properties"]
    assert {"Name", "order", "size", "geom"} <= set(props)
    # composite with an ingested layer
    world.ensure({"relation": "utility.valves", "access_level": "public"})
    with world.client(None) as c:
        r = c.get(f"/tiles/WebMercatorQuad/{t.z}/{t.x}/{t.y}.mvt?layers=districts,water_mains,valves")
    assert r.status_code == 200 and set(_mvt(r.content)) >= {"districts", "water_mains"}
    # a uuid key is no MVT id: from the detail zooms on, the features carry it as the "id"
    # property (below them tiles leave out near-unique columns: ids no map styles by)
    t = WM.tile(126.95, 37.54, 15)
    with world.client(None) as c:
        r = c.get(f"/collections/valves/tiles/WebMercatorQuad/{t.z}/{t.x}/{t.y}.mvt")
    feats = _mvt(r.content)["valves"]["features"]
    assert feats and all(len(f["properties"]["id"]) == 36 for f in feats)


def test_geography_tiles_and_low_zoom_tiles(world: PubWorld, mains):
    world.ensure({"relation": "utility.parcels", "access_level": "public"})
    t = WM.tile(126.99, 37.551, 13)
    with world.client(None) as c:
        r = c.get(f"/collections/parcels/tiles/WebMercatorQuad/{t.z}/{t.x}/{t.y}.mvt")
        assert r.status_code == 200 and _mvt(r.content)["parcels"]["features"]
        # z10: overview band from the relation itself (no overview for a small layer)
        t = WM.tile(126.98, 37.56, 10)
        r = c.get(f"/collections/water_mains/tiles/WebMercatorQuad/{t.z}/{t.x}/{t.y}.mvt")
        assert r.status_code in (200, 204)
        # another grid: KoreaUTMKQuad (EPSG:5179) from a 5186 table
        tj = c.get("/collections/water_mains/tiles/KoreaUTMKQuad/tilejson.json")
    if tj.status_code == 200:
        assert tj.json()["tiles"][0].startswith(world.server.url)


def test_exports_and_stats(world: PubWorld, mains, tmp_path):
    world.ensure({"relation": "utility.valves", "access_level": "public"})
    with world.client(None) as c:
        csv = c.get("/collections/water_mains/export?format=csv&geometry=lonlat")
        assert csv.status_code == 200
        lines = csv.text.strip().splitlines()
        assert len(lines) == 201 and lines[0].lstrip("\ufeff").startswith("fid,MainID,Name,order")
        gpkg = c.get("/collections/water_mains/export?format=gpkg&crs=http://www.opengis.net/def/crs/EPSG/0/5186")
        assert gpkg.status_code == 200
        path = tmp_path / "mains.gpkg"
        path.write_bytes(gpkg.content)
        info = pyogrio.read_info(path)
        assert info["features"] == 200 and info["crs"] == "EPSG:5186"
        assert "fid_source" in info["fields"] and "order" in info["fields"]
        st = c.get("/collections/water_mains/stats", params={
            "bbox": ",".join(map(str, BBOX)), "group-by": "size"}).json()
    with world.owner() as conn:
        count, length = conn.execute(
            f"SELECT count(*), sum(ST_Length(ST_Intersection(ST_Transform(the_geom, 4326), "
            f"ST_MakeEnvelope(%s, %s, %s, %s, 4326))::geography)) FROM {MAINS} WHERE ST_Intersects("
            "ST_Transform(the_geom, 4326), ST_MakeEnvelope(%s, %s, %s, %s, 4326))", (*BBOX, *BBOX)).fetchone()
    assert st["total"]["count"] == count
    assert st["total"]["length_m"] == pytest.approx(length, rel=1e-3)
    assert {g["value"] for g in st["groups"]} <= {150, 400}
    # area=<layer>:<id> across layers and SRIDs: the ingested districts' "west" polygon
    with world.client(None) as c:
        west = c.get("/collections/districts/items?name=west").json()["features"][0]["id"]
        st = c.get(f"/collections/water_mains/stats?area=districts:{west}").json()
        near = c.get("/collections/valves/nearest?point=126.9785,37.5665&limit=3").json()
    want = _count(world, f"SELECT count(*) FROM {MAINS} WHERE ST_Intersects(ST_Transform(the_geom, 4326), "
                         "ST_MakeEnvelope(126.94, 37.53, 126.985, 37.60, 4326))")
    assert st["total"]["count"] == want
    d = [f["properties"]["distance_m"] for f in near["features"]]
    with world.owner() as conn:
        oracle = [round(r[0], 2) for r in conn.execute(
            "SELECT ST_Distance(ST_Transform(pos, 4326)::geography, "
            "ST_SetSRID(ST_MakePoint(126.9785, 37.5665), 4326)::geography) d FROM utility.valves "
            "ORDER BY d LIMIT 3")]
    assert d == pytest.approx(oracle, abs=0.02)
    assert not math.isnan(d[0])


def test_function_layers_take_typed_parameters(world: PubWorld, mains):
    (fn,) = world.publish({"relation": "utility.mains_deeper_than", "id_column": "MainID",
                           "access_level": "public"})["published"]
    assert fn["kind"] == "function" and fn["parameters"][0]["name"] == "min_depth"
    # a SQL-standard body records its table: the function layer changes with it
    assert fn["tracking"] == "poll"
    (fn2,) = world.publish({"relation": "utility.valves_of_kind", "id_column": "id",
                            "access_level": "public"})["published"]
    assert fn2["srid"] == 5179                        # sampled from a default call
    assert fn2["tracking"] == "none" and "not cached" in fn2["note"]
    with world.client(None) as c:
        r = c.get("/collections/mains_deeper_than/items")
        assert r.status_code == 400 and "min_depth is required" in r.json()["detail"]
        r = c.get("/collections/mains_deeper_than/items?min_depth=deep")
        assert r.status_code == 400 and "number" in r.json()["detail"]
        page = c.get("/collections/mains_deeper_than/items?min_depth=3.5&limit=1").json()
        assert page["numberMatched"] == _count(world, f"SELECT count(*) FROM {MAINS} WHERE depth_m > 3.5")
        # optional argument: the function's default, or the given value
        gate = c.get("/collections/valves_of_kind/items?limit=100").json()["numberMatched"]
        bfly = c.get("/collections/valves_of_kind/items?k=butterfly&limit=100").json()["numberMatched"]
        assert (gate, bfly) == (_count(world, "SELECT count(*) FROM utility.valves WHERE kind = 'gate'"),
                                _count(world, "SELECT count(*) FROM utility.valves WHERE kind = 'butterfly'"))
        # in OpenAPI, queryables and TileJSON
        api = c.get("/api").json()
        params = {p["name"]: p for p in api["paths"]["/collections/mains_deeper_than/items"]["get"]["parameters"]
                  if "name" in p}
        assert params["min_depth"]["required"] is True and params["min_depth"]["schema"]["type"] == "number"
        qx = c.get("/collections/mains_deeper_than/queryables").json()
        assert qx["x-parameters"]["min_depth"]["type"] == "number"
        assert qx["x-required-parameters"] == ["min_depth"]
        tj = c.get("/collections/mains_deeper_than/tiles/WebMercatorQuad/tilejson.json?min_depth=2").json()
        assert "min_depth=2" in tj["tiles"][0]
        assert tj["vector_layers"][0]["parameters"]["min_depth"]["type"] == "number"
        # tiles: the argument changes the tile and its ETag; without it, a 400
        t = WM.tile(126.975, 37.56, 14)
        path = f"/collections/mains_deeper_than/tiles/WebMercatorQuad/{t.z}/{t.x}/{t.y}.mvt"
        assert c.get(path).status_code == 400
        shallow, deep = c.get(path + "?min_depth=1.5"), c.get(path + "?min_depth=4.5")
        assert shallow.headers["etag"] != deep.headers["etag"]
        n_shallow = len(_mvt(shallow.content)["mains_deeper_than"]["features"])
        n_deep = len(_mvt(deep.content)["mains_deeper_than"]["features"]) if deep.status_code == 200 else 0
        assert n_shallow > n_deep
        # a function of unknown inputs: rendered every time, never stored or revalidated
        t2 = WM.tile(126.95, 37.54, 14)
        r = c.get(f"/collections/valves_of_kind/tiles/WebMercatorQuad/{t2.z}/{t2.x}/{t2.y}.mvt?k=butterfly")
        assert r.headers["cache-control"] == "no-store" and "etag" not in r.headers


def test_new_layers_are_private_until_opened_and_scopes_apply(world: PubWorld, mains):
    with world.client("planner") as c:
        r = c.post("/layers/publish", json={"relation": "utility.valves", "id": "valves_private"})
        assert r.status_code == 201 and r.json()["published"][0]["access_level"] == "internal"
        assert c.get("/collections/valves_private/items?limit=1").status_code == 200
        # a planner may not publish a whole schema
        assert c.post("/layers/publish", json={"schema": "utility", "all": True}).status_code == 403
    with world.client(None) as c:
        assert c.get("/collections/valves_private").status_code == 404
        assert c.get("/collections/valves_private/items").status_code == 404
        assert c.post("/layers/publish", json={"relation": "utility.valves"}).status_code == 401
    with world.client("citizen") as c:
        assert c.post("/layers/publish", json={"relation": "utility.valves", "id": "v3"}).status_code == 403
    with world.client("staff") as c:
        assert c.get("/collections/valves_private/items?limit=1").status_code == 200
    # reading an internal layer is audited (rows are written by the server every second)
    deadline = time.monotonic() + 10
    while True:
        with world.owner() as conn:
            audited = conn.execute("SELECT count(*) FROM gis_meta.audit_log WHERE layer_id = "
                                   "'valves_private' AND action = 'read'").fetchone()[0]
        if audited or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert audited >= 1


def test_bad_publish_requests_get_clear_errors(world: PubWorld, mains):
    with world.client() as c:
        cases = [
            ({"relation": "nope"}, 400, "schema.name"),
            ({"relation": "utility.no_such"}, 404, "No table, view or function"),
            ({"relation": "utility.valves", "geometry_column": "kind"}, 400, "no geometry column"),
            ({"relation": "utility.valves", "id_column": "serial"}, 400, "no column 'serial'"),
            ({"relation": MAINS, "id": "water_mains"}, 409, "already exists"),
            ({"relation": "utility.valves", "id": "Bad Id"}, 400, "Invalid layer id"),
            ({"relation": "gis_meta.layers"}, 400, "no geometry"),
        ]
        for body, status, text in cases:
            r = c.post("/layers/publish", json=body)
            assert r.status_code == status, (body, r.text)
            assert text in r.json()["detail"], (body, r.text)
            assert "Traceback" not in r.text


def test_row_scopes_apply_to_a_published_relation(world: PubWorld, mains):
    from gis_platform.apikeys import create_api_key

    world.publish({"relation": "utility.valves", "id": "valves_restricted", "access_level": "restricted"})
    token = create_api_key(world.db_url, "gate-crew", ["operator"], scopes={"kinds": ["gate"]})
    gates = _count(world, "SELECT count(*) FROM utility.valves WHERE kind = 'gate'")
    t = WM.tile(126.98, 37.56, 12)
    with world.server.client(headers={"Authorization": f"Bearer {token}"}) as c:
        page = c.get("/collections/valves_restricted/items?limit=100").json()
        assert page["numberMatched"] == gates < 50
        assert {f["properties"]["kind"] for f in page["features"]} == {"gate"}
        assert c.get("/collections/valves_restricted/stats").json()["total"]["count"] == gates
        tile = c.get(tile_path := f"/collections/valves_restricted/tiles/WebMercatorQuad/{t.z}/{t.x}/{t.y}.mvt")
        kinds = {f["properties"]["kind"] for f in _mvt(tile.content)["valves_restricted"]["features"]}
        assert kinds == {"gate"}
        assert c.get("/collections/valves_restricted").json()["numberOfFeatures"] == gates
    with world.client("staff") as c:                  # restricted: staff may not read it at all
        assert c.get(tile_path).status_code == 404
    with world.client("admin") as c:
        kinds = {f["properties"]["kind"] for f in _mvt(c.get(tile_path).content)["valves_restricted"]["features"]}
        assert kinds == {"gate", "butterfly"}


def test_low_zoom_tiles_leave_out_ids_and_thin_dense_layers(db_url, data_dir):
    """Below the detail zooms a key (near-unique) is no tile attribute; at overview zooms a
    tile carries at most tile_overview_max_features per layer, from the base table and from
    an overview level alike."""
    from tests.publish.conftest import make_world

    w = make_world(db_url, data_dir, tile_overview_max_features=40)
    try:
        w.publish({"relation": MAINS, "id": "water_mains", "access_level": "public"})
        t12 = WM.tile(126.98, 37.56, 12)
        with w.client(None) as c:
            tj = c.get("/collections/water_mains/tiles/WebMercatorQuad/tilejson.json").json()["vector_layers"][0]
            assert "MainID" in tj["fields"] and "MainID" not in tj["mid_fields"] + tj["overview_fields"]
            r = c.get(f"/collections/water_mains/tiles/WebMercatorQuad/{t12.z}/{t12.x}/{t12.y}.mvt")
            feats = _mvt(r.content)["water_mains"]["features"]
            assert 0 < len(feats) <= 40 and all("MainID" not in f["properties"] for f in feats)
        # an overview level keeps the same budget per tile of its zoom
        import asyncio

        from gis_platform.config import Settings
        from tile_server.overview_build import OverviewPlan, build_layer
        from tile_server.sources import TileTuning

        s = Settings(_env_file=None, tile_overview_max_features=40, tile_overview_min_features=10)
        built = asyncio.run(build_layer(owner_url_of(w), "water_mains", TileTuning.from_settings(s.tiles),
                                        OverviewPlan.from_settings(s.tiles), force=True))
        level12 = next(o for o in built if o.zoom == 12)
        with w.owner() as conn:
            per_tile = conn.execute(
                f"SELECT max(n) FROM (SELECT count(*) n FROM tiles.\"{level12.table_name}\" GROUP BY "
                "floor((ST_XMin(__geom) + ST_XMax(__geom)) / 2 / 9783.939620502), "
                "floor((ST_YMin(__geom) + ST_YMax(__geom)) / 2 / 9783.939620502)) s").fetchone()[0]
        assert per_tile <= 40
    finally:
        w.server.stop()


def owner_url_of(world: PubWorld) -> str:
    from tests.conftest import owner_url

    return owner_url(world.db_url)
