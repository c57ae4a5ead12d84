"""Editing features (OGC API Features Part 4): validation, If-Match, scoped writers, history,
and tiles refreshed only where the data changed (#17)."""

from __future__ import annotations

import concurrent.futures

import geopandas as gpd
import psycopg
import pytest
import shapely
from morecantile import tms as morecantile_tms

from gis_platform.apikeys import create_api_key
from layers.ingest import ingest_geodataframe
from tests.conftest import owner_url, start_server
from tests.tiles.conftest import tile_ids, wait_for

WM = morecantile_tms.get("WebMercatorQuad")
NEAR = WM.tile(126.9701, 37.5501, 16)
FAR = WM.tile(127.0501, 37.5901, 16)


def mains() -> gpd.GeoDataFrame:
    lines = [shapely.LineString([(126.97 + i * 0.01, 37.55 + j * 0.01), (126.9705 + i * 0.01, 37.55 + j * 0.01)])
             for i in range(9) for j in range(5)]
    n = len(lines)
    return gpd.GeoDataFrame({
        "owner": ["KT" if i % 2 == 0 else "한국전력공사" for i in range(n)],
        "kind": ["telecom" if i % 2 == 0 else "power" for i in range(n)],
        "depth_m": [1.0 + (i % 5) * 0.2 for i in range(n)],
        "diameter_mm": [100 + (i % 3) * 50 for i in range(n)]}, geometry=lines, crs="EPSG:4326")


@pytest.fixture
def world(db_url, make_settings):
    ingest_geodataframe(db_url, mains(), "mains", metadata={"access_level": "internal",
                                                             "title": "Mains"})
    tokens = {"planner": create_api_key(db_url, "p", ["planner"]),
              "admin": create_api_key(db_url, "a", ["admin"]),
              "citizen": create_api_key(db_url, "c", ["citizen"]),
              "kt": create_api_key(db_url, "kt", ["operator"], scopes={"owners": ["KT"]})}
    srv = start_server(make_settings(rate_limit_per_ip=0))
    try:
        yield srv, tokens, db_url
    finally:
        srv.stop()


def as_(srv, tokens, who):
    return srv.client(headers={"Authorization": f"Bearer {tokens[who]}"} if who else {})


def feature(lon=126.99, lat=37.58, **props):
    base = {"owner": "KT", "kind": "telecom", "depth_m": 1.2, "diameter_mm": 100}
    base.update(props)
    return {"type": "Feature", "properties": base,
            "geometry": {"type": "LineString", "coordinates": [[lon, lat], [lon + 0.001, lat]]}}


def count(db_url) -> int:
    with psycopg.connect(db_url) as conn:
        return conn.execute("SELECT count(*) FROM gis_data.mains").fetchone()[0]


def make_editable(srv, tokens):
    with as_(srv, tokens, "admin") as c:
        assert c.patch("/layers/mains", json={"editable": True}).status_code == 200


def test_only_editable_layers_take_writes_and_only_from_writers(world):
    srv, tokens, db_url = world
    with as_(srv, tokens, "planner") as c:
        r = c.post("/collections/mains/items", json=feature())
        assert r.status_code == 409 and "not editable" in r.json()["detail"]
        assert c.options("/collections/mains/items").headers["allow"] == "GET, HEAD, OPTIONS"
    make_editable(srv, tokens)
    with as_(srv, tokens, "citizen") as c:
        assert c.post("/collections/mains/items", json=feature()).status_code in (403, 404)
    with as_(srv, tokens, None) as c:
        assert c.post("/collections/mains/items", json=feature()).status_code in (401, 404)
    with as_(srv, tokens, "planner") as c:
        assert c.options("/collections/mains/items").headers["allow"] == "GET, HEAD, POST, OPTIONS"
        conf = c.get("/conformance").json()["conformsTo"]
        assert any(u.endswith("ogcapi-features-4/1.0/conf/create-replace-delete") for u in conf)
        schema = c.get("/collections/mains/schema")
        assert schema.headers["content-type"].startswith("application/schema+json")
        assert schema.json()["properties"]["depth_m"]["type"] == "number"
    assert count(db_url) == 45


