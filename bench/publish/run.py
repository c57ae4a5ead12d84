"""Publish-in-place benchmark (#16): a neutral synthetic city's tables, served in place by
this platform (with its defaults) and by TiPg, side by side, from the same database.

    .venv/bin/python bench/publish/run.py                       # builds the city in the dev cluster
    .venv/bin/python bench/publish/run.py --owner-url URL       # a database made by city.py

1. ``bench/publish/city.py`` makes ``city.roads`` (300k segments) and ``city.pipes`` (600k,
   seven attributes) in EPSG:5186 with plain SQL - tables the platform did not create.
2. Both are published in place (``layers.publish.publish``, as ``gis-platform layers
   publish`` does), their overviews built (the platform's default levels and threshold;
   the background builder would do the same).
3. Tiles: one fixed list of WebMercatorQuad tiles z10-z16 drawn over the city, each zoom
   band a cold pass of its own, at each concurrency: TiPg (``TIPG_DB_SCHEMAS=["city"]``,
   same buffer and feature cap) and ours with an empty cache.  Targets: z14-16 >= 3x TiPg's
   tiles/s, z10-12 >= 10x with mean tiles <= 500 KB.
4. Feature pages: ``/items?bbox=...&limit=100`` over ~300 m boxes (a few hundred features
   each, so pages are full and counted), one client, p50 ours / TiPg (target <= 0.5).

Everything on loopback; the machine's cores are shared by client, servers and PostgreSQL.
Writes ``bench/out/publish.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

import morecantile
import psycopg

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from bench.publish.city import build, ensure_database
from bench.rawhttp import RawHTTP
from bench.tiles.run import (
    BANDS,
    Server,
    band_table,
    by_band,
    combine,
    free_port,
    run_raw,
)

GRID = morecantile.tms.get("WebMercatorQuad")
LAYERS = ("roads", "pipes")


def publish_city(owner_url: str) -> None:
    """Publish city.roads and city.pipes in place (public), unless already published."""
    from layers.catalog import get_layer
    from layers.publish import publish

    with psycopg.connect(owner_url, autocommit=True) as conn:
        for name in LAYERS:
            layer = get_layer(conn, name)
            if layer is not None and layer.relation is not None:
                continue
            (p,) = publish(conn, f"city.{name}", layer_id=name, access_level="public",
                           serving_role=None)
            d = p.as_dict()
            print(f"published {name}: {d['features']:,} features, EPSG:{d['srid']}, key {d['key']}, "
                  f"changes: {d['tracking']}", flush=True)


def build_overviews(owner_url: str) -> list[dict]:
    from gis_platform.config import Settings
    from tile_server.overview_build import OverviewPlan, build_layer
    from tile_server.sources import TileTuning

    settings = Settings(_env_file=None)
    info = []
    t0 = time.perf_counter()
    for name in LAYERS:
        built = asyncio.run(build_layer(owner_url, name, TileTuning.from_settings(settings.tiles),
                                        OverviewPlan.from_settings(settings.tiles)))
        info += [{"layer": o.layer_id, "zoom": o.zoom, "features": o.features,
                  "seconds": o.build_ms / 1000} for o in built]
    print(f"overviews: {len(info)} levels built in {time.perf_counter() - t0:.1f} s "
          "(levels already built are kept)", flush=True)
    return info


def city_points(owner_url: str, n: int, seed: int) -> list[tuple[float, float]]:
    """Lon/lat of ``n`` random road centroids (where the features are)."""
    with psycopg.connect(owner_url) as conn:
        conn.execute("SELECT setseed(%s)", (seed / 1000,))
        rows = conn.execute("SELECT ST_X(c), ST_Y(c) FROM (SELECT ST_Transform(ST_Centroid(geom), "
                            "4326) AS c FROM city.roads TABLESAMPLE SYSTEM (2) REPEATABLE (%s)) s "
                            "LIMIT %s", (seed, n)).fetchall()
    return [(float(x), float(y)) for x, y in rows]


def tile_list(points: list, n: int, zooms: list[int], seed: int) -> list[tuple]:
    """``n`` distinct (layer, z, x, y, 'dense') tiles over the city, evenly per zoom."""
    rng = random.Random(seed)
    out: dict[tuple, str] = {}
    per_zoom = -(-n // len(zooms))
    for z in zooms:
        got = 0
        for _ in range(per_zoom * 50):
            if got >= per_zoom:
                break
            lon, lat = rng.choice(points)
            t = GRID.tile(lon, lat, z)
            key = (LAYERS[len(out) % 2], t.z, t.x, t.y)
            if key not in out:
                out[key] = "dense"
                got += 1
    items = [(*k, v) for k, v in out.items()]
    rng.shuffle(items)
    return items


def start_ours(owner_url: str, data_dir: Path, port: int, out: Path) -> Server:
    env = {"GIS_DATABASE_URL": owner_url, "GIS_DATA_DIR": str(data_dir), "GIS_LOG_LEVEL": "warning",
           "GIS_AUTO_MIGRATE": "false", "GIS_POOL_MAX_SIZE": "10", "GIS_RATE_LIMIT_PER_IP": "0",
           "GIS_TILE_OVERVIEW_AUTO_BUILD": "false"}
    argv = [str(ROOT / ".venv/bin/uvicorn"), "gis_platform.main:app", "--host", "127.0.0.1",
            "--port", str(port), "--log-level", "warning", "--no-access-log"]
    return Server(argv, env, f"http://127.0.0.1:{port}/collections/roads", out / "ours-publish.log")


def start_tipg(owner_url: str, venv: Path, port: int, out: Path) -> Server:
    info = psycopg.conninfo.conninfo_to_dict(owner_url)
    url = (f"postgresql://{quote(info['user'])}:{quote(info.get('password', ''))}@"
           f"{info.get('host', '127.0.0.1')}:{info.get('port', 5432)}/{info['dbname']}")
    env = {"DATABASE_URL": url, "TIPG_DB_SCHEMAS": '["city"]', "TIPG_TILE_BUFFER": "64",
           "TIPG_MAX_FEATURES_PER_TILE": "20000", "TIPG_DB_MAX_CONN_SIZE": "10"}
    argv = [str(venv / "bin/uvicorn"), "tipg.main:app", "--host", "127.0.0.1", "--port", str(port),
            "--log-level", "warning", "--no-access-log"]
    return Server(argv, env, f"http://127.0.0.1:{port}/collections/city.roads", out / "tipg-publish.log")


def boxes(points: list, n: int, seed: int, half_m: float = 150.0) -> list[str]:
    """``n`` bboxes of about 2 x ``half_m`` metres around city points (lon/lat text)."""
    rng = random.Random(seed + 1)
    dlat = half_m / 111_000
    out = []
    for _ in range(n):
        lon, lat = rng.choice(points)
        import math

        dlon = half_m / (111_000 * math.cos(math.radians(lat)))
        out.append(f"{lon - dlon:.6f},{lat - dlat:.6f},{lon + dlon:.6f},{lat + dlat:.6f}")
    return out


async def time_pages(port: int, paths: list[str]) -> list[float]:
    c = RawHTTP("127.0.0.1", port, {"Accept-Encoding": "gzip"})
    try:
        for p in paths[:5]:                  # warm-up (connection, catalog, plans)
            await c.get(p)
        out = []
        for p in paths:
            t0 = time.perf_counter()
            status, _ = await c.get(p)
            if status != 200:
                raise RuntimeError(f"{p}: HTTP {status}")
            out.append(time.perf_counter() - t0)
        return out
    finally:
        c.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--owner-url", help="a database with the city (default: build it in the dev cluster)")
    ap.add_argument("--nodes", type=int, default=388, help="street nodes per side when building")
    ap.add_argument("--tiles", type=int, default=420)
    ap.add_argument("--zooms", default="10-16")
    ap.add_argument("--concurrency", default="1,8")
    ap.add_argument("--max-seconds", type=float, default=120)
    ap.add_argument("--pages", type=int, default=200)
    ap.add_argument("--tipg-venv", default=str(ROOT / ".venv-bench-tipg"))
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", default=str(ROOT / "bench/out"))
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    owner = args.owner_url
    if owner is None:
        import subprocess

        admin = subprocess.run([str(ROOT / ".venv/bin/gis-platform"), "db", "url", "--admin"],
                               check=True, capture_output=True, text=True).stdout.strip()
        owner = ensure_database(admin, "bench_city")
    with psycopg.connect(owner) as conn:
        have = conn.execute("SELECT to_regclass('city.pipes') IS NOT NULL").fetchone()[0]
    if not have:
        print("building the neutral city:", build(owner, args.nodes), flush=True)
    publish_city(owner)
    overviews = build_overviews(owner)

    lo, hi = (int(v) for v in args.zooms.split("-"))
    points = city_points(owner, 4000, args.seed)
    tiles = tile_list(points, args.tiles, list(range(lo, hi + 1)), args.seed)
    concs = [int(c) for c in args.concurrency.split(",")]
    bands: list[dict] = []
    # Warm PostgreSQL's buffers once (both servers then read from memory).
    with psycopg.connect(owner) as conn:
        conn.execute("SELECT count(*) FROM city.roads WHERE geom IS NOT NULL")
        conn.execute("SELECT count(*) FROM city.pipes WHERE geom IS NOT NULL")

    def run_bands(name: str, port: int, urls, c: int) -> None:
        parts = []
        for band, items in by_band(tiles):
            p = asyncio.run(run_raw(name, port, urls(items), c, args.max_seconds))
            parts.append(p)
            bands.append({**p.summary(), "band": band})
        combine(name, c, parts)

    # Warm-up tiles (untimed: connections, plans, TiPg's catalog) at the same zooms but
    # never one of the timed tiles, so ours stay cold.
    timed = {t[:4] for t in tiles}
    warm = [t for t in tile_list(points, 120, list(range(lo, hi + 1)), args.seed + 99)
            if t[:4] not in timed][:60]
    page_paths = {}
    bbs = boxes(points, args.pages, args.seed)
    for c in concs:
        port = free_port()
        srv = start_tipg(owner, Path(args.tipg_venv), port, out)
        try:
            def tipg_urls(items):
                return [(z, f"/collections/city.{l}/tiles/WebMercatorQuad/{z}/{x}/{y}")
                        for l, z, x, y, _ in items]
            asyncio.run(run_raw("warmup", port, tipg_urls(warm), c, 60))
            run_bands("tipg", port, tipg_urls, c)
            if c == concs[0]:
                page_paths["tipg"] = asyncio.run(time_pages(port, [
                    f"/collections/city.roads/items?bbox={b}&limit=100" for b in bbs]))
        finally:
            srv.stop()
        data_dir = Path(tempfile.mkdtemp(prefix="bench-publish-"))
        port = free_port()
        srv = start_ours(owner, data_dir, port, out)
        try:
            def our_urls(items):
                return [(z, f"/collections/{l}/tiles/WebMercatorQuad/{z}/{x}/{y}.mvt")
                        for l, z, x, y, _ in items]
            asyncio.run(run_raw("warmup", port, our_urls(warm), c, 60))
            run_bands("ours cold", port, our_urls, c)
            if c == concs[0]:
                page_paths["ours"] = asyncio.run(time_pages(port, [
                    f"/collections/roads/items?bbox={b}&limit=100" for b in bbs]))
        finally:
            srv.stop()

    band_table(bands)
    print()
    summary = []
    for c in concs:
        for band, _, _ in BANDS:
            by = {r["pass"]: r for r in bands if r["concurrency"] == c and r["band"] == band}
            if "ours cold" in by and "tipg" in by and by["tipg"]["tiles_per_s"]:
                ratio = by["ours cold"]["tiles_per_s"] / by["tipg"]["tiles_per_s"]
                line = (f"c={c} {band}: ours {by['ours cold']['tiles_per_s']:.1f} tiles/s, TiPg "
                        f"{by['tipg']['tiles_per_s']:.1f} -> {ratio:.2f}x; mean tile ours "
                        f"{by['ours cold']['mean_bytes'] / 1000:.0f} KB, TiPg {by['tipg']['mean_bytes'] / 1000:.0f} KB")
                summary.append(line)
                print(line)
    pages = {}
    if "ours" in page_paths and "tipg" in page_paths:
        o, t = statistics.median(page_paths["ours"]) * 1000, statistics.median(page_paths["tipg"]) * 1000
        pages = {"ours_p50_ms": o, "tipg_p50_ms": t, "ratio": o / t,
                 "ours_p95_ms": sorted(page_paths["ours"])[int(0.95 * len(page_paths["ours"]))] * 1000,
                 "tipg_p95_ms": sorted(page_paths["tipg"])[int(0.95 * len(page_paths["tipg"]))] * 1000}
        line = (f"bbox pages (limit 100, ~300 m boxes, c=1): ours p50 {o:.2f} ms, TiPg {t:.2f} ms "
                f"-> {o / t:.2f}x")
        summary.append(line)
        print(line)
    (out / "publish.json").write_text(json.dumps({
        "bands": bands, "summary": summary, "pages": pages, "overviews": overviews,
        "tiles": len(tiles), "concurrency": concs}, indent=1, default=str))
    print(f"wrote {out / 'publish.json'}")


if __name__ == "__main__":
    main()
