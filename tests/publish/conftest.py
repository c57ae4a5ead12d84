"""Fixtures of the publish-in-place tests: relations the platform did not create.

The owner (the cluster's superuser, standing in for the city's GIS department) builds, in
the test database:

* ``"City Data"."Water Mains"`` - mixed-case schema and table, EPSG:5186 lines, a bigint
  primary key ``"MainID"``, columns named ``order`` (a reserved word), ``size`` and ``geom``
  (text: the geometry is ``the_geom``), ``"Name"``;
* ``utility.valves`` - EPSG:5179 points, a uuid key;
* ``utility.parcels`` - a geography(Polygon) column and a composite key (district, lot);
* ``utility.big_mains`` - a view (no key) over the water mains;
* ``utility.mains_mv`` - a materialized view in EPSG:4326 with a unique index;
* ``utility.readings`` - a partitioned table (two partitions), EPSG:3857, key (id, taken);
* ``utility.mains_deeper_than(min_depth)`` - a SQL-standard function (BEGIN ATOMIC: its
  table dependency is recorded) returning SETOF the water mains;
* ``utility.valves_of_kind(k DEFAULT 'gate')`` - a string-bodied function RETURNS TABLE.

The platform's login gets USAGE on the schemas and SELECT on the relations, nothing else.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import geopandas as gpd
import httpx
import psycopg
import pytest
import shapely

from gis_platform.apikeys import create_api_key
from gis_platform.config import Settings
from layers.ingest import ingest_geodataframe
from tests.conftest import LiveServer, owner_url, scratch_database, start_server

# The water mains: a 20 x 10 grid of short east-west lines over central Seoul.
LON0, LAT0, DLON, DLAT = 126.95, 37.54, 0.0035, 0.005
ROWS, COLS = 10, 20

SCHEMA_SQL = f"""
CREATE SCHEMA "City Data";
CREATE SCHEMA utility;
CREATE TABLE "City Data"."Water Mains" (
    "MainID"  bigint PRIMARY KEY,
    "Name"    text,
    "order"   integer,
    size      integer,
    geom      text,
    depth_m   double precision,
    installed date,
    the_geom  geometry(LineString, 5186)
);
CREATE INDEX ON "City Data"."Water Mains" USING gist (the_geom);
INSERT INTO "City Data"."Water Mains"
SELECT r * {COLS} + c + 1, '본관 ' || r || '-' || c, (r * {COLS} + c) % 7,
       CASE WHEN c % 4 = 0 THEN 400 ELSE 150 END, 'not a geometry',
       1.0 + (r * {COLS} + c) % 5, DATE '2000-01-01' + (r * 365),
       ST_Transform(ST_SetSRID(ST_MakeLine(
           ST_MakePoint({LON0} + c * {DLON}, {LAT0} + r * {DLAT}),
           ST_MakePoint({LON0} + c * {DLON} + 0.002, {LAT0} + r * {DLAT})), 4326), 5186)
FROM generate_series(0, {ROWS - 1}) r, generate_series(0, {COLS - 1}) c;

CREATE TABLE utility.valves (
    id   uuid PRIMARY KEY,
    kind text NOT NULL,
    pos  geometry(Point, 5179)
);
CREATE INDEX ON utility.valves USING gist (pos);
INSERT INTO utility.valves
SELECT md5('valve' || i)::uuid, CASE WHEN i % 3 = 0 THEN 'gate' ELSE 'butterfly' END,
       ST_Transform(ST_SetSRID(ST_MakePoint(126.95 + (i % 10) * 0.007, 37.54 + (i / 10) * 0.01), 4326), 5179)
FROM generate_series(0, 49) i;

CREATE TABLE utility.parcels (
    district text,
    lot      integer,
    zone     text,
    area     geography(Polygon, 4326),
    PRIMARY KEY (district, lot)
);
CREATE INDEX ON utility.parcels USING gist (area);
INSERT INTO utility.parcels
SELECT CASE WHEN i < 10 THEN '종로/1' ELSE 'jung~2' END, i, CASE WHEN i % 2 = 0 THEN 'R' ELSE 'C' END,
       ST_MakeEnvelope(126.96 + i * 0.004, 37.55, 126.963 + i * 0.004, 37.553, 4326)::geography
FROM generate_series(0, 19) i;

CREATE VIEW utility.big_mains AS
    SELECT "MainID", "Name", size, the_geom FROM "City Data"."Water Mains" WHERE size >= 300;

