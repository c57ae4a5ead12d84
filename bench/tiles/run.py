"""Tile benchmark: this server (cold and warm cache) against TiPg and the raw SQL floor.

    python bench/tiles/run.py --db-url "$URL" --layers roads,pipes

Against one database, over one fixed list of tiles (z10-z16, half drawn where the features
are - dense - and half uniformly over the layers' extents - sparse), at each concurrency:

* ``sql floor``   - this server's own per-tile statements run straight through psycopg;
* ``tipg``        - TiPg (from its own venv) on a loopback port, same buffer and feature cap;
* ``ours cold``   - this platform on a loopback port with an empty tile cache;
* ``ours warm``   - the same list again (memory cache).

Prints tiles/s, p50/p95/p99 latency, mean bytes on the wire and ratios; writes JSON to
``bench/out/tiles.json``.  Loopback only; every pass stops after ``--max-seconds``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import httpx
import morecantile
import psycopg

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

GRID = morecantile.tms.get("WebMercatorQuad")


@dataclass
class Pass:
    name: str
    concurrency: int
    latencies: list[float] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    errors: int = 0
    empty: int = 0
    wall: float = 0.0
    truncated: bool = False
    by_zoom: dict[int, list[float]] = field(default_factory=dict)

    def summary(self) -> dict:
        lat = sorted(self.latencies) or [float("nan")]
        q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] * 1000
        n = len(self.latencies)
        return {"pass": self.name, "concurrency": self.concurrency, "tiles": n,
                "tiles_per_s": n / self.wall if self.wall else 0.0, "p50_ms": q(0.50),
                "p95_ms": q(0.95), "p99_ms": q(0.99),
                "mean_bytes": statistics.fmean(self.sizes) if self.sizes else 0.0,
                "empty": self.empty, "errors": self.errors, "truncated": self.truncated,
                "p50_ms_by_zoom": {z: statistics.median(v) * 1000 for z, v in sorted(self.by_zoom.items())}}


# --- the tile list ---------------------------------------------------------------------
def load_layers(db_url: str, ids: list[str]):
    from layers.catalog import get_layer

    with psycopg.connect(db_url) as conn:
        layers = [get_layer(conn, i) for i in ids]
    missing = [i for i, l in zip(ids, layers) if l is None or l.kind != "vector"]
    if missing:
        sys.exit(f"no vector layer {missing} in that database")
    return layers


def tile_list(db_url: str, layers, n: int, zooms: list[int], seed: int) -> list[tuple]:
    """``n`` distinct (layer id, z, x, y, kind): half near features, half uniform in the extent."""
    rng = random.Random(seed)
    samples = {}
    with psycopg.connect(db_url) as conn:
        for l in layers:
            q = psycopg.sql.SQL(
                "SELECT ST_X(c), ST_Y(c) FROM (SELECT ST_Centroid(geom) AS c FROM {} "
                "TABLESAMPLE SYSTEM (1) REPEATABLE (%s) LIMIT 5000) s").format(l.table())
            samples[l.id] = conn.execute(q, (seed,)).fetchall()
    out: dict[tuple, str] = {}
    per_zoom = -(-n // len(zooms))
    for zi, z in enumerate(zooms):
        want = per_zoom if zi < len(zooms) - 1 else n - len(out)
        got, attempts = 0, 0
        while got < want and attempts < want * 50:
            attempts += 1
            l = layers[attempts % len(layers)]
            if attempts % 2 and samples[l.id]:
                lon, lat = rng.choice(samples[l.id])
                kind = "dense"
            else:
                w, s, e, nn = l.extent
                lon, lat = rng.uniform(w, e), rng.uniform(s, nn)
                kind = "sparse"
            t = GRID.tile(lon, lat, z)
            key = (l.id, t.z, t.x, t.y)
            if key not in out:
                out[key] = kind
                got += 1
    items = [(*k, v) for k, v in out.items()]
    rng.shuffle(items)
    return items


# --- runners ---------------------------------------------------------------------------
async def drive(res: Pass, items: list, concurrency: int, max_seconds: float, one) -> Pass:
    """Run ``one(item)`` over ``items`` with ``concurrency`` workers; stop at the time cap.

    ``one`` returns (zoom, seconds, bytes, empty) or None for an error.
    """
    queue = list(reversed(items))
    deadline = time.perf_counter() + max_seconds

    async def worker():
        while queue:
            if time.perf_counter() > deadline:
                res.truncated = True
                return
            out = await one(queue.pop())
            if out is None:
                res.errors += 1
                continue
            z, secs, size, empty = out
            res.latencies.append(secs)
            res.by_zoom.setdefault(z, []).append(secs)
            res.sizes.append(size)
            res.empty += bool(empty)

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    res.wall = time.perf_counter() - t0
    return res


async def run_sql_floor(db_url: str, layers, tiles, concurrency: int, max_seconds: float) -> Pass:
    """This server's statements, straight through psycopg (no HTTP, no cache, no gzip)."""
    from psycopg_pool import AsyncConnectionPool

    from tile_server.sources import TileTuning
    from tile_server.tms import tile_bounds
    from tile_server.vector import SqlCache, tile_params, zoom_band

    by_id = {l.id: l for l in layers}
    tuning = TileTuning()
    cache = SqlCache()
    async with AsyncConnectionPool(db_url, min_size=concurrency, max_size=concurrency,
                                   kwargs={"autocommit": True}) as pool:
        async def one(item):
            lid, z, x, y, _ = item
            t = morecantile.Tile(x, y, z)
            b = tile_bounds(GRID, t, tuning.buffer / tuning.extent)
            stmt = cache.statement([by_id[lid]], GRID.id, zoom_band(z, tuning), tuning)
            t0 = time.perf_counter()
            async with pool.connection() as conn:
                cur = await conn.execute(stmt, tile_params(GRID, t, b, tuning), binary=True)
                row = await cur.fetchone()
            size = len(row[0] or b"")
            return z, time.perf_counter() - t0, size, size == 0

        return await drive(Pass("sql floor", concurrency), tiles, concurrency, max_seconds, one)


