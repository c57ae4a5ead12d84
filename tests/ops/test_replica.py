"""The platform on a primary and a real streaming replica (#19): reads never older than what
they are keyed on, a failing replica costs no request, and a writer reads its own writes."""

from __future__ import annotations

import time
from collections.abc import Iterator

import geopandas as gpd
import psycopg
import pytest
import shapely
from morecantile import tms as morecantile_tms

from gis_platform.apikeys import create_api_key
from layers.ingest import ingest_geodataframe
from tests.conftest import _make_world_traversable_tmp, start_server
from tests.replica import Replica
from tests.tiles.conftest import tile_ids, wait_for

WM = morecantile_tms.get("WebMercatorQuad")
TILE = WM.tile(126.9702, 37.5502, 15)
PATH = f"/collections/mains/tiles/WebMercatorQuad/{TILE.z}/{TILE.x}/{TILE.y}.mvt"


def mains(n: int, depth: float = 1.0) -> gpd.GeoDataFrame:
    """``n`` short mains stacked north of (126.97, 37.55): the tile above holds the first."""
    lines = [shapely.LineString([(126.97, 37.55 + i * 0.0002), (126.9705, 37.55 + i * 0.0002)])
             for i in range(n)]
    return gpd.GeoDataFrame({"kind": ["water"] * n, "depth_m": [depth] * n}, geometry=lines,
                            crs="EPSG:4326")


@pytest.fixture(scope="module")
def replica(cluster) -> Iterator[Replica]:
    r = Replica(cluster, _make_world_traversable_tmp("gis-replica-") / "replica")
    r.create()
    r.start()
    try:
        yield r
    finally:
        r.destroy()


@pytest.fixture
def on_replica(replica: Replica, db_url, make_settings):
    """The platform over a fresh database, reading from the replica."""
    ingest_geodataframe(db_url, mains(5), "mains", metadata={"access_level": "public"})
    replica.wait_caught_up()
    srv = start_server(make_settings(read_database_url=replica.url_for(db_url), rate_limit_per_ip=0,
                                     replica_max_wait_ms=150, replica_retry_s=1.0))
    try:
        yield srv
    finally:
        srv.stop()
        try:
            replica.resume()
        except psycopg.Error:
            pass


def reads(srv) -> dict:
    with srv.client() as c:
        return c.get("/ready").json()["read_replica"]


def test_a_replica_behind_a_reingest_never_serves_or_caches_old_rows(replica, on_replica, db_url):
    srv = on_replica
    with srv.client() as c:
        before = c.get(PATH)
        assert tile_ids(before) == {1, 2, 3, 4, 5}
        assert c.get("/collections/mains/items?limit=1").json()["numberMatched"] == 5
        assert reads(srv)["reads"]["replica"] > 0
        replica.pause()
        version = c.get("/layers/mains").json()["data_version"]
        ingest_geodataframe(db_url, mains(2, depth=2.0), "mains", mode="replace")
        wait_for(lambda: c.get("/layers/mains").json()["data_version"] != version)
        # the replica still has the 5 old mains; what is served (and cached) is the new 2
        during = c.get(PATH)
        assert tile_ids(during) == {1, 2}
        page = c.get("/collections/mains/items?limit=10").json()
        assert page["numberMatched"] == 2 and {f["properties"]["depth_m"] for f in page["features"]} == {2.0}
        status = reads(srv)
        assert status["fallbacks"]["behind"] >= 2 and status["in_use"]
        replica.resume()
        replica.wait_caught_up()
        after = c.get(PATH)
        assert tile_ids(after) == {1, 2} and after.headers["etag"] == during.headers["etag"]
        assert c.get("/collections/mains/items?limit=10").json()["numberMatched"] == 2


def test_a_writer_reads_its_own_write_while_the_replica_lags(replica, on_replica, db_url):
    srv = on_replica
    admin = create_api_key(db_url, "a", ["admin"])
    with srv.client(headers={"Authorization": f"Bearer {admin}"}) as c:
        assert c.patch("/layers/mains", json={"editable": True}).status_code == 200
        replica.wait_caught_up()
        replica.pause()
        etag = c.get("/collections/mains/items/3").headers["etag"]
        assert c.patch("/collections/mains/items/3", json={"properties": {"depth_m": 0.4}},
                       headers={"If-Match": etag}).status_code == 204
        assert c.get("/collections/mains/items/3").json()["properties"]["depth_m"] == 0.4
        assert 3 in tile_ids(c.get(PATH.replace("/15/", "/15/")))


def test_a_replica_that_goes_away_costs_no_request(replica, on_replica):
    srv = on_replica
    with srv.client() as c:
        assert c.get(PATH).status_code == 200
        replica.stop()
        try:
            statuses = []
            deadline = time.monotonic() + 4
            while time.monotonic() < deadline:
                statuses.append(c.get(f"/collections/mains/items?limit=1&offset={len(statuses) % 3}").status_code)
                statuses.append(c.get(PATH + f"?r={len(statuses)}").status_code)
            assert set(statuses) <= {200, 204}, statuses
            assert not reads(srv)["in_use"]
        finally:
            replica.start()
        wait_for(lambda: reads(srv)["in_use"], 15)
        n = reads(srv)["reads"]["replica"]
        c.get("/collections/mains/items?limit=2")
        assert reads(srv)["reads"]["replica"] > n
