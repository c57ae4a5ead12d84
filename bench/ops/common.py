"""Shared parts of the operations benchmarks: a private city, a multi-worker server, a
mixed workload from a pan/zoom trace, and latency statistics.

Everything runs on loopback against a private embedded PostGIS cluster in a temporary
directory (never the developer's own data), built with the demo city.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import math
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

# Seoul City Hall-ish centre and the span of the demo city (lon/lat).
CENTRE = (126.978, 37.566)
SPAN = ((126.80, 37.43), (127.18, 37.70))
TILE_LAYERS = "districts,roads"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def children(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry))
    return out


def workers(pid: int) -> list[int]:
    out = []
    for c in children(pid):
        try:
            cmd = Path(f"/proc/{c}/cmdline").read_bytes()
        except OSError:
            continue
        if b"resource_tracker" not in cmd:
            out.append(c)
    return out


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


@dataclass
class City:
    """A private embedded cluster with the demo city, and a server over it."""

    scale: str = "small"
    workers: int = 2
    env: dict = field(default_factory=dict)
    root: Path | None = None
    proc: subprocess.Popen | None = None
    url: str = ""

    def settings(self):
        from gis_platform.config import Settings

        return Settings(data_dir=self.root, database_url=None, _env_file=None)

    def build(self) -> None:
        from gis_platform.db import migrations
        from gis_platform.db.embedded import EmbeddedPostgres
        from gis_platform.demo import load_demo

        self.root = Path(tempfile.mkdtemp(prefix="gis-ops-bench-"))
        os.chmod(self.root, 0o755)
        self.pg = EmbeddedPostgres(self.settings())
        url = self.pg.start()
        migrations.migrate(url)
        t0 = time.perf_counter()
        load_demo(self.settings(), url, scale=self.scale, only_if_empty=False)
        print(f"demo city ({self.scale}) built in {time.perf_counter() - t0:.1f} s", flush=True)
        self.db_url = url

    def start(self) -> None:
        port = free_port()
        env = {**os.environ, "GIS_DATA_DIR": str(self.root), "GIS_PORT": str(port),
               "GIS_LOG_LEVEL": "warning", **self.env}
        env.pop("GIS_DATABASE_URL", None)
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gis_platform.cli", "serve", "--workers", str(self.workers)],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + "/ready", timeout=2).status_code == 200 and \
                        len(workers(self.proc.pid)) >= self.workers:
                    return
            time.sleep(0.3)
        raise SystemExit("server did not become ready")

    def worker_pids(self) -> list[int]:
        return workers(self.proc.pid) if self.proc else []

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    def destroy(self) -> None:
        import shutil

        self.stop()
        with contextlib.suppress(Exception):
            self.pg.stop()
        if self.root:
            shutil.rmtree(self.root, ignore_errors=True)


# --- the workload ---------------------------------------------------------------------
def _tile_xy(lon: float, lat: float, z: int) -> tuple[int, int]:
    n = 2 ** z
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return x, y


def _tile_lonlat(x: float, y: float, z: int) -> tuple[float, float]:
    n = 2 ** z
    lon = x / n * 360 - 180
    lat = math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * y / n))))
    return lon, lat


def pan_zoom_trace(n_views: int, seed: int = 7) -> list[tuple[int, float, float]]:
    """Map views (z, lon, lat) of users panning and zooming around the city."""
    rng = random.Random(seed)
    views = []
    while len(views) < n_views:
        lon = rng.uniform(SPAN[0][0] + 0.05, SPAN[1][0] - 0.05)
        lat = rng.uniform(SPAN[0][1] + 0.04, SPAN[1][1] - 0.04)
        z = rng.choice([11, 12, 12, 13])
        for _ in range(rng.randint(5, 25)):
            views.append((z, lon, lat))
            r = rng.random()
            if r < 0.6:  # pan by about half a screen
                step = 360 / 2 ** z * 2
                lon += rng.uniform(-step, step)
                lat += rng.uniform(-step, step) * 0.8
            elif r < 0.8:
                z = min(16, z + 1)
            else:
                z = max(10, z - 1)
            lon = min(max(lon, SPAN[0][0]), SPAN[1][0])
            lat = min(max(lat, SPAN[0][1]), SPAN[1][1])
    return views[:n_views]


def view_tiles(z: int, lon: float, lat: float, cols: int = 4, rows: int = 3) -> list[str]:
    cx, cy = _tile_xy(lon, lat, z)
    return [f"/tiles/WebMercatorQuad/{z}/{x}/{y}.mvt?layers={TILE_LAYERS}"
            for x in range(cx - cols // 2, cx - cols // 2 + cols)
            for y in range(cy - rows // 2, cy - rows // 2 + rows)]


def feature_request(rng: random.Random) -> str:
    lon = rng.uniform(SPAN[0][0] + 0.05, SPAN[1][0] - 0.05)
    lat = rng.uniform(SPAN[0][1] + 0.04, SPAN[1][1] - 0.04)
    d = rng.choice([0.002, 0.005, 0.01])
    bbox = f"{lon - d:.5f},{lat - d:.5f},{lon + d:.5f},{lat + d:.5f}"
    kind = rng.random()
    if kind < 0.5:
        return f"/collections/roads/items?bbox={bbox}&limit=100"
    if kind < 0.75:
        return f"/collections/bike_stations/items?bbox={bbox}&limit=50"
    if kind < 0.9:
        return f"/collections/roads/items?bbox={bbox}&filter=lanes%20%3E%3D%202&limit=50"
    return "/collections/districts/items?limit=25&properties=name"


def page_paths(url: str) -> list[str]:
    """Map pages: the gallery and its maps if the policy-map package is there; the viewer."""
    paths = ["/viewer?layers=districts,roads", "/collections?f=html"]
    with contextlib.suppress(Exception):
        r = httpx.get(url + "/maps", headers={"Accept": "text/html"}, timeout=10)
        if r.status_code == 200:
            paths.append("/maps")
            import re

            for href in sorted(set(re.findall(r'href="(/maps/[^"?#]+)"', r.text)))[:5]:
                paths.append(href)
    return paths


def mixed_requests(n: int, pages: list[str], seed: int = 11) -> list[tuple[str, str]]:
    """(kind, path): 80 % tiles from the trace, 15 % feature queries, 5 % map pages."""
    rng = random.Random(seed)
    tiles = [t for v in pan_zoom_trace(n // 8 + 10, seed) for t in view_tiles(*v)]
    out, ti = [], 0
    for _ in range(n):
        r = rng.random()
        if r < 0.80:
            out.append(("tile", tiles[ti % len(tiles)]))
            ti += 1
        elif r < 0.95:
            out.append(("feature", feature_request(rng)))
        else:
            out.append(("page", rng.choice(pages)))
    return out


def check_body(kind: str, status: int, headers, body: bytes) -> bool:
    """Is a 200 response intact? (tiles decode, JSON parses, HTML is complete)."""
    if status != 200:
        return True
    try:
        if kind == "tile":
            raw = gzip.decompress(body) if body[:2] == b"\x1f\x8b" else body
            import mapbox_vector_tile

            mapbox_vector_tile.decode(raw)
        elif "json" in headers.get("content-type", ""):
            import orjson

            orjson.loads(body)
        elif "html" in headers.get("content-type", ""):
            return b"</html>" in body.lower()
    except Exception:  # noqa: BLE001
        return False
    return True


@dataclass
class Stats:
    latencies: list = field(default_factory=list)
    statuses: dict = field(default_factory=dict)
    transport_errors: int = 0
    corrupt: int = 0
    started: float = 0.0
    ended: float = 0.0

    def add(self, status: int, seconds: float) -> None:
        self.statuses[status] = self.statuses.get(status, 0) + 1
        self.latencies.append(seconds)

    @property
    def errors(self) -> int:
        return self.transport_errors + sum(v for k, v in self.statuses.items() if k >= 500)

    def pct(self, p: float) -> float:
        if not self.latencies:
            return float("nan")
        xs = sorted(self.latencies)
        return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))] * 1000

    @property
    def rps(self) -> float:
        dt = self.ended - self.started
        return len(self.latencies) / dt if dt > 0 else 0.0


async def drive(url: str, requests: list[tuple[str, str]], concurrency: int, seconds: float,
                verify: bool = False, timeline: list | None = None,
                stop: asyncio.Event | None = None, verify_every: int = 1) -> Stats:
    """Replay ``requests`` round-robin with ``concurrency`` clients for ``seconds``.

    ``verify``: decode every ``verify_every``-th 200 body (tiles as MVT, JSON, HTML) and
    count the ones that are not intact.  Decoding an MVT in Python costs the client more
    than the server spends on a cached tile, so throughput runs sample (``verify_every``
    > 1) and the fault runs check every body."""
    st = Stats()
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    idx = 0
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30,
                                 headers={"Accept-Encoding": "gzip"}) as client:
        st.started = time.perf_counter()
        deadline = st.started + seconds

        async def one_client():
            nonlocal idx
            while time.perf_counter() < deadline and not (stop and stop.is_set()):
                kind, path = requests[idx % len(requests)]
                idx += 1
                t0 = time.perf_counter()
                sent = time.monotonic()   # the timeline records when a request was *sent*
                try:
                    r = await client.get(path)
                    body = r.content
                    st.add(r.status_code, time.perf_counter() - t0)
                    if verify and idx % verify_every == 0 and \
                            not check_body(kind, r.status_code, r.headers, body):
                        st.corrupt += 1
                    if timeline is not None:
                        timeline.append((sent, r.status_code))
                except httpx.HTTPError:
                    st.transport_errors += 1
                    if timeline is not None:
                        timeline.append((sent, 0))
                    await asyncio.sleep(0.05)

        await asyncio.gather(*(one_client() for _ in range(concurrency)))
        st.ended = time.perf_counter()
    return st


def machine_note() -> str:
    load = os.getloadavg()
    return (f"{os.cpu_count()} cores shared by client, server and PostgreSQL; load average "
            f"{load[0]:.2f} at the start")
