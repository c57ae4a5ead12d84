"""Expensive input cannot crash requests or starve the server: long CQL2 filters are
limited after parsing and composed flat; request geometries are limited in vertices;
anonymous expensive queries get a short statement budget; expensive queries hold at most a
share of the pool, so cheap requests keep being served."""

from __future__ import annotations

import concurrent.futures as cf
import math
import time

import pytest

from tests.conftest import SHARED_DATA, start_server

AREAS = SHARED_DATA / "southkorea-seoul-maps" / "juso" / "2015" / "json" / "seoul_neighborhoods_geo_simple.json"


@pytest.fixture
def city(db_url, make_settings):
    """Seoul's 467 neighbourhoods as a public layer ``districts``, on a server with a small
    pool and a 100 ms budget for anonymous expensive queries."""
    from layers.ingest import ingest_file

    ingest_file(db_url, AREAS, layer_id="districts", metadata={"access_level": "public"})
    srv = start_server(make_settings(pool_max_size=4, pool_timeout=2.0,
                                     anonymous_statement_timeout_ms=100))
    yield srv
    srv.stop()


def ring(n: int, cx=126.99, cy=37.55, r=0.15) -> dict:
    """A polygon of ``n`` vertices around central Seoul (a wiggly circle)."""
    pts = [[cx + (r + 0.01 * math.sin(i * 7.0)) * math.cos(2 * math.pi * i / n),
            cy + (r + 0.01 * math.sin(i * 7.0)) * math.sin(2 * math.pi * i / n)] for i in range(n)]
    return {"type": "Polygon", "coordinates": [pts + [pts[0]]]}


def test_a_long_anded_filter_is_answered_and_a_longer_one_is_a_400(city):
    with city.client() as c:
        ok = " AND ".join(f"emd_cd <> '{i:05d}'" for i in range(160))        # ~3 KB: was a 500
        r = c.get("/collections/districts/items", params={"filter": ok, "limit": "1"})
        assert r.status_code == 200, r.text[:300]
        assert r.json()["numberMatched"] == 467
        too_many = " AND ".join(f"emd_cd <> '{i:05d}'" for i in range(250))
        r = c.get("/collections/districts/items", params={"filter": too_many})
        assert r.status_code == 400 and "more than 200 conditions" in r.json()["detail"]
        deep = "emd_cd = '1'"
        for i in range(30):
            deep = f"(emd_cd = '{i}' {'AND' if i % 2 else 'OR'} {deep})"
        r = c.get("/collections/districts/items", params={"filter": deep})
        assert r.status_code == 400 and "levels deep" in r.json()["detail"]


def test_long_filters_in_parallel_do_not_stall_the_server(city):
    flt = " AND ".join(f"emd_cd <> '{i:05d}'" for i in range(199))

    def one(_):
        with city.client() as c:
            return c.get("/collections/districts/items", params={"filter": flt, "limit": "1"}).status_code

    with cf.ThreadPoolExecutor(24) as pool:
        futures = [pool.submit(one, i) for i in range(24)]
        time.sleep(0.2)
        with city.client() as c:
            t0 = time.perf_counter()
            assert c.get("/health").status_code == 200
            health_s = time.perf_counter() - t0
        codes = [f.result() for f in futures]
    assert set(codes) <= {200, 503}, codes
    assert health_s < 1.0, health_s


def test_a_request_geometry_over_the_vertex_limit_is_a_400_naming_it(city):
    with city.client() as c:
        r = c.post("/collections/districts/stats", json=ring(11_999))     # + the closing vertex
    assert r.status_code == 400
    assert "12,000 vertices" in r.json()["detail"] and "10,000" in r.json()["detail"]


def test_anonymous_expensive_queries_get_a_short_budget_keys_the_full_one(city, db_url):
    from gis_platform.apikeys import create_api_key

    area = ring(9_000)
    with city.client() as c:
        r = c.post("/collections/districts/stats", json=area)
    assert r.status_code == 503, r.text[:200]
    assert "100 ms anonymous requests get" in r.json()["detail"]
    token = create_api_key(db_url, "analyst", ["staff"])
    with city.client(headers={"Authorization": f"Bearer {token}"}) as c:
        r = c.post("/collections/districts/stats", json=area)
    assert r.status_code == 200, r.text[:200]
    assert r.json()["total"]["count"] > 0


def test_expensive_queries_leave_connections_for_cheap_ones(city, db_url):
    from gis_platform.apikeys import create_api_key

    token = create_api_key(db_url, "analyst", ["staff"])
    area = ring(9_000)

    def heavy(_):
        with city.client(headers={"Authorization": f"Bearer {token}"}) as c:
            return c.post("/collections/districts/stats", json=area).status_code

    cheap = []
    with cf.ThreadPoolExecutor(12) as pool:
        futures = [pool.submit(heavy, i) for i in range(12)]
        time.sleep(0.3)
        with city.client() as c:
            for _ in range(10):
                t0 = time.perf_counter()
                r = c.get("/collections/districts/items", params={"limit": "2"})
                cheap.append((r.status_code, time.perf_counter() - t0))
        heavy_codes = [f.result() for f in futures]
    assert all(code == 200 for code, _ in cheap), cheap
    assert max(s for _, s in cheap) < 1.5, cheap
    # Heavy requests beyond their share wait, and past pool_timeout get a 503 saying so.
    assert set(heavy_codes) <= {200, 503} and 200 in heavy_codes
