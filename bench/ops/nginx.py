"""Tile throughput through Debian's nginx with one and with two app servers (#19).

    .venv/bin/python bench/ops/nginx.py --db-url "$URL" [--tiles 1500 --clients 8 --seconds 20]

Two ``gis-platform serve`` processes (one worker each) over the same database and data
directory, nginx in front with the deployment's own rules (deploy/nginx/
gis-platform-locations.conf).  A fixed set of z13-z16 tile URLs over the demo city's roads
is fetched by ``--clients`` threads for ``--seconds``, through nginx with one upstream and
then with two.  The edge cache is bypassed (each request carries an API key, as an
authenticated planner's would), so what is measured is the app servers behind the balancer:
warm tiles (the first pass fills each server's cache).

Caveat: this machine has 2 cores shared by nginx, both app servers, PostgreSQL and the
client, so a second server cannot add CPU here; the figures show the balancer's overhead and
that two servers behind it lose nothing, not how throughput scales across hosts.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import morecantile

ROOT = Path(__file__).resolve().parents[2]
NGINX = "/usr/sbin/nginx"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait(url: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer")


def start_app(db_url: str, data_dir: str, port: int) -> subprocess.Popen:
    env = {**os.environ, "GIS_DATABASE_URL": db_url, "GIS_DATA_DIR": data_dir, "GIS_PORT": str(port),
           "GIS_LOG_LEVEL": "warning", "GIS_RATE_LIMIT_PER_IP": "0", "GIS_RATE_LIMIT_PER_KEY": "0",
           "GIS_TILE_OVERVIEW_AUTO_BUILD": "false", "GIS_AUTO_MIGRATE": "true"}
    p = subprocess.Popen([sys.executable, "-m", "gis_platform.cli", "serve", "--workers", "1"], cwd=ROOT,
                         env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    wait(f"http://127.0.0.1:{port}/ready")
    return p


def start_nginx(root: Path, upstream_ports: list[int]) -> tuple[subprocess.Popen, str]:
    port = free_port()
    ups = "\n".join(f"        server 127.0.0.1:{p};" for p in upstream_ports)
    (root / "cache").mkdir(exist_ok=True)
    (root / "nginx.conf").write_text(f"""
daemon off;
master_process off;
error_log {root}/error.log warn;
pid {root}/nginx.pid;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {root}/body; proxy_temp_path {root}/proxy; fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi; scgi_temp_path {root}/scgi;
    upstream gis_app {{
        least_conn;
{ups}
        keepalive 32;
    }}
    proxy_cache_path {root}/cache levels=1:2 keys_zone=gis_tiles:8m max_size=500m inactive=1h use_temp_path=off;
    server {{
        listen 127.0.0.1:{port};
        include {ROOT}/deploy/nginx/gis-platform-locations.conf;
    }}
}}
""")
    p = subprocess.Popen([NGINX, "-p", str(root), "-c", str(root / "nginx.conf")],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait(url + "/health", 30)
    except RuntimeError:
        log = (root / "error.log").read_text() if (root / "error.log").exists() else ""
        raise RuntimeError(f"nginx did not start: {log[-1000:]}") from None
    return p, url


def load(url: str, paths: list[str], token: str, clients: int, seconds: float) -> dict:
    done: list[float] = []
    errors = [0]
    stop = threading.Event()

    def worker(i: int) -> None:
        rng = random.Random(i)
        with httpx.Client(base_url=url, timeout=30, headers={"Authorization": f"Bearer {token}",
                                                            "Accept-Encoding": "gzip"}) as c:
            while not stop.is_set():
                t0 = time.perf_counter()
                try:
                    r = c.get(rng.choice(paths))
                    if r.status_code not in (200, 204):
                        errors[0] += 1
                except httpx.HTTPError:
                    errors[0] += 1
                done.append(time.perf_counter() - t0)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    lat = sorted(done)
    return {"requests": len(done), "rps": round(len(done) / seconds, 1), "errors": errors[0],
            "p50_ms": round(lat[len(lat) // 2] * 1000, 2), "p95_ms": round(lat[int(len(lat) * 0.95)] * 1000, 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db-url", required=True, help="a database with the demo city (the owner's URL)")
    ap.add_argument("--tiles", type=int, default=1500)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=20)
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    from gis_platform.apikeys import create_api_key

    token = create_api_key(args.db_url, "bench-nginx", ["planner"])
    grid = morecantile.tms.get("WebMercatorQuad")
    rng = random.Random(5)
    tiles = {grid.tile(rng.uniform(126.9, 127.1), rng.uniform(37.5, 37.62), rng.randint(13, 16))
             for _ in range(args.tiles * 2)}
    paths = [f"/collections/roads/tiles/WebMercatorQuad/{t.z}/{t.x}/{t.y}.mvt" for t in list(tiles)[:args.tiles]]
    data_dir = tempfile.mkdtemp(prefix="bench-nginx-data-")
    os.chmod(data_dir, 0o755)
    root = Path(tempfile.mkdtemp(prefix="bench-nginx-"))
    apps = [(free_port(),), (free_port(),)]
    procs = [start_app(args.db_url, data_dir, p) for (p,) in apps]
    result = {"tiles": len(paths), "clients": args.clients, "seconds": args.seconds, "runs": {}}
    try:
        for label, ups in (("one server", [apps[0][0]]), ("two servers", [a[0] for a in apps])):
            nginx, url = start_nginx(root, ups)
            try:
                load(url, paths, token, args.clients, args.seconds / 2)        # warm every server's cache
                result["runs"][label] = run = load(url, paths, token, args.clients, args.seconds)
                print(f"{label}: {run['rps']} tiles/s, p50 {run['p50_ms']} ms, p95 {run['p95_ms']} ms, "
                      f"{run['errors']} errors", flush=True)
            finally:
                nginx.terminate()
                nginx.wait()
        for (p,) in apps[:1]:
            direct = load(f"http://127.0.0.1:{p}", paths, token, args.clients, args.seconds)
        result["runs"]["one server, no nginx"] = direct
        print(f"one server without nginx: {direct['rps']} tiles/s, p50 {direct['p50_ms']} ms", flush=True)
    finally:
        for p in procs:
            os.killpg(p.pid, signal.SIGTERM)
            p.wait(timeout=30)
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(data_dir, ignore_errors=True)
    out = ROOT / "bench/out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "nginx.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