def test_create_validates_and_is_all_or_nothing(world):
    srv, tokens, db_url = world
    make_editable(srv, tokens)
    with as_(srv, tokens, "planner") as c:
        r = c.post("/collections/mains/items?reason=new%20cable", json=feature())
        assert r.status_code == 201, r.text
        loc, etag = r.headers["location"], r.headers["etag"]
        assert loc.endswith("/collections/mains/items/46") and etag.startswith('"v')
        got = c.get(loc)
        assert got.json()["properties"]["owner"] == "KT" and got.headers["etag"] == etag
        # Geometry in another CRS (Content-Crs), axis order as that CRS says (northing first)
        r = c.post("/collections/mains/items", json={
            "type": "Feature", "properties": {"owner": "KT", "kind": "telecom"},
            "geometry": {"type": "LineString", "coordinates": [[551000, 198000], [551000, 198100]]}},
            headers={"Content-Crs": "<http://www.opengis.net/def/crs/EPSG/0/5186>"})
        assert r.status_code == 201, r.text
        lon, lat = c.get(r.headers["location"]).json()["geometry"]["coordinates"][0]
        assert 126.9 < lon < 127.0 and 37.5 < lat < 37.6
        cases = [
            ({**feature(), "properties": {"depth_m": "deep"}}, 400, "depth_m"),
            ({**feature(), "properties": {"diameter_mm": 1.5}}, 400, "whole number"),
            ({**feature(), "properties": {"colour": "red"}}, 400, "Unknown properties"),
            ({**feature(), "geometry": {"type": "Point", "coordinates": [127, 37.5]}}, 422, "LineString"),
            ({**feature(), "geometry": None}, 400, "needs a geometry"),
            ({"type": "Feature", "properties": {}, "geometry": {"type": "LineString",
                                                                  "coordinates": [[500, 37], [501, 37]]}},
             400, "out of range"),
        ]
        for body, status, text in cases:
            r = c.post("/collections/mains/items", json=body)
            assert r.status_code == status and text in r.json()["detail"], (body, r.text)
        before = count(db_url)
        r = c.post("/collections/mains/items", json={"type": "FeatureCollection", "features": [
            feature(), feature(lat=37.581), {**feature(), "properties": {"depth_m": "x"}}]})
        assert r.status_code == 400 and "Feature 3" in r.json()["detail"]
        assert count(db_url) == before
        r = c.post("/collections/mains/items", json={"type": "FeatureCollection", "features": [
            feature(), feature(lat=37.581)]})
        assert r.status_code == 201 and len(r.json()["created"]) == 2
        assert count(db_url) == before + 2


def test_if_match_protects_every_write(world):
    srv, tokens, db_url = world
    make_editable(srv, tokens)
    with as_(srv, tokens, "planner") as c:
        etag = c.get("/collections/mains/items/3").headers["etag"]
        r = c.patch("/collections/mains/items/3", json={"properties": {"depth_m": 0.8}})
        assert r.status_code == 428 and "If-Match" in r.json()["detail"]
        r = c.patch("/collections/mains/items/3", json={"properties": {"depth_m": 0.8}},
                    headers={"If-Match": '"v1"'})
        assert r.status_code == 412 and r.json()["currentEtag"] == etag
        # two planners change the same main from the same version: one wins, one gets 412
        def write(depth):
            with as_(srv, tokens, "planner") as cc:
                return cc.patch("/collections/mains/items/3", json={"properties": {"depth_m": depth}},
                                headers={"If-Match": etag}).status_code
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            results = sorted(pool.map(write, [0.6, 0.7]))
        assert results == [204, 412]
        now = c.get("/collections/mains/items/3")
        assert now.headers["etag"] != etag and now.json()["properties"]["depth_m"] in (0.6, 0.7)
        # PUT replaces every attribute (the missing ones become null), geometry included
        r = c.put("/collections/mains/items/3", headers={"If-Match": now.headers["etag"]},
                  json=feature(lon=127.001, lat=37.561, owner="KT", kind="telecom"))
        assert r.status_code == 204
        put = c.get("/collections/mains/items/3").json()
        assert put["properties"]["depth_m"] == 1.2 and put["geometry"]["coordinates"][0][0] == pytest.approx(127.001)
        # DELETE, then the feature is gone and its history ends with a tombstone
        r = c.delete("/collections/mains/items/3?reason=abandoned",
                     headers={"If-Match": c.get("/collections/mains/items/3").headers["etag"]})
        assert r.status_code == 204
        assert c.get("/collections/mains/items/3").status_code == 404
        hist = c.get("/collections/mains/items/3/versions").json()["versions"]
    ops = [v["op"] for v in hist]
    assert ops[0] == "delete" and ops[-1] == "loaded" and "replace" in ops and "update" in ops
    assert hist[0]["reason"] == "abandoned" and hist[0]["properties"] is None
    assert hist[-1]["properties"]["depth_m"] == pytest.approx(1.4)      # as loaded
    assert all(v["actor"] for v in hist)
    with psycopg.connect(owner_url(db_url)) as conn, pytest.raises(psycopg.errors.RaiseException):
        conn.execute("UPDATE gis_meta.feature_versions SET actor = 'x'")


