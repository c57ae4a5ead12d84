"""Tile HTTP behaviour: ETag/304, compression, versioned cache, errors, access."""

from __future__ import annotations

import gzip

import morecantile
import pytest

from layers.ingest import ingest_geodataframe
from tests.tiles.conftest import STUB_LAT, STUB_LON, decode, roads_gdf, wait_for

WM = morecantile.tms.get("WebMercatorQuad")
T14 = WM.tile(STUB_LON, STUB_LAT, 14)
ROADS = f"/collections/roads/tiles/WebMercatorQuad/{T14.z}/{T14.x}/{T14.y}.mvt"


def raw_get(client, url, **headers):
    """Status, headers and the body exactly as sent (httpx would gunzip it otherwise)."""
    with client.stream("GET", url, headers=headers) as r:
        return r.status_code, r.headers, b"".join(r.iter_raw())


# --- conditional requests and compression -------------------------------------------------
def test_if_none_match_with_the_etag_is_a_304_without_body(tc):
    first = tc.get(ROADS)
    etag = first.headers["etag"]
    again = tc.get(ROADS)
    assert again.headers["etag"] == etag
    r = tc.get(ROADS, headers={"If-None-Match": etag})
    assert r.status_code == 304 and r.content == b""
    assert r.headers["etag"] == etag
    assert r.headers["cache-control"] == "public, max-age=60, s-maxage=1"
    assert tc.get(ROADS, headers={"If-None-Match": 'W/"something-else"'}).status_code == 200


def test_gzip_client_gets_the_stored_gzip_once_with_content_encoding(tc):
    status, headers, body = raw_get(tc, ROADS, **{"Accept-Encoding": "gzip"})
    assert status == 200
    assert headers["content-encoding"] == "gzip"
    assert "Accept-Encoding" in headers["vary"]
    inner = gzip.decompress(body)
    assert inner[:2] != b"\x1f\x8b"                 # compressed once, not twice
    assert "roads" in decode(inner)


def test_client_without_gzip_gets_the_plain_tile(tc):
    status, headers, body = raw_get(tc, ROADS, **{"Accept-Encoding": "identity"})
    assert status == 200
    assert "content-encoding" not in headers
    assert "Accept-Encoding" in headers["vary"]
    assert body[:2] != b"\x1f\x8b" and "roads" in decode(body)


def test_gzip_refused_with_q_zero_gets_the_plain_tile(tc):
    _, headers, body = raw_get(tc, ROADS, **{"Accept-Encoding": "gzip;q=0, identity"})
    assert "content-encoding" not in headers and "roads" in decode(body)


def test_large_tile_is_not_compressed_again_by_the_app_middleware(tc):
    # A z10 composite is well over the middleware's 1 KiB threshold.
    t = WM.tile(STUB_LON, STUB_LAT, 11)
    _status, headers, body = raw_get(tc, f"/tiles/WebMercatorQuad/{t.z}/{t.x}/{t.y}.mvt?layers=roads,districts",
                                    **{"Accept-Encoding": "gzip"})
    inner = gzip.decompress(body)
    assert len(inner) > 1024
    assert set(decode(inner)) == {"roads", "districts"}
    assert headers["content-encoding"] == "gzip"


# --- the data-versioned cache ------------------------------------------------------------
def test_reingest_changes_the_tile_and_etag_without_a_purge(tc, city):
    before = tc.get(ROADS)
    names_before = {f["properties"]["name"] for f in decode(before.content)["roads"]["features"]}
    tj_before = tc.get("/collections/roads/tiles/WebMercatorQuad/tilejson.json").json()["tiles"][0]
    moved = roads_gdf()
    moved["name"] = [f"new-{n}" for n in moved["name"]]
    ingest_geodataframe(city, moved, "roads", mode="replace", metadata={"access_level": "public"})

    after = wait_for(lambda: (r := tc.get(ROADS)).headers["etag"] != before.headers["etag"] and r)
    names_after = {f["properties"]["name"] for f in decode(after.content)["roads"]["features"]}
    assert names_after and all(n.startswith("new-") for n in names_after)
    assert names_after != names_before
    # The old ETag no longer matches, so a browser revalidating gets the new tile.
    assert tc.get(ROADS, headers={"If-None-Match": before.headers["etag"]}).status_code == 200
    tj_after = tc.get("/collections/roads/tiles/WebMercatorQuad/tilejson.json").json()["tiles"][0]
    assert tj_after != tj_before and "v=" in tj_after


