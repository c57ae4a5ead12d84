"""Fixtures of the domain tests: hand-built facilities with known answers, a live server.

Geometry is drawn in EPSG:5179 (metres) around a point in central Seoul and ingested
through the normal ingest path (stored in EPSG:4326).  The excavation is the 10 m x 10 m
square ``[X0, X0+10] x [Y0, Y0+10]``; every facility is a 40 m line parallel to the y axis,
so its plan distance to the square is its x offset.  Default clearances (0003_domains.sql):
water/sewer/telecom 1.0 m, gas 2.0 m (vertical 0.6), power/heating 1.5 m (vertical 0.5).
"""

from __future__ import annotations

import geopandas as gpd
import httpx
import pytest
import shapely
from pyproj import Transformer
from shapely.geometry import LineString, box

from layers.ingest import ingest_geodataframe
from tests.conftest import LiveServer

X0, Y0 = 953_000.0, 1_952_000.0          # UTM-K, near Seoul City Hall
TO_LONLAT = Transformer.from_crs(5179, 4326, always_xy=True)

#: (name, kind, owner, x of the line, depth_min_m, expected risk for a 1.0 m deep dig,
#: buffer 3 m; None: not reported)
CASES = [
    ("telecom_inside_shallow", "telecom", "KT", X0 + 5.0, 0.8, "high"),
    ("water_main_inside_deep", "water", "서울특별시 상수도사업본부", X0 + 4.0, 3.0, "medium"),
    ("gas_exactly_at_clearance", "gas", "서울도시가스", X0 + 10 + 2.0, 1.0, "high"),
    ("gas_just_beyond_clearance", "gas", "예스코", X0 + 10 + 2.01, 1.0, "medium"),
    ("power_at_clearance_vertical_exact", "power", "한국전력공사", X0 - 1.5, 1.5, "medium"),
    ("sewer_exactly_at_buffer", "sewer", "서울특별시 물순환안전국", X0 - 3.0, 2.4, "low"),
    ("sewer_beyond_buffer", "sewer", "서울특별시 물순환안전국", X0 - 3.01, 2.4, None),
    ("heating_far", "heating", "한국지역난방공사", X0 + 10 + 5.0, 1.6, None),
    ("water_depth_unknown", "water", "서울특별시 상수도사업본부", X0 + 10 + 2.5, None, "medium"),
]


def lonlat(geom_5179: shapely.Geometry) -> shapely.Geometry:
    return shapely.transform(geom_5179, lambda c: list(zip(*TO_LONLAT.transform(c[:, 0], c[:, 1]))))


def excavation_lonlat() -> dict:
    return shapely.geometry.mapping(lonlat(box(X0, Y0, X0 + 10, Y0 + 10)))


def facilities_gdf() -> gpd.GeoDataFrame:
    rows = []
    for i, (name, kind, owner, x, depth, _) in enumerate(CASES):
        rows.append({"name": name, "kind": kind, "owner": owner, "diameter_mm": 100 + 50 * i,
                     "depth_min_m": depth, "depth_max_m": None if depth is None else depth + 0.2,
                     "status": "active", "geometry": LineString([(x, Y0 - 15), (x, Y0 + 25)])})
    gdf = gpd.GeoDataFrame(rows, geometry="geometry", crs="EPSG:5179")
    gdf["depth_min_m"] = gdf["depth_min_m"].astype("float64")
    gdf["depth_max_m"] = gdf["depth_max_m"].astype("float64")
    return gdf


def roads_gdf() -> gpd.GeoDataFrame:
    lines = [LineString([(X0 - 200, Y0 + 5 + 30 * i), (X0 + 200, Y0 + 5 + 30 * i)]) for i in range(5)]
    return gpd.GeoDataFrame({"road_class": ["local"] * 5, "width_m": [8.0] * 5,
                             "managing_office": ["중구 건설관리과"] * 5, "district_code": ["11140"] * 5},
                            geometry=lines, crs="EPSG:5179")


@pytest.fixture
def dom_db(db_url: str) -> str:
    ingest_geodataframe(db_url, facilities_gdf(), "underground_facilities",
                        metadata={"title": "Facilities", "access_level": "restricted", "minzoom": 12})
    ingest_geodataframe(db_url, roads_gdf(), "roads", metadata={"title": "Roads", "access_level": "public"})
    return db_url


@pytest.fixture
def dom_server(dom_db: str, server: LiveServer) -> LiveServer:
    """The platform's test server, started after the domain layers are in (argument order)."""
    return server


@pytest.fixture
def dc(dom_server: LiveServer, client: httpx.Client) -> httpx.Client:
    return client


@pytest.fixture
def planner(dom_db: str) -> dict:
    from gis_platform.apikeys import create_api_key

    return {"Authorization": f"Bearer {create_api_key(dom_db, 'planner-kim', ['planner'])}"}


@pytest.fixture
def citizen(dom_db: str) -> dict:
    from gis_platform.apikeys import create_api_key

    return {"Authorization": f"Bearer {create_api_key(dom_db, 'citizen-park', ['citizen'])}"}
