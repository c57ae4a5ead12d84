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
from bench.rawhttp import RawHTTP  # the shared benchmark client (after the sys.path line)

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
        # Only layers that have tiles at z (a facility layer from z12 gives no z10 tiles).
        here = [l for l in layers if l.minzoom <= z <= l.maxzoom] or layers
        while got < want and attempts < want * 50:
            attempts += 1
            l = here[attempts % len(here)]
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


async def run_sql_floor(db_url: str, layers, tiles, concurrency: int, max_seconds: float,
                        warmup: list | None = None) -> Pass:
    """This server's statements, straight through psycopg (no HTTP, no cache, no gzip).

    Read through the server's own tile connections (:class:`tile_server.reader.TileReader`:
    the same session settings and prepared statements), ``concurrency`` of them; the
    ``warmup`` tiles go through them first, untimed, as they do through each server.
    """
    from gis_platform.db.tiles import TilePool as TileReader

    from gis_platform.config import Settings
    from tile_server.overview_build import OverviewPlan
    from tile_server.overviews import OverviewManager
    from tile_server.sources import TileTuning
    from tile_server.tms import tile_bounds
    from tile_server.bands import zoom_band
    from tile_server.vector import VectorSource
    from tile_server.vector_sql import SqlCache, tile_params

    settings = Settings(_env_file=None, pool_max_size=concurrency, tile_pool_min_size=concurrency)
    tuning = TileTuning.from_settings(settings.tiles)
    cache = SqlCache()
    # The server's own statements: the overview tables it would read, where built.
    overviews = OverviewManager(db_url, tuning, OverviewPlan.from_settings(settings.tiles))
    await overviews.load()
    sources = {l.id: VectorSource([l], None, tuning, cache, overviews=overviews) for l in layers}
    reader = TileReader(db_url, settings)
    await reader.open()
    await reader.pool.wait()
    try:
        async def one(item):
            lid, z, x, y, _ = item
            t = morecantile.Tile(x, y, z)
            b = tile_bounds(GRID, t, tuning.buffer / tuning.extent)
            stmt = cache.statement(sources[lid].plan(GRID, z), GRID.id, zoom_band(z, tuning), tuning)
            t0 = time.perf_counter()
            data = await reader.fetch_bytes(stmt, tile_params(GRID, t, b, tuning))
            size = len(data)
            return z, time.perf_counter() - t0, size, size == 0

        if warmup:
            await drive(Pass("warmup", concurrency), warmup, concurrency, max_seconds, one)
        return await drive(Pass("sql floor", concurrency), tiles, concurrency, max_seconds, one)
    finally:
        await reader.close()