def test_tiles_are_written_to_the_disk_cache_and_served_from_it(city_server, tc):
    tc.get(ROADS)
    root = city_server.settings.resolved_data_dir() / "tile-cache"
    # The disk write finishes in a thread after the response.
    files = wait_for(lambda: [p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")])
    assert len(files) == 1 and gzip.decompress(files[0].read_bytes())
    cache = city_server.app.state.tile_service.cache
    cache.memory.clear()
    hits = cache.hits_disk
    assert tc.get(ROADS).status_code == 200
    assert cache.hits_disk == hits + 1


def test_cache_separates_callers_with_different_access(tc, planner_token, city_server):
    tc.get(ROADS)
    tc.get(ROADS, headers={"Authorization": f"Bearer {planner_token}"})
    root = city_server.settings.resolved_data_dir() / "tile-cache"
    wait_for(lambda: len([p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")]) == 2)


# --- bad input ---------------------------------------------------------------------------
@pytest.mark.parametrize("url,status,needle", [
    ("/collections/roads/tiles/WebMercatorQuad/3/8/1.mvt", 404, "outside"),
    ("/collections/roads/tiles/WebMercatorQuad/3/1/-1.mvt", 400, "row"),
    ("/collections/roads/tiles/WebMercatorQuad/25/1/1.mvt", 404, "zoom"),
    ("/collections/roads/tiles/WorldCRS84Quad/0/2/0.mvt", 404, "outside"),
    ("/collections/roads/tiles/NoSuchGrid/3/1/1.mvt", 404, "WebMercatorQuad"),
    ("/collections/nope/tiles/WebMercatorQuad/3/1/1.mvt", 404, "nope"),
    ("/collections/roads/tiles/WebMercatorQuad/3/1/1.png", 400, "vector"),
    ("/collections/roads/tiles/WebMercatorQuad/3/1/abc", 400, "row"),
    ("/collections/roads/tiles/WebMercatorQuad/x/1/1.mvt", 400, "z"),
    ("/tiles/WebMercatorQuad/3/1/1.mvt", 400, "layers"),
    ("/tiles/WebMercatorQuad/3/1/1.mvt?layers=a,b,c,d,e,f,g,h,i,j,k", 400, "at most 10"),
    ("/tiles/WebMercatorQuad/3/1/1.mvt?layers=roads;drop", 400, "layer ids"),
    ("/tiles/WebMercatorQuad/3/1/1.mvt?layers=roads,nope", 404, "nope"),
    ("/tiles/WebMercatorQuad/3/1/1.png?layers=roads", 400, "mvt"),
    ("/tiles/style.json?layers=", 400, "layers"),
    ("/tiles/WebMercatorQuad/tilejson.json?layers=nope", 404, "nope"),
    ("/tileMatrixSets/Nope", 404, "offers"),
])
def test_bad_tile_requests_are_4xx_problems_with_a_clear_message(tc, url, status, needle):
    r = tc.get(url)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert needle.lower() in r.json()["detail"].lower()


def test_tile_outside_layer_zoom_range_is_404(tc, planner_token):
    t = WM.tile(STUB_LON, STUB_LAT, 8)       # facilities: zoom 10 to 18
    r = tc.get(f"/collections/facilities/tiles/WebMercatorQuad/{t.z}/{t.x}/{t.y}.mvt",
               headers={"Authorization": f"Bearer {planner_token}"})
    assert r.status_code == 404
    assert "zoom 10 to 18" in r.json()["detail"]


# --- access ------------------------------------------------------------------------------
T15 = WM.tile(STUB_LON, STUB_LAT, 15)
RESTRICTED_URLS = [
    f"/collections/facilities/tiles/WebMercatorQuad/{T15.z}/{T15.x}/{T15.y}.mvt",
    f"/tiles/WebMercatorQuad/{T15.z}/{T15.x}/{T15.y}.mvt?layers=roads,facilities",
    "/collections/facilities/tiles/WebMercatorQuad/tilejson.json",
    "/tiles/WebMercatorQuad/tilejson.json?layers=districts,facilities",
    "/collections/facilities/tiles",
    "/collections/facilities/tiles/WebMercatorQuad",
    "/collections/facilities/style.json",
    "/tiles/style.json?layers=roads,facilities",
    "/tiles?layers=facilities",
]


@pytest.mark.parametrize("url", RESTRICTED_URLS)
def test_restricted_layer_looks_missing_to_anonymous_callers(tc, url):
    r = tc.get(url)
    missing = tc.get(url.replace("facilities", "no_such_layer"))
    assert r.status_code == missing.status_code == 404
    assert r.json()["detail"] == missing.json()["detail"].replace("no_such_layer", "facilities")
    assert r.json()["title"] == missing.json()["title"]


@pytest.mark.parametrize("url", RESTRICTED_URLS)
def test_planner_sees_the_restricted_layer_everywhere(tc, planner_token, url):
    r = tc.get(url, headers={"Authorization": f"Bearer {planner_token}"})
    assert r.status_code == 200, r.text


def test_restricted_layer_tile_cached_for_a_planner_is_not_served_to_anonymous(tc, planner_token):
    url = RESTRICTED_URLS[0]
    planner = tc.get(url, headers={"Authorization": f"Bearer {planner_token}"})
    assert planner.status_code == 200
    anon = tc.get(url, headers={"If-None-Match": planner.headers["etag"]})
    assert anon.status_code == 404


def test_default_dataset_tilesets_list_only_layers_the_caller_may_see(tc, planner_token):
    anon = tc.get("/tiles").json()
    href = anon["tilesets"][0]["links"][0]["href"]
    assert "facilities" not in href and "roads" in href
    planner = tc.get("/tiles", headers={"Authorization": f"Bearer {planner_token}"}).json()
    assert "facilities" in planner["tilesets"][0]["links"][0]["href"]
