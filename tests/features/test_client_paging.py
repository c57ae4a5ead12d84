"""Page sizes as real clients choose them: GDAL 3.12 (pyogrio's) reads ``limit`` from /api,
GDAL 3.6 and OWSLib ask for 20,000 at once and get pages of the maximum with ``next`` links
(clamped, not refused), and a client that reads only the HTTP ``Link`` header pages to the end.

One server over the demo city of tests/tiles (45 roads) with ``features_max_limit=25``, so
every full pull needs more than one page.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator

import geopandas as gpd
import httpx
import pytest
from shapely.geometry import LineString

from gis_platform.config import Settings
from layers.ingest import ingest_geodataframe
from tests.conftest import LiveServer, owner_url, scratch_database, start_server
from tests.tiles.conftest import ingest_city, roads_gdf

OGR2OGR = shutil.which("ogr2ogr") or "/usr/bin/ogr2ogr"
MAX = 25
ROADS = len(roads_gdf())


@pytest.fixture(scope="module")
def city(admin_url: str, template_db: str, tmp_path_factory) -> Iterator[LiveServer]:
    with scratch_database(admin_url, template_db, "paging_") as db_url:
        ingest_city(db_url)
        # A layer whose title is Korean: it goes into Link headers (Latin-1 on the wire).
        streets = gpd.GeoDataFrame({"name": ["세종대로"]}, crs="EPSG:4326",
                                   geometry=[LineString([(126.976, 37.566), (126.977, 37.575)])])
        ingest_geodataframe(db_url, streets, "streets_ko",
                            metadata={"title": "서울 도로", "access_level": "public"})
        server = start_server(Settings(database_url=db_url, admin_database_url=owner_url(db_url),
                                       data_dir=tmp_path_factory.mktemp("paging-data"),
                                       _env_file=None, pool_timeout=3.0, features_max_limit=MAX))
        try:
            yield server
        finally:
            server.stop()


def _fetched(stderr: str, path: str) -> list[str]:
    """The URLs of ``path`` GDAL fetched, in order (from its CPL_DEBUG output)."""
    return [u for u in re.findall(r"HTTP: Fetch\((\S+)\)", stderr) if path in u]


def _limits(urls: list[str]) -> list[int]:
    return [int(re.search(r"[?&]limit=(\d+)", u).group(1)) for u in urls]


def test_gdal_3_12_pages_by_the_limit_maximum_of_the_api(city):
    # pyogrio's own GDAL (3.12), in a process of its own: the platform's GDAL hardening in
    # this process turns the web drivers off.
    script = ("import json, sys, pyogrio; "
              "df = pyogrio.read_dataframe(sys.argv[1], fid_as_index=True); "
              "print(json.dumps({'n': len(df), 'ids': sorted(int(i) for i in df.index)}))")
    out = subprocess.run([sys.executable, "-c", script, f"OAPIF:{city.url}/collections/roads"],
                         capture_output=True, text=True, timeout=240, check=False,
                         env={"CPL_DEBUG": "ON", "GDAL_HTTP_TIMEOUT": "60", "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["n"] == ROADS and len(set(got["ids"])) == ROADS
    assert f"Page size set from OPENAPI schema: {MAX}" in out.stderr
    limits = _limits(_fetched(out.stderr, "/collections/roads/items"))
    assert len(limits) > 1 and set(limits[1:]) == {MAX}, limits   # [0]: GDAL's schema probe


def test_gdal_3_6_page_size_20000_is_clamped_and_follows_next(city, tmp_path):
    dst = tmp_path / "roads.geojson"
    out = subprocess.run([OGR2OGR, "-f", "GeoJSON", str(dst), f"OAPIF:{city.url}/collections/roads",
                          "-oo", "PAGE_SIZE=20000"], capture_output=True, text=True, timeout=240,
                         check=False, env={"CPL_DEBUG": "ON", "GDAL_HTTP_TIMEOUT": "60",
                                           "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr[-2000:]
    features = json.loads(dst.read_text())["features"]
    assert sorted(f["properties"]["name"] for f in features) == sorted(roads_gdf()["name"])
    limits = _limits(_fetched(out.stderr, "/collections/roads/items"))
    assert limits[0] == 20000 and MAX in limits[1:]     # asked for 20,000, followed next (25)


def test_owslib_limit_20000_gets_the_maximum_and_a_next_link(city):
    from owslib.ogcapi.features import Features

    page = Features(city.url).collection_items("roads", limit=20000)
    assert page["numberReturned"] == MAX and page["numberMatched"] == ROADS
    ids = [f["id"] for f in page["features"]]
    nxt = next(l["href"] for l in page["links"] if l["rel"] == "next")
    assert f"limit={MAX}" in nxt
    with httpx.Client(timeout=30) as c:
        ids += [f["id"] for f in c.get(nxt).json()["features"]]
    assert sorted(ids) == sorted(set(ids)) and len(ids) == ROADS


def test_a_client_reading_only_link_headers_pages_to_the_end(city):
    ids, url = [], f"{city.url}/collections/roads/items?limit=10"
    with httpx.Client(timeout=30) as c:
        while url:
            r = c.get(url)
            assert r.status_code == 200
            assert r.links["self"]["type"] == "application/geo+json"
            assert r.links["collection"]["url"] == f"{city.url}/collections/roads"
            ids += [f["id"] for f in r.json()["features"]]
            url = r.links.get("next", {}).get("url")
    assert len(ids) == len(set(ids)) == ROADS


def test_link_header_carries_a_korean_title_encoded_and_the_body_plain(city):
    r = httpx.get(f"{city.url}/collections/streets_ko/items", timeout=30)
    assert r.status_code == 200
    header = r.headers["link"]
    assert header.isascii()
    assert "title*=UTF-8''%EC%84%9C%EC%9A%B8%20%EB%8F%84%EB%A1%9C" in header   # "서울 도로"
    assert next(l for l in r.json()["links"] if l["rel"] == "collection")["title"] == "서울 도로"
