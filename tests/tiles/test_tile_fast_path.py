"""The tile fast path answers exactly like the FastAPI routes: bytes, headers, errors, access.

Two servers over one database, one with ``tile_fast_path`` on and one with it off; every
request is sent to both (twice: cold, then from the cache) and the answers compared.
"""

from __future__ import annotations

import morecantile
import pytest

from tests.conftest import start_server
from tests.tiles.conftest import STUB_LAT, STUB_LON
from tile_server.fastpath import TileFastRoute

WM = morecantile.tms.get("WebMercatorQuad")
T = {z: WM.tile(STUB_LON, STUB_LAT, z) for z in (8, 10, 14, 15)}
URLS = [
    f"/collections/roads/tiles/WebMercatorQuad/14/{T[14].x}/{T[14].y}.mvt",
    f"/collections/roads/tiles/WebMercatorQuad/14/{T[14].x}/{T[14].y}",
    f"/collections/roads/tiles/WebMercatorQuad/14/{T[14].x}/{T[14].y}?f=mvt",
    f"/collections/roads/tiles/WebMercatorQuad/10/{T[10].x}/{T[10].y}.pbf",
    f"/collections/districts/tiles/WebMercatorQuad/8/{T[8].x}/{T[8].y}.mvt",
    "/collections/roads/tiles/WebMercatorQuad/14/0/0.mvt",                      # empty: 204
    f"/collections/facilities/tiles/WebMercatorQuad/15/{T[15].x}/{T[15].y}.mvt",  # restricted
    f"/collections/facilities/tiles/WebMercatorQuad/8/{T[8].x}/{T[8].y}.mvt",     # below minzoom
    f"/tiles/WebMercatorQuad/14/{T[14].x}/{T[14].y}.mvt?layers=roads,districts",
    f"/tiles/WebMercatorQuad/15/{T[15].x}/{T[15].y}.mvt?layers=roads,facilities",
    f"/tiles/WebMercatorQuad/14/{T[14].x}/{T[14].y}.mvt?layers=roads&layers=districts",
    f"/tiles/WebMercatorQuad/14/{T[14].x}/{T[14].y}.mvt",                       # no layers: 400
    f"/tiles/WebMercatorQuad/14/{T[14].x}/{T[14].y}.png?layers=roads",          # 400
    f"/tiles/WorldCRS84Quad/3/{T[14].x}/{T[14].y}.mvt?layers=roads",            # outside: 404
    "/collections/roads/tiles/NoSuchGrid/3/1/1.mvt",
    "/collections/roads/tiles/WebMercatorQuad/3/1/abc",
    "/collections/roads/tiles/WebMercatorQuad/3/1/1.png",
    "/collections/nope/tiles/WebMercatorQuad/3/1/1.mvt",
    "/collections/roads/tiles/WebMercatorQuad/x/1/1.mvt",                       # FastAPI's 400
    f"/collections/roads/tiles/WorldCRS84Quad/14/{2 * T[14].x}/{T[14].y // 2}.mvt",
]
IGNORED = {"date", "x-request-id", "server", "server-timing"}


@pytest.fixture
def pair(city, tile_settings):
    fast = start_server(tile_settings(tile_fast_path=True))
    slow = start_server(tile_settings(tile_fast_path=False))
    yield fast, slow
    fast.stop()
    slow.stop()


def answer(client, url, **headers):
    with client.stream("GET", url, headers=headers) as r:
        body = b"".join(r.iter_raw())
        return r.status_code, {k: v for k, v in r.headers.items() if k not in IGNORED}, body


def test_the_fast_route_is_installed_first_only_when_enabled(pair):
    fast, slow = pair
    assert isinstance(fast.app.router.routes[0], TileFastRoute)
    assert sum(isinstance(r, TileFastRoute) for r in fast.app.router.routes) == 2
    assert not any(isinstance(r, TileFastRoute) for r in slow.app.router.routes)


@pytest.mark.parametrize("headers", [
    {"Accept-Encoding": "gzip"},
    {"Accept-Encoding": "identity"},
    {"Accept-Encoding": "gzip", "Authorization": "Bearer {planner}"},
    {"Accept-Encoding": "gzip", "Authorization": "Bearer gis_garbled_key"},
    {"Accept-Encoding": "gzip", "X-API-Key": "{planner}"},
])
def test_fast_and_framework_paths_give_identical_answers(pair, planner_token, headers):
    fast, slow = pair
    headers = {k: v.format(planner=planner_token) for k, v in headers.items()}
    with fast.client() as f, slow.client() as s:
        for round_ in ("cold", "cached"):
            for url in URLS:
                a, b = answer(f, url, **headers), answer(s, url, **headers)
                assert a[0] == b[0], (round_, url, a[0], b[0], a[2][:200], b[2][:200])
                assert a[1] == b[1], (round_, url)
                assert a[2] == b[2], (round_, url)


def test_conditional_requests_get_the_same_304_on_both_paths(pair, planner_token):
    fast, slow = pair
    auth = {"Authorization": f"Bearer {planner_token}"}
    with fast.client() as f, slow.client() as s:
        for url in (URLS[0], URLS[6], URLS[8]):
            etag = f.get(url, headers=auth).headers["etag"]
            assert s.get(url, headers=auth).headers["etag"] == etag
            a = answer(f, url, **auth, **{"If-None-Match": etag})
            b = answer(s, url, **auth, **{"If-None-Match": etag})
            assert a[0] == b[0] == 304 and a[2] == b[2] == b""
            assert a[1] == b[1] and a[1]["etag"] == etag
            # Anonymous revalidation of a restricted tile: still the 404 of a missing layer.
            if "facilities" in url:
                assert f.get(url, headers={"If-None-Match": etag}).status_code == 404


def test_restricted_tiles_need_a_key_on_the_fast_path(pair, planner_token):
    fast, _ = pair
    with fast.client() as f:
        url = URLS[6]
        assert f.get(url, headers={"Authorization": f"Bearer {planner_token}"}).status_code == 200
        # Now cached: without a key it is still a 404, with a bad key a 401.
        assert f.get(url).status_code == 404
        r = f.get(url, headers={"Authorization": "Bearer gis_nope_nope"})
        assert r.status_code == 401 and r.headers["content-type"] == "application/problem+json"


def test_head_and_other_methods_are_left_to_the_framework(pair):
    fast, slow = pair
    with fast.client() as f, slow.client() as s:
        for method in ("HEAD", "POST", "DELETE"):
            a = f.request(method, URLS[0])
            b = s.request(method, URLS[0])
            assert a.status_code == b.status_code
