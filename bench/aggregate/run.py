"""City-scale aggregation benchmark (#19): synthetic night-time calls -> 500 m hexagons.

    .venv/bin/python bench/aggregate/run.py --db-url "$URL" --rows 10000000 100000000 [--postgis-rows 10000000]

For each size, the calls (``generate.py``, Parquet) are counted per cell of the area unit
(``hex500`` of the demo city, ~1,050 cells), night hours only (22:00-04:59):

* **Dask** (:func:`indicators.points.aggregate_points`, a local cluster of 2 worker processes
  on this 2-core machine, 2 GB each): wall time, and peak memory of the whole process tree
  (client, scheduler, workers; RSS sampled every 0.2 s);
* **PostGIS**, the way it is done without Dask: ``COPY`` the calls into an unlogged table,
  then one statement joining them to the cells (``ST_Intersects``, the cells' GiST index);
  wall time of each step.  Slow at 10^8 rows, so ``--postgis-rows`` limits which sizes run it.

The two must give the same per-cell counts (checked).  Writes ``bench/out/aggregate.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path

import psutil
import psycopg

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from bench.aggregate.generate import generate  # noqa: E402
from indicators.points import aggregate_points, unit_cells  # noqa: E402

HOURS = (22, 5)


class PeakRss:
    """Peak resident memory of this process and all its children, sampled."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            total = 0
            for p in [me, *me.children(recursive=True)]:
                try:
                    total += p.memory_info().rss
                except psutil.Error:
                    pass
            self.peak = max(self.peak, total)
            time.sleep(0.2)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()


def run_dask(cells, files: list[Path]) -> dict:
    with PeakRss() as mem:
        t0 = time.perf_counter()
        per_cell, read = aggregate_points(cells, [str(f) for f in files], time_column="ts", hours=HOURS,
                                          workers=2, memory_limit="2GB")
        secs = time.perf_counter() - t0
    return {"seconds": round(secs, 1), "peak_rss_mb": round(mem.peak / 2**20), **read,
            "counts": dict(zip(per_cell["code"], per_cell["count"].astype(int).tolist()))}


def run_postgis(db_url: str, unit_layer: str, code: str, files: list[Path]) -> dict:
    import pyarrow.parquet as pq

    out: dict = {}
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS bench_calls")
        conn.execute("CREATE UNLOGGED TABLE bench_calls (lon float8, lat float8, ts timestamp)")
        t0 = time.perf_counter()
        with conn.cursor().copy("COPY bench_calls (lon, lat, ts) FROM STDIN (FORMAT BINARY)") as cp:
            cp.set_types(["float8", "float8", "timestamp"])
            for f in files:
                for batch in pq.ParquetFile(f).iter_batches(batch_size=200_000, columns=["lon", "lat", "ts"]):
                    d = batch.to_pydict()
                    for row in zip(d["lon"], d["lat"], d["ts"]):
                        cp.write_row(row)
        out["copy_seconds"] = round(time.perf_counter() - t0, 1)
        t0 = time.perf_counter()
        rows = conn.execute(
            f"SELECT c.{code}::text, count(*) FROM bench_calls p JOIN gis_data.{unit_layer} c "
            "ON ST_Intersects(c.geom, ST_SetSRID(ST_MakePoint(p.lon, p.lat), 4326)) "
            "WHERE extract(hour FROM p.ts) >= 22 OR extract(hour FROM p.ts) < 5 GROUP BY 1").fetchall()
        out["join_seconds"] = round(time.perf_counter() - t0, 1)
        out["table_mb"] = round(conn.execute("SELECT pg_total_relation_size('bench_calls')").fetchone()[0] / 2**20)
        conn.execute("DROP TABLE bench_calls")
    out["seconds"] = round(out["copy_seconds"] + out["join_seconds"], 1)
    out["counts"] = {k: int(v) for k, v in rows}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db-url", required=True, help="the owner's URL of a database with the demo city")
    ap.add_argument("--rows", type=int, nargs="+", default=[10_000_000, 100_000_000])
    ap.add_argument("--postgis-rows", type=int, default=10_000_000, help="largest size PostGIS runs")
    ap.add_argument("--data", type=Path, default=Path("/tmp/gis-bench-calls"))
    ap.add_argument("--unit", default="hex500")
    args = ap.parse_args()
    with psycopg.connect(args.db_url) as conn:
        cells = unit_cells(conn, args.unit)
        layer, code = conn.execute("SELECT u.layer_id, u.code_column FROM gis_meta.area_units u "
                                   "WHERE u.id = %s", (args.unit,)).fetchone()
    result = {"cells": len(cells), "runs": []}
    for rows in args.rows:
        folder = args.data / str(rows)
        files = sorted(folder.glob("*.parquet"))
        if not files:
            t0 = time.perf_counter()
            files = generate(folder, rows, "parquet")
            print(f"generated {rows:,} calls in {time.perf_counter() - t0:.0f} s", flush=True)
        size = sum(f.stat().st_size for f in files)
        dask = run_dask(cells, files)
        run = {"rows": rows, "parquet_gb": round(size / 1e9, 2), "dask": {k: v for k, v in dask.items() if k != "counts"}}
        print(f"{rows:,} calls ({size / 1e9:.2f} GB Parquet): Dask {dask['seconds']} s, peak RSS "
              f"{dask['peak_rss_mb']} MB, {dask['rows_used']:,} night calls", flush=True)
        if rows <= args.postgis_rows:
            pg = run_postgis(args.db_url, layer, code, files)
            same = {k: v for k, v in dask["counts"].items() if v} == pg["counts"]
            run["postgis"] = {k: v for k, v in pg.items() if k != "counts"}
            run["same_counts"] = same
            print(f"  PostGIS: COPY {pg['copy_seconds']} s + join {pg['join_seconds']} s = {pg['seconds']} s "
                  f"({pg['table_mb']} MB table); same per-cell counts: {same}", flush=True)
        result["runs"].append(run)
    out = ROOT / "bench/out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "aggregate.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