CREATE MATERIALIZED VIEW utility.mains_mv AS
    SELECT "MainID" AS id, size, ST_Transform(the_geom, 4326)::geometry(LineString, 4326) AS geom
    FROM "City Data"."Water Mains";
CREATE UNIQUE INDEX ON utility.mains_mv (id);

CREATE TABLE utility.readings (
    id    bigint,
    taken date,
    value double precision,
    pt    geometry(Point, 3857),
    PRIMARY KEY (id, taken)
) PARTITION BY RANGE (taken);
CREATE TABLE utility.readings_2025 PARTITION OF utility.readings
    FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TABLE utility.readings_2026 PARTITION OF utility.readings
    FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
INSERT INTO utility.readings
SELECT i, DATE '2025-06-01' + (i % 2) * 365, i * 1.5,
       ST_Transform(ST_SetSRID(ST_MakePoint(126.97 + i * 0.001, 37.56), 4326), 3857)
FROM generate_series(1, 30) i;

CREATE FUNCTION utility.mains_deeper_than(min_depth double precision)
RETURNS SETOF "City Data"."Water Mains" LANGUAGE sql STABLE
BEGIN ATOMIC
    SELECT * FROM "City Data"."Water Mains" WHERE depth_m > min_depth;
END;

CREATE FUNCTION utility.valves_of_kind(k text DEFAULT 'gate')
RETURNS TABLE (id uuid, kind text, pos geometry) LANGUAGE sql STABLE
AS $$ SELECT id, kind, pos FROM utility.valves WHERE kind = k $$;

GRANT USAGE ON SCHEMA "City Data", utility TO gis_platform_app;
GRANT SELECT ON ALL TABLES IN SCHEMA "City Data", utility TO gis_platform_app;
"""


def build_relations(url: str) -> None:
    """The city's relations, made by the owner (not by the platform)."""
    with psycopg.connect(owner_url(url), autocommit=True) as conn:
        conn.execute(SCHEMA_SQL)


def districts_gdf() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame({"name": ["west", "east"], "code": ["w", "e"]},
                            geometry=[shapely.box(126.94, 37.53, 126.985, 37.60),
                                      shapely.box(126.985, 37.53, 127.03, 37.60)], crs="EPSG:4326")


@dataclass
class PubWorld:
    db_url: str
    server: LiveServer
    tokens: dict[str, str]

    def client(self, who: str | None = "admin") -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.tokens[who]}"} if who else {}
        return self.server.client(headers=headers)

    def owner(self) -> psycopg.Connection:
        return psycopg.connect(owner_url(self.db_url), autocommit=True)

    def ensure(self, body: dict) -> None:
        """Published (by this test or an earlier one of the module)."""
        with self.client() as c:
            r = c.post("/layers/publish", json=body)
        assert r.status_code in (201, 409), r.text

    def publish(self, body: dict, who: str = "admin") -> dict:
        with self.client(who) as c:
            r = c.post("/layers/publish", json=body)
        assert r.status_code == 201, r.text
        return r.json()


def make_world(db_url: str, data_dir, **settings) -> PubWorld:
    build_relations(db_url)
    ingest_geodataframe(db_url, districts_gdf(), "districts",
                        metadata={"title": "Districts", "access_level": "public"})
    tokens = {role: create_api_key(db_url, f"{role}-test", [role])
              for role in ("admin", "planner", "staff", "citizen")}
    tokens["operator"] = create_api_key(db_url, "operator-big", ["operator"],
                                        scopes={"layers": ["water_mains"]})
    base = {"database_url": db_url, "admin_database_url": owner_url(db_url), "data_dir": data_dir,
                "_env_file": None, "pool_timeout": 3.0, "publish_poll_seconds": 0.5,
                "rate_limit_per_ip": 0, "tile_overview_min_features": 1_000_000}
    base.update(settings)
    return PubWorld(db_url, start_server(Settings(**base)), tokens)


@pytest.fixture(scope="module")
def world(admin_url: str, template_db: str, tmp_path_factory) -> Iterator[PubWorld]:
    """One database with the city's relations and a live server (module scope: read-only
    tests share it)."""
    with scratch_database(admin_url, template_db, "pub_") as db_url:
        w = make_world(db_url, tmp_path_factory.mktemp("pub") / "data")
        try:
            yield w
        finally:
            w.server.stop()


@pytest.fixture
def fresh_world(db_url: str, data_dir) -> Iterator[PubWorld]:
    """The same relations in a database of this test's own (tests that change rows)."""
    w = make_world(db_url, data_dir)
    try:
        yield w
    finally:
        w.server.stop()