def test_scoped_operators_write_only_their_own_rows(world):
    srv, tokens, db_url = world
    make_editable(srv, tokens)
    with as_(srv, tokens, "kt") as c:
        mine = c.get("/collections/mains/items/1")          # fid 1: KT (even index)
        assert mine.status_code == 200 and mine.json()["properties"]["owner"] == "KT"
        assert c.patch("/collections/mains/items/1", json={"properties": {"depth_m": 1.9}},
                       headers={"If-Match": mine.headers["etag"]}).status_code == 204
        # another owner's main: invisible, so a 404 whatever the ETag
        assert c.patch("/collections/mains/items/2", json={"properties": {"depth_m": 1.9}},
                       headers={"If-Match": "*"}).status_code == 404
        # giving its own main away, or creating one for another owner: refused, nothing written
        etag = c.get("/collections/mains/items/1").headers["etag"]
        r = c.patch("/collections/mains/items/1", json={"properties": {"owner": "한국전력공사"}},
                    headers={"If-Match": etag})
        assert r.status_code == 403
        assert c.get("/collections/mains/items/1").json()["properties"]["owner"] == "KT"
        before = count(db_url)
        assert c.post("/collections/mains/items", json=feature(owner="한국전력공사")).status_code == 403
        assert c.post("/collections/mains/items", json=feature(owner="KT")).status_code == 201
        assert count(db_url) == before + 1
        # and it cannot replace the layer as a whole
        assert c.patch("/layers/mains", json={"title": "x"}).status_code == 403


def test_an_edit_refreshes_only_the_tiles_under_it(world):
    srv, tokens, db_url = world
    make_editable(srv, tokens)
    path = lambda t: f"/collections/mains/tiles/WebMercatorQuad/{t.z}/{t.x}/{t.y}.mvt"
    with as_(srv, tokens, "planner") as c:
        near, far = c.get(path(NEAR)), c.get(path(FAR))
        assert 1 in tile_ids(near) and tile_ids(far)
        etag = c.get("/collections/mains/items/1").headers["etag"]
        moved = feature(lon=126.985, lat=37.575)
        assert c.put("/collections/mains/items/1", json=moved, headers={"If-Match": etag}).status_code == 204
        # this worker answers from the new state at once
        assert 1 not in tile_ids(c.get(path(NEAR)))
        assert c.get(path(NEAR)).headers["etag"] != near.headers["etag"]
        assert c.get(path(FAR), headers={"If-Match": "x", "If-None-Match": far.headers["etag"]}).status_code == 304
        dest = WM.tile(126.9855, 37.575, 16)
        assert 1 in tile_ids(c.get(path(dest)))
        # counts follow the edit too (no stale cached numberMatched)
        n = c.get("/collections/mains/items?limit=1").json()["numberMatched"]
        etag = c.get("/collections/mains/items/1").headers["etag"]
        assert c.delete("/collections/mains/items/1", headers={"If-Match": etag}).status_code == 204
        wait_for(lambda: c.get("/collections/mains/items?limit=1").json()["numberMatched"] == n - 1)


def test_the_change_feed_tells_a_connected_client(world):
    import threading
    import time

    srv, tokens, db_url = world
    make_editable(srv, tokens)
    got: list[str] = []
    ready = threading.Event()

    def listen():
        with as_(srv, tokens, "planner") as c, c.stream(
                "GET", "/collections/mains/changes", headers={"Accept": "text/event-stream"},
                timeout=20) as r:
            assert r.headers["content-type"].startswith("text/event-stream")
            for line in r.iter_lines():
                if line.startswith("retry"):
                    ready.set()
                got.append(line)
                if line.startswith("data: {\"version\""):
                    return

    t = threading.Thread(target=listen, daemon=True)
    t.start()
    assert ready.wait(10)
    with as_(srv, tokens, "planner") as c:
        before = c.get("/collections/mains/changes").json()
        etag = c.get("/collections/mains/items/5").headers["etag"]
        t0 = time.monotonic()
        assert c.patch("/collections/mains/items/5", json={"properties": {"depth_m": 2.5}},
                       headers={"If-Match": etag}).status_code == 204
        t.join(10)
        assert not t.is_alive(), got
        assert time.monotonic() - t0 < 5
        event = next(l for l in got if l.startswith("data: {\"version\""))
        import orjson

        change = orjson.loads(event[6:])
        # the extent of the main edited (fid 5: the fifth line of the first column)
        assert change["extent"][0] == pytest.approx(126.97, abs=1e-6)
        # pollers: the JSON page of what changed since a version
        page = c.get(f"/collections/mains/changes?since={before['latest'] or 0}").json()
        assert [ch["version"] for ch in page["changes"]] == [change["version"]]
        assert page["dataVersion"] == before["dataVersion"]
    with as_(srv, tokens, "kt") as c:               # limited to rows: no extents of others' rows
        assert c.get("/collections/mains/changes").status_code == 404