async def run_raw(name: str, port: int, urls: list[tuple[int, str]], concurrency: int,
                  max_seconds: float, token: str | None = None) -> Pass:
    """Like :func:`run_http` with :class:`RawHTTP` clients (paths, not URLs)."""
    headers = {"Accept-Encoding": "gzip"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    clients = [RawHTTP("127.0.0.1", port, headers) for _ in range(concurrency)]
    free = list(clients)

    async def one(item):
        z, path = item
        c = free.pop()
        t0 = time.perf_counter()
        try:
            status, size = await c.get(path)
        except (OSError, asyncio.IncompleteReadError, ValueError):
            c.close()
            return None
        finally:
            free.append(c)
        if status not in (200, 204):
            return None
        return z, time.perf_counter() - t0, size, status == 204 or size == 0

    try:
        return await drive(Pass(name, concurrency), urls, concurrency, max_seconds, one)
    finally:
        for c in clients:
            c.close()


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


# --- wrk (warm cache, a client that is not the bottleneck) ------------------------------
_WRK_LUA = """
local paths = {}
for line in io.lines(os.getenv("WRK_PATHS")) do paths[#paths + 1] = line end
local i = 0
wrk.headers["Accept-Encoding"] = "gzip"
local token = os.getenv("WRK_TOKEN")
if token and token ~= "" then wrk.headers["Authorization"] = "Bearer " .. token end
request = function()
  i = i % #paths + 1
  return wrk.format("GET", paths[i])
end
"""


def run_wrk(name: str, port: int, paths: list[str], concurrency: int, seconds: float,
            out: Path, token: str | None = None) -> dict | None:
    """``wrk -t1 -c<concurrency>`` cycling through ``paths``; None if wrk is not installed."""
    exe = shutil.which("wrk")
    if exe is None:
        return None
    lua, lst = out / "wrk-paths.lua", out / "wrk-paths.txt"
    lua.write_text(_WRK_LUA)
    lst.write_text("\n".join(paths) + "\n")
    env = {**os.environ, "WRK_PATHS": str(lst), "WRK_TOKEN": token or ""}
    res = subprocess.run([exe, "-t1", f"-c{concurrency}", f"-d{int(seconds)}s", "--latency", "-s", str(lua),
                          f"http://127.0.0.1:{port}"], check=False, env=env, capture_output=True, text=True,
                         timeout=seconds + 60)
    text = res.stdout
    rps = float(text.split("Requests/sec:")[1].split()[0]) if "Requests/sec:" in text else 0.0
    p50 = next((ln.split()[1] for ln in text.splitlines() if ln.strip().startswith("50%")), "?")
    errors = 0
    for ln in text.splitlines():
        if "Non-2xx or 3xx responses" in ln:
            errors = int(ln.split(":")[1])
    return {"pass": name, "concurrency": concurrency, "tiles_per_s": rps, "p50": p50,
            "errors": errors, "client": "wrk -t1"}


def start_trivial(port: int, out: Path) -> Server:
    """A one-function ASGI app on uvicorn (:func:`bench.rawhttp.trivial_app`): the ceiling of
    client + HTTP server on this box."""
    argv = [str(ROOT / ".venv/bin/uvicorn"), "--app-dir", str(ROOT / "bench"), "rawhttp:trivial_app",
            "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning", "--no-access-log"]
    return Server(argv, {}, f"http://127.0.0.1:{port}/", out / "trivial.log")


BANDS = (("z10-12", 10, 12), ("z13", 13, 13), ("z14-16", 14, 16))


def by_band(tiles: list[tuple]) -> list[tuple[str, list[tuple]]]:
    """The tile list split by zoom band (each band a pass of its own, so each is cold)."""
    out = []
    for name, lo, hi in BANDS:
        band = [t for t in tiles if lo <= t[1] <= hi]
        if band:
            out.append((name, band))
    return out


def combine(name: str, concurrency: int, parts: list[Pass]) -> Pass:
    """One pass made of the band passes (tiles/s over the sum of their wall times)."""
    res = Pass(name, concurrency)
    for p in parts:
        res.latencies += p.latencies
        res.sizes += p.sizes
        res.errors += p.errors
        res.empty += p.empty
        res.wall += p.wall
        res.truncated |= p.truncated
        for z, v in p.by_zoom.items():
            res.by_zoom.setdefault(z, []).extend(v)
    return res


# --- main ------------------------------------------------------------------------------
_COLUMNS = {  # title, width, format, key
    "band": ("band", -8, "", "band"), "pass": ("pass", -12, "", "pass"),
    "conc": ("conc", 5, "", "concurrency"), "tiles": ("tiles", 7, "", "tiles"),
    "tps": ("tiles/s", 10, ".1f", "tiles_per_s"), "p50": ("p50 ms", 9, ".1f", "p50_ms"),
    "p95": ("p95 ms", 9, ".1f", "p95_ms"), "p99": ("p99 ms", 9, ".1f", "p99_ms"),
    "bytes": ("mean B", 10, ".0f", "mean_bytes"), "empty": ("empty", 7, "", "empty"),
    "err": ("err", 5, "", "errors"),
}


def table(rows: list[dict], cols: list[str]) -> None:
    """Print ``rows`` as fixed-width columns (``cols``: keys of _COLUMNS)."""
    def cell(text, width, fmt=""):
        v = format(text, fmt)
        return v.ljust(-width) if width < 0 else v.rjust(width)

    head = "".join(cell(_COLUMNS[c][0], _COLUMNS[c][1]) for c in cols)
    print(head)
    print("-" * len(head))
    for r in rows:
        print("".join(cell(r[_COLUMNS[c][3]], _COLUMNS[c][1], _COLUMNS[c][2]) for c in cols)
              + ("  (stopped at time cap)" if r["truncated"] else ""))


def print_table(rows: list[dict]) -> None:
    table(rows, ["pass", "conc", "tiles", "tps", "p50", "p95", "p99", "bytes", "empty", "err"])
    zooms = sorted({z for r in rows for z in r["p50_ms_by_zoom"]})
    print()
    print(f"{'p50 ms by zoom':<17}" + "".join(f"{'z' + str(z):>8}" for z in zooms))
    for r in rows:
        print(f"{r['pass']:<12}{r['concurrency']:>5}" + "".join(
            f"{r['p50_ms_by_zoom'].get(z, float('nan')):>8.1f}" for z in zooms))


def band_table(bands: list[dict]) -> None:
    """Per zoom band: tiles/s, p50, mean bytes of every pass."""
    table(bands, ["band", "pass", "conc", "tiles", "tps", "p50", "bytes", "err"])


def ratios(bands: list[dict], concs: list[int]) -> list[str]:
    out = []
    for c in concs:
        for band, _, _ in BANDS:
            by = {r["pass"]: r for r in bands if r["concurrency"] == c and r["band"] == band}
            cold, tipg, floor = by.get("ours cold"), by.get("tipg"), by.get("sql floor")
            if not cold:
                continue
            parts = [f"c={c} {band}:"]
            if tipg and tipg["tiles_per_s"]:
                parts.append(f"ours cold {cold['tiles_per_s'] / tipg['tiles_per_s']:.2f}x TiPg tiles/s")
            if floor and floor["p50_ms"]:
                parts.append(f"p50 ours cold / floor {cold['p50_ms'] / floor['p50_ms']:.2f}")
            parts.append(f"mean tile {cold['mean_bytes'] / 1000:.0f} KB")
            out.append(" ".join(parts))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db-url", required=True)
    ap.add_argument("--layers", default="roads", help="comma-separated vector layer ids")
    ap.add_argument("--tiles", type=int, default=600)
    ap.add_argument("--zooms", default="10-16")
    ap.add_argument("--concurrency", default="1,8")
    ap.add_argument("--max-seconds", type=float, default=180, help="time cap of each pass")
    ap.add_argument("--warm-seconds", type=float, default=10, help="duration of each wrk pass")
    ap.add_argument("--tipg-venv", default=str(ROOT / ".venv-bench-tipg"))
    ap.add_argument("--skip-tipg", action="store_true")
    ap.add_argument("--no-overviews", action="store_true",
                    help="do not build overviews first (measure the base tables)")
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
    # Warm-up tiles for each server process (TiPg and ours alike): other tiles at the same
    # zooms, so a server's first requests (lazy catalogs, connections opening, statements
    # prepared per connection) are not timed, and our tile cache stays cold for the list.
    timed_keys = {t[:4] for t in tiles}
    warmup = [t for t in tile_list(args.db_url, layers, args.tiles, zooms, args.seed + 1)
              if t[:4] not in timed_keys][:max(20, len(zooms) * 8)]
    print(f"{len(tiles)} tiles over {ids}, zooms {zooms[0]}-{zooms[-1]} "
          f"({sum(t[4] == 'dense' for t in tiles)} dense, {sum(t[4] == 'sparse' for t in tiles)} sparse)")
    print(f"machine: {os.cpu_count()} cores shared by client, servers and PostgreSQL; "
          f"load average before the run {os.getloadavg()[0]:.2f}")

    overview_info = []
    if not args.no_overviews:
        from gis_platform.config import Settings
        from tile_server.overview_build import OverviewPlan, build_layer
        from tile_server.sources import TileTuning

        settings = Settings(_env_file=None)
        t0 = time.perf_counter()
        for l in layers:
            built = asyncio.run(build_layer(args.db_url, l.id, TileTuning.from_settings(settings.tiles),
                                            OverviewPlan.from_settings(settings.tiles)))
            overview_info += [o.__dict__ for o in built]
        print(f"overviews: {len(overview_info)} tables built in {time.perf_counter() - t0:.1f}s "
              "(already built ones are kept)")

    rows: list[dict] = []
    bands: list[dict] = []
    warm: list[dict] = []
    from gis_platform.apikeys import create_api_key

    token = create_api_key(args.db_url, "bench-tiles", ["planner"])
    # Warm PostgreSQL's buffers once so no contender pays for the first disk reads.
    asyncio.run(run_sql_floor(args.db_url, layers, tiles, 4, args.max_seconds))

    def banded(name: str, c: int, run) -> None:
        parts = []
        for band, items in by_band(tiles):
            p = run(items)
            p.name = name
            parts.append(p)
            bands.append({**p.summary(), "band": band})
        rows.append(combine(name, c, parts).summary())

    for c in concs:
        banded("sql floor", c, lambda items, c=c: asyncio.run(
            run_sql_floor(args.db_url, layers, items, c, args.max_seconds, warmup)))
        if not args.skip_tipg:
            port = free_port()
            srv = start_tipg(args.db_url, Path(args.tipg_venv), port, out, ids)
            try:
                def tipg_urls(items, port=port):
                    return [(z, f"/collections/gis_data.{l}/tiles/WebMercatorQuad/{z}/{x}/{y}")
                            for l, z, x, y, _ in items]
                # TiPg builds its catalog lazily: a few requests first.
                asyncio.run(run_raw("warmup", port, tipg_urls(warmup), c, 60))
                banded("tipg", c, lambda items, c=c, port=port: asyncio.run(
                    run_raw("tipg", port, tipg_urls(items), c, args.max_seconds)))
            finally:
                srv.stop()
        data_dir = Path(tempfile.mkdtemp(prefix="bench-tiles-"))
        port = free_port()
        srv = start_ours(args.db_url, data_dir, port, out)
        try:
            def our_urls(items):
                return [(z, f"/collections/{l}/tiles/WebMercatorQuad/{z}/{x}/{y}.mvt")
                        for l, z, x, y, _ in items]
            asyncio.run(run_raw("warmup", port, our_urls(warmup), c, 60, token))
            banded("ours cold", c, lambda items, c=c, port=port: asyncio.run(
                run_raw("ours cold", port, our_urls(items), c, args.max_seconds, token)))
            banded("ours warm", c, lambda items, c=c, port=port: asyncio.run(
                run_raw("ours warm", port, our_urls(items), c, args.max_seconds, token)))
            w = run_wrk("ours warm", port, [u for _, u in our_urls(tiles)], c, args.warm_seconds,
                        out, token)
            if w:
                warm.append(w)
                h = run_wrk("ours /health", port, ["/health"], c, args.warm_seconds, out)
                warm.append(h)
        finally:
            srv.stop()
            shutil.rmtree(data_dir, ignore_errors=True)
    # The client's own ceiling: the same clients against a one-function ASGI app on uvicorn.
    port = free_port()
    srv = start_trivial(port, out)
    try:
        for c in concs:
            w = run_wrk("trivial app", port, ["/"], c, args.warm_seconds, out)
            if w:
                warm.append(w)
            p = asyncio.run(run_raw("raw client", port, [(0, "/")] * 3000, c, args.max_seconds))
            warm.append({"pass": "trivial app", "concurrency": c, "client": "bench RawHTTP",
                         "tiles_per_s": p.summary()["tiles_per_s"],
                         "p50": f"{p.summary()['p50_ms']:.2f}ms", "errors": p.errors})
    finally:
        srv.stop()

    print()
    print_table(rows)
    print()
    band_table(bands)
    print()
    print(f"{'warm / ceiling':<16}{'client':<15}{'conc':>5}{'req/s':>10}{'p50':>10}{'err':>5}")
    for w in warm:
        print(f"{w['pass']:<16}{w['client']:<15}{w['concurrency']:>5}{w['tiles_per_s']:>10.0f}"
              f"{w['p50']:>10}{w['errors']:>5}")
    print()
    for line in ratios(bands, concs):
        print(line)
    for c in concs:
        by = {r["pass"]: r for r in rows if r["concurrency"] == c}
        if "tipg" in by and by["tipg"]["tiles_per_s"]:
            base = by["tipg"]["tiles_per_s"]
            print(f"concurrency {c} (all zooms): ours cold {by['ours cold']['tiles_per_s'] / base:.2f}x TiPg, "
                  f"ours warm {by['ours warm']['tiles_per_s'] / base:.1f}x TiPg, "
                  f"sql floor {by['sql floor']['tiles_per_s'] / base:.2f}x TiPg; "
                  f"bytes ours/TiPg {by['ours cold']['mean_bytes'] / max(by['tipg']['mean_bytes'], 1):.2f}")
    print(f"load average after the run {os.getloadavg()[0]:.2f}")
    (out / "tiles.json").write_text(json.dumps({"tiles": len(tiles), "layers": ids, "rows": rows,
                                                "bands": bands, "warm": warm,
                                                "overviews_built": overview_info}, indent=2))


if __name__ == "__main__":
    main()
