"""A neutral synthetic city in PostGIS, made the way another system would make it (plain SQL,
in a schema of its own, not through the platform), for the publish-in-place benchmark.

    .venv/bin/python bench/publish/city.py --admin-url "$OWNER_URL" --dbname bench_city

* ``city.roads`` - a street grid of 44 m blocks, every node moved up to 10 m at random
  (``--nodes`` per side, default 388: 300,312 segments over 17 x 17 km); six attributes
  (name, road_class, lanes, width_m, surface, managed_by) and a bigint key ``road_id``;
* ``city.pipes`` - two pipes along every street, 6 m either side of its centre line
  (600,624 segments), seven attributes (facility_id, kind, material, diameter_mm,
  install_year, depth_m, owner) and a bigint key ``pipe_id``.

In EPSG:5186 (Korea 2000 / Central Belt 2010, the way Seoul keeps its surveys), a GiST index
each, rows in the order they were generated (street by street).  No style rules, no tuning:
the platform serves it with its defaults.  Deterministic (``setseed``).  The platform's login
gets USAGE on the schema and SELECT on the tables, nothing else.  Prints the owner's URL.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

X0, Y0 = 189_000.0, 542_000.0        # south-west corner in EPSG:5186 (west of Seoul City Hall)
BLOCK = 44.0

SQL = """
DROP SCHEMA IF EXISTS city CASCADE;
CREATE SCHEMA city;
SELECT setseed(0.4242);
CREATE TEMP TABLE nodes AS
    SELECT i, j, {x0} + i * {block} + (random() - 0.5) * 20 AS x,
                 {y0} + j * {block} + (random() - 0.5) * 20 AS y
    FROM generate_series(0, {n} - 1) j, generate_series(0, {n} - 1) i;
CREATE INDEX ON nodes (i, j);
ANALYZE nodes;
CREATE TEMP TABLE segments AS
    SELECT row_number() OVER (ORDER BY a.j, a.i, d) AS id, a.i, a.j, d,
           ST_SetSRID(ST_MakeLine(ST_MakePoint(a.x, a.y), ST_MakePoint(b.x, b.y)), 5186) AS geom
    FROM nodes a
    JOIN LATERAL (SELECT 'h' AS d, b.x, b.y FROM nodes b WHERE b.i = a.i + 1 AND b.j = a.j
                  UNION ALL
                  SELECT 'v', b.x, b.y FROM nodes b WHERE b.i = a.i AND b.j = a.j + 1) b ON true;

CREATE TABLE city.roads (
    road_id    bigint PRIMARY KEY,
    name       text,
    road_class text,
    lanes      integer,
    width_m    double precision,
    surface    text,
    managed_by text,
    geom       geometry(LineString, 5186) NOT NULL
);
INSERT INTO city.roads
SELECT id, CASE d WHEN 'h' THEN j || '번길' ELSE i || '로' END,
       CASE WHEN (CASE d WHEN 'h' THEN j ELSE i END) % 10 = 0 THEN 'arterial'
            WHEN (CASE d WHEN 'h' THEN j ELSE i END) % 5 = 0 THEN 'collector' ELSE 'local' END,
       1 + (id % 4)::int, 4 + (id % 20) * 0.5, (ARRAY['asphalt', 'concrete', 'block'])[1 + id % 3],
       (ARRAY['서울시', '구청'])[1 + id % 2], geom
FROM segments ORDER BY id;
CREATE INDEX roads_geom ON city.roads USING gist (geom);

CREATE TABLE city.pipes (
    pipe_id      bigint PRIMARY KEY,
    facility_id  text,
    kind         text,
    material     text,
    diameter_mm  integer,
    install_year integer,
    depth_m      double precision,
    owner        text,
    geom         geometry(LineString, 5186) NOT NULL
);
INSERT INTO city.pipes
SELECT s.id * 2 + k.side, 'P-' || lpad((s.id * 2 + k.side)::text, 7, '0'),
       (ARRAY['water', 'sewer', 'gas', 'power', 'telecom', 'heat'])[1 + (s.id * 2 + k.side) % 6],
       (ARRAY['steel', 'PE', 'cast iron', 'concrete'])[1 + s.id % 4],
       (ARRAY[100, 150, 200, 300, 600])[1 + (s.id + k.side) % 5], 1970 + (s.id % 54)::int,
       0.8 + (s.id % 30) * 0.1,
       (ARRAY['상수도사업본부', '도시가스', '한국전력', 'KT'])[1 + (s.id + k.side) % 4],
       ST_OffsetCurve(s.geom, CASE k.side WHEN 0 THEN 6.0 ELSE -6.0 END)
FROM segments s CROSS JOIN (VALUES (0), (1)) AS k(side) ORDER BY s.id, k.side;
CREATE INDEX pipes_geom ON city.pipes USING gist (geom);
ANALYZE city.roads;
ANALYZE city.pipes;
GRANT USAGE ON SCHEMA city TO gis_platform_app;
GRANT SELECT ON city.roads, city.pipes TO gis_platform_app;
"""


def build(owner_url: str, nodes: int = 388) -> dict:
    t0 = time.perf_counter()
    with psycopg.connect(owner_url, autocommit=True) as conn:
        conn.execute(SQL.format(x0=X0, y0=Y0, block=BLOCK, n=int(nodes)))
        roads, pipes = conn.execute("SELECT (SELECT count(*) FROM city.roads), "
                                    "(SELECT count(*) FROM city.pipes)").fetchone()
    return {"roads": roads, "pipes": pipes, "seconds": round(time.perf_counter() - t0, 1)}


def ensure_database(admin_url: str, dbname: str) -> str:
    """``dbname`` on the server of ``admin_url``, migrated for the platform; its owner URL."""
    from gis_platform.db import migrations

    with psycopg.connect(admin_url, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone():
            conn.execute(psycopg.sql.SQL("CREATE DATABASE {}").format(psycopg.sql.Identifier(dbname)))
    url = psycopg.conninfo.make_conninfo(admin_url, dbname=dbname)
    migrations.migrate(url)
    return url


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--admin-url", required=True, help="a login that may create databases")
    ap.add_argument("--dbname", default="bench_city")
    ap.add_argument("--nodes", type=int, default=388, help="street nodes per side (388: ~300k roads)")
    args = ap.parse_args()
    url = ensure_database(args.admin_url, args.dbname)
    print(build(url, args.nodes), file=sys.stderr)
    print(url)


if __name__ == "__main__":
    main()