def test_as_of_reads_and_restore(world):
    import time

    srv, tokens, db_url = world
    make_editable(srv, tokens)
    with as_(srv, tokens, "planner") as c:
        before = c.get("/collections/mains/items?limit=1").json()["numberMatched"]
        with psycopg.connect(db_url) as conn:
            t0 = conn.execute("SELECT now()").fetchone()[0]
        time.sleep(0.05)
        e7 = c.get("/collections/mains/items/7").headers["etag"]
        assert c.patch("/collections/mains/items/7", json={"properties": {"depth_m": 2.9}},
                       headers={"If-Match": e7}).status_code == 204
        e8 = c.get("/collections/mains/items/8").headers["etag"]
        assert c.delete("/collections/mains/items/8", headers={"If-Match": e8}).status_code == 204
        assert c.post("/collections/mains/items", json=feature()).status_code == 201
        now = c.get("/collections/mains/items?limit=1").json()["numberMatched"]
        assert now == before                                   # one deleted, one created
        at = t0.isoformat()
        # as it was: 7 with its old depth, 8 still there, the new one not yet
        past = c.get("/collections/mains/items", params={"asOf": at, "limit": 100}).json()
        ids = {f["id"] for f in past["features"]}
        assert past["numberMatched"] == before and 8 in ids and 46 not in ids
        assert c.get("/collections/mains/items/7", params={"asOf": at}).json()["properties"]["depth_m"] \
            == pytest.approx(1.2)
        assert c.get("/collections/mains/items/7").json()["properties"]["depth_m"] == pytest.approx(2.9)
        assert c.get("/collections/mains/items/8", params={"asOf": at}).status_code == 200
        stats_then = c.get("/collections/mains/stats", params={"asOf": at}).json()["total"]["count"]
        assert stats_then == before
        # tiles as they were: the deleted main 8 is in the tile then, not now
        t8 = WM.tile(126.9801, 37.57, 16)
        path8 = f"/collections/mains/tiles/WebMercatorQuad/{t8.z}/{t8.x}/{t8.y}.mvt"
        assert 8 not in tile_ids(c.get(path8))
        then = c.get(path8, params={"asOf": at})
        assert 8 in tile_ids(then)
        assert then.headers["etag"] != c.get(path8).headers["etag"]
        assert c.get(path8, params={"asOf": "2000-01-01"}).status_code == 400
        # where nothing changed since, the past is the present: the same tile, the same ETag
        far = f"/collections/mains/tiles/WebMercatorQuad/{FAR.z}/{FAR.x}/{FAR.y}.mvt"
        assert c.get(far, params={"asOf": at}).headers["etag"] == c.get(far).headers["etag"]
        # bad asOf values
        assert c.get("/collections/mains/items", params={"asOf": "yesterday"}).status_code == 400
        assert c.get("/collections/mains/items", params={"asOf": "1999-01-01T00:00:00Z"}).status_code == 400
        assert c.get("/collections/districts/items", params={"asOf": at}).status_code in (400, 404)
        # restore: the deleted main comes back (a new version), 7 goes back to its old depth
        hist8 = c.get("/collections/mains/items/8/versions").json()["versions"]
        loaded8 = hist8[-1]["version"]
        assert c.post(f"/collections/mains/items/8/restore?version={loaded8}",
                      headers={"If-Match": "*"}).status_code == 204
        assert c.get("/collections/mains/items/8").status_code == 200
        hist7 = c.get("/collections/mains/items/7/versions").json()["versions"]
        e7 = c.get("/collections/mains/items/7").headers["etag"]
        r = c.post(f"/collections/mains/items/7/restore?version={hist7[-1]['version']}",
                   headers={"If-Match": e7})
        assert r.status_code == 204
        assert c.get("/collections/mains/items/7").json()["properties"]["depth_m"] == pytest.approx(1.2)
        ops = [v["op"] for v in c.get("/collections/mains/items/7/versions").json()["versions"]]
        assert ops == ["restore", "update", "loaded"]


