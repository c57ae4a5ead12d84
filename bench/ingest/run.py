"""Ingest benchmark: `gis-platform ingest` vs `ogr2ogr -f PostgreSQL` (PG_USE_COPY=YES).

Both load the same GeoPackage of >= 500k line features into the same database, side by side
in one run; prints both wall times and the ratio (target: ours <= 1.0x ogr2ogr).

    .venv/bin/python bench/ingest/run.py [--features 550000] [--db-url URL]

Without --db-url a scratch database `bench_ingest` is (re)created in the embedded cluster.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "bench" / "out"


def scratch_db(name: str) -> str:
    from gis_platform.config import Settings
    from gis_platform.db import resolve_conninfo

    admin = resolve_conninfo(Settings())
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    url = psycopg.conninfo.make_conninfo(admin, dbname=name)
    from gis_platform.db import migrations

    migrations.migrate(url)
    return url


def make_gpkg(n: int) -> Path:
    """Demo facility lines (real-looking attributes), first n, as a GeoPackage (cached)."""
    import pyogrio

    from layers import demo

    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"lines_{n}.gpkg"
    if path.exists():
        return path
    gu = demo.districts(demo.data_root())
    fac = demo.facilities(demo.roads(gu, "large"))
    while len(fac) < n:
        fac = fac._append(fac, ignore_index=True)
    fac = fac.iloc[:n].to_crs("EPSG:5186")  # a Korean CRS, so both tools must reproject
    pyogrio.write_dataframe(fac, path, layer="lines", driver="GPKG")
    return path


def pg_dsn(url: str) -> str:
    info = psycopg.conninfo.conninfo_to_dict(url)
    return " ".join(f"{k}={v}" for k, v in info.items() if k in ("host", "port", "dbname", "user", "password"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--features", type=int, default=550_000)
    ap.add_argument("--db-url")
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    url = args.db_url or scratch_db("bench_ingest")
    gpkg = make_gpkg(args.features)
    exe = Path(sys.executable).parent / "gis-platform"
    env = {**os.environ, "GIS_DATABASE_URL": url}
    ours, theirs = [], []
    for i in range(args.repeat):
        mode = "create" if i == 0 else "replace"
        t = time.perf_counter()
        subprocess.run([str(exe), "ingest", str(gpkg), "--layer", "bench_ours", "--mode", mode, "--json"],
                       check=True, env=env, capture_output=True)
        ours.append(time.perf_counter() - t)
        t = time.perf_counter()
        subprocess.run(["ogr2ogr", "-f", "PostgreSQL", f"PG:{pg_dsn(url)}", str(gpkg), "lines",
                        "-nln", "gis_data.bench_ogr", "-t_srs", "EPSG:4326", "-overwrite",
                        "-lco", "GEOMETRY_NAME=geom", "-lco", "FID=fid", "-lco", "SPATIAL_INDEX=GIST",
                        "-nlt", "PROMOTE_TO_MULTI", "--config", "PG_USE_COPY", "YES", "-gt", "65536"],
                       check=True, env={**os.environ, "PG_USE_COPY": "YES"}, capture_output=True)
        theirs.append(time.perf_counter() - t)
    with psycopg.connect(url) as conn:
        n_ours = conn.execute("SELECT count(*) FROM gis_data.bench_ours").fetchone()[0]
        n_ogr = conn.execute("SELECT count(*) FROM gis_data.bench_ogr").fetchone()[0]
    best_o, best_t = min(ours), min(theirs)
    print(f"features: ours {n_ours:,}, ogr2ogr {n_ogr:,} (GeoPackage {gpkg.stat().st_size/1e6:.0f} MB, EPSG:5186 -> 4326)")
    print(f"gis-platform ingest : {', '.join(f'{t:.1f}' for t in ours)} s   best {best_o:.1f} s  ({n_ours/best_o:,.0f} features/s)")
    print(f"ogr2ogr (COPY)      : {', '.join(f'{t:.1f}' for t in theirs)} s   best {best_t:.1f} s  ({n_ogr/best_t:,.0f} features/s)")
    print(f"ratio ours/ogr2ogr  : {best_o/best_t:.2f}x  (target <= 1.0x)")


if __name__ == "__main__":
    main()
