"""Fixtures of the tile tests: small Seoul-like layers ingested for real, a live server.

Layers are ingested *before* the server starts, so its registry loads them at startup
(the NOTIFY-driven refresh is asynchronous).  Data is generated in code:

* ``districts`` - four polygons (public), attributes name/code/population/area_km2/note;
* ``roads`` - a grid of line segments plus a few 3 m stubs (public), six attributes;
* ``facilities`` - points, ``restricted``, zoom 10 to 18.
"""

from __future__ import annotations

import gzip
import time
from collections.abc import Iterator

import geopandas as gpd
import httpx
import mapbox_vector_tile
import pytest
from shapely.geometry import LineString, Point, box

from gis_platform.config import Settings
from layers.ingest import ingest_geodataframe
from tests.conftest import LiveServer, start_server

# A tile over central Seoul (Jongno / City Hall) and its neighbours in each grid.
LON0, LAT0 = 126.90, 37.50
LON1, LAT1 = 127.10, 37.60
STUB_LON, STUB_LAT = 126.9785, 37.5665      # where the tiny road stubs are


def districts_gdf() -> gpd.GeoDataFrame:
    names = ["종로구", "중구", "용산구", "성동구"]
    cells = [box(126.90, 37.55, 127.00, 37.60), box(127.00, 37.55, 127.10, 37.60),
             box(126.90, 37.50, 127.00, 37.55), box(127.00, 37.50, 127.10, 37.55)]
    return gpd.GeoDataFrame({
        "name": names, "code": ["11110", "11140", "11170", "11200"],
        "population": [141_000, 122_000, 217_000, 280_000],
        "area_km2": [23.9, 9.96, 21.87, 16.86], "note": ["a", "b", "c", "d"],
    }, geometry=cells, crs="EPSG:4326")


def roads_gdf(offset: float = 0.0, n: int = 20) -> gpd.GeoDataFrame:
    """A street grid: n east-west and n north-south segments, plus 5 very short stubs."""
    geoms, names, classes = [], [], []
    for i in range(n):
        lat = LAT0 + 0.005 + i * (LAT1 - LAT0 - 0.01) / (n - 1)
        lon = LON0 + 0.005 + i * (LON1 - LON0 - 0.01) / (n - 1)
        geoms.append(LineString([(LON0 + 0.002 + offset, lat), (LON1 - 0.002 + offset, lat)]))
        names.append(f"{i}번가")
        classes.append("arterial" if i % 5 == 0 else "local")
        geoms.append(LineString([(lon + offset, LAT0 + 0.002), (lon + offset, LAT1 - 0.002)]))
        names.append(f"{i}로")
        classes.append("local")
    for k in range(5):      # ~3 m long: far below a pixel at zoom 10, visible at zoom 17
        x = STUB_LON + k * 0.0003 + offset
        geoms.append(LineString([(x, STUB_LAT), (x + 0.00003, STUB_LAT)]))
        names.append(f"골목{k}")
        classes.append("alley")
    m = len(geoms)
    return gpd.GeoDataFrame({
        "name": names, "road_class": classes, "lanes": [2 + (i % 3) for i in range(m)],
        "width_m": [6.0 + i % 4 for i in range(m)], "surface": ["asphalt"] * m,
        "managed_by": ["서울시"] * m,
    }, geometry=geoms, crs="EPSG:4326")


def facilities_gdf() -> gpd.GeoDataFrame:
    pts = [Point(STUB_LON, STUB_LAT), Point(126.99, 37.57), Point(127.05, 37.52)]
    return gpd.GeoDataFrame({"name": ["시청 변전소", "종로 밸브", "성수 맨홀"],
                             "kind": ["substation", "valve", "manhole"],
                             "depth_m": [3.5, 1.2, 2.0]}, geometry=pts, crs="EPSG:4326")


def ingest_city(db_url: str) -> None:
    ingest_geodataframe(db_url, districts_gdf(), "districts", metadata={"title": "Districts", "access_level": "public"})
    ingest_geodataframe(db_url, roads_gdf(), "roads", metadata={"title": "Roads", "access_level": "public"})
    ingest_geodataframe(db_url, facilities_gdf(), "facilities", metadata={
        "title": "Facilities", "access_level": "restricted", "minzoom": 10, "maxzoom": 18})


@pytest.fixture
def tile_settings(make_settings):
    """``make_settings`` under the name the tile tests use (flat names: tile_extent=...)."""
    def _make(**overrides) -> Settings:
        return make_settings(**overrides)
    return _make


@pytest.fixture
def city(db_url: str) -> str:
    ingest_city(db_url)
    return db_url


@pytest.fixture
def city_server(city: str, tile_settings) -> Iterator[LiveServer]:
    srv = start_server(tile_settings())
    yield srv
    srv.stop()


@pytest.fixture
def tc(city_server: LiveServer) -> Iterator[httpx.Client]:
    with city_server.client() as c:
        yield c


@pytest.fixture
def planner_token(city: str) -> str:
    from gis_platform.apikeys import create_api_key

    return create_api_key(city, "p", ["planner"])


def decode(content: bytes) -> dict:
    """Decode an MVT (gunzipping if needed), y axis pointing down as in the tile."""
    if content[:2] == b"\x1f\x8b":
        content = gzip.decompress(content)
    return mapbox_vector_tile.decode(content, default_options={"y_coord_down": True})


def wait_for(predicate, timeout: float = 15.0, interval: float = 0.1):
    """Poll until ``predicate()`` returns something truthy (registry refresh is async)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(interval)


def tile_ids(resp) -> set:
    """The feature ids in a tile response (all layers; none for a 204)."""
    if resp.status_code == 204:
        return set()
    body = resp.content
    if body[:2] == b"\x1f\x8b":
        body = gzip.decompress(body)
    return {f["id"] for l in mapbox_vector_tile.decode(body).values() for f in l["features"]}
