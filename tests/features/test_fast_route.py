"""The items fast route answers exactly like the FastAPI route it stands in front of."""

from __future__ import annotations

import re

import pytest

from gis_platform.config import Settings
from gis_platform.fastroute import FastGetRoute
from tests.conftest import start_server

URLS = [
    "/collections/bike_stations/items",
    "/collections/bike_stations/items?limit=3&offset=2",
    "/collections/bike_stations/items?bbox=126.9,37.5,127.0,37.6&limit=5&properties=name",
    "/collections/bike_stations/items?f=html&limit=2",
    "/collections/districts/items?filter=name%20LIKE%20%27%EA%B0%95%25%27&limit=5",
    "/collections/districts/items?sortby=-name&limit=2&crs=http://www.opengis.net/def/crs/EPSG/0/5186",
    "/collections/bike_stations/items?limit=abc",                 # 400
    "/collections/bike_stations/items?bbox=1,2,3",                # 400
    "/collections/bike_stations/items?filter=nosuch%20%3D%201",   # 400, unknown property
    "/collections/gas_mains/items?limit=2",                       # 404 anonymous, 200 planner
    "/collections/survey_points/items",                           # internal
    "/collections/no_such_layer/items",                           # 404
    "/collections/bad$id/items",                                  # outside the fast pattern
]
VOLATILE = {"date", "x-request-id", "content-length"}
# the response's own clock: two requests may straddle a second boundary
TIMESTAMP = re.compile(rb'"timeStamp":"[^"]*"')


def _comparable(body: bytes, host: str) -> bytes:
    """A body with its own server's address and its timestamp taken out."""
    return TIMESTAMP.sub(b'"timeStamp":"T"', body.replace(host.encode(), b"HOST"))


@pytest.fixture(scope="module")
def slow_server(feature_world, tmp_path_factory):
    srv = start_server(Settings(database_url=feature_world.db_url, _env_file=None,
                                data_dir=tmp_path_factory.mktemp("slow"), features_fast_route=False))
    yield srv
    srv.stop()


def test_the_fast_route_is_installed_first(feature_world, slow_server):
    fast = [r.name for r in feature_world.server.app.router.routes
            if isinstance(r, FastGetRoute)]
    assert "features_items" in fast
    assert not any(isinstance(r, FastGetRoute) and r.name == "features_items"
                   for r in slow_server.app.router.routes)


@pytest.mark.parametrize("who", [None, "planner"])
@pytest.mark.parametrize("url", URLS)
def test_same_status_headers_and_body(feature_world, slow_server, url, who):
    headers = {"Authorization": f"Bearer {feature_world.planner_token}"} if who else {}
    with feature_world.server.client(headers=headers) as fast, \
            slow_server.client(headers=headers) as slow:
        a, b = fast.get(url), slow.get(url)
    assert a.status_code == b.status_code, (url, a.text[:200], b.text[:200])
    # (the Link header, like the body, names each server's own address)
    assert {k: v.replace(feature_world.server.url, "HOST") for k, v in a.headers.items() if k not in VOLATILE} == \
        {k: v.replace(slow_server.url, "HOST") for k, v in b.headers.items() if k not in VOLATILE}, url
    # bodies carry absolute links to their own server and the time they were made
    assert _comparable(a.content, feature_world.server.url) == \
        _comparable(b.content, slow_server.url), url
