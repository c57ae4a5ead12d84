"""Every benchmark, in one command (`make bench`): prepares what they share, runs each one
against its peers and prints where the output went.  Figures go into bench/RESULTS.md by hand
(they need reading, not pasting).

    .venv/bin/python bench/run_all.py                 # everything except the 10-minute soak
    .venv/bin/python bench/run_all.py --only tiles,features
    .venv/bin/python bench/run_all.py --soak          # also the 10-minute soak

Shared preparation (idempotent): the dev cluster (`gis-platform db start`), a scratch
database `bench_large` with the `large` demo city (328k roads, 788k facility lines; ~30 s to
build once), TiPg 1.x in `.venv-bench-tipg`, and `wrk` (Debian) for warm-cache throughput.
All on loopback; the machine's cores are shared by clients, servers and PostgreSQL.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = str(ROOT / ".venv/bin/python")
CLI = str(ROOT / ".venv/bin/gis-platform")
TIPG = ROOT / ".venv-bench-tipg"
OUT = ROOT / "bench/out"
SCRATCH = "bench_large"
ALL = ("ingest", "tiles", "features", "publish", "edit", "digcheck", "maps", "load", "faults")


def sh(args: list[str], **kw) -> subprocess.CompletedProcess:
    print("$", " ".join(args), flush=True)
    return subprocess.run(args, check=True, text=True, **kw)


def cli_out(args: list[str], env=None) -> str:
    return subprocess.run([CLI, *args], check=True, capture_output=True, text=True,
                          env=env).stdout.strip()


def prepare_tipg() -> None:
    if (TIPG / "bin/uvicorn").exists():
        return
    sh([sys.executable, "-m", "venv", str(TIPG)])
    sh([str(TIPG / "bin/pip"), "install", "-q", "tipg", "uvicorn[standard]"])


def prepare_wrk() -> None:
    if shutil.which("wrk") is None and os.geteuid() == 0:
        sh(["apt-get", "install", "-y", "-q", "wrk"])


def prepare_large_city() -> str:
    """The scratch database with the large demo city; returns its URL."""
    import psycopg

    sh([CLI, "db", "start"])
    admin = cli_out(["db", "url", "--admin"])
    with psycopg.connect(admin, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                              (SCRATCH,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{SCRATCH}"')
    url = psycopg.conninfo.make_conninfo(admin, dbname=SCRATCH)
    env = {**os.environ, "GIS_DATABASE_URL": url}
    sh([CLI, "db", "migrate"], env=env)
    t0 = time.perf_counter()
    sh([CLI, "demo", "load", "--scale", "large"], env=env)   # a no-op when already loaded
    print(f"large demo city ready ({time.perf_counter() - t0:.0f} s)", flush=True)
    return url


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", default=",".join(ALL), help=f"comma-separated subset of {ALL}")
    ap.add_argument("--soak", action="store_true", help="also the 10-minute soak")
    args = ap.parse_args()
    chosen = [b for b in args.only.split(",") if b]
    unknown = set(chosen) - set(ALL)
    if unknown:
        sys.exit(f"unknown benchmark(s) {sorted(unknown)}; choose from {ALL}")
    OUT.mkdir(parents=True, exist_ok=True)
    needs_city = {"tiles", "features", "digcheck", "edit"} & set(chosen)
    if {"tiles", "features", "publish"} & set(chosen):
        prepare_tipg()
    if "tiles" in chosen:
        prepare_wrk()
    url = prepare_large_city() if needs_city else None
    failed = []
    runs = {
        "ingest": [PY, "bench/ingest/run.py"],
        "tiles": [PY, "bench/tiles/run.py", "--db-url", url or "", "--layers",
                  "roads,underground_facilities", "--tiles", "500", "--concurrency", "1,8",
                  "--max-seconds", "90"],
        "features": [PY, "bench/features/run.py", "--db-url", url or "", "--layer", "roads",
                     "--runs", "40"],
        "publish": [PY, "bench/publish/run.py", "--concurrency", "1,8", "--max-seconds", "90",
                    "--pages", "300"],
        "edit": [PY, "bench/edit/run.py", "--db-url", url or ""],
        "digcheck": [PY, "bench/digcheck/run.py", "--db-url", url or ""],
        "maps": [PY, "bench/maps/run.py"],
        "load": [PY, "bench/ops/load.py", "load"],
        "faults": [PY, "bench/ops/faults.py"],
    }
    if args.soak:
        chosen.append("soak")
        runs["soak"] = [PY, "bench/ops/load.py", "soak", "--minutes", "10"]
    for name in chosen:
        log = OUT / f"{name}.log"
        print(f"\n=== {name}  (log: {log.relative_to(ROOT)})", flush=True)
        t0 = time.perf_counter()
        with open(log, "w") as f:
            proc = subprocess.run(runs[name], cwd=ROOT, stdout=f, stderr=subprocess.STDOUT)
        status = "ok" if proc.returncode == 0 else f"FAILED ({proc.returncode})"
        if proc.returncode:
            failed.append(name)
        print(f"    {status} in {time.perf_counter() - t0:.0f} s; last lines:", flush=True)
        print("    " + "\n    ".join(log.read_text().splitlines()[-12:]), flush=True)
    if failed:
        sys.exit(f"benchmarks that failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