def test_a_client_without_if_match_where_the_deployment_allows_it(db_url, make_settings):
    """QGIS's OAPIF provider (3.32+) writes with PUT and no If-Match: refused by default
    (428), accepted last-write-wins where the deployment says so - the version it replaced
    still in the history."""
    ingest_geodataframe(db_url, mains(), "mains", metadata={"access_level": "internal"})
    tokens = {"planner": create_api_key(db_url, "p", ["planner"]),
              "admin": create_api_key(db_url, "a", ["admin"])}
    qgis_put = {"Content-Type": "application/geo+json",
                "Content-Crs": "http://www.opengis.net/def/crs/OGC/1.3/CRS84"}
    body = {"type": "Feature", "id": 4, "properties": {"owner": "KT", "kind": "telecom", "depth_m": 0.9,
                                                          "diameter_mm": 100},
            "geometry": {"type": "LineString", "coordinates": [[126.99, 37.58], [126.991, 37.58]]}}
    for required in (True, False):
        srv = start_server(make_settings(rate_limit_per_ip=0, features_edit_require_if_match=required))
        try:
            make_editable(srv, tokens)
            with as_(srv, tokens, "planner") as c:
                r = c.put("/collections/mains/items/4", json=body, headers=qgis_put)
                if required:
                    assert r.status_code == 428
                    continue
                assert r.status_code == 204
                assert c.get("/collections/mains/items/4").json()["properties"]["depth_m"] == 0.9
                ops = [v["op"] for v in c.get("/collections/mains/items/4/versions").json()["versions"]]
                assert ops == ["replace", "loaded"]
                # a stale If-Match is still refused
                assert c.put("/collections/mains/items/4", json=body,
                             headers={**qgis_put, "If-Match": '"v1"'}).status_code == 412
        finally:
            srv.stop()


def test_a_long_change_log_is_folded_without_a_cold_map(db_url, make_settings):
    """Past publish_max_changes the oldest changes are folded into grid cells: the data
    version stays, a tile far from every edit keeps its ETag, a tile under them is new."""
    ingest_geodataframe(db_url, mains(), "mains", metadata={"access_level": "internal"})
    tokens = {"planner": create_api_key(db_url, "p", ["planner"]),
              "admin": create_api_key(db_url, "a", ["admin"])}
    srv = start_server(make_settings(rate_limit_per_ip=0, publish_max_changes=10, publish_poll_seconds=0.5))
    path = lambda t: f"/collections/mains/tiles/WebMercatorQuad/{t.z}/{t.x}/{t.y}.mvt"
    try:
        make_editable(srv, tokens)
        with as_(srv, tokens, "planner") as c:
            version = c.get("/layers/mains").json()["data_version"]
            far = c.get(path(FAR))
            near_before = c.get(path(NEAR))
            assert tile_ids(far) and tile_ids(near_before)
            for fid in range(1, 15):               # the western mains, 5 km from FAR
                etag = c.get(f"/collections/mains/items/{fid}").headers["etag"]
                assert c.patch(f"/collections/mains/items/{fid}", json={"properties": {"depth_m": 2.0}},
                               headers={"If-Match": etag}).status_code == 204
            with psycopg.connect(db_url) as conn:
                def folded():
                    return conn.execute("SELECT count(*) FILTER (WHERE source = 'fold'), count(*) FROM "
                                        "gis_meta.layer_changes WHERE layer_id = 'mains'").fetchone()
                wait_for(lambda: folded()[0] > 0, 20)
                n_fold, n_all = folded()
            assert n_all <= 10
            # (the fold may come while the edits are made: the tile under them is compared
            # with itself before any edit - its key never goes back to an old one)
            wait_for(lambda: c.get("/layers/mains").json()["data_version"] == version, 10)
            assert c.get(path(NEAR)).headers["etag"] != near_before.headers["etag"]
            assert c.get("/layers/mains").json()["data_version"] == version
            assert c.get(path(FAR), headers={"If-None-Match": far.headers["etag"]}).status_code == 304
            assert 1 in tile_ids(c.get(path(NEAR)))
            # the feed and the history still work across the fold
            assert c.get("/collections/mains/changes").status_code == 200
            assert len(c.get("/collections/mains/items/1/versions").json()["versions"]) == 2
    finally:
        srv.stop()
