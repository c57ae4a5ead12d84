"""Fixtures of the feature API tests: one database with real and synthetic layers, one server.

The layers are ingested once per session (into a database made from the migrated template
of tests/conftest.py), *before* the server starts, so its registry has them at once:

* ``bike_stations`` — the 1,540 real Ddareungi stations (public, with licence/attribution);
* ``districts`` — the 25 real JUSO 2015 gu polygons (public);
* ``gas_mains`` — synthetic line features across Seoul with ``material``, ``diameter_mm``
  and an ``installed`` date (the time column), access level ``restricted``;
* ``survey_points`` — a small ``internal`` point layer.

Tests must not change these layers; a test that needs other data makes its own database.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import httpx
import numpy as np
import pytest
import shapely

from gis_platform.config import Settings
from tests.conftest import SHARED_DATA, LiveServer, scratch_database, start_server

BIKES_CSV = SHARED_DATA / "seoul-public-bicycle" / "public" / "data" / "seoul_public_bicycle.csv"
DISTRICTS = SHARED_DATA / "southkorea-seoul-maps" / "juso" / "2015" / "json" / "seoul_municipalities_geo_simple.json"
MATERIALS = ("PE", "steel", "cast_iron")


def make_gas_mains(n: int = 1500, seed: int = 7) -> gpd.GeoDataFrame:
    """Random 2-4 vertex lines of 50-800 m inside Seoul's bounding box."""
    rng = np.random.default_rng(seed)
    x0 = rng.uniform(126.80, 127.18, n)
    y0 = rng.uniform(37.43, 37.69, n)
    lines = []
    for i in range(n):
        k = int(rng.integers(2, 5))
        steps = rng.normal(0, 0.002, (k - 1, 2)).cumsum(axis=0)
        coords = np.vstack([[x0[i], y0[i]], [x0[i], y0[i]] + steps])
        lines.append(shapely.LineString(coords))
    installed = [dt.date(1990, 1, 1) + dt.timedelta(days=int(d)) for d in rng.integers(0, 12_000, n)]
    diameter = rng.choice([50, 100, 150, 300, 600], n).astype("int64")
    material = rng.choice(MATERIALS, n)
    note = np.array([None if i % 10 == 0 else f"main {i}" for i in range(n)], dtype=object)
    return gpd.GeoDataFrame({"material": material, "diameter_mm": diameter, "installed": installed,
                             "note": note}, geometry=lines, crs="EPSG:4326")


@dataclass
class FeatureWorld:
    """The session's database, server and credentials."""

    db_url: str
    server: LiveServer
    planner_token: str
    gas_mains: gpd.GeoDataFrame

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return self.server.client(headers=headers)


def _ingest_all(db_url: str) -> gpd.GeoDataFrame:
    from layers.ingest import ingest_file, ingest_geodataframe

    ingest_file(db_url, BIKES_CSV, layer_id="bike_stations",
                metadata={"access_level": "public", "title": "Bike-share stations", "licence": "Seoul Open Data test licence",
                          "attribution": "서울특별시 공공자전거 (data.seoul.go.kr)"})
    ingest_file(db_url, DISTRICTS, layer_id="districts",
                metadata={"access_level": "public", "licence": "https://www.apache.org/licenses/LICENSE-2.0",
                          "attribution": "JUSO 2015 via southkorea/seoul-maps"})
    mains = make_gas_mains()
    ingest_geodataframe(db_url, mains, "gas_mains",
                        metadata={"access_level": "restricted", "time_column": "installed",
                                  "licence": "internal use only"})
    pts = gpd.GeoDataFrame({"label": ["a", "b", "c"]},
                           geometry=shapely.points([[126.97, 37.56], [127.0, 37.5], [127.05, 37.6]]),
                           crs="EPSG:4326")
    ingest_geodataframe(db_url, pts, "survey_points", metadata={"access_level": "internal"})
    return mains


@pytest.fixture(scope="session")
def feature_world(admin_url: str, template_db: str, tmp_path_factory) -> Iterator[FeatureWorld]:
    from gis_platform.apikeys import create_api_key

    with scratch_database(admin_url, template_db, "feat_") as db_url:
        mains = _ingest_all(db_url)
        token = create_api_key(db_url, "planner-test", ["planner"])
        data_dir: Path = tmp_path_factory.mktemp("features-data")
        server = start_server(Settings(database_url=db_url, data_dir=data_dir, _env_file=None,
                                       pool_timeout=3.0))
        try:
            yield FeatureWorld(db_url, server, token, mains)
        finally:
            server.stop()


@pytest.fixture
def anon(feature_world: FeatureWorld) -> Iterator[httpx.Client]:
    with feature_world.client() as c:
        yield c


@pytest.fixture
def planner(feature_world: FeatureWorld) -> Iterator[httpx.Client]:
    with feature_world.client(feature_world.planner_token) as c:
        yield c


@pytest.fixture(scope="session")
def bikes() -> gpd.GeoDataFrame:
    """The bike stations as the platform stores them (read back independently with pyogrio)."""
    import pandas as pd

    df = pd.read_csv(BIKES_CSV, encoding="utf-8-sig")
    df = df.dropna(subset=["longitude", "latitude"])
    return gpd.GeoDataFrame(df, geometry=gpd.points_from_xy(df.longitude, df.latitude), crs="EPSG:4326")


def assert_problem(r: httpx.Response, status: int) -> dict:
    """A problem+json error with this status, and nothing internal in it."""
    assert r.status_code == status, (r.status_code, r.text[:500])
    assert r.headers["content-type"].startswith("application/problem+json"), r.headers["content-type"]
    body = r.json()
    assert body["status"] == status and body["title"] and body["detail"]
    lowered = r.text.lower()
    for leak in ("traceback", "select ", "gis_data", "psycopg", "syntaxerror", "lark"):
        assert leak not in lowered, (leak, r.text[:500])
    return body
