"""Faults under load: the platform answers 503/4xx during a fault, recovers by itself,
never returns corrupt data, never half-applies an ingest.

    .venv/bin/python bench/ops/faults.py              # all scenarios (~3 minutes)
    .venv/bin/python bench/ops/faults.py db-restart kill-worker

Scenarios (a mixed tile/feature/page load runs through each, every 200 body is checked):
  db-restart        the database stops for 5 s and comes back
  kill-worker       one worker process is SIGKILLed
  cache-disk-full   the tile cache sits on a full filesystem (a 1 MB tmpfs, needs root;
                    otherwise RLIMIT_FSIZE=0 on the workers via prlimit)
  statement-timeout runaway statistics queries hit the statement timeout
  ingest-db-restart the database restarts in the middle of a large replace-ingest
Exit status 1 if any scenario fails its checks.  Results: bench/ops/results-faults.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import httpx
import numpy as np
from common import City, drive, machine_note, mixed_requests, page_paths

OUT = Path(__file__).resolve().parent
SCENARIOS = ("db-restart", "kill-worker", "cache-disk-full", "statement-timeout",
             "ingest-db-restart")


def _under_load(city: City, fault, *, seconds: float = 20, fault_at: float = 4,
                concurrency: int = 4) -> dict:
    """Run the mixed load for ``seconds``; call ``fault()`` at ``fault_at`` in a thread."""
    reqs = mixed_requests(8000, page_paths(city.url), seed=int(time.time()) % 1000)
    timeline: list[tuple[float, int]] = []
    marks: dict[str, float] = {}

    def run_fault():
        time.sleep(fault_at)
        marks["fault"] = time.monotonic()
        fault(marks)
        marks.setdefault("fault_end", time.monotonic())

    t = threading.Thread(target=run_fault)
    t.start()
    st = asyncio.run(drive(city.url, reqs, concurrency, seconds, verify=True, timeline=timeline))
    t.join()
    end = marks["fault_end"]
    during = [s for ts, s in timeline if marks["fault"] <= ts <= end + 0.5]
    after_bad = [ts for ts, s in timeline if ts > end and (s == 0 or s >= 500)]
    recovered_at = max(after_bad) if after_bad else end
    tail = [s for ts, s in timeline if ts > recovered_at]
    return {
        "requests": len(timeline), "corrupt": st.corrupt,
        "statuses": {str(k): v for k, v in sorted(st.statuses.items())},
        "transport_errors": st.transport_errors,
        "during_fault": {str(k): during.count(k) for k in sorted(set(during))},
        "http_500": st.statuses.get(500, 0),
        "recovery_s": round(recovered_at - end, 2),
        "ok_after_recovery": bool(tail) and all(0 < s < 500 for s in tail),
    }


def scenario_db_restart(city: City) -> dict:
    def fault(marks):
        city.pg.stop("fast")
        time.sleep(5)
        city.pg.start()
        marks["fault_end"] = time.monotonic()

    r = _under_load(city, fault, seconds=25)
    r["ok"] = (r["corrupt"] == 0 and r["http_500"] == 0 and r["ok_after_recovery"]
               and r["recovery_s"] < 10)
    return r


def scenario_kill_worker(city: City) -> dict:
    victim = {}

    def fault(marks):
        pid = city.worker_pids()[0]
        victim["pid"] = pid
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            now = city.worker_pids()
            if len(now) >= city.workers and pid not in now:
                break
            time.sleep(0.1)
        marks["fault_end"] = time.monotonic()

    r = _under_load(city, fault)
    r["workers_after"] = len(city.worker_pids())
    r["ok"] = (r["corrupt"] == 0 and r["http_500"] == 0 and r["ok_after_recovery"]
               and r["workers_after"] == city.workers)
    return r


def scenario_cache_disk_full(city: City) -> dict:
    cache = city.root / "tile-cache"
    city.stop()
    shutil.rmtree(cache, ignore_errors=True)
    cache.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(cache)],
                             capture_output=True).returncode == 0
    method = "tmpfs 1 MB, filled"
    try:
        if mounted:
            with contextlib.suppress(OSError), open(cache / "filler", "wb") as f:
                while True:
                    f.write(b"\0" * 65536)
        city.start()
        if not mounted:
            method = "RLIMIT_FSIZE=0 on the workers (prlimit)"
            for pid in city.worker_pids():
                subprocess.run(["prlimit", f"--pid={pid}", "--fsize=0"], check=True)
        r = _under_load(city, lambda marks: None, seconds=15, fault_at=0)
        files = [p for p in cache.rglob("*") if p.is_file() and p.name != "filler"]
        # empty tiles are 0-byte markers, which fit even on a full disk
        r.update(method=method, tiles_with_content_on_disk=sum(p.stat().st_size > 0 for p in files))
        r["ok"] = (r["corrupt"] == 0 and r["http_500"] == 0 and r["transport_errors"] == 0
                   and r["ok_after_recovery"])
        return r
    finally:
        city.stop()
        if mounted:
            subprocess.run(["umount", str(cache)], capture_output=True)
        city.start()


def scenario_statement_timeout(city: City) -> dict:
    city.stop()
    city.env["GIS_STATEMENT_TIMEOUT_MS"] = "1500"
    city.env["GIS_MAX_REQUEST_BODY_KB"] = "20000"
    city.start()
    t = np.linspace(0, 2 * np.pi, 150_000)
    ring = np.column_stack([126.98 + 0.12 * np.cos(t) * (1 + 0.05 * np.sin(200 * t)),
                            37.56 + 0.09 * np.sin(t)]).tolist()
    ring.append(ring[0])
    body = {"type": "Polygon", "coordinates": [ring]}
    heavy = []

    def fault(marks):
        for _ in range(3):
            t0 = time.monotonic()
            r = httpx.post(city.url + "/collections/roads/stats", json=body, timeout=60)
            heavy.append({"status": r.status_code, "seconds": round(time.monotonic() - t0, 2),
                          "detail": r.json().get("detail", "")[:120]})

    try:
        r = _under_load(city, fault, seconds=20, fault_at=2)
    finally:
        city.stop()
        city.env.pop("GIS_STATEMENT_TIMEOUT_MS")
        city.env.pop("GIS_MAX_REQUEST_BODY_KB")
        city.start()
    r["runaway_requests"] = heavy
    r["ok"] = (all(h["status"] == 503 and "ms" in h["detail"] for h in heavy)
               and r["corrupt"] == 0 and r["http_500"] == 0 and r["transport_errors"] == 0)
    return r


def scenario_ingest_db_restart(city: City) -> dict:
    import geopandas as gpd
    import psycopg
    import shapely

    from layers.ingest import ingest_geodataframe

    url = city.db_url
    with psycopg.connect(url) as c:
        before = c.execute("SELECT data_version, feature_count FROM gis_meta.layers "
                           "WHERE id = 'bike_stations'").fetchone()
    n = 600_000
    rng = np.random.default_rng(1)
    gdf = gpd.GeoDataFrame({"name": np.char.add("s", np.arange(n).astype(str)),
                            "value": rng.random(n)},
                           geometry=shapely.points(rng.uniform(126.8, 127.1, n),
                                                   rng.uniform(37.45, 37.65, n)), crs="EPSG:4326")
    outcome = {}

    def ingest():
        try:
            rep = ingest_geodataframe(url, gdf, "bike_stations", mode="replace")
            outcome["result"] = f"completed ({rep.features_written} features)"
        except Exception as exc:  # noqa: BLE001
            outcome["result"] = f"failed: {type(exc).__name__}"

    t = threading.Thread(target=ingest)
    t.start()
    time.sleep(1.5)
    city.pg.kill()           # the hardest stop: no shutdown checkpoint
    time.sleep(1)
    city.pg.start()
    t.join()
    with psycopg.connect(url) as c:
        after = c.execute("SELECT data_version, feature_count FROM gis_meta.layers "
                          "WHERE id = 'bike_stations'").fetchone()
        rows = c.execute("SELECT count(*) FROM gis_data.bike_stations").fetchone()[0]
    completed = outcome["result"].startswith("completed")
    consistent = (after[1] == rows == n and after[0] > before[0]) if completed else \
                 (after == before and rows == before[1])
    # the server goes on serving the layer
    time.sleep(2)
    ok_http = httpx.get(city.url + "/collections/bike_stations/items?limit=1",
                        timeout=10).status_code == 200
    return {"ingest": outcome["result"], "before": list(before), "after": list(after),
            "rows": rows, "ok": consistent and ok_http}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("scenarios", nargs="*", default=list(SCENARIOS))
    ap.add_argument("--scale", default="small")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    unknown = set(args.scenarios) - set(SCENARIOS)
    if unknown:
        raise SystemExit(f"unknown scenario(s): {', '.join(unknown)}; choose from {SCENARIOS}")
    city = City(scale=args.scale, workers=args.workers)
    print(machine_note(), flush=True)
    results = {}
    try:
        city.build()
        city.start()
        for name in args.scenarios:
            fn = globals()["scenario_" + name.replace("-", "_")]
            t0 = time.monotonic()
            results[name] = fn(city)
            results[name]["seconds"] = round(time.monotonic() - t0, 1)
            print(f"{name:<18} {'OK ' if results[name]['ok'] else 'FAIL'} "
                  f"{json.dumps({k: v for k, v in results[name].items() if k != 'ok'})}",
                  flush=True)
    finally:
        city.destroy()
    out = {"scale": args.scale, "workers": args.workers, "machine": machine_note(),
           "date": time.strftime("%Y-%m-%d %H:%M", time.gmtime()), "scenarios": results}
    (OUT / "results-faults.json").write_text(json.dumps(out, indent=2))
    if not all(r["ok"] for r in results.values()):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
