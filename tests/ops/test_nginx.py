"""Two `gis-platform serve` processes behind Debian's nginx, with the proxying rules of
deploy/nginx/gis-platform-locations.conf itself (#19): a killed app server loses no request,
a catalog change made through one is seen through the other at once, and the edge cache
never serves a tile of a layer that changed."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import geopandas as gpd
import httpx
import pytest
import shapely
from morecantile import tms as morecantile_tms

from gis_platform.apikeys import create_api_key
from layers.ingest import ingest_geodataframe
from tests.conftest import _make_world_traversable_tmp, free_port
from tests.tiles.conftest import tile_ids

ROOT = Path(__file__).resolve().parents[2]
NGINX = "/usr/sbin/nginx"          # Debian's (make setup installs it: scripts/check-system.sh)
WM = morecantile_tms.get("WebMercatorQuad")
TILE = WM.tile(126.9702, 37.5502, 15)
PATH = f"/collections/mains/tiles/WebMercatorQuad/{TILE.z}/{TILE.x}/{TILE.y}.mvt"


def mains(n: int) -> gpd.GeoDataFrame:
    lines = [shapely.LineString([(126.97, 37.55 + i * 0.0002), (126.9705, 37.55 + i * 0.0002)])
             for i in range(n)]
    return gpd.GeoDataFrame({"kind": ["water"] * n}, geometry=lines, crs="EPSG:4326")


def wait(pred, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if pred():
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


class App:
    def __init__(self, db_url: str, data_dir: Path, port: int) -> None:
        self.port = port
        env = {**os.environ, "GIS_DATABASE_URL": db_url, "GIS_DATA_DIR": str(data_dir),
               "GIS_PORT": str(port), "GIS_LOG_LEVEL": "warning", "GIS_RATE_LIMIT_PER_IP": "0"}
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        self.proc = subprocess.Popen([sys.executable, "-m", "gis_platform.cli", "serve", "--workers", "1"],
                                     cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        self.url = f"http://127.0.0.1:{port}"
        wait(lambda: httpx.get(self.url + "/ready", timeout=2).status_code == 200, 60, f"app on {port}")

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def balanced(db_url, data_dir):
    """Two app servers sharing one data directory (and its on-disk tile cache), and nginx in
    front of them with the deployment's own rules."""
    ingest_geodataframe(db_url, mains(5), "mains", metadata={"access_level": "public"})
    apps = [App(db_url, data_dir, free_port()), App(db_url, data_dir, free_port())]
    root = _make_world_traversable_tmp("gis-nginx-")
    (root / "cache").mkdir()
    port = free_port()
    upstreams = "\n".join(f"        server 127.0.0.1:{a.port} max_fails=1 fail_timeout=30s;" for a in apps)
    (root / "nginx.conf").write_text(f"""
daemon off;
master_process off;
error_log {root}/error.log warn;
pid {root}/nginx.pid;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {root}/body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    upstream gis_app {{
        least_conn;
{upstreams}
        keepalive 16;
    }}
    proxy_cache_path {root}/cache levels=1:2 keys_zone=gis_tiles:8m max_size=200m inactive=1h use_temp_path=off;
    server {{
        listen 127.0.0.1:{port};
        include {ROOT}/deploy/nginx/gis-platform-locations.conf;
    }}
}}
""")
    nginx = subprocess.Popen([NGINX, "-p", str(root), "-c", str(root / "nginx.conf")],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        wait(lambda: httpx.get(url + "/health", timeout=2).status_code == 200, 20, "nginx")
        yield url, apps, db_url
    finally:
        nginx.terminate()
        nginx.wait(timeout=10)
        for a in apps:
            a.stop()
        shutil.rmtree(root, ignore_errors=True)


def test_a_change_through_one_server_is_seen_through_the_other_and_the_edge(balanced):
    url, (a, b), db_url = balanced
    admin = create_api_key(db_url, "admin", ["admin"])
    auth = {"Authorization": f"Bearer {admin}"}
    with httpx.Client(base_url=url, timeout=30) as edge:
        first = edge.get(PATH)
        assert tile_ids(first) == {1, 2, 3, 4, 5}
        again = edge.get(PATH)
        assert again.headers["x-edge-cache"] == "HIT"          # the edge serves public tiles
        # a catalog change through one server: the other knows it at once
        r = httpx.patch(f"{a.url}/layers/mains", json={"title": "Water mains 2026"}, headers=auth)
        assert r.status_code == 200
        assert httpx.get(f"{b.url}/layers/mains").json()["title"] == "Water mains 2026"
        # a re-ingest: after a second, no edge hit is the old tile again
        ingest_geodataframe(db_url, mains(2), "mains", mode="replace")
        changed = time.monotonic()
        seen_old_after = []
        while time.monotonic() - changed < 4:
            r = edge.get(PATH)
            if tile_ids(r) != {1, 2}:
                seen_old_after.append(round(time.monotonic() - changed, 2))
            time.sleep(0.05)
        # a second of edge freshness, and the moment the app servers take to hear the change
        assert not [t for t in seen_old_after if t > 2.0], seen_old_after
        # credentials never read or fill the edge
        r = edge.get(PATH, headers=auth)
        assert r.headers["x-edge-cache"] == "BYPASS"


def test_killing_an_app_server_under_load_loses_no_request(balanced):
    url, (a, _b), _ = balanced
    statuses: list[int] = []
    errors: list[str] = []
    stop = threading.Event()

    def load():
        with httpx.Client(base_url=url, timeout=30) as c:
            i = 0
            while not stop.is_set():
                i += 1
                try:
                    p = (PATH + f"?n={i}") if i % 2 else f"/collections/mains/items?limit=2&offset={i % 4}"
                    statuses.append(c.get(p).status_code)
                except httpx.HTTPError as exc:
                    errors.append(str(exc))

    threads = [threading.Thread(target=load) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    a.kill()                                   # SIGKILL: in-flight requests are cut off
    time.sleep(2.0)
    stop.set()
    for t in threads:
        t.join(30)
    assert errors == []
    assert len(statuses) > 50 and set(statuses) <= {200, 204}, {s for s in statuses if s not in (200, 204)}