async def run_http(name: str, urls: list[tuple[int, str]], concurrency: int, max_seconds: float,
                   token: str | None = None) -> Pass:
    """GET each (zoom, url) with gzip accepted; bytes are counted as they come off the wire.

    ``token``: an API key for our server, so restricted layers (the demo's facilities) are
    served rather than answered 404 as they are to anonymous callers.
    """
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    headers = {"Accept-Encoding": "gzip"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    async with httpx.AsyncClient(limits=limits, timeout=120, headers=headers) as client:
        async def one(item):
            z, url = item
            t0 = time.perf_counter()
            try:
                # Raw bytes: the client does not gunzip (that would time the client, not the server).
                async with client.stream("GET", url) as r:
                    size = sum([len(chunk) async for chunk in r.aiter_raw()])
            except httpx.HTTPError:
                return None
            if r.status_code not in (200, 204):
                return None
            return z, time.perf_counter() - t0, size, r.status_code == 204 or size == 0

        return await drive(Pass(name, concurrency), urls, concurrency, max_seconds, one)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A server subprocess on a loopback port, stopped by its own pid."""

    def __init__(self, argv: list[str], env: dict, ready_url: str, log: Path) -> None:
        self.log = open(log, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(argv, env={**os.environ, **env}, stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(ready_url, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                sys.exit(f"server did not start: {' '.join(argv)} (see {log})")
            time.sleep(0.3)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.log.close()


def start_ours(db_url: str, data_dir: Path, port: int, out: Path) -> Server:
    env = {"GIS_DATABASE_URL": db_url, "GIS_DATA_DIR": str(data_dir), "GIS_LOG_LEVEL": "warning",
           "GIS_AUTO_MIGRATE": "false", "GIS_POOL_MAX_SIZE": "10"}
    argv = [str(ROOT / ".venv/bin/uvicorn"), "gis_platform.main:app", "--host", "127.0.0.1",
            "--port", str(port), "--log-level", "warning", "--no-access-log"]
    return Server(argv, env, f"http://127.0.0.1:{port}/layers", out / "ours.log")


def start_tipg(db_url: str, venv: Path, port: int, out: Path, layer_ids: list[str]) -> Server:
    info = psycopg.conninfo.conninfo_to_dict(db_url)
    url = (f"postgresql://{quote(info['user'])}:{quote(info.get('password', ''))}@"
           f"{info.get('host', '127.0.0.1')}:{info.get('port', 5432)}/{info['dbname']}")
    env = {"DATABASE_URL": url, "TIPG_DB_SCHEMAS": '["gis_data"]', "TIPG_TILE_BUFFER": "64",
           "TIPG_MAX_FEATURES_PER_TILE": "20000", "TIPG_DB_MAX_CONN_SIZE": "10"}
    argv = [str(venv / "bin/uvicorn"), "tipg.main:app", "--host", "127.0.0.1", "--port", str(port),
            "--log-level", "warning", "--no-access-log"]
    return Server(argv, env, f"http://127.0.0.1:{port}/collections/gis_data.{layer_ids[0]}",
                  out / "tipg.log")


# --- main ------------------------------------------------------------------------------
def print_table(rows: list[dict]) -> None:
    head = f"{'pass':<12}{'conc':>5}{'tiles':>7}{'tiles/s':>10}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'mean B':>10}{'empty':>7}{'err':>5}"
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r['pass']:<12}{r['concurrency']:>5}{r['tiles']:>7}{r['tiles_per_s']:>10.1f}"
              f"{r['p50_ms']:>9.1f}{r['p95_ms']:>9.1f}{r['p99_ms']:>9.1f}{r['mean_bytes']:>10.0f}"
              f"{r['empty']:>7}{r['errors']:>5}" + ("  (stopped at time cap)" if r["truncated"] else ""))
    zooms = sorted({z for r in rows for z in r["p50_ms_by_zoom"]})
    print()
    print(f"{'p50 ms by zoom':<17}" + "".join(f"{'z' + str(z):>8}" for z in zooms))
    for r in rows:
        print(f"{r['pass']:<12}{r['concurrency']:>5}" + "".join(
            f"{r['p50_ms_by_zoom'].get(z, float('nan')):>8.1f}" for z in zooms))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db-url", required=True)
    ap.add_argument("--layers", default="roads", help="comma-separated vector layer ids")
    ap.add_argument("--tiles", type=int, default=600)
    ap.add_argument("--zooms", default="10-16")
    ap.add_argument("--concurrency", default="1,8")
    ap.add_argument("--max-seconds", type=float, default=180, help="time cap of each pass")
    ap.add_argument("--tipg-venv", default=str(ROOT / ".venv-bench-tipg"))
    ap.add_argument("--skip-tipg", action="store_true")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--out", default=str(ROOT / "bench/out"))
    args = ap.parse_args()

    lo, _, hi = args.zooms.partition("-")
    zooms = list(range(int(lo), int(hi or lo) + 1))
    ids = [i.strip() for i in args.layers.split(",") if i.strip()]
    concs = [int(c) for c in args.concurrency.split(",")]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    layers = load_layers(args.db_url, ids)
    tiles = tile_list(args.db_url, layers, args.tiles, zooms, args.seed)
    print(f"{len(tiles)} tiles over {ids}, zooms {zooms[0]}-{zooms[-1]} "
          f"({sum(t[4] == 'dense' for t in tiles)} dense, {sum(t[4] == 'sparse' for t in tiles)} sparse)")

    rows: list[dict] = []
    from gis_platform.apikeys import create_api_key

    token = create_api_key(args.db_url, "bench-tiles", ["planner"])
    # Warm PostgreSQL's buffers once so no contender pays for the first disk reads.
    asyncio.run(run_sql_floor(args.db_url, layers, tiles, 4, args.max_seconds))
    for c in concs:
        rows.append(asyncio.run(run_sql_floor(args.db_url, layers, tiles, c, args.max_seconds)).summary())
        if not args.skip_tipg:
            port = free_port()
            srv = start_tipg(args.db_url, Path(args.tipg_venv), port, out, ids)
            try:
                urls = [(z, f"http://127.0.0.1:{port}/collections/gis_data.{l}/tiles/WebMercatorQuad/{z}/{x}/{y}")
                        for l, z, x, y, _ in tiles]
                asyncio.run(run_http("warmup", urls[:20], 1, 60))   # TiPg builds its catalog lazily
                rows.append(asyncio.run(run_http("tipg", urls, c, args.max_seconds)).summary())
            finally:
                srv.stop()
        data_dir = Path(tempfile.mkdtemp(prefix="bench-tiles-"))
        port = free_port()
        srv = start_ours(args.db_url, data_dir, port, out)
        try:
            urls = [(z, f"http://127.0.0.1:{port}/collections/{l}/tiles/WebMercatorQuad/{z}/{x}/{y}.mvt")
                    for l, z, x, y, _ in tiles]
            rows.append(asyncio.run(run_http("ours cold", urls, c, args.max_seconds, token)).summary())
            rows.append(asyncio.run(run_http("ours warm", urls, c, args.max_seconds, token)).summary())
        finally:
            srv.stop()
            shutil.rmtree(data_dir, ignore_errors=True)

    print()
    print_table(rows)
    print()
    for c in concs:
        by = {r["pass"]: r for r in rows if r["concurrency"] == c}
        if "tipg" in by and by["tipg"]["tiles_per_s"]:
            base = by["tipg"]["tiles_per_s"]
            print(f"concurrency {c}: ours cold {by['ours cold']['tiles_per_s'] / base:.2f}x TiPg, "
                  f"ours warm {by['ours warm']['tiles_per_s'] / base:.1f}x TiPg, "
                  f"sql floor {by['sql floor']['tiles_per_s'] / base:.2f}x TiPg; "
                  f"bytes ours/TiPg {by['ours cold']['mean_bytes'] / max(by['tipg']['mean_bytes'], 1):.2f}")
    (out / "tiles.json").write_text(json.dumps({"tiles": len(tiles), "layers": ids, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
