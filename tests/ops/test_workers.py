"""`gis-platform serve --workers N`: shared-nothing workers, aggregated metrics, a killed
worker replaced, graceful stop — a real multi-process server over the test database."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]


def _children(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid:
            out.append(int(entry))
    return out


def _workers(pid: int) -> list[int]:
    """uvicorn's worker processes (children of the supervisor that are not helpers)."""
    return [c for c in _children(pid)
            if "multiprocessing.resource_tracker" not in Path(f"/proc/{c}/cmdline").read_text()]


def _wait(pred, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = pred()
        except httpx.HTTPError:
            value = None
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def multi_server(data_dir, db_url, tmp_path):
    port = free_port()
    env = {**os.environ, "GIS_DATABASE_URL": db_url, "GIS_DATA_DIR": str(data_dir),
           "GIS_PORT": str(port), "GIS_LOG_LEVEL": "warning", "GIS_METRICS_PUBLIC": "true"}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    proc = subprocess.Popen([sys.executable, "-m", "gis_platform.cli", "serve", "--workers", "2"],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait(lambda: httpx.get(url + "/ready", timeout=2).status_code == 200, 60, "ready")
        _wait(lambda: len(_workers(proc.pid)) == 2, 30, "two workers")
        yield proc, url
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _count(text: str, family: str) -> float:
    total = 0.0
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name == "gis_http_requests_total" and s.labels.get("family") == family:
                total += s.value
    return total


def test_two_workers_share_the_load_and_metrics_aggregate(multi_server):
    proc, url = multi_server
    seen = set()
    for _ in range(40):
        # a new connection each time, so the kernel spreads them over both workers
        r = httpx.get(url + "/health", headers={"Connection": "close"}, timeout=5)
        assert r.status_code == 200
    for _ in range(10):
        r = httpx.get(url + "/metrics", headers={"Connection": "close"}, timeout=5)
        seen.add(_count(r.text, "ops") >= 40)
    assert seen == {True}, "every worker's /metrics sees all workers' requests"


def test_killed_worker_is_replaced_and_service_continues(multi_server):
    proc, url = multi_server
    victim = _workers(proc.pid)[0]
    os.kill(victim, signal.SIGKILL)
    ok = 0
    for _ in range(30):
        try:
            r = httpx.get(url + "/collections", headers={"Connection": "close"}, timeout=5)
            ok += r.status_code == 200
        except httpx.TransportError:
            pass  # a connection accepted by the dying worker may drop; none may be corrupt
    assert ok >= 25
    _wait(lambda: len(_workers(proc.pid)) == 2 and victim not in _workers(proc.pid), 30,
          "a replacement worker")
    assert httpx.get(url + "/ready", timeout=5).status_code == 200


def test_sigterm_stops_cleanly(multi_server):
    proc, url = multi_server
    assert httpx.get(url + "/health", timeout=5).status_code == 200
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    with pytest.raises(httpx.TransportError):
        httpx.get(url + "/health", timeout=2)


def test_sigterm_lets_an_export_in_flight_finish(data_dir, db_url, tmp_path):
    """Graceful shutdown: a download that is streaming when the server is told to stop
    completes, whole and valid; new connections are refused."""
    import geopandas as gpd
    import numpy as np
    import orjson
    import shapely

    from layers.ingest import ingest_geodataframe

    n = 60_000
    rng = np.random.default_rng(3)
    ingest_geodataframe(db_url, gpd.GeoDataFrame(
        {"value": rng.random(n)}, geometry=shapely.points(rng.uniform(126.9, 127.0, n),
                                                         rng.uniform(37.5, 37.6, n)),
        crs="EPSG:4326"), "pts", mode="create", metadata={"access_level": "public"})
    port = free_port()
    env = {**os.environ, "GIS_DATABASE_URL": db_url, "GIS_DATA_DIR": str(data_dir),
           "GIS_PORT": str(port), "GIS_LOG_LEVEL": "warning"}
    proc = subprocess.Popen([sys.executable, "-m", "gis_platform.cli", "serve"], cwd=ROOT,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait(lambda: httpx.get(url + "/ready", timeout=2).status_code == 200, 60, "ready")
        chunks = []
        with httpx.stream("GET", url + "/collections/pts/export", params={"f": "geojson"},
                          headers={"Accept-Encoding": "identity"}, timeout=60) as r:
            assert r.status_code == 200
            it = r.iter_bytes(8192)
            chunks.append(next(it))
            proc.send_signal(signal.SIGTERM)      # stop while the body is streaming
            time.sleep(0.5)
            for chunk in it:
                chunks.append(chunk)
                time.sleep(0.0005)                # a slow client
        doc = orjson.loads(b"".join(chunks))
        assert len(doc["features"]) == n
        # uvicorn re-raises the captured SIGTERM after the drain: -15 is a clean exit here
        assert proc.wait(timeout=30) in (0, -signal.SIGTERM)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
