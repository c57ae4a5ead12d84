"""Editing relations published in place (#17): the same Part 4 API writes into the city's own
tables - their key, geometry column, SRID, geography - once their owner grants it."""

from __future__ import annotations

import psycopg

from layers.relation import id_in_path
from tests.publish.conftest import PubWorld
from tests.publish.test_publish_changes import (DEST, FAR, MAINS, NEAR, NEW_LAT, NEW_LON, publish_with_triggers,
                                                tile_path)
from tests.tiles.conftest import tile_ids, wait_for


def line(lon: float, lat: float) -> dict:
    return {"type": "LineString", "coordinates": [[lon, lat], [lon + 0.002, lat]]}


def make_editable(w: PubWorld, layer_id: str) -> None:
    with w.client() as c:
        r = c.patch(f"/layers/{layer_id}", json={"editable": True})
        assert r.status_code == 200, r.text
        wait_for(lambda: "PUT" in c.options(f"/collections/{layer_id}/items/1").headers["allow"])


def test_a_published_table_is_edited_in_place(fresh_world: PubWorld):
    w = fresh_world
    publish_with_triggers(w, MAINS, "water_mains")
    with w.client() as c:
        # the platform's login may only read it: the owner must grant writes first
        r = c.patch("/layers/water_mains", json={"editable": True})
        assert r.status_code == 409 and 'GRANT INSERT, UPDATE, DELETE ON "City Data"."Water Mains"' in r.json()["detail"]
    with w.owner() as conn:
        conn.execute(f"GRANT INSERT, UPDATE, DELETE ON {MAINS} TO gis_platform_app")
    make_editable(w, "water_mains")
    with w.client("planner") as c:
        near, far = c.get(tile_path("water_mains", NEAR)), c.get(tile_path("water_mains", FAR))
        assert 45 in tile_ids(near)
        r = c.get("/collections/water_mains/items/45")
        etag = r.headers["etag"]
        assert etag.startswith('"b')
        # an attribute, then the geometry (CRS84 in, EPSG:5186 stored)
        assert c.patch("/collections/water_mains/items/45", json={"properties": {"depth_m": 0.6}},
                       headers={"If-Match": etag}).status_code == 204
        etag = c.get("/collections/water_mains/items/45").headers["etag"]
        moved = {"type": "Feature", "geometry": line(NEW_LON, NEW_LAT)}
        r = c.patch("/collections/water_mains/items/45", json=moved, headers={"If-Match": etag})
        assert r.status_code == 204, r.text
        with w.owner() as conn:
            depth, x, srid = conn.execute(
                f'SELECT depth_m, ST_X(ST_StartPoint(ST_Transform(the_geom, 4326))), ST_SRID(the_geom) '
                f'FROM {MAINS} WHERE "MainID" = 45').fetchone()
        assert depth == 0.6 and abs(x - NEW_LON) < 1e-7 and srid == 5186
        # tiles: the one it left and the one it reached change, a far one keeps its ETag
        wait_for(lambda: 45 not in tile_ids(c.get(tile_path("water_mains", NEAR))))
        assert 45 in tile_ids(c.get(tile_path("water_mains", DEST)))
        assert c.get(tile_path("water_mains", FAR),
                     headers={"If-None-Match": far.headers["etag"]}).status_code == 304
        # the key identifies the feature: it cannot change
        etag = c.get("/collections/water_mains/items/45").headers["etag"]
        r = c.patch("/collections/water_mains/items/45", json={"properties": {"MainID": 46}},
                    headers={"If-Match": etag})
        assert r.status_code == 422 and "MainID" in r.json()["detail"]
        # a PUT of what was read (key included) is fine
        doc = c.get("/collections/water_mains/items/45").json()
        doc["properties"]["Name"] = "본관 이설"
        assert c.put("/collections/water_mains/items/45", json=doc, headers={"If-Match": etag}).status_code == 204
        assert c.get("/collections/water_mains/items/45").json()["properties"]["Name"] == "본관 이설"
        # create: the key has no default, so it must be given; a taken one is refused
        new = {"type": "Feature", "properties": {"Name": "신설", "size": 200, "depth_m": 1.1},
               "geometry": line(127.0, 37.57)}
        r = c.post("/collections/water_mains/items", json=new)
        assert r.status_code == 422 and "MainID" in r.json()["detail"]
        new["properties"]["MainID"] = 45
        assert c.post("/collections/water_mains/items", json=new).status_code == 422
        new["properties"]["MainID"] = 9001
        r = c.post("/collections/water_mains/items", json=new)
        assert r.status_code == 201 and r.headers["location"].endswith("/collections/water_mains/items/9001")
        # delete leaves a tombstone; restore brings it back
        etag = c.get("/collections/water_mains/items/9001").headers["etag"]
        assert c.delete("/collections/water_mains/items/9001", headers={"If-Match": etag}).status_code == 204
        assert c.get("/collections/water_mains/items/9001").status_code == 404
        hist = c.get("/collections/water_mains/items/9001/versions").json()["versions"]
        assert [v["op"] for v in hist] == ["delete", "create"]
        assert c.post(f"/collections/water_mains/items/9001/restore?version={hist[1]['version']}",
                      headers={"If-Match": "*"}).status_code == 204
        assert c.get("/collections/water_mains/items/9001").json()["properties"]["Name"] == "신설"
        ops = [v["op"] for v in c.get("/collections/water_mains/items/45/versions").json()["versions"]]
        assert ops == ["replace", "update", "update", "loaded"]
        # another system's writes go on beside the platform's: no history of them is claimed
        r = c.get("/collections/water_mains/items", params={"asOf": "2026-01-01T00:00:00Z"})
        assert r.status_code == 400
    # a view cannot take writes, whatever the grants
    w.publish({"relation": "utility.big_mains", "id": "big_mains_keyed", "id_column": "MainID",
               "access_level": "public"})
    with w.client() as c:
        r = c.patch("/layers/big_mains_keyed", json={"editable": True})
        assert r.status_code == 409 and "only tables" in r.json()["detail"]


