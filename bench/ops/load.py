"""Load and soak: a mixed workload (80 % tiles over a pan/zoom trace, 15 % feature queries,
5 % map pages) against `gis-platform serve --workers N` on a private demo city.

    .venv/bin/python bench/ops/load.py load            # rising concurrency until p95 > 500 ms
    .venv/bin/python bench/ops/load.py soak --minutes 10   # fixed concurrency, worker memory

``load`` reports, per concurrency step, requests/s, p50/p95/p99 and errors, and the highest
sustained requests/s with p95 <= 500 ms and 0 errors.  ``soak`` samples every worker's RSS
and fails (exit 1) if any grows beyond the bound after warm-up.  Bounded in time and count,
loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path

from common import City, drive, machine_note, mixed_requests, page_paths, rss_mb

OUT = Path(__file__).resolve().parent


def run_load(city: City, args) -> dict:
    pages = page_paths(city.url)
    reqs = mixed_requests(20_000, pages)
    # warm-up: one pass over part of the trace (a portal that has been up for a while)
    asyncio.run(drive(city.url, reqs[:3000], 4, args.warmup))
    rows, best = [], None
    for c in args.steps:
        st = asyncio.run(drive(city.url, reqs, c, args.step_seconds, verify=True,
                                verify_every=args.verify_every))
        row = {"concurrency": c, "requests": len(st.latencies), "rps": round(st.rps, 1),
               "p50_ms": round(st.pct(50), 1), "p95_ms": round(st.pct(95), 1),
               "p99_ms": round(st.pct(99), 1), "errors": st.errors, "corrupt": st.corrupt,
               "statuses": st.statuses}
        rows.append(row)
        print(f"c={c:<3} {row['rps']:>8.1f} req/s  p50 {row['p50_ms']:>7.1f}  p95 "
              f"{row['p95_ms']:>7.1f}  p99 {row['p99_ms']:>7.1f} ms  errors {st.errors}  "
              f"corrupt {st.corrupt}", flush=True)
        if row["p95_ms"] <= 500 and st.errors == 0 and st.corrupt == 0:
            if best is None or row["rps"] > best["rps"]:
                best = row
        if row["p95_ms"] > 500:
            break
    return {"steps": rows, "sustained": best}


def run_soak(city: City, args) -> dict:
    pages = page_paths(city.url)
    reqs = mixed_requests(50_000, pages, seed=23)
    pids = city.worker_pids()
    samples: dict[int, list[tuple[float, float]]] = {p: [] for p in pids}
    total = args.minutes * 60
    t0 = time.monotonic()

    async def sampler(stop: asyncio.Event):
        while not stop.is_set():
            for p in pids:
                m = rss_mb(p)
                if m is not None:
                    samples[p].append((time.monotonic() - t0, m))
            try:
                await asyncio.wait_for(stop.wait(), timeout=10)
            except TimeoutError:
                pass

    async def main():
        stop = asyncio.Event()
        task = asyncio.create_task(sampler(stop))
        st = await drive(city.url, reqs, args.concurrency, total, verify=True,
                         verify_every=args.verify_every)
        stop.set()
        await task
        return st

    st = asyncio.run(main())
    workers = []
    for p, xs in samples.items():
        after_warm = [m for t, m in xs if t >= args.warmup_s] or [m for _, m in xs]
        start, end, peak = after_warm[0], after_warm[-1], max(after_warm)
        workers.append({"pid": p, "rss_start_mb": round(start, 1), "rss_end_mb": round(end, 1),
                        "rss_peak_mb": round(peak, 1), "growth_mb": round(end - start, 1),
                        "alive": rss_mb(p) is not None})
    ok = all(w["growth_mb"] <= args.bound_mb and w["alive"] for w in workers) and st.errors == 0
    return {"minutes": args.minutes, "concurrency": args.concurrency,
            "requests": len(st.latencies), "rps": round(st.rps, 1),
            "p50_ms": round(st.pct(50), 1), "p95_ms": round(st.pct(95), 1),
            "p99_ms": round(st.pct(99), 1), "errors": st.errors, "corrupt": st.corrupt,
            "bound_mb": args.bound_mb, "worker_memory": workers, "ok": ok}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("mode", choices=["load", "soak"])
    ap.add_argument("--scale", default="city", help="demo city size (small | city | large)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--steps", type=lambda s: [int(x) for x in s.split(",")],
                    default=[1, 2, 4, 8, 16, 32, 64])
    ap.add_argument("--step-seconds", type=float, default=20)
    ap.add_argument("--warmup", type=float, default=15)
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--warmup-s", type=float, default=60, help="soak: ignore memory before this")
    ap.add_argument("--verify-every", type=int, default=25,
                    help="decode every Nth 200 body (tiles as MVT) to check it is intact")
    ap.add_argument("--bound-mb", type=float, default=64, help="soak: allowed RSS growth/worker")
    args = ap.parse_args()

    city = City(scale=args.scale, workers=args.workers)
    print(machine_note(), flush=True)
    try:
        city.build()
        city.start()
        result = run_load(city, args) if args.mode == "load" else run_soak(city, args)
    finally:
        city.destroy()
    result.update({"mode": args.mode, "scale": args.scale, "workers": args.workers,
                   "machine": machine_note(),
                   "date": time.strftime("%Y-%m-%d %H:%M", time.gmtime())})
    (OUT / f"results-{args.mode}.json").write_text(json.dumps(result, indent=2))
    print(json.dumps({k: v for k, v in result.items() if k != "steps"}, indent=2))
    if args.mode == "soak" and not result["ok"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
