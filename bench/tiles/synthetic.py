"""Synthetic Seoul-like line layers for the tile benchmark, generated in SQL.

    python bench/tiles/synthetic.py --admin-url "$(gis-platform db url)" --dbname bench_tiles

creates (or recreates) database ``bench_tiles`` on the same server, applies the platform's
migrations and fills two catalogued layers with ``generate_series``:

* ``roads`` - 300,000 segments of 50-300 m, 70 % clustered around City Hall (a Gaussian
  with sd ~3 km), 30 % spread uniformly over greater Seoul; 6 attributes;
* ``pipes`` - 600,000 segments of 20-150 m (underground facility lines), same mix; 7
  attributes.

Deterministic (``setseed``), so two runs give the same tiles.  Prints the database URL.
"""

from __future__ import annotations

import argparse
import sys
import time

import psycopg
from psycopg import sql

CENTER = (126.978, 37.5665)
BOX = (126.76, 37.42, 127.18, 37.70)

_LAYERS = {
    "roads": {
        "columns": [("name", "text"), ("road_class", "text"), ("lanes", "integer"),
                    ("width_m", "double precision"), ("surface", "text"), ("managed_by", "text")],
        "values": "'도로 ' || i, (ARRAY['motorway','arterial','collector','local','local','local'])[1 + i % 6], "
                  "1 + i % 4, 4 + (i % 20) * 0.5, 'asphalt', (ARRAY['서울시','구청'])[1 + i % 2]",
        "length": (0.0005, 0.003),
    },
    "pipes": {
        "columns": [("facility_id", "text"), ("material", "text"), ("diameter_mm", "integer"),
                    ("install_year", "integer"), ("depth_m", "double precision"), ("owner", "text"),
                    ("status", "text")],
        "values": "'P-' || lpad(i::text, 7, '0'), (ARRAY['steel','PE','cast iron','concrete'])[1 + i % 4], "
                  "(ARRAY[100,150,200,300,600])[1 + i % 5], 1970 + i % 54, 0.8 + (i % 30) * 0.1, "
                  "(ARRAY['상수도사업본부','도시가스','한국전력','KT'])[1 + i % 4], "
                  "(ARRAY['active','active','active','abandoned'])[1 + i % 4]",
        "length": (0.0002, 0.0015),
    },
}


def _generate(conn: psycopg.Connection, layer_id: str, n: int, seed: float) -> None:
    spec = _LAYERS[layer_id]
    table = sql.Identifier("gis_data", layer_id)
    cols = sql.SQL(", ").join(sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(t))
                              for c, t in spec["columns"])
    conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(table))
    conn.execute(sql.SQL("CREATE TABLE {} (fid bigint PRIMARY KEY, {}, "
                         "geom geometry(LineString, 4326) NOT NULL)").format(table, cols))
    conn.execute("SELECT setseed(%s)", (seed,))
    lo, hi = spec["length"]
    # 70 % Gaussian around the centre (Box-Muller), 30 % uniform over the box; a random
    # bearing and length from each start point.
    conn.execute(sql.SQL("""
        INSERT INTO {table}
        SELECT i, {values},
               ST_MakeLine(ST_MakePoint(x, y),
                           ST_MakePoint(x + len * cos(a) / cos(radians(y)), y + len * sin(a)))
        FROM (
            SELECT i,
                   CASE WHEN u0 < 0.7 THEN {cx} + 0.035 * sqrt(-2 * ln(u1)) * cos(2 * pi() * u2)
                        ELSE {minx} + u1 * ({maxx} - {minx}) END AS x,
                   CASE WHEN u0 < 0.7 THEN {cy} + 0.027 * sqrt(-2 * ln(u1)) * sin(2 * pi() * u2)
                        ELSE {miny} + u2 * ({maxy} - {miny}) END AS y,
                   {lo} + u3 * ({hi} - {lo}) AS len, 2 * pi() * u4 AS a
            FROM (SELECT i, random() AS u0, greatest(random(), 1e-12) AS u1, random() AS u2,
                         random() AS u3, random() AS u4
                  FROM generate_series(1, {n}) AS i) r
        ) p""").format(
        table=table, values=sql.SQL(spec["values"]), cx=sql.Literal(CENTER[0]),
        cy=sql.Literal(CENTER[1]), minx=sql.Literal(BOX[0]), miny=sql.Literal(BOX[1]),
        maxx=sql.Literal(BOX[2]), maxy=sql.Literal(BOX[3]), lo=sql.Literal(lo), hi=sql.Literal(hi),
        n=sql.Literal(int(n))))
    conn.execute(sql.SQL("CREATE INDEX {} ON {} USING gist (geom)").format(
        sql.Identifier(f"{layer_id}_geom_idx"), table))
    conn.execute(sql.SQL("ANALYZE {}").format(table))
    count, ext = conn.execute(sql.SQL(
        "SELECT c, ARRAY[ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e)] "
        "FROM (SELECT count(*) AS c, ST_Extent(geom) AS e FROM {}) s").format(table)).fetchone()
    schema = [{"name": c, "type": t} for c, t in spec["columns"]]
    conn.execute("DELETE FROM gis_meta.layers WHERE id = %s", (layer_id,))
    conn.execute(
        "INSERT INTO gis_meta.layers (id, title, kind, geometry_type, table_name, extent, "
        "feature_count, schema, data_version) VALUES (%s, %s, 'vector', 'LineString', %s, %s, %s, "
        "%s::jsonb, nextval('gis_meta.data_version_seq'))",
        (layer_id, f"Synthetic {layer_id}", layer_id, [float(v) for v in ext], count,
         psycopg.types.json.Json(schema)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--admin-url", required=True, help="URL of a database on the target server")
    ap.add_argument("--dbname", default="bench_tiles")
    ap.add_argument("--roads", type=int, default=300_000)
    ap.add_argument("--pipes", type=int, default=600_000)
    args = ap.parse_args()
    from gis_platform.db import migrations

    with psycopg.connect(args.admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(args.dbname)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(args.dbname)))
    url = psycopg.conninfo.make_conninfo(args.admin_url, dbname=args.dbname)
    migrations.migrate(url)
    for layer_id, n, seed in (("roads", args.roads, 0.11), ("pipes", args.pipes, 0.22)):
        t0 = time.perf_counter()
        with psycopg.connect(url, autocommit=True) as conn:
            _generate(conn, layer_id, n, seed)
        print(f"{layer_id}: {n:,} segments in {time.perf_counter() - t0:.1f}s", file=sys.stderr)
    print(url)


if __name__ == "__main__":
    main()
