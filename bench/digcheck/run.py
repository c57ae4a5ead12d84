"""Dig-safety check benchmark: the HTTP route vs the raw SQL floor, on the large demo city.

Requests are drawn deterministically (``--seed``) from the demo roads: trenches (a 15-60 m
stretch of a road, 0.8-2 m wide, given as a LineString + width_m) and pits (a 4-20 m square
polygon on a road), 1.0-2.5 m deep, buffer 3 m — what a utility or a contractor would ask.

* ``sql floor``: the route's own two statements (``digcheck.prepare_area`` and
  ``digcheck.find_facilities``) on one psycopg connection: no HTTP, no JSON encoding.
* ``http``: ``POST /dig-check`` (JSON) on the platform (``uvicorn gis_platform.main:app``,
  one process) with a planner key, at concurrency 1 and ``--concurrency``.
* ``http html``: the printable report (``?f=html``), concurrency 1.

Prints p50/p95/p99 and mean facilities per answer; JSON to ``bench/out/digcheck.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psycopg
import shapely
import shapely.ops

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def percentiles(ms: list[float]) -> dict:
    a = np.array(ms)
    return {"n": len(ms), "p50": round(float(np.percentile(a, 50)), 2), "p95": round(float(np.percentile(a, 95)), 2),
            "p99": round(float(np.percentile(a, 99)), 2), "mean": round(float(a.mean()), 2)}


def make_requests(url: str, n: int, seed: int) -> list[dict]:
    from pyproj import Transformer

    to_ll = Transformer.from_crs(5179, 4326, always_xy=True)
    rng = np.random.default_rng(seed)
    with psycopg.connect(url) as conn:
        total = conn.execute("SELECT max(fid) FROM gis_data.roads").fetchone()[0]
        fids = sorted({int(x) for x in rng.integers(1, total + 1, n * 2)})[: n]
        rows = conn.execute("SELECT ST_AsBinary(ST_Transform(geom, 5179)) FROM gis_data.roads "
                            "WHERE fid = ANY(%s) ORDER BY fid", (fids,)).fetchall()
    out = []
    for (wkb,) in rows:
        line = shapely.from_wkb(bytes(wkb))
        depth = round(float(rng.uniform(1.0, 2.5)), 2)
        if rng.random() < 0.7:
            length = min(line.length, float(rng.uniform(15, 60)))
            part = shapely.ops.substring(line, 0, length)
            geom = shapely.transform(part, lambda c: np.column_stack(to_ll.transform(c[:, 0], c[:, 1])))
            out.append({"geometry": shapely.geometry.mapping(geom), "width_m": round(float(rng.uniform(0.8, 2)), 2),
                        "depth_m": depth, "buffer_m": 3.0})
        else:
            c = line.interpolate(0.5, normalized=True)
            s = float(rng.uniform(4, 20)) / 2
            sq = shapely.box(c.x - s, c.y - s, c.x + s, c.y + s)
            geom = shapely.transform(sq, lambda c: np.column_stack(to_ll.transform(c[:, 0], c[:, 1])))
            out.append({"geometry": shapely.geometry.mapping(geom), "depth_m": depth, "buffer_m": 3.0})
    return [{**r, "geometry": json.loads(json.dumps(r["geometry"]))} for r in out]


async def sql_floor(url: str, reqs: list[dict]) -> tuple[dict, float]:
    from domains import digcheck
    from gis_platform.config import Settings
    from gis_platform.principal import SYSTEM
    from layers.catalog import get_layer

    settings = Settings(database_url=url, _env_file=None)
    ds = settings.domains
    with psycopg.connect(url) as sconn:
        layer = get_layer(sconn, ds.facilities_layer)
    times, found = [], []
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        for rep in range(2):     # first pass warms the buffers
            for doc in reqs:
                t0 = time.perf_counter()
                req = digcheck.parse_request(doc, settings, ds)
                area = await digcheck.prepare_area(conn, req, ds)
                rows, _ = await digcheck.find_facilities(conn, layer, SYSTEM, req, area, ds)
                if rep:
                    times.append((time.perf_counter() - t0) * 1000)
                    found.append(len(rows))
    return percentiles(times), float(np.mean(found))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def http_pass(base: str, token: str, reqs: list[dict], concurrency: int, fmt: str = "json") -> dict:
    import httpx

    times: list[float] = []
    errors = 0
    queue = list(reqs)

    async def worker(client):
        nonlocal errors
        while queue:
            doc = queue.pop()
            t0 = time.perf_counter()
            r = await client.post(f"/dig-check?f={fmt}", json=doc)
            times.append((time.perf_counter() - t0) * 1000)
            if r.status_code != 200:
                errors += 1

    async with httpx.AsyncClient(base_url=base, timeout=30,
                                 headers={"Authorization": f"Bearer {token}"}) as client:
        for doc in reqs[:10]:
            await client.post(f"/dig-check?f={fmt}", json=doc)
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    return {**percentiles(times), "concurrency": concurrency, "format": fmt, "errors": errors}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db-url", required=True)
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--skip-http", action="store_true")
    args = ap.parse_args()

    reqs = make_requests(args.db_url, args.requests, args.seed)
    print(f"{len(reqs)} requests ({sum('width_m' in r for r in reqs)} trenches, "
          f"{sum('width_m' not in r for r in reqs)} pits)")
    floor, mean_found = asyncio.run(sql_floor(args.db_url, reqs))
    print(f"sql floor    p50 {floor['p50']:7.2f} ms  p95 {floor['p95']:7.2f}  p99 {floor['p99']:7.2f}  "
          f"(mean {mean_found:.1f} facilities per answer)")
    results = {"requests": len(reqs), "sql_floor": floor, "mean_facilities": mean_found, "http": []}
    if not args.skip_http:
        from gis_platform.apikeys import create_api_key

        token = create_api_key(args.db_url, "bench-digcheck", ["planner"])
        port = free_port()
        env = {**os.environ, "GIS_DATABASE_URL": args.db_url, "GIS_LOG_LEVEL": "warning",
               "GIS_AUTO_MIGRATE": "true"}
        proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "gis_platform.main:app", "--port", str(port),
                                 "--log-level", "warning"], env=env, cwd=ROOT)
        base = f"http://127.0.0.1:{port}"
        try:
            import httpx

            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(base + "/ready", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise SystemExit("server did not become ready")
                time.sleep(0.5)
            for conc, fmt in ((1, "json"), (args.concurrency, "json"), (1, "html")):
                res = asyncio.run(http_pass(base, token, reqs, conc, fmt))
                results["http"].append(res)
                print(f"http {fmt:<5} c={conc}  p50 {res['p50']:7.2f} ms  p95 {res['p95']:7.2f}  "
                      f"p99 {res['p99']:7.2f}  errors {res['errors']}")
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "digcheck.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
