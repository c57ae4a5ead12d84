"""Fixtures of the security tests: one database with a layer of each access level, keys of
every role, and one live server (audit flushed every 0.2 s).

Layers:

* ``parks`` — public points; ``survey_points`` — internal points;
* ``facilities`` — restricted synthetic utility lines with ``owner``, ``kind`` and
  ``district_code`` columns (the operator scopes), across central Seoul;
* ``dem`` — a restricted single-band GeoTIFF (raster tiles);
* ``districts`` — the 25 real gu polygons (public), for the district aggregate.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import geopandas as gpd
import httpx
import numpy as np
import psycopg
import pytest
import shapely

from gis_platform.config import Settings
from tests.conftest import SHARED_DATA, LiveServer, scratch_database, start_server

DISTRICTS = SHARED_DATA / "southkorea-seoul-maps" / "juso" / "2015" / "json" / "seoul_municipalities_geo_simple.json"
OWNERS = ("KT", "한국전력공사", "서울도시가스")
KINDS = ("telecom", "power", "gas")
ROLES = ("citizen", "staff", "planner", "operator", "admin")
# A zoom-12 Web Mercator tile over central Seoul (City Hall) and a zoom-14 one inside it.
TILE = (12, 3492, 1586)


def make_facilities(n: int = 600, seed: int = 11) -> gpd.GeoDataFrame:
    rng = np.random.default_rng(seed)
    x0 = rng.uniform(126.95, 127.02, n)
    y0 = rng.uniform(37.54, 37.59, n)
    lines = [shapely.LineString([(x, y), (x + dx, y + dy)])
             for x, y, dx, dy in zip(x0, y0, rng.normal(0, 0.002, n), rng.normal(0, 0.002, n))]
    kind_idx = rng.integers(0, 3, n)
    return gpd.GeoDataFrame({
        "owner": [OWNERS[i] for i in kind_idx], "kind": [KINDS[i] for i in kind_idx],
        "district_code": rng.choice(["11110", "11140", "11170"], n),
        "depth_m": np.round(rng.uniform(0.5, 3.0, n), 2)}, geometry=lines, crs="EPSG:4326")


def make_dem(path: Path) -> Path:
    import rasterio
    from rasterio.transform import from_bounds

    data = (np.arange(256 * 256, dtype="float32").reshape(256, 256) % 97)
    with rasterio.open(path, "w", driver="GTiff", width=256, height=256, count=1, dtype="float32",
                       crs="EPSG:4326", transform=from_bounds(126.9, 37.5, 127.1, 37.65, 256, 256)) as dst:
        dst.write(data, 1)
    return path


@dataclass
class SecurityWorld:
    db_url: str
    server: LiveServer
    tokens: dict[str, str]          # role (and special keys) -> token
    facilities: gpd.GeoDataFrame

    def client(self, who: str | None = None) -> httpx.Client:
        """A client as ``who`` (a role, 'operator' etc., or None for anonymous)."""
        headers = {"Authorization": f"Bearer {self.tokens[who]}"} if who else {}
        return self.server.client(headers=headers)

    def audit(self, **where) -> list[dict]:
        """Audit rows (after the server's flush interval), filtered by column equality."""
        time.sleep(0.5)
        with psycopg.connect(self.db_url) as conn:
            cur = conn.execute("SELECT actor, roles, action, endpoint, layer_id, feature_id, "
                               "ST_AsText(area) AS area, result_size, status, host(client_ip) AS ip, "
                               "details FROM gis_meta.audit_log ORDER BY id")
            cols = [d.name for d in cur.description]
            rows = [dict(zip(cols, r)) for r in cur.fetchall()]
        return [r for r in rows if all(r.get(k) == v for k, v in where.items())]


def _build(db_url: str, tmp: Path) -> gpd.GeoDataFrame:
    from layers.ingest import ingest_file, ingest_geodataframe

    ingest_file(db_url, DISTRICTS, layer_id="districts", metadata={"access_level": "public"})
    parks = gpd.GeoDataFrame({"name": ["a", "b", "c"]},
                             geometry=shapely.points([[126.978, 37.566], [126.99, 37.57], [127.0, 37.55]]),
                             crs="EPSG:4326")
    ingest_geodataframe(db_url, parks, "parks", metadata={"access_level": "public"})
    pts = gpd.GeoDataFrame({"label": ["x", "y"]},
                           geometry=shapely.points([[126.978, 37.566], [126.98, 37.56]]), crs="EPSG:4326")
    ingest_geodataframe(db_url, pts, "survey_points", metadata={"access_level": "internal"})
    fac = make_facilities()
    ingest_geodataframe(db_url, fac, "facilities", metadata={"access_level": "restricted"})
    ingest_file(db_url, make_dem(tmp / "dem.tif"), layer_id="dem", metadata={"access_level": "restricted"},
                data_dir=tmp / "data")
    return fac


@pytest.fixture(scope="session")
def world(admin_url: str, template_db: str, tmp_path_factory) -> Iterator[SecurityWorld]:
    from gis_platform.apikeys import create_api_key, revoke_api_key

    with scratch_database(admin_url, template_db, "sec_") as db_url:
        tmp = tmp_path_factory.mktemp("security")
        fac = _build(db_url, tmp)
        tokens = {role: create_api_key(db_url, f"{role}-test", [role]) for role in ROLES}
        tokens["operator"] = create_api_key(db_url, "operator-kt", ["operator"],
                                            scopes={"owners": ["KT"]})
        tokens["planner_scoped"] = create_api_key(db_url, "planner-scoped", ["planner"],
                                                  scopes={"layers": ["survey_points"]})
        tokens["expired"] = create_api_key(db_url, "old", ["planner"],
                                           expires_at=datetime.now(UTC) - timedelta(seconds=1))
        tokens["revoked"] = create_api_key(db_url, "gone", ["planner"])
        revoke_api_key(db_url, tokens["revoked"].split("_")[1])
        settings = Settings(database_url=db_url, data_dir=tmp / "data", _env_file=None,
                            pool_timeout=3.0, audit_flush_seconds=0.2)
        server = start_server(settings)
        try:
            yield SecurityWorld(db_url, server, tokens, fac)
        finally:
            server.stop()


LEAKS = ("traceback", "select ", "gis_data", "psycopg", "sqlstate", 'file "/')


def assert_no_internals(r: httpx.Response) -> None:
    lowered = r.text.lower()
    for leak in LEAKS:
        assert leak not in lowered, (leak, r.request.url, r.text[:300])
