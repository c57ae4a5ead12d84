"""Editing benchmark (#17) on the large demo city: PATCH latency, and what one edit costs the
tile cache.

    .venv/bin/python bench/edit/run.py --db-url "$URL"      # a database with the large demo city

1. ``underground_facilities`` (788k lines) is marked editable; our server runs on loopback.
2. **PATCH**: ``--patches`` single-feature merge patches of random facilities, one client,
   each after an untimed GET of the feature's ETag; p50/p95 of the PATCH alone.
3. **Tiles after an edit**: a city-wide list of tiles (z12-z16) is fetched once (the cache is
   then warm), one facility is moved, and the whole list is asked again with
   ``If-None-Match``: the share answered 304 is the share of the cache that stayed valid.
   The tile holding the moved facility is polled until it shows the change: the delay from
   the PATCH's answer.

Targets: PATCH p50 < 20 ms; > 99 % of the warm tiles still valid after an edit; the edited
tile fresh within 1 s.  Writes ``bench/out/edit.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import morecantile
import psycopg

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from bench.tiles.run import Server, free_port

GRID = morecantile.tms.get("WebMercatorQuad")
LAYER = "underground_facilities"


def start(db_url: str, out: Path) -> tuple[Server, str]:
    port = free_port()
    env = {"GIS_DATABASE_URL": db_url, "GIS_DATA_DIR": tempfile.mkdtemp(prefix="bench-edit-"),
           "GIS_LOG_LEVEL": "warning", "GIS_RATE_LIMIT_PER_IP": "0", "GIS_AUTO_MIGRATE": "true",
           "GIS_TILE_OVERVIEW_AUTO_BUILD": "false", "GIS_AUDIT_FLUSH_SECONDS": "1"}
    argv = [str(ROOT / ".venv/bin/uvicorn"), "gis_platform.main:app", "--host", "127.0.0.1",
            "--port", str(port), "--log-level", "warning", "--no-access-log"]
    return Server(argv, env, f"http://127.0.0.1:{port}/health", out / "edit-server.log"), \
        f"http://127.0.0.1:{port}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db-url", required=True)
    ap.add_argument("--patches", type=int, default=200)
    ap.add_argument("--tiles", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--as-of-tiles", type=int, default=300)
    ap.add_argument("--out", default=str(ROOT / "bench/out"))
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    from gis_platform.apikeys import create_api_key

    token = create_api_key(args.db_url, "bench-edit", ["admin"])
    rng = random.Random(args.seed)
    with psycopg.connect(args.db_url) as conn:
        n = conn.execute(f"SELECT max(fid) FROM gis_data.{LAYER}").fetchone()[0]
        pts = conn.execute(f"SELECT ST_X(c), ST_Y(c) FROM (SELECT ST_Centroid(geom) c FROM gis_data.{LAYER} "
                           "TABLESAMPLE SYSTEM (1) REPEATABLE (%s) LIMIT 5000) s", (args.seed,)).fetchall()
    result: dict = {}
    result["overview_build_s"] = _build_overviews(args.db_url)
    srv, base = start(args.db_url, out)
    try:
        c = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=60)
        assert c.patch(f"/layers/{LAYER}", json={"editable": True}).status_code == 200
        time.sleep(0.5)
        # --- PATCH latency
        started = dt.datetime.now(dt.UTC)
        time.sleep(0.01)
        times = []
        for _ in range(args.patches):
            fid = rng.randint(1, n)
            r = c.get(f"/collections/{LAYER}/items/{fid}")
            if r.status_code != 200:
                continue
            t0 = time.perf_counter()
            p = c.patch(f"/collections/{LAYER}/items/{fid}", json={"properties": {"status": "in service"}},
                        headers={"If-Match": r.headers["etag"]})
            times.append(time.perf_counter() - t0)
            assert p.status_code == 204, p.text
        times.sort()
        result["patch"] = {"n": len(times), "p50_ms": statistics.median(times) * 1000,
                           "p95_ms": times[int(0.95 * len(times))] * 1000}
        print(f"PATCH: {len(times)} edits, p50 {result['patch']['p50_ms']:.1f} ms, "
              f"p95 {result['patch']['p95_ms']:.1f} ms", flush=True)
        # --- the warm cache after one edit
        tiles = set()
        while len(tiles) < args.tiles:
            lon, lat = rng.choice(pts)
            tiles.add(GRID.tile(lon, lat, rng.randint(12, 16)))
        paths = [f"/collections/{LAYER}/tiles/WebMercatorQuad/{t.z}/{t.x}/{t.y}.mvt" for t in tiles]
        etags = {}
        for p in paths:
            r = c.get(p, headers={"Accept-Encoding": "gzip"})
            etags[p] = r.headers.get("etag")
        fid = rng.randint(1, n)
        feat = c.get(f"/collections/{LAYER}/items/{fid}")
        g = feat.json()["geometry"]
        shifted = {"type": g["type"], "coordinates": _shift(g["coordinates"], 0.0005)}
        edited = GRID.tile(*_first(shifted["coordinates"]), 16)
        edited_path = f"/collections/{LAYER}/tiles/WebMercatorQuad/16/{edited.x}/{edited.y}.mvt"
        before = c.get(edited_path).headers.get("etag")
        t0 = time.perf_counter()
        r = c.patch(f"/collections/{LAYER}/items/{fid}", json={"geometry": shifted},
                    headers={"If-Match": feat.headers["etag"]})
        assert r.status_code == 204, r.text
        t_patch = time.perf_counter()
        while c.get(edited_path).headers.get("etag") == before:
            time.sleep(0.01)
        fresh_s = time.perf_counter() - t_patch
        same = changed = 0
        for p in paths:
            r = c.get(p, headers={"If-None-Match": etags[p] or "", "Accept-Encoding": "gzip"})
            if r.status_code == 304:
                same += 1
            else:
                changed += 1
        result["after_edit"] = {"tiles": len(paths), "still_valid": same, "renewed": changed,
                                "valid_share": same / len(paths), "edited_tile_fresh_s": fresh_s,
                                "patch_ms": (t_patch - t0) * 1000}
        print(f"after one edit: {same}/{len(paths)} warm tiles still valid "
              f"({100 * same / len(paths):.2f} %), {changed} renewed; the edited tile fresh "
              f"{fresh_s * 1000:.0f} ms after the PATCH answered", flush=True)
    finally:
        srv.stop()
    # --- the overviews after that edit: updated in place, against a full build
    result["overviews"] = _overview_patch(args.db_url, g, shifted)
    # --- "as of" tiles against current ones, each pass cold on a fresh server and cache
    sample = list(tiles)[:args.as_of_tiles]
    paths = [f"/collections/{LAYER}/tiles/WebMercatorQuad/{t.z}/{t.x}/{t.y}.mvt" for t in sample]

    def cold_pass(q: str) -> list[float]:
        srv_, base_ = start(args.db_url, out)
        try:
            cc = httpx.Client(base_url=base_, headers={"Authorization": f"Bearer {token}"}, timeout=60)
            for t in list(tiles)[-5:]:                   # connections and plans, untimed
                cc.get(f"/collections/{LAYER}/tiles/WebMercatorQuad/{t.z}/{t.x}/{t.y}.mvt{q}")
            out_ = []
            for p in paths:
                t0 = time.perf_counter()
                r = cc.get(p + q, headers={"Accept-Encoding": "gzip"})
                out_.append(time.perf_counter() - t0)
                assert r.status_code in (200, 204), r.text
            return out_
        finally:
            srv_.stop()

    past = cold_pass("?asOf=" + started.isoformat().replace("+00:00", "Z"))
    current = cold_pass("")
    result["as_of"] = {"tiles": len(paths), "current_p50_ms": statistics.median(current) * 1000,
                       "as_of_p50_ms": statistics.median(past) * 1000,
                       "ratio_p50": statistics.median(past) / statistics.median(current),
                       "ratio_total": sum(past) / sum(current)}
    print(f"as-of tiles (cold, z12-16, before the {len(times)} edits): p50 "
          f"{result['as_of']['as_of_p50_ms']:.1f} ms against {result['as_of']['current_p50_ms']:.1f} ms "
          f"now: {result['as_of']['ratio_p50']:.2f}x (total time {result['as_of']['ratio_total']:.2f}x)",
          flush=True)
    (out / "edit.json").write_text(json.dumps(result, indent=1))


def _tuning_and_plan():
    from gis_platform.config import Settings
    from tile_server.overview_build import OverviewPlan
    from tile_server.sources import TileTuning

    s = Settings(_env_file=None)
    return TileTuning.from_settings(s.tiles), OverviewPlan.from_settings(s.tiles)


def _build_overviews(db_url: str) -> float:
    """The layer's overviews for its current version and the default settings, as a server
    builds them in the background (the server below does not build: its timings stay clean)."""
    import asyncio

    from tile_server.overview_build import build_layer

    tuning, plan = _tuning_and_plan()
    t0 = time.perf_counter()
    built = asyncio.run(build_layer(db_url, LAYER, tuning, plan))
    secs = time.perf_counter() - t0
    print(f"overviews: {len(built)} levels built in {secs:.1f} s", flush=True)
    return secs


def _overview_patch(db_url: str, old: dict, new: dict) -> dict | None:
    """Time the in-place update of the layer's overviews over one moved feature (what the
    server does a second after an edit), against what building them took."""
    import asyncio

    import shapely

    from tile_server.overview_build import patch_layer

    tuning, plan = _tuning_and_plan()
    box = shapely.union(shapely.geometry.shape(old), shapely.geometry.shape(new)).bounds
    t0 = time.perf_counter()
    patched = asyncio.run(patch_layer(db_url, LAYER, tuning, plan, [box]))
    ms = (time.perf_counter() - t0) * 1000
    if patched is None:
        print("overviews: none complete for the current settings; no patch measured", flush=True)
        return None
    with psycopg.connect(db_url) as conn:
        build_ms = conn.execute("SELECT sum(build_ms) FROM tiles.overviews WHERE table_name = ANY(%s)",
                                ([p.table_name for p in patched],)).fetchone()[0]
    print(f"overviews: {len(patched)} levels updated in place over the moved feature in {ms:.0f} ms "
          f"(building them took {build_ms / 1000:.1f} s)", flush=True)
    return {"levels": len(patched), "patch_ms": ms, "build_ms": build_ms}


def _shift(coords, d):
    if isinstance(coords[0], (int, float)):
        return [coords[0] + d, coords[1]]
    return [_shift(c, d) for c in coords]


def _first(coords):
    while not isinstance(coords[0], (int, float)):
        coords = coords[0]
    return coords[0], coords[1]


if __name__ == "__main__":
    main()