def test_a_composite_key_and_a_geography_column(fresh_world: PubWorld):
    w = fresh_world
    with w.owner() as conn:
        conn.execute("GRANT INSERT, UPDATE, DELETE ON utility.parcels TO gis_platform_app")
    w.publish({"relation": "utility.parcels", "access_level": "public"})
    make_editable(w, "parcels")
    with w.client("planner") as c:
        feats = c.get("/collections/parcels/items", params={"limit": 50}).json()["features"]
        one = next(f for f in feats if f["properties"]["district"] == "종로/1" and f["properties"]["lot"] == 3)
        path = f"/collections/parcels/items/{id_in_path(one['id'])}"
        r = c.get(path)
        assert r.status_code == 200
        etag = r.headers["etag"]
        square = {"type": "Polygon", "coordinates": [[[127.01, 37.57], [127.012, 37.57], [127.012, 37.572],
                                                      [127.01, 37.572], [127.01, 37.57]]]}
        r = c.patch(path, json={"properties": {"zone": "G"}, "geometry": square}, headers={"If-Match": etag})
        assert r.status_code == 204, r.text
        with w.owner() as conn:
            zone, area = conn.execute("SELECT zone, ST_Area(area) FROM utility.parcels "
                                      "WHERE district = '종로/1' AND lot = 3").fetchone()
        assert zone == "G" and 30_000 < area < 60_000          # about 176 m x 222 m, in square metres
        new = {"type": "Feature", "properties": {"district": "중구", "lot": 100, "zone": "R"}, "geometry": square}
        r = c.post("/collections/parcels/items", json=new)
        assert r.status_code == 201, r.text
        assert c.get(r.headers["location"].split(w.server.url)[-1]).json()["properties"]["lot"] == 100
    with psycopg.connect(w.db_url) as conn:
        n = conn.execute("SELECT count(*) FROM gis_meta.feature_versions WHERE layer_id = 'parcels'").fetchone()[0]
    assert n == 3                     # loaded + update of the lot, create of the new one
